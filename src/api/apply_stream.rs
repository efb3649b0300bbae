//! One Admin `Apply` stream: requests are applied one at a time, in order,
//! each answered once it is durable (or refused), while the requests after
//! it are already read off the connection.
//!
//! Why read ahead: a control plane may pipeline many small updates without
//! waiting for each answer, and every update waits for an fsync. Requests
//! left unread pile up in the HTTP/2 layer, and h2 counts each small DATA
//! frame it holds against a budget that protects it from floods of tiny
//! frames; past a few hundred it ends the whole connection (GOAWAY
//! ENHANCE_YOUR_CALM, "too_many_data_frames"). Reading them into our own
//! queue hands their frames back at once. The queue is bounded
//! ([`READ_AHEAD_BYTES`]), so a client that sends far faster than updates
//! can be made durable still meets backpressure.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use prost::Message;
use tokio::sync::mpsc;
use tonic::{Code, Status, Streaming};
use tracing::{debug, info};

use crate::pb;
use crate::store::apply::Applier;
use crate::store::StoreError;

use super::snapshot_pieces::{Assembly, Next, PieceError};
use super::status::ApiError;

/// How much of a stream's requests may wait, read but not yet applied.
/// Each request counts as at least [`MIN_CHARGE`] bytes, so at most 65,536
/// small ones wait at once.
pub const READ_AHEAD_BYTES: usize = 64 << 20;
const MIN_CHARGE: usize = 1024;

/// What was read off the stream: a request, or how the stream ended.
enum Read {
    Request(pb::ApplyRequest, usize),
    /// The client closed its side (`None`), or reading failed.
    End(Option<Status>),
}

/// The answer to one request: `Err` ends the stream after it is sent.
type Answer = Result<pb::ApplyResponse, Status>;

/// Serves one Apply stream until it ends: the client closes its side and
/// every request is answered, reading fails, `pieces` refuses a snapshot
/// piece (see [`super::snapshot_pieces`]), an update cannot be made
/// durable, the answers' receiver goes away, or the sidecar shuts down
/// (an update being applied is finished and answered first; requests read
/// but not begun are not applied).
pub async fn serve<F, Fut>(
    applier: &Applier,
    mut inbound: Streaming<pb::ApplyRequest>,
    tx: mpsc::Sender<Answer>,
    mut pieces: Assembly,
    apply_one: F,
) where
    F: Fn(pb::ApplyRequest) -> Fut,
    Fut: Future<Output = Answer>,
{
    let mut waiting: VecDeque<Read> = VecDeque::new();
    let mut waiting_bytes = 0usize;
    let mut reading = true;
    let mut current: Option<Pin<Box<Fut>>> = None;
    loop {
        if current.is_none() {
            if applier.store().is_closing() {
                let _ = tx
                    .send(Err(ApiError::Store(StoreError::Closing).into()))
                    .await;
                return;
            }
            match waiting.pop_front() {
                Some(Read::Request(request, charge)) => {
                    waiting_bytes -= charge;
                    match pieces.take(request) {
                        Ok(Next::Apply(request)) => current = Some(Box::pin(apply_one(request))),
                        Ok(Next::Held) => continue,
                        Err(e) => return refuse_pieces(&tx, e).await,
                    }
                }
                Some(Read::End(None)) => {
                    if let Err(e) = pieces.finish() {
                        refuse_pieces(&tx, e).await;
                    }
                    return;
                }
                Some(Read::End(Some(status))) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                None => {}
            }
        }
        let may_read = reading && waiting_bytes < READ_AHEAD_BYTES;
        tokio::select! {
            biased;
            answer = finish(&mut current), if current.is_some() => {
                current = None;
                let last = answer.is_err();
                if last {
                    // Valid, but not made durable: nothing applied.
                    crate::metrics::update_failed();
                }
                if tx.send(answer).await.is_err() || last {
                    return;
                }
            }
            () = applier.store().closed(), if current.is_none() => {
                let _ = tx.send(Err(ApiError::Store(StoreError::Closing).into())).await;
                return;
            }
            next = inbound.message(), if may_read => {
                let read = match next {
                    Ok(Some(request)) => {
                        let charge = request.encoded_len().max(MIN_CHARGE);
                        waiting_bytes += charge;
                        Read::Request(request, charge)
                    }
                    Ok(None) => Read::End(None),
                    Err(status) => {
                        // The client went away, or sent a message over
                        // --admin-max-message-bytes: RESOURCE_EXHAUSTED, as
                        // SPEC 5 says (tonic says OUT_OF_RANGE).
                        debug!(error = %status, "Apply stream ended while reading a request");
                        Read::End(Some(match status.code() {
                            Code::OutOfRange => Status::resource_exhausted(format!(
                                "{} (raise --admin-max-message-bytes)",
                                status.message()
                            )),
                            _ => status,
                        }))
                    }
                };
                reading = matches!(read, Read::Request(..));
                waiting.push_back(read);
            }
            // Unreachable (reading stops only with an End queued), but a
            // select with every branch off would panic.
            else => return,
        }
    }
}

/// The update being applied, to its end.
async fn finish<Fut: Future>(current: &mut Option<Pin<Box<Fut>>>) -> Fut::Output {
    match current {
        Some(update) => update.await,
        None => std::future::pending().await,
    }
}

/// Ends the stream with why the pieces of an update were refused: the
/// update is not applied.
async fn refuse_pieces(tx: &mpsc::Sender<Answer>, e: PieceError) {
    info!(error = %e, "refused an update sent in pieces");
    crate::metrics::update_rejected();
    let _ = tx.send(Err(e.into())).await;
}
