//! Validation: resolves a [`WorkspaceSpec`] into a [`Workspace`], checking
//! every invariant of SPEC 1.3 and every reference, and reporting **all**
//! problems, not just the first. Nothing is built when any rule is broken.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use super::catalog::{catalog, DEFAULT_ADMIN_ROLES};
use super::parse::{ResourceList, StoredSnapshot};
use super::problem::{InvalidSnapshot, Problem, Rule};
use super::schema::{
    id_rule_message, valid_id, PermSet, Schema, TypeId, GROUP_TYPE, LABEL_TYPE, ROLE_TYPE,
    USER_TYPE, WORKSPACE_TYPE,
};
use super::spec::{BindingSpec, ResourceSpec, SnapshotSpec, WorkspaceSpec};
use super::spec_head::SpecHead;
use super::workspace::{
    Binding, Group, LabelIdx, PendingResource, Policy, ResIdx, ResourceTable, Resources, Role,
    Scope, TableLimit, User, Workspace,
};

/// The most labels one resource may carry (rule `limit`). Labels are meant
/// for a few sites or teams per resource; the bound keeps one resource's
/// index entries, and the work of an update that touches it, small.
pub const MAX_LABELS_PER_RESOURCE: usize = 64;

/// Validates every workspace of a snapshot; workspace ids must be unique.
pub fn validate_snapshot(spec: &SnapshotSpec) -> Result<Vec<Workspace>, InvalidSnapshot> {
    validate_all(
        spec.workspaces
            .iter()
            .map(|ws| (ws, Listed::Spec(&ws.resources))),
    )
}

/// [`validate_snapshot`] for a snapshot read as a [`StoredSnapshot`] (the
/// state dir's, on a restart): the same workspaces, or the same problems.
pub fn validate_stored(snapshot: &StoredSnapshot) -> Result<Vec<Workspace>, InvalidSnapshot> {
    validate_all(
        snapshot
            .workspaces
            .iter()
            .map(|w| (&w.head, Listed::Stored(&w.resources))),
    )
}

fn validate_all<'a>(
    workspaces: impl Iterator<Item = (&'a WorkspaceSpec, Listed<'a>)>,
) -> Result<Vec<Workspace>, InvalidSnapshot> {
    let mut problems = Vec::new();
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    for (ws, listed) in workspaces {
        if !seen.insert(ws.id.as_str()) {
            problems.push(Problem::new(
                Rule::Duplicate,
                format!("workspace \"{}\"", ws.id),
                "workspace id is used twice in this snapshot",
            ));
            continue;
        }
        match validate_listed(ws, listed) {
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
    validate_listed(spec, Listed::Spec(&spec.resources))
}

/// Validates a workspace whose resources are `listed` (`spec.resources`
/// is then not read).
fn validate_listed(spec: &WorkspaceSpec, listed: Listed<'_>) -> Result<Workspace, InvalidSnapshot> {
    let mut v = Validator {
        place: format!("workspace \"{}\"", spec.id),
        problems: Vec::new(),
    };
    match v.build(spec, listed) {
        Some(ws) if v.problems.is_empty() => Ok(ws),
        // `build` reports why when it gives no workspace.
        _ => Err(v.problems.into()),
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

    /// The workspace, built even when a rule is broken (the problems say
    /// so), or `None` when it cannot be built at all (a problem says why).
    fn build(&mut self, spec: &WorkspaceSpec, listed: Listed<'_>) -> Option<Workspace> {
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
        let checker = Checker::new(listed, &schema, &labels);
        let resources = self.resources(spec, &checker, &labels, &user_ids, &group_ids, &roles);

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
        let spec_head = match SpecHead::normalised(spec) {
            Ok(h) => h,
            Err(e) => {
                self.problems.push((&e).into());
                return None;
            }
        };
        let mut ws = Workspace {
            id: spec.id.clone(),
            spec_head,
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
        Some(ws)
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

    fn resources<'a>(
        &mut self,
        spec: &'a WorkspaceSpec,
        checker: &Checker<'a>,
        labels: &'a [String],
        users: &[String],
        groups: &[String],
        roles: &[Role],
    ) -> ResourceTable {
        let schema = checker.schema;
        let mut items: Vec<PendingResource<'_>> = Vec::with_capacity(
            checker.len() + 1 + users.len() + groups.len() + labels.len() + roles.len(),
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

        // 1M resources are checked without an allocation each: the `item`
        // of a problem is formatted only when there is one, and duplicates
        // and unknown parents are found on the built table (sorted by type
        // and id, parents resolved) rather than with a hash set and a list
        // of every parent. Only when the table shows one of them are the
        // resources walked again to report them exactly as they come, in
        // the order of the spec.
        let mut found: Vec<(usize, Rule, String)> = Vec::new();
        let mut with_parent = 0usize;
        for i in 0..checker.len() {
            let mut report = |rule: Rule, message: String| found.push((i, rule, message));
            let Some(checked) = checker.check(i, &mut report) else {
                continue;
            };
            with_parent += usize::from(checked.parent.is_some());
            items.push(PendingResource {
                type_: checked.type_,
                id: checker.key(i).1,
                parent: checked.parent,
                labels: checked.labels,
            });
        }
        let table = match ResourceTable::build(schema.types.len(), items) {
            Ok(table) => table,
            Err(e) => {
                // Far beyond any real workspace (see `TableLimit`). With no
                // table, the bindings that name resources are reported too.
                let item = match e {
                    TableLimit::IdBytes { type_, .. } => {
                        format!("type \"{}\"", schema.ty(type_).name)
                    }
                    _ => String::new(),
                };
                self.report(Rule::Limit, item, e.to_string());
                return ResourceTable::default();
            }
        };
        let duplicates = duplicates(checker, &table);
        let mut duplicate = duplicates.iter().copied().peekable();
        let mut found = found.into_iter().peekable();
        loop {
            // Each resource's own problems, then whether it is listed twice.
            let (i, dup) = match (found.peek(), duplicate.peek()) {
                (Some(&(f, _, _)), Some(&d)) if d < f => (d, true),
                (Some(&(f, _, _)), _) => (f, false),
                (None, Some(&d)) => (d, true),
                (None, None) => break,
            };
            let (type_name, id) = checker.key(i);
            let item = format!("resource \"{type_name}:{id}\"");
            if dup {
                duplicate.next();
                self.report(
                    Rule::Duplicate,
                    &item,
                    format!("resource \"{type_name}:{id}\" is listed twice"),
                );
            } else {
                while let Some((_, rule, message)) = found.next_if(|p| p.0 == i) {
                    self.report(rule, &item, message);
                }
            }
        }
        let resolved = (0..table.len() as ResIdx)
            .filter(|&r| table.parent_of(r).is_some())
            .count();
        if resolved == with_parent {
            return table;
        }
        // Some parent is not in the table: name each, in spec order.
        let mut duplicate = duplicates.iter().copied().peekable();
        for i in 0..checker.len() {
            if duplicate.next_if_eq(&i).is_some() {
                continue;
            }
            let Some((pt, pid)) = checker.check(i, &mut |_, _| ()).and_then(|c| c.parent) else {
                continue;
            };
            if table.find(pt, pid).is_none() {
                let (type_name, id) = checker.key(i);
                self.report(
                    Rule::Parent,
                    format!("resource \"{type_name}:{id}\""),
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
                    // A disabled role is still held (SPEC 1.1: it stays so
                    // admins can reassign its users), so it counts.
                    .filter(|(b, _)| b.scope == Scope::Workspace)
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

/// Positions among the listed resources of those listed again after a
/// first listing (of those [`check_resource`] keeps), ascending. The table
/// holds every kept resource, duplicates included, sorted by type and id,
/// so a duplicate sits next to its first listing; only when there is one
/// are the resources walked to tell which listing came first.
fn duplicates(checker: &Checker<'_>, table: &ResourceTable) -> Vec<usize> {
    let mut twice: FxHashSet<(TypeId, String)> = FxHashSet::default();
    for t in 0..checker.schema.types.len() as TypeId {
        let range = table.of_type(t);
        for r in range.start.saturating_add(1)..range.end {
            if table.id(r) == table.id(r - 1) {
                twice.insert((t, table.id(r).into()));
            }
        }
    }
    if twice.is_empty() {
        return Vec::new();
    }
    let mut seen: FxHashSet<(TypeId, &str)> = FxHashSet::default();
    let mut out = Vec::new();
    for i in 0..checker.len() {
        let Some(c) = checker.check(i, &mut |_, _| ()) else {
            continue;
        };
        let key = (c.type_, checker.key(i).1);
        if twice.contains(&(key.0, key.1.to_string())) && !seen.insert(key) {
            out.push(i);
        }
    }
    out
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
    let labels = r.labels.iter().map(|l| {
        let i = labels.binary_search(l).ok().map(|i| i as LabelIdx);
        (l.as_str(), i)
    });
    let t = schema.type_id(&r.type_);
    check_parts(
        schema,
        &r.type_,
        t,
        &r.id,
        r.parent.as_deref(),
        labels,
        report,
    )
}

/// [`check_resource`] on the parts of a resource: its type name and that
/// name's type (if any), id, parent, and each label's name with its index
/// (if it is a label of the workspace).
fn check_parts<'a, 'l>(
    schema: &Schema,
    type_name: &str,
    t: Option<TypeId>,
    id: &str,
    parent: Option<&'a str>,
    labels: impl ExactSizeIterator<Item = (&'l str, Option<LabelIdx>)>,
    report: &mut dyn FnMut(Rule, String),
) -> Option<CheckedResource<'a>> {
    let Some(t) = t else {
        report(
            Rule::UnknownType,
            format!("type \"{type_name}\" is not a type of this schema"),
        );
        return None;
    };
    let ty = schema.ty(t);
    if ty.implicit {
        report(
            Rule::UnknownType,
            format!(
                "\"{type_name}\" resources are the workspace's own {type_name}s and cannot be listed"
            ),
        );
        return None;
    }
    if !valid_id(id) {
        report(Rule::Id, id_rule_message("resource id"));
        return None;
    }
    if labels.len() > MAX_LABELS_PER_RESOURCE {
        report(
            Rule::Limit,
            format!(
                "{} labels are over the limit of {MAX_LABELS_PER_RESOURCE} labels per resource",
                labels.len()
            ),
        );
        return None;
    }
    let mut ls: SmallVec<[LabelIdx; 2]> = SmallVec::new();
    for (l, i) in labels {
        match i {
            Some(i) => ls.push(i),
            None => report(
                Rule::UnknownLabel,
                format!("label \"{l}\" is not a label of this workspace"),
            ),
        }
    }
    ls.sort_unstable();
    ls.dedup();
    let parent = match (ty.parent, parent) {
        (None, None) => None,
        (None, Some(p)) => {
            report(
                Rule::Parent,
                format!(
                    "type \"{type_name}\" has no parent type, but the resource names parent \"{p}\""
                ),
            );
            None
        }
        (Some(pt), None) => {
            report(
                Rule::Parent,
                format!(
                    "a \"{type_name}\" needs a parent \"{}\"",
                    schema.ty(pt).name
                ),
            );
            None
        }
        (Some(pt), Some(p)) => {
            let pname = schema.ty(pt).name.as_str();
            let (ptype, pid) = p.split_once(':').unwrap_or((pname, p));
            if ptype == pname {
                Some((pt, pid))
            } else {
                report(
                    Rule::Parent,
                    format!(
                        "parent \"{p}\" is not a \"{pname}\": a \"{type_name}\" must have a \"{pname}\" parent"
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

/// The resources a workspace lists: a spec's, or a stored snapshot's.
#[derive(Clone, Copy)]
enum Listed<'a> {
    Spec(&'a [ResourceSpec]),
    Stored(&'a ResourceList),
}

/// Checks listed resources by [`check_resource`]'s rules, with the names
/// of labels (and, in a stored list, of types) looked up by hash, once per
/// name where the list keeps each name once, rather than by a binary
/// search over the labels for every label of every resource.
struct Checker<'a> {
    listed: Listed<'a>,
    schema: &'a Schema,
    /// A spec's: label name to index.
    label_ix: FxHashMap<&'a str, LabelIdx>,
    /// A stored list's: the type of each of its type names, and the index
    /// of each of its label names.
    type_ids: Vec<Option<TypeId>>,
    label_ids: Vec<Option<LabelIdx>>,
}

impl<'a> Checker<'a> {
    fn new(listed: Listed<'a>, schema: &'a Schema, labels: &'a [String]) -> Checker<'a> {
        let mut c = Checker {
            listed,
            schema,
            label_ix: FxHashMap::default(),
            type_ids: Vec::new(),
            label_ids: Vec::new(),
        };
        match listed {
            Listed::Spec(rs) => {
                if rs.iter().any(|r| !r.labels.is_empty()) {
                    c.label_ix = labels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.as_str(), i as LabelIdx))
                        .collect();
                }
            }
            Listed::Stored(list) => {
                c.type_ids = list
                    .type_names()
                    .iter()
                    .map(|n| schema.type_id(n))
                    .collect();
                c.label_ids = list
                    .label_names()
                    .iter()
                    .map(|l| labels.binary_search(l).ok().map(|i| i as LabelIdx))
                    .collect();
            }
        }
        c
    }

    fn len(&self) -> usize {
        match self.listed {
            Listed::Spec(rs) => rs.len(),
            Listed::Stored(list) => list.len(),
        }
    }

    /// The type name and id of the `i`th resource, which name it in a
    /// problem.
    fn key(&self, i: usize) -> (&'a str, &'a str) {
        match self.listed {
            Listed::Spec(rs) => (&rs[i].type_, &rs[i].id),
            Listed::Stored(list) => (list.type_name(i), list.id(i)),
        }
    }

    fn check(&self, i: usize, report: &mut dyn FnMut(Rule, String)) -> Option<CheckedResource<'a>> {
        match self.listed {
            Listed::Spec(rs) => {
                let r = &rs[i];
                let labels = r.labels.iter().map(|l| {
                    let ix = self.label_ix.get(l.as_str()).copied();
                    (l.as_str(), ix)
                });
                let t = self.schema.type_id(&r.type_);
                let parent = r.parent.as_deref();
                check_parts(self.schema, &r.type_, t, &r.id, parent, labels, report)
            }
            Listed::Stored(list) => {
                let names = list.label_names();
                let labels = list
                    .labels(i)
                    .iter()
                    .map(|&l| (names[l as usize].as_str(), self.label_ids[l as usize]));
                let t = self.type_ids[list.type_of(i) as usize];
                let (type_name, id) = (list.type_name(i), list.id(i));
                check_parts(
                    self.schema,
                    type_name,
                    t,
                    id,
                    list.parent(i),
                    labels,
                    report,
                )
            }
        }
    }
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
    fn duplicates_and_missing_parents_are_reported_in_spec_order() {
        // A resource's own problems, then whether it is listed twice, in
        // the order of the list; then the missing parents of the first
        // listings, in the order of the list.
        let p = problems(
            "id: w\nlabels: [a]\nresources:\n\
             - { type: record, id: r-1, parent: m-1, labels: [zz] }\n\
             - { type: mini, id: m-2 }\n\
             - { type: record, id: r-1, parent: m-2, labels: [zz] }\n\
             - { type: record, id: r-2, parent: m-9 }\n\
             - { type: record, id: r-1, parent: m-8 }\n",
        );
        let got: Vec<(Rule, String)> = p.iter().map(|p| (p.rule, p.to_string())).collect();
        let want = [
            (Rule::UnknownLabel, "record:r-1"),
            (Rule::UnknownLabel, "record:r-1"),
            (Rule::Duplicate, "record:r-1"),
            (Rule::Duplicate, "record:r-1"),
            (Rule::Parent, "mini:m-1"),
            (Rule::Parent, "mini:m-9"),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((rule, text), (want_rule, names)) in got.iter().zip(want) {
            assert_eq!(*rule, want_rule, "{got:?}");
            assert!(text.contains(names), "{text}");
        }
    }

    /// A snapshot validated from its stored form (as on a restart) gives
    /// the same workspaces, or the same problems, as from its spec.
    #[test]
    fn a_stored_snapshot_validates_as_its_spec() {
        for yaml in [
            "workspaces: []\n",
            "workspaces:\n  - id: w\n    labels: [a, b]\n    users: [{ id: u-1, bindings: [{ role: viewer, scope: \"resource:record:r-1\" }] }]\n    resources:\n      - { type: mini, id: m-1, labels: [b, a, b] }\n      - { type: record, id: r-1, parent: m-1 }\n      - { type: record, id: r-0, parent: \"mini:m-1\", labels: [a] }\n",
            "workspaces:\n  - id: w\n    labels: [a]\n    resources:\n      - { type: record, id: r-1, parent: m-1, labels: [zz] }\n      - { type: mini, id: m-2 }\n      - { type: record, id: r-1, parent: m-2 }\n      - { type: nope, id: x }\n      - { type: user, id: u }\n      - { type: mini, id: \"a b\" }\n  - id: w\n  - id: v\n    resources: [{ type: mini, id: m-1, parent: m-0 }]\n",
        ] {
            let spec: SnapshotSpec = match from_text(yaml, "test") {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            let json = match serde_json::to_string(&spec) {
                Ok(j) => j,
                Err(e) => panic!("{e}"),
            };
            let stored: StoredSnapshot = match serde_json::from_str(&json) {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            match (validate_snapshot(&spec), validate_stored(&stored)) {
                (Ok(a), Ok(b)) => {
                    let specs = |w: &[Workspace]| {
                        w.iter()
                            .map(|w| match w.to_spec() {
                                Ok(s) => s,
                                Err(e) => panic!("{e}"),
                            })
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(specs(&a), specs(&b));
                    assert!(!a.is_empty() || yaml.contains("[]"));
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{yaml}: {a:?} / {b:?}"),
            }
        }
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
        let spec = match ws.to_spec() {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(spec.labels, ["a", "b"]);
        let users: Vec<&str> = spec.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(users, ["u-1", "u-2"]);
        let res: Vec<&str> = spec.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(res, ["m-1", "m-2"]);
        match ws.spec_head.spec() {
            Ok(head) => assert!(head.resources.is_empty(), "resources are kept once"),
            Err(e) => panic!("{e}"),
        }
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
