//! The plans of lists being paged through.
//!
//! A client walks a long list a page at a time (at most 1,000 ids a page).
//! Narrowing the candidates costs milliseconds on a million resources; the
//! page itself costs microseconds. A compiled workspace never changes, so
//! a plan built for one page is still right for the next: the workspace
//! keeps the last few, most recently used first, and a page that resumes
//! after a cursor reuses its plan.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// How many plans a workspace keeps: one per list being walked at once.
const SLOTS: usize = 16;

pub struct PlanCache<K, V> {
    slots: Mutex<VecDeque<(K, Arc<V>)>>,
}

impl<K: PartialEq, V> PlanCache<K, V> {
    /// The plan kept for `key`, now the most recently used.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let at = slots.iter().position(|(k, _)| k == key)?;
        let hit = slots.remove(at)?;
        let plan = Arc::clone(&hit.1);
        slots.push_front(hit);
        Some(plan)
    }

    /// Keeps `plan` for `key`, forgetting the least recently used one when
    /// full.
    pub fn put(&self, key: K, plan: Arc<V>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|(k, _)| *k != key);
        slots.push_front((key, plan));
        slots.truncate(SLOTS);
    }
}

impl<K, V> Default for PlanCache<K, V> {
    fn default() -> Self {
        PlanCache {
            slots: Mutex::new(VecDeque::new()),
        }
    }
}

impl<K, V> std::fmt::Debug for PlanCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map_or(0, |s| s.len());
        write!(f, "PlanCache({n} plans)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recently_used() {
        let c: PlanCache<u32, u32> = PlanCache::default();
        for k in 0..SLOTS as u32 {
            c.put(k, Arc::new(k * 10));
        }
        // Using 0 makes 1 the oldest, which the next put forgets.
        assert_eq!(c.get(&0).as_deref(), Some(&0));
        c.put(99, Arc::new(990));
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&0).as_deref(), Some(&0));
        assert_eq!(c.get(&99).as_deref(), Some(&990));
        c.put(99, Arc::new(991));
        assert_eq!(c.get(&99).as_deref(), Some(&991));
    }
}
