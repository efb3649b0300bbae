//! A snapshot sent to Apply in pieces (`snapshot_piece`), for a model past
//! the Admin listener's message limit. The pieces of one update are
//! gathered here, merged as ExportPieces' are, and handed on as one
//! snapshot request when the last arrives: the update is then validated,
//! applied atomically and answered once, like any snapshot.
//!
//! The pieces of one update follow each other on the stream and carry the
//! same request_id, source and expected_revision. Anything else ends the
//! stream: answering it and going on would let the rest of the pieces
//! arrive as an update of their own, a truncated snapshot that would
//! replace whole workspaces.

use prost::Message;
use tonic::Status;

use crate::pb;
use crate::pb::apply_request::Body;

/// Why the pieces of an update cannot be taken; the stream ends with it,
/// and nothing of the update is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceError {
    #[error(
        "snapshot_piece: request \"{next}\" came before the last piece of \"{pending}\" ({pieces} \
         held); the pieces of one update follow each other, so \"{pending}\" is dropped and \
         nothing of it is applied"
    )]
    Interrupted {
        pending: String,
        pieces: usize,
        next: String,
    },
    #[error(
        "snapshot_piece: a piece of \"{request_id}\" has another {field} than its first piece; \
         every piece of one update carries the same request_id, source and expected_revision, \
         so nothing of it is applied"
    )]
    Mismatched {
        request_id: String,
        field: &'static str,
    },
    #[error(
        "snapshot_piece: the stream ended before the last piece of \"{request_id}\" ({pieces} \
         held); nothing of it is applied"
    )]
    Unfinished { request_id: String, pieces: usize },
    #[error(
        "snapshot_piece: the snapshot of \"{request_id}\" is past {max} bytes after {pieces} \
         pieces; nothing of it is applied (raise --admin-max-snapshot-bytes)"
    )]
    TooLarge {
        request_id: String,
        pieces: usize,
        max: usize,
    },
    #[error("snapshot_piece: a piece of \"{request_id}\" cannot be merged: {message}")]
    Unmergeable { request_id: String, message: String },
}

impl From<PieceError> for Status {
    fn from(e: PieceError) -> Status {
        match e {
            PieceError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
            _ => Status::invalid_argument(e.to_string()),
        }
    }
}

/// What to do with a request read off the stream.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Apply it: a request that came whole, or the merged pieces.
    Apply(pb::ApplyRequest),
    /// A piece was kept; nothing to answer yet.
    Held,
}

/// The pieces of the update under way on one Apply stream, if any.
#[derive(Debug)]
pub struct Assembly {
    max_bytes: usize,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    /// The first piece, without its body: what every piece must repeat.
    header: pb::ApplyRequest,
    workspaces: Vec<pb::Workspace>,
    pieces: usize,
    /// The encoded size of the workspaces received so far.
    bytes: usize,
}

impl Assembly {
    /// Merged snapshots may take at most `max_bytes`, encoded.
    pub fn new(max_bytes: usize) -> Self {
        Assembly {
            max_bytes,
            pending: None,
        }
    }

    /// Takes the next request of the stream. On an error the update under
    /// way is dropped, and the stream must end with the error.
    pub fn take(&mut self, mut request: pb::ApplyRequest) -> Result<Next, PieceError> {
        let piece = match request.body.take() {
            Some(Body::SnapshotPiece(piece)) => piece,
            body => {
                if let Some(p) = self.pending.take() {
                    return Err(PieceError::Interrupted {
                        pending: p.header.request_id,
                        pieces: p.pieces,
                        next: request.request_id,
                    });
                }
                request.body = body;
                return Ok(Next::Apply(request));
            }
        };
        let mut pending = self.pending.take().unwrap_or_else(|| Pending {
            header: request.clone(),
            workspaces: Vec::new(),
            pieces: 0,
            bytes: 0,
        });
        // On an error the pieces held so far are dropped with `pending`.
        pending.add(&request, piece.workspace, self.max_bytes)?;
        if !piece.last {
            self.pending = Some(pending);
            return Ok(Next::Held);
        }
        let Pending {
            mut header,
            workspaces,
            ..
        } = pending;
        header.body = Some(Body::Snapshot(pb::Snapshot { workspaces }));
        Ok(Next::Apply(header))
    }

    /// The stream has ended: an error if an update is still unfinished.
    pub fn finish(&mut self) -> Result<(), PieceError> {
        match self.pending.take() {
            None => Ok(()),
            Some(p) => Err(PieceError::Unfinished {
                request_id: p.header.request_id,
                pieces: p.pieces,
            }),
        }
    }
}

impl Pending {
    fn add(
        &mut self,
        request: &pb::ApplyRequest,
        workspace: Option<pb::Workspace>,
        max_bytes: usize,
    ) -> Result<(), PieceError> {
        let h = &self.header;
        let field = if request.request_id != h.request_id {
            Some("request_id")
        } else if request.source != h.source {
            Some("source")
        } else if request.expected_revision != h.expected_revision {
            Some("expected_revision")
        } else {
            None
        };
        if let Some(field) = field {
            return Err(PieceError::Mismatched {
                request_id: h.request_id.clone(),
                field,
            });
        }
        self.pieces += 1;
        let Some(w) = workspace else {
            return Ok(());
        };
        self.bytes += w.encoded_len();
        if self.bytes > max_bytes {
            return Err(PieceError::TooLarge {
                request_id: h.request_id.clone(),
                pieces: self.pieces,
                max: max_bytes,
            });
        }
        match self.workspaces.last_mut() {
            // Protobuf's merge, as the client's MergeFrom of ExportPieces.
            Some(last) if last.id == w.id => {
                last.merge(w.encode_to_vec().as_slice())
                    .map_err(|e| PieceError::Unmergeable {
                        request_id: h.request_id.clone(),
                        message: e.to_string(),
                    })
            }
            _ => {
                self.workspaces.push(w);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(request_id: &str, workspace: Option<pb::Workspace>, last: bool) -> pb::ApplyRequest {
        pb::ApplyRequest {
            request_id: request_id.into(),
            source: "admin".into(),
            expected_revision: "7".into(),
            body: Some(Body::SnapshotPiece(Box::new(pb::SnapshotPiece {
                workspace,
                last,
            }))),
        }
    }

    fn workspace(id: &str, labels: &[&str]) -> pb::Workspace {
        pb::Workspace {
            id: id.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn pieces_merge_into_one_snapshot_request_on_the_last() {
        let mut a = Assembly::new(1 << 20);
        let mut first = workspace("a", &["x"]);
        first.catalog = "seats".into();
        let held = [
            piece("r", Some(first), false),
            piece("r", Some(workspace("a", &["y"])), false),
            piece("r", Some(workspace("b", &["z"])), false),
        ];
        for p in held {
            assert_eq!(a.take(p), Ok(Next::Held));
        }
        let Ok(Next::Apply(request)) = a.take(piece("r", None, true)) else {
            panic!("the last piece must give the update");
        };
        let mut merged_a = workspace("a", &["x", "y"]);
        merged_a.catalog = "seats".into();
        assert_eq!(
            request,
            pb::ApplyRequest {
                request_id: "r".into(),
                source: "admin".into(),
                expected_revision: "7".into(),
                body: Some(Body::Snapshot(pb::Snapshot {
                    workspaces: vec![merged_a, workspace("b", &["z"])],
                })),
            }
        );
        assert_eq!(a.finish(), Ok(()));
    }

    #[test]
    fn a_single_last_piece_is_a_whole_snapshot() {
        let mut a = Assembly::new(1 << 20);
        let Ok(Next::Apply(request)) = a.take(piece("r", Some(workspace("a", &[])), true)) else {
            panic!("a last piece alone must give the update");
        };
        assert_eq!(
            request.body,
            Some(Body::Snapshot(pb::Snapshot {
                workspaces: vec![workspace("a", &[])]
            }))
        );
    }

    #[test]
    fn requests_sent_whole_pass_through() {
        let mut a = Assembly::new(1 << 20);
        let delta = pb::ApplyRequest {
            request_id: "d".into(),
            body: Some(Body::Delta(pb::Delta::default())),
            ..Default::default()
        };
        assert_eq!(a.take(delta.clone()), Ok(Next::Apply(delta)));
        let none = pb::ApplyRequest::default();
        assert_eq!(a.take(none.clone()), Ok(Next::Apply(none)));
    }

    #[test]
    fn another_request_between_pieces_drops_the_update() {
        let mut a = Assembly::new(1 << 20);
        assert_eq!(
            a.take(piece("r", Some(workspace("a", &["x"])), false)),
            Ok(Next::Held)
        );
        let e = a.take(pb::ApplyRequest {
            request_id: "d".into(),
            body: Some(Body::Delta(pb::Delta::default())),
            ..Default::default()
        });
        assert_eq!(
            e,
            Err(PieceError::Interrupted {
                pending: "r".into(),
                pieces: 1,
                next: "d".into()
            })
        );
        // Nothing of "r" is left to be completed by a later piece.
        assert_eq!(a.finish(), Ok(()));
    }

    #[test]
    fn every_piece_repeats_the_first_ones_header() {
        for (field, change) in [
            (
                "request_id",
                (|p: &mut pb::ApplyRequest| p.request_id = "s".into()) as fn(&mut _),
            ),
            ("source", |p| p.source = "directory".into()),
            ("expected_revision", |p| p.expected_revision.clear()),
        ] {
            let mut a = Assembly::new(1 << 20);
            assert_eq!(a.take(piece("r", None, false)), Ok(Next::Held));
            let mut next = piece("r", None, true);
            change(&mut next);
            let Err(e) = a.take(next) else {
                panic!("a piece with another {field} must be refused")
            };
            assert_eq!(
                e,
                PieceError::Mismatched {
                    request_id: "r".into(),
                    field
                }
            );
            assert_eq!(Status::from(e).code(), tonic::Code::InvalidArgument);
            assert_eq!(a.finish(), Ok(()), "{field}");
        }
    }

    #[test]
    fn the_merged_snapshot_is_bounded() {
        let big = workspace("a", &["a-label-of-some-length"; 10]);
        let size = big.encoded_len();
        let mut a = Assembly::new(2 * size);
        assert_eq!(a.take(piece("r", Some(big.clone()), false)), Ok(Next::Held));
        assert_eq!(a.take(piece("r", Some(big.clone()), false)), Ok(Next::Held));
        let Err(e) = a.take(piece("r", Some(big), true)) else {
            panic!("a snapshot past the bound must be refused")
        };
        assert!(matches!(e, PieceError::TooLarge { pieces: 3, .. }), "{e}");
        let status = Status::from(e);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status
                .message()
                .ends_with("(raise --admin-max-snapshot-bytes)"),
            "{status:?}"
        );
        assert_eq!(a.finish(), Ok(()));
    }

    #[test]
    fn an_unfinished_update_is_named_when_the_stream_ends() {
        let mut a = Assembly::new(1 << 20);
        assert_eq!(a.take(piece("r", None, false)), Ok(Next::Held));
        assert_eq!(a.take(piece("r", None, false)), Ok(Next::Held));
        let Err(e) = a.finish() else {
            panic!("an unfinished update must be named")
        };
        assert_eq!(
            e,
            PieceError::Unfinished {
                request_id: "r".into(),
                pieces: 2
            }
        );
        assert!(e.to_string().contains("nothing of it is applied"), "{e}");
    }
}
