//! A gRPC load generator for `rolecall serve`, with the generated tonic
//! client: `rolecall.v1.Authz/Check`, `ListVisible`, or
//! `grpc.health.v1.Health/Check` (the transport floor: the same server's
//! cheapest RPC under the same load).
//!
//! ```text
//! rolecall gen --preset small --out small.json --requests-out small.requests.jsonl
//! rolecall serve --snapshot small.json --listen 127.0.0.1:50151 &
//! cargo run --release --example loadgen -- --addr 127.0.0.1:50151 \
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
//! that every Check answer equals the file's `allowed`.
//!
//! Every gRPC status is checked and counted by code; any error not allowed
//! by `--allow-code`, any health answer other than SERVING, and any
//! `allowed` mismatch make the run fail (exit 1). Only loopback targets are
//! accepted. The last line on stdout is a `key=value` summary:
//! `loadgen method=check ... rps=... p50_us=... p90_us=... p99_us=...
//! p999_us=... errors=0 mismatches=0`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rolecall::pb;
use rolecall::pb::authz_client::AuthzClient;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// rolecall.v1.Authz/Check
    Check,
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
        .ok_or_else(|| anyhow!("--requests FILE is required for --method check/list"))?;
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
        if args.check_allowed && args.method == Method::Check && line.allowed.is_none() {
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
            Method::Check => Call::Check(
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
    Ok(calls)
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
                if let Some(e) = expect {
                    if r.get_ref().allowed != *e {
                        t.mismatches += 1;
                    }
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
            deadline,
        ));
    }
    let mut total = Tally::new()?;
    while let Some(done) = set.join_next().await {
        total.merge(done.context("worker panicked")??)?;
    }
    Ok((total, t0.elapsed()))
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
        Method::List => "list",
        Method::Health => "health",
    };
    eprintln!(
        "loadgen: {name} on {target}: {} connections x {} streams, {} distinct requests, warm-up {} calls, then {} calls or {:.1}s",
        args.connections,
        args.streams,
        calls.len(),
        args.warmup,
        args.count,
        args.duration
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
    let (t, wall) = phase(&conns, args.streams, &calls, args.count, limit, offset).await?;

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
        "loadgen: {done} calls in {secs:.3}s = {rps:.0} req/s; latency µs p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} mean {:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        t.hist.max() as f64 / 1000.0,
        t.hist.mean() / 1000.0
    );
    if args.method == Method::List {
        eprintln!(
            "loadgen: {:.1} ids per page on average",
            t.list_ids as f64 / t.ok.max(1) as f64
        );
    }
    let ok = unexpected == 0 && t.mismatches == 0 && t.not_serving == 0 && warm_bad == 0;
    println!(
        "loadgen method={name} conns={} streams={} n={done} secs={secs:.3} rps={rps:.0} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} errors={} errors_by_code={} unexpected_errors={unexpected} mismatches={} not_serving={} warmup_calls={warm_calls} warmup_failures={warm_bad} checked_allowed={} ok={ok}",
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
        args.check_allowed && args.method == Method::Check,
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
            eprintln!("loadgen: FAILED (unexpected errors, mismatches or not SERVING)");
            Ok(std::process::ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            Ok(std::process::ExitCode::from(2))
        }
    }
}
