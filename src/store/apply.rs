//! The one write path (SPEC 4, 5 and 6): every accepted update goes through
//! [`Applier::apply`], one at a time, and every revision it publishes is
//! recorded for `Watch`.
//!
//! # One update, in order
//!
//! 1. Take the apply lock: one update at a time, across every Apply stream.
//! 2. On a blocking thread (it is CPU work): check `expected_revision`,
//!    resolve the update against the current model, validate and index
//!    the workspaces it writes with [`Snapshot::apply`] (the function the
//!    replay on start uses too, so the two cannot disagree). Every
//!    workspace it does not write is shared, `Arc` and all, with the
//!    current revision; a resource delta shares most of the workspace it
//!    writes too.
//! 3. Append it to the state dir's log, which fsyncs before it returns.
//! 4. Record its Watch event and publish the new revision.
//! 5. Release the lock. The caller answers only after this.
//!
//! A problem in 2 rejects the update with every problem found; a failed
//! append in 3 means the update is not applied (and the state dir refuses
//! every later write until a restart re-reads it). Either way nothing is
//! published and the model is unchanged.
//!
//! # Shared state and why each lock is what it is
//!
//! - `durable` is the apply lock: a `tokio::sync::Mutex` over the state dir
//!   (`None` without `--state-dir`), because it is held across the `.await`
//!   of the blocking task. Compaction takes it too, so a snapshot is always
//!   written between two appends, never during one.
//! - `events` is a `std::sync::Mutex` over a bounded ring of the newest
//!   revisions' events. It is taken briefly by the publisher and by Watch
//!   streams, never across an `.await`. A Watch stream that falls behind
//!   the ring is ended; it never slows an update down.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::Store;
use crate::durable::{Recovered, StateDir};
use crate::engine::Snapshot;
use crate::model::delta::{Update, UpdateBody};
use crate::model::{InvalidSnapshot, Problem, Rule};

/// How many revisions' events Watch can replay (and how far a Watch reader
/// may fall behind before it is ended with RESOURCE_EXHAUSTED).
pub const WATCH_BUFFER: usize = 1024;

/// Compact the state dir after this many logged updates, by default.
pub const DEFAULT_COMPACT_EVERY: u64 = 1000;

/// Why an update was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The update breaks rules (or expected another revision): every
    /// problem, in SPEC's words. Nothing changed.
    #[error("{0}")]
    Rejected(InvalidSnapshot),
    /// The state dir could not make it durable, so it was not applied; the
    /// state dir accepts no more writes until rolecall restarts.
    #[error("the update was not applied: {0}")]
    NotDurable(io::Error),
    /// The blocking task that applies updates panicked; nothing was
    /// published.
    #[error("the update was not applied: the apply task failed")]
    Failed,
}

/// One applied revision, as Watch sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub revision: u64,
    /// The update's `request_id` (empty for a revision with no update).
    pub request_id: String,
    /// `admin`, `directory`, or `bootstrap` for the model the sidecar
    /// started from; empty when not known.
    pub source: String,
    /// The ids of the workspaces it wrote, ascending.
    pub workspaces: Vec<String>,
    /// When it was applied; `None` for revisions replayed from the state
    /// dir (the log does not keep the time).
    pub time: Option<SystemTime>,
}

impl Event {
    /// The event of an accepted update.
    pub fn of_update(revision: u64, update: &Update, time: Option<SystemTime>) -> Event {
        Event {
            revision,
            request_id: update.request_id.clone(),
            source: update.source.as_str().to_string(),
            workspaces: update.workspaces().into_iter().map(String::from).collect(),
            time,
        }
    }

    /// The event of a model loaded at start (a snapshot file or the demo).
    pub fn bootstrap(revision: u64, snapshot: &Snapshot) -> Event {
        Event {
            revision,
            request_id: String::new(),
            source: "bootstrap".to_string(),
            workspaces: snapshot
                .workspaces()
                .iter()
                .map(|w| w.model.id.clone())
                .collect(),
            time: Some(SystemTime::now()),
        }
    }

    /// A revision published without an event (a restored compacted
    /// snapshot): only its number is known.
    fn bare(revision: u64) -> Event {
        Event {
            revision,
            request_id: String::new(),
            source: String::new(),
            workspaces: Vec::new(),
            time: None,
        }
    }
}

/// The newest revisions' events, for Watch.
///
/// Invariant: every revision from `first` up to the store's newest can be
/// answered: from the ring when it holds an event for it, as a bare event
/// (its number only) otherwise. Revisions below `first` are gone.
#[derive(Debug)]
pub struct Events {
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    events: VecDeque<Arc<Event>>,
    first: u64,
    capacity: usize,
}

impl Events {
    /// An empty ring of `capacity` events whose oldest answerable revision
    /// is `first` (1 for a fresh sidecar, the snapshot's revision for one
    /// restored from a compacted state dir).
    pub fn new(capacity: usize, first: u64) -> Events {
        Events {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                first: first.max(1),
                capacity: capacity.max(1),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the event of a revision about to be published (revisions
    /// ascending); the oldest event is dropped when the ring is full.
    pub fn record(&self, event: Event) {
        let mut ring = self.lock();
        if ring
            .events
            .back()
            .is_some_and(|e| e.revision >= event.revision)
        {
            return;
        }
        ring.events.push_back(Arc::new(event));
        while ring.events.len() > ring.capacity {
            if let Some(old) = ring.events.pop_front() {
                ring.first = ring.first.max(old.revision + 1);
            }
        }
    }

    /// The oldest revision Watch can still send.
    pub fn first(&self) -> u64 {
        self.lock().first
    }

    /// The event of `revision` (which must be published), or `None` when
    /// it is no longer held.
    fn get(&self, revision: u64) -> Option<Arc<Event>> {
        let ring = self.lock();
        if revision < ring.first {
            return None;
        }
        match ring.events.binary_search_by_key(&revision, |e| e.revision) {
            Ok(i) => Some(Arc::clone(&ring.events[i])),
            Err(_) => Some(Arc::new(Event::bare(revision))),
        }
    }
}

/// Why a Watch stream cannot start or go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("revision {from} is no longer retained for Watch (the oldest is {oldest}); Export the model and watch from its revision")]
    NotRetained { from: u64, oldest: u64 },
    #[error("the watcher fell behind: revision {next} is no longer buffered (the oldest is {oldest}, {buffer} revisions are kept); Export the model and watch again from its revision")]
    Lagged {
        next: u64,
        oldest: u64,
        buffer: usize,
    },
    #[error("the sidecar is shutting down")]
    Closing,
}

/// The serialized write path over a [`Store`]: see the module docs.
#[derive(Debug)]
pub struct Applier {
    store: Arc<Store>,
    /// The apply lock, over the state dir when there is one.
    durable: Arc<tokio::sync::Mutex<Option<StateDir>>>,
    events: Arc<Events>,
    /// Compact after this many logged updates (and see
    /// [`StateDir::compaction_due`]); 0 never compacts.
    compact_every: u64,
}

impl Applier {
    /// The write path over `store`, appending to `state` when given (whose
    /// last durable revision must be the store's revision).
    pub fn new(
        store: Arc<Store>,
        state: Option<StateDir>,
        events: Events,
        compact_every: u64,
    ) -> Applier {
        Applier {
            store,
            durable: Arc::new(tokio::sync::Mutex::new(state)),
            events: Arc::new(events),
            compact_every,
        }
    }

    /// A memory-only write path over `store` (no state dir).
    pub fn in_memory(store: Arc<Store>) -> Applier {
        let first = store.revision().max(1);
        Applier::new(store, None, Events::new(WATCH_BUFFER, first), 0)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// Applies one update (see the module docs) and returns its revision.
    pub async fn apply(&self, update: Update) -> Result<u64, ApplyError> {
        let mut durable = Arc::clone(&self.durable).lock_owned().await;
        let store = Arc::clone(&self.store);
        let events = Arc::clone(&self.events);
        let compact_every = self.compact_every;
        let (revision, compact_due) = tokio::task::spawn_blocking(move || {
            let revision = apply_locked(&store, durable.as_mut(), &events, &update);
            if matches!(update.body, UpdateBody::Snapshot(_)) {
                // A snapshot is a whole-model load: what it and its build
                // freed on this thread goes back to the OS, as after the
                // load at start.
                drop(update);
                crate::memory::release_freed();
            }
            let revision = revision?;
            let due = durable
                .as_ref()
                .is_some_and(|d| d.compaction_due(compact_every));
            Ok::<_, ApplyError>((revision, due))
        })
        .await
        .map_err(|_| ApplyError::Failed)??;
        if compact_due {
            self.spawn_compaction();
        }
        Ok(revision)
    }

    /// Compacts the state dir in the background, after the answer: it
    /// waits for the apply lock, so it never runs during an append.
    fn spawn_compaction(&self) {
        let durable = Arc::clone(&self.durable);
        let store = Arc::clone(&self.store);
        let every = self.compact_every;
        tokio::spawn(async move {
            let mut durable = durable.lock_owned().await;
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(dir) = durable.as_mut() {
                    if dir.compaction_due(every) {
                        compact(&store, dir);
                    }
                }
            })
            .await;
        });
    }

    /// Compacts the state dir now if it holds any logged update; for tests
    /// and tools. Returns whether a snapshot was written.
    pub async fn compact_now(&self) -> bool {
        self.compact_when(|dir| dir.records_since_snapshot() > 0)
            .await
    }

    /// Compacts the state dir now if compacting is due
    /// ([`StateDir::compaction_due`]; at start, after a long log was
    /// replayed).
    pub async fn compact_if_due(&self) -> bool {
        let every = self.compact_every;
        self.compact_when(move |dir| dir.compaction_due(every))
            .await
    }

    async fn compact_when(&self, due: impl FnOnce(&StateDir) -> bool + Send + 'static) -> bool {
        let mut durable = Arc::clone(&self.durable).lock_owned().await;
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || match durable.as_mut() {
            Some(dir) if due(dir) => compact(&store, dir),
            _ => false,
        })
        .await
        .unwrap_or(false)
    }

    /// A Watch reader from revision `from` (`None`: only revisions applied
    /// from now on; `Some(0)`: the oldest still held).
    pub fn watch(&self, from: Option<u64>) -> Result<Watcher, WatchError> {
        let published = self.store.subscribe();
        let oldest = self.events.first();
        let next = match from {
            None => *published.borrow() + 1,
            Some(0) => oldest,
            Some(from) if from < oldest => return Err(WatchError::NotRetained { from, oldest }),
            Some(from) => from,
        };
        Ok(Watcher {
            store: Arc::clone(&self.store),
            events: Arc::clone(&self.events),
            published,
            next,
        })
    }
}

/// Steps 2 to 4 of the module docs, under the apply lock.
fn apply_locked(
    store: &Store,
    state: Option<&mut StateDir>,
    events: &Events,
    update: &Update,
) -> Result<u64, ApplyError> {
    store.publish_with(|current, next| {
        let at = current.map_or(0, |v| v.revision);
        let mut problems = Vec::new();
        if let Some(expected) = update.expected_revision {
            if expected != at {
                problems.push(Problem::new(
                    Rule::Revision,
                    "",
                    format!("expected_revision {expected} but the sidecar is at {at}"),
                ));
            }
        }
        let mut snapshot = current.map(|v| v.snapshot.clone()).unwrap_or_default();
        let written = match snapshot.apply(update) {
            Ok(ws) => ws,
            Err(e) => {
                for p in e.problems.iter().filter(|p| p.rule == Rule::Internal) {
                    error!(request_id = %update.request_id, problem = %p, "an update is refused by a bug in rolecall");
                }
                problems.extend(e.problems);
                Vec::new()
            }
        };
        if !problems.is_empty() {
            return Err(ApplyError::Rejected(problems.into()));
        }
        for w in written {
            snapshot.insert(Arc::new(w));
        }
        if let Some(dir) = state {
            dir.append(next, update).map_err(|e| {
                error!(
                    revision = next,
                    request_id = %update.request_id,
                    error = %e,
                    "cannot make an update durable: it is not applied, and no more updates are \
                     accepted until rolecall restarts; reads go on at the last good revision"
                );
                ApplyError::NotDurable(e)
            })?;
        }
        events.record(Event::of_update(next, update, Some(SystemTime::now())));
        Ok(snapshot)
    })
}

/// Writes the current model as the state dir's snapshot. The apply lock is
/// held, so the store's revision is the state dir's last durable one.
fn compact(store: &Store, dir: &mut StateDir) -> bool {
    let Some(current) = store.current() else {
        return false;
    };
    if current.revision != dir.revision() {
        warn!(
            store = current.revision,
            state_dir = dir.revision(),
            "not compacting: the served revision is not the last durable one"
        );
        return false;
    }
    let records = dir.records_since_snapshot();
    let spec = match current.snapshot.to_spec() {
        Ok(spec) => spec,
        Err(e) => {
            error!(revision = current.revision, error = %e, "cannot compact the state dir");
            return false;
        }
    };
    match dir.write_snapshot(current.revision, &spec) {
        Ok(()) => {
            info!(
                revision = current.revision,
                records, "compacted the state dir into a snapshot"
            );
            true
        }
        Err(e) => {
            error!(revision = current.revision, error = %e, "cannot compact the state dir");
            false
        }
    }
}

/// One Watch reader's position. It never holds anything up: a reader that
/// falls behind the event ring is told so and must start again.
#[derive(Debug)]
pub struct Watcher {
    store: Arc<Store>,
    events: Arc<Events>,
    published: watch::Receiver<u64>,
    next: u64,
}

impl Watcher {
    /// The next revision this reader will get.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next applied revision's event, waiting until it is applied.
    pub async fn next(&mut self) -> Result<Arc<Event>, WatchError> {
        loop {
            if self.store.is_closing() {
                return Err(WatchError::Closing);
            }
            if *self.published.borrow_and_update() >= self.next {
                break;
            }
            tokio::select! {
                changed = self.published.changed() => {
                    if changed.is_err() {
                        return Err(WatchError::Closing);
                    }
                }
                () = self.store.closed() => return Err(WatchError::Closing),
            }
        }
        match self.events.get(self.next) {
            Some(e) => {
                self.next += 1;
                Ok(e)
            }
            None => Err(self.lagged()),
        }
    }

    /// Completes when the reader has fallen behind (the next revision it
    /// needs was dropped from the ring) or the sidecar shuts down: what a
    /// stream waits on while its reader is not reading.
    pub async fn fallen_behind(&mut self) -> WatchError {
        loop {
            if self.store.is_closing() {
                return WatchError::Closing;
            }
            if self.events.first() > self.next {
                return self.lagged();
            }
            tokio::select! {
                changed = self.published.changed() => {
                    if changed.is_err() {
                        return WatchError::Closing;
                    }
                }
                () = self.store.closed() => return WatchError::Closing,
            }
        }
    }

    fn lagged(&self) -> WatchError {
        WatchError::Lagged {
            next: self.next,
            oldest: self.events.first(),
            buffer: self.events.lock().capacity,
        }
    }
}

/// Why the state dir's content cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("the snapshot at revision {revision} is not a valid model ({source}); restore the state dir from a backup")]
    Snapshot {
        revision: u64,
        source: InvalidSnapshot,
    },
    #[error("the logged update for revision {revision} (request \"{request_id}\") does not apply to the model before it ({source}); restore the state dir from a backup")]
    Replay {
        revision: u64,
        request_id: String,
        source: InvalidSnapshot,
    },
}

/// The model a state dir holds, rebuilt.
#[derive(Debug)]
pub struct Restored {
    /// The last durable revision: the one to serve.
    pub revision: u64,
    pub snapshot: Snapshot,
    /// Revisions before it, as rebuilt on the way, oldest first, for
    /// `exact` reads and page tokens across a restart: at most `keep - 1`,
    /// and none from before the state dir's snapshot (compaction).
    pub earlier: Vec<(u64, Snapshot)>,
    /// Events for Watch: the oldest revision still answerable, and the
    /// replayed updates'.
    pub events: Events,
    /// How many logged updates were replayed.
    pub replayed: usize,
}

/// Rebuilds the model from what [`StateDir::open`] recovered: the snapshot,
/// then every logged update through [`Snapshot::apply`] (ignoring
/// `expected_revision`, which was checked when it was accepted). `None`
/// for an empty state dir. An update that no longer applies is a hard error:
/// the sidecar never serves a model other than the acknowledged one.
/// The last `keep` revisions rebuilt are returned (at least the last).
pub fn restore(recovered: &Recovered, keep: usize) -> Result<Option<Restored>, RecoverError> {
    restore_with(recovered, keep, Snapshot::from_spec)
}

/// [`restore`] for a state dir opened with [`StateDir::open_as`]: `build`
/// validates and indexes its snapshot.
pub fn restore_with<S>(
    recovered: &Recovered<S>,
    keep: usize,
    build: impl FnOnce(&S) -> Result<Snapshot, InvalidSnapshot>,
) -> Result<Option<Restored>, RecoverError> {
    if recovered.snapshot.is_none() && recovered.updates.is_empty() {
        return Ok(None);
    }
    let (base, mut snapshot) = match &recovered.snapshot {
        Some((revision, spec)) => {
            let snapshot = build(spec).map_err(|source| RecoverError::Snapshot {
                revision: *revision,
                source,
            })?;
            (*revision, snapshot)
        }
        None => (0, Snapshot::default()),
    };
    let events = Events::new(WATCH_BUFFER, base.max(1));
    let mut revision = base;
    // A snapshot shares every workspace an update did not rebuild, so
    // keeping a few costs what the running store's history costs.
    let mut earlier = VecDeque::new();
    let keep_earlier = keep.saturating_sub(1);
    for (r, update) in &recovered.updates {
        if keep_earlier > 0 && revision > 0 {
            if earlier.len() == keep_earlier {
                earlier.pop_front();
            }
            earlier.push_back((revision, snapshot.clone()));
        }
        let written = snapshot
            .apply(update)
            .map_err(|source| RecoverError::Replay {
                revision: *r,
                request_id: update.request_id.clone(),
                source,
            })?;
        for w in written {
            snapshot.insert(Arc::new(w));
        }
        events.record(Event::of_update(*r, update, None));
        revision = *r;
    }
    Ok(Some(Restored {
        revision,
        snapshot,
        earlier: earlier.into(),
        events,
        replayed: recovered.updates.len(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::delta::{Change, Delta, UpdateBody, UpdateSource};
    use crate::store::Retention;

    const MODEL: &str = "workspaces:
  - id: w
    users:
      - { id: u-admin, bindings: [{ role: admin }] }
";

    fn store() -> Arc<Store> {
        let store = Arc::new(Store::new(Retention::default()));
        let spec = crate::model::parse::from_text(MODEL, "test").unwrap();
        store.publish(Snapshot::from_spec(&spec).unwrap());
        store
    }

    fn label(i: u64, expected: Option<u64>) -> Update {
        Update {
            request_id: format!("r{i}"),
            source: UpdateSource::Admin,
            expected_revision: expected,
            body: UpdateBody::Delta(Delta {
                workspace: "w".into(),
                changes: vec![Change::UpsertLabel(format!("l{i}"))],
            }),
        }
    }

    #[tokio::test]
    async fn updates_get_consecutive_revisions_and_stale_ones_are_rejected() {
        let a = Applier::in_memory(store());
        assert_eq!(a.apply(label(1, Some(1))).await.unwrap(), 2);
        assert_eq!(a.apply(label(2, None)).await.unwrap(), 3);
        let err = a.apply(label(3, Some(1))).await.unwrap_err().to_string();
        assert!(
            err.contains("expected_revision 1 but the sidecar is at 3"),
            "{err}"
        );
        assert_eq!(a.store().revision(), 3);
    }

    #[tokio::test]
    async fn untouched_workspaces_are_shared_between_revisions() {
        let store = store();
        let spec = crate::model::parse::from_text(
            "workspaces: [{ id: w }, { id: v, users: [{ id: u, bindings: [{ role: admin }] }] }]",
            "test",
        )
        .unwrap();
        store.publish(Snapshot::from_spec(&spec).unwrap());
        let before = store.current().unwrap();
        let a = Applier::in_memory(Arc::clone(&store));
        a.apply(label(1, None)).await.unwrap();
        let after = store.current().unwrap();
        let v = |s: &Arc<super::super::Versioned>| Arc::clone(s.snapshot.workspace("v").unwrap());
        assert!(Arc::ptr_eq(&v(&before), &v(&after)));
    }

    #[tokio::test]
    async fn a_watcher_gets_events_in_order_and_a_slow_one_is_told_it_lagged() {
        let store = store();
        let a = Applier::new(Arc::clone(&store), None, Events::new(3, 1), 0);
        let mut early = a.watch(Some(2)).unwrap();
        let mut live = a.watch(None).unwrap();
        a.apply(label(1, None)).await.unwrap();
        let e = live.next().await.unwrap();
        assert_eq!((e.revision, e.request_id.as_str()), (2, "r1"));
        assert_eq!(e.workspaces, vec!["w".to_string()]);
        for i in 2..=6 {
            a.apply(label(i, None)).await.unwrap();
        }
        // The ring holds revisions 5..=7 now: the early reader fell behind.
        assert!(matches!(
            early.fallen_behind().await,
            WatchError::Lagged {
                next: 2,
                oldest: 5,
                ..
            }
        ));
        assert!(matches!(early.next().await, Err(WatchError::Lagged { .. })));
        assert!(matches!(
            a.watch(Some(4)),
            Err(WatchError::NotRetained { from: 4, oldest: 5 })
        ));
        let mut from_oldest = a.watch(Some(0)).unwrap();
        assert_eq!(from_oldest.next().await.unwrap().revision, 5);
        store.close();
        assert!(matches!(
            a.watch(None).unwrap().next().await,
            Err(WatchError::Closing)
        ));
    }

    #[tokio::test]
    async fn an_update_that_cannot_be_logged_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = store();
        // The state dir is at revision 0, the store at 1: the append of
        // revision 2 is refused, as a failed write would be.
        let (state, _) = StateDir::open(dir.path()).unwrap();
        let a = Applier::new(Arc::clone(&store), Some(state), Events::new(8, 1), 0);
        let mut watcher = a.watch(None).unwrap();
        let err = a.apply(label(1, None)).await.unwrap_err();
        assert!(matches!(err, ApplyError::NotDurable(_)), "{err}");
        assert_eq!(store.revision(), 1);
        assert!(store
            .current()
            .unwrap()
            .snapshot
            .to_spec()
            .unwrap()
            .workspaces[0]
            .labels
            .is_empty());
        assert_eq!(a.events().first(), 1);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), watcher.next())
                .await
                .is_err(),
            "no event for an update that was not applied"
        );
    }

    #[tokio::test]
    async fn durable_updates_replay_to_the_same_model_and_compaction_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store();
        let (mut state, _) = StateDir::open(dir.path()).unwrap();
        state
            .write_snapshot(1, &store.current().unwrap().snapshot.to_spec().unwrap())
            .unwrap();
        let a = Applier::new(Arc::clone(&store), Some(state), Events::new(8, 1), 0);
        for i in 1..=3 {
            a.apply(label(i, None)).await.unwrap();
        }
        let model = store.current().unwrap().snapshot.to_spec().unwrap();
        let check = |dir: &std::path::Path| {
            let (_, recovered) = StateDir::open(dir).unwrap();
            let restored = restore(&recovered, 1).unwrap().unwrap();
            assert_eq!(restored.revision, 4);
            assert_eq!(restored.snapshot.to_spec().unwrap(), model);
            restored
        };
        let r = check(dir.path());
        assert_eq!(r.replayed, 3);
        assert_eq!(r.events.get(3).unwrap().request_id, "r2");
        assert!(a.compact_now().await);
        assert_eq!(check(dir.path()).replayed, 0);
    }
}
