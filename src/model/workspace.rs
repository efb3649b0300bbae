//! A validated workspace: every reference resolved to a dense index.
//!
//! Invariant: a [`Workspace`] exists only if its spec broke no rule of
//! SPEC 1.3; it is built by [`super::validate`] and never changed after.

use hashbrown::HashTable;
use rustc_hash::FxHasher;
use smallvec::SmallVec;
use std::hash::{Hash, Hasher};

use super::schema::{PermSet, Schema, TypeId};
use super::spec::{Source, WorkspaceSpec};

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

/// Every resource of a workspace, implicit ones included, sorted by
/// `(type, id)`: the resources of one type are a contiguous range whose
/// order is the ascending order of their ids, so lists come out sorted.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// All ids back to back; resource `r` is
    /// `ids[meta[r].id_start..meta[r + 1].id_start]`.
    ids: String,
    /// Where each resource's id and labels start, and its parent, side by
    /// side so that a lookup touches one cache line, not three arrays. One
    /// extra entry at the end closes the last resource's ranges.
    meta: Vec<ResMeta>,
    pub type_of: Vec<TypeId>,
    label_list: Vec<LabelIdx>,
    /// `type_start[t]..type_start[t+1]` are the resources of type `t`.
    pub type_start: Vec<ResIdx>,
    lookup: HashTable<ResIdx>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ResMeta {
    id_start: u32,
    label_start: u32,
    parent: ResIdx,
}

fn key_hash(t: TypeId, id: &str) -> u64 {
    let mut h = FxHasher::default();
    t.hash(&mut h);
    id.hash(&mut h);
    h.finish()
}

/// One resource before it is placed in the table.
pub struct PendingResource<'a> {
    pub type_: TypeId,
    pub id: &'a str,
    pub parent: Option<(TypeId, &'a str)>,
    pub labels: SmallVec<[LabelIdx; 2]>,
}

impl Resources {
    /// Builds the table; duplicates must have been removed, and every parent
    /// must be among `items` (unknown parents become [`NO_PARENT`]).
    pub fn build(type_count: usize, mut items: Vec<PendingResource<'_>>) -> Resources {
        items.sort_unstable_by(|a, b| (a.type_, a.id).cmp(&(b.type_, b.id)));
        let n = items.len();
        let mut r = Resources {
            ids: String::with_capacity(items.iter().map(|i| i.id.len()).sum()),
            meta: Vec::with_capacity(n + 1),
            type_of: Vec::with_capacity(n),
            label_list: Vec::new(),
            type_start: vec![0; type_count + 1],
            lookup: HashTable::with_capacity(n),
        };
        for (i, it) in items.iter().enumerate() {
            r.meta.push(ResMeta {
                id_start: r.ids.len() as u32,
                label_start: r.label_list.len() as u32,
                parent: NO_PARENT,
            });
            r.ids.push_str(it.id);
            r.type_of.push(it.type_);
            r.label_list.extend_from_slice(&it.labels);
            r.type_start[it.type_ as usize + 1] = i as ResIdx + 1;
        }
        r.meta.push(ResMeta {
            id_start: r.ids.len() as u32,
            label_start: r.label_list.len() as u32,
            parent: NO_PARENT,
        });
        // Types with no resources start where the previous type ended.
        for t in 1..=type_count {
            r.type_start[t] = r.type_start[t].max(r.type_start[t - 1]);
        }
        for i in 0..n as ResIdx {
            let h = key_hash(r.type_of[i as usize], r.id(i));
            let Resources {
                ids,
                meta,
                type_of,
                lookup,
                ..
            } = &mut r;
            lookup.insert_unique(h, i, |&j| {
                let j = j as usize;
                let s = &ids[meta[j].id_start as usize..meta[j + 1].id_start as usize];
                key_hash(type_of[j], s)
            });
        }
        for (i, it) in items.iter().enumerate() {
            if let Some((t, id)) = it.parent {
                r.meta[i].parent = r.find(t, id).unwrap_or(NO_PARENT);
            }
        }
        r
    }

    pub fn len(&self) -> usize {
        self.type_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.type_of.is_empty()
    }

    #[inline]
    pub fn id(&self, r: ResIdx) -> &str {
        let r = r as usize;
        &self.ids[self.meta[r].id_start as usize..self.meta[r + 1].id_start as usize]
    }

    #[inline]
    pub fn labels(&self, r: ResIdx) -> &[LabelIdx] {
        let r = r as usize;
        &self.label_list[self.meta[r].label_start as usize..self.meta[r + 1].label_start as usize]
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
            .find(key_hash(t, id), |&j| range.contains(&j) && self.id(j) == id)
            .copied()
    }

    /// The resources of one type, in ascending id order.
    pub fn of_type(&self, t: TypeId) -> std::ops::Range<ResIdx> {
        let t = t as usize;
        match (self.type_start.get(t), self.type_start.get(t + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        }
    }
}

/// A validated workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: String,
    /// The spec it was built from, normalised (sorted by id), for export and
    /// for applying deltas.
    pub spec: WorkspaceSpec,
    pub schema: Schema,
    /// Enabled features, indexed by `FeatureId`.
    pub features_enabled: Vec<bool>,
    pub roles: Vec<Role>,
    pub labels: Vec<String>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub resources: Resources,
    pub policy: Policy,
}

impl Workspace {
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
        let t = self.resources.type_of[r as usize];
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
