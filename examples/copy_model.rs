//! Copies the model of one sidecar into another over the Admin API, in
//! pieces: `ExportPieces` from `--from`, each piece sent on as it comes as a
//! `snapshot_piece` of one Apply update to `--to`, then the piece that ends
//! the update. No message either way is larger than about 1 MiB, however
//! large the model, so both sides keep their default message limits.
//!
//! ```text
//! cargo run --release --example copy_model -- \
//!     --from http://127.0.0.1:50052 --to http://127.0.0.1:50062 --token-file token
//! ```
//!
//! With `--whole` it copies in one message each way instead (`Export`, then
//! one `snapshot` Apply), for comparison: `--to` then needs an
//! `--admin-max-message-bytes` as large as the model.
//!
//! It prints the pieces, their bytes, the revision `--to` applied and the
//! time taken, and fails if the update is rejected.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use prost::Message;
use rolecall::pb;
use rolecall::pb::admin_client::AdminClient;
use rolecall::pb::apply_request::Body;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::Request;

#[derive(Parser, Debug)]
struct Args {
    /// The Admin address of the sidecar to copy from.
    #[arg(long)]
    from: String,
    /// The Admin address of the sidecar to copy to.
    #[arg(long)]
    to: String,
    /// A file holding the bearer token of both (one trailing newline is
    /// dropped).
    #[arg(long)]
    token_file: PathBuf,
    /// Copy this workspace only (default: every workspace).
    #[arg(long, default_value = "")]
    workspace: String,
    /// The update's source: `admin`, or `directory` to write items the
    /// directory manages that `--to` does not hold yet.
    #[arg(long, default_value = "admin")]
    source: String,
    /// One message each way instead of pieces.
    #[arg(long)]
    whole: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading {}", args.token_file.display()))?;
    let bearer: MetadataValue<Ascii> =
        format!("Bearer {}", token.trim_end_matches('\n'))
            .parse()
            .map_err(|_| anyhow!("{}: not a valid token", args.token_file.display()))?;
    let mut from = AdminClient::connect(args.from.clone())
        .await
        .with_context(|| format!("connecting to {}", args.from))?
        .max_decoding_message_size(usize::MAX);
    let mut to = AdminClient::connect(args.to.clone())
        .await
        .with_context(|| format!("connecting to {}", args.to))?
        .max_encoding_message_size(usize::MAX);

    let started = Instant::now();
    let request_id = format!(
        "copy-{}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()
    );
    let request = |body| pb::ApplyRequest {
        request_id: request_id.clone(),
        source: args.source.clone(),
        expected_revision: String::new(),
        body: Some(body),
    };
    let piece =
        |workspace, last| Body::SnapshotPiece(Box::new(pb::SnapshotPiece { workspace, last }));
    let (tx, rx) = mpsc::channel(4);
    let mut answers = to
        .apply(authed(&bearer, ReceiverStream::new(rx)))
        .await
        .context("Apply")?
        .into_inner();
    let export = pb::ExportRequest {
        workspace: args.workspace.clone(),
    };
    // The answers are read only at the end: a send fails only if the
    // stream has ended, and its end says why.
    let (mut messages, mut bytes) = (0usize, 0usize);
    let revision = if args.whole {
        let whole = from
            .export(authed(&bearer, export))
            .await
            .context("Export")?
            .into_inner();
        bytes += whole.encoded_len();
        messages += 1;
        let snapshot = whole.snapshot.unwrap_or_default();
        let _ = tx.send(request(Body::Snapshot(snapshot))).await;
        whole.revision
    } else {
        let mut pieces = from
            .export_pieces(authed(&bearer, export))
            .await
            .context("ExportPieces")?
            .into_inner();
        let mut revision = String::new();
        while let Some(p) = pieces.message().await.context("ExportPieces")? {
            bytes += p.encoded_len();
            messages += 1;
            revision = p.revision;
            if tx.send(request(piece(p.workspace, false))).await.is_err() {
                break;
            }
        }
        let _ = tx.send(request(piece(None, true))).await;
        revision
    };
    drop(tx);
    let answer = answers
        .message()
        .await
        .context("Apply")?
        .ok_or_else(|| anyhow!("Apply ended without an answer"))?;
    let seconds = started.elapsed().as_secs_f64();
    match answer.result {
        Some(pb::apply_response::Result::Revision(applied)) => println!(
            "copied revision {revision} of {} in {messages} message(s) ({bytes} bytes) as revision \
             {applied} of {} in {seconds:.2} s",
            args.from, args.to
        ),
        Some(pb::apply_response::Result::Rejected(r)) => {
            bail!(
                "{} rejected the copy:\n  {}",
                args.to,
                r.problems.join("\n  ")
            )
        }
        None => bail!("{} answered neither a revision nor a rejection", args.to),
    }
    Ok(())
}

/// `message` with the bearer token.
fn authed<T>(bearer: &MetadataValue<Ascii>, message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert("authorization", bearer.clone());
    r
}
