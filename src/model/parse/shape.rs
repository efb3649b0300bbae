//! Every element of a snapshot file that does not fit the format, not only
//! the first.
//!
//! serde's typed reading stops at the first field it cannot read. When that
//! happens on text that is well-formed YAML or JSON, the text is read again
//! as a plain tree (which keeps the file's order, tags and scalars as
//! written), and each list element (workspace, type, role, label, group,
//! user, resource) is written back as text in the file's format and read
//! again on its own, by the same typed reading. So an element is refused
//! here exactly when the whole file's reading would refuse it, with the
//! same message, and `rolecall validate` lists every misspelt field and
//! wrong value at once, each with its path. The tree takes several times
//! the text's memory, so a file over [`MAX_SHAPE_CHECK_BYTES`] gets its
//! first problem only.

use serde::de::DeserializeOwned;
use serde_norway::Value;

use crate::model::map_only::MapOnly;
use crate::model::spec::{
    GroupSpec, ResourceSpec, RoleSpec, SnapshotSpec, TypeSpec, UserSpec, WorkspaceSpec,
};

/// The largest text whose problems are all looked for (16 MiB: far more
/// than a hand-written file).
pub const MAX_SHAPE_CHECK_BYTES: usize = 16 * 1024 * 1024;

/// The text format of a file, which its elements are written back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// One element that does not fit: its path from the top of the file
/// (`workspaces[0].users[3]`; empty for the top) and what the typed reading
/// of it said, with the path inside the element if the reader gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub path: String,
    pub said: String,
}

impl Misfit {
    /// The message as the whole file's typed reading would word it.
    pub fn message(&self) -> String {
        if self.path.is_empty() {
            self.said.clone()
        } else if self.said.starts_with('[') {
            format!("{}{}", self.path, self.said)
        } else if starts_with_path(&self.said) {
            format!("{}.{}", self.path, self.said)
        } else {
            format!("{}: {}", self.path, self.said)
        }
    }
}

/// The names of a workspace's lists, whose elements are checked one by one.
pub const LIST_NAMES: [&str; 6] = ["types", "roles", "labels", "groups", "users", "resources"];

/// Why an element does not fit, if it does not.
type Check = fn(&Value, Format) -> Option<String>;

/// The check of one element of each list of [`LIST_NAMES`].
const CHECKS: [Check; 6] = [
    reread::<MapOnly<TypeSpec>>,
    reread::<MapOnly<RoleSpec>>,
    reread::<String>,
    reread::<MapOnly<GroupSpec>>,
    reread::<MapOnly<UserSpec>>,
    reread::<MapOnly<ResourceSpec>>,
];

/// Each element of `tree` (a snapshot file read as a plain tree) that the
/// typed reading refuses, in the file's order: a workspace's own fields
/// before its lists. Lists are checked element by element and then left
/// out of their parent's check, so each problem is found once, at the
/// innermost element that has it.
pub fn misfits(mut tree: Value, format: Format) -> Vec<Misfit> {
    let mut found = Vec::new();
    let workspaces = take_list(&mut tree, "workspaces");
    if let Some(said) = reread::<MapOnly<SnapshotSpec>>(&tree, format) {
        found.push(Misfit {
            path: String::new(),
            said,
        });
    }
    for (i, mut w) in workspaces.into_iter().flatten().enumerate() {
        let at = format!("workspaces[{i}]");
        let mut in_lists = Vec::new();
        let names: Vec<String> = match &w {
            Value::Mapping(m) => m
                .keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        // In the file's order of the lists.
        for name in names {
            let Some(check) = LIST_NAMES
                .iter()
                .position(|list| *list == name)
                .map(|i| CHECKS[i])
            else {
                continue;
            };
            for (j, item) in take_list(&mut w, &name).into_iter().flatten().enumerate() {
                if let Some(said) = check(&item, format) {
                    in_lists.push(Misfit {
                        path: format!("{at}.{name}[{j}]"),
                        said,
                    });
                }
            }
        }
        if let Some(said) = reread::<MapOnly<WorkspaceSpec>>(&w, format) {
            found.push(Misfit { path: at, said });
        }
        found.append(&mut in_lists);
    }
    found
}

/// Takes the list `v.name` out, leaving `[]` in its place; `None` when
/// `v` has no such field or it is not a list (its parent's check says so).
fn take_list(v: &mut Value, name: &str) -> Option<Vec<Value>> {
    match v.get_mut(name)? {
        Value::Sequence(items) => Some(std::mem::take(items)),
        _ => None,
    }
}

/// What the typed reading says of `v` written back as text, if it refuses
/// it; the reader's place in that text is left out (it is not the file's).
fn reread<T: DeserializeOwned>(v: &Value, format: Format) -> Option<String> {
    let said = match format {
        Format::Json => {
            let text = serde_json::to_string(v).ok()?;
            serde_json::from_str::<T>(&text).err()?.to_string()
        }
        Format::Yaml => {
            let text = serde_norway::to_string(v).ok()?;
            serde_norway::from_str::<T>(&text).err()?.to_string()
        }
    };
    Some(without_place(said))
}

/// `message` without the " at line L column C" a reader ends it with.
fn without_place(message: String) -> String {
    if let Some(at) = message.rfind(" at line ") {
        let rest = &message[at + " at line ".len()..];
        let mut parts = rest.splitn(2, " column ");
        let digits = |s: Option<&str>| {
            s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        };
        if digits(parts.next()) && digits(parts.next()) {
            return message[..at].to_string();
        }
    }
    message
}

/// Whether `said` opens with a reader's path inside the element (`status:`,
/// `bindings[0].scope:`): names, indexes and dots up to ": ". serde's own
/// messages open with words ("unknown field", "invalid type: ...").
fn starts_with_path(said: &str) -> bool {
    let Some((head, _)) = said.split_once(": ") else {
        return false;
    };
    !head.is_empty()
        && head
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Value {
        serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn messages(yaml: &str) -> Vec<String> {
        misfits(tree(yaml), Format::Yaml)
            .iter()
            .map(Misfit::message)
            .collect()
    }

    #[test]
    fn every_misfit_is_found_once_with_its_path_in_the_files_order() {
        let got = messages(
            "workspaces:
  - id: a
    colour: red
    labels: [site-a, [nested]]
    users:
      - { id: u-1, rol: [x] }
      - { id: u-2 }
      - { id: u-3, status: sleepy }
      - { id: u-4, bindings: [{ role: r, scop: workspace }] }
  - id: b
    resources:
      - { type: record, id: r-1, labls: [a] }
      - [record, r-2]
extra: 1
",
        );
        assert!(got[0].starts_with("unknown field `extra`"), "{got:#?}");
        let paths: Vec<&str> = got[1..]
            .iter()
            .map(|m| m.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            paths,
            [
                "workspaces[0]",
                "workspaces[0].labels[1]",
                "workspaces[0].users[0]",
                "workspaces[0].users[2].status",
                "workspaces[0].users[3].bindings[0]",
                "workspaces[1].resources[0]",
                "workspaces[1].resources[1]",
            ],
            "{got:#?}"
        );
        assert!(got[1].contains("unknown field `colour`"), "{got:#?}");
        assert!(got[4].contains("unknown variant `sleepy`"), "{got:#?}");
        assert!(
            got[7].contains(crate::model::map_only::EXPECTING),
            "{got:#?}"
        );
    }

    #[test]
    fn what_the_typed_reading_takes_is_no_misfit() {
        // Scalars YAML reads as strings, and tags.
        let text = "workspaces:
  - id: 2024
    labels: [2024, true, 1.5, site-a]
    users:
      - { id: 123 }
      - { id: !!str u-2, status: !!str active }
    roles:
      - { id: r1, name: 42, description: 3.14, grants: [] }
";
        assert_eq!(messages(text), Vec::<String>::new());
        let demo = include_str!("../../demo.yaml");
        assert_eq!(messages(demo), Vec::<String>::new());
    }

    #[test]
    fn json_keeps_its_own_reading() {
        // JSON reads no number as a string.
        let json: Value =
            serde_norway::from_str(r#"{"workspaces": [{"id": "a", "labels": [5, "b"]}]}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<String> = misfits(json, Format::Json)
            .iter()
            .map(Misfit::message)
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("workspaces[0].labels[0]: invalid type: integer `5`"),
            "{got:?}"
        );
    }

    #[test]
    fn lists_of_the_wrong_kind_are_their_parents_problem() {
        let got = messages("workspaces:\n  - id: a\n    users: {u-1: active}\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("workspaces[0]"), "{got:?}");
        let got = messages("workspaces: {a: 1}\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("workspaces:"), "{got:?}");
    }

    #[test]
    fn a_readers_place_is_cut_and_its_path_kept() {
        assert_eq!(without_place("x at line 3 column 14".into()), "x");
        assert_eq!(without_place("at line one".into()), "at line one");
        assert!(starts_with_path("bindings[0].scope: unknown variant"));
        assert!(!starts_with_path("invalid type: integer"));
        assert!(!starts_with_path("unknown field `a`, expected `b`"));
    }
}
