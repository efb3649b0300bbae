//! Indexes built once per workspace so that a check is a few lookups.
//!
//! Invariants: every binding here has an enabled role (disabled roles grant
//! nothing, so they are dropped at build time); group bindings are flattened
//! into each member's lists.

use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;

use hashbrown::HashTable;
use roaring::RoaringBitmap;
use rustc_hash::FxHasher;
use smallvec::SmallVec;

use crate::model::schema::PermSet;
use crate::model::workspace::{LabelIdx, ResIdx, RoleIdx, Scope, UserIdx, Workspace};

/// What one user may do, precomputed.
#[derive(Debug, Clone, Default)]
pub struct UserIndex {
    /// Union of the permissions of the user's enabled workspace-scope roles.
    pub workspace_perms: PermSet,
    /// `(label, role)` for each enabled label-scope binding, sorted.
    pub label_grants: SmallVec<[(LabelIdx, RoleIdx); 4]>,
    /// `(resource, role)` for each enabled resource-scope binding, sorted.
    pub resource_grants: SmallVec<[(ResIdx, RoleIdx); 2]>,
    /// Highest rank among the user's enabled roles, at any scope.
    pub max_rank: Option<u32>,
}

/// Built from a workspace's users and its base resource table (see
/// [`crate::model::workspace::Resources`]); a resource delta shares it,
/// Arcs and all, with the revision before, so everything here about
/// resources describes the base: readers combine it with the overlay.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub users: Arc<Vec<UserIndex>>,
    /// User id → index, hashed: the first lookup of every check.
    user_lookup: Arc<HashTable<UserIdx>>,
    /// Label → the base resources carrying it.
    pub label_postings: Arc<Vec<RoaringBitmap>>,
    /// `children[child_start[r]..child_start[r+1]]` are r's direct children
    /// in the base, ascending (so grouped by type, each type in id order).
    child_start: Arc<Vec<u32>>,
    child_list: Arc<Vec<ResIdx>>,
    /// Resources that are the scope of a binding: a resource delta may not
    /// remove them.
    pub bound: Arc<RoaringBitmap>,
}

impl Index {
    pub fn build(ws: &Workspace) -> Index {
        let users = (0..ws.users.len() as u32)
            .map(|u| {
                let mut ix = UserIndex {
                    workspace_perms: PermSet::with_capacity(ws.schema.perm_count),
                    ..Default::default()
                };
                for (b, _) in ws.bindings_of(u) {
                    let role = &ws.roles[b.role as usize];
                    if role.disabled {
                        continue;
                    }
                    ix.max_rank = Some(ix.max_rank.map_or(role.rank, |m| m.max(role.rank)));
                    match b.scope {
                        Scope::Workspace => ix.workspace_perms.union_with(&role.perms),
                        Scope::Label(l) => ix.label_grants.push((l, b.role)),
                        Scope::Resource(r) => ix.resource_grants.push((r, b.role)),
                    }
                }
                ix.label_grants.sort_unstable();
                ix.label_grants.dedup();
                ix.resource_grants.sort_unstable();
                ix.resource_grants.dedup();
                ix
            })
            .collect();

        let res = ws.resources.base();
        let mut label_postings = vec![RoaringBitmap::new(); ws.labels.len()];
        let mut child_count = vec![0u32; res.len() + 1];
        for r in 0..res.len() as ResIdx {
            for &l in res.labels(r) {
                // `r` ascends, so `push` (an append, which does nothing
                // for a value already there) does what `insert` does
                // without searching the containers: insert was half of
                // building a large model's index.
                label_postings[l as usize].push(r);
            }
            if let Some(p) = res.parent_of(r) {
                child_count[p as usize + 1] += 1;
            }
        }
        let mut child_start = child_count;
        for i in 1..child_start.len() {
            child_start[i] += child_start[i - 1];
        }
        let mut fill = child_start.clone();
        let mut child_list = vec![0; res.len()];
        for r in 0..res.len() as ResIdx {
            if let Some(p) = res.parent_of(r) {
                child_list[fill[p as usize] as usize] = r;
                fill[p as usize] += 1;
            }
        }
        let mut user_lookup = HashTable::with_capacity(ws.users.len());
        for (i, u) in ws.users.iter().enumerate() {
            user_lookup.insert_unique(hash_str(&u.id), i as UserIdx, |&j| {
                hash_str(&ws.users[j as usize].id)
            });
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
            child_start: Arc::new(child_start),
            child_list: Arc::new(child_list),
            bound: Arc::new(bound),
        }
    }

    /// The index of a user by id.
    #[inline]
    pub fn user(&self, ws: &Workspace, id: &str) -> Option<UserIdx> {
        self.user_lookup
            .find(hash_str(id), |&j| ws.users[j as usize].id == id)
            .copied()
    }

    /// `r`'s direct children in the base table.
    pub fn base_children(&self, r: ResIdx) -> &[ResIdx] {
        let r = r as usize;
        match (self.child_start.get(r), self.child_start.get(r + 1)) {
            (Some(&a), Some(&b)) => &self.child_list[a as usize..b as usize],
            _ => &[],
        }
    }
}

#[inline]
fn hash_str(s: &str) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one(s)
}
