//! The decision engine: pure functions over an immutable, indexed snapshot.
//! No I/O, no tonic, no tokio: a snapshot and a request in, a decision with
//! its reasons out.

pub mod batch;
pub mod check;
pub mod decision;
pub mod incremental;
pub mod index;
pub mod list;
mod plan_cache;

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

pub use check::{Resolved, Target};
pub use decision::{BindingView, Decision, Explanation, Reason, RequestError};
pub use list::{Page, SubjectGrant};

use crate::model::delta::{apply_update, Update, UpdateBody};
use crate::model::names::NameMap;
use crate::model::spec_head::SpecHeadError;
use crate::model::workspace::ResIdx;
use crate::model::{InvalidSnapshot, Problem, SnapshotSpec, Workspace};
use index::Index;
use plan_cache::PlanCache;

/// A workspace ready to answer: the validated model plus its indexes.
#[derive(Debug)]
pub struct CompiledWorkspace {
    pub model: Workspace,
    pub index: Index,
    /// Plans of the lists being paged through (see [`plan_cache`]).
    plans: PlanCache<list::PlanKey, list::Plan>,
}

impl CompiledWorkspace {
    pub fn new(model: Workspace) -> Self {
        let index = Index::build(&model);
        CompiledWorkspace::from_parts(model, index)
    }

    pub fn from_parts(model: Workspace, index: Index) -> Self {
        CompiledWorkspace {
            model,
            index,
            plans: PlanCache::default(),
        }
    }

    /// Users who consume a seat (SPEC 1.4).
    pub fn seats_in_use(&self) -> usize {
        self.model.seats_in_use()
    }

    /// `p`'s direct children: the base's that no delta moved or removed,
    /// then those a delta placed under it (each part ascending).
    pub fn children(&self, p: ResIdx) -> impl Iterator<Item = ResIdx> + '_ {
        let res = &self.model.resources;
        let base = self.index.base_children(p);
        let plain = res.overlay().is_empty();
        base.filter(move |&c| plain || !(res.is_removed(c) || res.changed().contains(c)))
            .chain(res.changed_children(p))
    }
}

/// A resource named in a request.
#[derive(Debug, Clone, Copy)]
pub enum ResourceQuery<'a> {
    /// An existing resource.
    Existing { type_: &'a str, id: &'a str },
    /// A resource not yet created, decided as if it existed.
    New {
        type_: &'a str,
        parent: Option<&'a str>,
        labels: &'a [String],
    },
}

impl<'a> ResourceQuery<'a> {
    /// Parses `type:id`.
    pub fn parse_key(key: &'a str) -> Option<Self> {
        // A loop over the few bytes of a type name: `split_once` calls
        // `memchr`, which costs more here than it saves.
        let colon = key.bytes().position(|b| b == b':')?;
        let (type_, id) = (&key[..colon], &key[colon + 1..]);
        Some(ResourceQuery::Existing { type_, id })
    }
}

/// Every workspace of one revision of the model. Workspaces are shared
/// between revisions: an update rebuilds only the workspaces it touches.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    workspaces: NameMap<Arc<CompiledWorkspace>>,
}

impl Snapshot {
    /// Validates and indexes a whole snapshot file.
    pub fn from_spec(spec: &SnapshotSpec) -> Result<Snapshot, InvalidSnapshot> {
        let workspaces = crate::model::validate_snapshot(spec)?;
        Ok(Snapshot::from_workspaces(workspaces))
    }

    pub fn from_workspaces(workspaces: Vec<Workspace>) -> Snapshot {
        let mut s = Snapshot::default();
        for w in workspaces {
            s.insert(Arc::new(CompiledWorkspace::new(w)));
        }
        s
    }

    pub fn insert(&mut self, w: Arc<CompiledWorkspace>) {
        let id = w.model.id.clone();
        self.workspaces.insert(&id, w);
    }

    pub fn workspace(&self, id: &str) -> Option<&Arc<CompiledWorkspace>> {
        self.workspaces.get(id)
    }

    /// Workspaces in id order.
    pub fn workspaces(&self) -> Vec<&Arc<CompiledWorkspace>> {
        let mut v: Vec<_> = self.workspaces.values().collect();
        v.sort_by(|a, b| a.model.id.cmp(&b.model.id));
        v
    }

    /// The workspaces `update` writes, validated and indexed, or every
    /// problem it has. A delta that changes only resources is applied to
    /// the workspace's resource overlay ([`incremental`]); any other update
    /// is resolved against the current specs and rebuilt in full. The live
    /// write path and the replay of the state dir both come here, so the
    /// two cannot disagree.
    pub fn apply(&self, update: &Update) -> Result<Vec<CompiledWorkspace>, InvalidSnapshot> {
        if let UpdateBody::Delta(d) = &update.body {
            let fast = self
                .workspace(&d.workspace)
                .and_then(|w| incremental::apply_resource_delta(w, d));
            if let Some(w) = fast {
                return Ok(vec![w]);
            }
        }
        // A snapshot body reads only users and groups of the current specs.
        let with_resources = matches!(update.body, UpdateBody::Delta(_));
        // A kept spec that cannot be read back (a bug) refuses the update:
        // it is never resolved against a spec that lacks what was kept.
        let unreadable: RefCell<Vec<Problem>> = RefCell::default();
        let current = |id: &str| {
            let w = self.workspace(id)?;
            let spec = match with_resources {
                true => w.model.to_spec(),
                false => w.model.spec_head.spec(),
            };
            match spec {
                Ok(spec) => Some(Cow::Owned(spec)),
                Err(e) => {
                    unreadable.borrow_mut().push(Problem::from(&e));
                    None
                }
            }
        };
        let written = apply_update(current, update);
        let unreadable = unreadable.into_inner();
        if !unreadable.is_empty() {
            return Err(unreadable.into());
        }
        Ok(written?.into_iter().map(CompiledWorkspace::new).collect())
    }

    /// The snapshot as file data; fails only if a workspace's kept spec
    /// cannot be read back (a bug, see [`crate::model::spec_head`]).
    pub fn to_spec(&self) -> Result<SnapshotSpec, SpecHeadError> {
        let workspaces = self.workspaces();
        Ok(SnapshotSpec {
            workspaces: workspaces
                .iter()
                .map(|w| w.model.to_spec())
                .collect::<Result<_, _>>()?,
        })
    }
}

/// For unit tests: workspace `w` of a snapshot written in YAML.
#[cfg(test)]
pub(crate) fn compiled_w(text: &str) -> Arc<CompiledWorkspace> {
    let spec: crate::model::SnapshotSpec = match crate::model::parse::from_text(text, "test") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let snap = match Snapshot::from_spec(&spec) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    match snap.workspace("w") {
        Some(w) => Arc::clone(w),
        None => panic!("no workspace w"),
    }
}
