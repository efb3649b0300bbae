//! Deltas and full-snapshot updates: what each change does, the directory
//! rule, built-in roles, every problem reported at once; and the Admin API's
//! wire form converting to the domain and back without loss.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::path::PathBuf;

use rolecall::engine::Snapshot;
use rolecall::model::delta::{
    apply_delta, apply_update, check_snapshot_sources, Change, Delta, Update, UpdateBody,
    UpdateSource,
};
use rolecall::model::parse::from_text;
use rolecall::model::spec::{
    BindingSpec, GroupSpec, PolicySpec, ResourceSpec, RoleSpec, SnapshotSpec, Source, UserSpec,
    WorkspaceSpec,
};
use rolecall::model::{Problem, Rule};
use rolecall::pb;

use UpdateSource::{Admin, Directory};

/// SPEC 3's example workspace, plus a local group and a second record.
const BASE: &str = r#"
workspaces:
  - id: sunrise-care
    catalog: minikai
    features: [chat, prompt_recommendations, citations, email_drafting, speech_to_text]
    policy: { min_admins: 1 }
    roles:
      - id: site_coordinator
        name: Site Coordinator
        description: Maintains records for one site
        rank: 30
        grants: ["mini:read", "mini:update", "record:*"]
    labels: [site-a, site-b]
    groups:
      - id: nurses-site-a
        source: directory
        members: [u-nina]
        bindings: [{ role: record_all_viewer }, { role: viewer, scope: "label:site-a" }]
      - id: coordinators
        members: [u-ada]
        bindings: [{ role: site_coordinator, scope: "label:site-b" }]
    users:
      - id: u-ada
        bindings: [{ role: admin }]
      - id: u-nina
        source: directory
        bindings: [{ role: member }]
    resources:
      - { type: mini, id: m-rose, labels: [site-a] }
      - { type: record, id: r-1, parent: "mini:m-rose", labels: [] }
      - { type: record, id: r-2, parent: m-rose, labels: [site-b] }
      - { type: mini, id: m-lily, labels: [site-b] }
"#;

fn base() -> WorkspaceSpec {
    let s: SnapshotSpec = from_text(BASE, "base").unwrap();
    s.workspaces.into_iter().next().unwrap()
}

fn delta(changes: Vec<Change>) -> Delta {
    Delta {
        workspace: "sunrise-care".into(),
        changes,
    }
}

fn update(source: UpdateSource, body: UpdateBody) -> Update {
    Update {
        request_id: "t".into(),
        source,
        expected_revision: None,
        body,
    }
}

/// Applies and validates a delta to the base workspace, as the sidecar
/// does (a resource-only delta takes the incremental path).
fn apply(source: UpdateSource, changes: Vec<Change>) -> Result<WorkspaceSpec, Vec<Problem>> {
    let snapshot = Snapshot::from_spec(&SnapshotSpec {
        workspaces: vec![base()],
    })
    .expect("the base is valid");
    let u = update(source, UpdateBody::Delta(delta(changes)));
    snapshot
        .apply(&u)
        .map(|mut ws| ws.remove(0).model.to_spec().unwrap())
        .map_err(|e| e.problems)
}

fn problems(source: UpdateSource, changes: Vec<Change>) -> Vec<Problem> {
    match apply(source, changes) {
        Ok(ws) => panic!("expected a rejection, got {ws:?}"),
        Err(p) => p,
    }
}

fn has(problems: &[Problem], rule: Rule, text: &str) -> bool {
    problems
        .iter()
        .any(|p| p.rule == rule && p.to_string().contains(text))
}

fn user(id: &str, source: Source, role: &str) -> UserSpec {
    UserSpec {
        id: id.into(),
        source,
        bindings: vec![BindingSpec {
            role: role.into(),
            scope: None,
        }],
        ..Default::default()
    }
}

fn mini(id: &str, labels: &[&str]) -> ResourceSpec {
    ResourceSpec {
        type_: "mini".into(),
        id: id.into(),
        parent: None,
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
}

#[test]
fn the_readme_delta_applies() {
    let ws = apply(
        Admin,
        vec![Change::UpsertResource(mini("m-new", &["site-a"]))],
    )
    .unwrap();
    assert!(ws.resources.contains(&mini("m-new", &["site-a"])));
}

#[test]
fn upsert_replaces_the_item_with_the_same_id_or_adds_it() {
    let mut ada = user("u-ada", Source::Local, "owner");
    ada.bindings.push(BindingSpec {
        role: "admin".into(),
        scope: None,
    });
    let ws = apply(
        Admin,
        vec![
            Change::UpsertUser(ada.clone()),
            Change::UpsertUser(user("u-new", Source::Local, "member")),
            Change::UpsertResource(mini("m-rose", &["site-b"])),
            Change::UpsertLabel("site-c".into()),
            Change::UpsertLabel("site-a".into()),
            Change::UpsertRole(RoleSpec {
                id: "site_coordinator".into(),
                rank: 40,
                grants: vec!["mini:read".into()],
                ..Default::default()
            }),
        ],
    )
    .unwrap();
    assert_eq!(ws.users.iter().filter(|u| u.id == "u-ada").count(), 1);
    assert!(ws.users.contains(&ada));
    assert!(ws.users.iter().any(|u| u.id == "u-new"));
    assert!(ws.resources.contains(&mini("m-rose", &["site-b"])));
    assert_eq!(ws.labels, vec!["site-a", "site-b", "site-c"]);
    let role = ws
        .roles
        .iter()
        .find(|r| r.id == "site_coordinator")
        .unwrap();
    assert_eq!((role.rank, role.name.as_deref()), (40, None));
}

#[test]
fn changes_apply_in_order() {
    let ws = apply(
        Admin,
        vec![
            Change::UpsertUser(user("u-tmp", Source::Local, "member")),
            Change::RemoveUser("u-tmp".into()),
            Change::RemoveLabel("site-b".into()),
            Change::UpsertLabel("site-b".into()),
        ],
    )
    .unwrap();
    assert!(!ws.users.iter().any(|u| u.id == "u-tmp"));
    assert!(ws.labels.contains(&"site-b".to_string()));
}

#[test]
fn removing_unknown_items_reports_every_one() {
    let p = problems(
        Admin,
        vec![
            Change::RemoveUser("u-ghost".into()),
            Change::RemoveGroup("g-ghost".into()),
            Change::RemoveLabel("l-ghost".into()),
            Change::RemoveResource("mini:m-ghost".into()),
            Change::RemoveRole("r-ghost".into()),
            Change::RemoveResource("no-colon".into()),
        ],
    );
    assert_eq!(p.len(), 6, "{p:#?}");
    assert!(has(
        &p,
        Rule::UnknownResource,
        "changes[0] (remove_user): user \"u-ghost\""
    ));
    assert!(has(
        &p,
        Rule::UnknownResource,
        "changes[1] (remove_group): group \"g-ghost\""
    ));
    assert!(has(
        &p,
        Rule::UnknownLabel,
        "changes[2] (remove_label): label \"l-ghost\""
    ));
    assert!(has(&p, Rule::UnknownResource, "resource \"mini:m-ghost\""));
    assert!(has(&p, Rule::UnknownRole, "role \"r-ghost\""));
    assert!(has(
        &p,
        Rule::Id,
        "\"no-colon\" must name a resource as type:id"
    ));
}

#[test]
fn problems_of_the_changes_and_of_their_result_come_together() {
    // A change that cannot apply (the unknown user) is left out, and what
    // the others make is validated, so one answer names all three.
    let orphan = ResourceSpec {
        type_: "record".into(),
        id: "r-x".into(),
        parent: Some("mini:m-nope".into()),
        ..Default::default()
    };
    let p = problems(
        Admin,
        vec![
            Change::UpsertUser(user("u-y", Source::Local, "no_such_role")),
            Change::RemoveUser("u-ghost".into()),
            Change::UpsertResource(orphan),
        ],
    );
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(has(&p, Rule::UnknownResource, "user \"u-ghost\""), "{p:#?}");
    assert!(has(&p, Rule::UnknownRole, "no_such_role"), "{p:#?}");
    assert!(has(&p, Rule::Parent, "mini:m-nope"), "{p:#?}");
}

#[test]
fn remove_role_disables_it() {
    let ws = apply(Admin, vec![Change::RemoveRole("site_coordinator".into())]).unwrap();
    let role = ws
        .roles
        .iter()
        .find(|r| r.id == "site_coordinator")
        .unwrap();
    assert!(role.disabled);
}

#[test]
fn built_in_roles_cannot_be_changed_or_removed() {
    let p = problems(
        Admin,
        vec![
            Change::RemoveRole("admin".into()),
            Change::UpsertRole(RoleSpec {
                id: "viewer".into(),
                grants: vec!["*:*".into()],
                ..Default::default()
            }),
        ],
    );
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(has(&p, Rule::BuiltIn, "\"admin\" is a built-in role"));
    assert!(has(&p, Rule::BuiltIn, "\"viewer\" is a built-in role"));

    // Built-in is per catalog: `creator` is built in only in `environment`.
    let creator = RoleSpec {
        id: "creator".into(),
        ..Default::default()
    };
    apply(Admin, vec![Change::UpsertRole(creator.clone())]).unwrap();
    let mut env = base();
    env.catalog = Some(rolecall::model::spec::CatalogName::Environment);
    env.users[0].bindings[0].role = "admin".into();
    env.groups.clear();
    env.roles.clear();
    let err = apply_delta(&env, &delta(vec![Change::UpsertRole(creator)]), Admin).unwrap_err();
    assert!(has(&err, Rule::BuiltIn, "\"creator\""));
}

#[test]
fn admin_updates_cannot_touch_directory_items() {
    let mut nurses = base().groups[0].clone();
    nurses.members.clear();
    let p = problems(
        Admin,
        vec![
            Change::UpsertGroup(nurses.clone()),
            Change::RemoveGroup("nurses-site-a".into()),
            Change::RemoveUser("u-nina".into()),
            Change::UpsertUser(user("u-idp", Source::Directory, "member")),
            Change::UpsertUser(user("u-nina", Source::Local, "member")),
        ],
    );
    assert_eq!(p.len(), 5, "{p:#?}");
    assert!(has(
        &p,
        Rule::Directory,
        "group \"nurses-site-a\" is managed by the identity provider (source: directory)"
    ));
    assert!(has(
        &p,
        Rule::Directory,
        "changes[2] (remove_user): user \"u-nina\" is managed by the identity provider"
    ));
    assert!(has(
        &p,
        Rule::Directory,
        "user \"u-idp\" is marked source: directory"
    ));
    assert!(has(
        &p,
        Rule::Directory,
        "changes[4] (upsert_user): user \"u-nina\" is managed by the identity provider"
    ));
}

#[test]
fn directory_updates_write_only_directory_items() {
    let mut nurses = base().groups[0].clone();
    nurses.members.push("u-ada".into());
    let ws = apply(
        Directory,
        vec![
            Change::UpsertGroup(nurses.clone()),
            Change::UpsertUser(user("u-idp", Source::Directory, "member")),
            // Taking over a local user, as an identity provider links an account.
            Change::UpsertUser(user("u-ada", Source::Directory, "admin")),
        ],
    )
    .unwrap();
    assert!(ws.groups.contains(&nurses));
    assert_eq!(
        ws.users.iter().find(|u| u.id == "u-ada").unwrap().source,
        Source::Directory
    );

    let p = problems(
        Directory,
        vec![
            Change::UpsertUser(user("u-local", Source::Local, "member")),
            Change::RemoveGroup("coordinators".into()),
        ],
    );
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(has(
        &p,
        Rule::Directory,
        "user \"u-local\" is written with source: local"
    ));
    assert!(has(
        &p,
        Rule::Directory,
        "group \"coordinators\" is managed locally"
    ));

    // Removing a directory user who is still a member of a group: the
    // delta does not cascade (removing_a_user_still_in_a_group_names_the_groups);
    // with the group removed too, it applies.
    apply(
        Directory,
        vec![
            Change::RemoveUser("u-nina".into()),
            Change::RemoveGroup("nurses-site-a".into()),
        ],
    )
    .unwrap();
}

#[test]
fn removing_a_label_still_in_use_names_its_uses() {
    let p = problems(Admin, vec![Change::RemoveLabel("site-b".into())]);
    // One problem, on the change: not one per use calling the label unknown.
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].rule, Rule::UnknownLabel);
    assert_eq!(
        p[0].to_string(),
        "workspace \"sunrise-care\", changes[0] (remove_label): label \"site-b\" is still used \
         by 3 item(s) (resource mini:m-lily, resource record:r-2, group coordinators): resources \
         that carry it and bindings at label:site-b; remove those uses in the same delta, or \
         keep the label [unknown label]"
    );
    // Its uses removed in the same delta, before or after.
    let mut r2 = base().resources[2].clone();
    r2.labels.clear();
    let mut coordinators = base().groups[1].clone();
    coordinators.bindings[0].scope = None;
    let ws = apply(
        Admin,
        vec![
            Change::UpsertResource(r2),
            Change::RemoveLabel("site-b".into()),
            Change::UpsertResource(mini("m-lily", &[])),
            Change::UpsertGroup(coordinators),
        ],
    )
    .unwrap();
    assert_eq!(ws.labels, ["site-a"]);
}

#[test]
fn removing_a_user_still_in_a_group_names_the_groups() {
    let p = problems(Directory, vec![Change::RemoveUser("u-nina".into())]);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(
        p[0].to_string(),
        "workspace \"sunrise-care\", changes[0] (remove_user): user \"u-nina\" is still a member \
         of 1 group(s) (nurses-site-a); remove it from them in the same delta [unknown member]"
    );
    let mut nurses = base().groups[0].clone();
    nurses.members.clear();
    let ws = apply(
        Directory,
        vec![
            Change::RemoveUser("u-nina".into()),
            Change::UpsertGroup(nurses),
        ],
    )
    .unwrap();
    assert!(!ws.users.iter().any(|u| u.id == "u-nina"));
}

#[test]
fn removing_a_resource_with_children_needs_the_children_removed_too() {
    let p = problems(Admin, vec![Change::RemoveResource("mini:m-rose".into())]);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].rule, Rule::Parent);
    assert_eq!(
        p[0].to_string(),
        "workspace \"sunrise-care\", changes[0] (remove_resource): resource \"mini:m-rose\" \
         still has 2 child resource(s) (record:r-1, record:r-2); remove or move them in the \
         same delta [parent]"
    );
    // Children removed after (or before) the parent, in the same delta.
    let ws = apply(
        Admin,
        vec![
            Change::RemoveResource("record:r-1".into()),
            Change::RemoveResource("mini:m-rose".into()),
            Change::RemoveResource("record:r-2".into()),
        ],
    )
    .unwrap();
    assert!(!ws.resources.iter().any(|r| r.id == "m-rose"));
    // Or moved to another parent.
    let mut r2 = base().resources[2].clone();
    r2.parent = Some("mini:m-lily".into());
    let mut r1 = base().resources[1].clone();
    r1.parent = Some("m-lily".into());
    apply(
        Admin,
        vec![
            Change::RemoveResource("mini:m-rose".into()),
            Change::UpsertResource(r1),
            Change::UpsertResource(r2),
        ],
    )
    .unwrap();
}

#[test]
fn set_features_and_set_policy_replace_and_are_validated() {
    let ws = apply(Admin, vec![Change::SetFeatures(Some(vec![]))]).unwrap();
    assert_eq!(ws.features, Some(vec![]));
    let ws = apply(Admin, vec![Change::SetFeatures(None)]).unwrap();
    assert_eq!(ws.features, None);
    let p = problems(
        Admin,
        vec![Change::SetFeatures(Some(vec!["teleport".into()]))],
    );
    assert!(has(&p, Rule::UnknownFeature, "\"teleport\""), "{p:#?}");

    let ws = apply(
        Admin,
        vec![Change::SetPolicy(PolicySpec {
            max_roles_per_user: Some(2),
            ..Default::default()
        })],
    )
    .unwrap();
    assert_eq!(
        ws.policy,
        Some(PolicySpec {
            max_roles_per_user: Some(2),
            ..Default::default()
        })
    );
    let p = problems(
        Admin,
        vec![Change::SetPolicy(PolicySpec {
            min_admins: Some(2),
            ..Default::default()
        })],
    );
    assert!(has(&p, Rule::MinAdmins, "min_admins is 2"), "{p:#?}");
}

#[test]
fn a_delta_for_an_unknown_workspace_is_rejected() {
    let u = update(
        Admin,
        UpdateBody::Delta(Delta {
            workspace: "nowhere".into(),
            changes: vec![],
        }),
    );
    let err = apply_update(|_| None, &u).unwrap_err();
    assert!(err.to_string().contains("workspace \"nowhere\""), "{err}");
}

#[test]
fn full_snapshots_follow_the_directory_rule() {
    let cur = base();
    // Unchanged directory items are fine from either source.
    assert!(check_snapshot_sources(Some(&cur), &cur, Admin).is_empty());
    assert!(check_snapshot_sources(Some(&cur), &cur, Directory).is_empty());

    let mut dropped = cur.clone();
    dropped.groups.retain(|g| g.id != "nurses-site-a");
    let p = check_snapshot_sources(Some(&cur), &dropped, Admin);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(has(
        &p,
        Rule::Directory,
        "group \"nurses-site-a\" is managed by the identity provider (source: directory)"
    ));

    let mut changed = cur.clone();
    changed.users[0].bindings.push(BindingSpec {
        role: "member".into(),
        scope: None,
    });
    let p = check_snapshot_sources(Some(&cur), &changed, Directory);
    assert!(has(
        &p,
        Rule::Directory,
        "user \"u-ada\" is written with source: local"
    ));
    assert!(check_snapshot_sources(Some(&cur), &changed, Admin).is_empty());

    // A workspace new to the sidecar may arrive whole, directory items
    // included, from either source (as a snapshot file does).
    assert!(check_snapshot_sources(None, &cur, Admin).is_empty());
    assert!(check_snapshot_sources(None, &cur, Directory).is_empty());

    // apply_update reports the directory rule and validation together.
    let mut bad = dropped.clone();
    bad.users[0].bindings[0].role = "nope".into();
    let u = update(
        Admin,
        UpdateBody::Snapshot(SnapshotSpec {
            workspaces: vec![bad],
        }),
    );
    let err = apply_update(|id| (id == cur.id).then_some(Cow::Borrowed(&cur)), &u).unwrap_err();
    assert!(has(&err.problems, Rule::Directory, "nurses-site-a"));
    assert!(has(&err.problems, Rule::UnknownRole, "\"nope\""));
}

// ---- the wire form -------------------------------------------------------

fn round_trip(spec: &SnapshotSpec) -> SnapshotSpec {
    rolecall::admin_convert::snapshot_from_pb(pb::Snapshot::from(spec)).unwrap()
}

/// Snapshot files of the shared scenarios and of this crate's own.
fn scenario_snapshots() -> Vec<(String, SnapshotSpec)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("../shared/scenarios"),
        root.join("tests/scenarios"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // not present in this checkout
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            for s in rolecall::scenario::read_file(&p).unwrap() {
                // Snapshots meant to be refused for unknown fields do not
                // even parse; the others round-trip, valid or not.
                if let Ok(spec) = s.snapshot_spec() {
                    out.push((format!("{}: {}", p.display(), s.name), spec));
                }
            }
        }
    }
    out
}

#[test]
fn every_scenario_snapshot_survives_the_wire() {
    let all = scenario_snapshots();
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/scenarios");
    if shared.is_dir() {
        assert!(
            all.len() >= 5,
            "only {} scenario snapshots found",
            all.len()
        );
    }
    for (name, spec) in all {
        assert_eq!(round_trip(&spec), spec, "{name}");
    }
}

#[test]
fn a_generated_snapshot_survives_the_wire() {
    let opts = rolecall::gen::GenOptions {
        workspaces: 2,
        suspended: 0.2,
        resource_scopes: 0.3,
        ..Default::default()
    };
    let spec = rolecall::gen::generate(&opts);
    assert_eq!(round_trip(&spec), spec);
}

#[test]
fn every_optional_field_survives_the_wire() {
    let mut ws = base();
    ws.types.push(rolecall::model::spec::TypeSpec {
        name: "manual".into(),
        parent: None,
        actions: vec!["read".into()],
        feature: Some("manuals".into()),
    });
    ws.roles[0].organization = Some(String::new());
    ws.roles[0].seat = true;
    ws.roles[0].disabled = true;
    ws.users[0].status = rolecall::model::spec::UserStatus::Suspended;
    for policy in [
        None,
        Some(PolicySpec::default()),
        Some(PolicySpec {
            min_admins: Some(0),
            max_roles_per_user: Some(1),
            admin_roles: Some(vec![]),
        }),
        Some(PolicySpec {
            admin_roles: Some(vec!["owner".into()]),
            ..Default::default()
        }),
    ] {
        ws.policy = policy;
        for features in [None, Some(vec![]), Some(vec!["chat".into()])] {
            ws.features = features;
            let spec = SnapshotSpec {
                workspaces: vec![ws.clone()],
            };
            assert_eq!(round_trip(&spec), spec);
        }
    }
}

#[test]
fn every_kind_of_change_survives_the_wire() {
    let changes = vec![
        Change::UpsertUser(user("u", Source::Directory, "member")),
        Change::RemoveUser("u".into()),
        Change::UpsertGroup(GroupSpec {
            id: "g".into(),
            source: Source::Directory,
            members: vec!["u".into()],
            bindings: vec![BindingSpec {
                role: "viewer".into(),
                scope: Some("label:site-a".into()),
            }],
        }),
        Change::RemoveGroup("g".into()),
        Change::UpsertRole(base().roles[0].clone()),
        Change::RemoveRole("site_coordinator".into()),
        Change::UpsertLabel("l".into()),
        Change::RemoveLabel("l".into()),
        Change::UpsertResource(base().resources[1].clone()),
        Change::RemoveResource("record:r-1".into()),
        Change::SetFeatures(Some(vec!["chat".into()])),
        Change::SetFeatures(Some(vec![])),
        Change::SetFeatures(None),
        Change::SetPolicy(PolicySpec {
            min_admins: Some(1),
            ..Default::default()
        }),
    ];
    for (source, expected_revision) in [(Admin, None), (Directory, Some(u64::MAX))] {
        let u = Update {
            request_id: "req-9".into(),
            source,
            expected_revision,
            body: UpdateBody::Delta(delta(changes.clone())),
        };
        let wire = pb::ApplyRequest::from(&u);
        assert_eq!(Update::try_from(wire).unwrap(), u);
    }
}
