//! A validated workspace: every reference resolved to a dense index.
//!
//! Invariant: a [`Workspace`] exists only if its spec broke no rule of
//! SPEC 1.3; it is built by [`super::validate`] and never changed after.

use smallvec::SmallVec;

use std::ops::Bound;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::id_table::{touch, IdTable};
use super::overlay::{Overlay, Record};
use super::schema::{PermSet, Schema, TypeId};
use super::spec::{ResourceSpec, Source, WorkspaceSpec};

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
/// and a check's cost is the number of them. Finding a resource by id reads
/// one line of the hash index and one of `meta`, which holds its parent and
/// (inline, for up to two) its labels, then the id's bytes to confirm; its
/// parent is one more line of `meta`. The type is told by the index range.
#[derive(Debug, Clone, Default)]
pub struct ResourceTable {
    /// All ids back to back; resource `r` is
    /// `ids[meta[r].id_start..meta[r + 1].id_start]`.
    ids: String,
    /// One per resource, plus one at the end that closes the last id.
    meta: Vec<ResMeta>,
    /// The labels of resources with more than two (see [`ResMeta`]).
    spilled_labels: Vec<LabelIdx>,
    /// `type_start[t]..type_start[t+1]` are the resources of type `t`.
    type_start: Vec<ResIdx>,
    lookup: IdTable,
}

/// A resource's parent, where its id starts, and its labels: 16 bytes, four
/// to a cache line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct ResMeta {
    parent: ResIdx,
    id_start: u32,
    /// Up to two labels inline, `[NO_LABEL, NO_LABEL]` for none and
    /// `[l, NO_LABEL]` for one; more are in `spilled_labels`, written
    /// `[SPILLED | start, count]`.
    labels: [LabelIdx; 2],
}

const NO_LABEL: LabelIdx = LabelIdx::MAX;
const SPILLED: u32 = 1 << 31;

impl ResMeta {
    fn new(id_start: u32) -> ResMeta {
        ResMeta {
            parent: NO_PARENT,
            id_start,
            labels: [NO_LABEL; 2],
        }
    }
}

fn key_hash(t: TypeId, id: &str) -> u64 {
    IdTable::hash(&(t, id))
}

/// One resource before it is placed in the table.
pub struct PendingResource<'a> {
    pub type_: TypeId,
    pub id: &'a str,
    pub parent: Option<(TypeId, &'a str)>,
    pub labels: SmallVec<[LabelIdx; 2]>,
}

impl ResourceTable {
    /// Builds the table; duplicates must have been removed, and every parent
    /// must be among `items` (unknown parents become [`NO_PARENT`]).
    pub fn build(type_count: usize, mut items: Vec<PendingResource<'_>>) -> ResourceTable {
        items.sort_unstable_by(|a, b| (a.type_, a.id).cmp(&(b.type_, b.id)));
        let n = items.len();
        let mut r = ResourceTable {
            ids: String::with_capacity(items.iter().map(|i| i.id.len()).sum()),
            meta: Vec::with_capacity(n + 1),
            spilled_labels: Vec::new(),
            type_start: vec![0; type_count + 1],
            lookup: IdTable::with_capacity(n),
        };
        for (i, it) in items.iter().enumerate() {
            let mut m = ResMeta::new(r.ids.len() as u32);
            match it.labels[..] {
                [] => {}
                [a] => m.labels = [a, NO_LABEL],
                [a, b] => m.labels = [a, b],
                ref more => {
                    m.labels = [SPILLED | r.spilled_labels.len() as u32, more.len() as u32];
                    r.spilled_labels.extend_from_slice(more);
                }
            }
            r.meta.push(m);
            r.ids.push_str(it.id);
            r.type_start[it.type_ as usize + 1] = i as ResIdx + 1;
            r.lookup.insert(key_hash(it.type_, it.id), i as ResIdx);
        }
        r.meta.push(ResMeta::new(r.ids.len() as u32));
        // Types with no resources start where the previous type ended.
        for t in 1..=type_count {
            r.type_start[t] = r.type_start[t].max(r.type_start[t - 1]);
        }
        for (i, it) in items.iter().enumerate() {
            if let Some((t, id)) = it.parent {
                r.meta[i].parent = r.find(t, id).unwrap_or(NO_PARENT);
            }
        }
        r
    }

    pub fn len(&self) -> usize {
        self.meta.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn id(&self, r: ResIdx) -> &str {
        let r = r as usize;
        &self.ids[self.meta[r].id_start as usize..self.meta[r + 1].id_start as usize]
    }

    #[inline]
    pub fn labels(&self, r: ResIdx) -> &[LabelIdx] {
        let m = &self.meta[r as usize];
        match m.labels {
            [NO_LABEL, _] => &[],
            [s, count] if s & SPILLED != 0 => {
                let start = (s & !SPILLED) as usize;
                &self.spilled_labels[start..start + count as usize]
            }
            [_, NO_LABEL] => &m.labels[..1],
            _ => &m.labels,
        }
    }

    #[inline]
    pub fn parent_of(&self, r: ResIdx) -> Option<ResIdx> {
        let p = self.meta[r as usize].parent;
        (p != NO_PARENT).then_some(p)
    }

    #[inline]
    pub fn find(&self, t: TypeId, id: &str) -> Option<ResIdx> {
        // The type is told by the index range (resources are sorted by type),
        // which saves a memory load per probe.
        let range = self.of_type(t);
        self.lookup
            .find(key_hash(t, id), |j| range.contains(&j) && self.id(j) == id)
    }

    /// The hash [`ResourceTable::find`] looks `(t, id)` up with.
    #[inline]
    pub fn lookup_hash(t: TypeId, id: &str) -> u64 {
        key_hash(t, id)
    }

    /// Touches the hash slot a lookup of `hash` reads first (see
    /// [`IdTable::touch`]).
    #[inline]
    pub fn touch_slot(&self, hash: u64) {
        self.lookup.touch(hash);
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

    /// Touches the first bytes of `r`'s id, which a lookup compares, and
    /// its parent's record, which a decision reads.
    #[inline]
    pub fn touch_id_and_parent(&self, r: ResIdx) {
        let Some(m) = self.meta.get(r as usize) else {
            return;
        };
        if let Some(b) = self.ids.as_bytes().get(m.id_start as usize) {
            touch(b);
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
        [
            ("resource ids", self.ids.capacity()),
            (
                "resource records (parent, labels)",
                self.meta.capacity() * std::mem::size_of::<ResMeta>()
                    + self.spilled_labels.capacity() * 4
                    + self.type_start.capacity() * 4,
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
    pub fn id(&self, r: ResIdx) -> &str {
        if (r as usize) < self.base.len() {
            self.base.id(r)
        } else {
            self.overlay.records.get(&r).map_or("", |x| &x.id)
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
    pub fn labels(&self, r: ResIdx) -> &[LabelIdx] {
        match self.record(r) {
            Some(x) => &x.labels,
            None if (r as usize) < self.base.len() => self.base.labels(r),
            None => &[],
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
        if (r as usize) < self.base.len() {
            !self.is_removed(r)
        } else {
            self.overlay.records.contains_key(&r)
        }
    }

    /// Removed resources.
    pub fn removed(&self) -> &RoaringBitmap {
        &self.overlay.removed
    }

    /// Base resources whose labels or parent changed since the base was
    /// built: the base's label postings and child lists are stale for them.
    pub fn changed(&self) -> &RoaringBitmap {
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
    /// double the memory). [`Self::to_spec`] gives the whole spec.
    pub spec_head: Arc<WorkspaceSpec>,
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
            spec_head: Arc::clone(&self.spec_head),
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
    /// resources by `(type, id)` with parents written `type:id`.
    pub fn to_spec(&self) -> WorkspaceSpec {
        let mut spec = WorkspaceSpec::clone(&self.spec_head);
        let res = &self.resources;
        let mut types: Vec<TypeId> = (0..self.schema.types.len() as TypeId)
            .filter(|&t| !self.schema.ty(t).implicit)
            .collect();
        types.sort_by(|&a, &b| self.schema.ty(a).name.cmp(&self.schema.ty(b).name));
        spec.resources = Vec::with_capacity(res.len());
        for t in types {
            let name = &self.schema.ty(t).name;
            spec.resources.extend(res.of_type(t).map(|r| {
                ResourceSpec {
                    type_: name.clone(),
                    id: res.id(r).to_string(),
                    parent: res.parent_of(r).map(|p| self.resource_key(p)),
                    labels: res
                        .labels(r)
                        .iter()
                        .map(|&l| self.labels[l as usize].clone())
                        .collect(),
                }
            }));
        }
        spec
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

    /// Users who consume a seat (SPEC 1.4): active users with an enabled seat
    /// role at workspace scope. A suspended user frees their seat.
    pub fn seats_in_use(&self) -> usize {
        (0..self.users.len() as UserIdx)
            .filter(|&u| {
                self.users[u as usize].active
                    && self.bindings_of(u).any(|(b, _)| {
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

    #[test]
    fn labels_inline_and_spilled_come_back_as_given() {
        let sets: [&[LabelIdx]; 6] = [&[], &[7], &[0, 9], &[1, 2, 3], &[4, 5, 6, 8, 10], &[0]];
        let ids = ["a", "b", "c", "d", "e", "f"];
        let items = ids
            .iter()
            .zip(sets)
            .map(|(id, ls)| pending(0, id, ls))
            .collect();
        let t = ResourceTable::build(1, items);
        for (i, (id, ls)) in ids.iter().zip(sets).enumerate() {
            let r = t.find(0, id).unwrap_or(u32::MAX);
            assert_eq!(r, i as ResIdx, "{id}");
            assert_eq!(t.labels(r), ls, "{id}");
            assert_eq!(t.id(r), *id);
        }
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
        let t = ResourceTable::build(6, items);
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
}
