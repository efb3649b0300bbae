//! Live updates in domain terms (SPEC 5, `Admin.Apply`): an [`Update`] is a
//! full snapshot of some workspaces or a [`Delta`] to one, with who sent it.
//!
//! Nothing here sees protobuf types (the wire form is converted in
//! `crate::admin_convert`) or does I/O. [`apply_delta`] turns a workspace's
//! spec and a delta into the new spec; [`check_snapshot_sources`] checks a
//! full replacement against the directory rule; [`apply_update`] does both
//! and validates the result, and is what both the live admin path and the
//! replay of the durable log should call, so the two cannot disagree.
//!
//! # Who may write what (SPEC 1.3, the directory rule)
//!
//! Only users and groups carry a `source`, so only they are gated:
//!
//! - an `admin` update may not change or remove a user or group marked
//!   `source: directory`, nor create one, nor mark a local one `directory`;
//! - a `directory` update writes only items marked `source: directory`: every
//!   user and group it upserts must say `source: directory` (it may so take
//!   over an existing local item, as an identity provider links an existing
//!   account), and it may remove only items that are `source: directory`.
//!
//! An unchanged item is never a problem, whatever the source, so a full
//! snapshot from either source may carry the other's items as they are. Roles,
//! labels, resources, features and policy have no owner and either source may
//! change them.
//!
//! # What a delta does not do
//!
//! It never cascades: removing a user leaves them in the groups that list
//! them, removing a label leaves the resources and bindings that name it.
//! Validation of the result reports each dangling reference and the whole
//! update is rejected, so the control plane sends the complete change.

use std::borrow::Cow;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::catalog::{catalog, DEFAULT_TYPES};
use super::problem::{InvalidSnapshot, Problem, Rule};
use super::spec::{
    BindingSpec, GroupSpec, PolicySpec, ResourceSpec, RoleSpec, SnapshotSpec, Source, UserSpec,
    WorkspaceSpec,
};
use super::validate::validate_workspace;
use super::workspace::Workspace;

/// Who sent an update: the product's admin backend, or its identity-provider
/// sync. Only `Directory` may write directory-managed users and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateSource {
    Admin,
    Directory,
}

impl UpdateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateSource::Admin => "admin",
            UpdateSource::Directory => "directory",
        }
    }

    /// `"admin"` or `"directory"`, exactly.
    pub fn parse(s: &str) -> Option<UpdateSource> {
        match s {
            "admin" => Some(UpdateSource::Admin),
            "directory" => Some(UpdateSource::Directory),
            _ => None,
        }
    }
}

/// One accepted-or-not request of the admin stream, in domain terms. This is
/// also what the durable log stores (as JSON), so its serde form is part of
/// the on-disk format: add fields only with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Chosen by the caller, echoed in the answer and in Watch events.
    pub request_id: String,
    pub source: UpdateSource,
    /// The revision the caller expects the sidecar to be at. Checked once,
    /// when the update is first applied; a replay of the log ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<u64>,
    pub body: UpdateBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateBody {
    /// Replaces the workspaces it names; the others are untouched.
    Snapshot(SnapshotSpec),
    /// Changes one workspace.
    Delta(Delta),
}

impl Update {
    /// The ids of the workspaces the update writes, ascending, each once.
    pub fn workspaces(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = match &self.body {
            UpdateBody::Snapshot(s) => s.workspaces.iter().map(|w| w.id.as_str()).collect(),
            UpdateBody::Delta(d) => vec![d.workspace.as_str()],
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Changes to one workspace, applied in order, all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    pub workspace: String,
    pub changes: Vec<Change>,
}

/// One change of a [`Delta`]. Upserts replace the item with the same id (a
/// resource's id is its `type:id`) or add it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    UpsertUser(UserSpec),
    /// A user id.
    RemoveUser(String),
    UpsertGroup(GroupSpec),
    /// A group id.
    RemoveGroup(String),
    /// Built-in roles of the workspace's catalog cannot be upserted.
    UpsertRole(RoleSpec),
    /// Disables the role: it stays a resource, and grants nothing.
    RemoveRole(String),
    /// Adding a label that exists changes nothing.
    UpsertLabel(String),
    RemoveLabel(String),
    UpsertResource(ResourceSpec),
    /// `type:id`. Its children must be removed in the same delta.
    RemoveResource(String),
    /// Replaces the enabled features; `None` switches every feature on.
    SetFeatures(Option<Vec<String>>),
    /// Replaces the whole policy; absent fields take the catalog's defaults.
    SetPolicy(PolicySpec),
}

impl Change {
    /// The wire name of the change, as in `admin.proto`.
    pub fn name(&self) -> &'static str {
        match self {
            Change::UpsertUser(_) => "upsert_user",
            Change::RemoveUser(_) => "remove_user",
            Change::UpsertGroup(_) => "upsert_group",
            Change::RemoveGroup(_) => "remove_group",
            Change::UpsertRole(_) => "upsert_role",
            Change::RemoveRole(_) => "remove_role",
            Change::UpsertLabel(_) => "upsert_label",
            Change::RemoveLabel(_) => "remove_label",
            Change::UpsertResource(_) => "upsert_resource",
            Change::RemoveResource(_) => "remove_resource",
            Change::SetFeatures(_) => "set_features",
            Change::SetPolicy(_) => "set_policy",
        }
    }
}

/// `set_features` and `set_policy` as plain edits of a spec.
impl WorkspaceSpec {
    /// Replaces the enabled features; `None` means every feature is on.
    pub fn set_features(&mut self, features: Option<Vec<String>>) {
        self.features = features;
    }

    /// Replaces the whole policy. An empty policy is stored as none, which
    /// means the same and exports more cleanly.
    pub fn set_policy(&mut self, policy: PolicySpec) {
        self.policy = if policy == PolicySpec::default() {
            None
        } else {
            Some(policy)
        };
    }
}

/// Applies `delta` to `current` in order and returns the new spec, or every
/// problem the delta itself has (unknown ids, built-in roles, the directory
/// rule, removed resources that keep children). A change with a problem is
/// skipped and the following ones still checked, so all are reported.
///
/// The result is not validated: pass it to [`validate_workspace`] (or use
/// [`apply_update`]), which checks every SPEC 1.3 invariant and reference.
pub fn apply_delta(
    current: &WorkspaceSpec,
    delta: &Delta,
    source: UpdateSource,
) -> Result<WorkspaceSpec, Vec<Problem>> {
    let (ws, problems) = apply_delta_to(current.clone(), delta, source);
    if problems.is_empty() {
        Ok(ws)
    } else {
        Err(problems)
    }
}

/// [`apply_delta`] on a spec the caller gives up (no copy of it is made:
/// a large workspace's spec is hundreds of megabytes). Returns the result
/// with every change that has a problem left out, and the problems, so the
/// caller can validate what the other changes make and report all at once.
fn apply_delta_to(
    mut ws: WorkspaceSpec,
    delta: &Delta,
    source: UpdateSource,
) -> (WorkspaceSpec, Vec<Problem>) {
    let ws_place = format!("workspace \"{}\"", ws.id);
    if delta.workspace != ws.id {
        let wrong = Problem::new(
            Rule::Id,
            ws_place,
            format!(
                "the delta is for workspace \"{}\", not this one",
                delta.workspace
            ),
        );
        return (ws, vec![wrong]);
    }
    let builtins = catalog(ws.catalog.unwrap_or_default()).roles;
    let is_builtin = |id: &str| builtins.iter().any(|b| b.id == id);
    let mut problems = Vec::new();
    // Removed items, to check for what still uses them once every change
    // is applied.
    let mut removed: Vec<(usize, ResourceSpec)> = Vec::new();
    let mut removed_labels: Vec<(usize, String)> = Vec::new();
    let mut removed_users: Vec<(usize, UserSpec)> = Vec::new();

    for (i, change) in delta.changes.iter().enumerate() {
        let place = format!("{ws_place}, changes[{i}] ({})", change.name());
        let mut report = |rule: Rule, message: String| {
            problems.push(Problem::new(rule, place.clone(), message));
        };
        match change {
            Change::UpsertUser(u) => {
                let at = ws.users.iter().position(|x| x.id == u.id);
                let existing = at.map(|k| ws.users[k].source);
                if let Some(m) = directory_rule("user", &u.id, existing, Some(u.source), source) {
                    report(Rule::Directory, m);
                    continue;
                }
                match at {
                    Some(k) => ws.users[k] = u.clone(),
                    None => ws.users.push(u.clone()),
                }
            }
            Change::RemoveUser(id) => {
                let Some(k) = ws.users.iter().position(|x| &x.id == id) else {
                    report(
                        Rule::UnknownResource,
                        format!("user \"{id}\" is not a user of this workspace"),
                    );
                    continue;
                };
                if let Some(m) = directory_rule("user", id, Some(ws.users[k].source), None, source)
                {
                    report(Rule::Directory, m);
                    continue;
                }
                removed_users.push((i, ws.users.remove(k)));
            }
            Change::UpsertGroup(g) => {
                let at = ws.groups.iter().position(|x| x.id == g.id);
                let existing = at.map(|k| ws.groups[k].source);
                if let Some(m) = directory_rule("group", &g.id, existing, Some(g.source), source) {
                    report(Rule::Directory, m);
                    continue;
                }
                match at {
                    Some(k) => ws.groups[k] = g.clone(),
                    None => ws.groups.push(g.clone()),
                }
            }
            Change::RemoveGroup(id) => {
                let Some(k) = ws.groups.iter().position(|x| &x.id == id) else {
                    report(
                        Rule::UnknownResource,
                        format!("group \"{id}\" is not a group of this workspace"),
                    );
                    continue;
                };
                if let Some(m) =
                    directory_rule("group", id, Some(ws.groups[k].source), None, source)
                {
                    report(Rule::Directory, m);
                    continue;
                }
                ws.groups.remove(k);
            }
            Change::UpsertRole(r) => {
                if is_builtin(&r.id) {
                    report(Rule::BuiltIn, builtin_message(&r.id));
                    continue;
                }
                match ws.roles.iter().position(|x| x.id == r.id) {
                    Some(k) => ws.roles[k] = r.clone(),
                    None => ws.roles.push(r.clone()),
                }
            }
            Change::RemoveRole(id) => {
                if is_builtin(id) {
                    report(Rule::BuiltIn, builtin_message(id));
                    continue;
                }
                match ws.roles.iter_mut().find(|x| &x.id == id) {
                    Some(r) => r.disabled = true,
                    None => report(
                        Rule::UnknownRole,
                        format!("role \"{id}\" is not a role of this workspace"),
                    ),
                }
            }
            Change::UpsertLabel(l) => {
                if !ws.labels.contains(l) {
                    ws.labels.push(l.clone());
                }
            }
            Change::RemoveLabel(l) => match ws.labels.iter().position(|x| x == l) {
                Some(k) => removed_labels.push((i, ws.labels.remove(k))),
                None => report(
                    Rule::UnknownLabel,
                    format!("label \"{l}\" is not a label of this workspace"),
                ),
            },
            Change::UpsertResource(r) => {
                match ws
                    .resources
                    .iter()
                    .position(|x| x.type_ == r.type_ && x.id == r.id)
                {
                    Some(k) => ws.resources[k] = r.clone(),
                    None => ws.resources.push(r.clone()),
                }
            }
            Change::RemoveResource(key) => {
                let Some((t, id)) = key.split_once(':') else {
                    report(
                        Rule::Id,
                        format!("\"{key}\" must name a resource as type:id"),
                    );
                    continue;
                };
                match ws.resources.iter().position(|x| x.type_ == t && x.id == id) {
                    Some(k) => removed.push((i, ws.resources.remove(k))),
                    None => report(
                        Rule::UnknownResource,
                        format!("resource \"{key}\" is not a resource of this workspace"),
                    ),
                }
            }
            Change::SetFeatures(f) => ws.set_features(f.clone()),
            Change::SetPolicy(p) => ws.set_policy(p.clone()),
        }
    }

    orphan_problems(&mut ws, &ws_place, delta, removed, &mut problems);
    label_use_problems(&mut ws, &ws_place, delta, removed_labels, &mut problems);
    member_problems(&mut ws, &ws_place, delta, removed_users, &mut problems);
    (ws, problems)
}

/// A removed label must not be used in the result (unless a later change
/// declared it again): carried by a resource, or the scope of a binding.
/// One still used is put back, as a change with a problem is left out, so
/// each use is not reported again as a label the workspace lacks.
fn label_use_problems(
    ws: &mut WorkspaceSpec,
    ws_place: &str,
    delta: &Delta,
    removed: Vec<(usize, String)>,
    problems: &mut Vec<Problem>,
) {
    for (i, label) in removed {
        if ws.labels.contains(&label) {
            continue;
        }
        let scope = format!("label:{label}");
        let binds = |bindings: &[BindingSpec]| {
            bindings
                .iter()
                .any(|b| b.scope.as_deref() == Some(scope.as_str()))
        };
        let uses: Vec<String> = ws
            .resources
            .iter()
            .filter(|r| r.labels.contains(&label))
            .map(|r| format!("resource {}:{}", r.type_, r.id))
            .chain(
                ws.users
                    .iter()
                    .filter(|u| binds(&u.bindings))
                    .map(|u| format!("user {}", u.id)),
            )
            .chain(
                ws.groups
                    .iter()
                    .filter(|g| binds(&g.bindings))
                    .map(|g| format!("group {}", g.id)),
            )
            .collect();
        if uses.is_empty() {
            continue;
        }
        problems.push(Problem::new(
            Rule::UnknownLabel,
            change_place(ws_place, delta, i),
            format!(
                "label \"{label}\" is still used by {} item(s) ({}): resources that carry it \
                 and bindings at {scope}; remove those uses in the same delta, or keep the label",
                uses.len(),
                some_of(&uses)
            ),
        ));
        ws.labels.push(label);
    }
}

/// A removed user must not be a group's member in the result (unless a
/// later change added the user again). One still a member is put back, so
/// the groups are not reported again as naming an unknown member.
fn member_problems(
    ws: &mut WorkspaceSpec,
    ws_place: &str,
    delta: &Delta,
    removed: Vec<(usize, UserSpec)>,
    problems: &mut Vec<Problem>,
) {
    let mut kept = Vec::new();
    for (i, user) in removed {
        if ws.users.iter().any(|u| u.id == user.id) {
            continue;
        }
        let groups: Vec<String> = ws
            .groups
            .iter()
            .filter(|g| g.members.contains(&user.id))
            .map(|g| g.id.clone())
            .collect();
        if groups.is_empty() {
            continue;
        }
        problems.push(Problem::new(
            Rule::UnknownMember,
            change_place(ws_place, delta, i),
            format!(
                "user \"{}\" is still a member of {} group(s) ({}); remove it from them in \
                 the same delta",
                user.id,
                groups.len(),
                some_of(&groups)
            ),
        ));
        kept.push(user);
    }
    ws.users.extend(kept);
}

/// Where change `i` of `delta` is reported.
fn change_place(ws_place: &str, delta: &Delta, i: usize) -> String {
    let name = delta.changes.get(i).map_or("change", Change::name);
    format!("{ws_place}, changes[{i}] ({name})")
}

/// The first few of `items`, and how many more there are.
fn some_of(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let shown = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len() {
        n if n > SHOWN => format!("{shown} and {} more", n - SHOWN),
        _ => shown,
    }
}

/// A removed resource must not keep children in the result (unless it was
/// added back by a later change). One that does is put back, as a change
/// with a problem is left out, so its children are not reported again.
fn orphan_problems(
    ws: &mut WorkspaceSpec,
    ws_place: &str,
    delta: &Delta,
    removed: Vec<(usize, ResourceSpec)>,
    problems: &mut Vec<Problem>,
) {
    if removed.is_empty() {
        return;
    }
    // The parent type of each type: the default schema's, then the custom.
    let mut parent_type: FxHashMap<&str, &str> = FxHashMap::default();
    for t in DEFAULT_TYPES {
        if let Some(p) = t.parent {
            parent_type.insert(t.name, p);
        }
    }
    for t in &ws.types {
        if let Some(p) = &t.parent {
            parent_type.insert(t.name.as_str(), p.as_str());
        }
    }
    let mut kept = Vec::new();
    for (i, resource) in removed {
        let (t, id) = (&resource.type_, &resource.id);
        if ws.resources.iter().any(|r| &r.type_ == t && &r.id == id) {
            continue;
        }
        let children: Vec<String> = ws
            .resources
            .iter()
            .filter(|r| {
                let Some(p) = &r.parent else { return false };
                match p.split_once(':') {
                    Some((pt, pid)) => pt == t && pid == id,
                    None => p == id && parent_type.get(r.type_.as_str()) == Some(&t.as_str()),
                }
            })
            .map(|r| format!("{}:{}", r.type_, r.id))
            .collect();
        if children.is_empty() {
            continue;
        }
        problems.push(Problem::new(
            Rule::Parent,
            change_place(ws_place, delta, i),
            format!(
                "resource \"{t}:{id}\" still has {} child resource(s) ({}); \
                 remove or move them in the same delta",
                children.len(),
                some_of(&children)
            ),
        ));
        kept.push(resource);
    }
    ws.resources.extend(kept);
}

fn builtin_message(id: &str) -> String {
    format!("\"{id}\" is a built-in role of this catalog and cannot be changed or removed")
}

/// The directory rule for writing one user or group (see the module docs).
/// `existing` is the item's current source (`None`: it does not exist yet),
/// `new` the source it is written with (`None`: it is being removed).
fn directory_rule(
    kind: &str,
    id: &str,
    existing: Option<Source>,
    new: Option<Source>,
    source: UpdateSource,
) -> Option<String> {
    match source {
        UpdateSource::Admin => {
            if existing == Some(Source::Directory) {
                Some(format!(
                    "{kind} \"{id}\" is managed by the identity provider (source: directory); \
                     only an update with source \"directory\" may change or remove it"
                ))
            } else if new == Some(Source::Directory) {
                Some(format!(
                    "{kind} \"{id}\" is marked source: directory; only an update with source \
                     \"directory\" may write items managed by the identity provider"
                ))
            } else {
                None
            }
        }
        UpdateSource::Directory => match new {
            Some(Source::Local) => Some(format!(
                "{kind} \"{id}\" is written with source: local; an update with source \
                 \"directory\" may only write items marked source: directory"
            )),
            Some(Source::Directory) => None,
            None if existing == Some(Source::Local) => Some(format!(
                "{kind} \"{id}\" is managed locally (source: local); an update with source \
                 \"directory\" may only remove items marked source: directory"
            )),
            None => None,
        },
    }
}

/// Checks a full replacement of one workspace (`current` is `None` when it
/// is new) against the directory rule: every user and group the snapshot
/// adds, changes or drops is written by `source` and must be allowed to it.
/// Order of lists (members, bindings) does not count as a change.
///
/// A workspace new to this sidecar may come from either source with items of
/// both kinds, exactly as a snapshot file does: nothing the identity provider
/// manages exists yet to be protected.
pub fn check_snapshot_sources(
    current: Option<&WorkspaceSpec>,
    new: &WorkspaceSpec,
    source: UpdateSource,
) -> Vec<Problem> {
    let Some(current) = current else {
        return Vec::new();
    };
    let place = format!("workspace \"{}\"", new.id);
    let mut problems = Vec::new();
    check_items(
        "user",
        &place,
        &current.users,
        &new.users,
        |u| (u.id.as_str(), u.source),
        |a, b| {
            a.status == b.status && a.source == b.source && same_bindings(&a.bindings, &b.bindings)
        },
        source,
        &mut problems,
    );
    check_items(
        "group",
        &place,
        &current.groups,
        &new.groups,
        |g| (g.id.as_str(), g.source),
        |a, b| {
            a.source == b.source
                && same_set(&a.members, &b.members)
                && same_bindings(&a.bindings, &b.bindings)
        },
        source,
        &mut problems,
    );
    problems
}

#[allow(clippy::too_many_arguments)]
fn check_items<T>(
    kind: &str,
    place: &str,
    current: &[T],
    new: &[T],
    key: impl Fn(&T) -> (&str, Source),
    same: impl Fn(&T, &T) -> bool,
    source: UpdateSource,
    problems: &mut Vec<Problem>,
) {
    let mut cur: FxHashMap<&str, &T> = FxHashMap::default();
    for item in current {
        cur.entry(key(item).0).or_insert(item);
    }
    let mut seen: FxHashMap<&str, ()> = FxHashMap::default();
    for item in new {
        let (id, new_source) = key(item);
        if seen.insert(id, ()).is_some() {
            continue; // a duplicate: validation reports it
        }
        let old = cur.get(id).copied();
        if old.is_some_and(|o| same(o, item)) {
            continue;
        }
        let existing = old.map(|o| key(o).1);
        if let Some(m) = directory_rule(kind, id, existing, Some(new_source), source) {
            problems.push(Problem::new(
                Rule::Directory,
                format!("{place}, {kind} \"{id}\""),
                m,
            ));
        }
    }
    for item in current {
        let (id, old_source) = key(item);
        if seen.contains_key(id) {
            continue;
        }
        seen.insert(id, ());
        if let Some(m) = directory_rule(kind, id, Some(old_source), None, source) {
            problems.push(Problem::new(
                Rule::Directory,
                format!("{place}, {kind} \"{id}\""),
                m,
            ));
        }
    }
}

/// The same grants, however written: order ignored, and no scope is
/// `workspace` (SPEC 3: "a binding with no scope is at workspace scope").
fn same_bindings(a: &[BindingSpec], b: &[BindingSpec]) -> bool {
    same_set(&grants(a), &grants(b))
}

fn grants(bindings: &[BindingSpec]) -> Vec<(&str, &str)> {
    bindings
        .iter()
        .map(|b| (b.role.as_str(), b.scope.as_deref().unwrap_or("workspace")))
        .collect()
}

/// Equal as multisets (order ignored).
fn same_set<T: Eq + std::hash::Hash>(a: &[T], b: &[T]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true;
    }
    let mut count: FxHashMap<&T, usize> = FxHashMap::default();
    for x in a {
        *count.entry(x).or_insert(0) += 1;
    }
    for x in b {
        match count.get_mut(x) {
            Some(n) if *n > 0 => *n -= 1,
            _ => return false,
        }
    }
    true
}

/// Resolves an update against the current model and validates the result:
/// the workspaces to put in place of (or next to) the current ones, each
/// fully validated. `current` looks a workspace's spec up by id; for a
/// snapshot body only its users and groups are read (the directory rule),
/// so a spec without resources will do.
///
/// A snapshot body replaces the workspaces it names: each is checked against
/// the directory rule ([`check_snapshot_sources`]) and validated. A delta
/// body needs its workspace to exist, and goes through [`apply_delta`] then
/// validation; the changes with a problem are left out of what is
/// validated, and both kinds of problem are reported.
/// `expected_revision` is the caller's to check (it is not model data).
pub fn apply_update<'a>(
    current: impl Fn(&str) -> Option<Cow<'a, WorkspaceSpec>>,
    update: &Update,
) -> Result<Vec<Workspace>, InvalidSnapshot> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    match &update.body {
        UpdateBody::Snapshot(snap) => {
            let mut seen: FxHashMap<&str, ()> = FxHashMap::default();
            for ws in &snap.workspaces {
                if seen.insert(ws.id.as_str(), ()).is_some() {
                    problems.push(Problem::new(
                        Rule::Duplicate,
                        format!("workspace \"{}\"", ws.id),
                        "workspace id is used twice in this snapshot",
                    ));
                    continue;
                }
                let sources = check_snapshot_sources(current(&ws.id).as_deref(), ws, update.source);
                let valid = validate_workspace(ws);
                problems.extend(sources);
                match valid {
                    Ok(w) => out.push(w),
                    Err(e) => problems.extend(e.problems),
                }
            }
        }
        UpdateBody::Delta(delta) => match current(&delta.workspace) {
            None => problems.push(Problem::new(
                Rule::UnknownResource,
                format!("workspace \"{}\"", delta.workspace),
                "no such workspace; create it with a snapshot first",
            )),
            Some(cur) => {
                // The result of the changes that have no problem is
                // validated too, so one answer names every problem.
                let (spec, delta_problems) = apply_delta_to(cur.into_owned(), delta, update.source);
                problems.extend(delta_problems);
                match validate_workspace(&spec) {
                    Ok(w) => out.push(w),
                    Err(e) => problems.extend(e.problems),
                }
            }
        },
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::spec::BindingSpec;

    fn user(id: &str, source: Source) -> UserSpec {
        UserSpec {
            id: id.into(),
            source,
            bindings: vec![BindingSpec {
                role: "member".into(),
                scope: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn directory_rule_table() {
        use Source::{Directory as D, Local as L};
        use UpdateSource::{Admin as A, Directory as Dir};
        // (existing, new, source, allowed)
        let cases = [
            (None, Some(L), A, true),
            (None, Some(D), A, false),
            (Some(L), Some(L), A, true),
            (Some(L), Some(D), A, false),
            (Some(D), Some(D), A, false),
            (Some(D), Some(L), A, false),
            (Some(L), None, A, true),
            (Some(D), None, A, false),
            (None, Some(D), Dir, true),
            (None, Some(L), Dir, false),
            (Some(L), Some(D), Dir, true),
            (Some(L), Some(L), Dir, false),
            (Some(D), Some(D), Dir, true),
            (Some(D), Some(L), Dir, false),
            (Some(D), None, Dir, true),
            (Some(L), None, Dir, false),
        ];
        for (existing, new, source, allowed) in cases {
            let got = directory_rule("user", "u", existing, new, source);
            assert_eq!(
                got.is_none(),
                allowed,
                "{existing:?} {new:?} {source:?}: {got:?}"
            );
        }
    }

    #[test]
    fn snapshot_sources_ignore_how_an_unchanged_item_is_written() {
        let bind = |role: &str, scope: Option<&str>| BindingSpec {
            role: role.into(),
            scope: scope.map(Into::into),
        };
        let mut a = user("u", Source::Directory);
        a.bindings = vec![bind("viewer", Some("label:x")), bind("editor", None)];
        let workspace = |u: UserSpec| WorkspaceSpec {
            id: "w".into(),
            users: vec![u],
            ..Default::default()
        };
        let cur = workspace(a.clone());
        // Reordered, and the default scope written out: the same grants.
        let mut b = a.clone();
        b.bindings = vec![
            bind("editor", Some("workspace")),
            bind("viewer", Some("label:x")),
        ];
        let new = workspace(b);
        assert!(check_snapshot_sources(Some(&cur), &new, UpdateSource::Admin).is_empty());
        // Another scope is a change.
        let mut c = a;
        c.bindings[1] = bind("editor", Some("label:x"));
        let changed = workspace(c);
        let p = check_snapshot_sources(Some(&cur), &changed, UpdateSource::Admin);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].rule, Rule::Directory);
    }

    #[test]
    fn set_policy_stores_an_empty_policy_as_none() {
        let mut ws = WorkspaceSpec::default();
        ws.set_policy(PolicySpec {
            min_admins: Some(1),
            ..Default::default()
        });
        assert!(ws.policy.is_some());
        ws.set_policy(PolicySpec::default());
        assert_eq!(ws.policy, None);
    }

    #[test]
    fn update_serde_round_trip() {
        let u = Update {
            request_id: "r1".into(),
            source: UpdateSource::Directory,
            expected_revision: Some(7),
            body: UpdateBody::Delta(Delta {
                workspace: "w".into(),
                changes: vec![
                    Change::UpsertUser(user("u", Source::Directory)),
                    Change::RemoveResource("mini:m".into()),
                    Change::SetFeatures(None),
                    Change::SetFeatures(Some(vec![])),
                    Change::SetPolicy(PolicySpec::default()),
                ],
            }),
        };
        let text = serde_json::to_string(&u).unwrap();
        let back: Update = serde_json::from_str(&text).unwrap();
        assert_eq!(back, u);
    }
}
