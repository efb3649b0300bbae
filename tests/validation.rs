//! Validation (SPEC 1.3 and 3): one test per rule and per kind of
//! reference. Each asserts that the snapshot is rejected as a whole and that
//! the error names the rule, in SPEC's words, and the offending item.

use rolecall::engine::Snapshot;
use rolecall::model::parse::{from_text, snapshot_from_text};
use rolecall::model::{InvalidSnapshot, SnapshotSpec};

/// Parses and validates a snapshot written as YAML.
fn validate(text: &str) -> Result<Snapshot, InvalidSnapshot> {
    let spec: SnapshotSpec = from_text(text, "snapshot.yaml")?;
    Snapshot::from_spec(&spec)
}

fn rejected(text: &str) -> InvalidSnapshot {
    match validate(text) {
        Ok(_) => panic!("the snapshot was accepted:\n{text}"),
        Err(e) => e,
    }
}

fn accepted(text: &str) -> Snapshot {
    match validate(text) {
        Ok(s) => s,
        Err(e) => panic!("the snapshot was rejected: {e}\n{text}"),
    }
}

/// Asserts that one problem names the rule and every one of `items`.
#[track_caller]
fn assert_names(e: &InvalidSnapshot, rule: &str, items: &[&str]) {
    let hit = e.problems.iter().any(|p| {
        let s = p.to_string();
        s.contains(rule) && items.iter().all(|i| s.contains(i))
    });
    assert!(
        hit,
        "no problem names rule \"{rule}\" and {items:?}; the error is:\n{e}"
    );
    // The whole error, as printed, says the same.
    let text = e.to_string();
    assert!(text.contains(rule) && items.iter().all(|i| text.contains(i)));
}

/// Asserts that the snapshot is refused with exactly one problem, which
/// names the rule and the items.
#[track_caller]
fn assert_only(text: &str, rule: &str, items: &[&str]) {
    let e = rejected(text);
    assert_eq!(e.problems.len(), 1, "expected one problem, got:\n{e}");
    assert_names(&e, rule, items);
}

// ---------------------------------------------------------------- references

#[test]
fn unknown_role_in_a_user_binding() {
    assert_only(
        r#"
workspaces:
  - id: w
    users:
      - { id: u-1, bindings: [{ role: no_such_role }] }
"#,
        "unknown role",
        &["no_such_role", "u-1", "\"w\""],
    );
}

#[test]
fn unknown_role_in_a_group_binding() {
    assert_only(
        r#"
workspaces:
  - id: w
    users: [{ id: u-1 }]
    groups:
      - { id: g-1, members: [u-1], bindings: [{ role: ghost_role, scope: workspace }] }
"#,
        "unknown role",
        &["ghost_role", "g-1"],
    );
}

#[test]
fn a_role_of_another_catalog_is_unknown() {
    // `creator` is an environment role; minikai has none.
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: minikai
    users: [{ id: u-1, bindings: [{ role: creator }] }]
"#,
        "unknown role",
        &["creator", "u-1"],
    );
}

#[test]
fn unknown_role_in_admin_roles() {
    assert_only(
        r#"
workspaces:
  - id: w
    policy: { admin_roles: [chief] }
"#,
        "unknown role",
        &["chief", "policy"],
    );
}

#[test]
fn unknown_label_in_a_scope() {
    assert_only(
        r#"
workspaces:
  - id: w
    labels: [site-a]
    users:
      - { id: u-1, bindings: [{ role: viewer, scope: "label:site-z" }] }
"#,
        "unknown label",
        &["site-z", "u-1"],
    );
}

#[test]
fn unknown_label_on_a_resource() {
    assert_only(
        r#"
workspaces:
  - id: w
    labels: [site-a]
    resources:
      - { type: mini, id: m-1, labels: [site-a, site-q] }
"#,
        "unknown label",
        &["site-q", "mini:m-1"],
    );
}

#[test]
fn unknown_resource_in_a_resource_scope() {
    assert_only(
        r#"
workspaces:
  - id: w
    users:
      - { id: u-1, bindings: [{ role: viewer, scope: "resource:mini:m-9" }] }
    resources:
      - { type: mini, id: m-1 }
"#,
        "unknown resource",
        &["mini:m-9", "u-1"],
    );
}

#[test]
fn a_resource_scope_is_typed() {
    // `record:m-1` does not exist, although `mini:m-1` does.
    assert_only(
        r#"
workspaces:
  - id: w
    users:
      - { id: u-1, bindings: [{ role: viewer, scope: "resource:record:m-1" }] }
    resources:
      - { type: mini, id: m-1 }
"#,
        "unknown resource",
        &["record:m-1", "u-1"],
    );
}

#[test]
fn unknown_type_in_a_resource_scope() {
    assert_only(
        r#"
workspaces:
  - id: w
    users:
      - { id: u-1, bindings: [{ role: viewer, scope: "resource:gadget:g-1" }] }
"#,
        "unknown type",
        &["gadget", "u-1"],
    );
}

#[test]
fn a_malformed_scope() {
    assert_only(
        r#"
workspaces:
  - id: w
    labels: [site-a]
    users:
      - { id: u-1, bindings: [{ role: viewer, scope: "site-a" }] }
"#,
        "scope",
        &["site-a", "u-1"],
    );
    assert_only(
        r#"
workspaces:
  - id: w
    resources: [{ type: mini, id: m-1 }]
    users:
      - { id: u-1, bindings: [{ role: viewer, scope: "resource:m-1" }] }
"#,
        "scope",
        &["resource:m-1", "u-1"],
    );
}

#[test]
fn implicit_resources_are_valid_scopes() {
    // The workspace, its users, groups, labels and roles are resources.
    accepted(
        r#"
workspaces:
  - id: w
    labels: [site-a]
    groups: [{ id: g-1 }]
    users:
      - id: u-1
        bindings:
          - { role: admin, scope: "resource:workspace:w" }
          - { role: admin, scope: "resource:user:u-1" }
          - { role: admin, scope: "resource:group:g-1" }
          - { role: admin, scope: "resource:label:site-a" }
          - { role: admin, scope: "resource:role:viewer" }
"#,
    );
}

#[test]
fn unknown_group_member() {
    assert_only(
        r#"
workspaces:
  - id: w
    users: [{ id: u-1 }]
    groups:
      - { id: g-1, members: [u-1, u-404] }
"#,
        "unknown member",
        &["u-404", "g-1"],
    );
}

#[test]
fn unknown_resource_type() {
    assert_only(
        r#"
workspaces:
  - id: w
    resources: [{ type: gadget, id: g-1 }]
"#,
        "unknown type",
        &["gadget", "g-1"],
    );
}

#[test]
fn implicit_resources_cannot_be_listed() {
    assert_only(
        r#"
workspaces:
  - id: w
    resources: [{ type: user, id: u-1 }]
"#,
        "unknown type",
        &["user:u-1"],
    );
}

#[test]
fn unknown_feature() {
    assert_only(
        r#"
workspaces:
  - id: w
    features: [chat, teleport]
"#,
        "unknown feature",
        &["teleport", "features"],
    );
}

#[test]
fn a_custom_type_adds_its_feature() {
    accepted(
        r#"
workspaces:
  - id: w
    features: [chat, manuals]
    types:
      - { name: manual, actions: [read], feature: manuals }
"#,
    );
    // Without the type, `manuals` is not a feature of the schema.
    assert_only(
        r#"
workspaces:
  - id: w
    features: [manuals]
"#,
        "unknown feature",
        &["manuals"],
    );
}

// ------------------------------------------------------------------- parents

#[test]
fn parent_of_the_wrong_type() {
    assert_only(
        r#"
workspaces:
  - id: w
    resources:
      - { type: mini, id: m-0 }
      - { type: record, id: r-0, parent: "mini:m-0" }
      - { type: record, id: r-1, parent: "record:r-0" }
"#,
        "parent",
        &["record:r-1", "record:r-0"],
    );
}

#[test]
fn missing_parent() {
    assert_only(
        r#"
workspaces:
  - id: w
    resources:
      - { type: record, id: r-1 }
"#,
        "parent",
        &["record:r-1", "mini"],
    );
}

#[test]
fn parent_that_does_not_exist() {
    // Both the resource and the missing parent are named.
    assert_only(
        r#"
workspaces:
  - id: w
    resources:
      - { type: mini, id: m-1 }
      - { type: record, id: r-1, parent: "mini:m-9" }
"#,
        "parent",
        &["record:r-1", "mini:m-9"],
    );
    // A bare id is an id of the parent type.
    assert_only(
        r#"
workspaces:
  - id: w
    resources:
      - { type: record, id: r-1, parent: m-9 }
"#,
        "parent",
        &["record:r-1", "m-9"],
    );
}

#[test]
fn a_bare_parent_id_is_of_the_parent_type() {
    accepted(
        r#"
workspaces:
  - id: w
    resources:
      - { type: mini, id: m-1 }
      - { type: record, id: r-1, parent: m-1 }
"#,
    );
}

#[test]
fn parent_on_a_parentless_type() {
    assert_only(
        r#"
workspaces:
  - id: w
    resources:
      - { type: mini, id: m-0 }
      - { type: mini, id: m-1, parent: "mini:m-0" }
"#,
        "parent",
        &["mini:m-1", "mini:m-0"],
    );
}

#[test]
fn custom_type_with_an_unknown_parent_type() {
    assert_only(
        r#"
workspaces:
  - id: w
    types:
      - { name: audit_item, parent: audit, actions: [read] }
"#,
        "parent",
        &["audit_item", "audit"],
    );
}

#[test]
fn custom_type_parents_may_refer_forward() {
    accepted(
        r#"
workspaces:
  - id: w
    types:
      - { name: audit_item, parent: audit, actions: [read] }
      - { name: audit, actions: [read] }
    resources:
      - { type: audit_item, id: i-1, parent: "audit:a-1" }
      - { type: audit, id: a-1 }
"#,
    );
}

#[test]
fn cycle_in_custom_type_parents() {
    let e = rejected(
        r#"
workspaces:
  - id: w
    types:
      - { name: alpha, parent: beta, actions: [read] }
      - { name: beta, parent: alpha, actions: [read] }
"#,
    );
    assert_names(&e, "cycle", &["alpha"]);
    assert!(
        e.problems.iter().all(|p| p.to_string().contains("cycle")),
        "{e}"
    );
    let e = rejected(
        r#"
workspaces:
  - id: w
    types:
      - { name: ouroboros, parent: ouroboros, actions: [read] }
"#,
    );
    assert_names(&e, "cycle", &["ouroboros"]);
    // A three-type cycle hanging off a sound chain.
    let e = rejected(
        r#"
workspaces:
  - id: w
    types:
      - { name: a, parent: c, actions: [read] }
      - { name: b, parent: a, actions: [read] }
      - { name: c, parent: b, actions: [read] }
      - { name: d, parent: a, actions: [read] }
"#,
    );
    assert_names(&e, "cycle", &["\"a\""]);
}

// ---------------------------------------------------------------- duplicates

#[test]
fn duplicate_user_ids() {
    assert_only(
        r#"
workspaces:
  - id: w
    users: [{ id: u-1 }, { id: u-1 }]
"#,
        "duplicate",
        &["u-1"],
    );
}

#[test]
fn duplicate_group_ids() {
    assert_only(
        r#"
workspaces:
  - id: w
    groups: [{ id: g-1 }, { id: g-1 }]
"#,
        "duplicate",
        &["g-1"],
    );
}

#[test]
fn duplicate_label_ids() {
    assert_only(
        r#"
workspaces:
  - id: w
    labels: [site-a, site-b, site-a]
"#,
        "duplicate",
        &["site-a"],
    );
}

#[test]
fn duplicate_role_ids() {
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: none
    roles:
      - { id: coord, name: Coordinator }
      - { id: coord, name: Coordinator Two }
"#,
        "duplicate",
        &["coord"],
    );
}

#[test]
fn duplicate_resource_ids() {
    assert_only(
        r#"
workspaces:
  - id: w
    resources:
      - { type: mini, id: m-1 }
      - { type: mini, id: m-1 }
"#,
        "duplicate",
        &["mini:m-1"],
    );
}

#[test]
fn one_id_in_two_types_is_no_duplicate() {
    accepted(
        r#"
workspaces:
  - id: w
    resources:
      - { type: mini, id: x }
      - { type: record, id: x, parent: "mini:x" }
"#,
    );
}

#[test]
fn duplicate_type_names() {
    // Twice the same custom type, and a custom type named like a default one.
    let e = rejected(
        r#"
workspaces:
  - id: w
    types:
      - { name: manual, actions: [read] }
      - { name: manual, actions: [update] }
      - { name: mini, actions: [read] }
"#,
    );
    assert_eq!(e.problems.len(), 2, "{e}");
    assert_names(&e, "duplicate", &["manual"]);
    assert_names(&e, "duplicate", &["mini"]);
}

#[test]
fn duplicate_actions_of_a_type() {
    assert_only(
        r#"
workspaces:
  - id: w
    types:
      - { name: manual, actions: [read, read] }
"#,
        "duplicate",
        &["manual", "read"],
    );
}

#[test]
fn duplicate_workspace_ids() {
    let e = rejected(
        r#"
workspaces:
  - { id: w }
  - { id: v }
  - { id: w }
"#,
    );
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_names(&e, "duplicate", &["\"w\""]);
}

#[test]
fn role_names_are_unique_per_organization() {
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: none
    roles:
      - { id: coord-1, name: Coordinator, grants: ["mini:read"] }
      - { id: coord-2, name: Coordinator, grants: ["mini:update"] }
"#,
        "duplicate",
        &["Coordinator", "coord-2"],
    );
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: none
    roles:
      - { id: a-north, name: Org Admin, organization: north }
      - { id: b-north, name: Org Admin, organization: north }
"#,
        "duplicate",
        &["Org Admin", "north"],
    );
}

#[test]
fn a_custom_role_cannot_take_a_built_in_role_name() {
    // Built-in roles are named by their ids, with no organization.
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: minikai
    roles:
      - { id: my_viewer, name: viewer, grants: ["mini:read"] }
"#,
        "duplicate",
        &["my_viewer", "viewer"],
    );
    // In an organization of its own the name is free.
    accepted(
        r#"
workspaces:
  - id: w
    catalog: minikai
    roles:
      - { id: my_viewer, name: viewer, organization: north, grants: ["mini:read"] }
"#,
    );
}

#[test]
fn one_role_name_in_two_organizations_is_allowed() {
    accepted(
        r#"
workspaces:
  - id: w
    catalog: none
    roles:
      - { id: a-north, name: Org Admin, organization: north, description: North }
      - { id: a-south, name: Org Admin, organization: south, description: South }
      - { id: a-none, name: Org Admin, description: no organization }
"#,
    );
}

#[test]
fn role_names_are_per_workspace() {
    accepted(
        r#"
workspaces:
  - id: w
    catalog: none
    roles: [{ id: coord, name: Coordinator }]
  - id: v
    catalog: none
    roles: [{ id: coord, name: Coordinator }]
"#,
    );
}

#[test]
fn built_in_roles_cannot_be_redefined() {
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: minikai
    roles:
      - { id: admin, name: admin, grants: ["mini:read"] }
"#,
        "built-in",
        &["admin"],
    );
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: environment
    roles:
      - { id: creator, grants: ["*:*"], rank: 100 }
"#,
        "built-in",
        &["creator"],
    );
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: seats
    policy: { min_admins: 0 }
    roles:
      - { id: viewer, rank: 0, disabled: true }
"#,
        "built-in",
        &["viewer"],
    );
}

#[test]
fn without_a_catalog_there_are_no_built_ins_to_protect() {
    accepted(
        r#"
workspaces:
  - id: w
    catalog: none
    roles:
      - { id: admin, grants: ["*:*"], rank: 90 }
"#,
    );
}

// ------------------------------------------------------------------- grants

#[test]
fn grant_of_an_unknown_action() {
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: none
    roles: [{ id: pilot, grants: ["mini:fly"] }]
"#,
        "unknown action",
        &["mini:fly", "pilot"],
    );
}

#[test]
fn grant_of_an_unknown_type() {
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: none
    roles: [{ id: pilot, grants: ["plane:*"] }]
"#,
        "unknown type",
        &["plane", "pilot"],
    );
}

#[test]
fn bad_wildcards() {
    for g in ["*:read", "read", "*"] {
        let text = format!(
            "workspaces:\n  - id: w\n    catalog: none\n    roles: [{{ id: pilot, grants: [\"{g}\"] }}]\n"
        );
        assert_only(&text, "grant", &[g, "pilot"]);
    }
}

#[test]
fn the_wildcard_is_no_type_or_action_name() {
    // `*:*` and `type:*` must mean one thing only.
    for (types, named) in [
        ("[{ name: \"*\", actions: [read] }]", "type name cannot be"),
        (
            "[{ name: \"a:b\", actions: [read] }]",
            "type name cannot be",
        ),
        (
            "[{ name: gadget, actions: [\"*\"] }]",
            "action cannot be named",
        ),
    ] {
        let text = format!("workspaces:\n  - id: w\n    catalog: none\n    types: {types}\n");
        assert_only(&text, "[id]", &[named]);
    }
}

#[test]
fn custom_type_actions_can_be_granted() {
    accepted(
        r#"
workspaces:
  - id: w
    catalog: none
    types:
      - { name: manuals_trash, actions: [restore], feature: manuals }
    roles: [{ id: janitor, grants: ["manuals_trash:restore", "manuals_trash:*", "*:*"] }]
"#,
    );
}

// ----------------------------------------------------------------- policies

#[test]
fn min_admins_counts_active_users_only() {
    // The only admin is suspended.
    assert_only(
        r#"
workspaces:
  - id: w
    policy: { min_admins: 1 }
    users:
      - { id: u-boss, status: suspended, bindings: [{ role: admin }] }
      - { id: u-1, bindings: [{ role: viewer }] }
"#,
        "min_admins",
        &["policy"],
    );
}

#[test]
fn min_admins_counts_admins_through_groups() {
    accepted(
        r#"
workspaces:
  - id: w
    policy: { min_admins: 2 }
    groups:
      - { id: g-admins, source: directory, members: [u-2], bindings: [{ role: admin }] }
    users:
      - { id: u-1, bindings: [{ role: owner }] }
      - { id: u-2 }
"#,
    );
    // A group of one suspended user counts for nothing.
    assert_only(
        r#"
workspaces:
  - id: w
    policy: { min_admins: 2 }
    groups:
      - { id: g-admins, members: [u-2], bindings: [{ role: admin }] }
    users:
      - { id: u-1, bindings: [{ role: owner }] }
      - { id: u-2, status: suspended }
"#,
        "min_admins",
        &["2"],
    );
}

#[test]
fn min_admins_counts_workspace_scope_only() {
    assert_only(
        r#"
workspaces:
  - id: w
    policy: { min_admins: 1 }
    labels: [site-a]
    users:
      - { id: u-1, bindings: [{ role: admin, scope: "label:site-a" }] }
"#,
        "min_admins",
        &["policy"],
    );
}

#[test]
fn min_admins_counts_each_user_once() {
    assert_only(
        r#"
workspaces:
  - id: w
    policy: { min_admins: 2 }
    groups: [{ id: g, members: [u-1], bindings: [{ role: owner }] }]
    users:
      - { id: u-1, bindings: [{ role: admin }, { role: owner }] }
"#,
        "min_admins",
        &["policy"],
    );
}

#[test]
fn min_admins_uses_the_policy_admin_roles() {
    // An owner is no admin when the policy names other roles.
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: minikai
    policy: { min_admins: 1, admin_roles: [steward] }
    roles: [{ id: steward, rank: 80, grants: ["*:*"] }]
    users:
      - { id: u-1, bindings: [{ role: owner }] }
"#,
        "min_admins",
        &["steward"],
    );
    accepted(
        r#"
workspaces:
  - id: w
    catalog: minikai
    policy: { min_admins: 1, admin_roles: [steward] }
    roles: [{ id: steward, rank: 80, grants: ["*:*"] }]
    users:
      - { id: u-1, bindings: [{ role: steward }] }
"#,
    );
}

#[test]
fn a_disabled_admin_role_makes_no_admin() {
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: none
    policy: { min_admins: 1, admin_roles: [boss] }
    roles: [{ id: boss, rank: 90, grants: ["*:*"], disabled: true }]
    users:
      - { id: u-1, bindings: [{ role: boss }] }
"#,
        "min_admins",
        &["boss"],
    );
}

#[test]
fn seats_imply_min_admins_one() {
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: seats
    users: [{ id: u-m, bindings: [{ role: member }] }]
"#,
        "min_admins",
        &["policy"],
    );
    // The workspace's own policy says otherwise.
    accepted(
        r#"
workspaces:
  - id: w
    catalog: seats
    policy: { min_admins: 0 }
    users: [{ id: u-m, bindings: [{ role: member }] }]
"#,
    );
}

#[test]
fn seats_imply_max_roles_per_user_one() {
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: seats
    users:
      - { id: u-a, bindings: [{ role: admin }] }
      - { id: u-m, bindings: [{ role: member }, { role: viewer }] }
"#,
        "max_roles_per_user",
        &["u-m"],
    );
    // Through a group too.
    assert_only(
        r#"
workspaces:
  - id: w
    catalog: seats
    groups: [{ id: g-view, members: [u-m], bindings: [{ role: viewer }] }]
    users:
      - { id: u-a, bindings: [{ role: admin }] }
      - { id: u-m, bindings: [{ role: member }] }
"#,
        "max_roles_per_user",
        &["u-m"],
    );
    // The workspace's own policy says otherwise.
    accepted(
        r#"
workspaces:
  - id: w
    catalog: seats
    policy: { max_roles_per_user: 2 }
    users:
      - { id: u-a, bindings: [{ role: admin }] }
      - { id: u-m, bindings: [{ role: member }, { role: viewer }] }
"#,
    );
}

#[test]
fn max_roles_per_user_counts_distinct_workspace_roles() {
    // The same role directly and through a group is one role; a role at
    // label or resource scope is not counted.
    accepted(
        r#"
workspaces:
  - id: w
    catalog: seats
    labels: [site-a]
    groups: [{ id: g-members, members: [u-m], bindings: [{ role: member }] }]
    resources: [{ type: mini, id: m-1 }]
    users:
      - { id: u-a, bindings: [{ role: admin }] }
      - id: u-m
        bindings:
          - { role: member }
          - { role: viewer, scope: "label:site-a" }
          - { role: admin, scope: "resource:mini:m-1" }
"#,
    );
}

#[test]
fn max_roles_per_user_counts_disabled_roles() {
    // A disabled role is still held (SPEC 1.1: it stays so admins can
    // reassign its users), so it counts toward the limit.
    let e = rejected(
        r#"
workspaces:
  - id: w
    catalog: seats
    roles: [{ id: old, grants: ["mini:read"], disabled: true }]
    users:
      - { id: u-a, bindings: [{ role: admin }, { role: old }] }
      - { id: u-b, bindings: [{ role: admin }] }
"#,
    );
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_names(&e, "max_roles_per_user", &["u-a", "old"]);
}

#[test]
fn seats_count_users_with_an_enabled_seat_role_at_workspace_scope() {
    let s = accepted(
        r#"
workspaces:
  - id: w
    catalog: seats
    roles: [{ id: old, grants: ["mini:read"], seat: true, disabled: true }]
    resources: [{ type: mini, id: m-1 }]
    groups: [{ id: g-members, members: [u-g], bindings: [{ role: member }] }]
    users:
      - { id: u-a, bindings: [{ role: admin }] }
      - { id: u-m, bindings: [{ role: member }] }
      - { id: u-s, status: suspended, bindings: [{ role: member }] }
      - { id: u-g }
      - { id: u-v, bindings: [{ role: viewer }] }
      - id: u-r
        bindings: [{ role: viewer }, { role: member, scope: "resource:mini:m-1" }]
      - { id: u-d, bindings: [{ role: old }] }
"#,
    );
    // Admin, member, the suspended member (SPEC 1.4 names no status) and
    // the member through a group; not the viewers, not a member at resource
    // scope, not the holder of a disabled seat role.
    let Some(w) = s.workspace("w") else {
        panic!("no workspace w")
    };
    assert_eq!(w.seats_in_use(), 4);
}

#[test]
fn max_roles_per_user_in_other_catalogs() {
    let e = rejected(
        r#"
workspaces:
  - id: w
    policy: { max_roles_per_user: 1 }
    users:
      - { id: u-1, bindings: [{ role: admin }] }
      - { id: u-2, bindings: [{ role: mini_all_viewer }, { role: record_all_viewer }] }
      - { id: u-3, status: suspended, bindings: [{ role: viewer }, { role: editor }] }
"#,
    );
    assert_eq!(e.problems.len(), 2, "{e}");
    assert_names(&e, "max_roles_per_user", &["u-2"]);
    assert_names(&e, "max_roles_per_user", &["u-3"]);
}

#[test]
fn both_policies_broken_are_both_reported() {
    let e = rejected(
        r#"
workspaces:
  - id: w
    catalog: seats
    users:
      - { id: u-m, bindings: [{ role: member }, { role: viewer }] }
"#,
    );
    assert_eq!(e.problems.len(), 2, "{e}");
    assert_names(&e, "min_admins", &["policy"]);
    assert_names(&e, "max_roles_per_user", &["u-m"]);
}

// --------------------------------------------------------------------- ids

#[test]
fn ids_must_be_well_formed() {
    let e = rejected(
        r#"
workspaces:
  - id: w
    users: [{ id: "" }, { id: "two words" }]
"#,
    );
    assert_eq!(e.problems.len(), 2, "{e}");
    assert_names(&e, "id", &["two words"]);
}

// ------------------------------------------------------ all problems at once

#[test]
fn every_problem_is_reported() {
    let e = rejected(
        r#"
workspaces:
  - id: w
    catalog: minikai
    features: [chat, teleport]
    labels: [site-a]
    roles:
      - { id: admin, grants: ["mini:read"] }
      - { id: pilot, grants: ["mini:fly", "*:read"] }
    users:
      - { id: u-1, bindings: [{ role: no_such_role }, { role: viewer, scope: "label:site-z" }] }
      - { id: u-1 }
    groups:
      - { id: g-1, members: [u-404] }
    resources:
      - { type: record, id: r-1 }
      - { type: mini, id: m-1, labels: [site-q] }
      - { type: mini, id: m-1 }
  - id: v
    resources:
      - { type: mini, id: m-2, parent: "mini:m-1" }
"#,
    );
    let expected: &[(&str, &[&str])] = &[
        ("unknown feature", &["teleport"]),
        ("built-in", &["admin"]),
        ("unknown action", &["mini:fly"]),
        ("grant", &["*:read"]),
        ("unknown role", &["no_such_role"]),
        ("unknown label", &["site-z"]),
        ("duplicate", &["u-1"]),
        ("unknown member", &["u-404"]),
        ("parent", &["record:r-1"]),
        ("unknown label", &["site-q"]),
        ("duplicate", &["mini:m-1"]),
        ("parent", &["mini:m-2", "\"v\""]),
    ];
    for (rule, items) in expected {
        assert_names(&e, rule, items);
    }
    assert_eq!(e.problems.len(), expected.len(), "{e}");
    assert!(e
        .to_string()
        .starts_with(&format!("{} problems", expected.len())));
}

#[test]
fn a_valid_snapshot_passes() {
    let s = accepted(
        r#"
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
    users:
      - id: u-ada
        bindings: [{ role: admin }]
      - id: u-nina
        bindings: [{ role: member }]
    resources:
      - { type: mini, id: m-rose, labels: [site-a] }
      - { type: record, id: r-1, parent: "mini:m-rose", labels: [] }
"#,
    );
    assert!(s.workspace("sunrise-care").is_some());
}

// ------------------------------------------------- file format: line:column

/// The error of a text that must not parse, read as a snapshot file is.
fn parse_error(text: &str, origin: &str) -> InvalidSnapshot {
    match snapshot_from_text(text, origin) {
        Ok(_) => panic!("parsed:\n{text}"),
        Err(e) => e,
    }
}

/// `origin:line:column` of the first problem, as numbers.
fn line_column(e: &InvalidSnapshot) -> (usize, usize) {
    let place = &e.problems[0].place;
    let mut parts = place.rsplitn(3, ':');
    let column = parts.next().and_then(|c| c.parse().ok());
    let line = parts.next().and_then(|l| l.parse().ok());
    match (line, column) {
        (Some(l), Some(c)) => (l, c),
        _ => panic!("no line:column in \"{place}\": {e}"),
    }
}

/// Each problem as printed.
fn printed(e: &InvalidSnapshot) -> Vec<String> {
    e.problems.iter().map(ToString::to_string).collect()
}

const THREE_MISFITS_YAML: &str = include_str!("files/typos.yaml");

#[test]
fn every_misfit_of_a_file_is_a_problem_the_first_with_line_and_column() {
    let e = parse_error(THREE_MISFITS_YAML, "snapshot.yaml");
    let got = printed(&e);
    assert_eq!(got.len(), 3, "{e}");
    assert_eq!(line_column(&e), (6, 20), "{e}");
    assert!(
        got[0].contains("workspaces[0].users[0]: unknown field `rol`"),
        "{e}"
    );
    assert!(
        got[1].contains("workspaces[0].users[1].status: unknown variant `sleepy`"),
        "{e}"
    );
    assert!(
        got[2].contains("workspaces[0].resources[0]: unknown field `labls`"),
        "{e}"
    );

    // The same file as JSON: JSON's reader gives no path, the second
    // reading lends the first problem its own.
    let json = r#"{"workspaces": [{"id": "w",
  "users": [{"id": "u-1", "rol": ["x"]}, {"id": "u-2", "status": "sleepy"}],
  "resources": [{"type": "record", "id": "r-1", "labls": ["a"]}]}],
 "extra": 1}"#;
    let e = parse_error(json, "snapshot.json");
    let got = printed(&e);
    assert_eq!(got.len(), 4, "{e}");
    assert_eq!(line_column(&e), (2, 31), "{e}");
    assert!(
        got[0].contains("workspaces[0].users[0]: unknown field `rol`"),
        "{e}"
    );
    assert!(got[1].contains("unknown field `extra`"), "{e}");
    assert!(
        got[3].contains("workspaces[0].resources[0]: unknown field `labls`"),
        "{e}"
    );
}

#[test]
fn the_second_reading_agrees_with_the_first() {
    let listed = |text: &str, origin: &str| printed(&parse_error(text, origin));
    // A problem inside a field is listed once, at the field.
    let got = listed(
        "workspaces:\n  - id: a\n    users:\n      - { id: u-1, status: sleepy }\n      - { id: u-2, colour: red }\n",
        "a.yaml",
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].contains("a.yaml:4:28: workspaces[0].users[0].status: unknown variant"),
        "{got:#?}"
    );
    // What YAML reads as a string (numbers, booleans, tags) is no problem.
    let got = listed(
        "workspaces:\n  - id: 2024\n    labels: [2024, true, !!str x]\n    users:\n      - { id: u-0, colour: red }\n      - { id: 123, status: !!str active }\n",
        "b.yaml",
    );
    assert_eq!(got.len(), 1, "{got:#?}");
    // An empty list item: the first reading's word for it, once.
    let got = listed(
        "workspaces:\n  - id: a\n    users:\n      -\n      - { id: u, colour: x }\n",
        "c.yaml",
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].contains("workspaces[0].users[0]: missing field `id`"),
        "{got:#?}"
    );
    // A workspace's own misfit after one of its lists' (the typed reading
    // stops at the list's): both, once each.
    let got = listed(
        "workspaces:\n  - id: a\n    users:\n      - { id: u-1, colour: red }\n    colour: blue\n",
        "e.yaml",
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].contains("e.yaml:4:20: workspaces[0].users[0]: unknown field `colour`"),
        "{got:#?}"
    );
    assert!(
        got[1].contains("e.yaml: workspaces[0]: unknown field `colour`"),
        "{got:#?}"
    );
    // JSON: the path lent to the first problem is that of its line.
    let got = listed(
        "{\"workspaces\": [{\"id\": \"a\",\n  \"users\": [{\"id\": 5}],\n  \"labels\": [5]}]}",
        "d.json",
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].contains("d.json:2:20: workspaces[0].users[0]: invalid type"),
        "{got:#?}"
    );
    assert!(
        got[1].contains("workspaces[0].labels[0]: invalid type"),
        "{got:#?}"
    );
}

#[test]
fn one_misfit_is_one_problem_and_a_syntax_error_stops_the_reading() {
    let one = "workspaces:\n  - id: w\n    users: [{ id: u-1, rol: [x] }]\n";
    assert_eq!(parse_error(one, "one.yaml").problems.len(), 1);
    // Not well-formed: the first misfit, then the syntax error further on
    // (the misfits in between cannot be looked for).
    let cut = format!("{THREE_MISFITS_YAML}    labels: [a, b\n");
    let e = parse_error(&cut, "cut.yaml");
    let got = printed(&e);
    assert_eq!(got.len(), 2, "{e}");
    assert!(
        got[0].contains("cut.yaml:6:20: workspaces[0].users[0]"),
        "{e}"
    );
    assert!(
        got[1].contains("cut.yaml:11:1:") && got[1].contains("flow sequence"),
        "{e}"
    );
    // A syntax error first is one problem.
    let e = parse_error("workspaces: [\n", "early.yaml");
    assert_eq!(e.problems.len(), 1, "{e}");
}

#[test]
fn unknown_fields_in_yaml_name_line_and_column() {
    let text = "workspaces:\n  - id: w\n    users:\n      - id: u-1\n        colour: blue\n";
    let e = parse_error(text, "snapshot.yaml");
    assert_names(&e, "unknown field", &["colour", "snapshot.yaml"]);
    let (line, column) = line_column(&e);
    assert_eq!(line, 5, "{e}");
    assert!((1..=9).contains(&column), "{e}");
}

#[test]
fn unknown_fields_in_json_name_line_and_column() {
    let text =
        "{\n  \"workspaces\": [\n    {\"id\": \"w\",\n     \"catalogue\": \"none\"}\n  ]\n}\n";
    let e = parse_error(text, "snapshot.json");
    assert_names(&e, "unknown field", &["catalogue", "snapshot.json"]);
    let (line, _) = line_column(&e);
    assert_eq!(line, 4, "{e}");
}

#[test]
fn unknown_fields_at_every_level() {
    for text in [
        "workspaces: []\nrevision: 3\n",
        "workspaces:\n  - id: w\n    tenant: x\n",
        "workspaces:\n  - id: w\n    policy: { min_admin: 1 }\n",
        "workspaces:\n  - id: w\n    types: [{ name: t, action: [read] }]\n",
        "workspaces:\n  - id: w\n    roles: [{ id: r, grant: [\"mini:read\"] }]\n",
        "workspaces:\n  - id: w\n    groups: [{ id: g, member: [u] }]\n",
        "workspaces:\n  - id: w\n    users: [{ id: u, bindings: [{ role: admin, scopes: workspace }] }]\n",
        "workspaces:\n  - id: w\n    resources: [{ type: mini, id: m, label: [a] }]\n",
    ] {
        let e = parse_error(text, "s.yaml");
        assert_names(&e, "unknown field", &["s.yaml"]);
        let _ = line_column(&e);
    }
}

#[test]
fn an_empty_file_is_no_snapshot() {
    for text in ["", "\n  \n", "# only a comment\n\n# and another\n"] {
        let e = parse_error(text, "empty.yaml");
        assert_names(&e, "syntax", &["empty.yaml", "the file is empty"]);
    }
    // An explicit empty list of workspaces is a (useless) snapshot.
    let s = accepted("workspaces: []\n");
    assert!(s.workspaces().is_empty());
}

#[test]
fn an_error_names_its_place_once() {
    let e = parse_error("workspaces:\n  - id: w\n    colour: blue\n", "s.yaml");
    let text = e.to_string();
    assert!(text.contains("s.yaml:3:"), "{text}");
    assert!(!text.contains(" at line "), "{text}");
    let e = parse_error("{\"workspaces\": [}", "s.json");
    assert!(!e.to_string().contains(" at line "), "{e}");
}

#[test]
fn flow_style_yaml_is_read_as_yaml() {
    let flow = "{ workspaces: [ { id: w, catalog: none, labels: [a, b] } ] }";
    for origin in ["flow.yaml", "flow"] {
        let spec: SnapshotSpec = match from_text(flow, origin) {
            Ok(s) => s,
            Err(e) => panic!("{origin}: {e}"),
        };
        assert_eq!(spec.workspaces[0].id, "w");
    }
    // Its errors are YAML's, about the field, not JSON's about the quotes.
    let e = parse_error("{ workspaces: [ { id: w, colour: blue } ] }", "f.yaml");
    assert_names(&e, "unknown field", &["colour", "f.yaml:1:"]);
    // A `.json` file is held to JSON.
    let e = parse_error(flow, "flow.json");
    assert_names(&e, "syntax", &["flow.json:1:3"]);
}

#[test]
fn parse_errors_carry_line_and_column() {
    let yaml = "workspaces:\n  - id: w\n    users: [ { id: u-1 }\n  - id: v\n";
    let e = parse_error(yaml, "bad.yaml");
    assert!(e.to_string().contains("bad.yaml:"), "{e}");
    let (line, _) = line_column(&e);
    assert!((3..=5).contains(&line), "{e}");

    let json = "{\"workspaces\": [\n  {\"id\": \"w\",}\n]}";
    let e = parse_error(json, "bad.json");
    assert!(e.to_string().contains("bad.json:2:"), "{e}");

    // A wrong type is a parse error with its place too.
    let e = parse_error(
        "workspaces:\n  - id: w\n    policy: { min_admins: many }\n",
        "t.yaml",
    );
    assert!(e.to_string().contains("t.yaml:3:"), "{e}");
    let e = parse_error("workspaces:\n  - id: w\n    catalog: mystery\n", "c.yaml");
    assert!(e.to_string().contains("c.yaml:3:"), "{e}");
    assert!(e.to_string().contains("mystery"), "{e}");
}

#[test]
fn a_list_where_a_map_belongs_is_refused_with_its_place() {
    // serde would read a struct's fields from a list, in order; no
    // snapshot means that.
    for (text, origin, place) in [
        ("[]\n", "empty-list.yaml", "empty-list.yaml:1:"),
        ("[]", "empty-list.json", "empty-list.json:1:"),
        (
            "{\"workspaces\": [\n  [\"w\"]\n]}",
            "positional.json",
            "positional.json:2:",
        ),
        (
            "workspaces:\n  - id: w\n    users:\n      - [u-1, active]\n",
            "users.yaml",
            "users.yaml:4:",
        ),
        (
            "workspaces:\n  - id: w\n    policy: [1, 1]\n",
            "policy.yaml",
            "policy.yaml:3:",
        ),
        (
            "workspaces:\n  - id: w\n    users:\n      - id: u-1\n        bindings: [[viewer]]\n",
            "bindings.yaml",
            "bindings.yaml:5:",
        ),
    ] {
        let e = parse_error(text, origin);
        let said = e.to_string();
        assert!(said.contains("a map of fields"), "{said}");
        assert!(said.contains(place), "{place}: {said}");
    }
    // Maps, as ever, are read.
    accepted("workspaces:\n  - id: w\n    catalog: none\n    policy: { min_admins: 0 }\n");
}
