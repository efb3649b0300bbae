//! Resource deltas on the incremental path against a full rebuild and the
//! oracle: random sequences of upserts and removals (valid and not, with
//! now and then a change that forces a rebuild) applied one after another,
//! so the overlay grows across revisions.
//!
//! After each delta: the sidecar's path (`Snapshot::apply`) and a rebuild
//! from the spec (`apply_update`) accept or reject it alike, build the same
//! model, and the result answers every check and list as the oracle does.

use std::borrow::Cow;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use rolecall::engine::{CompiledWorkspace, Snapshot};
use rolecall::model::delta::{apply_update, Change, Delta, Update, UpdateBody, UpdateSource};
use rolecall::model::spec::{ResourceSpec, SnapshotSpec, WorkspaceSpec};

use super::reference::Oracle;
use super::strategy::{Built, WorkspacePlan};
use super::{checks_agree_on, compile, lists_agree_on};

const IMPLICIT: [&str; 5] = ["workspace", "user", "group", "label", "role"];

/// One change, its targets picked (modulo) among what exists when it runs.
#[derive(Debug, Clone)]
pub enum ChangePlan {
    Upsert {
        ty: usize,
        /// Past the existing ids of the type: a new id.
        id: usize,
        /// Past the possible parents: a parent that does not exist.
        parent: usize,
        /// Bits over the workspace's labels; bit 7 adds an unknown label.
        labels: u8,
    },
    /// Past the existing resources: one that does not exist.
    Remove(usize),
    /// Not a resource change: the delta takes the full path.
    AddLabel(u8),
}

fn change_plan() -> impl Strategy<Value = ChangePlan> {
    prop_oneof![
        6 => (0usize..16, 0usize..40, 0usize..40, any::<u8>()).prop_map(
            |(ty, id, parent, labels)| ChangePlan::Upsert { ty, id, parent, labels }
        ),
        4 => (0usize..40).prop_map(ChangePlan::Remove),
        1 => any::<u8>().prop_map(ChangePlan::AddLabel),
    ]
}

/// Up to six deltas of one to four changes.
pub fn delta_plans() -> impl Strategy<Value = Vec<Vec<ChangePlan>>> {
    proptest::collection::vec(proptest::collection::vec(change_plan(), 1..=4), 1..=6)
}

/// The changes of one delta, resolved against the current spec.
fn changes(spec: &WorkspaceSpec, plan: &[ChangePlan]) -> Vec<Change> {
    let o = Oracle::new(spec);
    let listable: Vec<String> = o
        .type_names()
        .into_iter()
        .filter(|t| !IMPLICIT.contains(&t.as_str()))
        .collect();
    plan.iter()
        .map(|c| match c {
            ChangePlan::Upsert {
                ty,
                id,
                parent,
                labels,
            } => {
                let t = &listable[ty % listable.len()];
                let existing: Vec<String> =
                    o.all_of_type(t).into_iter().filter_map(|r| r.id).collect();
                let id = existing
                    .get(*id)
                    .cloned()
                    .unwrap_or_else(|| format!("n-{id}"));
                let parent = o.parent_type(t).map(|pt| {
                    let ps = o.all_of_type(&pt);
                    match ps.get(parent % (ps.len() + 1)) {
                        Some(p) => format!("{pt}:{}", p.id.clone().unwrap_or_default()),
                        None => format!("{pt}:no-such-parent"),
                    }
                });
                let mut ls: Vec<String> = spec
                    .labels
                    .iter()
                    .take(7)
                    .enumerate()
                    .filter(|(i, _)| labels & (1 << i) != 0)
                    .map(|(_, l)| l.clone())
                    .collect();
                if labels & 0x80 != 0 {
                    ls.push("no-such-label".to_string());
                }
                Change::UpsertResource(ResourceSpec {
                    type_: t.clone(),
                    id,
                    parent,
                    labels: ls,
                })
            }
            ChangePlan::Remove(i) => match spec.resources.get(i % (spec.resources.len() + 1)) {
                Some(r) => Change::RemoveResource(format!("{}:{}", r.type_, r.id)),
                None => Change::RemoveResource("mini:no-such-mini".to_string()),
            },
            ChangePlan::AddLabel(i) => Change::UpsertLabel(format!("extra-{i}")),
        })
        .collect()
}

pub fn deltas_agree(plan: &WorkspacePlan, steps: &[Vec<ChangePlan>]) -> Result<(), TestCaseError> {
    let built = plan.build("ws-a");
    let mut snap = compile(&SnapshotSpec {
        workspaces: vec![built.spec.clone()],
    })?;
    for step in steps {
        let current = snap
            .workspace("ws-a")
            .ok_or_else(|| TestCaseError::fail("workspace missing"))?
            .model
            .to_spec()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let update = Update {
            request_id: "t".into(),
            source: UpdateSource::Admin,
            expected_revision: None,
            body: UpdateBody::Delta(Delta {
                workspace: "ws-a".into(),
                changes: changes(&current, step),
            }),
        };
        let fast = snap.apply(&update);
        let full = apply_update(
            |id| (id == "ws-a").then_some(Cow::Borrowed(&current)),
            &update,
        );
        let (fast, full) = match (fast, full) {
            (Ok(mut a), Ok(mut b)) => (a.remove(0), CompiledWorkspace::new(b.remove(0))),
            (Err(a), Err(b)) => {
                prop_assert_eq!(a.problems, b.problems);
                continue;
            }
            (a, b) => {
                return Err(TestCaseError::fail(format!(
                    "the paths disagree on {update:?}: sidecar {:?}, rebuild {:?}",
                    a.err(),
                    b.err()
                )))
            }
        };
        let spec_of = |w: &CompiledWorkspace| {
            w.model
                .to_spec()
                .map_err(|e| TestCaseError::fail(e.to_string()))
        };
        let spec = spec_of(&fast)?;
        prop_assert_eq!(&spec, &spec_of(&full)?, "{:?}", update);
        let resource_only = step.iter().all(|c| !matches!(c, ChangePlan::AddLabel(_)));
        let before = snap
            .workspace("ws-a")
            .ok_or_else(|| TestCaseError::fail("workspace missing"))?;
        prop_assert_eq!(
            std::ptr::eq(before.model.resources.base(), fast.model.resources.base()),
            resource_only,
            "a valid resource delta takes the incremental path, any other a rebuild"
        );
        prop_assert_eq!(
            fast.model.listed_resources(),
            spec.resources.len(),
            "resource count"
        );
        checks_agree_on(
            &fast,
            &Built {
                spec: spec.clone(),
                news: Vec::new(),
            },
        )?;
        lists_agree_on(&fast, &spec)?;
        snap.insert(std::sync::Arc::new(fast));
    }
    Ok(())
}

/// The sidecar's path must not be a rebuild in disguise: a resource delta
/// on a workspace leaves its base table shared with the revision before.
#[test]
#[allow(clippy::expect_used)]
fn a_resource_delta_shares_the_base_table() {
    let spec: SnapshotSpec = serde_norway::from_str(
        "workspaces:\n  - id: w\n    users: [{ id: u, bindings: [{ role: admin }] }]\n    resources:\n      - { type: mini, id: m-1 }\n",
    )
    .expect("valid yaml");
    let snap = Snapshot::from_spec(&spec).expect("valid");
    let update = Update {
        request_id: "t".into(),
        source: UpdateSource::Admin,
        expected_revision: None,
        body: UpdateBody::Delta(Delta {
            workspace: "w".into(),
            changes: vec![Change::UpsertResource(ResourceSpec {
                type_: "record".into(),
                id: "r-1".into(),
                parent: Some("mini:m-1".into()),
                labels: Vec::new(),
            })],
        }),
    };
    let next = snap.apply(&update).expect("applies").remove(0);
    let before = snap.workspace("w").expect("w");
    assert!(std::ptr::eq(
        before.model.resources.base(),
        next.model.resources.base()
    ));
    assert!(std::sync::Arc::ptr_eq(
        &before.model.users,
        &next.model.users
    ));
    assert_eq!(next.model.listed_resources(), 2);
}
