//! The state directory (SPEC 6, durability): an append-only log of accepted
//! updates and, now and then, a compacted snapshot of the whole model, so
//! that an acknowledged update survives `kill -9` and a restart serves the
//! last acknowledged revision without the control plane resending anything.
//!
//! # Files
//!
//! - `snapshot-<R>.jsonl` — the model at revision R, checksummed (format in
//!   `snapshot.rs`). Only the newest one is used.
//! - `log-<S>.log` — a log segment: records of revisions >= S, each
//!   length-prefixed and checksummed (format in `record.rs`). A new segment
//!   starts at every snapshot, with S = R + 1.
//! - `snapshot-<R>.jsonl.tmp` — a snapshot being written; a leftover one is
//!   an interrupted compaction and is deleted on open.
//!
//! `<R>` and `<S>` are 20-digit zero-padded decimals, so names sort in
//! revision order.
//!
//! # Rules
//!
//! - [`StateDir::append`] writes a record and fsyncs it before it returns;
//!   the caller acknowledges the update only after that.
//! - Revisions are consecutive: each record is the last durable revision
//!   plus one. A snapshot may be at the last durable revision or later.
//! - On open, the newest snapshot is loaded and every record after it is
//!   replayed. A damaged record at the very end of the newest segment is a
//!   torn write (the crash came mid-append, so it was never acknowledged): it
//!   is cut off, reported in [`Recovered::torn_tail`] and logged. Damage
//!   anywhere else, a damaged newest snapshot, or missing revisions stop the
//!   open with a message that says how to recover; nothing is ever served
//!   from a damaged state.
//! - Compaction ([`StateDir::write_snapshot`]) is crash-safe at every step:
//!   temp file, fsync, atomic rename, directory fsync, new segment, then the
//!   covered segments and older snapshots are deleted.
//!
//! Updates are stored, not the models they produced: replay them through
//! `model::delta::apply_update`, the same function the live path uses, so the
//! recovered model is the acknowledged one. Only one process may use a state
//! directory at a time; nothing here locks it.

mod record;
mod snapshot;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::model::delta::Update;
use crate::model::SnapshotSpec;

const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".jsonl";
const SEGMENT_PREFIX: &str = "log-";
const SEGMENT_SUFFIX: &str = ".log";
const TMP_SUFFIX: &str = ".tmp";

fn snapshot_name(revision: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{revision:020}{SNAPSHOT_SUFFIX}")
}

fn segment_name(start: u64) -> String {
    format!("{SEGMENT_PREFIX}{start:020}{SEGMENT_SUFFIX}")
}

fn parse_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What [`StateDir::open`] found: the newest snapshot and the updates after
/// it, in revision order (consecutive, starting right after the snapshot).
/// The snapshot's model is read as `S` ([`StateDir::open_as`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered<S = SnapshotSpec> {
    pub snapshot: Option<(u64, S)>,
    pub updates: Vec<(u64, Update)>,
    /// A torn last record that was cut off (it was never acknowledged).
    pub torn_tail: Option<TornTail>,
}

impl<S> Recovered<S> {
    /// The last durable revision (0 for an empty state directory).
    pub fn revision(&self) -> u64 {
        self.updates
            .last()
            .map(|u| u.0)
            .or(self.snapshot.as_ref().map(|s| s.0))
            .unwrap_or(0)
    }
}

/// A damaged record at the end of the newest log segment, cut off on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    /// Where the damaged record started; the file now ends here.
    pub offset: u64,
    pub reason: String,
}

/// Why a state directory cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state dir {}: cannot {what}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        what: String,
        #[source]
        source: io::Error,
    },
    /// The directory's content is damaged or incomplete; the message says
    /// what to do.
    #[error("state dir {}: {message}", dir.display())]
    Corrupt { dir: PathBuf, message: String },
}

/// An open state directory, appending to its newest log segment.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// The newest segment, opened for appending.
    active: File,
    active_name: String,
    active_len: u64,
    /// The last durable revision.
    revision: u64,
    /// Records written since the newest snapshot.
    records_since_snapshot: u64,
    /// The newest snapshot's size in bytes (0 without one).
    snapshot_bytes: u64,
    /// Set when a write or fsync failed: what is on disk is then unknown
    /// (a failed fsync may have dropped pages), so nothing more is written
    /// until a restart re-reads the directory.
    poisoned: Option<String>,
}

/// The files of a state directory, each list ascending.
struct Listing {
    snapshots: Vec<u64>,
    segments: Vec<u64>,
    temps: Vec<String>,
}

impl StateDir {
    /// Opens (creating it if needed) a state directory and recovers what it
    /// holds. See the module docs for what is repaired and what is an error.
    pub fn open(dir: impl AsRef<Path>) -> Result<(StateDir, Recovered), StateDirError> {
        StateDir::open_as(dir)
    }

    /// [`Self::open`], reading the snapshot's model (JSON of a
    /// [`SnapshotSpec`]) as `S`: a restart reads it as
    /// [`crate::model::parse::StoredSnapshot`], which only validation reads
    /// and which takes a fraction of the time and memory of the spec.
    pub fn open_as<S: DeserializeOwned>(
        dir: impl AsRef<Path>,
    ) -> Result<(StateDir, Recovered<S>), StateDirError> {
        let dir = dir.as_ref().to_path_buf();
        let io_err = |what: String| {
            let dir = dir.clone();
            move |source| StateDirError::Io { dir, what, source }
        };
        let corrupt = |message: String| StateDirError::Corrupt {
            dir: dir.clone(),
            message,
        };
        fs::create_dir_all(&dir).map_err(io_err("create it".into()))?;
        let listing = list(&dir).map_err(io_err("list it".into()))?;

        for t in &listing.temps {
            match fs::remove_file(dir.join(t)) {
                Ok(()) => {
                    info!(dir = %dir.display(), file = %t, "removed an unfinished snapshot left by an interrupted compaction")
                }
                Err(e) => {
                    warn!(dir = %dir.display(), file = %t, error = %e, "cannot remove an unfinished snapshot; ignoring it")
                }
            }
        }

        // The newest snapshot, which must be sound.
        let mut snapshot_bytes = 0;
        let snapshot = match listing.snapshots.last() {
            None => None,
            Some(&rev) => {
                let name = snapshot_name(rev);
                let bytes = fs::read(dir.join(&name)).map_err(io_err(format!("read {name}")))?;
                snapshot_bytes = bytes.len() as u64;
                let how = "move it away to recover from an older snapshot and the log (if they \
                           still cover its revision), or restore the state dir from a backup";
                let (header_rev, spec) = snapshot::decode(&bytes)
                    .map_err(|why| corrupt(format!("{name} {why}; {how}")))?;
                if header_rev != rev {
                    return Err(corrupt(format!(
                        "{name} says it holds revision {header_rev}, not {rev}; {how}"
                    )));
                }
                Some((rev, spec))
            }
        };
        let base = snapshot.as_ref().map_or(0, |s| s.0);

        // The segments that may hold revisions after the snapshot: from the
        // newest one starting at or before base + 1. Older ones are covered
        // by the snapshot (left by an interrupted compaction) and not read.
        let first = match listing.segments.iter().rposition(|&s| s <= base + 1) {
            Some(i) => i,
            None if listing.segments.is_empty() => 0,
            None => {
                let oldest = listing.segments[0];
                let after = if snapshot.is_some() {
                    format!("the newest snapshot is at revision {base}")
                } else {
                    "there is no snapshot".to_string()
                };
                return Err(corrupt(format!(
                    "the oldest log segment, {}, starts at revision {oldest} but {after}: \
                     revisions {} to {} are missing; restore the state dir from a backup",
                    segment_name(oldest),
                    base + 1,
                    oldest - 1
                )));
            }
        };
        let relevant = &listing.segments[first..];

        let mut updates: Vec<(u64, Update)> = Vec::new();
        let mut torn_tail = None;
        let mut last_seen: Option<(u64, String)> = None;
        let mut revision = base;
        for (k, &start) in relevant.iter().enumerate() {
            let name = segment_name(start);
            let path = dir.join(&name);
            let buf = fs::read(&path).map_err(io_err(format!("read {name}")))?;
            let scan = record::scan(&buf);
            for (offset, r) in &scan.records {
                if let Some((prev, prev_name)) = &last_seen {
                    if r.revision <= *prev {
                        return Err(corrupt(format!(
                            "{name}: the record at offset {offset} is for revision {}, after \
                             revision {prev} (in {prev_name}): revisions must increase; restore \
                             the state dir from a backup",
                            r.revision
                        )));
                    }
                }
                last_seen = Some((r.revision, name.clone()));
                if r.revision <= base {
                    continue;
                }
                if r.revision != revision + 1 {
                    return Err(corrupt(format!(
                        "{name}: the record at offset {offset} is for revision {}, but the last \
                         revision before it is {revision}: the revisions in between are missing; \
                         restore the state dir from a backup",
                        r.revision
                    )));
                }
                let update: Update = serde_json::from_slice(r.json).map_err(|e| {
                    corrupt(format!(
                        "{name}: the record for revision {} at offset {offset} passes its \
                         checksum but cannot be decoded ({e}); it was written by an incompatible \
                         rolecall",
                        r.revision
                    ))
                })?;
                updates.push((r.revision, update));
                revision = r.revision;
            }
            let Some((offset, bad)) = scan.bad else {
                continue;
            };
            if let Some(next) = record::next_valid_after(&buf, offset) {
                return Err(corrupt(format!(
                    "{name}: the record at offset {offset} is damaged ({bad}) but a valid record \
                     follows at offset {next}, so this is damage inside the log, not a torn \
                     write; restore the state dir from a backup (or, to keep the revisions \
                     before it and lose the later ones, cut {name} at offset {offset})"
                )));
            }
            if k + 1 < relevant.len() {
                return Err(corrupt(format!(
                    "{name}: the record at offset {offset} is damaged ({bad}), and {name} is not \
                     the newest log segment; restore the state dir from a backup (or, to keep \
                     the revisions before it, remove the newer segments and cut {name} at \
                     offset {offset})"
                )));
            }
            // A torn last write: it was never acknowledged. Cut it off.
            let cut = || -> io::Result<()> {
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(offset as u64)?;
                f.sync_all()
            };
            cut().map_err(io_err(format!("cut the torn tail of {name}")))?;
            warn!(
                dir = %dir.display(),
                file = %name,
                offset,
                reason = %bad,
                kept_revision = revision,
                "cut off a torn last record: a write interrupted by a crash, never acknowledged"
            );
            torn_tail = Some(TornTail {
                file: path,
                offset: offset as u64,
                reason: bad.to_string(),
            });
        }

        let active_start = match relevant.last() {
            Some(&s) => s,
            None => {
                let start = base + 1;
                create_segment(&dir, start)
                    .map_err(io_err(format!("create {}", segment_name(start))))?;
                start
            }
        };
        let active_name = segment_name(active_start);
        let active = OpenOptions::new()
            .append(true)
            .open(dir.join(&active_name))
            .map_err(io_err(format!("open {active_name}")))?;
        let active_len = active
            .metadata()
            .map_err(io_err(format!("read the size of {active_name}")))?
            .len();

        let records_since_snapshot = updates.len() as u64;
        let state = StateDir {
            dir,
            active,
            active_name,
            active_len,
            revision,
            records_since_snapshot,
            snapshot_bytes,
            poisoned: None,
        };
        Ok((
            state,
            Recovered {
                snapshot,
                updates,
                torn_tail,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The last durable revision: the next record must be this plus one.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Size of the newest log segment, for deciding when to compact.
    pub fn log_bytes(&self) -> u64 {
        self.active_len
    }

    /// Records appended since the newest snapshot, for deciding when to
    /// compact.
    pub fn records_since_snapshot(&self) -> u64 {
        self.records_since_snapshot
    }

    /// Whether compacting is due: `every` records or more since the newest
    /// snapshot (0 never compacts), and a log a quarter of that snapshot's
    /// size or more. The second part keeps a large model from being
    /// rewritten whole every `every` small deltas (a million resources are
    /// some 80 MB of snapshot, a one-record delta a few hundred bytes of
    /// log), while a restart still replays at most that much log.
    pub fn compaction_due(&self, every: u64) -> bool {
        every > 0
            && self.records_since_snapshot >= every
            && self.active_len.saturating_mul(4) >= self.snapshot_bytes
    }

    fn check_usable(&self) -> io::Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(why) => Err(io::Error::other(format!(
                "state dir {}: an earlier write failed ({why}); nothing more is written until \
                 rolecall restarts and recovers what is on disk",
                self.dir.display()
            ))),
        }
    }

    /// Appends the update that produced `revision` and fsyncs it. When this
    /// returns `Ok`, the update survives a crash; acknowledge it only then.
    /// On an error the update must not be applied: the record is cut off
    /// again if possible, and the state directory refuses further writes.
    pub fn append(&mut self, revision: u64, update: &Update) -> io::Result<()> {
        self.check_usable()?;
        if revision != self.revision + 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "state dir {}: cannot append revision {revision}: the last durable revision \
                     is {} and revisions are consecutive",
                    self.dir.display(),
                    self.revision
                ),
            ));
        }
        // Streamed: a record of a whole model is never in memory at once.
        // A failure leaves a partial record, cut off below.
        let written = record::write(&self.active, revision, update)
            .and_then(|len| self.active.sync_data().map(|()| len));
        let len = match written {
            Ok(len) => len,
            Err(e) => {
                // Leave no partial record behind for the next append to follow.
                let _ = self.active.set_len(self.active_len);
                let _ = self.active.sync_all();
                let message = format!(
                    "state dir {}: cannot append revision {revision} to {}: {e}",
                    self.dir.display(),
                    self.active_name
                );
                self.poisoned = Some(e.to_string());
                return Err(io::Error::new(e.kind(), message));
            }
        };
        self.active_len += len as u64;
        self.revision = revision;
        self.records_since_snapshot += 1;
        Ok(())
    }

    /// Compaction: makes `spec` (the model at `revision`, which must be at
    /// least the last durable revision) the newest snapshot, starts a new
    /// log segment after it and deletes what it covers. Crash-safe at every
    /// step (see the module docs); when it returns `Ok` the snapshot is
    /// durable and the next record is `revision + 1`.
    pub fn write_snapshot(&mut self, revision: u64, spec: &SnapshotSpec) -> io::Result<()> {
        self.check_usable()?;
        if revision < self.revision {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "state dir {}: a snapshot at revision {revision} would drop the durable \
                     revisions up to {}",
                    self.dir.display(),
                    self.revision
                ),
            ));
        }
        let bytes = snapshot::encode(revision, spec).map_err(io::Error::other)?;
        let name = snapshot_name(revision);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let write_tmp = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        if let Err(e) = write_tmp().and_then(|()| fs::rename(&tmp, self.dir.join(&name))) {
            // Nothing has changed yet: the old snapshot and log still hold.
            let _ = fs::remove_file(&tmp);
            return Err(self.error(format!("write {name}"), e));
        }
        // From here on the new snapshot may be on disk: a failure leaves the
        // directory consistent, but the process's view of it is unsure.
        let start = revision + 1;
        let segment = segment_name(start);
        let switched = sync_dir(&self.dir).and_then(|()| {
            if segment != self.active_name {
                create_segment(&self.dir, start)?;
                self.active = OpenOptions::new()
                    .append(true)
                    .open(self.dir.join(&segment))?;
                self.active_name = segment.clone();
                self.active_len = self.active.metadata()?.len();
            }
            Ok(())
        });
        if let Err(e) = switched {
            self.poisoned = Some(e.to_string());
            return Err(self.error(format!("start {segment} after {name}"), e));
        }
        self.revision = revision;
        self.records_since_snapshot = 0;
        self.snapshot_bytes = bytes.len() as u64;
        self.remove_covered(revision);
        Ok(())
    }

    /// Deletes the segments and snapshots the newest snapshot covers. A
    /// failure here costs disk space only, so it is logged, not returned.
    fn remove_covered(&self, revision: u64) {
        let listing = match list(&self.dir) {
            Ok(l) => l,
            Err(e) => {
                warn!(dir = %self.dir.display(), error = %e, "cannot list the state dir to delete old log segments");
                return;
            }
        };
        let old_segments = listing
            .segments
            .iter()
            .map(|&s| segment_name(s))
            .filter(|n| *n != self.active_name);
        let old_snapshots = listing
            .snapshots
            .iter()
            .filter(|&&r| r < revision)
            .map(|&r| snapshot_name(r));
        for name in old_segments.chain(old_snapshots) {
            if let Err(e) = fs::remove_file(self.dir.join(&name)) {
                warn!(dir = %self.dir.display(), file = %name, error = %e, "cannot delete a file the newest snapshot covers");
            }
        }
        if let Err(e) = sync_dir(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "cannot fsync the state dir after deleting old files");
        }
    }

    fn error(&self, what: String, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("state dir {}: cannot {what}: {e}", self.dir.display()),
        )
    }
}

fn list(dir: &Path) -> io::Result<Listing> {
    let mut l = Listing {
        snapshots: Vec::new(),
        segments: Vec::new(),
        temps: Vec::new(),
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(TMP_SUFFIX) {
            l.temps.push(name);
        } else if let Some(r) = parse_name(&name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
            l.snapshots.push(r);
        } else if let Some(s) = parse_name(&name, SEGMENT_PREFIX, SEGMENT_SUFFIX) {
            l.segments.push(s);
        }
    }
    l.snapshots.sort_unstable();
    l.segments.sort_unstable();
    l.temps.sort();
    Ok(l)
}

/// Creates an empty segment (or keeps an existing one) and makes its name
/// durable before any record is acknowledged in it.
fn create_segment(dir: &Path, start: u64) -> io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(segment_name(start)))?;
    sync_dir(dir)
}

/// Makes the directory's entries (created, renamed, removed files) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::delta::{Delta, UpdateBody, UpdateSource};

    fn update(i: u64) -> Update {
        Update {
            request_id: format!("r{i}"),
            source: UpdateSource::Admin,
            expected_revision: None,
            body: UpdateBody::Delta(Delta {
                workspace: "w".into(),
                changes: vec![],
            }),
        }
    }

    #[test]
    fn names_sort_in_revision_order_and_parse_back() {
        assert_eq!(
            parse_name(&snapshot_name(42), SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX),
            Some(42)
        );
        assert_eq!(
            parse_name(&segment_name(u64::MAX), SEGMENT_PREFIX, SEGMENT_SUFFIX),
            Some(u64::MAX)
        );
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(
            parse_name("log-x.log", SEGMENT_PREFIX, SEGMENT_SUFFIX),
            None
        );
    }

    #[test]
    fn decreasing_revisions_in_the_log_are_a_hard_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = record::encode(1, &update(1)).unwrap();
        bytes.extend(record::encode(2, &update(2)).unwrap());
        bytes.extend(record::encode(2, &update(2)).unwrap());
        fs::write(dir.path().join(segment_name(1)), &bytes).unwrap();
        let err = StateDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("revisions must increase"), "{err}");
    }

    #[test]
    fn a_gap_in_revisions_is_a_hard_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = record::encode(1, &update(1)).unwrap();
        bytes.extend(record::encode(3, &update(3)).unwrap());
        fs::write(dir.path().join(segment_name(1)), &bytes).unwrap();
        let err = StateDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn a_snapshot_opened_as_stored_validates_to_the_same_model() {
        let spec: SnapshotSpec = crate::model::parse::from_text(
            "workspaces:\n  - id: w\n    labels: [a]\n    users: [{ id: u-1 }]\n    resources:\n      - { type: mini, id: m-1, labels: [a] }\n      - { type: record, id: \"r-\\\"1\\\"\", parent: m-1 }\n",
            "test",
        )
        .unwrap();
        let model = crate::model::validate_snapshot(&spec).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = StateDir::open(dir.path()).unwrap();
        s.write_snapshot(3, &spec).unwrap();
        drop(s);
        let (_, r) = StateDir::open_as::<crate::model::parse::StoredSnapshot>(dir.path()).unwrap();
        let (revision, stored) = r.snapshot.unwrap();
        assert_eq!(revision, 3);
        let restored = crate::model::validate::validate_stored(&stored).unwrap();
        let specs = |w: &[crate::model::Workspace]| {
            w.iter().map(|w| w.to_spec().unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(specs(&restored), specs(&model));
    }

    #[test]
    fn append_refuses_a_revision_that_does_not_follow() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = StateDir::open(dir.path()).unwrap();
        assert!(s.append(2, &update(2)).is_err());
        s.append(1, &update(1)).unwrap();
        assert!(s.append(1, &update(1)).is_err());
        assert_eq!(s.revision(), 1);
    }
}
