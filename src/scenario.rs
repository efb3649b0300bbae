//! Scenario files (SPEC 6): a snapshot plus the decisions, lists and
//! subject lists that must follow from it, or the error it must be refused
//! with. Used by `rolecall test` and by the test suites (which also replay
//! them over gRPC).

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::engine::{Explanation, Reason, ResourceQuery, Snapshot};
use crate::model::map_only::{map_only, MapOnly};
use crate::model::parse::yaml_problem;
use crate::model::{InvalidSnapshot, Problem, SnapshotSpec};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// A piece of the error the snapshot must be rejected with.
    #[serde(default)]
    pub reject: Option<String>,
    /// Kept raw, so that a snapshot with unknown fields is a scenario
    /// outcome, not a scenario file error.
    pub snapshot: serde_norway::Value,
    /// What is wrong with the snapshot as typed data, placed at its line
    /// in the file; read with the scenario (the raw value has no lines).
    #[serde(skip)]
    snapshot_problem: Option<Problem>,
    #[serde(default)]
    pub checks: Vec<CheckCase>,
    #[serde(default)]
    pub lists: Vec<ListCase>,
    #[serde(default)]
    pub subjects: Vec<SubjectsCase>,
}

/// `type:id`, or a resource not yet created.
#[derive(Debug, Clone)]
pub enum ResourceCase {
    Key(String),
    New {
        type_: String,
        parent: Option<String>,
        labels: Vec<String>,
    },
}

/// The map form of [`ResourceCase`]: a resource not yet created.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewResource {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
}

// By hand rather than `untagged`, whose one error ("did not match any
// variant") would hide the misspelt field of a map.
impl<'de> Deserialize<'de> for ResourceCase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ResourceCase;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "\"type:id\" for an existing resource, or { type, parent, labels } for one \
                     not created yet",
                )
            }

            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<ResourceCase, E> {
                Ok(ResourceCase::Key(key.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ResourceCase, A::Error> {
                let n =
                    NewResource::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ResourceCase::New {
                    type_: n.type_,
                    parent: n.parent,
                    labels: n.labels,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl ResourceCase {
    pub fn query(&self) -> Option<ResourceQuery<'_>> {
        match self {
            ResourceCase::Key(k) => ResourceQuery::parse_key(k),
            ResourceCase::New {
                type_,
                parent,
                labels,
            } => Some(ResourceQuery::New {
                type_,
                parent: parent.as_deref(),
                labels,
            }),
        }
    }
}

impl fmt::Display for ResourceCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceCase::Key(k) => f.write_str(k),
            ResourceCase::New {
                type_,
                parent,
                labels,
            } => {
                write!(f, "new {type_}")?;
                if let Some(p) = parent {
                    write!(f, " under {p}")?;
                }
                if !labels.is_empty() {
                    write!(f, " labelled {}", labels.join(","))?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckCase {
    pub workspace: String,
    pub subject: String,
    pub action: String,
    pub resource: ResourceCase,
    pub allowed: bool,
    /// The rule that must decide it (`no_reach`, `unknown_subject`, ...):
    /// so that a denial expected for one reason cannot pass for another,
    /// such as a misspelt user id.
    #[serde(default)]
    pub reason: Option<Reason>,
}

impl CheckCase {
    /// `reason: granted` goes with `allowed: true` only, and the other
    /// reasons with `allowed: false`.
    fn check_shape(&self) -> Result<(), String> {
        match self.reason {
            Some(r) if (r == Reason::Granted) != self.allowed => Err(format!(
                "check {} {} {} {}: reason {} contradicts allowed: {}",
                self.workspace,
                self.subject,
                self.action,
                self.resource,
                r.as_str(),
                self.allowed
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCase {
    pub workspace: String,
    pub subject: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default = "read")]
    pub action: String,
    #[serde(default)]
    pub parent: Option<String>,
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectsCase {
    pub workspace: String,
    pub action: String,
    pub resource: String,
    pub users: Vec<String>,
}

fn read() -> String {
    "read".to_string()
}

impl Scenario {
    /// The snapshot as typed data (unknown fields are errors here).
    pub fn snapshot_spec(&self) -> Result<SnapshotSpec, InvalidSnapshot> {
        serde_norway::from_value(self.snapshot.clone())
            .map(|m: MapOnly<SnapshotSpec>| m.0)
            .map_err(|e| InvalidSnapshot {
                problems: vec![self
                    .snapshot_problem
                    .clone()
                    .unwrap_or_else(|| yaml_problem(e, "snapshot"))],
            })
    }

    /// Validates and indexes the snapshot.
    pub fn build(&self) -> Result<Snapshot, InvalidSnapshot> {
        Snapshot::from_spec(&self.snapshot_spec()?)
    }

    fn cases(&self) -> usize {
        self.checks.len() + self.lists.len() + self.subjects.len()
    }

    /// A scenario either expects its snapshot refused (`reject`) or has
    /// cases to run on it (SPEC 6: `reject` comes "instead of cases").
    fn check_shape(&self) -> Result<(), String> {
        self.checks.iter().try_for_each(CheckCase::check_shape)?;
        match (&self.reject, self.cases()) {
            (Some(_), 0) | (None, 1..) => Ok(()),
            (Some(_), _) => Err(
                "`reject` comes instead of cases: a snapshot that must be refused has no \
                 checks, lists or subjects to run"
                    .to_string(),
            ),
            (None, 0) => Err("no cases: give checks, lists or subjects, or `reject`".to_string()),
        }
    }
}

/// Reads every scenario (YAML documents separated by `---`) of a file; the
/// first malformed one is the file's error.
pub fn read_file(path: &Path) -> Result<Vec<Scenario>, String> {
    read_each(path)?.into_iter().collect()
}

/// Reads a file's scenarios one by one, so that one malformed scenario
/// does not hide the others. A file that cannot be read, or that holds no
/// scenario, is an error; each malformed scenario is one, naming the file,
/// the document and the place.
pub fn read_each(path: &Path) -> Result<Vec<Result<Scenario, String>>, String> {
    let file = path.display();
    let max = crate::model::parse::MAX_SNAPSHOT_FILE_BYTES;
    let text = crate::model::parse::read_text_at_most(path, max)
        .map_err(|e| format!("{file}: {e}"))?
        .ok_or_else(|| format!("{file}: more than {max} bytes, the limit of a scenario file"))?;
    let scenarios = parse_each(&text, &file.to_string()).map_err(|e| format!("{file}: {e}"))?;
    if scenarios.is_empty() {
        return Err(format!("{file}: holds no scenario"));
    }
    Ok(scenarios
        .into_iter()
        .map(|s| s.map_err(|e| format!("{file}: {e}")))
        .collect())
}

/// Parses every scenario of a text; the first malformed one is the error.
pub fn parse(text: &str) -> Result<Vec<Scenario>, String> {
    parse_each(text, "scenario")?.into_iter().collect()
}

/// Parses each document of a text as a scenario, skipping empty ones. The
/// outer error is YAML that cannot be split into documents at all. A
/// snapshot's problem is placed at `origin:line:column`.
fn parse_each(text: &str, origin: &str) -> Result<Vec<Result<Scenario, String>>, String> {
    // A first pass finds the empty documents (a leading or trailing
    // `---`); the second reads the others straight into scenarios, so
    // errors carry their line and column.
    let mut empty = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = serde_norway::Value::deserialize(doc).map_err(|e| e.to_string())?;
        empty.push(value.is_null());
    }
    // A third reads each snapshot as typed data, for the line of its error.
    let snapshot_problems =
        serde_norway::Deserializer::from_str(text).map(|doc| TypedSnapshot::deserialize(doc).err());
    let documents = serde_norway::Deserializer::from_str(text);
    Ok(documents
        .zip(empty)
        .zip(snapshot_problems)
        .enumerate()
        .filter(|(_, ((_, empty), _))| !empty)
        .map(|(i, ((doc, _), snapshot_error))| {
            let place = format!("document {}", i + 1);
            let mut s = Scenario::deserialize(doc).map_err(|e| format!("{place}: {e}"))?;
            s.check_shape()
                .map_err(|e| format!("{place}, scenario \"{}\": {e}", s.name))?;
            s.snapshot_problem = snapshot_error.map(|e| yaml_problem(e, origin));
            Ok(s)
        })
        .collect())
}

/// A scenario's snapshot alone, as typed data (its other fields ignored).
#[derive(Deserialize)]
struct TypedSnapshot {
    #[serde(rename = "snapshot", deserialize_with = "map_only")]
    _snapshot: SnapshotSpec,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub label: String,
    /// `None` when the case passed; otherwise what went wrong.
    pub failure: Option<String>,
}

/// Runs one scenario against the engine.
pub fn run(s: &Scenario) -> Vec<CaseResult> {
    let built = s.build();
    if let Some(want) = &s.reject {
        let label = format!("rejected with \"{want}\"");
        let failure = match built {
            Ok(_) => Some("the snapshot was accepted".to_string()),
            Err(e) if e.to_string().contains(want.as_str()) => None,
            Err(e) => Some(format!(
                "rejected, but the error does not mention \"{want}\": {e}"
            )),
        };
        return vec![CaseResult { label, failure }];
    }
    let snap = match built {
        Ok(s) => s,
        Err(e) => {
            return vec![CaseResult {
                label: "snapshot is valid".to_string(),
                failure: Some(e.to_string()),
            }]
        }
    };
    let mut out = Vec::new();
    for c in &s.checks {
        let label = format!(
            "check {} {} {} {} -> {}{}",
            c.workspace,
            c.subject,
            c.action,
            c.resource,
            if c.allowed { "allow" } else { "deny" },
            c.reason
                .map(|r| format!(" ({})", r.as_str()))
                .unwrap_or_default()
        );
        let failure = match check(&snap, c) {
            Ok((got, _))
                if (got == Reason::Granted) == c.allowed && c.reason.is_none_or(|r| r == got) =>
            {
                None
            }
            Ok((got, why)) => Some(format!(
                "got {} by rule {} ({why})",
                if got == Reason::Granted {
                    "allow"
                } else {
                    "deny"
                },
                got.as_str()
            )),
            Err(e) => Some(e),
        };
        out.push(CaseResult { label, failure });
    }
    for l in &s.lists {
        let label = format!(
            "list {} {} {} {}{} -> [{}]",
            l.workspace,
            l.subject,
            l.type_,
            l.action,
            l.parent
                .as_deref()
                .map(|p| format!(" under {p}"))
                .unwrap_or_default(),
            l.ids.join(", ")
        );
        let failure = match list(&snap, l) {
            Ok(got) => compare_sorted(&l.ids, got),
            Err(e) => Some(e),
        };
        out.push(CaseResult { label, failure });
    }
    for c in &s.subjects {
        let label = format!(
            "subjects {} {} {} -> [{}]",
            c.workspace,
            c.action,
            c.resource,
            c.users.join(", ")
        );
        let failure = match subjects(&snap, c) {
            Ok(got) => compare_sorted(&c.users, got),
            Err(e) => Some(e),
        };
        out.push(CaseResult { label, failure });
    }
    out
}

/// Compares two id lists as sorted lists.
pub fn compare_sorted(want: &[String], mut got: Vec<String>) -> Option<String> {
    let mut want = want.to_vec();
    want.sort();
    got.sort();
    (want != got).then(|| format!("got [{}]", got.join(", ")))
}

/// The rule that decided, and why in words.
fn check(snap: &Snapshot, c: &CheckCase) -> Result<(Reason, String), String> {
    let e = explain(snap, &c.workspace, &c.subject, &c.action, &c.resource)?;
    Ok((e.decision.reason, e.message))
}

/// One check on a snapshot, explained; the error is a question that
/// cannot be asked (an unknown workspace, type or action).
pub fn explain(
    snap: &Snapshot,
    workspace: &str,
    subject: &str,
    action: &str,
    resource: &ResourceCase,
) -> Result<Explanation, String> {
    let ws = snap
        .workspace(workspace)
        .ok_or_else(|| format!("unknown workspace {workspace}"))?;
    let q = resource
        .query()
        .ok_or_else(|| format!("resource \"{resource}\" must be written type:id"))?;
    let (t, resolved) = ws.resolve(&q).map_err(|e| e.to_string())?;
    let perm = ws.perm_of(t, action).map_err(|e| e.to_string())?;
    Ok(ws.explain(subject, action, perm, &q, &resolved))
}

/// Walks the list a page at a time (page size 1, to exercise the cursor)
/// and checks that the whole list, in one page, is the same.
fn list(snap: &Snapshot, l: &ListCase) -> Result<Vec<String>, String> {
    let ws = snap
        .workspace(&l.workspace)
        .ok_or_else(|| format!("unknown workspace {}", l.workspace))?;
    let whole = ws
        .list_visible(
            &l.subject,
            &l.type_,
            &l.action,
            l.parent.as_deref(),
            None,
            usize::MAX,
        )
        .map_err(|e| e.to_string())?;
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ws
            .list_visible(
                &l.subject,
                &l.type_,
                &l.action,
                l.parent.as_deref(),
                after.as_deref(),
                1,
            )
            .map_err(|e| e.to_string())?;
        paged.extend(page.items);
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    if paged != whole.items {
        return Err(format!(
            "paging by one gives [{}] but one page gives [{}]",
            paged.join(", "),
            whole.items.join(", ")
        ));
    }
    let mut sorted = whole.items.clone();
    sorted.sort();
    if sorted != whole.items {
        return Err("ids are not in ascending order".to_string());
    }
    Ok(whole.items)
}

fn subjects(snap: &Snapshot, c: &SubjectsCase) -> Result<Vec<String>, String> {
    let ws = snap
        .workspace(&c.workspace)
        .ok_or_else(|| format!("unknown workspace {}", c.workspace))?;
    let q = ResourceQuery::parse_key(&c.resource)
        .ok_or_else(|| format!("resource \"{}\" must be written type:id", c.resource))?;
    let (t, resolved) = ws.resolve(&q).map_err(|e| e.to_string())?;
    let perm = ws.perm_of(t, &c.action).map_err(|e| e.to_string())?;
    let page = ws.list_subjects(perm, &resolved, None, usize::MAX);
    Ok(page.items.into_iter().map(|s| s.user).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = "snapshot: { workspaces: [ { id: w, users: [ { id: u, bindings: [ { role: viewer } ] } ], resources: [ { type: mini, id: m } ] } ] }";

    fn each(text: &str) -> Vec<Result<Scenario, String>> {
        match parse_each(text, "scenario") {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn error_of(text: &str) -> String {
        match each(text).pop() {
            Some(Err(e)) => e,
            other => panic!("expected one malformed scenario, got {other:?}"),
        }
    }

    #[test]
    fn a_malformed_scenario_is_named_and_hides_no_other() {
        let text = format!(
            "---\nname: good\n{SNAPSHOT}\nchecks:\n  - {{ workspace: w, subject: u, action: read, resource: \"mini:m\", allowed: true }}\n---\nname: typo\n{SNAPSHOT}\nchecks:\n  - {{ workspace: w, subject: u, action: read, resource: \"mini:m\", alowed: true }}\n---\n"
        );
        let scenarios = each(&text);
        assert_eq!(scenarios.len(), 2, "the empty last document is skipped");
        assert!(matches!(&scenarios[0], Ok(s) if s.name == "good"));
        let Err(e) = &scenarios[1] else {
            panic!("the typo was read")
        };
        assert!(
            e.starts_with("document 2: checks[0]: unknown field `alowed`"),
            "{e}"
        );
        assert!(e.contains("line 10"), "{e}");
        assert!(parse(&text).is_err(), "the strict reader refuses the file");
    }

    #[test]
    fn the_new_resource_form_refuses_unknown_fields() {
        for (resource, says) in [
            ("{ type: mini, lables: [x] }", "unknown field `lables`"),
            ("{ type: mini, id: m }", "unknown field `id`"),
            ("5", "expected \"type:id\" for an existing resource"),
        ] {
            let e = error_of(&format!(
                "name: s\n{SNAPSHOT}\nchecks:\n  - {{ workspace: w, subject: u, action: read, resource: {resource}, allowed: false }}\n"
            ));
            assert!(e.contains(says), "{resource}: {e}");
        }
    }

    #[test]
    fn reject_comes_instead_of_cases_and_a_scenario_needs_one_or_the_other() {
        let e = error_of(&format!(
            "name: both\nreject: min_admins\n{SNAPSHOT}\nchecks:\n  - {{ workspace: w, subject: u, action: read, resource: \"mini:m\", allowed: true }}\n"
        ));
        assert!(
            e.contains("scenario \"both\": `reject` comes instead of cases"),
            "{e}"
        );
        let e = error_of(&format!("name: none\n{SNAPSHOT}\n"));
        assert!(e.contains("scenario \"none\": no cases"), "{e}");
        assert!(each("").is_empty());
        assert!(each("---\n---\n").is_empty());
    }

    #[test]
    fn a_failed_check_says_why_the_engine_decided_otherwise() {
        let text = format!(
            "name: s\n{SNAPSHOT}\nchecks:\n  - {{ workspace: w, subject: u, action: update, resource: \"mini:m\", allowed: true }}\n"
        );
        let s = match parse(&text) {
            Ok(mut s) => s.remove(0),
            Err(e) => panic!("{e}"),
        };
        let results = run(&s);
        assert_eq!(
            results[0].failure.as_deref(),
            Some("got deny by rule no_grant (no binding of u grants update on mini:m)")
        );
    }

    fn results_of(cases: &str) -> Vec<CaseResult> {
        match parse(&format!("name: s\n{SNAPSHOT}\nchecks:\n{cases}")) {
            Ok(s) => run(&s[0]),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_denial_for_another_reason_than_the_one_named_fails() {
        let results = results_of(
            "  - { workspace: w, subject: u, action: read, resource: \"mini:m\", allowed: true, reason: granted }\n\
             \x20 - { workspace: w, subject: u-typo, action: update, resource: \"mini:m\", allowed: false }\n\
             \x20 - { workspace: w, subject: u-typo, action: update, resource: \"mini:m\", allowed: false, reason: no_grant }\n\
             \x20 - { workspace: w, subject: u, action: update, resource: \"mini:m\", allowed: false, reason: no_grant }\n",
        );
        let failures: Vec<Option<&str>> = results.iter().map(|r| r.failure.as_deref()).collect();
        assert_eq!(
            failures,
            [
                None,
                None,
                Some("got deny by rule unknown_subject (u-typo is not a user of workspace w)"),
                None
            ]
        );
        assert_eq!(
            results[3].label,
            "check w u update mini:m -> deny (no_grant)"
        );
    }

    #[test]
    fn a_snapshot_s_typo_is_placed_at_its_line() {
        let text = format!(
            "name: fine\n{SNAPSHOT}\nchecks:\n  - {{ workspace: w, subject: u, action: read, resource: \"mini:m\", allowed: true }}\n---\n\
             name: typo\nsnapshot:\n  workspaces:\n    - id: w\n      users:\n        - {{ id: u, bindingz: [] }}\n\
             checks:\n  - {{ workspace: w, subject: u, action: read, resource: \"mini:m\", allowed: true }}\n"
        );
        let scenarios = match parse(&text) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(run(&scenarios[0]).iter().all(|r| r.failure.is_none()));
        let failure = run(&scenarios[1]).remove(0).failure.unwrap_or_default();
        assert!(
            failure.contains("scenario:11:")
                && failure.contains("users[0]: unknown field `bindingz`"),
            "{failure}"
        );
    }

    #[test]
    fn a_reason_must_agree_with_allowed_and_be_a_rule() {
        for (case, says) in [
            (
                "allowed: false, reason: granted",
                "reason granted contradicts allowed: false",
            ),
            (
                "allowed: true, reason: no_grant",
                "reason no_grant contradicts allowed: true",
            ),
            (
                "allowed: false, reason: nope",
                "unknown variant `nope`, expected one of",
            ),
        ] {
            let e = error_of(&format!(
                "name: s\n{SNAPSHOT}\nchecks:\n  - {{ workspace: w, subject: u, action: read, resource: \"mini:m\", {case} }}\n"
            ));
            assert!(e.contains(says), "{case}: {e}");
        }
    }
}
