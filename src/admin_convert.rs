//! The edge between the Admin API's generated types and the domain: an
//! `ApplyRequest` becomes an [`Update`], a [`SnapshotSpec`] becomes the
//! `Snapshot` that `Export` sends. Nothing past this module sees `pb::`
//! snapshot types.
//!
//! Every message is destructured completely, so a field added to
//! `admin.proto` is a compile error here until it is handled. A malformed
//! request is refused with every problem at once, each naming its field
//! (`delta.changes[2]: empty change`); the API turns that into
//! INVALID_ARGUMENT. Only the wire's own shape is checked here: ids,
//! references and every SPEC 1.3 rule are the model's job.

use std::fmt;

use prost_types::value::Kind;
use prost_types::{ListValue, Value};

use crate::model::delta::{Change, Delta, Update, UpdateBody, UpdateSource};
use crate::model::spec::{
    BindingSpec, CatalogName, GroupSpec, PolicySpec, ResourceSpec, RoleSpec, SnapshotSpec, Source,
    TypeSpec, UserSpec, UserStatus, WorkspaceSpec,
};
use crate::pb;

/// One malformed field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path in the request, as in the proto JSON form:
    /// `snapshot.workspaces[0].users[3].status`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A request whose wire form is malformed (INVALID_ARGUMENT), with every
/// malformed field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidRequest {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects field errors while converting.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

impl TryFrom<pb::ApplyRequest> for Update {
    type Error = InvalidRequest;

    fn try_from(req: pb::ApplyRequest) -> Result<Update, InvalidRequest> {
        let pb::ApplyRequest {
            request_id,
            source,
            expected_revision,
            body,
        } = req;
        let mut errs = Errors::default();
        let source = UpdateSource::parse(&source);
        if source.is_none() {
            errs.push("source", "must be \"admin\" or \"directory\"");
        }
        let expected_revision = match parse_revision(&expected_revision) {
            Ok(r) => r,
            Err(m) => {
                errs.push("expected_revision", m);
                None
            }
        };
        let body = match body {
            None => {
                errs.push("body", "must be a snapshot, a snapshot_piece or a delta");
                None
            }
            Some(pb::apply_request::Body::Snapshot(s)) => {
                Some(UpdateBody::Snapshot(snapshot(s, "snapshot", &mut errs)))
            }
            Some(pb::apply_request::Body::Delta(d)) => {
                Some(UpdateBody::Delta(delta(d, "delta", &mut errs)))
            }
            // An Apply stream merges pieces into a snapshot before this.
            Some(pb::apply_request::Body::SnapshotPiece(_)) => {
                errs.push("snapshot_piece", "is taken only on an Apply stream");
                None
            }
        };
        match (source, body) {
            (Some(source), Some(body)) if errs.0.is_empty() => Ok(Update {
                request_id,
                source,
                expected_revision,
                body,
            }),
            _ => Err(InvalidRequest { errors: errs.0 }),
        }
    }
}

/// A decimal u64 revision; empty means none.
pub fn parse_revision(s: &str) -> Result<Option<u64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("\"{s}\" is not a decimal revision"));
    }
    s.parse::<u64>()
        .map(Some)
        .map_err(|_| format!("\"{s}\" is not a revision (u64)"))
}

/// Converts a wire snapshot on its own (as `Apply` does for its body).
pub fn snapshot_from_pb(s: pb::Snapshot) -> Result<SnapshotSpec, InvalidRequest> {
    let mut errs = Errors::default();
    let spec = snapshot(s, "snapshot", &mut errs);
    if errs.0.is_empty() {
        Ok(spec)
    } else {
        Err(InvalidRequest { errors: errs.0 })
    }
}

fn snapshot(s: pb::Snapshot, at: &str, errs: &mut Errors) -> SnapshotSpec {
    let pb::Snapshot { workspaces } = s;
    SnapshotSpec {
        workspaces: workspaces
            .into_iter()
            .enumerate()
            .map(|(i, w)| workspace(w, &format!("{at}.workspaces[{i}]"), errs))
            .collect(),
    }
}

fn workspace(w: pb::Workspace, at: &str, errs: &mut Errors) -> WorkspaceSpec {
    let pb::Workspace {
        id,
        catalog,
        features,
        policy,
        types,
        roles,
        labels,
        groups,
        users,
        resources,
    } = w;
    let catalog = match catalog.as_str() {
        "" => None,
        "minikai" => Some(CatalogName::Minikai),
        "environment" => Some(CatalogName::Environment),
        "seats" => Some(CatalogName::Seats),
        "none" => Some(CatalogName::None),
        other => {
            errs.push(
                format!("{at}.catalog"),
                format!("\"{other}\" is not a catalog (minikai, environment, seats or none)"),
            );
            None
        }
    };
    WorkspaceSpec {
        id,
        catalog,
        features: features.map(|l| strings(l, &format!("{at}.features"), errs)),
        policy: policy.map(|p| policy_spec(p, &format!("{at}.policy"), errs)),
        types: types.into_iter().map(type_spec).collect(),
        roles: roles.into_iter().map(role_spec).collect(),
        labels,
        groups: groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| group_spec(g, &format!("{at}.groups[{i}]"), errs))
            .collect(),
        users: users
            .into_iter()
            .enumerate()
            .map(|(i, u)| user_spec(u, &format!("{at}.users[{i}]"), errs))
            .collect(),
        resources: resources.into_iter().map(resource_spec).collect(),
    }
}

/// The strings of a ListValue; any other element is an error.
fn strings(l: ListValue, at: &str, errs: &mut Errors) -> Vec<String> {
    let ListValue { values } = l;
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        match v.kind {
            Some(Kind::StringValue(s)) => out.push(s),
            _ => errs.push(format!("{at}[{i}]"), "must be a string"),
        }
    }
    out
}

fn list_value(items: &[String]) -> ListValue {
    ListValue {
        values: items
            .iter()
            .map(|s| Value {
                kind: Some(Kind::StringValue(s.clone())),
            })
            .collect(),
    }
}

fn policy_spec(p: pb::Policy, at: &str, errs: &mut Errors) -> PolicySpec {
    let pb::Policy {
        min_admins,
        max_roles_per_user,
        admin_roles,
    } = p;
    PolicySpec {
        min_admins,
        max_roles_per_user,
        admin_roles: admin_roles.map(|l| strings(l, &format!("{at}.admin_roles"), errs)),
    }
}

fn type_spec(t: pb::ResourceType) -> TypeSpec {
    let pb::ResourceType {
        name,
        parent,
        actions,
        feature,
    } = t;
    TypeSpec {
        name,
        parent,
        actions,
        feature,
    }
}

fn role_spec(r: pb::Role) -> RoleSpec {
    let pb::Role {
        id,
        name,
        description,
        organization,
        rank,
        grants,
        seat,
        disabled,
    } = r;
    RoleSpec {
        id,
        name,
        description,
        organization,
        rank,
        grants,
        seat,
        disabled,
    }
}

fn binding_spec(b: pb::RoleBinding) -> BindingSpec {
    let pb::RoleBinding { role, scope } = b;
    BindingSpec { role, scope }
}

fn source(s: &str, at: &str, errs: &mut Errors) -> Source {
    match s {
        "" | "local" => Source::Local,
        "directory" => Source::Directory,
        other => {
            errs.push(
                format!("{at}.source"),
                format!("\"{other}\" is not a source (local or directory)"),
            );
            Source::Local
        }
    }
}

fn group_spec(g: pb::Group, at: &str, errs: &mut Errors) -> GroupSpec {
    let pb::Group {
        id,
        source: src,
        members,
        bindings,
    } = g;
    GroupSpec {
        id,
        source: source(&src, at, errs),
        members,
        bindings: bindings.into_iter().map(binding_spec).collect(),
    }
}

fn user_spec(u: pb::User, at: &str, errs: &mut Errors) -> UserSpec {
    let pb::User {
        id,
        status,
        source: src,
        bindings,
    } = u;
    let status = match status.as_str() {
        "" | "active" => UserStatus::Active,
        "suspended" => UserStatus::Suspended,
        other => {
            errs.push(
                format!("{at}.status"),
                format!("\"{other}\" is not a status (active or suspended)"),
            );
            UserStatus::Active
        }
    };
    UserSpec {
        id,
        status,
        source: source(&src, at, errs),
        bindings: bindings.into_iter().map(binding_spec).collect(),
    }
}

fn resource_spec(r: pb::Resource) -> ResourceSpec {
    let pb::Resource {
        r#type,
        id,
        parent,
        labels,
    } = r;
    ResourceSpec {
        type_: r#type,
        id,
        parent,
        labels,
    }
}

fn delta(d: pb::Delta, at: &str, errs: &mut Errors) -> Delta {
    use pb::change::Change as C;
    let pb::Delta { workspace, changes } = d;
    if workspace.is_empty() {
        errs.push(format!("{at}.workspace"), "required");
    }
    let mut out = Vec::with_capacity(changes.len());
    for (i, c) in changes.into_iter().enumerate() {
        let at = format!("{at}.changes[{i}]");
        let pb::Change { change } = c;
        let change = match change {
            None => {
                errs.push(at, "empty change");
                continue;
            }
            Some(c) => c,
        };
        out.push(match change {
            C::UpsertUser(u) => {
                Change::UpsertUser(user_spec(u, &format!("{at}.upsert_user"), errs))
            }
            C::RemoveUser(id) => Change::RemoveUser(id),
            C::UpsertGroup(g) => {
                Change::UpsertGroup(group_spec(g, &format!("{at}.upsert_group"), errs))
            }
            C::RemoveGroup(id) => Change::RemoveGroup(id),
            C::UpsertRole(r) => Change::UpsertRole(role_spec(r)),
            C::RemoveRole(id) => Change::RemoveRole(id),
            C::UpsertLabel(l) => Change::UpsertLabel(l),
            C::RemoveLabel(l) => Change::RemoveLabel(l),
            C::UpsertResource(r) => Change::UpsertResource(resource_spec(r)),
            C::RemoveResource(key) => {
                if !key.contains(':') {
                    errs.push(
                        format!("{at}.remove_resource"),
                        format!("\"{key}\" must be type:id"),
                    );
                }
                Change::RemoveResource(key)
            }
            C::SetFeatures(l) => {
                Change::SetFeatures(Some(strings(l, &format!("{at}.set_features"), errs)))
            }
            C::EnableAllFeatures(on) => {
                if !on {
                    errs.push(format!("{at}.enable_all_features"), "must be true");
                }
                Change::SetFeatures(None)
            }
            C::SetPolicy(p) => Change::SetPolicy(policy_spec(p, &format!("{at}.set_policy"), errs)),
        });
    }
    Delta {
        workspace,
        changes: out,
    }
}

impl From<&SnapshotSpec> for pb::Snapshot {
    fn from(s: &SnapshotSpec) -> pb::Snapshot {
        let SnapshotSpec { workspaces } = s;
        pb::Snapshot {
            workspaces: workspaces.iter().map(pb::Workspace::from).collect(),
        }
    }
}

impl From<&WorkspaceSpec> for pb::Workspace {
    fn from(w: &WorkspaceSpec) -> pb::Workspace {
        let WorkspaceSpec {
            id,
            catalog,
            features,
            policy,
            types,
            roles,
            labels,
            groups,
            users,
            resources,
        } = w;
        pb::Workspace {
            id: id.clone(),
            catalog: catalog.map(|c| c.as_str().to_string()).unwrap_or_default(),
            features: features.as_deref().map(list_value),
            policy: policy.as_ref().map(pb::Policy::from),
            types: types.iter().map(pb::ResourceType::from).collect(),
            roles: roles.iter().map(pb::Role::from).collect(),
            labels: labels.clone(),
            groups: groups.iter().map(pb::Group::from).collect(),
            users: users.iter().map(pb::User::from).collect(),
            resources: resources.iter().map(pb::Resource::from).collect(),
        }
    }
}

impl From<&PolicySpec> for pb::Policy {
    fn from(p: &PolicySpec) -> pb::Policy {
        let PolicySpec {
            min_admins,
            max_roles_per_user,
            admin_roles,
        } = p;
        pb::Policy {
            min_admins: *min_admins,
            max_roles_per_user: *max_roles_per_user,
            admin_roles: admin_roles.as_deref().map(list_value),
        }
    }
}

impl From<&TypeSpec> for pb::ResourceType {
    fn from(t: &TypeSpec) -> pb::ResourceType {
        let TypeSpec {
            name,
            parent,
            actions,
            feature,
        } = t;
        pb::ResourceType {
            name: name.clone(),
            parent: parent.clone(),
            actions: actions.clone(),
            feature: feature.clone(),
        }
    }
}

impl From<&RoleSpec> for pb::Role {
    fn from(r: &RoleSpec) -> pb::Role {
        let RoleSpec {
            id,
            name,
            description,
            organization,
            rank,
            grants,
            seat,
            disabled,
        } = r;
        pb::Role {
            id: id.clone(),
            name: name.clone(),
            description: description.clone(),
            organization: organization.clone(),
            rank: *rank,
            grants: grants.clone(),
            seat: *seat,
            disabled: *disabled,
        }
    }
}

impl From<&BindingSpec> for pb::RoleBinding {
    fn from(b: &BindingSpec) -> pb::RoleBinding {
        let BindingSpec { role, scope } = b;
        pb::RoleBinding {
            role: role.clone(),
            scope: scope.clone(),
        }
    }
}

/// Defaults are left empty, as the snapshot file leaves them out.
fn source_str(s: Source) -> String {
    match s {
        Source::Local => String::new(),
        Source::Directory => "directory".to_string(),
    }
}

impl From<&GroupSpec> for pb::Group {
    fn from(g: &GroupSpec) -> pb::Group {
        let GroupSpec {
            id,
            source,
            members,
            bindings,
        } = g;
        pb::Group {
            id: id.clone(),
            source: source_str(*source),
            members: members.clone(),
            bindings: bindings.iter().map(pb::RoleBinding::from).collect(),
        }
    }
}

impl From<&UserSpec> for pb::User {
    fn from(u: &UserSpec) -> pb::User {
        let UserSpec {
            id,
            status,
            source,
            bindings,
        } = u;
        pb::User {
            id: id.clone(),
            status: match status {
                UserStatus::Active => String::new(),
                UserStatus::Suspended => "suspended".to_string(),
            },
            source: source_str(*source),
            bindings: bindings.iter().map(pb::RoleBinding::from).collect(),
        }
    }
}

impl From<&ResourceSpec> for pb::Resource {
    fn from(r: &ResourceSpec) -> pb::Resource {
        let ResourceSpec {
            type_,
            id,
            parent,
            labels,
        } = r;
        pb::Resource {
            r#type: type_.clone(),
            id: id.clone(),
            parent: parent.clone(),
            labels: labels.clone(),
        }
    }
}

/// The wire form of an update, for clients and tests (the inverse of the
/// `TryFrom` above).
impl From<&Update> for pb::ApplyRequest {
    fn from(u: &Update) -> pb::ApplyRequest {
        let Update {
            request_id,
            source,
            expected_revision,
            body,
        } = u;
        pb::ApplyRequest {
            request_id: request_id.clone(),
            source: source.as_str().to_string(),
            expected_revision: expected_revision.map(|r| r.to_string()).unwrap_or_default(),
            body: Some(match body {
                UpdateBody::Snapshot(s) => pb::apply_request::Body::Snapshot(s.into()),
                UpdateBody::Delta(d) => pb::apply_request::Body::Delta(d.into()),
            }),
        }
    }
}

impl From<&Delta> for pb::Delta {
    fn from(d: &Delta) -> pb::Delta {
        let Delta { workspace, changes } = d;
        pb::Delta {
            workspace: workspace.clone(),
            changes: changes.iter().map(pb::Change::from).collect(),
        }
    }
}

impl From<&Change> for pb::Change {
    fn from(c: &Change) -> pb::Change {
        use pb::change::Change as C;
        let change = match c {
            Change::UpsertUser(u) => C::UpsertUser(u.into()),
            Change::RemoveUser(id) => C::RemoveUser(id.clone()),
            Change::UpsertGroup(g) => C::UpsertGroup(g.into()),
            Change::RemoveGroup(id) => C::RemoveGroup(id.clone()),
            Change::UpsertRole(r) => C::UpsertRole(r.into()),
            Change::RemoveRole(id) => C::RemoveRole(id.clone()),
            Change::UpsertLabel(l) => C::UpsertLabel(l.clone()),
            Change::RemoveLabel(l) => C::RemoveLabel(l.clone()),
            Change::UpsertResource(r) => C::UpsertResource(r.into()),
            Change::RemoveResource(key) => C::RemoveResource(key.clone()),
            Change::SetFeatures(Some(list)) => C::SetFeatures(list_value(list)),
            Change::SetFeatures(None) => C::EnableAllFeatures(true),
            Change::SetPolicy(p) => C::SetPolicy(p.into()),
        };
        pb::Change {
            change: Some(change),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn apply(body: pb::apply_request::Body) -> pb::ApplyRequest {
        pb::ApplyRequest {
            request_id: "1".into(),
            source: "admin".into(),
            expected_revision: String::new(),
            body: Some(body),
        }
    }

    #[test]
    fn every_malformed_field_is_named() {
        let req = pb::ApplyRequest {
            request_id: "1".into(),
            source: "root".into(),
            expected_revision: "-1".into(),
            body: Some(pb::apply_request::Body::Delta(pb::Delta {
                workspace: "w".into(),
                changes: vec![
                    pb::Change {
                        change: Some(pb::change::Change::RemoveUser("u".into())),
                    },
                    pb::Change {
                        change: Some(pb::change::Change::EnableAllFeatures(false)),
                    },
                    pb::Change { change: None },
                    pb::Change {
                        change: Some(pb::change::Change::SetFeatures(ListValue {
                            values: vec![Value {
                                kind: Some(Kind::NumberValue(1.0)),
                            }],
                        })),
                    },
                ],
            })),
        };
        let err = Update::try_from(req).unwrap_err().to_string();
        for want in [
            "source: must be \"admin\" or \"directory\"",
            "expected_revision: \"-1\" is not a decimal revision",
            "delta.changes[1].enable_all_features: must be true",
            "delta.changes[2]: empty change",
            "delta.changes[3].set_features[0]: must be a string",
        ] {
            assert!(err.contains(want), "missing {want:?} in {err}");
        }
    }

    #[test]
    fn missing_body_is_named() {
        let mut req = apply(pb::apply_request::Body::Snapshot(pb::Snapshot::default()));
        req.body = None;
        let err = Update::try_from(req).unwrap_err().to_string();
        assert_eq!(err, "body: must be a snapshot, a snapshot_piece or a delta");
    }

    #[test]
    fn features_absent_and_empty_differ() {
        let mut ws = WorkspaceSpec {
            id: "w".into(),
            ..Default::default()
        };
        for features in [None, Some(vec![]), Some(vec!["chat".to_string()])] {
            ws.features = features.clone();
            let spec = SnapshotSpec {
                workspaces: vec![ws.clone()],
            };
            let back = snapshot_from_pb(pb::Snapshot::from(&spec)).unwrap();
            assert_eq!(back.workspaces[0].features, features);
        }
    }

    #[test]
    fn a_delta_converts_in_order() {
        let req = apply(pb::apply_request::Body::Delta(pb::Delta {
            workspace: "sunrise-care".into(),
            changes: vec![
                pb::Change {
                    change: Some(pb::change::Change::UpsertResource(pb::Resource {
                        r#type: "mini".into(),
                        id: "m-new".into(),
                        parent: None,
                        labels: vec!["site-a".into()],
                    })),
                },
                pb::Change {
                    change: Some(pb::change::Change::EnableAllFeatures(true)),
                },
            ],
        }));
        let u = Update::try_from(req).unwrap();
        assert_eq!(u.source, UpdateSource::Admin);
        assert_eq!(u.expected_revision, None);
        let UpdateBody::Delta(d) = u.body else {
            panic!("not a delta")
        };
        assert_eq!(
            d.changes,
            vec![
                Change::UpsertResource(ResourceSpec {
                    type_: "mini".into(),
                    id: "m-new".into(),
                    parent: None,
                    labels: vec!["site-a".into()],
                }),
                Change::SetFeatures(None),
            ]
        );
    }
}
