//! Comparing and looking up the short strings of a request: workspace ids,
//! type and action names, user and resource ids.
//!
//! A check compares half a dozen strings of a few bytes each. `==` on
//! slices calls the C library's `memcmp` for every one, and that call (with
//! its dispatch on the length) costs more than comparing a dozen bytes:
//! [`eq`] compares with two overlapping word loads instead, inline.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Whether `a` and `b` hold the same bytes. Inline and without a call for
/// up to 16 bytes; longer ones go to `memcmp`.
#[inline(always)]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        // Two words from each end cover every byte; they overlap when
        // `n` is below twice the word.
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        // Bytes 0, n/2 and n-1 cover one to three bytes.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        0 => true,
        _ => a == b,
    }
}

/// The eight bytes of `s` from `at`, as a word (the first in the lowest
/// byte on little-endian machines).
#[inline(always)]
pub fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// The four bytes of `s` from `at`, as a word.
#[inline(always)]
pub fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

/// A map from names to values for the few names a request looks up by
/// string: workspace ids and type names. While there are few, a lookup
/// scans them comparing each name's length and end words (no hashing, no
/// call); past [`NameMap::FEW`] a hash table indexes them.
#[derive(Debug, Clone)]
pub struct NameMap<V> {
    entries: Vec<Entry<V>>,
    /// Indices into `entries` by the hash of their name, once there are
    /// more than [`NameMap::FEW`].
    index: Option<HashTable<usize>>,
}

#[derive(Debug, Clone)]
struct Entry<V> {
    key: NameKey,
    name: Box<str>,
    value: V,
}

/// A name's length and the words at its two ends: equal keys are equal
/// names up to 16 bytes; longer names compare their bytes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameKey {
    len: usize,
    head: u64,
    tail: u64,
}

impl NameKey {
    #[inline(always)]
    fn of(s: &[u8]) -> NameKey {
        let n = s.len();
        let (head, tail) = match n {
            8.. => (word8(s, 0), word8(s, n - 8)),
            4..=7 => (u64::from(word4(s, 0)), u64::from(word4(s, n - 4))),
            1..=3 => (
                u64::from(s[0]) | u64::from(s[n / 2]) << 8,
                u64::from(s[n - 1]),
            ),
            0 => (0, 0),
        };
        NameKey { len: n, head, tail }
    }
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            entries: Vec::new(),
            index: None,
        }
    }
}

impl<V> NameMap<V> {
    /// Up to this many names, lookups scan.
    pub const FEW: usize = 16;

    #[inline]
    pub fn get(&self, name: &str) -> Option<&V> {
        self.position(name).map(|i| &self.entries[i].value)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name` to `value`, returning the value it replaces.
    pub fn insert(&mut self, name: &str, value: V) -> Option<V> {
        if let Some(i) = self.position(name) {
            return Some(std::mem::replace(&mut self.entries[i].value, value));
        }
        self.entries.push(Entry {
            key: NameKey::of(name.as_bytes()),
            name: name.into(),
            value,
        });
        let entries = &self.entries;
        match &mut self.index {
            Some(index) => {
                index.insert_unique(hash(name), entries.len() - 1, |&i| hash(&entries[i].name));
            }
            None if entries.len() > Self::FEW => {
                let mut index = HashTable::with_capacity(entries.len());
                for (i, e) in entries.iter().enumerate() {
                    index.insert_unique(hash(&e.name), i, |&i| hash(&entries[i].name));
                }
                self.index = Some(index);
            }
            None => {}
        }
        None
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every value, in the order of insertion.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|e| &e.value)
    }

    #[inline]
    fn position(&self, name: &str) -> Option<usize> {
        let key = NameKey::of(name.as_bytes());
        let is = |e: &Entry<V>| {
            e.key == key && (key.len <= 16 || eq(e.name.as_bytes(), name.as_bytes()))
        };
        match &self.index {
            // From the last: a schema's custom types, which requests name
            // most, come after the built-in ones.
            None => self.entries.iter().rposition(is),
            Some(index) => index.find(hash(name), |&i| is(&self.entries[i])).copied(),
        }
    }
}

#[inline]
fn hash(name: &str) -> u64 {
    FxBuildHasher.hash_one(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn eq_agrees_with_slice_equality(
            a in proptest::collection::vec(0u8..4, 0..40),
            b in proptest::collection::vec(0u8..4, 0..40),
        ) {
            prop_assert_eq!(eq(&a, &b), a == b);
        }

        #[test]
        fn eq_finds_one_differing_byte_anywhere(
            a in proptest::collection::vec(any::<u8>(), 0..40),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            prop_assert!(eq(&a, &a.clone()));
            if !a.is_empty() {
                let mut b = a.clone();
                b[at.index(a.len())] ^= flip;
                prop_assert!(!eq(&a, &b));
            }
        }
    }

    #[test]
    fn name_map_inserts_replaces_and_finds() {
        let mut m = NameMap::default();
        assert_eq!(m.insert("record", 1), None);
        assert_eq!(m.insert("recorder", 2), None);
        assert_eq!(m.insert("record", 3), Some(1));
        assert_eq!(m.get("record"), Some(&3));
        assert_eq!(m.get("recorder"), Some(&2));
        assert_eq!(m.get("recor"), None);
        assert!(m.contains_key("recorder"));
        assert_eq!(m.len(), 2);
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [3, 2]);
    }

    proptest! {
        /// Scanned or hashed, short or long, the map answers as a std map.
        #[test]
        fn name_map_answers_as_a_hash_map(
            names in proptest::collection::vec("[ab]{0,3}|[ab]{15,18}|x{1,40}", 0..40),
            queries in proptest::collection::vec("[ab]{0,3}|[ab]{15,18}|x{1,40}", 0..20),
        ) {
            let mut m = NameMap::default();
            let mut want = std::collections::HashMap::new();
            for (i, n) in names.iter().enumerate() {
                prop_assert_eq!(m.insert(n, i), want.insert(n.clone(), i));
                prop_assert_eq!(m.len(), want.len());
            }
            for q in names.iter().chain(&queries) {
                prop_assert_eq!(m.get(q), want.get(q));
            }
        }
    }
}
