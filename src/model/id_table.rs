//! A hash index from ids to dense indices that costs one cache line per
//! lookup.
//!
//! A check looks up a user and a resource by id among millions; on a large
//! model each lookup is a cache miss, and `hashbrown` takes two (its control
//! bytes, then the slot). Here a slot is one `u64`: 32 bits of the key's
//! hash (the tag) beside the index, so a probe reads one line and rejects
//! a wrong slot without touching the entry it points to. The table does
//! not know the keys: the caller hashes them with [`IdTable::hash`] and
//! confirms a candidate index with its own comparison.
//!
//! Linear probing over a table of about 8/7 of the entries (not a power of
//! two: the start slot is chosen by multiplying, so any size works).

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub struct IdTable {
    slots: Box<[u64]>,
}

impl Default for IdTable {
    fn default() -> Self {
        IdTable::with_capacity(0)
    }
}

impl IdTable {
    /// A table that holds `n` entries (it does not grow).
    pub fn with_capacity(n: usize) -> IdTable {
        let len = n + n / 7 + 1;
        IdTable {
            slots: vec![EMPTY; len].into_boxed_slice(),
        }
    }

    /// The hash of a key, well mixed in every bit (the tag and the start
    /// slot take different bits).
    #[inline]
    pub fn hash<K: Hash + ?Sized>(key: &K) -> u64 {
        let mut h = FxHasher::default();
        key.hash(&mut h);
        mix(h.finish())
    }

    /// Adds `idx` under `hash`. The caller makes sure the key is not in
    /// the table yet and that no more than the capacity are added.
    pub fn insert(&mut self, hash: u64, idx: u32) {
        assert!(idx != u32::MAX, "index {idx} is reserved");
        let mut at = self.start(hash);
        let len = self.slots.len();
        for _ in 0..len {
            if self.slots[at] == EMPTY {
                self.slots[at] = (tag(hash) << 32) | u64::from(idx);
                return;
            }
            at = if at + 1 == len { 0 } else { at + 1 };
        }
        panic!("IdTable over capacity ({len} slots)");
    }

    /// The index stored under `hash` for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let want = tag(hash);
        let len = self.slots.len();
        let mut at = self.start(hash);
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                return None;
            }
            if slot >> 32 == want && is_key(slot as u32) {
                return Some(slot as u32);
            }
            at = if at + 1 == len { 0 } else { at + 1 };
        }
    }

    /// Reads the first slot a lookup of `hash` probes, so that its cache
    /// line is on its way before [`IdTable::find`] needs it. A batch of
    /// checks touches the slots of all its lookups first: their misses
    /// then overlap instead of following one another.
    #[inline]
    pub fn touch(&self, hash: u64) {
        touch(&self.slots[self.start(hash)]);
    }

    /// The index in the first slot of `hash`'s probe with its tag: what
    /// [`IdTable::find`] will most likely confirm, unconfirmed. For
    /// touching the entry early; never an answer.
    #[inline]
    pub fn guess(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// Bytes held.
    pub fn heap_size(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }

    #[inline]
    fn start(&self, hash: u64) -> usize {
        // The high bits choose the slot: `hash * len / 2^64`.
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }
}

/// Loads `x` and drops it, so that its cache line is fetched while the
/// code goes on: no instruction depends on the load, so the misses of a
/// run of touches are in flight together. A stand-in for a prefetch
/// instruction, which Rust offers only as an `unsafe` intrinsic (the crate
/// denies `unsafe`); unlike a prefetch, a touch that misses holds up the
/// retirement of the instructions after it until its line comes.
#[inline(always)]
pub fn touch<T: Copy>(x: &T) {
    std::hint::black_box(*x);
}

/// The low 32 bits: the slot uses the high ones. A table always has an
/// empty slot, so the probe loop ends; `EMPTY` can never be a real slot
/// since no index is `u32::MAX`.
#[inline]
fn tag(hash: u64) -> u64 {
    hash & 0xffff_ffff
}

/// A finaliser (from MurmurHash3) so that every bit of Fx's hash depends on
/// every bit of the key.
#[inline]
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_of(keys: &[String]) -> IdTable {
        let mut t = IdTable::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            t.insert(IdTable::hash(k.as_str()), i as u32);
        }
        t
    }

    fn find(t: &IdTable, keys: &[String], k: &str) -> Option<u32> {
        t.find(IdTable::hash(k), |i| keys[i as usize] == k)
    }

    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("rec-{i:06}")).collect();
        let t = table_of(&keys);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(find(&t, &keys, k), Some(i as u32), "{k}");
        }
        for i in 10_000..11_000 {
            assert_eq!(find(&t, &keys, &format!("rec-{i:06}")), None);
        }
    }

    #[test]
    fn a_full_table_and_an_empty_one_answer() {
        // Tiny sizes exercise the wrap-around at the end of the slots.
        for n in 0..20 {
            let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            let t = table_of(&keys);
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(find(&t, &keys, k), Some(i as u32));
            }
            assert_eq!(find(&t, &keys, "absent"), None);
        }
    }

    #[test]
    fn a_guess_is_what_find_confirms_when_tags_differ() {
        let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let t = table_of(&keys);
        for (i, k) in keys.iter().enumerate() {
            let h = IdTable::hash(k.as_str());
            t.touch(h);
            assert_eq!(t.guess(h), Some(i as u32), "{k}");
        }
        let h = IdTable::hash("absent");
        t.touch(h);
        assert_eq!(t.guess(h), None);
        IdTable::default().touch(h);
        assert_eq!(IdTable::default().guess(h), None);
    }

    #[test]
    fn equal_tags_are_told_apart_by_the_comparison() {
        // Every key under the same hash: only `is_key` separates them.
        let mut t = IdTable::with_capacity(50);
        for i in 0..50 {
            t.insert(7, i);
        }
        for i in 0..50 {
            assert_eq!(t.find(7, |j| j == i), Some(i));
        }
        assert_eq!(t.find(7, |_| false), None);
    }
}
