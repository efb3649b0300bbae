//! Indexes built once per workspace so that a check is a few lookups.
//!
//! Invariants: every binding here has an enabled role (disabled roles grant
//! nothing, so they are dropped at build time); group bindings are flattened
//! into each member's lists.

use std::sync::Arc;

use roaring::RoaringBitmap;
use smallvec::SmallVec;

use crate::model::id_table::{touch, IdTable};
use crate::model::names;
use crate::model::schema::PermSet;
use crate::model::workspace::{
    LabelIdx, ResIdx, ResourceTable, RoleIdx, Scope, UserIdx, Workspace,
};

/// Bytes of an id kept inline in a [`UserIndex`]; a longer id is boxed.
const INLINE_ID: usize = 22;

/// A user id stored inline when short (every generated id is), so that
/// comparing it during the lookup touches no memory beyond the record;
/// 24 bytes.
#[derive(Debug, Clone)]
pub enum ShortId {
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    Boxed(Box<str>),
}

impl ShortId {
    pub fn new(id: &str) -> ShortId {
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE_ID => {
                let mut bytes = [0; INLINE_ID];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                ShortId::Inline { len, bytes }
            }
            _ => ShortId::Boxed(id.into()),
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ShortId::Inline { len, bytes } => &bytes[..usize::from(*len)],
            ShortId::Boxed(s) => s.as_bytes(),
        }
    }

    #[inline]
    pub fn is(&self, id: &str) -> bool {
        names::eq(self.as_bytes(), id.as_bytes())
    }
}

impl Default for ShortId {
    fn default() -> Self {
        ShortId::new("")
    }
}

/// Grants held inline in a [`UserIndex`]: they fill its second cache line.
const INLINE_GRANTS: usize = 7;

/// Everything a check needs about one user, precomputed, in two adjacent
/// cache lines (128 bytes, aligned to 128 so that they are the pair the
/// hardware's adjacent-line prefetch fetches together). The first line is
/// what every check reads: the id the lookup compares, whether the user is
/// active, the workspace-scope permissions, the highest rank and how many
/// scoped grants there are. The second holds the label- and resource-scope
/// grants, read only when the workspace scope does not grant and there are
/// some. Nothing here points to the heap for a
/// user with an id of at most 22 bytes, at most 7 scoped grants and a
/// schema of at most 128 permissions.
#[derive(Debug, Clone, Default)]
#[repr(C, align(128))]
pub struct UserIndex {
    /// The user's id, compared by [`Index::user`].
    pub id: ShortId,
    /// Union of the permissions of the user's enabled workspace-scope roles.
    pub workspace_perms: PermSet,
    /// Highest rank among the user's enabled roles, at any scope, if
    /// `has_role` (see [`UserIndex::max_rank`]).
    rank: u32,
    /// `grants[..label_count]` are the label-scope ones.
    label_count: u32,
    /// `grants.len()`, here so that a user without scoped grants reads
    /// nothing from the second line.
    grant_count: u32,
    /// Not suspended.
    pub active: bool,
    /// The user holds an enabled role.
    has_role: bool,
    /// `(label, role)` for each enabled label-scope binding, sorted, then
    /// `(resource, role)` for each enabled resource-scope binding, sorted.
    grants: SmallVec<[(u32, RoleIdx); INLINE_GRANTS]>,
}

const _: () = {
    assert!(std::mem::size_of::<ShortId>() == 24);
    assert!(std::mem::size_of::<UserIndex>() == 128);
    assert!(std::mem::offset_of!(UserIndex, has_role) < 64);
    assert!(std::mem::offset_of!(UserIndex, grants) == 64);
};

impl UserIndex {
    /// Heap bytes beyond the record: a long id, spilled grants.
    fn heap_size(&self) -> usize {
        let id = match &self.id {
            ShortId::Boxed(s) => s.len(),
            ShortId::Inline { .. } => 0,
        };
        let grants = if self.grants.spilled() {
            self.grants.capacity() * std::mem::size_of::<(u32, RoleIdx)>()
        } else {
            0
        };
        id + grants
    }

    /// Highest rank among the user's enabled roles, at any scope.
    #[inline]
    pub fn max_rank(&self) -> Option<u32> {
        self.has_role.then_some(self.rank)
    }

    /// `(label, role)` for each enabled label-scope binding, sorted.
    #[inline]
    pub fn label_grants(&self) -> &[(LabelIdx, RoleIdx)] {
        match self.label_count {
            0 => &[],
            n => &self.grants[..n as usize],
        }
    }

    /// `(resource, role)` for each enabled resource-scope binding, sorted.
    #[inline]
    pub fn resource_grants(&self) -> &[(ResIdx, RoleIdx)] {
        if self.grant_count == self.label_count {
            &[]
        } else {
            &self.grants[self.label_count as usize..]
        }
    }

    /// Whether the record points to no heap memory.
    pub fn is_inline(&self) -> bool {
        matches!(self.id, ShortId::Inline { .. })
            && self.workspace_perms.is_inline()
            && !self.grants.spilled()
    }
}

/// Built from a workspace's users and its base resource table (see
/// [`crate::model::workspace::Resources`]); a resource delta shares it,
/// Arcs and all, with the revision before, so everything here about
/// resources describes the base: readers combine it with the overlay.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub users: Arc<Vec<UserIndex>>,
    /// User id → index, hashed: the first lookup of every check.
    user_lookup: Arc<IdTable>,
    /// Label → the base resources carrying it.
    pub label_postings: Arc<Vec<RoaringBitmap>>,
    children: Arc<Children>,
    /// Resources that are the scope of a binding: a resource delta may not
    /// remove them.
    pub bound: Arc<RoaringBitmap>,
}

/// The direct children of the base's resources, kept for parents only: a
/// few thousand Minis among a million records, so no array per resource.
///
/// Each parent's children, ascending, are written as the gaps between
/// them (the first counted from 0) in LEB128, seven bits a byte: a million
/// children spread over a million indices take about two bytes each
/// instead of four. They are read only in order (lists walk them), so
/// nothing needs an index into them.
#[derive(Debug, Clone, Default)]
struct Children {
    /// Resources with at least one child, ascending.
    parents: Vec<ResIdx>,
    /// `gaps[start[i]..start[i + 1]]` encode the children of `parents[i]`.
    start: Vec<usize>,
    /// How many children `parents[i]` has.
    counts: Vec<u32>,
    gaps: Vec<u8>,
}

impl Children {
    fn build(res: &ResourceTable) -> Children {
        let n = res.len();
        // For the build only: each parent's children, ascending (resources
        // are visited in order), in one array grouped by parent.
        let mut count = vec![0u32; n];
        for r in 0..n as ResIdx {
            if let Some(p) = res.parent_of(r) {
                count[p as usize] += 1;
            }
        }
        let parents: Vec<ResIdx> = (0..n as ResIdx)
            .filter(|&r| count[r as usize] > 0)
            .collect();
        let counts: Vec<u32> = parents.iter().map(|&p| count[p as usize]).collect();
        let mut at = count; // now: where the next child of each parent goes
        let mut total = 0u32;
        for &p in &parents {
            let c = std::mem::replace(&mut at[p as usize], total);
            total += c;
        }
        let mut list = vec![0; total as usize];
        for r in 0..n as ResIdx {
            if let Some(p) = res.parent_of(r) {
                list[at[p as usize] as usize] = r;
                at[p as usize] += 1;
            }
        }
        drop(at);
        let mut gaps = Vec::with_capacity(list.len() * 2);
        let mut start = Vec::with_capacity(parents.len() + 1);
        let mut from = 0;
        for &c in &counts {
            start.push(gaps.len());
            let mut prev = 0;
            for &child in &list[from..from + c as usize] {
                write_varint(&mut gaps, child - prev);
                prev = child;
            }
            from += c as usize;
        }
        start.push(gaps.len());
        gaps.shrink_to_fit();
        Children {
            parents,
            start,
            counts,
            gaps,
        }
    }

    fn of(&self, r: ResIdx) -> ChildIter<'_> {
        match self.parents.binary_search(&r) {
            Ok(i) => ChildIter {
                gaps: &self.gaps[self.start[i]..self.start[i + 1]],
                prev: 0,
            },
            Err(_) => ChildIter { gaps: &[], prev: 0 },
        }
    }

    fn count(&self, r: ResIdx) -> usize {
        self.parents
            .binary_search(&r)
            .map_or(0, |i| self.counts[i] as usize)
    }

    fn heap_size(&self) -> usize {
        self.parents.capacity() * 4
            + self.start.capacity() * std::mem::size_of::<usize>()
            + self.counts.capacity() * 4
            + self.gaps.capacity()
    }
}

fn write_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A parent's children in the base table, ascending (see [`Children`]).
#[derive(Debug, Clone)]
pub struct ChildIter<'a> {
    gaps: &'a [u8],
    prev: ResIdx,
}

impl Iterator for ChildIter<'_> {
    type Item = ResIdx;

    #[inline]
    fn next(&mut self) -> Option<ResIdx> {
        let mut gap = 0u32;
        let mut shift = 0;
        loop {
            let (&b, rest) = self.gaps.split_first()?;
            self.gaps = rest;
            gap |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        self.prev += gap;
        Some(self.prev)
    }
}

impl Index {
    pub fn build(ws: &Workspace) -> Index {
        let users = ws
            .users
            .iter()
            .enumerate()
            .map(|(u, user)| {
                let mut ix = UserIndex {
                    id: ShortId::new(&user.id),
                    active: user.active,
                    workspace_perms: PermSet::with_capacity(ws.schema.perm_count),
                    ..Default::default()
                };
                let mut labels: SmallVec<[(LabelIdx, RoleIdx); INLINE_GRANTS]> = SmallVec::new();
                let mut resources: SmallVec<[(ResIdx, RoleIdx); INLINE_GRANTS]> = SmallVec::new();
                for (b, _) in ws.bindings_of(u as UserIdx) {
                    let role = &ws.roles[b.role as usize];
                    if role.disabled {
                        continue;
                    }
                    ix.rank = if ix.has_role {
                        ix.rank.max(role.rank)
                    } else {
                        role.rank
                    };
                    ix.has_role = true;
                    match b.scope {
                        Scope::Workspace => ix.workspace_perms.union_with(&role.perms),
                        Scope::Label(l) => labels.push((l, b.role)),
                        Scope::Resource(r) => resources.push((r, b.role)),
                    }
                }
                labels.sort_unstable();
                labels.dedup();
                resources.sort_unstable();
                resources.dedup();
                ix.label_count = labels.len() as u32;
                ix.grant_count = (labels.len() + resources.len()) as u32;
                ix.grants = labels;
                ix.grants.extend_from_slice(&resources);
                ix
            })
            .collect();

        let res = ws.resources.base();
        let mut label_postings = vec![RoaringBitmap::new(); ws.labels.len()];
        for r in 0..res.len() as ResIdx {
            for &l in res.labels(r).iter() {
                // `r` ascends, so `push` (an append, which does nothing
                // for a value already there) does what `insert` does
                // without searching the containers: insert was half of
                // building a large model's index.
                label_postings[l as usize].push(r);
            }
        }
        let mut user_lookup = IdTable::with_capacity(ws.users.len());
        for (i, u) in ws.users.iter().enumerate() {
            user_lookup.insert(IdTable::hash(u.id.as_str()), i as UserIdx);
        }
        let bound = ws
            .users
            .iter()
            .flat_map(|u| &u.bindings)
            .chain(ws.groups.iter().flat_map(|g| &g.bindings))
            .filter_map(|b| match b.scope {
                Scope::Resource(r) => Some(r),
                _ => None,
            })
            .collect();
        Index {
            users: Arc::new(users),
            user_lookup: Arc::new(user_lookup),
            label_postings: Arc::new(label_postings),
            children: Arc::new(Children::build(res)),
            bound: Arc::new(bound),
        }
    }

    /// The index of a user by id: one cache line of the table, then the
    /// first line of the user's record to confirm the id.
    #[inline]
    pub fn user(&self, id: &str) -> Option<UserIdx> {
        let users = &self.users;
        self.user_lookup
            .find(IdTable::hash(id), |j| users[j as usize].id.is(id))
    }

    /// Touches the hash slot a lookup of the user whose id hashes to
    /// `hash` ([`IdTable::hash`]) reads first.
    #[inline]
    pub fn touch_user_slot(&self, hash: u64) {
        self.user_lookup.touch(hash);
    }

    /// Touches both lines of the record of the user a lookup of `hash`
    /// will most likely find (its slot should have been touched before).
    #[inline]
    pub fn touch_user(&self, hash: u64) {
        if let Some(u) = self.user_lookup.guess(hash) {
            if let Some(ix) = self.users.get(u as usize) {
                touch(&ix.active);
                // The second line, with the scoped grants.
                touch(&ix.grants.len());
            }
        }
    }

    /// Bytes held on the heap, per part, for memory reports.
    pub fn heap_sizes(&self) -> [(&'static str, usize); 4] {
        let c = &self.children;
        let grants: usize = self.users.iter().map(|u| u.heap_size()).sum();
        [
            (
                "users (records, lookup)",
                self.users.capacity() * std::mem::size_of::<UserIndex>()
                    + grants
                    + self.user_lookup.heap_size(),
            ),
            (
                "label postings",
                self.label_postings
                    .iter()
                    .map(RoaringBitmap::serialized_size)
                    .sum(),
            ),
            ("children", c.heap_size()),
            ("bound resources", self.bound.serialized_size()),
        ]
    }

    /// `r`'s direct children in the base table, ascending (so grouped by
    /// type, each type in id order).
    pub fn base_children(&self, r: ResIdx) -> ChildIter<'_> {
        self.children.of(r)
    }

    /// How many direct children `r` has in the base table.
    pub fn base_child_count(&self, r: ResIdx) -> usize {
        self.children.count(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CompiledWorkspace;

    const LONG: &str = "u-with-an-id-longer-than-the-inline-buffer";

    fn index() -> Arc<CompiledWorkspace> {
        let text = format!(
            r#"
workspaces:
  - id: w
    labels: [site-a, site-b]
    users:
      - {{ id: u-1, bindings: [{{ role: admin }}, {{ role: viewer, scope: "label:site-b" }},
                              {{ role: viewer, scope: "label:site-a" }},
                              {{ role: viewer, scope: "resource:mini:m-1" }}] }}
      - {{ id: {LONG}, status: suspended, bindings: [{{ role: viewer, scope: "label:site-a" }}] }}
      - {{ id: u-none }}
    resources:
      - {{ type: mini, id: m-1 }}
"#
        );
        crate::engine::compiled_w(&text)
    }

    #[test]
    fn users_are_found_by_id_short_or_long() {
        let cw = index();
        let (ws, ix) = (&cw.model, &cw.index);
        for (i, u) in ws.users.iter().enumerate() {
            assert_eq!(ix.user(&u.id), Some(i as UserIdx), "{}", u.id);
            assert!(ix.users[i].id.is(&u.id));
            assert_eq!(ix.users[i].active, u.active);
        }
        let at = |id: &str| match ix.user(id) {
            Some(u) => &ix.users[u as usize],
            None => panic!("no user {id}"),
        };
        assert!(matches!(at(LONG).id, ShortId::Boxed(_)));
        assert!(matches!(at("u-1").id, ShortId::Inline { .. }));
        for absent in ["", "u", "u-10", "u-1 ", &LONG[..LONG.len() - 1]] {
            assert_eq!(ix.user(absent), None, "{absent:?}");
        }
        assert!(ShortId::new(&"x".repeat(INLINE_ID)).is(&"x".repeat(INLINE_ID)));
        assert!(!ShortId::new(&"x".repeat(INLINE_ID)).is(&"x".repeat(INLINE_ID + 1)));
        assert!(ShortId::new(&"x".repeat(INLINE_ID + 1)).is(&"x".repeat(INLINE_ID + 1)));
    }

    #[test]
    fn scoped_grants_are_split_sorted_and_inline() {
        let cw = index();
        let (ws, ix) = (&cw.model, &cw.index);
        let at = |id: &str| match ix.user(id) {
            Some(u) => &ix.users[u as usize],
            None => panic!("no user {id}"),
        };
        let u = at("u-1");
        let labels: Vec<LabelIdx> = u.label_grants().iter().map(|g| g.0).collect();
        assert_eq!(labels.len(), 2);
        assert!(labels[0] < labels[1]);
        assert_eq!(u.resource_grants().len(), 1);
        assert!(u.max_rank().is_some());
        assert!(u.active && u.is_inline());
        assert!(!at(LONG).active && !at(LONG).is_inline());
        let none = at("u-none");
        assert!(none.label_grants().is_empty() && none.resource_grants().is_empty());
        assert_eq!(none.max_rank(), None);
        assert!(none.workspace_perms.is_empty());
        assert_eq!(ws.users.len(), 3);
    }

    #[test]
    fn every_parent_lists_its_children_ascending() {
        // 300 records under three minis, placed so that gaps between
        // siblings are 1 and a few hundred; m-3 has none.
        let mut text = String::from(
            "workspaces:\n  - id: w\n    resources:\n      - { type: mini, id: m-1 }\n      - { type: mini, id: m-2 }\n      - { type: mini, id: m-3 }\n",
        );
        for i in 0..300 {
            let parent = if i % 7 == 0 { "m-2" } else { "m-1" };
            text +=
                &format!("      - {{ type: record, id: r-{i:03}, parent: \"mini:{parent}\" }}\n");
        }
        let cw = crate::engine::compiled_w(&text);
        let res = &cw.model.resources;
        let mut with_children = 0;
        for p in 0..res.len() as ResIdx {
            let want: Vec<ResIdx> = (0..res.len() as ResIdx)
                .filter(|&r| res.parent_of(r) == Some(p))
                .collect();
            let got: Vec<ResIdx> = cw.index.base_children(p).collect();
            assert_eq!(got, want, "children of {}", res.id(p));
            assert_eq!(cw.index.base_child_count(p), want.len());
            with_children += usize::from(!want.is_empty());
        }
        assert_eq!(with_children, 2);
    }

    proptest::proptest! {
        /// Gaps of every width, up to the largest index, decode as written.
        #[test]
        fn child_gaps_decode_as_written(
            mut children in proptest::collection::vec(
                proptest::prop_oneof![0u32..200, 0u32..1 << 20, 0..u32::MAX],
                0..50,
            ),
        ) {
            children.sort_unstable();
            children.dedup();
            let mut gaps = Vec::new();
            let mut prev = 0;
            for &c in &children {
                write_varint(&mut gaps, c - prev);
                prev = c;
            }
            let got: Vec<ResIdx> = ChildIter { gaps: &gaps, prev: 0 }.collect();
            proptest::prop_assert_eq!(got, children);
        }
    }
}
