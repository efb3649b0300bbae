//! The state directory: what is appended comes back after a reopen, torn
//! tails are cut, damage elsewhere stops the open, and compaction is
//! crash-safe at each step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use rolecall::durable::{Recovered, StateDir};
use rolecall::model::delta::{Change, Delta, Update, UpdateBody, UpdateSource};
use rolecall::model::spec::{ResourceSpec, SnapshotSpec, WorkspaceSpec};

fn update(i: u64) -> Update {
    Update {
        request_id: format!("req-{i}"),
        source: if i % 2 == 0 {
            UpdateSource::Admin
        } else {
            UpdateSource::Directory
        },
        expected_revision: Some(i - 1),
        body: UpdateBody::Delta(Delta {
            workspace: "sunrise-care".into(),
            changes: vec![
                Change::UpsertLabel(format!("label-{i}")),
                Change::UpsertResource(ResourceSpec {
                    type_: "mini".into(),
                    id: format!("m-{i}"),
                    parent: None,
                    labels: vec![format!("label-{i}")],
                }),
            ],
        }),
    }
}

fn spec(n: u64) -> SnapshotSpec {
    SnapshotSpec {
        workspaces: vec![WorkspaceSpec {
            id: "sunrise-care".into(),
            labels: (1..=n).map(|i| format!("label-{i}")).collect(),
            ..Default::default()
        }],
    }
}

fn open(dir: &Path) -> (StateDir, Recovered) {
    StateDir::open(dir).unwrap()
}

fn open_err(dir: &Path) -> String {
    match StateDir::open(dir) {
        Ok((_, r)) => panic!("expected an error, recovered {r:?}"),
        Err(e) => e.to_string(),
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// The only log segment of a directory.
fn segment(dir: &Path) -> PathBuf {
    let logs: Vec<String> = files(dir)
        .into_iter()
        .filter(|f| f.starts_with("log-"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    dir.join(&logs[0])
}

fn expected(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Update)> {
    range.map(|i| (i, update(i))).collect()
}

/// A directory with revisions 1..=n appended, and the offset of each record.
fn with_records(n: u64) -> (tempfile::TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = open(dir.path());
    let mut offsets = Vec::new();
    for i in 1..=n {
        offsets.push(s.log_bytes());
        s.append(i, &update(i)).unwrap();
    }
    offsets.push(s.log_bytes());
    (dir, offsets)
}

/// A copy of a directory's single segment, changed by `edit`, in a new dir.
fn copy_with(src: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> tempfile::TempDir {
    let seg = segment(src);
    let mut bytes = fs::read(&seg).unwrap();
    edit(&mut bytes);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(seg.file_name().unwrap()), bytes).unwrap();
    dir
}

#[test]
fn an_empty_dir_opens_at_revision_zero() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (s, r) = open(&state);
    assert_eq!(s.revision(), 0);
    assert_eq!(r.revision(), 0);
    assert_eq!(r.snapshot, None);
    assert!(r.updates.is_empty());
    assert_eq!(r.torn_tail, None);
}

#[test]
fn appended_updates_come_back_after_reopen() {
    let (dir, _) = with_records(20);
    let (s, r) = open(dir.path());
    assert_eq!(r.updates, expected(1..=20));
    assert_eq!(r.snapshot, None);
    assert_eq!(r.torn_tail, None);
    assert_eq!(s.revision(), 20);
    assert_eq!(r.revision(), 20);
}

#[test]
fn revision_survives_reopen_and_appends_continue_from_it() {
    let (dir, _) = with_records(3);
    {
        let (mut s, _) = open(dir.path());
        assert_eq!(s.revision(), 3);
        let err = s.append(3, &update(3)).unwrap_err().to_string();
        assert!(err.contains("consecutive"), "{err}");
        s.append(4, &update(4)).unwrap();
    }
    let (s, r) = open(dir.path());
    assert_eq!(s.revision(), 4);
    assert_eq!(r.updates, expected(1..=4));
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_cut() {
    let (src, offsets) = with_records(4);
    let (last_start, end) = (offsets[3] as usize, offsets[4] as usize);
    for cut in last_start..end {
        let dir = copy_with(src.path(), |b| b.truncate(cut));
        let (mut s, r) = open(dir.path());
        assert_eq!(r.updates, expected(1..=3), "cut at {cut}");
        assert_eq!(s.revision(), 3);
        let seg = segment(dir.path());
        if cut == last_start {
            assert_eq!(r.torn_tail, None, "a clean end at {cut}");
        } else {
            let t = r
                .torn_tail
                .unwrap_or_else(|| panic!("cut at {cut} not reported"));
            assert_eq!(t.offset, last_start as u64);
            assert_eq!(t.file, seg);
            assert!(t.reason.contains("short"), "{}", t.reason);
        }
        // The torn bytes are gone from disk, and the log goes on.
        assert_eq!(fs::metadata(&seg).unwrap().len(), last_start as u64);
        s.append(4, &update(4)).unwrap();
        drop(s);
        let (_, r) = open(dir.path());
        assert_eq!(r.updates, expected(1..=4), "after cut at {cut}");
        assert_eq!(r.torn_tail, None);
    }
}

#[test]
fn a_bit_flip_anywhere_in_the_last_record_is_cut() {
    let (src, offsets) = with_records(4);
    let (last_start, end) = (offsets[3] as usize, offsets[4] as usize);
    for at in last_start..end {
        let dir = copy_with(src.path(), |b| b[at] ^= 0x10);
        let (s, r) = open(dir.path());
        assert_eq!(r.updates, expected(1..=3), "flip at {at}");
        assert_eq!(s.revision(), 3);
        let t = r
            .torn_tail
            .unwrap_or_else(|| panic!("flip at {at} not reported"));
        assert_eq!(t.offset, last_start as u64);
    }
}

#[test]
fn a_bit_flip_anywhere_in_a_middle_record_is_a_hard_error() {
    let (src, offsets) = with_records(4);
    for at in offsets[1] as usize..offsets[2] as usize {
        let dir = copy_with(src.path(), |b| b[at] ^= 0x10);
        let err = open_err(dir.path());
        assert!(err.contains("damage inside the log"), "flip at {at}: {err}");
        assert!(err.contains("restore the state dir from a backup"), "{err}");
        assert!(err.contains(&format!("offset {}", offsets[1])), "{err}");
    }
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    let (src, offsets) = with_records(2);
    for garbage in [
        vec![0u8; 4096],
        vec![0xffu8; 7],
        b"{\"not\":\"a record\"}".to_vec(),
    ] {
        let dir = copy_with(src.path(), |b| b.extend(&garbage));
        let (_, r) = open(dir.path());
        assert_eq!(r.updates, expected(1..=2));
        assert_eq!(r.torn_tail.unwrap().offset, offsets[2]);
    }
}

#[test]
fn compaction_then_reopen_gives_the_snapshot_and_the_later_records() {
    let (dir, _) = with_records(5);
    {
        let (mut s, _) = open(dir.path());
        s.write_snapshot(5, &spec(5)).unwrap();
        assert_eq!(s.records_since_snapshot(), 0);
        s.append(6, &update(6)).unwrap();
        s.append(7, &update(7)).unwrap();
    }
    assert_eq!(
        files(dir.path()),
        vec![
            "log-00000000000000000006.log".to_string(),
            "snapshot-00000000000000000005.jsonl".to_string(),
        ]
    );
    let (s, r) = open(dir.path());
    assert_eq!(r.snapshot, Some((5, spec(5))));
    assert_eq!(r.updates, expected(6..=7));
    assert_eq!(s.revision(), 7);
    assert_eq!(s.records_since_snapshot(), 2);
}

#[test]
fn a_second_compaction_replaces_the_first() {
    let (dir, _) = with_records(2);
    let (mut s, _) = open(dir.path());
    s.write_snapshot(2, &spec(2)).unwrap();
    s.append(3, &update(3)).unwrap();
    s.write_snapshot(3, &spec(3)).unwrap();
    // Compacting twice at the same revision keeps the same segment.
    s.write_snapshot(3, &spec(3)).unwrap();
    s.append(4, &update(4)).unwrap();
    drop(s);
    assert_eq!(
        files(dir.path()),
        vec![
            "log-00000000000000000004.log".to_string(),
            "snapshot-00000000000000000003.jsonl".to_string(),
        ]
    );
    let (_, r) = open(dir.path());
    assert_eq!(r.snapshot, Some((3, spec(3))));
    assert_eq!(r.updates, expected(4..=4));
}

#[test]
fn a_snapshot_may_start_an_empty_dir_but_never_drop_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = open(dir.path());
    s.write_snapshot(1, &spec(1)).unwrap();
    s.append(2, &update(2)).unwrap();
    let err = s.write_snapshot(1, &spec(1)).unwrap_err().to_string();
    assert!(err.contains("would drop"), "{err}");
    drop(s);
    let (s, r) = open(dir.path());
    assert_eq!(r.snapshot, Some((1, spec(1))));
    assert_eq!(r.updates, expected(2..=2));
    assert_eq!(s.revision(), 2);
}

#[test]
fn a_stray_snapshot_temp_file_is_ignored_and_removed() {
    let (dir, _) = with_records(3);
    let stray = dir.path().join("snapshot-00000000000000000003.jsonl.tmp");
    fs::write(&stray, b"{\"format\":\"rolecall-snapshot\",\"vers").unwrap();
    let (s, r) = open(dir.path());
    assert_eq!(r.snapshot, None);
    assert_eq!(r.updates, expected(1..=3));
    assert_eq!(s.revision(), 3);
    assert!(!stray.exists());
}

/// Crash after the snapshot's rename, before the new segment: the old
/// segment (all covered) is still the newest and appends go on in it.
#[test]
fn a_crash_before_the_new_segment_recovers_from_the_snapshot() {
    let (dir, _) = with_records(5);
    let old_log = fs::read(segment(dir.path())).unwrap();
    let other = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = open(dir.path());
        s.write_snapshot(5, &spec(5)).unwrap();
    }
    // `other` = the old log plus the new snapshot, and nothing else.
    fs::write(other.path().join("log-00000000000000000001.log"), &old_log).unwrap();
    let snap = "snapshot-00000000000000000005.jsonl";
    fs::copy(dir.path().join(snap), other.path().join(snap)).unwrap();
    {
        let (mut s, r) = open(other.path());
        assert_eq!(r.snapshot, Some((5, spec(5))));
        assert!(r.updates.is_empty());
        assert_eq!(s.revision(), 5);
        s.append(6, &update(6)).unwrap();
    }
    let (_, r) = open(other.path());
    assert_eq!(r.updates, expected(6..=6));
}

/// Crash after the new segment, before the covered files are deleted.
#[test]
fn a_crash_before_the_deletes_ignores_the_covered_files() {
    let (dir, _) = with_records(5);
    let old_log = fs::read(segment(dir.path())).unwrap();
    {
        let (mut s, _) = open(dir.path());
        s.write_snapshot(4, &spec(4)).unwrap_err(); // behind revision 5
        s.write_snapshot(5, &spec(5)).unwrap();
        s.append(6, &update(6)).unwrap();
    }
    fs::write(dir.path().join("log-00000000000000000001.log"), &old_log).unwrap();
    // An older snapshot that was not deleted yet, and is damaged: unused.
    fs::write(
        dir.path().join("snapshot-00000000000000000002.jsonl"),
        b"junk",
    )
    .unwrap();
    let (mut s, r) = open(dir.path());
    assert_eq!(r.snapshot, Some((5, spec(5))));
    assert_eq!(r.updates, expected(6..=6));
    // The next compaction finishes the cleanup.
    s.write_snapshot(6, &spec(6)).unwrap();
    assert_eq!(
        files(dir.path()),
        vec![
            "log-00000000000000000007.log".to_string(),
            "snapshot-00000000000000000006.jsonl".to_string(),
        ]
    );
}

#[test]
fn a_damaged_snapshot_is_a_hard_error_that_says_how_to_recover() {
    let (dir, _) = with_records(2);
    {
        let (mut s, _) = open(dir.path());
        s.write_snapshot(2, &spec(2)).unwrap();
    }
    let path = dir.path().join("snapshot-00000000000000000002.jsonl");
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let err = open_err(dir.path());
    assert!(
        err.contains("snapshot-00000000000000000002.jsonl fails its checksum"),
        "{err}"
    );
    assert!(err.contains("move it away"), "{err}");
    assert!(err.contains("restore the state dir from a backup"), "{err}");

    fs::write(&path, &bytes[..n / 2]).unwrap();
    let err = open_err(dir.path());
    assert!(err.contains("is truncated"), "{err}");
}

#[test]
fn a_log_that_does_not_reach_back_to_the_snapshot_is_a_hard_error() {
    let (dir, _) = with_records(3);
    {
        let (mut s, _) = open(dir.path());
        s.write_snapshot(3, &spec(3)).unwrap();
        s.append(4, &update(4)).unwrap();
    }
    // Moving the only snapshot away leaves revisions 1..=3 nowhere.
    fs::remove_file(dir.path().join("snapshot-00000000000000000003.jsonl")).unwrap();
    let err = open_err(dir.path());
    assert!(err.contains("revisions 1 to 3 are missing"), "{err}");
}

#[test]
fn damage_at_the_end_of_an_older_segment_is_a_hard_error() {
    let (dir, offsets) = with_records(3);
    let seg = segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    bytes.truncate(offsets[2] as usize + 5);
    fs::write(&seg, &bytes).unwrap();
    // A newer segment (as if the log had moved on after revision 2).
    fs::write(dir.path().join("log-00000000000000000003.log"), b"").unwrap();
    let err = open_err(dir.path());
    assert!(err.contains("not the newest log segment"), "{err}");
}

#[test]
fn a_large_snapshot_update_round_trips() {
    let big = rolecall::gen::generate(&rolecall::gen::GenOptions::default());
    let u = Update {
        request_id: "bootstrap".into(),
        source: UpdateSource::Admin,
        expected_revision: None,
        body: UpdateBody::Snapshot(big.clone()),
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = open(dir.path());
        s.append(1, &u).unwrap();
        s.write_snapshot(1, &big).unwrap();
        s.append(2, &u).unwrap();
    }
    let (_, r) = open(dir.path());
    assert_eq!(r.snapshot, Some((1, big)));
    assert_eq!(r.updates, vec![(2, u)]);
}

#[test]
fn compaction_is_due_after_enough_records_and_a_quarter_of_the_snapshot_in_log() {
    let (dir, _) = with_records(2);
    let (mut s, _) = open(dir.path());
    // No snapshot yet: the record count alone decides.
    assert!(!s.compaction_due(3));
    assert!(s.compaction_due(2));
    assert!(!s.compaction_due(0), "0 never compacts");

    // A snapshot far larger than a record: the log must grow to a quarter
    // of it, whatever the count.
    s.write_snapshot(2, &spec(2000)).unwrap();
    let snapshot_bytes = fs::metadata(dir.path().join("snapshot-00000000000000000002.jsonl"))
        .unwrap()
        .len();
    let mut r = 2;
    while s.log_bytes() * 4 < snapshot_bytes {
        assert!(
            !s.compaction_due(1),
            "due with {} log bytes against a {snapshot_bytes}-byte snapshot",
            s.log_bytes()
        );
        r += 1;
        s.append(r, &update(r)).unwrap();
    }
    assert!(s.compaction_due(1));
    assert!(
        !s.compaction_due(r - 1),
        "and the record count still counts"
    );
    // Reopened, the sizes are read back from the files.
    drop(s);
    let (s, _) = open(dir.path());
    assert!(s.compaction_due(1));
}
