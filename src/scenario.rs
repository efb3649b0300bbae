//! Scenario files (SPEC 6): a snapshot plus the decisions, lists and
//! subject lists that must follow from it, or the error it must be refused
//! with. Used by `rolecall test` and by the test suites (which also replay
//! them over gRPC).

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::engine::{ResourceQuery, Snapshot};
use crate::model::{InvalidSnapshot, SnapshotSpec};

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
    #[serde(default)]
    pub checks: Vec<CheckCase>,
    #[serde(default)]
    pub lists: Vec<ListCase>,
    #[serde(default)]
    pub subjects: Vec<SubjectsCase>,
}

/// `type:id`, or a resource not yet created.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ResourceCase {
    Key(String),
    New {
        #[serde(rename = "type")]
        type_: String,
        #[serde(default)]
        parent: Option<String>,
        #[serde(default)]
        labels: Vec<String>,
    },
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
        serde_norway::from_value(self.snapshot.clone()).map_err(|e| InvalidSnapshot {
            problems: vec![crate::model::Problem::new(
                if e.to_string().contains("unknown field") {
                    crate::model::Rule::UnknownField
                } else {
                    crate::model::Rule::Syntax
                },
                "snapshot",
                e.to_string(),
            )],
        })
    }

    /// Validates and indexes the snapshot.
    pub fn build(&self) -> Result<Snapshot, InvalidSnapshot> {
        Snapshot::from_spec(&self.snapshot_spec()?)
    }
}

/// Reads every scenario (YAML documents separated by `---`) of a file.
pub fn read_file(path: &Path) -> Result<Vec<Scenario>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<Vec<Scenario>, String> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = serde_norway::Value::deserialize(doc).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        out.push(serde_norway::from_value(value).map_err(|e| e.to_string())?);
    }
    Ok(out)
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
            "check {} {} {} {} -> {}",
            c.workspace,
            c.subject,
            c.action,
            c.resource,
            if c.allowed { "allow" } else { "deny" }
        );
        let failure = match check(&snap, c) {
            Ok(got) if got == c.allowed => None,
            Ok(got) => Some(format!("got {}", if got { "allow" } else { "deny" })),
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

fn check(snap: &Snapshot, c: &CheckCase) -> Result<bool, String> {
    let ws = snap
        .workspace(&c.workspace)
        .ok_or_else(|| format!("unknown workspace {}", c.workspace))?;
    let q = c
        .resource
        .query()
        .ok_or_else(|| format!("resource \"{}\" must be written type:id", c.resource))?;
    let (t, resolved) = ws.resolve(&q).map_err(|e| e.to_string())?;
    let perm = ws.perm_of(t, &c.action).map_err(|e| e.to_string())?;
    Ok(ws.decide(&c.subject, perm, &resolved).allowed())
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
