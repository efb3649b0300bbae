//! `Export` and `ExportPieces`: the current model as snapshot data, in one
//! message or in pieces of at most about [`PIECE_BYTES`] each.
//!
//! Both read one revision (they hold its `Arc`), so an export is consistent
//! while updates go on. Both run on the blocking pool: turning a million
//! records into messages takes a good part of a second, which the runtime's
//! workers owe to Check. `ExportPieces` turns the records into messages one
//! piece at a time, so it holds a few pieces beside the model (those queued
//! for its client), however large the model.

use std::sync::Arc;

use prost::Message;

use super::convert;
use super::status::ApiError;
use crate::engine::Snapshot;
use crate::model::spec::{ResourceSpec, WorkspaceSpec};
use crate::model::spec_head::SpecHeadError;
use crate::pb;
use crate::store::Versioned;

/// The size a piece of `ExportPieces` stays under, unless one element
/// alone is larger (it then goes in a piece of its own): a quarter of the
/// 4 MiB most gRPC clients accept by default.
pub const PIECE_BYTES: usize = 1 << 20;

/// The whole export of `v` (one workspace, or all when `workspace` is
/// empty) as one message. Each workspace is file data only while it is
/// turned into its message.
pub fn whole(v: &Versioned, workspace: &str) -> Result<pb::ExportResponse, ApiError> {
    let workspaces = v
        .snapshot
        .workspaces()
        .iter()
        .filter(|w| workspace.is_empty() || w.model.id == workspace)
        .map(|w| w.model.to_spec().map(|spec| pb::Workspace::from(&spec)))
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(v, e))?;
    Ok(pb::ExportResponse {
        revision: convert::revision(v.revision),
        snapshot: Some(pb::Snapshot { workspaces }),
    })
}

/// NOT_FOUND unless `workspace` is empty (all of them) or one of `snapshot`.
pub fn check_workspace(snapshot: &Snapshot, workspace: &str) -> Result<(), ApiError> {
    if workspace.is_empty() || snapshot.workspace(workspace).is_some() {
        Ok(())
    } else {
        Err(ApiError::UnknownWorkspace(workspace.to_string()))
    }
}

/// Why [`pieces`] stopped before the end.
#[derive(Debug)]
pub enum Stopped {
    /// `send` refused a piece: the client has gone.
    Gone,
    /// A workspace's kept spec could not be read back (a bug); the stream
    /// must end with this error, not as if it were complete.
    Failed(ApiError),
}

/// Sends the export of `v` (one workspace, or all when `workspace` is
/// empty) to `send`, piece by piece, each under `budget` encoded bytes
/// unless one element alone is larger. `send` fails when the client has
/// gone, which stops the export.
pub fn pieces(
    v: &Arc<Versioned>,
    workspace: &str,
    budget: usize,
    mut send: impl FnMut(pb::ExportPiece) -> Result<(), ()>,
) -> Result<(), Stopped> {
    let revision = convert::revision(v.revision);
    // The piece around the workspace: the revision's field, and the
    // workspace's key and length (at most 5 bytes below 4 GiB).
    let wrapper = 1 + prost::length_delimiter_len(revision.len()) + revision.len() + 1 + 5;
    let budget = budget.saturating_sub(wrapper).max(1);
    let mut send = |w: pb::Workspace| {
        send(pb::ExportPiece {
            revision: revision.clone(),
            workspace: Some(w),
        })
        .map_err(|()| Stopped::Gone)
    };
    for w in v.snapshot.workspaces() {
        if !workspace.is_empty() && w.model.id != workspace {
            continue;
        }
        let m = &w.model;
        let head = m
            .head_spec()
            .map_err(|e| Stopped::Failed(unreadable(v, e)))?;
        workspace_pieces(head, m.resource_specs(), budget, &mut send)?;
    }
    Ok(())
}

/// One workspace's pieces: its head's fields in the first, then its lists
/// in order, as many elements to a piece as fit `budget`.
fn workspace_pieces<E>(
    mut head: WorkspaceSpec,
    resources: impl Iterator<Item = ResourceSpec>,
    budget: usize,
    send: impl FnMut(pb::Workspace) -> Result<(), E>,
) -> Result<(), E> {
    let types = std::mem::take(&mut head.types);
    let roles = std::mem::take(&mut head.roles);
    let labels = std::mem::take(&mut head.labels);
    let groups = std::mem::take(&mut head.groups);
    let users = std::mem::take(&mut head.users);
    let mut out = Pieces::new(pb::Workspace::from(&head), budget, send);
    for t in &types {
        out.push_message(pb::ResourceType::from(t), |w| &mut w.types)?;
    }
    for r in &roles {
        out.push_message(pb::Role::from(r), |w| &mut w.roles)?;
    }
    for l in labels {
        let len = l.len();
        out.push(l, len, |w| &mut w.labels)?;
    }
    for g in &groups {
        out.push_message(pb::Group::from(g), |w| &mut w.groups)?;
    }
    for u in &users {
        out.push_message(pb::User::from(u), |w| &mut w.users)?;
    }
    for r in resources {
        out.push_message(pb::Resource::from(&r), |w| &mut w.resources)?;
    }
    out.finish()
}

/// Fills pieces of one workspace and sends each as it is full.
struct Pieces<F> {
    id: String,
    budget: usize,
    piece: pb::Workspace,
    /// `piece`'s encoded size.
    size: usize,
    /// Whether `piece` holds a list element yet: a piece takes at least
    /// one, however large, so that every piece moves the export on.
    has_elements: bool,
    sent_any: bool,
    send: F,
}

impl<E, F: FnMut(pb::Workspace) -> Result<(), E>> Pieces<F> {
    fn new(head: pb::Workspace, budget: usize, send: F) -> Self {
        Pieces {
            id: head.id.clone(),
            budget,
            size: head.encoded_len(),
            piece: head,
            has_elements: false,
            sent_any: false,
            send,
        }
    }

    fn push_message<T: Message>(
        &mut self,
        item: T,
        list: fn(&mut pb::Workspace) -> &mut Vec<T>,
    ) -> Result<(), E> {
        let len = item.encoded_len();
        self.push(item, len, list)
    }

    /// Adds `item`, whose encoding is `len` bytes, to `list` of the piece,
    /// sending the piece first if the item would take it past the budget.
    fn push<T>(
        &mut self,
        item: T,
        len: usize,
        list: fn(&mut pb::Workspace) -> &mut Vec<T>,
    ) -> Result<(), E> {
        // The workspace's list fields are numbered below 16: a one-byte key.
        let added = 1 + prost::length_delimiter_len(len) + len;
        if self.has_elements && self.size + added > self.budget {
            self.send_piece()?;
        }
        list(&mut self.piece).push(item);
        self.size += added;
        self.has_elements = true;
        Ok(())
    }

    fn send_piece(&mut self) -> Result<(), E> {
        let next = pb::Workspace {
            id: self.id.clone(),
            ..Default::default()
        };
        self.size = next.encoded_len();
        self.has_elements = false;
        self.sent_any = true;
        (self.send)(std::mem::replace(&mut self.piece, next))
    }

    /// Sends the last piece: one that holds something, or the first (a
    /// workspace with empty lists is still sent).
    fn finish(mut self) -> Result<(), E> {
        if self.has_elements || !self.sent_any {
            self.send_piece()?;
        }
        Ok(())
    }
}

fn unreadable(v: &Versioned, e: SpecHeadError) -> ApiError {
    tracing::error!(revision = v.revision, error = %e, "cannot export the model");
    ApiError::Internal(format!("cannot export revision {}: {e}", v.revision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SnapshotSpec;

    fn demo_spec() -> SnapshotSpec {
        crate::model::parse::from_text(include_str!("../demo.yaml"), "demo.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every piece of `w` at `budget`, with a check of each piece's size.
    fn split(w: &WorkspaceSpec, budget: usize) -> Vec<pb::Workspace> {
        let mut head = w.clone();
        let resources = std::mem::take(&mut head.resources);
        let mut got = Vec::new();
        workspace_pieces(head, resources.into_iter(), budget, |p| {
            got.push(p);
            Ok::<(), ()>(())
        })
        .unwrap_or_else(|()| panic!("refused"));
        got
    }

    fn merged(pieces: &[pb::Workspace]) -> pb::Workspace {
        let mut whole = pb::Workspace::default();
        for p in pieces {
            whole
                .merge(p.encode_to_vec().as_slice())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        whole
    }

    #[test]
    fn merged_pieces_are_the_workspace_at_any_budget() {
        for w in demo_spec().workspaces {
            let whole = pb::Workspace::from(&w);
            for budget in [1, 64, 200, 1000, 10_000, PIECE_BYTES] {
                let pieces = split(&w, budget);
                assert_eq!(merged(&pieces), whole, "{} at {budget}", w.id);
                for p in &pieces {
                    assert_eq!(p.id, w.id);
                    // Over budget only with a single list element.
                    let elements = p.types.len()
                        + p.roles.len()
                        + p.labels.len()
                        + p.groups.len()
                        + p.users.len()
                        + p.resources.len();
                    assert!(
                        p.encoded_len() <= budget || elements <= 1,
                        "{} bytes with {elements} elements at {budget}",
                        p.encoded_len()
                    );
                }
                // Only the first piece carries the head's fields.
                for p in &pieces[1..] {
                    assert_eq!(
                        (p.catalog.as_str(), p.features.is_some(), p.policy.is_some()),
                        ("", false, false)
                    );
                }
            }
        }
    }

    #[test]
    fn pieces_fill_up_to_the_budget() {
        let mut w = demo_spec().workspaces.remove(0);
        w.resources = (0..10_000)
            .map(|i| ResourceSpec {
                type_: "record".into(),
                id: format!("r-{i:05}"),
                parent: None,
                labels: vec![],
            })
            .collect();
        let pieces = split(&w, 4096);
        let whole = pb::Workspace::from(&w).encoded_len();
        // Full pieces: no more than one piece beyond what the bytes need.
        assert!(
            pieces.len() <= whole / 4096 + 2,
            "{} pieces for {whole} bytes",
            pieces.len()
        );
        assert!(pieces.iter().all(|p| p.encoded_len() <= 4096));
    }

    #[test]
    fn an_empty_workspace_is_one_piece() {
        let w = WorkspaceSpec {
            id: "empty".into(),
            ..Default::default()
        };
        let pieces = split(&w, PIECE_BYTES);
        assert_eq!(pieces, vec![pb::Workspace::from(&w)]);
    }

    #[test]
    fn a_refused_piece_stops_the_export() {
        let w = demo_spec().workspaces.remove(0);
        let mut head = w.clone();
        let resources = std::mem::take(&mut head.resources);
        let mut sent = 0;
        let result = workspace_pieces(head, resources.into_iter(), 64, |_| {
            sent += 1;
            if sent == 2 {
                Err("gone")
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Err("gone"));
        assert_eq!(sent, 2);
    }
}
