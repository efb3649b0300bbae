//! Arbitrary sequences of deltas over the built-in demo model's vocabulary,
//! applied one after another as the sidecar applies them
//! (`Snapshot::apply`: resource deltas take the incremental path). Never a
//! panic; every delta is accepted or rejected exactly as a full rebuild
//! from the spec (`apply_update`) does, with the same resulting model; after
//! every accepted delta the workspace validates again, on its own and after
//! a JSON round trip of its spec (what the state dir and Export hold); a
//! rejected delta names at least one problem.
#![no_main]

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rolecall::engine::Snapshot;
use rolecall::model::delta::{apply_update, Change, Delta, Update, UpdateBody, UpdateSource};
use rolecall::model::spec::{
    SnapshotSpec,
    BindingSpec, GroupSpec, PolicySpec, ResourceSpec, RoleSpec, Source, UserSpec, UserStatus,
    WorkspaceSpec,
};
use rolecall::model::validate_workspace;

static DEMO: LazyLock<Snapshot> = LazyLock::new(|| {
    match rolecall::server::load_snapshot_text(include_str!("../../src/demo.yaml"), "demo") {
        Ok(s) => s,
        Err(e) => panic!("the demo model does not load: {e}"),
    }
});

/// Ids, roles, scopes, grants, types and features the demo model knows,
/// plus a few new ones, so deltas mostly hit real items.
struct Vocabulary {
    users: Vec<String>,
    groups: Vec<String>,
    roles: Vec<String>,
    labels: Vec<String>,
    types: Vec<String>,
    keys: Vec<String>,
    scopes: Vec<String>,
    grants: Vec<String>,
    features: Vec<String>,
}

fn vocabulary(
    w: &WorkspaceSpec,
    roles: Vec<String>,
    types: Vec<String>,
    features: Vec<String>,
) -> Vocabulary {
    let more = |mut v: Vec<String>, extra: &[&str]| {
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let keys: Vec<String> = w
        .resources
        .iter()
        .map(|r| format!("{}:{}", r.type_, r.id))
        .collect();
    let labels = more(w.labels.clone(), &["new-label"]);
    let mut scopes = vec!["workspace".to_string()];
    scopes.extend(labels.iter().map(|l| format!("label:{l}")));
    scopes.extend(keys.iter().map(|k| format!("resource:{k}")));
    let mut grants = vec!["*:*".to_string()];
    grants.extend(
        types
            .iter()
            .flat_map(|t| [format!("{t}:*"), format!("{t}:read"), format!("{t}:update")]),
    );
    Vocabulary {
        users: more(w.users.iter().map(|u| u.id.clone()).collect(), &["u-new"]),
        groups: more(w.groups.iter().map(|g| g.id.clone()).collect(), &["g-new"]),
        roles: more(roles, &["r-new"]),
        labels,
        types,
        keys: more(keys, &["mini:m-new", "record:r-new"]),
        scopes,
        grants,
        features,
    }
}

static VOCABULARY: LazyLock<Vec<(WorkspaceSpec, Vocabulary)>> = LazyLock::new(|| {
    DEMO.workspaces()
        .iter()
        .map(|w| {
            let m = &w.model;
            let roles = m.roles.iter().map(|r| r.id.clone()).collect();
            let types = m.schema.types.iter().map(|t| t.name.clone()).collect();
            let features = m.schema.features.iter().map(|f| f.to_string()).collect();
            let spec = match m.to_spec() {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            let v = vocabulary(&spec, roles, types, features);
            (spec, v)
        })
        .collect()
});

#[derive(Debug, Arbitrary)]
enum Word {
    Known(u8),
    Junk(String),
}

impl Word {
    fn pick(&self, from: &[String]) -> String {
        match self {
            Word::Known(i) if !from.is_empty() => from[*i as usize % from.len()].clone(),
            Word::Known(_) => String::new(),
            Word::Junk(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Binding {
    role: Word,
    scope: Option<Word>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    UpsertUser {
        id: Word,
        suspended: bool,
        directory: bool,
        bindings: Vec<Binding>,
    },
    RemoveUser(Word),
    UpsertGroup {
        id: Word,
        directory: bool,
        members: Vec<Word>,
        bindings: Vec<Binding>,
    },
    RemoveGroup(Word),
    UpsertRole {
        id: Word,
        rank: u8,
        grants: Vec<Word>,
        seat: bool,
        disabled: bool,
        name: Option<Word>,
    },
    RemoveRole(Word),
    UpsertLabel(Word),
    RemoveLabel(Word),
    UpsertResource {
        key: Word,
        parent: Option<Word>,
        labels: Vec<Word>,
    },
    RemoveResource(Word),
    SetFeatures(Option<Vec<Word>>),
    SetPolicy {
        min_admins: Option<u8>,
        max_roles_per_user: Option<u8>,
        admin_roles: Option<Vec<Word>>,
    },
}

#[derive(Debug, Arbitrary)]
struct Step {
    directory: bool,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    workspace: u8,
    steps: Vec<Step>,
}

fn source(directory: bool) -> Source {
    if directory {
        Source::Directory
    } else {
        Source::Local
    }
}

fn bindings(bs: &[Binding], v: &Vocabulary) -> Vec<BindingSpec> {
    bs.iter()
        .map(|b| BindingSpec {
            role: b.role.pick(&v.roles),
            scope: b.scope.as_ref().map(|s| s.pick(&v.scopes)),
        })
        .collect()
}

fn change(op: &Op, v: &Vocabulary) -> Change {
    let words = |ws: &[Word], from: &[String]| ws.iter().map(|w| w.pick(from)).collect::<Vec<_>>();
    match op {
        Op::UpsertUser {
            id,
            suspended,
            directory,
            bindings: bs,
        } => Change::UpsertUser(UserSpec {
            id: id.pick(&v.users),
            status: if *suspended {
                UserStatus::Suspended
            } else {
                UserStatus::Active
            },
            source: source(*directory),
            bindings: bindings(bs, v),
        }),
        Op::RemoveUser(id) => Change::RemoveUser(id.pick(&v.users)),
        Op::UpsertGroup {
            id,
            directory,
            members,
            bindings: bs,
        } => Change::UpsertGroup(GroupSpec {
            id: id.pick(&v.groups),
            source: source(*directory),
            members: words(members, &v.users),
            bindings: bindings(bs, v),
        }),
        Op::RemoveGroup(id) => Change::RemoveGroup(id.pick(&v.groups)),
        Op::UpsertRole {
            id,
            rank,
            grants,
            seat,
            disabled,
            name,
        } => Change::UpsertRole(RoleSpec {
            id: id.pick(&v.roles),
            name: name.as_ref().map(|n| n.pick(&v.roles)),
            description: None,
            organization: None,
            rank: u32::from(*rank),
            grants: words(grants, &v.grants),
            seat: *seat,
            disabled: *disabled,
        }),
        Op::RemoveRole(id) => Change::RemoveRole(id.pick(&v.roles)),
        Op::UpsertLabel(l) => Change::UpsertLabel(l.pick(&v.labels)),
        Op::RemoveLabel(l) => Change::RemoveLabel(l.pick(&v.labels)),
        Op::UpsertResource {
            key,
            parent,
            labels,
        } => {
            let key = key.pick(&v.keys);
            let (type_, id) = match key.split_once(':') {
                Some((t, i)) => (t.to_string(), i.to_string()),
                None => (v.types.first().cloned().unwrap_or_default(), key.clone()),
            };
            Change::UpsertResource(ResourceSpec {
                type_,
                id,
                parent: parent.as_ref().map(|p| p.pick(&v.keys)),
                labels: words(labels, &v.labels),
            })
        }
        Op::RemoveResource(k) => Change::RemoveResource(k.pick(&v.keys)),
        Op::SetFeatures(fs) => Change::SetFeatures(fs.as_ref().map(|f| words(f, &v.features))),
        Op::SetPolicy {
            min_admins,
            max_roles_per_user,
            admin_roles,
        } => Change::SetPolicy(PolicySpec {
            min_admins: min_admins.map(|n| u32::from(n % 4)),
            max_roles_per_user: max_roles_per_user.map(|n| u32::from(n % 4)),
            admin_roles: admin_roles.as_ref().map(|r| words(r, &v.roles)),
        }),
    }
}

fuzz_target!(|input: Input| {
    let i = input.workspace as usize % VOCABULARY.len();
    let (start, v) = &VOCABULARY[i];
    let Ok(mut snapshot) = Snapshot::from_spec(&SnapshotSpec {
        workspaces: vec![start.clone()],
    }) else {
        panic!("the demo workspace does not validate");
    };
    let mut current = start.clone();
    for step in input.steps.iter().take(16) {
        let update = Update {
            request_id: String::new(),
            source: if step.directory {
                UpdateSource::Directory
            } else {
                UpdateSource::Admin
            },
            expected_revision: None,
            body: UpdateBody::Delta(Delta {
                workspace: current.id.clone(),
                changes: step.ops.iter().take(32).map(|op| change(op, v)).collect(),
            }),
        };
        let lookup = |id: &str| (id == current.id).then_some(Cow::Borrowed(&current));
        let rebuilt = apply_update(lookup, &update);
        match (snapshot.apply(&update), rebuilt) {
            (Ok(mut out), Ok(mut full)) => {
                assert_eq!(out.len(), 1, "a delta builds exactly its workspace");
                let w = out.remove(0);
                let spec_of = |w: &rolecall::model::Workspace| match w.to_spec() {
                    Ok(s) => s,
                    Err(e) => panic!("a built workspace cannot be exported: {e}"),
                };
                let spec = spec_of(&w.model);
                assert_eq!(
                    spec,
                    spec_of(&full.remove(0)),
                    "the two paths built different models"
                );
                if let Err(e) = validate_workspace(&spec) {
                    panic!("an accepted delta left a workspace that does not validate: {e}");
                }
                let json = match serde_json::to_string(&spec) {
                    Ok(j) => j,
                    Err(e) => panic!("cannot serialize an accepted workspace: {e}"),
                };
                let back: WorkspaceSpec = match serde_json::from_str(&json) {
                    Ok(b) => b,
                    Err(e) => panic!("an accepted workspace does not parse back: {e}\n{json}"),
                };
                assert_eq!(back, spec, "JSON round trip changed the workspace");
                if let Err(e) = validate_workspace(&back) {
                    panic!("an accepted workspace does not validate after a round trip: {e}");
                }
                snapshot.insert(Arc::new(w));
                current = spec;
            }
            (Err(e), Err(full)) => {
                assert!(!e.problems.is_empty(), "rejected with no problem");
                assert_eq!(e.problems, full.problems, "the two paths report differently");
            }
            (a, b) => panic!(
                "the paths disagree: sidecar {:?}, rebuild {:?}",
                a.err(),
                b.err()
            ),
        }
    }
});
