//! The resources changed since a workspace's table was built.
//!
//! Rebuilding the sorted resource table and its indexes costs seconds on a
//! million resources; a delta that upserts or removes a few resources must
//! cost microseconds. So such a delta leaves the table (the *base*) as it
//! is, shared between revisions, and records its changes here, in
//! persistent maps whose clones are O(1) and whose writes copy only a path.
//! The next full rebuild of the workspace folds them into a new base.
//!
//! Invariants:
//! - A resource's index never changes and is never reused: a changed base
//!   resource keeps its base index, an added resource gets the next index
//!   after every index used so far. A removed resource keeps its index,
//!   marked in `removed`, until the end of the delta that removes it; then
//!   a removed added resource is forgotten (adding it again later gives it
//!   a new index), so that resources added and removed again and again do
//!   not pile up.
//! - `records` holds the current record of every changed base resource
//!   (removed ones included) and of every added one; `changed` holds
//!   exactly the base indices in `records`.
//! - `postings` and `children` hold a `(label, r)` / `(parent, r)` pair for
//!   every label and parent a record has had here. Stale pairs may stay: a
//!   reader keeps a pair only if the record still has that label or
//!   parent and is not removed (see [`super::Resources`]); a forgotten
//!   resource has no labels and no parent.

use std::hash::BuildHasherDefault;
use std::sync::Arc;

use rustc_hash::FxHasher;
use smallvec::SmallVec;

use super::schema::TypeId;
use super::shared_bitmap::SharedBitmap;
use super::workspace::{LabelIdx, ResIdx, NO_PARENT};

/// One resource as changed or added since the base was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub type_: TypeId,
    pub id: Arc<str>,
    /// [`super::workspace::NO_PARENT`] when it has none.
    pub parent: ResIdx,
    /// Ascending, no duplicates.
    pub labels: SmallVec<[LabelIdx; 4]>,
}

type FxBuild = BuildHasherDefault<FxHasher>;

#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub(super) records:
        imbl::GenericHashMap<ResIdx, Record, FxBuild, imbl::shared_ptr::DefaultSharedPtr>,
    /// Base indices with a record: a cheap test that most lookups miss.
    pub(super) changed: SharedBitmap,
    /// Removed resources, base or added.
    pub(super) removed: SharedBitmap,
    /// Added resources by type, then id: lists merge them in id order.
    pub(super) added: imbl::OrdMap<TypeId, imbl::OrdMap<Arc<str>, ResIdx>>,
    pub(super) postings: imbl::OrdSet<(LabelIdx, ResIdx)>,
    pub(super) children: imbl::OrdSet<(ResIdx, ResIdx)>,
    /// The index the next added resource gets; 0 until one is added.
    pub(super) next: ResIdx,
}

impl Overlay {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.removed.is_empty()
    }

    /// How many resources it holds a record or a removal for.
    pub fn len(&self) -> usize {
        self.records.len() + self.removed.len() as usize
    }

    /// The record of a changed or added resource.
    #[inline]
    pub(super) fn record(&self, r: ResIdx, base_len: usize) -> Option<&Record> {
        if (r as usize) < base_len && !self.changed.contains(r) {
            return None;
        }
        self.records.get(&r)
    }

    /// Writes resource `r`'s record (and indexes its labels and parent).
    pub(super) fn put(&mut self, r: ResIdx, record: Record, base_len: usize) {
        for &l in &record.labels {
            self.postings.insert((l, r));
        }
        if record.parent != NO_PARENT {
            self.children.insert((record.parent, r));
        }
        if (r as usize) < base_len {
            self.changed.insert(r);
        }
        self.removed.remove(r);
        self.records.insert(r, record);
    }

    /// Moves resource `r`, which has a record, under `parent`.
    pub(super) fn set_parent(&mut self, r: ResIdx, parent: ResIdx) {
        if let Some(record) = self.records.get_mut(&r) {
            record.parent = parent;
            if parent != NO_PARENT {
                self.children.insert((parent, r));
            }
        }
    }

    /// Forgets the added resource `r` (see the invariants).
    pub(super) fn forget(&mut self, r: ResIdx) {
        let Some(record) = self.records.remove(&r) else {
            return;
        };
        for &l in &record.labels {
            self.postings.remove(&(l, r));
        }
        self.children.remove(&(record.parent, r));
        if let Some(ids) = self.added.get_mut(&record.type_) {
            ids.remove(&*record.id);
        }
    }

    /// Gives an added resource its index.
    pub(super) fn add(&mut self, type_: TypeId, id: &str, base_len: usize) -> ResIdx {
        let r = self.next.max(base_len as ResIdx);
        self.next = r + 1;
        self.added
            .entry(type_)
            .or_default()
            .insert(Arc::from(id), r);
        r
    }

    /// The added resource `type_:id`, removed or not.
    #[inline]
    pub(super) fn added(&self, type_: TypeId, id: &str) -> Option<ResIdx> {
        self.added.get(&type_)?.get(id).copied()
    }
}
