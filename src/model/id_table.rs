//! A hash index from ids to dense indices that costs one cache line per
//! lookup.
//!
//! A check looks up a user and a resource by id among millions; on a large
//! model each lookup is a cache miss, and `hashbrown` takes two (its control
//! bytes, then the slot). Here a slot is one `u32`: the index (plus one, so
//! that 0 is an empty slot) in its low bits and, in the bits the index does
//! not need, a tag taken from the key's hash. A probe reads one line and
//! rejects a wrong slot without touching the entry it points to; with a
//! million entries the tag has 12 bits, so one probe in 4,096 compares a
//! key for nothing. The table does not know the keys: the caller hashes
//! them with [`IdTable::hash`] and confirms a candidate index with its own
//! comparison.
//!
//! Linear probing (the start slot is chosen by multiplying, so any size
//! works). A lookup reads about `(1 + 1/(1 - load)) / 2` slots, so a table
//! of up to 64k entries has twice their slots (1.5 reads, at most 256 KB
//! extra); a larger one has 64k slots to spare until that is 1/7 of its
//! entries: the million records of a large workspace take 4.6 bytes an
//! entry and 4.5 reads, most of them in the line of the first.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

const EMPTY: u32 = 0;

/// Empty slots a table may have beyond 1/7 of its entries.
const SPARE_SLOTS: usize = 1 << 16;

#[derive(Debug, Clone)]
pub struct IdTable {
    slots: Box<[u32]>,
    /// The bits of a slot that hold `index + 1`; the others hold the tag.
    index_mask: u32,
}

impl Default for IdTable {
    fn default() -> Self {
        IdTable::with_capacity(0)
    }
}

impl IdTable {
    /// A table that holds `n` entries, indices `0..n` (it does not grow).
    pub fn with_capacity(n: usize) -> IdTable {
        IdTable::with_capacity_below(n, n)
    }

    /// A table that holds `n` entries, indices below `end` (it does not
    /// grow).
    pub fn with_capacity_below(n: usize, end: usize) -> IdTable {
        let top = u32::try_from(end.max(n)).unwrap_or(u32::MAX);
        let index_bits = u32::BITS - top.leading_zeros();
        let len = n + (n / 7).max(n.min(SPARE_SLOTS)) + 1;
        IdTable {
            slots: vec![EMPTY; len].into_boxed_slice(),
            index_mask: u32::MAX.checked_shr(u32::BITS - index_bits).unwrap_or(0),
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
    /// the table yet, that `idx` is below the capacity and that no more
    /// than the capacity are added.
    pub fn insert(&mut self, hash: u64, idx: u32) {
        let stored = idx.wrapping_add(1);
        assert!(
            stored != 0 && stored & !self.index_mask == 0,
            "index {idx} is beyond the table's capacity"
        );
        let mut at = self.start(hash);
        let len = self.slots.len();
        for _ in 0..len {
            if self.slots[at] == EMPTY {
                self.slots[at] = self.tag(hash) | stored;
                return;
            }
            at = if at + 1 == len { 0 } else { at + 1 };
        }
        panic!("IdTable over capacity ({len} slots)");
    }

    /// The index stored under `hash` for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let want = self.tag(hash);
        let len = self.slots.len();
        let mut at = self.start(hash);
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                return None;
            }
            if slot & !self.index_mask == want {
                let idx = (slot & self.index_mask) - 1;
                if is_key(idx) {
                    return Some(idx);
                }
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
        self.slots.len() * std::mem::size_of::<u32>()
    }

    #[inline]
    fn start(&self, hash: u64) -> usize {
        // The high bits choose the slot: `hash * len / 2^64`.
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    /// The tag: the hash's low bits (the slot uses the high ones) placed
    /// in the bits the index leaves free. A table always has an empty slot,
    /// so the probe loop ends; an entry's slot is never `EMPTY` since it
    /// holds `index + 1`.
    #[inline]
    fn tag(&self, hash: u64) -> u32 {
        hash as u32 & !self.index_mask
    }
}

/// Starts fetching `x`'s cache line and goes on: the misses of a run of
/// touches are in flight together. A prefetch instruction where there is
/// one (x86-64, through `safe_arch`, so without `unsafe` here); elsewhere a
/// load whose value is dropped, which fetches the line too but holds up the
/// retirement of the instructions after it until the line comes.
#[inline(always)]
pub fn touch<T: Copy>(x: &T) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    safe_arch::prefetch_t0(x);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    std::hint::black_box(*x);
}

/// A finaliser (from MurmurHash3) so that every bit of a hash depends on
/// every bit of the key: the tag and the start slot take different bits.
#[inline]
pub fn mix(mut h: u64) -> u64 {
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
    fn a_probe_compares_keys_only_when_the_tag_matches() {
        // 2^17 entries leave a 14-bit tag: a lookup of an absent key walks
        // a few occupied slots and should almost never compare a key.
        let keys: Vec<String> = (0..1 << 17).map(|i| format!("r-{i:07}")).collect();
        let t = table_of(&keys);
        let mut compared = 0;
        for i in 0..10_000 {
            let k = format!("absent-{i}");
            let found = t.find(IdTable::hash(k.as_str()), |_| {
                compared += 1;
                false
            });
            assert_eq!(found, None);
        }
        assert!(
            compared < 100,
            "{compared} comparisons for 10,000 absent keys"
        );
    }

    #[test]
    fn the_last_index_of_every_capacity_fits() {
        // `index + 1` must fit in the index bits: capacities at and beside
        // a power of two are the edge.
        for n in [1usize, 2, 3, 4, 5, 255, 256, 257, 65_535, 65_536] {
            let mut t = IdTable::with_capacity(n);
            t.insert(IdTable::hash(&n), n as u32 - 1);
            assert_eq!(
                t.find(IdTable::hash(&n), |i| i == n as u32 - 1),
                Some(n as u32 - 1)
            );
        }
    }

    #[test]
    #[should_panic(expected = "beyond the table's capacity")]
    fn an_index_beyond_the_capacity_is_refused() {
        IdTable::with_capacity(4).insert(1, 8);
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
