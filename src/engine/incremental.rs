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
        if !placed.insert(r) || res.is_removed(r) {
            continue;
        }
        let p = match parent {
            None => None,
            Some((pt, pid)) => Some(res.find(pt, pid)?),
        };
        res.set_parent(r, p);
    }
    let next = CompiledWorkspace {
        model: ws.with_resources(res),
        index: cw.index.clone(),
    };
    for r in removed {
        let gone = next.model.resources.is_removed(r);
        if gone && (cw.index.bound.contains(r) || next.children(r).next().is_some()) {
            return None;
        }
    }
    Some(next)
}
