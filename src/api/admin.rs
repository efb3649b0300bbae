//! `rolecall.v1.Admin`: Apply, Export (and ExportPieces, see [`super::export`]), Watch, Status. It is served only on
//! the admin listener, behind [`super::auth::AdminAuth`].
//!
//! # Apply
//!
//! A long-lived stream ([`super::apply_stream`]). Each request is answered
//! in order, once it is applied and durable (or refused); the ones after it
//! are read ahead meanwhile, up to a bound. Requests of all streams go
//! through the one apply lock of [`Applier`]. A request that is malformed on the wire (no body, a bad
//! `source`, an empty change, …) or breaks a rule is answered `rejected`
//! with every problem, each naming its field or item, and the stream stays
//! open. Only a failure to make a valid update durable ends the stream, with
//! UNAVAILABLE: the update was not applied, and the sidecar takes no more
//! updates until it restarts.
//!
//! # Watch
//!
//! Each stream has a small bounded queue. A reader that stops reading never
//! slows updates down: once the next revision it needs has left the event
//! ring ([`crate::store::apply::WATCH_BUFFER`] revisions), its stream ends
//! with RESOURCE_EXHAUSTED after the events already queued.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::UNIX_EPOCH;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use super::apply_stream;
use super::auth::AdminAuth;
use super::convert;
use super::export;
use super::snapshot_pieces::Assembly;
use super::status::ApiError;
use crate::admin_convert::parse_revision;
use crate::model::delta::Update;
use crate::model::lint::lint;
use crate::pb;
use crate::server::catch_panic::spawn_supervised;
use crate::store::apply::{Applier, ApplyError, Event, WatchError};
use crate::store::{Store, StoreError, Versioned};

/// Answers queued per Apply stream before its reader must catch up.
const APPLY_QUEUE: usize = 16;
/// Events queued per Watch stream before its reader must catch up.
const WATCH_QUEUE: usize = 64;
/// Pieces queued per ExportPieces stream (each up to
/// [`export::PIECE_BYTES`]) before its reader must catch up.
const EXPORT_QUEUE: usize = 2;

/// The pieces of one `ExportPieces` call.
type ExportStream = ReceiverStream<Result<pb::ExportPiece, Status>>;

/// How many Admin streams may be open at once, set by `rolecall serve`
/// flags. A stream over the limit is refused at once with
/// RESOURCE_EXHAUSTED; the open ones are not disturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Open `Apply` streams (`--max-apply-streams`).
    pub max_apply_streams: usize,
    /// Open `Watch` streams (`--max-watchers`).
    pub max_watchers: usize,
    /// Exports in progress, `Export` and `ExportPieces` together
    /// (`--max-exports`): each holds its revision and a thread of the
    /// blocking pool until its client has read it.
    pub max_exports: usize,
    /// The encoded size of a snapshot sent to Apply in pieces, all pieces
    /// together (`--admin-max-snapshot-bytes`): what one stream may hold
    /// before the update can be applied.
    pub max_snapshot_bytes: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_apply_streams: 8,
            max_watchers: 64,
            max_exports: 4,
            max_snapshot_bytes: 1 << 30,
        }
    }
}

/// The Admin service over the write path.
#[derive(Debug, Clone)]
pub struct AdminService {
    applier: Arc<Applier>,
    limits: AdminLimits,
    /// One permit per open Apply stream, held by its task.
    apply_streams: Arc<Semaphore>,
    /// One permit per open Watch stream, held by its task.
    watchers: Arc<Semaphore>,
    /// One permit per export in progress, held by its task.
    exports: Arc<Semaphore>,
}

/// The Admin server as mounted: every call passes [`AdminAuth`] first.
pub type AuthenticatedAdmin = tonic::service::interceptor::InterceptedService<
    pb::admin_server::AdminServer<AdminService>,
    AdminAuth,
>;

impl AdminService {
    pub fn new(applier: Arc<Applier>) -> Self {
        AdminService::with_limits(applier, AdminLimits::default())
    }

    pub fn with_limits(applier: Arc<Applier>, limits: AdminLimits) -> Self {
        AdminService {
            applier,
            limits,
            apply_streams: Arc::new(Semaphore::new(limits.max_apply_streams)),
            watchers: Arc::new(Semaphore::new(limits.max_watchers)),
            exports: Arc::new(Semaphore::new(limits.max_exports)),
        }
    }

    /// A slot for one more stream, or RESOURCE_EXHAUSTED naming the flag.
    fn stream_slot(
        semaphore: &Arc<Semaphore>,
        rpc: &'static str,
        max: usize,
        flag: &'static str,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(semaphore).try_acquire_owned().map_err(|_| {
            info!(rpc, max, "refused a stream: too many open");
            ApiError::TooManyStreams { rpc, max, flag }
        })
    }

    /// A slot for one more export, or RESOURCE_EXHAUSTED naming the flag.
    fn export_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.exports).try_acquire_owned().map_err(|_| {
            info!(
                max = self.limits.max_exports,
                "refused an export: too many in progress"
            );
            ApiError::TooManyExports {
                max: self.limits.max_exports,
            }
        })
    }

    fn store(&self) -> &Arc<Store> {
        self.applier.store()
    }

    /// The tonic server for this service behind `auth`, refusing request
    /// messages over `max_message_bytes`.
    pub fn into_server(self, auth: AdminAuth, max_message_bytes: usize) -> AuthenticatedAdmin {
        tonic::service::interceptor::InterceptedService::new(
            pb::admin_server::AdminServer::new(self).max_decoding_message_size(max_message_bytes),
            auth,
        )
    }

    /// What an export reads: the current revision, the workspace asked for
    /// (NOT_FOUND unless it is one of that revision's, or empty for all),
    /// and a slot that the export holds until it ends.
    fn begin_export(
        &self,
        request: &pb::ExportRequest,
    ) -> Result<(Arc<Versioned>, String, OwnedSemaphorePermit), ApiError> {
        let v = self.store().current().ok_or(StoreError::NoModel)?;
        export::check_workspace(&v.snapshot, &request.workspace)?;
        let slot = self.export_slot()?;
        Ok((v, request.workspace.clone(), slot))
    }

    async fn export(&self, request: &pb::ExportRequest) -> Result<pb::ExportResponse, ApiError> {
        let (v, workspace, slot) = self.begin_export(request)?;
        let job = move || {
            let _slot = slot;
            let answer = export::whole(&v, &workspace);
            // The file data this thread built and freed goes back to the OS.
            crate::memory::release_freed();
            answer
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(answer) => answer,
            // The catch-panic layer answers INTERNAL.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Closing.into()),
        }
    }

    fn export_pieces(&self, request: &pb::ExportRequest) -> Result<ExportStream, ApiError> {
        let (v, workspace, slot) = self.begin_export(request)?;
        let (tx, rx) = mpsc::channel(EXPORT_QUEUE);
        let panic_tx = tx.clone();
        let on_panic = move |status: Status| async move {
            let _ = panic_tx.send(Err(status)).await;
        };
        spawn_supervised(
            "ExportPieces",
            async move {
                let job = tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    let sent = export::pieces(&v, &workspace, export::PIECE_BYTES, |piece| {
                        tx.blocking_send(Ok(piece)).map_err(|_| ())
                    });
                    if let Err(export::Stopped::Failed(e)) = sent {
                        let _ = tx.blocking_send(Err(e.into()));
                    }
                    crate::memory::release_freed();
                });
                if let Err(e) = job.await {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            },
            on_panic,
        );
        Ok(ReceiverStream::new(rx))
    }

    fn status(&self) -> pb::StatusResponse {
        let store = self.store();
        let current = store.current();
        let retained = store.retained_revisions();
        let workspaces = current
            .as_ref()
            .map(|v| {
                v.snapshot
                    .workspaces()
                    .iter()
                    .map(|w| {
                        let m = &w.model;
                        pb::WorkspaceStatus {
                            id: m.id.clone(),
                            users: m.users.len() as u64,
                            groups: m.groups.len() as u64,
                            roles: m.roles.len() as u64,
                            labels: m.labels.len() as u64,
                            resources: m.listed_resources() as u64,
                            seats_in_use: w.seats_in_use() as u64,
                            lint: lint(m),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        pb::StatusResponse {
            revision: current
                .as_ref()
                .map(|v| convert::revision(v.revision))
                .unwrap_or_default(),
            retained: match (retained.first(), retained.last()) {
                (Some(&oldest), Some(&newest)) => Some(pb::RevisionRange {
                    oldest: convert::revision(oldest),
                    newest: convert::revision(newest),
                }),
                _ => None,
            },
            workspaces,
        }
    }

    fn watch(&self, request: &pb::WatchRequest) -> Result<WatchStream, ApiError> {
        let pb::WatchRequest { from_revision } = request;
        let from = parse_revision(from_revision).map_err(|message| ApiError::Invalid {
            field: "from_revision",
            message,
        })?;
        let slot = Self::stream_slot(
            &self.watchers,
            "Watch",
            self.limits.max_watchers,
            "--max-watchers",
        )?;
        let mut watcher = self.applier.watch(from).map_err(ApiError::Watch)?;
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let end = Arc::new(Mutex::new(None));
        let stream = WatchStream {
            rx,
            end: Arc::clone(&end),
        };
        // Ends the stream with `e` after what is queued (set before `tx` is
        // dropped, so the stream sees it when the queue runs dry).
        let fail = move |e: WatchError| {
            debug!(error = %e, "Watch stream ended");
            *end.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Status::from(ApiError::Watch(e)));
        };
        // A panic in the task ends the stream with INTERNAL (the sender
        // clone keeps the stream open until that status is set).
        let (panic_end, panic_tx) = (Arc::clone(&stream.end), tx.clone());
        let on_panic = move |status: Status| async move {
            *panic_end.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
            drop(panic_tx);
        };
        spawn_supervised(
            "Watch",
            async move {
                let _slot = slot; // held until the stream's task ends
                loop {
                    let permit = tokio::select! {
                        permit = tx.reserve() => match permit {
                            Ok(p) => p,
                            Err(_) => return, // the reader is gone
                        },
                        e = watcher.fallen_behind() => return fail(e),
                    };
                    let next = tokio::select! {
                        next = watcher.next() => next,
                        () = tx.closed() => return,
                    };
                    match next {
                        Ok(event) => permit.send(watch_event(&event)),
                        Err(e) => return fail(e),
                    }
                }
            },
            on_panic,
        );
        Ok(stream)
    }
}

/// The wire form of one applied revision.
fn watch_event(e: &Event) -> pb::WatchEvent {
    let Event {
        revision,
        request_id,
        source,
        workspaces,
        time,
    } = e;
    pb::WatchEvent {
        revision: convert::revision(*revision),
        request_id: request_id.clone(),
        source: source.clone(),
        workspaces: workspaces.clone(),
        time: time
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| prost_types::Timestamp {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            }),
    }
}

/// A rejection lists at most this many problems, of at most this many
/// bytes in all: the answer must reach a client with gRPC's usual 4 MiB
/// receive limit, or the control plane learns nothing of why.
const MAX_LISTED_PROBLEMS: usize = 1000;
const MAX_LISTED_BYTES: usize = 1 << 20;

/// The problems a rejection lists: the first ones within the bounds, then
/// a line that says how many more there are.
fn listed(mut problems: Vec<String>) -> Vec<String> {
    let mut bytes = 0;
    let keep = problems
        .iter()
        .take(MAX_LISTED_PROBLEMS)
        .take_while(|p| {
            bytes += p.len();
            bytes <= MAX_LISTED_BYTES
        })
        .count();
    let more = problems.len() - keep;
    if more > 0 {
        problems.truncate(keep);
        problems.push(format!(
            "... and {more} more problems, not listed (an answer lists at most \
             {MAX_LISTED_PROBLEMS})"
        ));
    }
    problems
}

/// Answers one Apply request; `Err` ends the stream.
async fn apply_one(
    applier: &Applier,
    request: pb::ApplyRequest,
) -> Result<pb::ApplyResponse, Status> {
    let request_id = request.request_id.clone();
    let rejected = |problems: Vec<String>| pb::ApplyResponse {
        request_id: request_id.clone(),
        result: Some(pb::apply_response::Result::Rejected(pb::Rejected {
            problems: listed(problems),
        })),
    };
    let update = match Update::try_from(request) {
        Ok(u) => u,
        Err(invalid) => {
            info!(request_id = %request_id, problems = invalid.errors.len(), "rejected a malformed update");
            crate::metrics::update_rejected();
            return Ok(rejected(
                invalid.errors.iter().map(ToString::to_string).collect(),
            ));
        }
    };
    let source = update.source.as_str();
    let workspaces = update.workspaces().join(",");
    match applier.apply(update).await {
        Ok(revision) => {
            info!(request_id = %request_id, source, workspaces, revision, "applied an update");
            crate::metrics::update_accepted();
            Ok(pb::ApplyResponse {
                request_id,
                result: Some(pb::apply_response::Result::Revision(convert::revision(
                    revision,
                ))),
            })
        }
        Err(ApplyError::Rejected(e)) => {
            info!(request_id = %request_id, source, workspaces, problems = e.problems.len(), "rejected an update");
            crate::metrics::update_rejected();
            Ok(rejected(
                e.problems.iter().map(ToString::to_string).collect(),
            ))
        }
        Err(e @ ApplyError::NotDurable(_)) => Err(ApiError::NotApplied {
            request_id,
            message: format!(
                "{e}; this sidecar accepts no more updates until it restarts (reads go on at the \
                 last applied revision)"
            ),
        }
        .into()),
        Err(e @ ApplyError::Failed) => Err(ApiError::NotApplied {
            request_id,
            message: e.to_string(),
        }
        .into()),
    }
}

/// A Watch response stream: the queued events, then the reason it ended,
/// if it did not end because the reader left.
pub struct WatchStream {
    rx: mpsc::Receiver<pb::WatchEvent>,
    end: Arc<Mutex<Option<Status>>>,
}

impl Stream for WatchStream {
    type Item = Result<pb::WatchEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(None) => Poll::Ready(
                self.end
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .map(Err),
            ),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    type ApplyStream = ReceiverStream<Result<pb::ApplyResponse, Status>>;
    type WatchStream = WatchStream;
    type ExportPiecesStream = ExportStream;

    async fn apply(
        &self,
        request: Request<Streaming<pb::ApplyRequest>>,
    ) -> Result<Response<Self::ApplyStream>, Status> {
        let slot = Self::stream_slot(
            &self.apply_streams,
            "Apply",
            self.limits.max_apply_streams,
            "--max-apply-streams",
        )?;
        let inbound = request.into_inner();
        let applier = Arc::clone(&self.applier);
        let max_snapshot_bytes = self.limits.max_snapshot_bytes;
        let (tx, rx) = mpsc::channel(APPLY_QUEUE);
        let open = crate::metrics::apply_stream_opened();
        // A panic in the task ends the stream with INTERNAL, never with a
        // clean end the client could take for "all answered".
        let panic_tx = tx.clone();
        let on_panic = move |status: Status| async move {
            let _ = panic_tx.send(Err(status)).await;
        };
        spawn_supervised(
            "Apply",
            async move {
                let _open = open; // counted until the stream's task ends
                let _slot = slot;
                let pieces = Assembly::new(max_snapshot_bytes);
                apply_stream::serve(&applier, inbound, tx, pieces, |request| {
                    apply_one(&applier, request)
                })
                .await;
            },
            on_panic,
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        Ok(Response::new(self.export(request.get_ref()).await?))
    }

    async fn export_pieces(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportPiecesStream>, Status> {
        Ok(Response::new(self.export_pieces(request.get_ref())?))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(self.watch(request.get_ref())?))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_lists_what_fits_and_counts_the_rest() {
        let few: Vec<String> = (0..3).map(|i| format!("problem {i}")).collect();
        assert_eq!(listed(few.clone()), few);

        let many: Vec<String> = (0..1500).map(|i| format!("problem {i}")).collect();
        let got = listed(many);
        assert_eq!(got.len(), MAX_LISTED_PROBLEMS + 1);
        assert_eq!(got[999], "problem 999");
        assert!(
            got[1000].starts_with("... and 500 more problems"),
            "{}",
            got[1000]
        );

        // Long lines: bounded by bytes before the count.
        let long: Vec<String> = (0..40).map(|_| "x".repeat(100_000)).collect();
        let got = listed(long);
        assert_eq!(got.len(), 11);
        assert!(
            got[10].starts_with("... and 30 more problems"),
            "{}",
            got[10]
        );
    }
}
