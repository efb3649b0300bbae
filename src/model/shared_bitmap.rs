//! A set of resource indices whose clones share almost everything.
//!
//! Every resource delta makes a new revision, and the store keeps up to a
//! thousand recent revisions for exact reads and page tokens. Each holds
//! the overlay's sets of changed and removed resources; as one
//! `RoaringBitmap` each, every revision held a whole copy: 40 KB per
//! revision once 20,000 resources had changed, 55 MB over the retained
//! revisions. Here the set is cut in blocks of 2^16 indices, each behind an
//! `Arc`: a clone copies one pointer per block, a write copies the block it
//! changes.

use std::sync::Arc;

use roaring::RoaringBitmap;

use super::workspace::ResIdx;

/// How many low bits of an index pick its place within a block.
const BLOCK_BITS: u32 = 16;

#[derive(Debug, Clone, Default)]
pub struct SharedBitmap {
    /// Block `b` holds the members in `b << 16..(b + 1) << 16`; blocks past
    /// the highest member are not there.
    blocks: Vec<Arc<RoaringBitmap>>,
    len: u64,
}

impl SharedBitmap {
    #[inline]
    pub fn contains(&self, r: ResIdx) -> bool {
        self.blocks
            .get((r >> BLOCK_BITS) as usize)
            .is_some_and(|b| b.contains(r))
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Adds `r`; whether it was not there.
    pub fn insert(&mut self, r: ResIdx) -> bool {
        let b = (r >> BLOCK_BITS) as usize;
        if self.blocks.len() <= b {
            self.blocks.resize_with(b + 1, Default::default);
        }
        // Copies the block only if another revision shares it.
        let added = Arc::make_mut(&mut self.blocks[b]).insert(r);
        self.len += u64::from(added);
        added
    }

    /// Removes `r`; whether it was there.
    pub fn remove(&mut self, r: ResIdx) -> bool {
        let Some(block) = self.blocks.get_mut((r >> BLOCK_BITS) as usize) else {
            return false;
        };
        if !block.contains(r) {
            return false;
        }
        Arc::make_mut(block).remove(r);
        self.len -= 1;
        true
    }

    /// How many members are `<= r`.
    pub fn rank(&self, r: ResIdx) -> u64 {
        let b = (r >> BLOCK_BITS) as usize;
        let below: u64 = self.blocks.iter().take(b).map(|x| x.len()).sum();
        below + self.blocks.get(b).map_or(0, |x| x.rank(r))
    }

    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = ResIdx> + '_ {
        self.blocks.iter().flat_map(|b| b.iter())
    }

    /// Takes the members out of `set`.
    pub fn subtract_from(&self, set: &mut RoaringBitmap) {
        for b in &self.blocks {
            *set -= &**b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any run of inserts and removes leaves the same set as one
        /// `RoaringBitmap`, and a clone taken midway keeps what it saw.
        #[test]
        fn acts_as_a_roaring_bitmap_and_clones_stay_put(
            ops in prop::collection::vec((any::<bool>(), 0u32..300_000), 0..400),
            probes in prop::collection::vec(0u32..300_000, 20),
        ) {
            let mut shared = SharedBitmap::default();
            let mut plain = RoaringBitmap::new();
            let mut midway = None;
            for (i, &(add, r)) in ops.iter().enumerate() {
                let (a, b) = if add {
                    (shared.insert(r), plain.insert(r))
                } else {
                    (shared.remove(r), plain.remove(r))
                };
                prop_assert_eq!(a, b);
                if i == ops.len() / 2 {
                    midway = Some((shared.clone(), plain.clone()));
                }
            }
            for (s, p) in [(shared, plain)].into_iter().chain(midway) {
                prop_assert_eq!(s.len(), p.len());
                prop_assert_eq!(s.is_empty(), p.is_empty());
                prop_assert_eq!(s.iter().collect::<Vec<_>>(), p.iter().collect::<Vec<_>>());
                for &r in &probes {
                    prop_assert_eq!(s.contains(r), p.contains(r));
                    prop_assert_eq!(s.rank(r), p.rank(r));
                }
                let mut all = RoaringBitmap::new();
                all.insert_range(0..300_000);
                s.subtract_from(&mut all);
                prop_assert_eq!(all.len(), 300_000 - p.len());
                prop_assert!(p.iter().all(|r| !all.contains(r)));
            }
        }
    }

    #[test]
    fn a_clone_shares_the_blocks_a_write_does_not_touch() {
        let mut a = SharedBitmap::default();
        a.insert(1);
        a.insert(70_000);
        let mut b = a.clone();
        b.insert(2);
        assert!(
            Arc::ptr_eq(&a.blocks[1], &b.blocks[1]),
            "untouched block copied"
        );
        assert!(!Arc::ptr_eq(&a.blocks[0], &b.blocks[0]));
        assert!(!a.contains(2) && b.contains(2));
    }
}
