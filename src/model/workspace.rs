//! A validated workspace: every reference resolved to a dense index.
//!
//! Invariant: a [`Workspace`] exists only if its spec broke no rule of
//! SPEC 1.3; it is built by [`super::validate`] and never changed after.

use smallvec::SmallVec;

use std::ops::Bound;
use std::sync::Arc;

use super::id_columns::{IdColumns, Locate, ResourceId, TooManyIdBytes};
use super::id_table::{touch, IdTable};
use super::overlay::{Overlay, Record};
use super::schema::{PermSet, Schema, TypeId};
use super::shared_bitmap::SharedBitmap;
use super::spec::{ResourceSpec, Source, WorkspaceSpec};
use super::spec_head::{SpecHead, SpecHeadError};

pub type RoleIdx = u32;
pub type LabelIdx = u32;
pub type UserIdx = u32;
pub type GroupIdx = u32;
/// Index of a resource in its workspace's [`Resources`] table.
pub type ResIdx = u32;
pub const NO_PARENT: ResIdx = u32::MAX;

#[derive(Debug, Clone)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub description: String,
    pub organization: Option<String>,
    pub rank: u32,
    /// Granted `(type, action)` pairs, wildcards and implications expanded.
    pub perms: PermSet,
    pub seat: bool,
    pub disabled: bool,
    pub builtin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Workspace,
    Label(LabelIdx),
    /// That resource and everything below it.
    Resource(ResIdx),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    pub role: RoleIdx,
    pub scope: Scope,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub active: bool,
    pub source: Source,
    pub bindings: Vec<Binding>,
    /// Groups the user is a member of, ascending.
    pub groups: Vec<GroupIdx>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub source: Source,
    pub members: Vec<UserIdx>,
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub min_admins: u32,
    pub max_roles_per_user: Option<u32>,
    pub admin_roles: Vec<RoleIdx>,
}

/// The resources of a workspace when it was last built in full, implicit
/// ones included, sorted by `(type, id)`: the resources of one type are a
/// contiguous range whose order is the ascending order of their ids, so
/// lists come out sorted.
///
/// Laid out for the cache: on a large model every lookup here is a miss,
/// and a check's cost is the number of them. Ids numbered in sequence (a
/// run, see [`IdColumns`]) are found by their number alone: no memory is
/// read. Others are found by reading one line of the hash index, then the
/// id's bytes to confirm: where they are is computed from the index, so the
/// lookup itself reads no record. The resource's record, 8 bytes, holds its
/// parent and (packed, for up to two) its labels; its parent's record is
/// one more line. The type is told by the index range.
#[derive(Debug, Clone, Default)]
pub struct ResourceTable {
    /// The ids, by type, in the order of the resources.
    ids: IdColumns,
    /// One per resource.
    meta: Vec<ResMeta>,
    /// The labels a record cannot hold (see [`ResMeta::labels`]): for each
    /// such resource its count, then its labels as they came.
    spilled_labels: Vec<LabelIdx>,
    /// `type_start[t]..type_start[t+1]` are the resources of type `t`.
    type_start: Vec<ResIdx>,
    lookup: IdTable,
}

/// A resource's parent and its labels: 8 bytes, eight to a cache line. A
/// large model holds a million of them; the id's place is not among them
/// (see [`IdColumns`]).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
struct ResMeta {
    parent: ResIdx,
    /// The labels, packed in one word, as the top bits tell:
    /// - [`NO_LABELS`] (all ones): none;
    /// - `0`: exactly one, the word itself (a label below 2^31);
    /// - `10` ([`PAIR`]): exactly two, each below 2^15, written
    ///   `a << 15 | b` in the low 30 bits, in the order they came;
    /// - `11` ([`SPILLED`]): the low 30 bits are where they start in
    ///   `spilled_labels` (the count, then the labels): three or more, or
    ///   ones too large to pack.
    ///
    /// A label's index is its place in the workspace's list of labels, so
    /// below 2^15 unless a workspace has more than 32,768 labels: up to two
    /// labels, nothing spills.
    labels: u32,
}

const NO_LABELS: u32 = u32::MAX;
/// The tag bits of [`ResMeta::labels`] once the top bit is set.
const TAG: u32 = 0b11 << 30;
const PAIR: u32 = 0b10 << 30;
const SPILLED: u32 = 0b11 << 30;
/// Labels below this are packed two to a word.
const PAIR_LABEL_END: LabelIdx = 1 << 15;
const PAIR_LABEL_MASK: u32 = PAIR_LABEL_END - 1;

/// The labels of a resource, as [`ResourceTable::labels`] and
/// [`Resources::labels`] give them: a slice, through `Deref`. A record
/// packs up to two labels in one word, so there is no slice of the table to
/// borrow for them: they are unpacked into the value, which is `Copy` and
/// costs no allocation.
#[derive(Clone, Copy)]
pub struct Labels<'a>(LabelsRepr<'a>);

#[derive(Clone, Copy)]
enum LabelsRepr<'a> {
    One(LabelIdx),
    Two([LabelIdx; 2]),
    Slice(&'a [LabelIdx]),
}

impl Labels<'_> {
    const NONE: Labels<'static> = Labels(LabelsRepr::Slice(&[]));
}

impl<'a> From<&'a [LabelIdx]> for Labels<'a> {
    fn from(s: &'a [LabelIdx]) -> Labels<'a> {
        Labels(LabelsRepr::Slice(s))
    }
}

impl std::ops::Deref for Labels<'_> {
    type Target = [LabelIdx];

    #[inline]
    fn deref(&self) -> &[LabelIdx] {
        match &self.0 {
            LabelsRepr::One(l) => std::slice::from_ref(l),
            LabelsRepr::Two(ls) => ls,
            LabelsRepr::Slice(s) => s,
        }
    }
}

impl std::fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Labels<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Labels<'_> {}

/// What a [`ResourceTable`] cannot hold: its fields are 32 bits wide to keep
/// it small. No workspace comes near (each takes hundreds of millions of
/// resources, or gigabytes of ids), but one that did is refused, rather
/// than stored wrapped around: validation reports it under rule `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableLimit {
    /// More resources than a [`ResIdx`] numbers (`u32::MAX` is
    /// [`NO_PARENT`]).
    Resources { count: usize, limit: usize },
    /// The labels the records cannot hold (see [`ResMeta::labels`]) need
    /// more entries than a start of 30 bits reaches.
    SpilledLabels { limit: usize },
    /// The ids of a type whose ids differ in length take more bytes than a
    /// `u32` offset reaches.
    IdBytes {
        type_: TypeId,
        bytes: usize,
        limit: usize,
    },
}

impl std::fmt::Display for TableLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableLimit::Resources { count, limit } => write!(
                f,
                "{count} resources are over the limit of {limit} resources per workspace"
            ),
            TableLimit::SpilledLabels { limit } => write!(
                f,
                "the labels of resources with three or more take over {limit} entries, \
                 the limit per workspace (one per label and one per resource)"
            ),
            TableLimit::IdBytes { bytes, limit, .. } => write!(
                f,
                "the ids of this type take {bytes} bytes, over the limit of {limit} bytes \
                 for the ids of one type when they differ in length"
            ),
        }
    }
}

impl std::error::Error for TableLimit {}

/// The bounds of [`TableLimit`]; the tests build with smaller ones.
#[derive(Debug, Clone, Copy)]
struct Limits {
    resources: usize,
    spilled: usize,
    id_bytes: usize,
}

const LIMITS: Limits = Limits {
    resources: NO_PARENT as usize,
    // Then a start is at most 2^30 - 3 (a spilled resource has a label):
    // it fits in 30 bits and is never all ones, which would read as
    // `NO_LABELS`.
    spilled: (1 << 30) - 1,
    id_bytes: u32::MAX as usize,
};

/// Where a lookup will find a resource, as [`ResourceTable::lookup_hint`]
/// tells it before reading the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupHint {
    /// At this index: the ids of a run, whose places are computed.
    At(ResIdx),
    /// Under this hash in the index.
    Hash(u64),
}

/// One resource before it is placed in the table.
pub struct PendingResource<'a> {
    pub type_: TypeId,
    pub id: &'a str,
    pub parent: Option<(TypeId, &'a str)>,
    pub labels: SmallVec<[LabelIdx; 2]>,
}

impl ResourceTable {
    /// Builds the table; every parent must be among `items` (unknown
    /// parents become [`NO_PARENT`]). Duplicates are kept side by side,
    /// for the caller to find (a lookup finds one of them).
    pub fn build(
        type_count: usize,
        items: Vec<PendingResource<'_>>,
    ) -> Result<ResourceTable, TableLimit> {
        Self::build_within(type_count, items, LIMITS)
    }

    fn build_within(
        type_count: usize,
        mut items: Vec<PendingResource<'_>>,
        limits: Limits,
    ) -> Result<ResourceTable, TableLimit> {
        items.sort_unstable_by(|a, b| (a.type_, a.id).cmp(&(b.type_, b.id)));
        let n = items.len();
        if n > limits.resources {
            return Err(TableLimit::Resources {
                count: n,
                limit: limits.resources,
            });
        }
        let mut r = ResourceTable {
            ids: IdColumns::default(),
            meta: Vec::with_capacity(n),
            spilled_labels: Vec::new(),
            type_start: vec![0; type_count + 1],
            lookup: IdTable::default(),
        };
        for (i, it) in items.iter().enumerate() {
            let labels = r.pack_labels(&it.labels, limits.spilled)?;
            r.meta.push(ResMeta {
                parent: NO_PARENT,
                labels,
            });
            r.type_start[it.type_ as usize + 1] = i as ResIdx + 1;
        }
        r.spilled_labels.shrink_to_fit();
        // Types with no resources start where the previous type ended.
        for t in 1..=type_count {
            r.type_start[t] = r.type_start[t].max(r.type_start[t - 1]);
        }
        r.ids = IdColumns::build(&r.type_start, |i| items[i].id, limits.id_bytes).map_err(
            |TooManyIdBytes { type_, bytes }| TableLimit::IdBytes {
                type_,
                bytes,
                limit: limits.id_bytes,
            },
        )?;
        // Hashed from the columns, as a lookup hashes its probe; a run's
        // ids need no index.
        let hashed = |t: &TypeId| r.ids.is_hashed(*t);
        let entries = (0..type_count as TypeId)
            .filter(hashed)
            .map(|t| r.of_type(t).len())
            .sum();
        r.lookup = IdTable::with_capacity_below(entries, n);
        for (i, it) in items.iter().enumerate() {
            if r.ids.is_hashed(it.type_) {
                let first = r.type_start[it.type_ as usize];
                let hash = r.ids.hash_of(it.type_, (i as ResIdx - first) as usize);
                r.lookup.insert(hash, i as ResIdx);
            }
        }
        for (i, it) in items.iter().enumerate() {
            if let Some((t, id)) = it.parent {
                r.meta[i].parent = r.find(t, id).unwrap_or(NO_PARENT);
            }
        }
        Ok(r)
    }

    /// `ls` as [`ResMeta::labels`] holds them, spilling them if they do not
    /// pack.
    fn pack_labels(&mut self, ls: &[LabelIdx], spill_limit: usize) -> Result<u32, TableLimit> {
        match *ls {
            [] => return Ok(NO_LABELS),
            [a] if a >> 31 == 0 => return Ok(a),
            [a, b] if a < PAIR_LABEL_END && b < PAIR_LABEL_END => {
                return Ok(PAIR | a << 15 | b);
            }
            _ => {}
        }
        let start = self.spilled_labels.len();
        if start + 1 + ls.len() > spill_limit {
            return Err(TableLimit::SpilledLabels { limit: spill_limit });
        }
        // Both fit: they are below the limit, below 2^30.
        self.spilled_labels.push(ls.len() as LabelIdx);
        self.spilled_labels.extend_from_slice(ls);
        Ok(SPILLED | start as u32)
    }

    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn id(&self, r: ResIdx) -> ResourceId<'_> {
        let t = self.type_of(r);
        self.ids.get(t, (r - self.type_start[t as usize]) as usize)
    }

    #[inline]
    pub fn labels(&self, r: ResIdx) -> Labels<'_> {
        let w = self.meta[r as usize].labels;
        if w >> 31 == 0 {
            return Labels(LabelsRepr::One(w));
        }
        match w & TAG {
            PAIR => Labels(LabelsRepr::Two([
                (w >> 15) & PAIR_LABEL_MASK,
                w & PAIR_LABEL_MASK,
            ])),
            _ if w == NO_LABELS => Labels::NONE,
            _ => {
                let start = (w & !TAG) as usize;
                let count = self.spilled_labels[start] as usize;
                Labels(LabelsRepr::Slice(
                    &self.spilled_labels[start + 1..start + 1 + count],
                ))
            }
        }
    }

    #[inline]
    pub fn parent_of(&self, r: ResIdx) -> Option<ResIdx> {
        let p = self.meta[r as usize].parent;
        (p != NO_PARENT).then_some(p)
    }

    #[inline]
    pub fn find(&self, t: TypeId, id: &str) -> Option<ResIdx> {
        // The type is told by the index range (resources are sorted by
        // type), and the id's place by the type's column: a run computes
        // it, and a probe reads no memory but the hash slot and the
        // candidate's id (and its offset, for ids of varying length). An id
        // the column cannot hold (another prefix, length or alphabet) is
        // not looked up at all.
        let range = self.of_type(t);
        match self.ids.locate(t, id) {
            Locate::At(i) => Some(range.start + i as ResIdx),
            Locate::Absent => None,
            Locate::Probe(probe) => self.lookup.find(probe.hash(), |j| {
                range.contains(&j) && probe.matches((j - range.start) as usize)
            }),
        }
    }

    /// Where a lookup of `(t, id)` will find it, without reading the
    /// table: `None` when no resource of type `t` can have that id.
    #[inline]
    pub fn lookup_hint(&self, t: TypeId, id: &str) -> Option<LookupHint> {
        match self.ids.locate(t, id) {
            Locate::At(i) => Some(LookupHint::At(self.of_type(t).start + i as ResIdx)),
            Locate::Absent => None,
            Locate::Probe(probe) => Some(LookupHint::Hash(probe.hash())),
        }
    }

    /// Touches the hash slot a lookup of `hash` reads first (see
    /// [`IdTable::touch`]).
    #[inline]
    pub fn touch_slot(&self, hash: u64) {
        self.lookup.touch(hash);
    }

    /// Touches the record of resource `r`.
    #[inline]
    pub fn touch_record_at(&self, r: ResIdx) {
        if let Some(m) = self.meta.get(r as usize) {
            touch(m);
        }
    }

    /// Touches the record of the resource a lookup of `hash` will most
    /// likely find (its slot should have been touched before), and returns
    /// that guess.
    #[inline]
    pub fn touch_record(&self, hash: u64) -> Option<ResIdx> {
        let r = self.lookup.guess(hash)?;
        touch(self.meta.get(r as usize)?);
        Some(r)
    }

    /// Touches the first byte of `r`'s id, which a lookup compares (for a
    /// type whose ids differ in length, through its offset), and its
    /// parent's record, which a decision reads.
    #[inline]
    pub fn touch_id_and_parent(&self, r: ResIdx) {
        let Some(m) = self.meta.get(r as usize) else {
            return;
        };
        let t = self.type_of(r);
        if let Some(&first) = self.type_start.get(t as usize) {
            self.ids.touch(t, (r - first) as usize);
        }
        if let Some(p) = self.meta.get(m.parent as usize) {
            touch(p);
        }
    }

    /// The resources of one type, in ascending id order.
    pub fn of_type(&self, t: TypeId) -> std::ops::Range<ResIdx> {
        let t = t as usize;
        match (self.type_start.get(t), self.type_start.get(t + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        }
    }

    /// Bytes held on the heap, per part, for memory reports.
    pub fn heap_sizes(&self) -> [(&'static str, usize); 3] {
        let (ids, id_extra) = self.ids.heap_sizes();
        [
            ("resource ids", ids),
            (
                "resource records, id offsets",
                self.meta.capacity() * std::mem::size_of::<ResMeta>()
                    + self.spilled_labels.capacity() * std::mem::size_of::<LabelIdx>()
                    + self.type_start.capacity() * std::mem::size_of::<ResIdx>()
                    + id_extra,
            ),
            ("resource hash index", self.lookup.heap_size()),
        ]
    }

    /// The type of `r`, told by the range it lies in (a few types: no
    /// memory load beyond `type_start`).
    #[inline]
    fn type_of(&self, r: ResIdx) -> TypeId {
        (self.type_start.partition_point(|&s| s <= r) - 1) as TypeId
    }
}

/// Every resource of a workspace: the table it was last built with (the
/// base, shared between revisions) and the changes of the resource deltas
/// applied since (the overlay, see [`super::overlay`]). Readers go through
/// these methods only, so they see the changes; with an empty overlay each
/// costs one branch more than the table's own.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    base: Arc<ResourceTable>,
    overlay: Overlay,
}

impl Resources {
    pub fn new(base: ResourceTable) -> Resources {
        Resources {
            base: Arc::new(base),
            overlay: Overlay::default(),
        }
    }

    /// The table the workspace was built with; the engine's indexes are
    /// built from it.
    pub fn base(&self) -> &ResourceTable {
        &self.base
    }

    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    #[inline]
    fn record(&self, r: ResIdx) -> Option<&Record> {
        if self.overlay.is_empty() {
            None
        } else {
            self.overlay.record(r, self.base.len())
        }
    }

    /// Live resources, implicit ones included.
    pub fn len(&self) -> usize {
        let removed_base = match self.base.len() {
            0 => 0,
            n => self.overlay.removed.rank(n as ResIdx - 1),
        };
        let added: usize = self.overlay.added.values().map(|m| m.len()).sum();
        let removed_added = self.overlay.removed.len() - removed_base;
        self.base.len() - removed_base as usize + added - removed_added as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn id(&self, r: ResIdx) -> ResourceId<'_> {
        if (r as usize) < self.base.len() {
            self.base.id(r)
        } else {
            ResourceId::whole(self.overlay.records.get(&r).map_or("", |x| &x.id))
        }
    }

    #[inline]
    pub fn type_of(&self, r: ResIdx) -> TypeId {
        if (r as usize) < self.base.len() {
            self.base.type_of(r)
        } else {
            // Every added index gets its record as it is added (`upsert`).
            self.overlay.records.get(&r).map_or(0, |x| x.type_)
        }
    }

    #[inline]
    pub fn labels(&self, r: ResIdx) -> Labels<'_> {
        match self.record(r) {
            Some(x) => Labels::from(&x.labels[..]),
            None if (r as usize) < self.base.len() => self.base.labels(r),
            None => Labels::NONE,
        }
    }

    #[inline]
    pub fn parent_of(&self, r: ResIdx) -> Option<ResIdx> {
        match self.record(r) {
            Some(x) => (x.parent != NO_PARENT).then_some(x.parent),
            None if (r as usize) < self.base.len() => self.base.parent_of(r),
            None => None,
        }
    }

    #[inline]
    pub fn find(&self, t: TypeId, id: &str) -> Option<ResIdx> {
        let found = self.base.find(t, id);
        if self.overlay.is_empty() {
            return found;
        }
        let r = found.or_else(|| self.overlay.added(t, id))?;
        (!self.overlay.removed.contains(r)).then_some(r)
    }

    /// Whether `r` was removed by a delta since the base was built.
    #[inline]
    pub fn is_removed(&self, r: ResIdx) -> bool {
        !self.overlay.removed.is_empty() && self.overlay.removed.contains(r)
    }

    /// Whether `r` names a resource of the workspace now.
    pub fn is_live(&self, r: ResIdx) -> bool {
        // An added resource removed by the delta being applied is marked
        // removed until the delta's end forgets it (`forget_if_removed`).
        !self.is_removed(r)
            && ((r as usize) < self.base.len() || self.overlay.records.contains_key(&r))
    }

    /// Removed resources.
    pub fn removed(&self) -> &SharedBitmap {
        &self.overlay.removed
    }

    /// Base resources whose labels or parent changed since the base was
    /// built: the base's label postings and child lists are stale for them.
    pub fn changed(&self) -> &SharedBitmap {
        &self.overlay.changed
    }

    /// The base's resources of one type, in ascending id order, removed
    /// ones included: see [`Self::added_of_type`] for the others.
    pub fn base_of_type(&self, t: TypeId) -> std::ops::Range<ResIdx> {
        self.base.of_type(t)
    }

    /// Resources of type `t` added since the base was built whose ids sort
    /// after `after`, in ascending id order.
    pub fn added_of_type<'a>(
        &'a self,
        t: TypeId,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = ResIdx> + 'a {
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        self.overlay
            .added
            .get(&t)
            .into_iter()
            .flat_map(move |m| m.range::<_, str>((lower, Bound::Unbounded)))
            .map(|(_, &r)| r)
    }

    /// How many live resources of type `t` there are.
    pub fn count_of_type(&self, t: TypeId) -> usize {
        let range = self.base.of_type(t);
        let removed = &self.overlay.removed;
        let below = |r: ResIdx| if r == 0 { 0 } else { removed.rank(r - 1) };
        let removed_base = below(range.end) - below(range.start);
        let added = self
            .added_of_type(t, None)
            .filter(|&r| !self.is_removed(r))
            .count();
        range.len() - removed_base as usize + added
    }

    /// Every live resource of type `t`, in ascending id order.
    pub fn of_type(&self, t: TypeId) -> impl Iterator<Item = ResIdx> + '_ {
        self.merge_by_id(self.base.of_type(t), self.added_of_type(t, None))
            .filter(|&r| !self.is_removed(r))
    }

    /// Two streams of resources, each ascending by id, as one.
    pub fn merge_by_id<A, B>(&self, a: A, b: B) -> MergeById<'_, A::IntoIter, B::IntoIter>
    where
        A: IntoIterator<Item = ResIdx>,
        B: IntoIterator<Item = ResIdx>,
    {
        MergeById {
            res: self,
            a: a.into_iter().peekable(),
            b: b.into_iter().peekable(),
        }
    }

    /// Resources whose label `l` was set by a delta since the base was
    /// built (exactly: stale entries are skipped), removed ones left out.
    pub fn changed_carriers(&self, l: LabelIdx) -> impl Iterator<Item = ResIdx> + '_ {
        self.overlay
            .postings
            .range((l, 0)..=(l, ResIdx::MAX))
            .map(|&(_, r)| r)
            .filter(move |&r| !self.is_removed(r) && self.labels(r).contains(&l))
    }

    /// Resources placed under `p` by a delta since the base was built
    /// (exactly: stale entries are skipped), removed ones left out.
    pub fn changed_children(&self, p: ResIdx) -> impl Iterator<Item = ResIdx> + '_ {
        self.overlay
            .children
            .range((p, 0)..=(p, ResIdx::MAX))
            .map(|&(_, r)| r)
            .filter(move |&r| !self.is_removed(r) && self.parent_of(r) == Some(p))
    }

    /// Adds or replaces the resource `t:id` (removed ones come back, with
    /// their index) and returns its index.
    pub fn upsert(
        &mut self,
        t: TypeId,
        id: &str,
        parent: Option<ResIdx>,
        labels: SmallVec<[LabelIdx; 4]>,
    ) -> ResIdx {
        let base_len = self.base.len();
        let existing = self.base.find(t, id).or_else(|| self.overlay.added(t, id));
        let r = existing.unwrap_or_else(|| self.overlay.add(t, id, base_len));
        let id: Arc<str> = match self.overlay.records.get(&r) {
            Some(x) => Arc::clone(&x.id),
            None => Arc::from(id),
        };
        let record = Record {
            type_: t,
            id,
            parent: parent.unwrap_or(NO_PARENT),
            labels,
        };
        self.overlay.put(r, record, base_len);
        r
    }

    /// Moves resource `r`, which an [`Self::upsert`] wrote, under `parent`.
    pub fn set_parent(&mut self, r: ResIdx, parent: Option<ResIdx>) {
        self.overlay.set_parent(r, parent.unwrap_or(NO_PARENT));
    }

    /// Removes resource `r`; it keeps its index, marked removed, so that an
    /// upsert brings it back under the same index.
    pub fn remove(&mut self, r: ResIdx) {
        self.overlay.removed.insert(r);
    }

    /// Forgets `r` if it is a removed added resource (see
    /// [`super::overlay`]): once nothing can point to it any more, at the
    /// end of a delta.
    pub fn forget_if_removed(&mut self, r: ResIdx) {
        if (r as usize) >= self.base.len() && self.overlay.removed.remove(r) {
            self.overlay.forget(r);
        }
    }
}

/// See [`Resources::merge_by_id`].
pub struct MergeById<'a, A: Iterator<Item = ResIdx>, B: Iterator<Item = ResIdx>> {
    res: &'a Resources,
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = ResIdx>, B: Iterator<Item = ResIdx>> Iterator for MergeById<'_, A, B> {
    type Item = ResIdx;

    fn next(&mut self) -> Option<ResIdx> {
        match (self.a.peek(), self.b.peek()) {
            (Some(&x), Some(&y)) if self.res.id(y) < self.res.id(x) => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

/// A validated workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: String,
    /// The spec it was built from, normalised (sorted by id), **without its
    /// resources**: they live in `resources` only (a second copy would
    /// double the memory). Kept as JSON ([`super::spec_head`]);
    /// [`Self::to_spec`] gives the whole spec.
    pub spec_head: SpecHead,
    // Shared between the revisions a resource delta makes, hence the Arcs.
    pub schema: Arc<Schema>,
    /// Enabled features, indexed by `FeatureId`.
    pub features_enabled: Vec<bool>,
    pub roles: Arc<Vec<Role>>,
    pub labels: Arc<Vec<String>>,
    pub users: Arc<Vec<User>>,
    pub groups: Arc<Vec<Group>>,
    pub resources: Resources,
    pub policy: Policy,
}

impl Workspace {
    /// The same workspace with other resources (of a resource delta).
    pub fn with_resources(&self, resources: Resources) -> Workspace {
        Workspace {
            id: self.id.clone(),
            spec_head: self.spec_head.clone(),
            schema: Arc::clone(&self.schema),
            features_enabled: self.features_enabled.clone(),
            roles: Arc::clone(&self.roles),
            labels: Arc::clone(&self.labels),
            users: Arc::clone(&self.users),
            groups: Arc::clone(&self.groups),
            resources,
            policy: self.policy.clone(),
        }
    }

    /// The workspace as file data, normalised: lists sorted by id,
    /// resources by `(type, id)` with parents written `type:id`. Fails only
    /// if the kept head cannot be read back (a bug; see [`SpecHead`]).
    pub fn to_spec(&self) -> Result<WorkspaceSpec, SpecHeadError> {
        let mut spec = self.head_spec()?;
        spec.resources = Vec::with_capacity(self.listed_resources());
        spec.resources.extend(self.resource_specs());
        Ok(spec)
    }

    /// [`Self::to_spec`] without its resources.
    pub fn head_spec(&self) -> Result<WorkspaceSpec, SpecHeadError> {
        self.spec_head.spec()
    }

    /// The resources of [`Self::to_spec`], in its order, one at a time: an
    /// export of a million records need not hold them all as file data.
    pub fn resource_specs(&self) -> impl Iterator<Item = ResourceSpec> + '_ {
        let res = &self.resources;
        let mut types: Vec<TypeId> = (0..self.schema.types.len() as TypeId)
            .filter(|&t| !self.schema.ty(t).implicit)
            .collect();
        types.sort_by(|&a, &b| self.schema.ty(a).name.cmp(&self.schema.ty(b).name));
        types.into_iter().flat_map(move |t| {
            let name = &self.schema.ty(t).name;
            res.of_type(t).map(move |r| ResourceSpec {
                type_: name.clone(),
                id: res.id(r).into(),
                parent: res.parent_of(r).map(|p| self.resource_key(p)),
                labels: res
                    .labels(r)
                    .iter()
                    .map(|&l| self.labels[l as usize].clone())
                    .collect(),
            })
        })
    }

    /// How many resources the spec lists (implicit ones left out).
    pub fn listed_resources(&self) -> usize {
        (0..self.schema.types.len() as TypeId)
            .filter(|&t| !self.schema.ty(t).implicit)
            .map(|t| self.resources.count_of_type(t))
            .sum()
    }

    pub fn role_idx(&self, id: &str) -> Option<RoleIdx> {
        // Roles are sorted by id (built-ins merged in), see validate.
        self.roles
            .binary_search_by(|r| r.id.as_str().cmp(id))
            .ok()
            .map(|i| i as RoleIdx)
    }

    /// [`Self::role_idx`] of a stored id, without copying it.
    pub fn role_idx_of(&self, id: ResourceId<'_>) -> Option<RoleIdx> {
        self.roles
            .binary_search_by(|r| id.cmp_str(&r.id).reverse())
            .ok()
            .map(|i| i as RoleIdx)
    }

    pub fn user_idx(&self, id: &str) -> Option<UserIdx> {
        self.users
            .binary_search_by(|u| u.id.as_str().cmp(id))
            .ok()
            .map(|i| i as UserIdx)
    }

    pub fn group_idx(&self, id: &str) -> Option<GroupIdx> {
        self.groups
            .binary_search_by(|g| g.id.as_str().cmp(id))
            .ok()
            .map(|i| i as GroupIdx)
    }

    pub fn label_idx(&self, id: &str) -> Option<LabelIdx> {
        self.labels
            .binary_search_by(|l| l.as_str().cmp(id))
            .ok()
            .map(|i| i as LabelIdx)
    }

    /// `workspace`, `label:L` or `resource:TYPE:ID`, as written in files.
    pub fn scope_string(&self, s: Scope) -> String {
        match s {
            Scope::Workspace => "workspace".to_string(),
            Scope::Label(l) => format!("label:{}", self.labels[l as usize]),
            Scope::Resource(r) => format!("resource:{}", self.resource_key(r)),
        }
    }

    /// `type:id` of a resource.
    pub fn resource_key(&self, r: ResIdx) -> String {
        let t = self.resources.type_of(r);
        format!("{}:{}", self.schema.ty(t).name, self.resources.id(r))
    }

    /// Every binding a user holds, their own then their groups', each with
    /// the group it comes through.
    pub fn bindings_of(
        &self,
        u: UserIdx,
    ) -> impl Iterator<Item = (Binding, Option<GroupIdx>)> + '_ {
        let user = &self.users[u as usize];
        user.bindings
            .iter()
            .map(|b| (*b, None))
            .chain(user.groups.iter().flat_map(move |&g| {
                self.groups[g as usize]
                    .bindings
                    .iter()
                    .map(move |b| (*b, Some(g)))
            }))
    }

    /// Users who consume a seat (SPEC 1.4): those with an enabled seat role
    /// at workspace scope, directly or through a group. The rule names no
    /// status, so a suspended user keeps their seat until their role goes.
    pub fn seats_in_use(&self) -> usize {
        (0..self.users.len() as UserIdx)
            .filter(|&u| {
                self.bindings_of(u).any(|(b, _)| {
                    let r = &self.roles[b.role as usize];
                    b.scope == Scope::Workspace && r.seat && !r.disabled
                })
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending<'a>(type_: TypeId, id: &'a str, labels: &[LabelIdx]) -> PendingResource<'a> {
        PendingResource {
            type_,
            id,
            parent: None,
            labels: labels.iter().copied().collect(),
        }
    }

    fn build(type_count: usize, items: Vec<PendingResource<'_>>) -> ResourceTable {
        match ResourceTable::build(type_count, items) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_record_is_8_bytes() {
        assert_eq!(std::mem::size_of::<ResMeta>(), 8);
        assert_eq!(std::mem::align_of::<ResMeta>(), 8);
    }

    #[test]
    fn labels_inline_and_spilled_come_back_as_given() {
        const TOP: LabelIdx = PAIR_LABEL_END - 1;
        const BIG: LabelIdx = PAIR_LABEL_END;
        let many: Vec<LabelIdx> = (0..64).rev().collect();
        // Each set, and whether it spills.
        let sets: [(&[LabelIdx], bool); 18] = [
            (&[], false),
            (&[7], false),
            (&[0], false),
            (&[BIG], false),
            (&[(1 << 31) - 1], false),
            (&[0, 9], false),
            (&[9, 0], false),
            (&[TOP, TOP], false),
            (&[0, 0], false),
            (&[5, BIG], true),
            (&[BIG, 5], true),
            (&[1 << 31], true),
            (&[u32::MAX - 1], true),
            (&[u32::MAX], true),
            (&[u32::MAX, 3], true),
            (&[1, 2, 3], true),
            (&[4, 5, 6, 8, 10], true),
            (&many, true),
        ];
        let ids: Vec<String> = (0..sets.len()).map(|i| format!("r{i:02}")).collect();
        let items = ids
            .iter()
            .zip(sets)
            .map(|(id, (ls, _))| pending(0, id, ls))
            .collect();
        let t = build(1, items);
        for (i, (id, (ls, spills))) in ids.iter().zip(sets).enumerate() {
            let r = t.find(0, id).unwrap_or(u32::MAX);
            assert_eq!(r, i as ResIdx, "{id}");
            assert_eq!(&*t.labels(r), ls, "{id}");
            let w = t.meta[i].labels;
            assert_eq!(w != NO_LABELS && w & TAG == SPILLED, spills, "{id}: {w:#x}");
            assert_eq!(t.id(r).to_string(), *id);
        }
    }

    #[test]
    fn overlay_labels_come_back_as_set() {
        let mut res = Resources::new(build(1, vec![pending(0, "a", &[1, 2])]));
        assert_eq!(&*res.labels(0), &[1, 2]);
        let r = res.upsert(0, "b", None, [3, 4, 5].into_iter().collect());
        assert_eq!(&*res.labels(r), &[3, 4, 5]);
        res.upsert(0, "a", None, SmallVec::new());
        assert!(res.labels(0).is_empty());
        assert!(res.labels(r + 1).is_empty(), "an index beyond all");
    }

    #[test]
    fn types_are_told_by_range_even_with_empty_types_between() {
        // Types 0, 2 and 4 have no resources; the same id under two types.
        let items = vec![
            pending(3, "x", &[]),
            pending(1, "x", &[]),
            pending(1, "y", &[]),
            pending(5, "z", &[]),
        ];
        let t = build(6, items);
        let found: Vec<_> = [(1, "x"), (1, "y"), (3, "x"), (5, "z")]
            .iter()
            .map(|&(ty, id)| t.find(ty, id).map(|r| (t.type_of(r), t.id(r).to_string())))
            .collect();
        let want: Vec<_> = [(1, "x"), (1, "y"), (3, "x"), (5, "z")]
            .iter()
            .map(|&(ty, id)| Some((ty, id.to_string())))
            .collect();
        assert_eq!(found, want);
        assert_eq!(t.find(0, "x"), None);
        assert_eq!(t.find(3, "y"), None);
        assert_eq!(t.find(6, "x"), None, "a type beyond the table");
        assert_eq!(t.of_type(2), 2..2);
    }

    #[test]
    fn ids_of_one_width_and_of_many_are_found_and_given_back() {
        // Type 1: ids of one width (no offsets); 3: of many; 0, 2 and 4
        // have none; 5: one id.
        let fixed = ["r-000003", "r-000001", "r-000002", "r-000010"];
        let varying = ["m-1", "m-10", "m-100", "m-2", "x"];
        let mut items: Vec<_> = fixed.iter().map(|id| pending(1, id, &[])).collect();
        items.extend(varying.iter().map(|id| pending(3, id, &[])));
        items.push(pending(5, "m-1", &[]));
        let t = build(6, items);
        for (ty, ids) in [(1, &fixed[..]), (3, &varying[..]), (5, &["m-1"][..])] {
            let mut sorted = ids.to_vec();
            sorted.sort_unstable();
            let range = t.of_type(ty);
            let listed: Vec<String> = range.clone().map(|r| t.id(r).into()).collect();
            assert_eq!(listed, sorted, "type {ty}");
            for id in ids {
                let r = t.find(ty, id);
                assert!(
                    r.is_some_and(|r| range.contains(&r) && t.id(r) == *id),
                    "{ty}:{id}"
                );
                assert_eq!(r.map(|r| t.type_of(r)), Some(ty));
            }
        }
        // Of the wrong length, absent, or an id of another type.
        assert_eq!(t.find(1, "r-1"), None);
        assert_eq!(t.find(1, "r-0000010"), None);
        assert_eq!(t.find(1, "r-000004"), None);
        assert_eq!(t.find(1, "m-10"), None);
        assert_eq!(t.find(3, "r-000001"), None);
        assert_eq!(t.find(3, "m-3"), None);
        assert_eq!(t.find(3, ""), None);
        assert_eq!(t.find(5, "m-2"), None);
        assert_eq!(t.find(5, "m-10"), None);
        for ty in [0, 2, 4] {
            assert_eq!(t.find(ty, "m-1"), None, "empty type {ty}");
            assert_eq!(t.find(ty, ""), None, "empty type {ty}");
        }
        assert_eq!(t.find(6, "m-1"), None, "a type beyond the table");
    }

    #[test]
    fn parents_are_resolved_across_widths() {
        let mut items = vec![
            pending(0, "p-1", &[]),
            pending(0, "p-22", &[]),
            pending(1, "c-1", &[]),
            pending(1, "c-2", &[]),
            pending(1, "c-3", &[]),
        ];
        items[2].parent = Some((0, "p-22"));
        items[3].parent = Some((0, "p-1"));
        items[4].parent = Some((0, "p-3"));
        let t = build(2, items);
        let parent = |id| {
            let r = t.find(1, id)?;
            t.parent_of(r).map(|p| t.id(p).to_string())
        };
        assert_eq!(parent("c-1").as_deref(), Some("p-22"));
        assert_eq!(parent("c-2").as_deref(), Some("p-1"));
        assert_eq!(parent("c-3"), None, "an unknown parent");
        // The touches read in range, also for an index beyond the table.
        for r in 0..=t.len() as ResIdx + 1 {
            t.touch_id_and_parent(r);
        }
        assert_eq!(t.lookup_hint(1, "x-2"), None, "another prefix");
        assert_eq!(t.lookup_hint(1, "c-4"), None, "beyond the run");
        // c-1..c-3 are a run: the place is computed.
        let at = t.find(1, "c-2");
        assert!(at.is_some());
        assert_eq!(t.lookup_hint(1, "c-2"), at.map(LookupHint::At));
        // p-1 and p-22 are not: looked up by hash.
        let Some(LookupHint::Hash(h)) = t.lookup_hint(0, "p-22") else {
            panic!("p-22 is hashed")
        };
        t.touch_slot(h);
        assert_eq!(t.touch_record(h), t.find(0, "p-22"));
    }

    #[test]
    fn heap_sizes_count_records_spill_and_offsets() {
        let items = vec![
            pending(0, "aa", &[1, 2, 3]),
            pending(0, "bb", &[]),
            pending(1, "c", &[]),
            pending(1, "ddd", &[]),
        ];
        let t = build(2, items);
        let [(_, ids), (_, records), _] = t.heap_sizes();
        assert_eq!(ids, 8);
        // Four records, a spill of 4, 3 type starts, 3 offsets of type 1.
        let (_, columns) = t.ids.heap_sizes();
        assert_eq!(records, 4 * 8 + 4 * 4 + 3 * 4 + columns);
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        let limits = |resources, spilled, id_bytes| Limits {
            resources,
            spilled,
            id_bytes,
        };
        let items = || {
            vec![
                pending(0, "a", &[1, 2, 3]),
                pending(0, "b", &[4, 5, 6]),
                pending(1, "cc", &[]),
                pending(1, "ddd", &[]),
            ]
        };
        let built = |l: Limits| ResourceTable::build_within(2, items(), l).map(|t| t.len());
        assert_eq!(built(limits(4, 8, 5)), Ok(4), "exactly at every limit");
        assert_eq!(
            built(limits(3, 8, 5)),
            Err(TableLimit::Resources { count: 4, limit: 3 })
        );
        assert_eq!(
            built(limits(4, 7, 5)),
            Err(TableLimit::SpilledLabels { limit: 7 })
        );
        let e = TableLimit::IdBytes {
            type_: 1,
            bytes: 5,
            limit: 4,
        };
        assert_eq!(built(limits(4, 8, 4)), Err(e));
        assert!(e.to_string().contains("over the limit of 4 bytes"), "{e}");
        // Ids of one width take no offsets, so have no such limit.
        let same = vec![pending(0, "aa", &[]), pending(0, "bb", &[])];
        assert!(ResourceTable::build_within(1, same, limits(4, 8, 1)).is_ok());
    }
}
