//! The spec a workspace was built from, without its resources, kept as
//! compact JSON.
//!
//! Every [`super::Workspace`] keeps its normalised spec (users, groups,
//! roles, labels, types, policy, features; the resources live in the
//! resource table only) so that it can be exported and rebuilt. As Rust
//! values that head is tens of thousands of small allocations: about 4 MB of
//! heap on the `large` model (10k users, 1k groups). As JSON it is about
//! 1.2 MB in one allocation, shared between revisions by an `Arc`.
//!
//! The head is read back only by the admin export, the state dir's
//! snapshots (bootstrap and compaction) and the updates that rebuild a
//! workspace; each of those costs far more than parsing the JSON.
//!
//! Encoding these plain serde types cannot fail in practice, and decoding
//! JSON this module wrote cannot fail unless there is a bug; both still
//! return a [`SpecHeadError`] naming the workspace, never a panic and never
//! a spec with something left out.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::problem::{Problem, Rule};
use super::spec::{
    CatalogName, GroupSpec, PolicySpec, RoleSpec, TypeSpec, UserSpec, WorkspaceSpec,
};

/// A workspace's normalised spec without its resources, as JSON. Cloning
/// it copies two pointers.
#[derive(Clone)]
pub struct SpecHead {
    /// The workspace's id, for errors.
    workspace: Arc<str>,
    /// `serde_json::to_string` of the head.
    json: Arc<str>,
}

impl SpecHead {
    /// Encodes `head`. The caller passes a spec whose `resources` is empty
    /// (they are kept in the resource table); whatever it holds is kept.
    pub fn new(head: &WorkspaceSpec) -> Result<SpecHead, SpecHeadError> {
        SpecHead::encode(&head.id, head)
    }

    /// The normalised head of `spec`, encoded without copying it: roles,
    /// labels, groups and users sorted by id (so exports are stable), the
    /// resources left out. It reads back as [`Self::new`] of that head.
    pub fn normalised(spec: &WorkspaceSpec) -> Result<SpecHead, SpecHeadError> {
        // Every field named, so a field added to the spec cannot be left
        // out of the head unnoticed.
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
            resources: _,
        } = spec;
        let mut head = HeadRef {
            id,
            catalog: *catalog,
            features: features.as_ref(),
            policy: policy.as_ref(),
            types,
            roles: roles.iter().collect(),
            labels: labels.iter().map(String::as_str).collect(),
            groups: groups.iter().collect(),
            users: users.iter().collect(),
        };
        // Stable sorts, as the order of a duplicate (refused) is kept.
        head.roles.sort_by(|a, b| a.id.cmp(&b.id));
        head.labels.sort();
        head.groups.sort_by(|a, b| a.id.cmp(&b.id));
        head.users.sort_by(|a, b| a.id.cmp(&b.id));
        SpecHead::encode(id, &head)
    }

    fn encode(workspace: &str, head: &impl Serialize) -> Result<SpecHead, SpecHeadError> {
        match serde_json::to_string(head) {
            // `Arc<str>` copies the text into an allocation of its length.
            Ok(json) => Ok(SpecHead {
                workspace: Arc::from(workspace),
                json: Arc::from(json),
            }),
            Err(source) => Err(SpecHeadError {
                workspace: workspace.to_string(),
                action: Action::Encode,
                source,
            }),
        }
    }

    /// The head, decoded: the spec [`Self::new`] was given.
    pub fn spec(&self) -> Result<WorkspaceSpec, SpecHeadError> {
        serde_json::from_str(&self.json).map_err(|source| SpecHeadError {
            workspace: self.workspace.to_string(),
            action: Action::Decode,
            source,
        })
    }

    /// The heap bytes it holds: the JSON and the workspace id (two
    /// allocations; the `Arc` counters not counted).
    pub fn heap_size(&self) -> usize {
        self.json.len() + self.workspace.len()
    }
}

impl fmt::Debug for SpecHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpecHead")
            .field("workspace", &self.workspace)
            .field("json_bytes", &self.json.len())
            .finish()
    }
}

/// A [`WorkspaceSpec`] without resources, borrowed, its lists in another
/// order: serialised as that spec is (same names, same fields left out).
#[derive(Serialize)]
struct HeadRef<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog: Option<CatalogName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    features: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a PolicySpec>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    types: &'a [TypeSpec],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<&'a RoleSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<&'a GroupSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    users: Vec<&'a UserSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Encode,
    Decode,
}

/// A workspace's head that could not be encoded or read back: a bug in
/// rolecall, not in the model it was given.
#[derive(Debug)]
pub struct SpecHeadError {
    pub workspace: String,
    action: Action,
    source: serde_json::Error,
}

impl SpecHeadError {
    /// What failed, without the workspace (a [`Problem`] names it in its
    /// place).
    fn what(&self) -> String {
        let verb = match self.action {
            Action::Encode => "encode",
            Action::Decode => "decode",
        };
        format!(
            "cannot {verb} the normalised spec this workspace keeps (users, groups, roles, ...) \
             as JSON, a bug in rolecall: {}",
            self.source
        )
    }
}

impl fmt::Display for SpecHeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "workspace \"{}\": {}", self.workspace, self.what())
    }
}

impl std::error::Error for SpecHeadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<&SpecHeadError> for Problem {
    /// A problem of rule `internal`, placed at the workspace.
    fn from(e: &SpecHeadError) -> Problem {
        Problem::new(
            Rule::Internal,
            format!("workspace \"{}\"", e.workspace),
            e.what(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::{BindingSpec, ResourceSpec, Source, UserStatus};

    fn binding(role: &str, scope: Option<&str>) -> BindingSpec {
        BindingSpec {
            role: role.into(),
            scope: scope.map(Into::into),
        }
    }

    fn rich() -> WorkspaceSpec {
        let every_scope = vec![
            binding("viewer", None),
            binding("editor", Some("workspace")),
            binding("editor", Some("label:site-a")),
            binding("admin", Some("resource:mini:m-1")),
        ];
        WorkspaceSpec {
            id: "w-1".into(),
            catalog: Some(CatalogName::Seats),
            features: Some(vec!["mini".into(), "records".into()]),
            policy: Some(PolicySpec {
                min_admins: Some(2),
                max_roles_per_user: Some(3),
                admin_roles: Some(vec!["admin".into(), "owner".into()]),
            }),
            types: vec![
                TypeSpec {
                    name: "ticket".into(),
                    parent: Some("mini".into()),
                    actions: vec!["read".into(), "close".into()],
                    feature: Some("tickets".into()),
                },
                TypeSpec {
                    name: "note".into(),
                    parent: None,
                    actions: Vec::new(),
                    feature: None,
                },
            ],
            roles: vec![
                RoleSpec {
                    id: "auditor".into(),
                    name: Some("Auditor \"ünïcode\" \u{1F600}".into()),
                    description: Some("line one\nline two\ttab".into()),
                    organization: Some("org-1".into()),
                    rank: 7,
                    grants: vec!["ticket:read".into(), "mini:*".into(), "*:*".into()],
                    seat: true,
                    disabled: true,
                },
                RoleSpec {
                    id: "plain".into(),
                    ..RoleSpec::default()
                },
            ],
            labels: vec!["site-a".into(), "site-b".into()],
            groups: vec![
                GroupSpec {
                    id: "g-dir".into(),
                    source: Source::Directory,
                    members: vec!["u-1".into(), "u-2".into()],
                    bindings: every_scope.clone(),
                },
                GroupSpec {
                    id: "g-local".into(),
                    source: Source::Local,
                    members: Vec::new(),
                    bindings: Vec::new(),
                },
            ],
            users: vec![
                UserSpec {
                    id: "u-1".into(),
                    status: UserStatus::Suspended,
                    source: Source::Directory,
                    bindings: every_scope,
                },
                UserSpec {
                    id: "u-2".into(),
                    status: UserStatus::Active,
                    source: Source::Local,
                    bindings: vec![binding("member", None)],
                },
            ],
            resources: Vec::new(),
        }
    }

    fn encoded(spec: &WorkspaceSpec) -> SpecHead {
        match SpecHead::new(spec) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_rich_head_round_trips_exactly() {
        let spec = rich();
        let h = encoded(&spec);
        match h.clone().spec() {
            Ok(back) => assert_eq!(back, spec),
            Err(e) => panic!("{e}"),
        }
        // Options that are present but empty stay present.
        let sparse = WorkspaceSpec {
            id: "w-2".into(),
            features: Some(Vec::new()),
            policy: Some(PolicySpec::default()),
            ..WorkspaceSpec::default()
        };
        match encoded(&sparse).spec() {
            Ok(back) => assert_eq!(back, sparse),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn normalised_sorts_leaves_resources_out_and_encodes_as_the_spec() {
        let sorted = rich();
        let mut spec = rich();
        spec.roles.reverse();
        spec.labels.reverse();
        spec.groups.reverse();
        spec.users.reverse();
        spec.resources = vec![ResourceSpec {
            type_: "mini".into(),
            id: "m-1".into(),
            parent: None,
            labels: vec!["site-a".into()],
        }];
        assert_ne!(spec, sorted);
        let sparse = WorkspaceSpec {
            id: "w-2".into(),
            features: Some(Vec::new()),
            policy: Some(PolicySpec::default()),
            ..WorkspaceSpec::default()
        };
        let bare = WorkspaceSpec {
            id: "w-3".into(),
            ..WorkspaceSpec::default()
        };
        for (spec, head) in [(&spec, &sorted), (&sparse, &sparse), (&bare, &bare)] {
            let h = match SpecHead::normalised(spec) {
                Ok(h) => h,
                Err(e) => panic!("{e}"),
            };
            // The same text as the spec's own serialisation...
            assert_eq!(h.json, encoded(head).json);
            // ...which reads back as that head.
            match h.spec() {
                Ok(back) => assert_eq!(&back, head),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn heap_size_is_the_json_and_the_id() {
        let spec = rich();
        let json = match serde_json::to_string(&spec) {
            Ok(j) => j,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(encoded(&spec).heap_size(), json.len() + spec.id.len());
    }

    #[test]
    fn a_head_that_cannot_be_read_names_its_workspace() {
        let broken = SpecHead {
            workspace: Arc::from("w-9"),
            json: Arc::from("{\"id\":"),
        };
        let e = match broken.spec() {
            Ok(s) => panic!("decoded {s:?}"),
            Err(e) => e,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("workspace \"w-9\": cannot decode"),
            "{text}"
        );
        let p = Problem::from(&e);
        assert_eq!(p.rule, Rule::Internal);
        assert_eq!(p.place, "workspace \"w-9\"");
    }

    /// A workspace whose head cannot be read back is neither exported nor
    /// updated by a rebuild: each says why, nothing is made up.
    #[test]
    fn an_unreadable_head_refuses_export_and_rebuilds() {
        use crate::engine::{CompiledWorkspace, Snapshot};
        use crate::model::delta::{Change, Delta, Update, UpdateBody, UpdateSource};
        use crate::model::SnapshotSpec;

        let spec = small_valid();
        let mut ws = match crate::model::validate_workspace(&spec) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        };
        ws.spec_head = SpecHead {
            workspace: Arc::from("w"),
            json: Arc::from("{\"id\":\"w\",\"users\":"),
        };
        let mut snap = Snapshot::default();
        snap.insert(Arc::new(CompiledWorkspace::new(ws)));
        match snap.to_spec() {
            Ok(s) => panic!("exported {s:?}"),
            Err(e) => assert_eq!(e.workspace, "w"),
        }
        let update = |body| Update {
            request_id: "r".into(),
            source: UpdateSource::Admin,
            expected_revision: None,
            body,
        };
        let label = update(UpdateBody::Delta(Delta {
            workspace: "w".into(),
            changes: vec![Change::UpsertLabel("new".into())],
        }));
        let replace = update(UpdateBody::Snapshot(SnapshotSpec {
            workspaces: vec![spec],
        }));
        for u in [label, replace] {
            match snap.apply(&u) {
                Ok(_) => panic!("applied {u:?} against an unreadable head"),
                Err(e) => {
                    assert_eq!(e.problems.len(), 1, "{e}");
                    assert_eq!(e.problems[0].rule, Rule::Internal, "{e}");
                    assert!(e.to_string().contains("cannot decode"), "{e}");
                }
            }
        }
    }

    /// A small workspace that validates.
    fn small_valid() -> WorkspaceSpec {
        WorkspaceSpec {
            id: "w".into(),
            labels: vec!["site-a".into()],
            users: vec![UserSpec {
                id: "u-1".into(),
                bindings: vec![binding("viewer", Some("label:site-a"))],
                ..UserSpec::default()
            }],
            ..WorkspaceSpec::default()
        }
    }
}
