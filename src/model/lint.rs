//! Lint: things a valid workspace allows but a person should look at (SPEC
//! 5, `Admin.Status`). Each finding is one sentence naming the items. Pure
//! functions over a validated [`Workspace`]; nothing here is an error.
//!
//! - a user whose only roles are disabled (they can do nothing);
//! - a custom role bound to nobody;
//! - roles with the same name in different organizations;
//! - a role that grants `delete` on an app's type but not `restore` on the
//!   app's trash type (a type named `*_trash` with a `restore` action, of
//!   the same feature, or named after the type).

use std::collections::BTreeMap;

use super::workspace::{UserIdx, Workspace};

/// Every finding for one workspace, in a stable order.
pub fn lint(ws: &Workspace) -> Vec<String> {
    let mut out = Vec::new();
    only_disabled_roles(ws, &mut out);
    unused_roles(ws, &mut out);
    same_named_roles(ws, &mut out);
    delete_without_restore(ws, &mut out);
    out
}

fn only_disabled_roles(ws: &Workspace, out: &mut Vec<String>) {
    for (u, user) in ws.users.iter().enumerate() {
        let mut roles: Vec<&str> = ws
            .bindings_of(u as UserIdx)
            .map(|(b, _)| ws.roles[b.role as usize].id.as_str())
            .collect();
        if roles.is_empty() {
            continue;
        }
        let all_disabled = ws
            .bindings_of(u as UserIdx)
            .all(|(b, _)| ws.roles[b.role as usize].disabled);
        if all_disabled {
            roles.sort_unstable();
            roles.dedup();
            out.push(format!(
                "user \"{}\" holds only disabled roles ({}): they can do nothing",
                user.id,
                roles.join(", ")
            ));
        }
    }
}

fn unused_roles(ws: &Workspace, out: &mut Vec<String>) {
    let mut used = vec![false; ws.roles.len()];
    let bindings = ws
        .users
        .iter()
        .flat_map(|u| u.bindings.iter())
        .chain(ws.groups.iter().flat_map(|g| g.bindings.iter()));
    for b in bindings {
        used[b.role as usize] = true;
    }
    for (r, role) in ws.roles.iter().enumerate() {
        if !role.builtin && !role.disabled && !used[r] {
            out.push(format!(
                "role \"{}\" ({}) is not bound to any user or group",
                role.id, role.name
            ));
        }
    }
}

fn same_named_roles(ws: &Workspace, out: &mut Vec<String>) {
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (r, role) in ws.roles.iter().enumerate() {
        by_name.entry(role.name.as_str()).or_default().push(r);
    }
    for (name, roles) in by_name {
        if roles.len() < 2 {
            continue;
        }
        let list: Vec<String> = roles
            .iter()
            .map(|&r| {
                let role = &ws.roles[r];
                match &role.organization {
                    Some(o) => format!("\"{}\" (organization \"{o}\")", role.id),
                    None => format!("\"{}\" (no organization)", role.id),
                }
            })
            .collect();
        out.push(format!(
            "roles {} share the name \"{name}\": people tell them apart only by their \
             description",
            list.join(", ")
        ));
    }
}

fn delete_without_restore(ws: &Workspace, out: &mut Vec<String>) {
    let types = &ws.schema.types;
    // (app type, its delete permission, trash type, its restore permission)
    let mut pairs = Vec::new();
    for t in types.iter().filter(|t| t.custom) {
        let Some(delete) = t.action("delete") else {
            continue;
        };
        let feature = t.actions[delete as usize].feature;
        for trash in types
            .iter()
            .filter(|x| x.custom && x.name.ends_with("_trash"))
        {
            let Some(restore) = trash.action("restore") else {
                continue;
            };
            let same_feature =
                feature.is_some() && trash.actions[restore as usize].feature == feature;
            let named_after = trash.name == format!("{}_trash", t.name)
                || trash.name == format!("{}s_trash", t.name);
            if same_feature || named_after {
                pairs.push((t, t.perm(delete), trash, trash.perm(restore)));
            }
        }
    }
    for role in ws.roles.iter().filter(|r| !r.disabled) {
        for (t, delete, trash, restore) in &pairs {
            if role.perms.contains(*delete) && !role.perms.contains(*restore) {
                out.push(format!(
                    "role \"{}\" grants {}:delete but not {}:restore: its holders can delete \
                     what they cannot restore",
                    role.id, t.name, trash.name
                ));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ws(yaml: &str) -> Workspace {
        let spec = crate::model::parse::from_text(yaml, "test").unwrap();
        crate::model::validate_snapshot(&spec).unwrap().remove(0)
    }

    #[test]
    fn a_clean_workspace_has_no_findings() {
        let w = ws("workspaces:
  - id: w
    users: [{ id: u, bindings: [{ role: admin }] }]
");
        assert_eq!(lint(&w), Vec::<String>::new());
    }

    #[test]
    fn each_finding_names_its_items() {
        let w = ws("workspaces:
  - id: w
    catalog: none
    types:
      - { name: manual, actions: [create, read, update, delete], feature: manuals }
      - { name: manuals_trash, actions: [restore], feature: manuals }
    roles:
      - { id: boss, grants: [\"*:*\"] }
      - { id: old, grants: [\"manual:read\"], disabled: true }
      - { id: cleaner, grants: [\"manual:delete\"] }
      - { id: idle, name: Idle, grants: [\"manual:read\"] }
      - { id: ed-a, name: Editor, organization: a, grants: [\"manual:read\"] }
      - { id: ed-b, name: Editor, organization: b, grants: [\"manual:read\"] }
    users:
      - { id: u-boss, bindings: [{ role: boss }] }
      - { id: u-old, bindings: [{ role: old }] }
      - { id: u-clean, bindings: [{ role: cleaner }, { role: ed-a }, { role: ed-b }] }
");
        let found = lint(&w);
        let want = [
            "user \"u-old\" holds only disabled roles (old)",
            "role \"idle\" (Idle) is not bound",
            "roles \"ed-a\" (organization \"a\"), \"ed-b\" (organization \"b\") share the name \"Editor\"",
            "role \"cleaner\" grants manual:delete but not manuals_trash:restore",
        ];
        for w in want {
            assert!(
                found.iter().any(|f| f.contains(w)),
                "{w:?} not in {found:#?}"
            );
        }
        assert_eq!(found.len(), want.len(), "{found:#?}");
    }
}
