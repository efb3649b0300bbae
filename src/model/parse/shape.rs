//! Every element of a snapshot file that does not fit the format, not only
//! the first.
//!
//! serde's typed reading stops at the first field it cannot read. When that
//! happens on text that is well-formed YAML or JSON, the text is read again
//! as a plain tree and each list element (workspace, type, role, label,
//! group, user, resource) is tried on its own, so that `rolecall validate`
//! lists every misspelt field and wrong value at once, each with its path.
//! The tree takes several times the text's memory, so a file over
//! [`MAX_SHAPE_CHECK_BYTES`] gets its first problem only.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::map_only::MapOnly;
use crate::model::spec::{
    GroupSpec, ResourceSpec, RoleSpec, SnapshotSpec, TypeSpec, UserSpec, WorkspaceSpec,
};

/// The largest text whose problems are all looked for (16 MiB: far more
/// than a hand-written file).
pub const MAX_SHAPE_CHECK_BYTES: usize = 16 * 1024 * 1024;

/// Why an element does not fit, if it does not.
type Check = fn(Value) -> Option<String>;

/// A workspace's lists, each with the check of one element.
const LISTS: [(&str, Check); 6] = [
    ("types", fits_map::<TypeSpec>),
    ("roles", fits_map::<RoleSpec>),
    ("labels", fits::<String>),
    ("groups", fits_map::<GroupSpec>),
    ("users", fits_map::<UserSpec>),
    ("resources", fits_map::<ResourceSpec>),
];

/// Each element of `tree` (a snapshot file read as a plain tree) that the
/// typed reading refuses: `(path, message)`, in the file's order. Lists are
/// checked element by element and then left out of their parent's check,
/// so each problem is found once, at the innermost element that has it.
pub fn misfits(mut tree: Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (i, mut w) in take_list(&mut tree, "workspaces")
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("workspaces[{i}]");
        for (name, check) in LISTS {
            for (j, item) in take_list(&mut w, name).into_iter().flatten().enumerate() {
                if let Some(m) = check(item) {
                    found.push((format!("{at}.{name}[{j}]"), m));
                }
            }
        }
        if let Some(m) = fits_map::<WorkspaceSpec>(w) {
            found.push((at, m));
        }
    }
    if let Some(m) = fits_map::<SnapshotSpec>(tree) {
        // The file's top level has no path.
        found.insert(0, (String::new(), m));
    }
    found
}

/// Takes the list `v.name` out, leaving `[]` in its place; `None` when
/// `v` has no such field or it is not a list (its parent's check says so).
fn take_list(v: &mut Value, name: &str) -> Option<Vec<Value>> {
    match v.get_mut(name)? {
        Value::Array(items) => Some(std::mem::take(items)),
        _ => None,
    }
}

/// Why `v` is not a `T` read from a map, if it is not.
fn fits_map<T: DeserializeOwned>(v: Value) -> Option<String> {
    fits::<MapOnly<T>>(v)
}

fn fits<T: DeserializeOwned>(v: Value) -> Option<String> {
    T::deserialize(v).err().map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Value {
        serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_misfit_is_found_once_with_its_path() {
        let got = misfits(tree(
            "workspaces:
  - id: a
    colour: red
    users:
      - { id: u-1, rol: [x] }
      - { id: u-2 }
      - { id: u-3, status: sleepy }
    labels: [site-a, [nested]]
  - id: b
    resources:
      - { type: record, id: r-1, labls: [a] }
      - [record, r-2]
extra: 1
",
        ));
        let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "",
                "workspaces[0].labels[1]",
                "workspaces[0].users[0]",
                "workspaces[0].users[2]",
                "workspaces[0]",
                "workspaces[1].resources[0]",
                "workspaces[1].resources[1]",
            ]
        );
        let messages: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
        assert!(
            messages[0].contains("unknown field `extra`"),
            "{messages:?}"
        );
        assert!(messages[2].contains("unknown field `rol`"), "{messages:?}");
        assert!(messages[3].contains("sleepy"), "{messages:?}");
        assert!(
            messages[4].contains("unknown field `colour`"),
            "{messages:?}"
        );
        assert!(
            messages[6].contains(crate::model::map_only::EXPECTING),
            "{messages:?}"
        );
    }

    #[test]
    fn a_snapshot_that_fits_has_no_misfits() {
        let text = include_str!("../../demo.yaml");
        assert_eq!(misfits(tree(text)), Vec::<(String, String)>::new());
    }

    #[test]
    fn lists_of_the_wrong_kind_are_their_parents_problem() {
        let got = misfits(tree("workspaces:\n  - id: a\n    users: {u-1: active}\n"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "workspaces[0]");
        let got = misfits(tree("workspaces: {a: 1}\n"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "");
    }
}
