//! Random but valid snapshots, and random requests against them.
//!
//! A [`WorkspacePlan`] is a bag of small numbers that proptest generates and
//! shrinks; [`WorkspacePlan::build`] turns it into a `WorkspaceSpec` that is
//! valid by construction (every index is taken modulo what exists, and
//! parents are created before their children).

use proptest::collection::vec;
use proptest::prelude::*;

use rolecall::model::spec::{
    BindingSpec, CatalogName, GroupSpec, PolicySpec, ResourceSpec, RoleSpec, Source, TypeSpec,
    UserSpec, UserStatus, WorkspaceSpec,
};

use crate::reference::{builtins, MINI_FEATURES};

/// Custom types a workspace may add: `(name, parent, actions)`. Parents come
/// before children, so resources can be created in this order. The pool
/// holds a three-level chain (mini → record → note), a chain under a custom
/// type (audit → audit_item), a parent with no `read` action (sealed →
/// sealed_item: never reachable), and children of implicit types (role,
/// user, the workspace itself).
pub const TYPE_POOL: &[(&str, Option<&str>, &[&str])] = &[
    ("manual", None, &["create", "read", "update", "delete"]),
    ("manuals_trash", None, &["restore"]),
    ("audit", None, &["create", "read", "update", "delete"]),
    ("audit_item", Some("audit"), &["read", "update"]),
    ("note", Some("record"), &["read", "write"]),
    ("sealed", None, &["open"]),
    ("sealed_item", Some("sealed"), &["read"]),
    ("role_note", Some("role"), &["read", "edit"]),
    ("profile", Some("user"), &["read", "edit"]),
    ("ws_doc", Some("workspace"), &["read", "publish"]),
];

/// Features a custom type may belong to (`chat` is shared with the Mini
/// feature of the same name).
const TYPE_FEATURES: [Option<&str>; 5] =
    [None, Some("manuals"), Some("audits"), Some("chat"), None];

const RANKS: [u32; 10] = [0, 0, 5, 10, 20, 50, 90, 95, 100, 150];
const LABEL_POOL: [&str; 4] = ["site-b", "site-a", "x", "dementia"];
const ROLE_POOL: [&str; 5] = ["coord", "auditor", "lead", "temp", "zz-top"];
const USER_POOL: [&str; 7] = ["nina", "ada", "Bob", "u-1", "u-10", "u-2", "zed"];
const GROUP_POOL: [&str; 4] = ["g-b", "g-a", "nurses", "g-c"];
/// Resource ids, shared between types (so `mini:a` and `record:a` can both
/// exist) and deliberately not in insertion order; `Ω` sorts after ASCII.
/// A type takes a run of them from `3 * k`, so the first types often get
/// ids of one prefix and one count of digits (`d-0217`, `ü07`), which the
/// table stores packed, or numbers in sequence (`n-10`..`n-12`), which it
/// stores as a run, and the others mixed ones.
const ID_POOL: [&str; 18] = [
    "d-9000", "d-0217", "d-0100", "n-12", "n-10", "n-11", "ü07", "ü42", "k", "a", "B", "a-1",
    "a10", "a2", "z", "m", "Ω", "0",
];

#[derive(Debug, Clone)]
pub struct BindPlan {
    pub role: usize,
    pub scope_kind: u8,
    pub scope_idx: usize,
}

#[derive(Debug, Clone)]
pub struct RolePlan {
    pub rank: usize,
    pub disabled: bool,
    pub seat: bool,
    pub org: u8,
    /// `(kind, index)`: kind 0 is `*:*`, 1–2 `type:*`, else one action.
    pub grants: Vec<(u8, usize)>,
}

#[derive(Debug, Clone)]
pub struct UserPlan {
    pub suspended: bool,
    pub bindings: Vec<BindPlan>,
}

#[derive(Debug, Clone)]
pub struct GroupPlan {
    pub directory: bool,
    pub members: Vec<usize>,
    pub bindings: Vec<BindPlan>,
}

#[derive(Debug, Clone)]
pub struct ResPlan {
    pub ty: usize,
    pub parent: usize,
    pub bare_parent: bool,
    pub labels: u8,
}

/// A resource not yet created, as a request names it.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub ty: usize,
    /// 0: no parent, 1: an existing one as `type:id`, 2: as a bare id,
    /// 3: one that does not exist.
    pub parent_kind: u8,
    pub parent_idx: usize,
    /// Bit 4 adds a label the workspace does not declare.
    pub labels: u8,
}

#[derive(Debug, Clone)]
pub struct WorkspacePlan {
    pub catalog: u8,
    pub types: Vec<(bool, u8)>,
    pub labels: usize,
    pub roles: Vec<RolePlan>,
    pub users: Vec<UserPlan>,
    pub groups: Vec<GroupPlan>,
    pub resources: Vec<ResPlan>,
    /// `None`: every feature on; otherwise a mask over the schema's features.
    pub features: Option<u16>,
    pub news: Vec<NewPlan>,
}

fn bind_plan() -> impl Strategy<Value = BindPlan> {
    (0usize..64, 0u8..7, 0usize..64).prop_map(|(role, scope_kind, scope_idx)| BindPlan {
        role,
        scope_kind,
        scope_idx,
    })
}

fn role_plan() -> impl Strategy<Value = RolePlan> {
    (
        0usize..RANKS.len(),
        prop::bool::weighted(0.2),
        any::<bool>(),
        0u8..3,
        vec((0u8..12, 0usize..256), 0..4),
    )
        .prop_map(|(rank, disabled, seat, org, grants)| RolePlan {
            rank,
            disabled,
            seat,
            org,
            grants,
        })
}

fn user_plan() -> impl Strategy<Value = UserPlan> {
    (prop::bool::weighted(0.15), vec(bind_plan(), 0..6)).prop_map(|(suspended, bindings)| {
        UserPlan {
            suspended,
            bindings,
        }
    })
}

fn group_plan() -> impl Strategy<Value = GroupPlan> {
    (any::<bool>(), vec(0usize..16, 0..5), vec(bind_plan(), 0..4)).prop_map(
        |(directory, members, bindings)| GroupPlan {
            directory,
            members,
            bindings,
        },
    )
}

fn res_plan() -> impl Strategy<Value = ResPlan> {
    (
        0usize..64,
        0usize..64,
        prop::bool::weighted(0.2),
        any::<u8>(),
    )
        .prop_map(|(ty, parent, bare_parent, labels)| ResPlan {
            ty,
            parent,
            bare_parent,
            labels,
        })
}

fn new_plan() -> impl Strategy<Value = NewPlan> {
    (0usize..64, 0u8..4, 0usize..64, any::<u8>()).prop_map(
        |(ty, parent_kind, parent_idx, labels)| NewPlan {
            ty,
            parent_kind,
            parent_idx,
            labels,
        },
    )
}

pub fn workspace_plan() -> impl Strategy<Value = WorkspacePlan> {
    (
        0u8..4,
        vec((prop::bool::weighted(0.45), 0u8..5), TYPE_POOL.len()),
        0usize..=LABEL_POOL.len(),
        vec(role_plan(), 0..=ROLE_POOL.len()),
        vec(user_plan(), 1..=USER_POOL.len()),
        vec(group_plan(), 0..=GROUP_POOL.len()),
        vec(res_plan(), 0..28),
        prop::option::weighted(0.7, any::<u16>()),
        vec(new_plan(), 0..6),
    )
        .prop_map(
            |(catalog, types, labels, roles, users, groups, resources, features, news)| {
                WorkspacePlan {
                    catalog,
                    types,
                    labels,
                    roles,
                    users,
                    groups,
                    resources,
                    features,
                    news,
                }
            },
        )
}

/// A built workspace plus the not-yet-created resources to ask about.
#[derive(Debug, Clone)]
pub struct Built {
    pub spec: WorkspaceSpec,
    pub news: Vec<NewResource>,
}

#[derive(Debug, Clone)]
pub struct NewResource {
    pub ty: String,
    pub parent: Option<String>,
    pub labels: Vec<String>,
}

impl WorkspacePlan {
    pub fn build(&self, id: &str) -> Built {
        let catalog = match self.catalog {
            0 => CatalogName::Minikai,
            1 => CatalogName::Environment,
            2 => CatalogName::Seats,
            _ => CatalogName::None,
        };

        // Types: a child only when its parent type is there.
        let mut types: Vec<TypeSpec> = Vec::new();
        for (i, &(on, feature)) in self.types.iter().enumerate() {
            let (name, parent, actions) = TYPE_POOL[i];
            let parent_ok = match parent {
                None => true,
                Some(p) => {
                    ["record", "role", "user", "workspace"].contains(&p)
                        || types.iter().any(|t| t.name == p)
                }
            };
            if on && parent_ok {
                types.push(TypeSpec {
                    name: name.to_string(),
                    parent: parent.map(str::to_string),
                    actions: actions.iter().map(|a| a.to_string()).collect(),
                    feature: TYPE_FEATURES[feature as usize].map(str::to_string),
                });
            }
        }
        // Every (type, actions) of the schema, for grants.
        let mut schema: Vec<(String, Option<String>, Vec<String>)> =
            crate::reference::DEFAULT_SCHEMA
                .iter()
                .map(|(t, p, a)| {
                    (
                        t.to_string(),
                        p.map(str::to_string),
                        a.iter().map(|x| x.to_string()).collect(),
                    )
                })
                .collect();
        for t in &types {
            schema.push((t.name.clone(), t.parent.clone(), t.actions.clone()));
        }
        let mut all_features: Vec<String> = MINI_FEATURES.iter().map(|f| f.to_string()).collect();
        for t in &types {
            if let Some(f) = &t.feature {
                if !all_features.contains(f) {
                    all_features.push(f.clone());
                }
            }
        }
        let features = self.features.map(|mask| {
            all_features
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, f)| f.clone())
                .collect::<Vec<_>>()
        });

        let labels: Vec<String> = LABEL_POOL[..self.labels]
            .iter()
            .map(|l| l.to_string())
            .collect();

        let mut roles: Vec<RoleSpec> = Vec::new();
        for (i, r) in self.roles.iter().enumerate() {
            let mut grants = Vec::new();
            for &(kind, idx) in &r.grants {
                let (t, _, actions) = &schema[idx % schema.len()];
                let g = match kind {
                    0 => "*:*".to_string(),
                    1 | 2 => format!("{t}:*"),
                    _ => format!("{t}:{}", actions[(idx / schema.len()) % actions.len()]),
                };
                if !grants.contains(&g) {
                    grants.push(g);
                }
            }
            roles.push(RoleSpec {
                id: ROLE_POOL[i].to_string(),
                name: Some(format!("Role {i}")),
                description: Some(format!("random role {i}")),
                organization: match r.org {
                    0 => None,
                    1 => Some("north".to_string()),
                    _ => Some("south".to_string()),
                },
                rank: RANKS[r.rank],
                grants,
                seat: r.seat,
                disabled: r.disabled,
            });
        }
        let role_ids: Vec<String> = builtins(catalog)
            .iter()
            .map(|b| b.id.to_string())
            .chain(roles.iter().map(|r| r.id.clone()))
            .collect();

        let user_ids: Vec<String> = USER_POOL[..self.users.len()]
            .iter()
            .map(|u| u.to_string())
            .collect();
        let group_ids: Vec<String> = GROUP_POOL[..self.groups.len()]
            .iter()
            .map(|g| g.to_string())
            .collect();

        // Resources, created type by type in schema order (parents first).
        let creatable: Vec<usize> = (0..schema.len())
            .filter(|&i| !crate::reference::IMPLICIT_TYPES.contains(&schema[i].0.as_str()))
            .collect();
        let mut resources: Vec<ResourceSpec> = Vec::new();
        // (type, id) of every resource, implicit ones included.
        let mut keys: Vec<(String, String)> = vec![("workspace".to_string(), id.to_string())];
        keys.extend(user_ids.iter().map(|u| ("user".to_string(), u.clone())));
        keys.extend(group_ids.iter().map(|g| ("group".to_string(), g.clone())));
        keys.extend(labels.iter().map(|l| ("label".to_string(), l.clone())));
        keys.extend(role_ids.iter().map(|r| ("role".to_string(), r.clone())));
        let implicit_count = keys.len();
        for (k, &ti) in creatable.iter().enumerate() {
            let (t, parent_type, _) = &schema[ti];
            let mut n = 0;
            for p in self
                .resources
                .iter()
                .filter(|p| p.ty % creatable.len() == k)
            {
                if n == ID_POOL.len() {
                    break;
                }
                let parent = match parent_type {
                    None => None,
                    Some(pt) => {
                        let candidates: Vec<&String> = keys
                            .iter()
                            .filter(|(kt, _)| kt == pt)
                            .map(|(_, kid)| kid)
                            .collect();
                        if candidates.is_empty() {
                            continue;
                        }
                        let pid = candidates[p.parent % candidates.len()];
                        Some(if p.bare_parent {
                            pid.clone()
                        } else {
                            format!("{pt}:{pid}")
                        })
                    }
                };
                let rid = ID_POOL[(n + 3 * k) % ID_POOL.len()].to_string();
                n += 1;
                let ls = labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| p.labels & (1 << i) != 0)
                    .map(|(_, l)| l.clone())
                    .collect();
                keys.push((t.clone(), rid.clone()));
                resources.push(ResourceSpec {
                    type_: t.clone(),
                    id: rid,
                    parent,
                    labels: ls,
                });
            }
        }

        // A workspace with no role at all (catalog none) has no bindings.
        let binding = |b: &BindPlan| -> Option<BindingSpec> {
            let role = role_ids.get(b.role % role_ids.len().max(1))?.clone();
            let scope = match b.scope_kind {
                0 | 1 => None,
                2 => Some("workspace".to_string()),
                3 if !labels.is_empty() => {
                    Some(format!("label:{}", labels[b.scope_idx % labels.len()]))
                }
                3 => None,
                4 | 5 if keys.len() > implicit_count => {
                    let (t, rid) =
                        &keys[implicit_count + b.scope_idx % (keys.len() - implicit_count)];
                    Some(format!("resource:{t}:{rid}"))
                }
                _ => {
                    let (t, rid) = &keys[b.scope_idx % keys.len()];
                    Some(format!("resource:{t}:{rid}"))
                }
            };
            Some(BindingSpec { role, scope })
        };
        let users: Vec<UserSpec> = self
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| UserSpec {
                id: user_ids[i].clone(),
                status: if u.suspended {
                    UserStatus::Suspended
                } else {
                    UserStatus::Active
                },
                source: Source::Local,
                bindings: u.bindings.iter().filter_map(binding).collect(),
            })
            .collect();
        let groups: Vec<GroupSpec> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| GroupSpec {
                id: group_ids[i].clone(),
                source: if g.directory {
                    Source::Directory
                } else {
                    Source::Local
                },
                members: g
                    .members
                    .iter()
                    .map(|&m| user_ids[m % user_ids.len()].clone())
                    .collect(),
                bindings: g.bindings.iter().filter_map(binding).collect(),
            })
            .collect();

        // Requests about resources not yet created.
        let mut news = Vec::new();
        for n in &self.news {
            let (t, parent_type, _) = &schema[n.ty % schema.len()];
            let parent = match parent_type {
                None => None,
                Some(pt) => {
                    let candidates: Vec<&String> = keys
                        .iter()
                        .filter(|(kt, _)| kt == pt)
                        .map(|(_, kid)| kid)
                        .collect();
                    match (n.parent_kind, candidates.is_empty()) {
                        (0, _) => None,
                        (1, false) => Some(format!(
                            "{pt}:{}",
                            candidates[n.parent_idx % candidates.len()]
                        )),
                        (2, false) => Some(candidates[n.parent_idx % candidates.len()].clone()),
                        _ => Some(format!("{pt}:no-such-{pt}")),
                    }
                }
            };
            let mut ls: Vec<String> = labels
                .iter()
                .enumerate()
                .filter(|(i, _)| n.labels & (1 << i) != 0)
                .map(|(_, l)| l.clone())
                .collect();
            if n.labels & 0x10 != 0 {
                ls.push("undeclared".to_string());
            }
            news.push(NewResource {
                ty: t.clone(),
                parent,
                labels: ls,
            });
        }

        // The seats catalog implies min_admins 1 and max_roles_per_user 1;
        // random snapshots say otherwise so that they stay valid.
        let policy = (catalog == CatalogName::Seats).then_some(PolicySpec {
            min_admins: Some(0),
            max_roles_per_user: Some(1000),
            admin_roles: None,
        });

        Built {
            spec: WorkspaceSpec {
                id: id.to_string(),
                catalog: if self.catalog == 0 && self.labels % 2 == 0 {
                    // The default catalog is minikai: leave it out sometimes.
                    None
                } else {
                    Some(catalog)
                },
                features,
                policy,
                types,
                roles,
                labels,
                groups,
                users,
                resources,
            },
            news,
        }
    }
}
