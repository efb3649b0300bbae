//! Validation: resolves a [`WorkspaceSpec`] into a [`Workspace`], checking
//! every invariant of SPEC 1.3 and every reference, and reporting **all**
//! problems, not just the first. Nothing is built when any rule is broken.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use super::catalog::{catalog, DEFAULT_ADMIN_ROLES};
use super::problem::{InvalidSnapshot, Problem, Rule};
use super::schema::{
    id_rule_message, valid_id, PermSet, Schema, TypeId, GROUP_TYPE, LABEL_TYPE, ROLE_TYPE,
    USER_TYPE, WORKSPACE_TYPE,
};
use super::spec::{BindingSpec, ResourceSpec, SnapshotSpec, WorkspaceSpec};
use super::workspace::{
    Binding, Group, LabelIdx, PendingResource, Policy, ResourceTable, Resources, Role, Scope, User,
    Workspace,
};

/// The most labels one resource may carry (rule `limit`). Labels are meant
/// for a few sites or teams per resource; the bound keeps one resource's
/// index entries, and the work of an update that touches it, small.
pub const MAX_LABELS_PER_RESOURCE: usize = 64;

/// Validates every workspace of a snapshot; workspace ids must be unique.
pub fn validate_snapshot(spec: &SnapshotSpec) -> Result<Vec<Workspace>, InvalidSnapshot> {
    let mut problems = Vec::new();
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    for ws in &spec.workspaces {
        if !seen.insert(ws.id.as_str()) {
            problems.push(Problem::new(
                Rule::Duplicate,
                format!("workspace \"{}\"", ws.id),
                "workspace id is used twice in this snapshot",
            ));
            continue;
        }
        match validate_workspace(ws) {
            Ok(w) => out.push(w),
            Err(e) => problems.extend(e.problems),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.into())
    }
}

/// Validates one workspace and builds its resolved form.
pub fn validate_workspace(spec: &WorkspaceSpec) -> Result<Workspace, InvalidSnapshot> {
    let mut v = Validator {
        place: format!("workspace \"{}\"", spec.id),
        problems: Vec::new(),
    };
    let ws = v.build(spec);
    if v.problems.is_empty() {
        Ok(ws)
    } else {
        Err(v.problems.into())
    }
}

struct Validator {
    place: String,
    problems: Vec<Problem>,
}

impl Validator {
    fn report(&mut self, rule: Rule, item: impl AsRef<str>, message: impl Into<String>) {
        let item = item.as_ref();
        let place = if item.is_empty() {
            self.place.clone()
        } else {
            format!("{}, {item}", self.place)
        };
        self.problems.push(Problem::new(rule, place, message));
    }

    /// Checks an id's shape and uniqueness; returns whether to keep the item.
    fn check_id<'a>(&mut self, kind: &str, id: &'a str, seen: &mut FxHashSet<&'a str>) -> bool {
        if !valid_id(id) {
            self.report(
                Rule::Id,
                format!("{kind} \"{id}\""),
                id_rule_message(&format!("{kind} id")),
            );
            return false;
        }
        if !seen.insert(id) {
            self.report(
                Rule::Duplicate,
                format!("{kind} \"{id}\""),
                format!("{kind} id \"{id}\" is used twice"),
            );
            return false;
        }
        true
    }

    fn build(&mut self, spec: &WorkspaceSpec) -> Workspace {
        if !valid_id(&spec.id) {
            self.report(Rule::Id, "", id_rule_message("workspace id"));
        }
        let cat = catalog(spec.catalog.unwrap_or_default());
        let schema = Schema::build(
            &self.place,
            &spec.types,
            cat.read_implies_mini_features,
            &mut self.problems,
        );

        let features_enabled = self.features(spec, &schema);
        let roles = self.roles(spec, &schema, &cat);
        let labels = self.sorted_ids("label", spec.labels.iter().map(String::as_str));
        let user_order = self.sorted_unique("user", spec.users.iter().map(|u| u.id.as_str()));
        let group_order = self.sorted_unique("group", spec.groups.iter().map(|g| g.id.as_str()));
        let user_ids: Vec<String> = user_order
            .iter()
            .map(|&i| spec.users[i].id.clone())
            .collect();
        let group_ids: Vec<String> = group_order
            .iter()
            .map(|&i| spec.groups[i].id.clone())
            .collect();
        let resources = self.resources(spec, &schema, &labels, &user_ids, &group_ids, &roles);

        let resolver = Resolver {
            schema: &schema,
            roles: &roles,
            labels: &labels,
            resources: &resources,
        };
        let mut users: Vec<User> = Vec::with_capacity(user_ids.len());
        for &i in &user_order {
            let u = &spec.users[i];
            let item = format!("user \"{}\"", u.id);
            let bindings = self.bindings(&resolver, &item, &u.bindings);
            users.push(User {
                id: u.id.clone(),
                active: u.status.is_active(),
                source: u.source,
                bindings,
                groups: Vec::new(),
            });
        }
        let mut groups: Vec<Group> = Vec::with_capacity(group_ids.len());
        for &i in &group_order {
            let g = &spec.groups[i];
            let item = format!("group \"{}\"", g.id);
            let bindings = self.bindings(&resolver, &item, &g.bindings);
            let gi = groups.len() as u32;
            let mut members = Vec::with_capacity(g.members.len());
            for m in &g.members {
                match users.binary_search_by(|u| u.id.as_str().cmp(m)) {
                    Ok(ui) => {
                        if !members.contains(&(ui as u32)) {
                            members.push(ui as u32);
                            users[ui].groups.push(gi);
                        }
                    }
                    Err(_) => self.report(
                        Rule::UnknownMember,
                        &item,
                        format!("member \"{m}\" is not a user of this workspace"),
                    ),
                }
            }
            members.sort_unstable();
            groups.push(Group {
                id: g.id.clone(),
                source: g.source,
                members,
                bindings,
            });
        }

        let policy = self.policy(spec, &cat, &roles);
        let mut ws = Workspace {
            id: spec.id.clone(),
            spec_head: Arc::new(normalised_head(spec)),
            schema: Arc::new(schema),
            features_enabled,
            roles: Arc::new(roles),
            labels: Arc::new(labels),
            users: Arc::new(users),
            groups: Arc::new(groups),
            resources: Resources::new(resources),
            policy,
        };
        if self.problems.is_empty() {
            self.invariants(&mut ws);
        }
        ws
    }

    fn features(&mut self, spec: &WorkspaceSpec, schema: &Schema) -> Vec<bool> {
        match &spec.features {
            None => vec![true; schema.features.len()],
            Some(list) => {
                let mut on = vec![false; schema.features.len()];
                for f in list {
                    match schema.feature_id(f) {
                        Some(i) => on[i as usize] = true,
                        None => self.report(
                            Rule::UnknownFeature,
                            "features",
                            format!("feature \"{f}\" is not a feature of this workspace's schema"),
                        ),
                    }
                }
                on
            }
        }
    }

    fn roles(
        &mut self,
        spec: &WorkspaceSpec,
        schema: &Schema,
        cat: &super::catalog::Catalog,
    ) -> Vec<Role> {
        let mut roles: Vec<Role> = Vec::new();
        for b in cat.roles {
            let mut perms = PermSet::with_capacity(schema.perm_count);
            for g in b.grants {
                // Built-in grants name default types only; they always expand.
                let _ = schema.expand_grant(g, &mut perms);
            }
            schema.close_implied(&mut perms);
            for g in b.except {
                let mut minus = PermSet::with_capacity(schema.perm_count);
                let _ = schema.expand_grant(g, &mut minus);
                for p in 0..schema.perm_count as u32 {
                    if minus.contains(p) {
                        perms.remove(p);
                    }
                }
            }
            roles.push(Role {
                id: b.id.to_string(),
                name: b.id.to_string(),
                description: b.description.to_string(),
                organization: None,
                rank: b.rank,
                perms,
                seat: b.seat,
                disabled: false,
                builtin: true,
            });
        }
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for r in &spec.roles {
            let item = format!("role \"{}\"", r.id);
            if cat.roles.iter().any(|b| b.id == r.id) {
                self.report(
                    Rule::BuiltIn,
                    &item,
                    format!(
                        "\"{}\" is a built-in role of this catalog and cannot be changed",
                        r.id
                    ),
                );
                continue;
            }
            if !self.check_id("role", &r.id, &mut seen) {
                continue;
            }
            let mut perms = PermSet::with_capacity(schema.perm_count);
            for g in &r.grants {
                if let Err((rule, msg)) = schema.expand_grant(g, &mut perms) {
                    self.report(rule, &item, msg);
                }
            }
            schema.close_implied(&mut perms);
            roles.push(Role {
                id: r.id.clone(),
                name: r.name.clone().unwrap_or_else(|| r.id.clone()),
                description: r.description.clone().unwrap_or_default(),
                organization: r.organization.clone(),
                rank: r.rank,
                perms,
                seat: r.seat,
                disabled: r.disabled,
                builtin: false,
            });
        }
        // Names are unique per (workspace, organization).
        let mut by_name: FxHashMap<(Option<&str>, &str), &str> = FxHashMap::default();
        let mut dups = Vec::new();
        for r in &roles {
            let key = (r.organization.as_deref(), r.name.as_str());
            if let Some(first) = by_name.insert(key, &r.id) {
                dups.push((
                    r.id.clone(),
                    r.name.clone(),
                    first.to_string(),
                    r.organization.clone(),
                ));
            }
        }
        for (id, name, first, org) in dups {
            let org = org.map_or("no organization".to_string(), |o| {
                format!("organization \"{o}\"")
            });
            self.report(
                Rule::Duplicate,
                format!("role \"{id}\""),
                format!("role name \"{name}\" is already used by role \"{first}\" in {org}"),
            );
        }
        roles.sort_by(|a, b| a.id.cmp(&b.id));
        roles
    }

    fn sorted_ids<'a>(
        &mut self,
        kind: &str,
        ids: impl Iterator<Item = &'a str> + Clone,
    ) -> Vec<String> {
        let order = self.sorted_unique(kind, ids.clone());
        let all: Vec<&str> = ids.collect();
        order.into_iter().map(|i| all[i].to_string()).collect()
    }

    /// Positions of the well-formed, first-seen ids, in ascending id order.
    fn sorted_unique<'a>(&mut self, kind: &str, ids: impl Iterator<Item = &'a str>) -> Vec<usize> {
        let mut seen = FxHashSet::default();
        let mut keep: Vec<(&str, usize)> = Vec::new();
        for (i, id) in ids.enumerate() {
            if self.check_id(kind, id, &mut seen) {
                keep.push((id, i));
            }
        }
        keep.sort_unstable();
        keep.into_iter().map(|(_, i)| i).collect()
    }

    fn resources(
        &mut self,
        spec: &WorkspaceSpec,
        schema: &Schema,
        labels: &[String],
        users: &[String],
        groups: &[String],
        roles: &[Role],
    ) -> ResourceTable {
        let mut items: Vec<PendingResource<'_>> = Vec::with_capacity(
            spec.resources.len() + 1 + users.len() + groups.len() + labels.len() + roles.len(),
        );
        // The workspace itself and its users, groups, labels and roles.
        let mut implicit_items: Vec<(TypeId, &str)> = vec![(WORKSPACE_TYPE, spec.id.as_str())];
        implicit_items.extend(users.iter().map(|u| (USER_TYPE, u.as_str())));
        implicit_items.extend(groups.iter().map(|g| (GROUP_TYPE, g.as_str())));
        implicit_items.extend(labels.iter().map(|l| (LABEL_TYPE, l.as_str())));
        implicit_items.extend(roles.iter().map(|r| (ROLE_TYPE, r.id.as_str())));
        for (t, id) in implicit_items {
            items.push(PendingResource {
                type_: t,
                id,
                parent: None,
                labels: SmallVec::new(),
            });
        }

        let mut seen: FxHashSet<(TypeId, &str)> = FxHashSet::default();
        let mut parents_to_check: Vec<(String, TypeId, &str)> = Vec::new();
        for r in &spec.resources {
            let item = format!("resource \"{}:{}\"", r.type_, r.id);
            let mut report = |rule: Rule, message: String| self.report(rule, &item, message);
            let Some(checked) = check_resource(r, schema, labels, &mut report) else {
                continue;
            };
            if !seen.insert((checked.type_, r.id.as_str())) {
                self.report(
                    Rule::Duplicate,
                    &item,
                    format!("resource \"{}:{}\" is listed twice", r.type_, r.id),
                );
                continue;
            }
            if let Some((pt, pid)) = checked.parent {
                parents_to_check.push((item, pt, pid));
            }
            items.push(PendingResource {
                type_: checked.type_,
                id: &r.id,
                parent: checked.parent,
                labels: checked.labels,
            });
        }
        let table = ResourceTable::build(schema.types.len(), items);
        for (item, pt, pid) in parents_to_check {
            if table.find(pt, pid).is_none() {
                self.report(
                    Rule::Parent,
                    item,
                    format!(
                        "parent \"{}:{pid}\" does not exist (unknown resource)",
                        schema.ty(pt).name
                    ),
                );
            }
        }
        table
    }

    fn bindings(&mut self, r: &Resolver<'_>, item: &str, specs: &[BindingSpec]) -> Vec<Binding> {
        let mut out = Vec::with_capacity(specs.len());
        for b in specs {
            let role = match r.roles.binary_search_by(|x| x.id.as_str().cmp(&b.role)) {
                Ok(i) => Some(i as u32),
                Err(_) => {
                    self.report(
                        Rule::UnknownRole,
                        item,
                        format!("binding names unknown role \"{}\"", b.role),
                    );
                    None
                }
            };
            let scope = match r.scope(b.scope.as_deref()) {
                Ok(s) => Some(s),
                Err((rule, msg)) => {
                    self.report(rule, item, msg);
                    None
                }
            };
            if let (Some(role), Some(scope)) = (role, scope) {
                let b = Binding { role, scope };
                if !out.contains(&b) {
                    out.push(b);
                }
            }
        }
        out
    }

    fn policy(
        &mut self,
        spec: &WorkspaceSpec,
        cat: &super::catalog::Catalog,
        roles: &[Role],
    ) -> Policy {
        let p = spec.policy.clone().unwrap_or_default();
        let mut admin_roles = Vec::new();
        match &p.admin_roles {
            Some(list) => {
                for id in list {
                    match roles.binary_search_by(|r| r.id.as_str().cmp(id)) {
                        Ok(i) => admin_roles.push(i as u32),
                        Err(_) => self.report(
                            Rule::UnknownRole,
                            "policy",
                            format!("admin_roles names unknown role \"{id}\""),
                        ),
                    }
                }
            }
            None => {
                for id in DEFAULT_ADMIN_ROLES {
                    if let Ok(i) = roles.binary_search_by(|r| r.id.as_str().cmp(id)) {
                        admin_roles.push(i as u32);
                    }
                }
            }
        }
        Policy {
            min_admins: p.min_admins.or(cat.default_min_admins).unwrap_or(0),
            max_roles_per_user: p.max_roles_per_user.or(cat.default_max_roles_per_user),
            admin_roles,
        }
    }

    /// The policy invariants, checked on the fully resolved workspace.
    fn invariants(&mut self, ws: &mut Workspace) {
        let n = ws.users.len() as u32;
        if ws.policy.min_admins > 0 {
            let admins = (0..n)
                .filter(|&u| {
                    ws.users[u as usize].active
                        && ws.bindings_of(u).any(|(b, _)| {
                            b.scope == Scope::Workspace
                                && !ws.roles[b.role as usize].disabled
                                && ws.policy.admin_roles.contains(&b.role)
                        })
                })
                .count();
            if (admins as u32) < ws.policy.min_admins {
                let names: Vec<&str> = ws
                    .policy
                    .admin_roles
                    .iter()
                    .map(|&r| ws.roles[r as usize].id.as_str())
                    .collect();
                self.report(
                    Rule::MinAdmins,
                    "policy",
                    format!(
                        "min_admins is {} but {admins} active user(s) hold an admin role ({}) at workspace scope",
                        ws.policy.min_admins,
                        names.join(", ")
                    ),
                );
            }
        }
        if let Some(max) = ws.policy.max_roles_per_user {
            for u in 0..n {
                let mut distinct: Vec<u32> = ws
                    .bindings_of(u)
                    .filter(|(b, _)| {
                        b.scope == Scope::Workspace && !ws.roles[b.role as usize].disabled
                    })
                    .map(|(b, _)| b.role)
                    .collect();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() as u32 > max {
                    let ids: Vec<&str> = distinct
                        .iter()
                        .map(|&r| ws.roles[r as usize].id.as_str())
                        .collect();
                    self.report(
                        Rule::MaxRolesPerUser,
                        format!("user \"{}\"", ws.users[u as usize].id),
                        format!(
                            "max_roles_per_user is {max} but the user holds {} roles at workspace scope ({})",
                            distinct.len(),
                            ids.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

/// A resource of a spec that keeps the rules it can keep on its own.
pub(crate) struct CheckedResource<'a> {
    pub type_: TypeId,
    /// The parent's type and id, when the type has a parent type.
    pub parent: Option<(TypeId, &'a str)>,
    /// Ascending, no duplicates.
    pub labels: SmallVec<[LabelIdx; 2]>,
}

/// The rules of SPEC 1.3 one resource keeps on its own: a type of the
/// schema that may be listed, a valid id, at most
/// [`MAX_LABELS_PER_RESOURCE`] labels, each a label of the workspace, and a
/// parent of the type's parent type exactly when the type has one. Every
/// broken rule is reported; `None` when the resource cannot be placed at
/// all. Uniqueness and whether the parent exists are the caller's to check,
/// against every other resource.
pub(crate) fn check_resource<'a>(
    r: &'a ResourceSpec,
    schema: &Schema,
    labels: &[String],
    report: &mut dyn FnMut(Rule, String),
) -> Option<CheckedResource<'a>> {
    let Some(t) = schema.type_id(&r.type_) else {
        report(
            Rule::UnknownType,
            format!("type \"{}\" is not a type of this schema", r.type_),
        );
        return None;
    };
    let ty = schema.ty(t);
    if ty.implicit {
        report(
            Rule::UnknownType,
            format!(
                "\"{}\" resources are the workspace's own {}s and cannot be listed",
                r.type_, r.type_
            ),
        );
        return None;
    }
    if !valid_id(&r.id) {
        report(Rule::Id, id_rule_message("resource id"));
        return None;
    }
    if r.labels.len() > MAX_LABELS_PER_RESOURCE {
        report(
            Rule::Limit,
            format!(
                "{} labels are over the limit of {MAX_LABELS_PER_RESOURCE} labels per resource",
                r.labels.len()
            ),
        );
        return None;
    }
    let mut ls: SmallVec<[LabelIdx; 2]> = SmallVec::new();
    for l in &r.labels {
        match labels.binary_search(l) {
            Ok(i) => ls.push(i as LabelIdx),
            Err(_) => report(
                Rule::UnknownLabel,
                format!("label \"{l}\" is not a label of this workspace"),
            ),
        }
    }
    ls.sort_unstable();
    ls.dedup();
    let parent = match (ty.parent, &r.parent) {
        (None, None) => None,
        (None, Some(p)) => {
            report(
                Rule::Parent,
                format!(
                    "type \"{}\" has no parent type, but the resource names parent \"{p}\"",
                    r.type_
                ),
            );
            None
        }
        (Some(pt), None) => {
            report(
                Rule::Parent,
                format!(
                    "a \"{}\" needs a parent \"{}\"",
                    r.type_,
                    schema.ty(pt).name
                ),
            );
            None
        }
        (Some(pt), Some(p)) => {
            let pname = schema.ty(pt).name.as_str();
            let (ptype, pid) = p.split_once(':').unwrap_or((pname, p.as_str()));
            if ptype == pname {
                Some((pt, pid))
            } else {
                report(
                    Rule::Parent,
                    format!(
                        "parent \"{p}\" is not a \"{pname}\": a \"{}\" must have a \"{pname}\" parent",
                        r.type_
                    ),
                );
                None
            }
        }
    };
    Some(CheckedResource {
        type_: t,
        parent,
        labels: ls,
    })
}

/// What bindings resolve against.
struct Resolver<'a> {
    schema: &'a Schema,
    roles: &'a [Role],
    labels: &'a [String],
    resources: &'a ResourceTable,
}

impl Resolver<'_> {
    fn scope(&self, s: Option<&str>) -> Result<Scope, (Rule, String)> {
        let s = match s {
            None | Some("workspace") => return Ok(Scope::Workspace),
            Some(s) => s,
        };
        if let Some(l) = s.strip_prefix("label:") {
            return match self.labels.binary_search_by(|x| x.as_str().cmp(l)) {
                Ok(i) => Ok(Scope::Label(i as u32)),
                Err(_) => Err((
                    Rule::UnknownLabel,
                    format!("scope \"{s}\" names unknown label \"{l}\""),
                )),
            };
        }
        if let Some(r) = s.strip_prefix("resource:") {
            let Some((t, id)) = r.split_once(':') else {
                return Err((
                    Rule::Scope,
                    format!("scope \"{s}\" must be resource:TYPE:ID"),
                ));
            };
            let Some(tid) = self.schema.type_id(t) else {
                return Err((
                    Rule::UnknownType,
                    format!("scope \"{s}\" names unknown type \"{t}\""),
                ));
            };
            return match self.resources.find(tid, id) {
                Some(ri) => Ok(Scope::Resource(ri)),
                None => Err((
                    Rule::UnknownResource,
                    format!("scope \"{s}\" names unknown resource \"{r}\""),
                )),
            };
        }
        Err((
            Rule::Scope,
            format!("scope \"{s}\" must be workspace, label:LABEL or resource:TYPE:ID"),
        ))
    }
}

/// The spec without its resources (the built table holds them), every
/// list sorted by id, so exports are stable.
fn normalised_head(spec: &WorkspaceSpec) -> WorkspaceSpec {
    let mut s = WorkspaceSpec {
        id: spec.id.clone(),
        catalog: spec.catalog,
        features: spec.features.clone(),
        policy: spec.policy.clone(),
        types: spec.types.clone(),
        roles: spec.roles.clone(),
        labels: spec.labels.clone(),
        groups: spec.groups.clone(),
        users: spec.users.clone(),
        resources: Vec::new(),
    };
    s.roles.sort_by(|a, b| a.id.cmp(&b.id));
    s.labels.sort();
    s.users.sort_by(|a, b| a.id.cmp(&b.id));
    s.groups.sort_by(|a, b| a.id.cmp(&b.id));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse::from_text;

    fn spec(yaml: &str) -> WorkspaceSpec {
        match from_text::<WorkspaceSpec>(yaml, "test") {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn problems(yaml: &str) -> Vec<Problem> {
        match validate_workspace(&spec(yaml)) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn a_missing_parent_names_the_resource_and_the_parent() {
        // Regression: the problem used to name only the parent.
        let p =
            problems("id: w\nresources:\n  - { type: record, id: r-1, parent: \"mini:m-9\" }\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].rule, Rule::Parent);
        let text = p[0].to_string();
        assert!(
            text.contains("record:r-1") && text.contains("mini:m-9"),
            "{text}"
        );
    }

    #[test]
    fn policy_invariants_wait_for_sound_references() {
        // With an unknown role, min_admins is not judged on a half-built
        // model: the one problem reported is the unknown role.
        let p = problems(
            "id: w\ncatalog: seats\nusers:\n  - { id: u-1, bindings: [{ role: boss }] }\n",
        );
        assert_eq!(
            p.iter().map(|p| p.rule).collect::<Vec<_>>(),
            [Rule::UnknownRole]
        );
    }

    #[test]
    fn builtin_roles_are_merged_sorted_by_id() {
        let ws = match validate_workspace(&spec(
            "id: w\ncatalog: environment\nroles: [{ id: aaa }, { id: zzz, rank: 3 }]\n",
        )) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        };
        let ids: Vec<&str> = ws.roles.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["aaa", "admin", "creator", "editor", "member", "viewer", "zzz"]
        );
        assert!(ws
            .roles
            .iter()
            .all(|r| r.builtin == (r.id != "aaa" && r.id != "zzz")));
        let rank = |id: &str| ws.role_idx(id).map(|i| ws.roles[i as usize].rank);
        assert_eq!(rank("creator"), Some(50));
        assert_eq!(rank("admin"), Some(90));
        assert_eq!(rank("zzz"), Some(3));
    }

    #[test]
    fn the_normalised_spec_is_sorted() {
        let ws = match validate_workspace(&spec(
            "id: w\nlabels: [b, a]\nusers: [{ id: u-2 }, { id: u-1 }]\nresources:\n  - { type: mini, id: m-2 }\n  - { type: mini, id: m-1 }\n",
        )) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        };
        let spec = ws.to_spec();
        assert_eq!(spec.labels, ["a", "b"]);
        let users: Vec<&str> = spec.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(users, ["u-1", "u-2"]);
        let res: Vec<&str> = spec.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(res, ["m-1", "m-2"]);
        assert!(ws.spec_head.resources.is_empty(), "resources are kept once");
    }

    #[test]
    fn seats_policy_defaults_and_overrides() {
        let policy = |yaml: &str| match validate_workspace(&spec(yaml)) {
            Ok(w) => (w.policy.min_admins, w.policy.max_roles_per_user),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            policy("id: w\ncatalog: seats\nusers: [{ id: a, bindings: [{ role: admin }] }]\n"),
            (1, Some(1))
        );
        assert_eq!(
            policy("id: w\ncatalog: seats\npolicy: { min_admins: 0 }\n"),
            (0, Some(1))
        );
        assert_eq!(policy("id: w\ncatalog: minikai\n"), (0, None));
    }
}
