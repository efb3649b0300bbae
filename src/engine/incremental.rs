//! Resource deltas in microseconds.
//!
//! Most updates of a busy workspace upsert or remove a few resources. A
//! full rebuild (validate the whole spec, sort and index a million
//! resources) costs seconds; this applies such a delta to the resource
//! overlay instead (see [`crate::model::overlay`]) and shares everything
//! else — users, roles, the base table and its indexes — with the revision
//! before.
//!
//! It accepts only what the full path accepts, and builds the same model:
//! each resource keeps the same rules ([`check_resource`], shared with
//! validation), parents resolve against the result, and a removed resource
//! may keep no child and no binding. When any rule is broken it declines,
//! and the full path applies the delta and reports every problem in the
//! words it uses for every update. `tests/incremental.rs` checks the two
//! paths against each other on random deltas.

use rustc_hash::FxHashSet;

use super::CompiledWorkspace;
use crate::model::delta::{Change, Delta};
use crate::model::schema::TypeId;
use crate::model::validate::check_resource;
use crate::model::workspace::ResIdx;

/// Past this many changed resources the next resource delta takes the
/// full path, which folds the overlay into a new base table: every change
/// costs readers a map lookup, and a large overlay would make lists slower.
pub const MAX_OVERLAY: usize = 1 << 16;

/// `delta` applied to `cw` without a rebuild, or `None` when it must take
/// the full path: it changes more than resources, breaks a rule, or the
/// overlay is full.
pub fn apply_resource_delta(cw: &CompiledWorkspace, delta: &Delta) -> Option<CompiledWorkspace> {
    let ws = &cw.model;
    let only_resources = delta
        .changes
        .iter()
        .all(|c| matches!(c, Change::UpsertResource(_) | Change::RemoveResource(_)));
    if delta.workspace != ws.id
        || !only_resources
        || ws.resources.overlay().len() + delta.changes.len() > MAX_OVERLAY
    {
        return None;
    }
    let mut res = ws.resources.clone();
    let mut parents: Vec<(ResIdx, Option<(TypeId, &str)>)> = Vec::new();
    let mut removed: Vec<ResIdx> = Vec::new();
    // Resources whose latest upsert breaks a rule. As with the full path,
    // only the result counts: a later upsert or removal mends them.
    let mut broken: FxHashSet<ResIdx> = FxHashSet::default();
    for change in &delta.changes {
        match change {
            Change::UpsertResource(spec) => {
                let mut ok = true;
                let checked = check_resource(spec, &ws.schema, &ws.labels, &mut |_, _| ok = false)?;
                let labels = checked.labels.iter().copied().collect();
                let r = res.upsert(checked.type_, &spec.id, None, labels);
                parents.push((r, checked.parent));
                if ok {
                    broken.remove(&r);
                } else {
                    broken.insert(r);
                }
            }
            Change::RemoveResource(key) => {
                let (t, id) = key.split_once(':')?;
                let t = ws.schema.type_id(t)?;
                if ws.schema.ty(t).implicit {
                    return None;
                }
                let r = res.find(t, id)?;
                res.remove(r);
                broken.remove(&r);
                removed.push(r);
            }
            _ => return None,
        }
    }
    if !broken.is_empty() {
        return None;
    }
    // Parents resolve against the result, as validation does; the last
    // upsert of a resource is the one that counts.
    let mut placed = FxHashSet::default();
    for &(r, parent) in parents.iter().rev() {
        if !placed.insert(r) || !res.is_live(r) {
            continue;
        }
        let p = match parent {
            None => None,
            Some((pt, pid)) => Some(res.find(pt, pid)?),
        };
        res.set_parent(r, p);
    }
    let mut next = CompiledWorkspace::from_parts(ws.with_resources(res), cw.index.clone());
    // A removed resource may keep no binding and no child.
    for &r in &removed {
        let gone = next.model.resources.is_removed(r);
        if gone && (cw.index.bound.contains(r) || next.children(r).next().is_some()) {
            return None;
        }
    }
    for r in removed {
        next.model.resources.forget_if_removed(r);
    }
    Some(next)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::engine::Snapshot;
    use crate::model::delta::{Update, UpdateBody, UpdateSource};
    use crate::model::spec::ResourceSpec;

    fn snapshot() -> Snapshot {
        let spec = crate::model::parse::from_text(
            "workspaces:\n  - id: w\n    users: [{ id: u, bindings: [{ role: admin }] }]\n    resources:\n      - { type: mini, id: m-1 }\n",
            "test",
        )
        .unwrap();
        Snapshot::from_spec(&spec).unwrap()
    }

    fn upsert(t: &str, id: &str, parent: Option<&str>) -> Change {
        Change::UpsertResource(ResourceSpec {
            type_: t.into(),
            id: id.into(),
            parent: parent.map(String::from),
            labels: Vec::new(),
        })
    }

    /// Applies a delta on the incremental path (panics if it declines).
    fn apply(snap: &mut Snapshot, changes: Vec<Change>) {
        let cw = Arc::clone(snap.workspace("w").unwrap());
        let delta = Delta {
            workspace: "w".into(),
            changes,
        };
        let next = apply_resource_delta(&cw, &delta).expect("the incremental path");
        snap.insert(Arc::new(next));
    }

    #[test]
    fn resources_added_and_removed_again_and_again_do_not_pile_up() {
        let mut snap = snapshot();
        apply(&mut snap, vec![upsert("mini", "churn-0", None)]);
        for i in 1..200 {
            apply(
                &mut snap,
                vec![
                    upsert("mini", &format!("churn-{i}"), None),
                    Change::RemoveResource(format!("mini:churn-{}", i - 1)),
                ],
            );
        }
        let w = snap.workspace("w").unwrap();
        assert!(
            w.model.resources.overlay().len() <= 2,
            "{:?}",
            w.model.resources.overlay().len()
        );
        assert_eq!(w.model.listed_resources(), 2);
    }

    /// Only the result counts: a resource added with a parent that does
    /// not exist and removed in the same delta breaks nothing, as the full
    /// path agrees.
    #[test]
    fn a_resource_added_and_removed_in_one_delta_needs_no_parent() {
        let mut snap = snapshot();
        apply(
            &mut snap,
            vec![
                upsert("record", "r-gone", Some("mini:no-such-parent")),
                Change::RemoveResource("record:r-gone".into()),
            ],
        );
        let w = snap.workspace("w").unwrap();
        let record = w.model.schema.type_id("record").unwrap();
        assert_eq!(w.model.resources.find(record, "r-gone"), None);
        assert_eq!(w.model.listed_resources(), 1);
    }

    #[test]
    fn a_parent_removed_and_added_back_in_one_delta_keeps_its_children() {
        let mut snap = snapshot();
        apply(
            &mut snap,
            vec![
                upsert("mini", "m-2", None),
                upsert("record", "r-1", Some("mini:m-2")),
            ],
        );
        apply(
            &mut snap,
            vec![
                Change::RemoveResource("mini:m-2".into()),
                upsert("mini", "m-2", None),
            ],
        );
        let w = snap.workspace("w").unwrap();
        let page = w
            .list_visible("u", "record", "read", Some("mini:m-2"), None, 10)
            .unwrap();
        assert_eq!(page.items, ["r-1"]);
        // Without the re-add, the removal is the full path's to reject.
        let cw = Arc::clone(w);
        let lone = Delta {
            workspace: "w".into(),
            changes: vec![Change::RemoveResource("mini:m-2".into())],
        };
        assert!(apply_resource_delta(&cw, &lone).is_none());
        let update = Update {
            request_id: String::new(),
            source: UpdateSource::Admin,
            expected_revision: None,
            body: UpdateBody::Delta(lone),
        };
        let err = snap.apply(&update).unwrap_err().to_string();
        assert!(
            err.contains("still has 1 child resource(s) (record:r-1)"),
            "{err}"
        );
    }
}
