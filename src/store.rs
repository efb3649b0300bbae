//! The current model and the revisions kept for `exact` reads and page
//! tokens (SPEC 4).
//!
//! # Shared state and why each lock is what it is
//!
//! - `current` is one [`ArcSwapOption`]: every RPC loads it once, lock-free,
//!   and answers from that version. Only [`Store::publish`] (and its
//!   siblings) store into it.
//! - `writer` is a `std::sync::Mutex` that serializes publishers: revision
//!   numbers are handed out in order and a builder closure sees the model it
//!   replaces. Readers never take it. Nothing asynchronous happens while it
//!   is held.
//! - `history` is a `std::sync::Mutex` over the retained revisions. It is
//!   taken only by publishers (to push and prune) and by `exact` reads and
//!   page tokens (a binary search), never across an `.await`, so the plain
//!   `latest` path never touches it.
//! - `published` is a `tokio::sync::watch` of the newest revision, so that
//!   `at_least` readers (and the health reporter, and later the admin
//!   `Watch` stream) wait without polling.
//! - `closing` wakes every `at_least` waiter (and every admin stream: Apply
//!   and Watch) when the server shuts down, so the drain is not held up by
//!   calls that are only waiting.
//!
//! [`apply`] is the one write path on top of this: the admin apply lock,
//! validation, the durable log, compaction, and the events Watch sends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use crate::engine::Snapshot;

pub mod apply;

/// One published revision of the model. Immutable once published.
#[derive(Debug)]
pub struct Versioned {
    /// Only grows; survives restarts once durable state restores it.
    pub revision: u64,
    pub snapshot: Snapshot,
    /// When it was published: retention by age counts from the moment a
    /// revision is *replaced*, which is the next revision's `applied_at`.
    pub applied_at: Instant,
    /// `revision` in decimal, formatted once here rather than per answer.
    revision_text: Box<str>,
}

impl Versioned {
    /// `revision` in decimal, as answers carry it on the wire.
    #[inline]
    pub fn revision_text(&self) -> &str {
        &self.revision_text
    }
}

/// Which revision a read may be answered at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// The newest revision.
    #[default]
    Latest,
    /// The newest revision, once it is at least this one (read-your-writes).
    AtLeast(u64),
    /// Exactly this revision, if it is still retained.
    Exact(u64),
}

/// How long replaced revisions stay readable with `exact` and page tokens.
///
/// A replaced revision is kept while it is one of the last `revisions`
/// revisions (the current one counts) *or* was replaced less than `max_age`
/// ago. Age-based retention is capped at [`MAX_RETAINED`] revisions so a
/// burst of updates cannot grow memory without bound. Revisions share every
/// workspace they did not change, so retaining them is cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub revisions: usize,
    pub max_age: Duration,
}

/// The most revisions kept by age, whatever `--retain-seconds` says.
pub const MAX_RETAINED: usize = 1024;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            revisions: 64,
            max_age: Duration::from_secs(300),
        }
    }
}

/// Why a read could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no model is loaded yet")]
    NoModel,
    #[error("revision {wanted} is too old: it is no longer retained (latest is {latest}, oldest retained is {oldest})")]
    NotRetained {
        wanted: u64,
        latest: u64,
        oldest: u64,
    },
    #[error("revision {wanted} has not been applied yet (latest is {latest})")]
    NotYetApplied { wanted: u64, latest: u64 },
    #[error("revision {wanted} was not applied within {waited_ms} ms (latest is {latest})")]
    NotReached {
        wanted: u64,
        latest: u64,
        waited_ms: u128,
    },
    #[error("the sidecar is shutting down")]
    Closing,
    #[error("revision {given} does not follow the current revision {current}")]
    RevisionNotAfter { given: u64, current: u64 },
}

/// The current model, the retained revisions, and the revision counter.
#[derive(Debug)]
pub struct Store {
    current: ArcSwapOption<Versioned>,
    /// The last revision handed out (0 before the first). Publishers hold
    /// this lock from choosing a revision until it is visible.
    writer: Mutex<u64>,
    /// Retained revisions, ascending; the last one is `current`.
    history: Mutex<VecDeque<Arc<Versioned>>>,
    retention: Retention,
    /// The newest published revision (0: none yet).
    published: watch::Sender<u64>,
    closing: watch::Sender<bool>,
}

impl Store {
    /// An empty store whose first publish is revision 1.
    pub fn new(retention: Retention) -> Store {
        Store::starting_after(retention, 0)
    }

    /// An empty store whose first publish is `last_revision + 1`: durable
    /// state that restored revision R passes R here (or uses
    /// [`Store::restore`] to serve R itself).
    pub fn starting_after(retention: Retention, last_revision: u64) -> Store {
        Store {
            current: ArcSwapOption::empty(),
            writer: Mutex::new(last_revision),
            history: Mutex::new(VecDeque::new()),
            retention,
            published: watch::channel(0).0,
            closing: watch::channel(false).0,
        }
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The newest revision, lock-free, for one quick call. Hold the guard
    /// only for the call's synchronous part; use [`Store::current`] for
    /// anything that crosses an `.await`.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Option<Arc<Versioned>>> {
        self.current.load()
    }

    /// The newest revision, owned.
    pub fn current(&self) -> Option<Arc<Versioned>> {
        self.current.load_full()
    }

    /// The newest revision number, 0 when no model is loaded.
    pub fn revision(&self) -> u64 {
        *self.published.borrow()
    }

    /// A receiver of the newest revision number (0: none yet), for waiters,
    /// health reporting and the admin `Watch` stream.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Publishes a new model as the next revision and returns it.
    pub fn publish(&self, snapshot: Snapshot) -> u64 {
        match self.publish_with(|_, _| Ok::<_, std::convert::Infallible>(snapshot)) {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// Builds the next revision from the current one and publishes it,
    /// atomically with respect to other publishers: `build` gets the model
    /// being replaced (if any) and the revision number the result will have,
    /// so it can check an `expected_revision` or make the update durable
    /// before it becomes visible. An error publishes nothing.
    pub fn publish_with<E>(
        &self,
        build: impl FnOnce(Option<&Arc<Versioned>>, u64) -> Result<Snapshot, E>,
    ) -> Result<u64, E> {
        let mut last = lock(&self.writer);
        let next = *last + 1;
        let current = self.current.load_full();
        let snapshot = build(current.as_ref(), next)?;
        self.install(&mut last, next, snapshot);
        Ok(next)
    }

    /// Publishes `snapshot` as exactly `revision` (durable state restoring
    /// what it last acknowledged). The revision must be above every revision
    /// handed out so far.
    pub fn restore(&self, revision: u64, snapshot: Snapshot) -> Result<u64, StoreError> {
        let mut last = lock(&self.writer);
        if revision <= *last {
            return Err(StoreError::RevisionNotAfter {
                given: revision,
                current: *last,
            });
        }
        self.install(&mut last, revision, snapshot);
        Ok(revision)
    }

    fn install(&self, last: &mut MutexGuard<'_, u64>, revision: u64, snapshot: Snapshot) {
        let now = Instant::now();
        let v = Arc::new(Versioned {
            revision,
            snapshot,
            applied_at: now,
            revision_text: revision.to_string().into_boxed_str(),
        });
        {
            let mut history = lock(&self.history);
            history.push_back(Arc::clone(&v));
            while history.len() > 1 && !self.retained(&history, 0, now) {
                history.pop_front();
            }
        }
        self.current.store(Some(v));
        **last = revision;
        self.published.send_replace(revision);
    }

    /// Whether `history[i]` is still retained at `now`.
    fn retained(&self, history: &VecDeque<Arc<Versioned>>, i: usize, now: Instant) -> bool {
        let newer = history.len() - 1 - i;
        if newer == 0 || newer < self.retention.revisions {
            return true;
        }
        if newer > MAX_RETAINED {
            return false;
        }
        let replaced_at = history[i + 1].applied_at;
        now.saturating_duration_since(replaced_at) < self.retention.max_age
    }

    /// The revision a read asks for: the newest, the newest once it reaches
    /// `at_least` (waiting at most `wait`), or an exact retained one.
    pub async fn resolve(
        &self,
        consistency: Consistency,
        wait: Duration,
    ) -> Result<Arc<Versioned>, StoreError> {
        match consistency {
            Consistency::Latest => self.current().ok_or(StoreError::NoModel),
            Consistency::AtLeast(r) => self.at_least(r, wait).await,
            Consistency::Exact(r) => self.exact(r),
        }
    }

    /// Exactly revision `wanted`, if it is still retained.
    pub fn exact(&self, wanted: u64) -> Result<Arc<Versioned>, StoreError> {
        let current = self.current().ok_or(StoreError::NoModel)?;
        if current.revision == wanted {
            return Ok(current);
        }
        let latest = current.revision;
        if wanted > latest {
            return Err(StoreError::NotYetApplied { wanted, latest });
        }
        let history = lock(&self.history);
        let oldest = history.front().map_or(latest, |v| v.revision);
        let not_retained = StoreError::NotRetained {
            wanted,
            latest,
            oldest,
        };
        let i = history
            .binary_search_by_key(&wanted, |v| v.revision)
            .map_err(|_| not_retained.clone())?;
        // Pruning happens on publish; age is checked here too, so an old
        // revision is not served just because nothing was published since.
        if !self.retained(&history, i, Instant::now()) {
            return Err(not_retained);
        }
        Ok(Arc::clone(&history[i]))
    }

    /// The newest revision once it is at least `wanted`, waiting at most
    /// `wait`. No model at all is UNAVAILABLE at once (fail closed).
    pub async fn at_least(
        &self,
        wanted: u64,
        wait: Duration,
    ) -> Result<Arc<Versioned>, StoreError> {
        let current = self.current().ok_or(StoreError::NoModel)?;
        if current.revision >= wanted {
            return Ok(current);
        }
        let mut published = self.published.subscribe();
        let mut closing = self.closing.subscribe();
        let reached = tokio::select! {
            // A revision that arrived is answered even if closing began.
            biased;
            r = tokio::time::timeout(wait, published.wait_for(|&p| p >= wanted)) => r,
            _ = closing.wait_for(|&c| c) => return Err(StoreError::Closing),
        };
        match reached {
            Ok(Ok(_)) => self.current().ok_or(StoreError::NoModel),
            Ok(Err(_)) => Err(StoreError::Closing),
            Err(_) => Err(StoreError::NotReached {
                wanted,
                latest: self.revision(),
                waited_ms: wait.as_millis(),
            }),
        }
    }

    /// Wakes every `at_least` waiter with [`StoreError::Closing`]; called when
    /// the server starts shutting down. Reads that need no wait go on.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Whether [`Store::close`] was called.
    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Completes once [`Store::close`] is called: long-lived streams (Apply,
    /// Watch) end on it so that they do not hold up the drain.
    pub async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        let _ = closing.wait_for(|&c| c).await;
    }

    /// The revisions `exact` can still answer, ascending.
    pub fn retained_revisions(&self) -> Vec<u64> {
        let now = Instant::now();
        let history = lock(&self.history);
        (0..history.len())
            .filter(|&i| self.retained(&history, i, now))
            .map(|i| history[i].revision)
            .collect()
    }
}

/// Locks a mutex; a panic while it was held cannot leave these values torn
/// (each is replaced whole), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(revisions: usize, secs: u64) -> Store {
        Store::new(Retention {
            revisions,
            max_age: Duration::from_secs(secs),
        })
    }

    #[test]
    fn revisions_start_at_one_and_grow() {
        let s = store(4, 0);
        assert!(s.current().is_none());
        assert_eq!(s.publish(Snapshot::default()), 1);
        assert_eq!(s.publish(Snapshot::default()), 2);
        assert_eq!(s.revision(), 2);
        assert_eq!(
            s.current().map(|v| v.revision_text().to_string()),
            Some("2".into())
        );
    }

    #[test]
    fn a_restored_store_continues_after_its_revision() {
        let s = Store::starting_after(Retention::default(), 41);
        assert_eq!(s.publish(Snapshot::default()), 42);
        assert!(s.restore(42, Snapshot::default()).is_err());
        assert_eq!(s.restore(50, Snapshot::default()), Ok(50));
        assert_eq!(s.publish(Snapshot::default()), 51);
    }

    #[test]
    fn exact_answers_only_retained_revisions() {
        let s = store(2, 0);
        for _ in 0..4 {
            s.publish(Snapshot::default());
        }
        assert_eq!(s.retained_revisions(), vec![3, 4]);
        assert_eq!(s.exact(3).map(|v| v.revision), Ok(3));
        assert!(matches!(s.exact(2), Err(StoreError::NotRetained { .. })));
        assert!(matches!(s.exact(9), Err(StoreError::NotYetApplied { .. })));
    }

    #[test]
    fn age_keeps_replaced_revisions_beyond_the_count() {
        let s = store(1, 3600);
        for _ in 0..3 {
            s.publish(Snapshot::default());
        }
        assert_eq!(s.retained_revisions(), vec![1, 2, 3]);
    }

    #[test]
    fn a_failed_build_publishes_nothing() {
        let s = store(2, 0);
        s.publish(Snapshot::default());
        let r: Result<u64, &str> = s.publish_with(|cur, next| {
            assert_eq!(cur.map(|v| v.revision), Some(1));
            assert_eq!(next, 2);
            Err("nope")
        });
        assert!(r.is_err());
        assert_eq!(s.revision(), 1);
        assert_eq!(s.publish(Snapshot::default()), 2);
    }

    #[tokio::test]
    async fn at_least_waits_for_the_revision() {
        let s = Arc::new(store(2, 0));
        s.publish(Snapshot::default());
        let waiter = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.at_least(2, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.publish(Snapshot::default());
        let got = waiter.await.map(|r| r.map(|v| v.revision));
        assert!(matches!(got, Ok(Ok(2))));
        let late = s.at_least(9, Duration::from_millis(10)).await;
        assert!(matches!(
            late,
            Err(StoreError::NotReached { wanted: 9, .. })
        ));
    }

    #[tokio::test]
    async fn closing_wakes_waiters_and_no_model_fails_closed() {
        let s = Arc::new(store(2, 0));
        assert_eq!(
            s.at_least(1, Duration::from_secs(1)).await.err(),
            Some(StoreError::NoModel)
        );
        s.publish(Snapshot::default());
        let waiter = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.at_least(5, Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.close();
        let got = waiter.await.map(|r| r.err());
        assert!(matches!(got, Ok(Some(StoreError::Closing))));
    }
}
