//! A gRPC load generator for `rolecall serve`, with the generated tonic
//! client: `rolecall.v1.Authz/Check`, `CheckBatch`, `ListVisible`, or
//! `grpc.health.v1.Health/Check` (the transport floor: the same server's
//! cheapest RPC under the same load).
//!
//! ```text
//! rolecall gen --preset small --out small.json --requests-out small.requests.jsonl
//! rolecall serve --snapshot small.json --listen 127.0.0.1:30151 &
//! cargo run --release --example loadgen -- --addr 127.0.0.1:30151 \
//!     --method check --requests small.requests.jsonl --check-allowed \
//!     --connections 16 --streams 16 -n 200000 --duration 30
//! ```
//!
//! `--connections` HTTP/2 connections each carry `--streams` calls in flight
//! (one task per stream, each sending its next call when the last is
//! answered). A warm-up phase (`--warmup` calls, not counted) runs first;
//! the measured phase ends after `-n` calls or `--duration` seconds,
//! whichever comes first. Requests come round-robin from a JSONL file as
//! written by `rolecall gen --requests-out` (`workspace`, `subject`,
//! `action`, `resource` = "type:id", `allowed`); `--check-allowed` asserts
//! that every Check answer equals the file's `allowed`. `--method batch`
//! sends the file's requests `--batch-size` at a time in CheckBatch calls
//! (`--check-allowed` then checks every answer of every batch; the summary
//! adds `decisions_per_s`).
//!
//! Every gRPC status is checked and counted by code; any error not allowed
//! by `--allow-code`, any health answer other than SERVING, and any
//! `allowed` mismatch make the run fail (exit 1). Only loopback targets are
//! accepted. The last line on stdout is a `key=value` summary:
//! `loadgen method=check ... rps=... p50_us=... p90_us=... p99_us=...
//! p999_us=... errors=0 mismatches=0`.
//!
//! **Deltas while it measures** (`--apply-rate N`, `bench/deltas.sh`): one
//! Admin `Apply` stream sends N one-record deltas per second during the
//! measured phase, on the same runtime as the calls:
//!
//! ```text
//! cargo run --release --example loadgen -- --addr 127.0.0.1:30151 \
//!     --method check --requests large.requests.jsonl --check-allowed \
//!     --apply-rate 1000 --admin-addr 127.0.0.1:30152 \
//!     --admin-token-file token --apply-model large.json --duration 20
//! ```
//!
//! Each delta upserts one existing resource of `--apply-type` (`record`)
//! from the snapshot file `--apply-model` (JSON, as `rolecall gen --out`
//! writes it) with its parent unchanged and its labels redrawn the way
//! `rolecall gen` draws them (0–2 labels, each one of the parent's with
//! p = 0.6, else any label of the workspace), always different from its
//! current ones: a resource-only delta, the server's incremental path.
//! Resources named by the requests file are never changed, so
//! `--check-allowed` stays valid while the deltas stream in. Deltas are sent
//! on a fixed schedule (`N × elapsed` sent by any instant, catching up when
//! behind) with at most `--apply-window` unanswered; every answer must carry
//! its request's id and a revision above the previous one (a rejection, an
//! error or a missing answer fails the run). The summary line then also has
//! `apply_acked`, the achieved `apply_rate` and the ack latency
//! `apply_p50_us`/`apply_p99_us` (from handing the delta to the stream to
//! its answer), and the run ends with one Check `at_least` the last
//! acknowledged revision (read-your-writes).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rolecall::gen::Rng;
use rolecall::pb;
use rolecall::pb::admin_client::AdminClient;
use rolecall::pb::authz_client::AuthzClient;
use tokio::sync::{mpsc, Semaphore};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// rolecall.v1.Authz/Check
    Check,
    /// rolecall.v1.Authz/CheckBatch of --batch-size consecutive requests
    Batch,
    /// rolecall.v1.Authz/ListVisible (first page; subject, workspace and
    /// resource type from the requests file, action `read`)
    List,
    /// grpc.health.v1.Health/Check for the overall status ("")
    Health,
}

#[derive(Debug, Parser)]
#[command(about = "gRPC load generator for rolecall (loopback only)")]
struct Args {
    /// Server address (host:port); must resolve to loopback only.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    #[arg(long, value_enum, default_value_t = Method::Check)]
    method: Method,
    /// JSONL requests file (`rolecall gen --requests-out`); required for
    /// check and list.
    #[arg(long)]
    requests: Option<PathBuf>,
    /// Use only this line (0-based) of the requests file, like h2load's
    /// single body.
    #[arg(long)]
    only_line: Option<usize>,
    /// Assert that each Check answer's `allowed` equals the file's.
    #[arg(long)]
    check_allowed: bool,
    /// HTTP/2 connections.
    #[arg(short = 'c', long, default_value_t = 16)]
    connections: usize,
    /// Calls in flight per connection.
    #[arg(short = 'm', long, default_value_t = 16)]
    streams: usize,
    /// Measured calls (the phase ends at this count or at --duration).
    #[arg(short = 'n', long, default_value_t = 200_000)]
    count: u64,
    /// Longest measured phase, in seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Warm-up calls before measuring (not counted; also bounded by
    /// --duration).
    #[arg(long, default_value_t = 20_000)]
    warmup: u64,
    /// Checks per CheckBatch call.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Page size for ListVisible.
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    /// gRPC codes that do not fail the run (e.g. `not-found`), repeatable.
    #[arg(long = "allow-code", value_parser = parse_code)]
    allow_codes: Vec<Code>,
    /// Runtime worker threads; 1 = a current-thread runtime (for one
    /// pinned core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// One-record deltas per second on an Admin Apply stream during the
    /// measured phase (0 = none).
    #[arg(long, default_value_t = 0.0)]
    apply_rate: f64,
    /// The Admin listener (host:port, loopback only), for --apply-rate.
    #[arg(long)]
    admin_addr: Option<String>,
    /// A file holding the Admin bearer token (one trailing newline is
    /// ignored), for --apply-rate.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// The snapshot file the server was started with (JSON): the resources
    /// the deltas change, with their parents and labels.
    #[arg(long)]
    apply_model: Option<PathBuf>,
    /// The resource type the deltas upsert.
    #[arg(long, default_value = "record")]
    apply_type: String,
    /// The most deltas sent and not yet answered.
    #[arg(long, default_value_t = 256)]
    apply_window: usize,
    /// Seed for choosing the resources and their new labels.
    #[arg(long, default_value_t = 1)]
    apply_seed: u64,
}

fn parse_code(s: &str) -> Result<Code, String> {
    let norm: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let all = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];
    all.into_iter()
        .find(|c| format!("{c:?}").to_ascii_lowercase() == norm || (*c as i32).to_string() == norm)
        .ok_or_else(|| format!("unknown gRPC code {s:?}"))
}

/// One line of the requests file.
#[derive(Debug, serde::Deserialize)]
struct Line {
    workspace: String,
    subject: String,
    action: String,
    resource: String,
    allowed: Option<bool>,
}

/// A prepared call and the answer expected for it.
#[derive(Debug, Clone)]
enum Call {
    Check(pb::CheckRequest, Option<bool>),
    /// The batch and each check's expected answer.
    Batch(pb::CheckBatchRequest, Vec<Option<bool>>),
    List(pb::ListVisibleRequest),
    Health,
}

fn read_calls(args: &Args) -> Result<Vec<Call>> {
    if args.method == Method::Health {
        return Ok(vec![Call::Health]);
    }
    let path = args
        .requests
        .as_ref()
        .ok_or_else(|| anyhow!("--requests FILE is required for --method check/batch/list"))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut calls = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        if args.only_line.is_some_and(|k| k != i) {
            continue;
        }
        let line: Line = serde_json::from_str(raw)
            .with_context(|| format!("{}:{}: bad request line", path.display(), i + 1))?;
        if args.check_allowed && checks_answers(args.method) && line.allowed.is_none() {
            bail!(
                "{}:{}: --check-allowed but the line has no `allowed`",
                path.display(),
                i + 1
            );
        }
        let (type_, id) = line.resource.split_once(':').ok_or_else(|| {
            anyhow!(
                "{}:{}: resource {:?} is not type:id",
                path.display(),
                i + 1,
                line.resource
            )
        })?;
        calls.push(match args.method {
            Method::Check | Method::Batch => Call::Check(
                pb::CheckRequest {
                    workspace: line.workspace,
                    subject: line.subject,
                    action: line.action,
                    resource: Some(pb::ResourceRef {
                        r#type: type_.to_string(),
                        id: id.to_string(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                // compared only with --check-allowed
                line.allowed.filter(|_| args.check_allowed),
            ),
            Method::List => Call::List(pb::ListVisibleRequest {
                workspace: line.workspace,
                subject: line.subject,
                resource_type: type_.to_string(),
                action: "read".to_string(),
                page_size: args.page_size,
                ..Default::default()
            }),
            Method::Health => Call::Health,
        });
    }
    if calls.is_empty() {
        bail!("no requests in {}", path.display());
    }
    if args.method == Method::Batch {
        if args.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        return Ok(calls.chunks(args.batch_size).map(batch).collect());
    }
    Ok(calls)
}

/// Whether the method's answers are decisions `--check-allowed` compares.
fn checks_answers(method: Method) -> bool {
    matches!(method, Method::Check | Method::Batch)
}

/// One CheckBatch of Check calls.
fn batch(checks: &[Call]) -> Call {
    let (checks, expected) = checks
        .iter()
        .filter_map(|c| match c {
            Call::Check(req, expect) => Some((req.clone(), *expect)),
            _ => None,
        })
        .unzip();
    Call::Batch(
        pb::CheckBatchRequest {
            checks,
            consistency: None,
        },
        expected,
    )
}

/// The checks a call makes.
fn checks_of(call: &Call) -> &[pb::CheckRequest] {
    match call {
        Call::Check(req, _) => std::slice::from_ref(req),
        Call::Batch(b, _) => &b.checks,
        Call::List(_) | Call::Health => &[],
    }
}

/// Resolves `addr` and refuses anything that is not loopback.
fn loopback(addr: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .collect();
    if addrs.is_empty() {
        bail!("{addr} resolves to nothing");
    }
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        bail!("refusing non-loopback target {addr} ({bad}): this load generator is loopback only");
    }
    Ok(addrs[0])
}

/// What one worker saw.
struct Tally {
    hist: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<i32, u64>,
    mismatches: u64,
    not_serving: u64,
    list_ids: u64,
    /// The newest revision a Check answer was computed at.
    max_revision: u64,
    /// The slowest call: its latency (ns) and when it started, in seconds
    /// since the phase began.
    slowest: (u64, f64),
}

impl Tally {
    fn new() -> Result<Tally> {
        Ok(Tally {
            // 1 µs .. 60 s in nanoseconds, 3 significant digits
            hist: Histogram::new_with_bounds(1_000, 60_000_000_000, 3)?,
            ok: 0,
            errors: BTreeMap::new(),
            mismatches: 0,
            not_serving: 0,
            list_ids: 0,
            max_revision: 0,
            slowest: (0, 0.0),
        })
    }

    fn merge(&mut self, o: Tally) -> Result<()> {
        self.hist.add(&o.hist)?;
        self.ok += o.ok;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.mismatches += o.mismatches;
        self.not_serving += o.not_serving;
        self.list_ids += o.list_ids;
        self.max_revision = self.max_revision.max(o.max_revision);
        if o.slowest.0 > self.slowest.0 {
            self.slowest = o.slowest;
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Clients {
    authz: AuthzClient<Channel>,
    health: HealthClient<Channel>,
}

/// Sends calls until `budget` calls have been started or `deadline` passes.
async fn worker(
    mut cl: Clients,
    calls: Arc<Vec<Call>>,
    start_at: usize,
    started: Arc<AtomicU64>,
    budget: u64,
    phase_start: Instant,
    deadline: Instant,
) -> Result<Tally> {
    let mut t = Tally::new()?;
    let mut i = start_at;
    loop {
        if started.fetch_add(1, Ordering::Relaxed) >= budget || Instant::now() >= deadline {
            break;
        }
        let call = &calls[i % calls.len()];
        i = i.wrapping_add(1);
        let t0 = Instant::now();
        let outcome: Result<(), tonic::Status> = match call {
            Call::Check(req, expect) => cl.authz.check(req.clone()).await.map(|r| {
                let r = r.get_ref();
                if let Some(e) = expect {
                    if r.allowed != *e {
                        t.mismatches += 1;
                    }
                }
                if let Ok(rev) = r.revision.parse::<u64>() {
                    t.max_revision = t.max_revision.max(rev);
                }
            }),
            Call::Batch(req, expect) => cl.authz.check_batch(req.clone()).await.map(|r| {
                let r = r.get_ref();
                if r.results.len() != expect.len() {
                    t.mismatches += expect.len() as u64;
                } else {
                    for (answer, e) in r.results.iter().zip(expect) {
                        if e.is_some_and(|e| answer.allowed != e) {
                            t.mismatches += 1;
                        }
                    }
                }
                if let Ok(rev) = r.revision.parse::<u64>() {
                    t.max_revision = t.max_revision.max(rev);
                }
            }),
            Call::List(req) => cl.authz.list_visible(req.clone()).await.map(|r| {
                t.list_ids += r.get_ref().ids.len() as u64;
            }),
            Call::Health => cl
                .health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|r| {
                    if r.get_ref().status != ServingStatus::Serving as i32 {
                        t.not_serving += 1;
                    }
                }),
        };
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        t.hist.saturating_record(ns);
        if ns > t.slowest.0 {
            t.slowest = (ns, (t0 - phase_start).as_secs_f64());
        }
        match outcome {
            Ok(()) => t.ok += 1,
            Err(s) => *t.errors.entry(s.code() as i32).or_default() += 1,
        }
    }
    Ok(t)
}

/// One phase: every stream of every connection, until the budget or the
/// deadline. Returns the merged tally and the phase's wall time.
async fn phase(
    conns: &[Clients],
    streams: usize,
    calls: &Arc<Vec<Call>>,
    budget: u64,
    limit: Duration,
    offset: usize,
) -> Result<(Tally, Duration)> {
    let started = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + limit;
    let workers = conns.len() * streams;
    let mut set = tokio::task::JoinSet::new();
    for (w, cl) in (0..workers).map(|w| (w, &conns[w % conns.len()])) {
        // spread the workers over the file
        let start_at = offset + w * calls.len() / workers.max(1);
        set.spawn(worker(
            cl.clone(),
            Arc::clone(calls),
            start_at,
            Arc::clone(&started),
            budget,
            t0,
            deadline,
        ));
    }
    let mut total = Tally::new()?;
    while let Some(done) = set.join_next().await {
        total.merge(done.context("worker panicked")??)?;
    }
    Ok((total, t0.elapsed()))
}

// ------------------------------------------------------------------ deltas

/// The parts of a snapshot file the deltas need (everything else is
/// skipped while parsing).
#[derive(serde::Deserialize)]
struct ModelFile {
    workspaces: Vec<ModelWorkspace>,
}

#[derive(serde::Deserialize)]
struct ModelWorkspace {
    id: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    resources: Vec<ModelResource>,
}

#[derive(serde::Deserialize)]
struct ModelResource {
    #[serde(rename = "type")]
    type_: String,
    id: String,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
}

/// One resource the deltas may change, with its labels as last sent.
struct Target {
    ws: usize,
    id: String,
    parent: Option<String>,
    labels: Vec<String>,
}

/// The resources the deltas change, and what their new labels are drawn
/// from.
struct Pool {
    type_: String,
    workspaces: Vec<String>,
    /// Per workspace: its labels.
    labels: Vec<Vec<String>>,
    /// Per workspace: the labels of each parent ("type:id") of a target.
    parent_labels: Vec<HashMap<String, Vec<String>>>,
    targets: Vec<Target>,
    /// Resources of the type left out because the requests file names them.
    excluded: usize,
}

/// Reads the targets of `type_` from the snapshot file at `path`, leaving
/// out the (workspace, "type:id") pairs in `exclude`.
fn load_pool(path: &Path, type_: &str, exclude: &HashSet<(String, String)>) -> Result<Pool> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let model: ModelFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a snapshot file in JSON (`rolecall gen --out`)",
            path.display()
        )
    })?;
    drop(text);
    let mut pool = Pool {
        type_: type_.to_string(),
        workspaces: Vec::new(),
        labels: Vec::new(),
        parent_labels: Vec::new(),
        targets: Vec::new(),
        excluded: 0,
    };
    for ws in model.workspaces {
        if ws.labels.is_empty() {
            continue; // no label to change a resource's labels to
        }
        let w = pool.workspaces.len();
        let mut parents = HashSet::new();
        for r in ws.resources.iter().filter(|r| r.type_ == type_) {
            if exclude.contains(&(ws.id.clone(), format!("{}:{}", r.type_, r.id))) {
                pool.excluded += 1;
                continue;
            }
            if let Some(p) = &r.parent {
                parents.insert(p.clone());
            }
            pool.targets.push(Target {
                ws: w,
                id: r.id.clone(),
                parent: r.parent.clone(),
                labels: r.labels.clone(),
            });
        }
        let mut parent_labels = HashMap::new();
        for r in ws.resources {
            let key = format!("{}:{}", r.type_, r.id);
            if parents.contains(&key) {
                parent_labels.insert(key, r.labels);
            }
        }
        pool.workspaces.push(ws.id);
        pool.labels.push(ws.labels);
        pool.parent_labels.push(parent_labels);
    }
    if pool.targets.is_empty() {
        bail!(
            "{}: no `{type_}` resource to change (in a workspace with labels, not named by the requests file)",
            path.display()
        );
    }
    Ok(pool)
}

/// New labels for a resource, drawn as `rolecall gen` draws a record's
/// (0–2 labels, each one of its parent's with p = 0.6, else any label of
/// the workspace), and never the same set as `current`.
fn redraw(rng: &mut Rng, current: &[String], near: &[String], all: &[String]) -> Vec<String> {
    let same = |a: &[String], b: &[String]| {
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        a.sort();
        b.sort();
        a == b
    };
    for _ in 0..16 {
        let k = rng.below(3);
        let mut out: Vec<String> = Vec::with_capacity(k);
        for _ in 0..k {
            let pick = if !near.is_empty() && rng.random() < 0.6 {
                rng.choice(near)
            } else {
                rng.choice(all)
            };
            if let Some(l) = pick {
                if !out.contains(l) {
                    out.push(l.clone());
                }
            }
        }
        if !same(&out, current) {
            return out;
        }
    }
    // practically never reached: one label if it had none, else none
    if current.is_empty() {
        all.iter().take(1).cloned().collect()
    } else {
        Vec::new()
    }
}

impl Pool {
    /// Delta `seq`: one random target upserted with new labels.
    fn delta(&mut self, rng: &mut Rng, seq: u64) -> pb::ApplyRequest {
        let i = rng.below(self.targets.len());
        let t = &mut self.targets[i];
        let near = t
            .parent
            .as_ref()
            .and_then(|p| self.parent_labels[t.ws].get(p))
            .map_or(&[][..], Vec::as_slice);
        t.labels = redraw(rng, &t.labels, near, &self.labels[t.ws]);
        pb::ApplyRequest {
            request_id: format!("lg-{seq}"),
            source: "admin".into(),
            expected_revision: String::new(),
            body: Some(pb::apply_request::Body::Delta(pb::Delta {
                workspace: self.workspaces[t.ws].clone(),
                changes: vec![pb::Change {
                    change: Some(pb::change::Change::UpsertResource(pb::Resource {
                        r#type: self.type_.clone(),
                        id: t.id.clone(),
                        parent: t.parent.clone(),
                        labels: t.labels.clone(),
                    })),
                }],
            })),
        }
    }
}

/// Adds `authorization: Bearer <token>` to every Admin call.
#[derive(Clone)]
struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert("authorization", self.0.clone());
        Ok(r)
    }
}

type Admin = AdminClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// What the Apply stream did.
struct ApplyOutcome {
    sent: u64,
    acked: u64,
    rejected: u64,
    /// Seconds from the first scheduled delta to the stop.
    secs: f64,
    /// Ack latency, ns.
    hist: Histogram<u64>,
    first_revision: Option<u64>,
    last_revision: u64,
    /// The most deltas the sender was ever behind its schedule.
    max_lag: u64,
    /// The slowest answer: its latency (ns) and when its delta was sent, in
    /// seconds since the first was due.
    slowest: (u64, f64),
    errors: Vec<String>,
    /// Kept until the report is printed: freeing a million resources' small
    /// strings takes about 100 ms on the runtime's thread, which would stall
    /// the last calls of the phase.
    _pool: Pool,
}

/// Streams deltas at `rate` per second on one Apply stream for `limit` (or
/// until `stop`, when the calls end first), then waits for every answer.
/// Never more than `window` unanswered.
async fn applier(
    mut admin: Admin,
    mut pool: Pool,
    rate: f64,
    window: usize,
    seed: u64,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> Result<ApplyOutcome> {
    let mut hist = Histogram::new_with_bounds(1_000, 60_000_000_000, 3)?;
    let (tx, rx) = mpsc::channel::<pb::ApplyRequest>(window);
    let mut answers = admin
        .apply(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .context("opening the Apply stream")?
        .into_inner();
    // (seq, when it was handed to the stream), in send order: the answers
    // come in the same order
    let (times_tx, mut times_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let sem = Semaphore::new(window);
    let failed = AtomicBool::new(false);
    // set by the sender before it ends the request stream
    let done = AtomicBool::new(false);
    let (sem, failed, done, stop) = (&sem, &failed, &done, &stop);

    let t0 = Instant::now();
    let send = async move {
        let mut rng = Rng::new(seed, 0, 0xde17a);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (mut sent, mut max_lag) = (0u64, 0u64);
        'run: loop {
            tick.tick().await;
            // at the phase's own deadline, not after it: the calls' end
            // (merging their tallies) would delay the last answers
            if stop.load(Ordering::Relaxed)
                || failed.load(Ordering::Relaxed)
                || t0.elapsed() >= limit
            {
                break;
            }
            // deltas due by now; the timer is coarse, so send what is due
            let due = (t0.elapsed().as_secs_f64() * rate) as u64;
            max_lag = max_lag.max(due.saturating_sub(sent));
            while sent < due {
                match sem.acquire().await {
                    Ok(permit) => permit.forget(), // given back by the answer
                    Err(_) => break 'run,          // closed: the answers failed
                }
                if stop.load(Ordering::Relaxed) {
                    break 'run;
                }
                let req = pool.delta(&mut rng, sent);
                let _ = times_tx.send((sent, Instant::now()));
                if tx.send(req).await.is_err() {
                    failed.store(true, Ordering::Relaxed);
                    break 'run;
                }
                sent += 1;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        drop(tx); // ends the request stream: the server then ends its answers
        (sent, secs, max_lag, pool)
    };

    let hist_ref = &mut hist;
    let recv = async move {
        let mut errors = Vec::new();
        let (mut acked, mut rejected, mut first, mut last) = (0u64, 0u64, None, 0u64);
        let mut slowest = (0u64, 0.0f64);
        loop {
            match answers.message().await {
                Ok(Some(a)) => {
                    let now = Instant::now();
                    let Ok((seq, at)) = times_rx.try_recv() else {
                        errors.push(format!("an answer ({:?}) to no delta", a.request_id));
                        break;
                    };
                    sem.add_permits(1);
                    let ns = u64::try_from((now - at).as_nanos()).unwrap_or(u64::MAX);
                    hist_ref.saturating_record(ns);
                    if ns > slowest.0 {
                        slowest = (ns, (at - t0).as_secs_f64());
                    }
                    if a.request_id != format!("lg-{seq}") {
                        errors.push(format!(
                            "answer {:?} where lg-{seq} was expected",
                            a.request_id
                        ));
                        break;
                    }
                    match a.result {
                        Some(pb::apply_response::Result::Revision(r)) => match r.parse::<u64>() {
                            Ok(r) if r > last => {
                                first.get_or_insert(r);
                                last = r;
                                acked += 1;
                            }
                            Ok(r) => {
                                errors.push(format!(
                                    "lg-{seq}: revision {r} is not above the previous one ({last})"
                                ));
                                break;
                            }
                            Err(_) => {
                                errors.push(format!("lg-{seq}: revision {r:?} is not a number"));
                                break;
                            }
                        },
                        Some(pb::apply_response::Result::Rejected(p)) => {
                            rejected += 1;
                            errors.push(format!("lg-{seq} rejected: {}", p.problems.join("; ")));
                            break;
                        }
                        None => {
                            errors.push(format!("lg-{seq}: an answer with no result"));
                            break;
                        }
                    }
                }
                Ok(None) => {
                    if !done.load(Ordering::Relaxed) {
                        errors.push("the server ended the Apply stream early".to_string());
                    }
                    break;
                }
                Err(status) => {
                    errors.push(format!("Apply stream: {status}"));
                    break;
                }
            }
        }
        if !errors.is_empty() {
            failed.store(true, Ordering::Relaxed);
            sem.close();
        }
        (acked, rejected, first, last, slowest, errors)
    };

    let (
        (sent, secs, max_lag, pool),
        (acked, rejected, first_revision, last_revision, slowest, mut errors),
    ) = tokio::join!(send, recv);
    if errors.is_empty() && acked != sent {
        errors.push(format!("{} of {sent} deltas unanswered", sent - acked));
    }
    Ok(ApplyOutcome {
        sent,
        acked,
        rejected,
        secs,
        hist,
        first_revision,
        last_revision,
        max_lag,
        slowest,
        errors,
        _pool: pool,
    })
}

/// The Admin client for --apply-rate, after checking its options.
async fn admin_client(args: &Args) -> Result<Admin> {
    let addr = args
        .admin_addr
        .as_deref()
        .ok_or_else(|| anyhow!("--apply-rate needs --admin-addr"))?;
    let target = loopback(addr)?;
    let token_file = args
        .admin_token_file
        .as_ref()
        .ok_or_else(|| anyhow!("--apply-rate needs --admin-token-file"))?;
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("reading {}", token_file.display()))?;
    let token = token.strip_suffix('\n').unwrap_or(&token);
    let mut bearer: MetadataValue<tonic::metadata::Ascii> = format!("Bearer {token}")
        .parse()
        .map_err(|_| anyhow!("{}: not a valid token", token_file.display()))?;
    bearer.set_sensitive(true);
    let uri = format!("http://{target}");
    let ch = Endpoint::from_shared(uri.clone())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to the Admin listener {uri}"))?;
    Ok(AdminClient::with_interceptor(ch, Bearer(bearer)))
}

fn code_name(c: i32) -> String {
    format!("{:?}", Code::from_i32(c))
}

async fn run(args: Args) -> Result<bool> {
    let target = loopback(&args.addr)?;
    if args.connections == 0 || args.streams == 0 {
        bail!("--connections and --streams must be at least 1");
    }
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        bail!("--duration must be a positive number of seconds");
    }
    let calls = Arc::new(read_calls(&args)?);
    // --apply-rate: the resources to change and the Admin client
    let apply = if args.apply_rate != 0.0 {
        if !(args.apply_rate > 0.0 && args.apply_rate.is_finite()) {
            bail!("--apply-rate must be a positive number of deltas per second (or 0)");
        }
        if args.apply_window == 0 {
            bail!("--apply-window must be at least 1");
        }
        let model = args
            .apply_model
            .as_ref()
            .ok_or_else(|| anyhow!("--apply-rate needs --apply-model FILE"))?;
        // what the requests file names stays as it is, so its answers hold
        let exclude: HashSet<(String, String)> = calls
            .iter()
            .flat_map(checks_of)
            .filter_map(|r| {
                r.resource
                    .as_ref()
                    .map(|res| (r.workspace.clone(), format!("{}:{}", res.r#type, res.id)))
            })
            .collect();
        let t0 = Instant::now();
        let pool = load_pool(model, &args.apply_type, &exclude)?;
        eprintln!(
            "loadgen: deltas: {} `{}` resources of {} in {} workspace(s) may change ({} left out: the requests name them); read in {:.1}s",
            pool.targets.len(),
            pool.type_,
            model.display(),
            pool.workspaces.len(),
            pool.excluded,
            t0.elapsed().as_secs_f64()
        );
        Some((admin_client(&args).await?, pool))
    } else {
        None
    };
    let uri = format!("http://{target}");
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        // one Endpoint::connect = one HTTP/2 connection
        let ch = Endpoint::from_shared(uri.clone())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to {uri}"))?;
        conns.push(Clients {
            authz: AuthzClient::new(ch.clone()).max_decoding_message_size(64 * 1024 * 1024),
            health: HealthClient::new(ch),
        });
    }
    let limit = Duration::from_secs_f64(args.duration);
    let name = match args.method {
        Method::Check => "check",
        Method::Batch => "batch",
        Method::List => "list",
        Method::Health => "health",
    };
    eprintln!(
        "loadgen: {name} on {target}: {} connections x {} streams, {} distinct requests, warm-up {} calls, then {} calls or {:.1}s{}",
        args.connections,
        args.streams,
        calls.len(),
        args.warmup,
        args.count,
        args.duration,
        if apply.is_some() {
            format!(
                ", with {} deltas/s on an Apply stream (window {})",
                args.apply_rate, args.apply_window
            )
        } else {
            String::new()
        }
    );
    let mut warm_bad = 0;
    let mut warm_calls = 0;
    if args.warmup > 0 {
        let (w, _) = phase(&conns, args.streams, &calls, args.warmup, limit, 0).await?;
        warm_calls = w.ok + w.errors.values().sum::<u64>();
        warm_bad = w.errors.values().sum::<u64>() + w.mismatches + w.not_serving;
        if warm_bad > 0 {
            eprintln!(
                "loadgen: warm-up: {} errors {:?}, {} mismatches, {} not serving",
                w.errors.values().sum::<u64>(),
                w.errors
                    .iter()
                    .map(|(c, n)| (code_name(*c), *n))
                    .collect::<Vec<_>>(),
                w.mismatches,
                w.not_serving
            );
        }
    }
    // the measured phase starts where the warm-up left off in the file
    let offset = usize::try_from(args.warmup).unwrap_or(0) % calls.len();
    let stop = Arc::new(AtomicBool::new(false));
    let apply_task = apply.map(|(admin, pool)| {
        tokio::spawn(applier(
            admin,
            pool,
            args.apply_rate,
            args.apply_window,
            args.apply_seed,
            limit,
            Arc::clone(&stop),
        ))
    });
    let (t, wall) = phase(&conns, args.streams, &calls, args.count, limit, offset).await?;
    stop.store(true, Ordering::Relaxed);
    let applied = match apply_task {
        None => None,
        Some(task) => Some(
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .map_err(|_| anyhow!("the Apply stream did not finish within 60 s of the stop"))?
                .context("the Apply task panicked")??,
        ),
    };
    // read-your-writes: a Check at_least the last acknowledged revision
    let mut ryw_ok = true;
    if let Some(a) = applied.as_ref().filter(|a| a.acked > 0) {
        if let Some(req) = calls.first().and_then(|c| checks_of(c).first()) {
            let mut req = tonic::Request::new(pb::CheckRequest {
                consistency: Some(pb::Consistency {
                    requirement: Some(pb::consistency::Requirement::AtLeast(
                        a.last_revision.to_string(),
                    )),
                }),
                ..req.clone()
            });
            req.set_timeout(Duration::from_secs(10));
            let mut cl = conns[0].authz.clone();
            ryw_ok = match cl.check(req).await {
                Ok(r) if r.get_ref().revision.parse::<u64>().unwrap_or(0) >= a.last_revision => {
                    true
                }
                Ok(r) => {
                    eprintln!(
                        "loadgen: a Check at_least {} answered at revision {:?}",
                        a.last_revision,
                        r.get_ref().revision
                    );
                    false
                }
                Err(s) => {
                    eprintln!("loadgen: a Check at_least {}: {s}", a.last_revision);
                    false
                }
            };
        }
    }

    let done = t.ok + t.errors.values().sum::<u64>();
    let secs = wall.as_secs_f64();
    let rps = done as f64 / secs.max(1e-9);
    let us = |q: f64| t.hist.value_at_quantile(q) as f64 / 1000.0;
    let unexpected: u64 = t
        .errors
        .iter()
        .filter(|(c, _)| !args.allow_codes.iter().any(|a| *a as i32 == **c))
        .map(|(_, n)| *n)
        .sum();
    let errors_by_code = t
        .errors
        .iter()
        .map(|(c, n)| format!("{}:{n}", code_name(*c)))
        .collect::<Vec<_>>()
        .join(",");
    eprintln!(
        "loadgen: {done} calls in {secs:.3}s = {rps:.0} req/s; latency µs p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} (sent {:.2}s into the phase) mean {:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        t.hist.max() as f64 / 1000.0,
        t.slowest.1,
        t.hist.mean() / 1000.0
    );
    if args.method == Method::List {
        eprintln!(
            "loadgen: {:.1} ids per page on average",
            t.list_ids as f64 / t.ok.max(1) as f64
        );
    }
    let mut batch_kv = String::new();
    if args.method == Method::Batch {
        let decisions = t.ok as f64 * args.batch_size as f64 / secs.max(1e-9);
        eprintln!(
            "loadgen: {decisions:.0} decisions/s in batches of {}",
            args.batch_size
        );
        batch_kv = format!(
            " batch_size={} decisions_per_s={decisions:.0}",
            args.batch_size
        );
    }
    let mut apply_kv = String::new();
    let mut apply_ok = true;
    if let Some(a) = &applied {
        let aus = |q: f64| a.hist.value_at_quantile(q) as f64 / 1000.0;
        let arate = a.acked as f64 / a.secs.max(1e-9);
        eprintln!(
            "loadgen: deltas: {} acknowledged of {} sent in {:.3}s = {arate:.1}/s (target {}); ack latency µs p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} (sent {:.2}s into the phase); revisions {}..{}; at most {} behind schedule; Checks saw revision {} at most",
            a.acked,
            a.sent,
            a.secs,
            args.apply_rate,
            aus(0.5),
            aus(0.9),
            aus(0.99),
            aus(0.999),
            a.hist.max() as f64 / 1000.0,
            a.slowest.1,
            a.first_revision.map_or("-".to_string(), |r| r.to_string()),
            a.last_revision,
            a.max_lag,
            t.max_revision
        );
        for e in a.errors.iter().take(10) {
            eprintln!("loadgen: Apply: {e}");
        }
        apply_ok = a.errors.is_empty() && a.rejected == 0 && a.acked == a.sent && ryw_ok;
        apply_kv = format!(
            " apply_rate_target={} apply_sent={} apply_acked={} apply_rejected={} apply_errors={} apply_secs={:.3} apply_rate={arate:.1} apply_p50_us={:.1} apply_p90_us={:.1} apply_p99_us={:.1} apply_p999_us={:.1} apply_max_us={:.1} apply_first_revision={} apply_last_revision={} apply_max_lag={} check_max_revision={} read_your_writes={}",
            args.apply_rate,
            a.sent,
            a.acked,
            a.rejected,
            a.errors.len(),
            a.secs,
            aus(0.5),
            aus(0.9),
            aus(0.99),
            aus(0.999),
            a.hist.max() as f64 / 1000.0,
            a.first_revision.unwrap_or(0),
            a.last_revision,
            a.max_lag,
            t.max_revision,
            if ryw_ok { "ok" } else { "FAILED" },
        );
    }
    let ok =
        unexpected == 0 && t.mismatches == 0 && t.not_serving == 0 && warm_bad == 0 && apply_ok;
    println!(
        "loadgen method={name} conns={} streams={} n={done} secs={secs:.3} rps={rps:.0} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} errors={} errors_by_code={} unexpected_errors={unexpected} mismatches={} not_serving={} warmup_calls={warm_calls} warmup_failures={warm_bad} checked_allowed={}{batch_kv}{apply_kv} ok={ok}",
        args.connections,
        args.streams,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        t.hist.max() as f64 / 1000.0,
        t.errors.values().sum::<u64>(),
        if errors_by_code.is_empty() { "-" } else { &errors_by_code },
        t.mismatches,
        t.not_serving,
        args.check_allowed && checks_answers(args.method),
    );
    Ok(ok)
}

fn main() -> Result<std::process::ExitCode> {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    match rt.block_on(run(args)) {
        Ok(true) => Ok(std::process::ExitCode::SUCCESS),
        Ok(false) => {
            eprintln!(
                "loadgen: FAILED (unexpected errors, mismatches, not SERVING, or a failed delta)"
            );
            Ok(std::process::ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            Ok(std::process::ExitCode::from(2))
        }
    }
}
