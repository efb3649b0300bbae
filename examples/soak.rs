//! A mixed-load soak of a real `rolecall serve` process, loopback only,
//! bounded by time (RELIABILITY.md; run it with `bench/soak.sh`).
//!
//! It starts the release binary on the built-in demo model with a state dir
//! (every update fsynced, compaction included), then for `--seconds`:
//!
//! - `--clients` Authz clients, each on its own TCP connection, send Check
//!   (3 in 5), CheckBatch (1 in 5: the whole table below, in a rotated
//!   order) and ListVisible (1 in 5), paced to `--rps` in total. Every
//!   check is one of a fixed table whose answers the updates never touch:
//!   an answer that differs from the first one is an error.
//! - one Admin Apply stream sends `--applies-per-sec` deltas: delta `i` adds
//!   `mini:soak-i` (label site-a) and removes `mini:soak-(i-KEEP)`, so the
//!   model stays the same size while every revision changes it.
//! - `--watchers` Watch followers must see every revision, in order.
//!
//! It samples the server's RSS (`/proc/PID/status`) and the latency of each
//! RPC, and at the end checks that no acknowledged update was lost: every
//! `soak-i` still meant to exist is in Export and allowed to u-admin at
//! `at_least` the last acknowledged revision (one Check each, and again all
//! in one CheckBatch), and every removed one is gone.
//! It prints a report and exits non-zero on any unexpected error, lost
//! update, watcher gap, or RSS growth over the stated margin.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use hyper_util::rt::TokioIo;
use rolecall::pb;
use rolecall::pb::admin_client::AdminClient;
use rolecall::pb::authz_client::AuthzClient;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Parser, Debug)]
struct Args {
    /// The `rolecall` binary to soak (a release build).
    #[arg(long)]
    bin: PathBuf,
    /// Where the state dir, token, sockets and server log go.
    #[arg(long)]
    work: PathBuf,
    #[arg(long, env = "SOAK_SECONDS", default_value_t = 600)]
    seconds: u64,
    #[arg(long, env = "SOAK_CLIENTS", default_value_t = 16)]
    clients: usize,
    /// Authz calls per second, all clients together.
    #[arg(long, env = "SOAK_RPS", default_value_t = 2000)]
    rps: u64,
    #[arg(long, env = "SOAK_APPLIES_PER_SEC", default_value_t = 20)]
    applies_per_sec: u64,
    #[arg(long, env = "SOAK_WATCHERS", default_value_t = 4)]
    watchers: usize,
    /// RSS may end at most this many percent above its level after warm-up.
    #[arg(long, env = "SOAK_RSS_MARGIN_PERCENT", default_value_t = 15)]
    rss_margin_percent: u64,
    /// Plus this many MiB (allocator slack on a small process).
    #[arg(long, env = "SOAK_RSS_MARGIN_MIB", default_value_t = 8)]
    rss_margin_mib: u64,
    /// The server's `--retain-seconds`: 20 s, so memory levels off in the
    /// warm-up (the default, 300 s, would take 5 minutes).
    #[arg(long, env = "SOAK_RETAIN_SECONDS", default_value_t = 20)]
    retain_seconds: u64,
}

const WS: &str = "sunrise-care";
const TOKEN: &str = "soak-admin-token";
/// How many soak minis exist at a time.
const KEEP: u64 = 200;

/// Checks whose answers no soak delta changes.
const CHECKS: [(&str, &str, &str, &str); 8] = [
    ("u-nurse", "read", "record", "r-rose-1"),
    ("u-nurse", "update", "record", "r-rose-1"),
    ("u-nina", "read", "record", "r-rose-1"),
    ("u-admin", "delete", "mini", "m-rose"),
    ("u-lead", "read", "mini", "m-rose"),
    ("u-away", "read", "mini", "m-rose"),
    ("u-editor", "update", "record", "r-rose-2"),
    ("nobody", "read", "record", "r-rose-1"),
];

#[derive(Default)]
struct Stats {
    check: Option<Histogram<u64>>,
    batch: Option<Histogram<u64>>,
    list: Option<Histogram<u64>>,
    apply: Option<Histogram<u64>>,
    errors: Vec<String>,
}

impl Stats {
    fn record(h: &mut Option<Histogram<u64>>, d: Duration) {
        let h = h.get_or_insert_with(|| {
            Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| panic!("{e}"))
        });
        let _ = h.record((d.as_micros() as u64).max(1));
    }
    fn error(&mut self, e: String) {
        if self.errors.len() < 50 {
            self.errors.push(e);
        }
    }
}

fn report(name: &str, h: &Option<Histogram<u64>>) -> String {
    match h {
        None => format!("{name}: none"),
        Some(h) => format!(
            "{name}: n={} p50={}us p99={}us p99.9={}us max={}us",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        ),
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // This child only, by its own pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

async fn connect_unix(path: &Path) -> Option<Channel> {
    let path = path.to_path_buf();
    Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .ok()
}

#[derive(Clone)]
struct Auth;

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let v = format!("Bearer {TOKEN}")
            .parse()
            .map_err(|_| tonic::Status::internal("token header"))?;
        r.metadata_mut().insert("authorization", v);
        Ok(r)
    }
}

type Admin = AdminClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>;

fn delta(i: u64) -> pb::ApplyRequest {
    let mut changes = vec![pb::Change {
        change: Some(pb::change::Change::UpsertResource(pb::Resource {
            r#type: "mini".into(),
            id: format!("soak-{i}"),
            parent: None,
            labels: vec!["site-a".into()],
        })),
    }];
    if i >= KEEP {
        changes.push(pb::Change {
            change: Some(pb::change::Change::RemoveResource(format!(
                "mini:soak-{}",
                i - KEEP
            ))),
        });
    }
    pb::ApplyRequest {
        request_id: format!("soak-{i}"),
        source: "admin".into(),
        expected_revision: String::new(),
        body: Some(pb::apply_request::Body::Delta(pb::Delta {
            workspace: WS.into(),
            changes,
        })),
    }
}

fn check_request(
    c: (&str, &str, &str, &str),
    consistency: Option<pb::Consistency>,
) -> pb::CheckRequest {
    pb::CheckRequest {
        workspace: WS.into(),
        subject: c.0.into(),
        action: c.1.into(),
        resource: Some(pb::ResourceRef {
            r#type: c.2.into(),
            id: c.3.into(),
            ..Default::default()
        }),
        consistency,
        explain: false,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.work).unwrap_or_else(|e| panic!("{e}"));
    let work = std::fs::canonicalize(&args.work).unwrap_or_else(|e| panic!("{e}"));
    let at = |n: &str| work.join(n);
    let _ = std::fs::remove_dir_all(at("state"));
    std::fs::write(at("token"), format!("{TOKEN}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(
        at("token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let log = std::fs::File::create(at("serve.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(&args.bin)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--admin-listen")
        .arg(format!("unix:{}", at("admin.sock").display()))
        .arg("--admin-token-file")
        .arg(at("token"))
        .arg("--state-dir")
        .arg(at("state"))
        .arg("--demo")
        .args(["--retain-seconds", &args.retain_seconds.to_string()])
        .args(["--log-filter", "warn"])
        .env_remove("ROLECALL_SNAPSHOT")
        .env_remove("ROLECALL_DEMO")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.bin.display()));
    let pid = child.id();
    let mut server = Server { child };

    // Wait for both listeners.
    let mut admin_channel = None;
    for _ in 0..600 {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("rolecall exited early: {status}");
        }
        if let Some(c) = connect_unix(&at("admin.sock")).await {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                admin_channel = Some(c);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin_channel = admin_channel.unwrap_or_else(|| panic!("rolecall did not start"));
    let admin: Admin = AdminClient::with_interceptor(admin_channel, Auth);
    let authz_url = format!("http://127.0.0.1:{port}");

    let stats = Arc::new(Mutex::new(Stats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let run_for = Duration::from_secs(args.seconds);

    // The expected answers, from the model before any update.
    let mut first = AuthzClient::new(
        Endpoint::from_shared(authz_url.clone())
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let mut expected = Vec::new();
    for c in CHECKS {
        let r = first
            .check(check_request(c, None))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        expected.push(r.into_inner().allowed);
    }
    let expected = Arc::new(expected);

    // Watchers: every revision after 1, in order, until they have seen the
    // last acknowledged one (`target`, set once the Apply stream is done).
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let mut watchers = Vec::new();
    for w in 0..args.watchers {
        let mut client = admin.clone();
        let (stats, target) = (Arc::clone(&stats), Arc::clone(&target));
        watchers.push(tokio::spawn(async move {
            let mut stream = match client
                .watch(pb::WatchRequest {
                    from_revision: "2".into(),
                })
                .await
            {
                Ok(s) => s.into_inner(),
                Err(e) => {
                    stats
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .error(format!("watch {w}: {e}"));
                    return 1;
                }
            };
            let mut next = 2u64;
            let mut idle = 0;
            loop {
                if next > target.load(Ordering::Relaxed) {
                    return next;
                }
                let Ok(message) =
                    tokio::time::timeout(Duration::from_secs(1), stream.message()).await
                else {
                    idle += 1;
                    if idle > 30 && target.load(Ordering::Relaxed) != u64::MAX {
                        return next; // the target was never reached
                    }
                    continue;
                };
                idle = 0;
                match message {
                    Ok(Some(e)) => {
                        if e.revision != next.to_string() {
                            stats
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .error(format!(
                                    "watcher {w}: expected revision {next}, got {}",
                                    e.revision
                                ));
                            return next;
                        }
                        next += 1;
                    }
                    Ok(None) => return next,
                    Err(e) => {
                        stats
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .error(format!("watcher {w}: {e}"));
                        return next;
                    }
                }
            }
        }));
    }

    // Authz clients.
    let mut clients = Vec::new();
    let per_client = Duration::from_secs_f64(args.clients as f64 / args.rps.max(1) as f64);
    for k in 0..args.clients {
        let channel = Endpoint::from_shared(authz_url.clone())
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (stats, stop, calls, expected) = (
            Arc::clone(&stats),
            Arc::clone(&stop),
            Arc::clone(&calls),
            Arc::clone(&expected),
        );
        clients.push(tokio::spawn(async move {
            let mut c = AuthzClient::new(channel);
            let mut tick = tokio::time::interval(per_client);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = k;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let t = Instant::now();
                if n % 5 == 0 {
                    let r = c
                        .list_visible(pb::ListVisibleRequest {
                            workspace: WS.into(),
                            subject: "u-nurse".into(),
                            resource_type: "mini".into(),
                            page_size: 50,
                            ..Default::default()
                        })
                        .await;
                    let d = t.elapsed();
                    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(_) => Stats::record(&mut s.list, d),
                        Err(e) => s.error(format!("ListVisible: {e}")),
                    }
                } else if n % 5 == 1 {
                    // The whole table, starting at a different check each time.
                    let order: Vec<usize> =
                        (0..CHECKS.len()).map(|j| (n + j) % CHECKS.len()).collect();
                    let r = c
                        .check_batch(pb::CheckBatchRequest {
                            checks: order
                                .iter()
                                .map(|&i| check_request(CHECKS[i], None))
                                .collect(),
                            consistency: None,
                        })
                        .await;
                    let d = t.elapsed();
                    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(r) => {
                            let got: Vec<bool> =
                                r.get_ref().results.iter().map(|a| a.allowed).collect();
                            let want: Vec<bool> = order.iter().map(|&i| expected[i]).collect();
                            if got == want {
                                Stats::record(&mut s.batch, d)
                            } else {
                                s.error(format!("CheckBatch {order:?}: {got:?}, expected {want:?}"))
                            }
                        }
                        Err(e) => s.error(format!("CheckBatch: {e}")),
                    }
                } else {
                    let i = n % CHECKS.len();
                    let r = c.check(check_request(CHECKS[i], None)).await;
                    let d = t.elapsed();
                    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(r) if r.get_ref().allowed == expected[i] => {
                            Stats::record(&mut s.check, d)
                        }
                        Ok(r) => s.error(format!(
                            "Check {:?}: allowed={}",
                            CHECKS[i],
                            r.get_ref().allowed
                        )),
                        Err(e) => s.error(format!("Check: {e}")),
                    }
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // The Apply stream.
    let applier = {
        let mut admin = admin.clone();
        let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
        let every = Duration::from_secs_f64(1.0 / args.applies_per_sec.max(1) as f64);
        tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let mut answers = match admin
                .apply(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            {
                Ok(a) => a.into_inner(),
                Err(e) => {
                    stats
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .error(format!("Apply: {e}"));
                    return (0, 0);
                }
            };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut acked, mut last_revision) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let t = Instant::now();
                if tx.send(delta(acked)).await.is_err() {
                    break;
                }
                let answer = answers.message().await;
                let d = t.elapsed();
                let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                match answer {
                    Ok(Some(pb::ApplyResponse {
                        result: Some(pb::apply_response::Result::Revision(r)),
                        ..
                    })) => {
                        Stats::record(&mut s.apply, d);
                        last_revision = r.parse().unwrap_or(0);
                        acked += 1;
                    }
                    other => {
                        s.error(format!("Apply soak-{acked}: {other:?}"));
                        break;
                    }
                }
            }
            (acked, last_revision)
        })
    };

    // Sample RSS every 5 s.
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while started.elapsed() < run_for {
        if let Some(kib) = rss_kib(pid) {
            samples.push((started.elapsed().as_secs(), kib));
        }
        let left = run_for.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(5))).await;
    }
    if let Some(kib) = rss_kib(pid) {
        samples.push((started.elapsed().as_secs(), kib));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let (acked, last_revision) = applier.await.unwrap_or((0, 0));
    target.store(last_revision, Ordering::Relaxed);

    // No lost update: at_least the last acknowledged revision, the soak
    // minis meant to exist are there and allowed, the removed ones gone.
    let mut lost = Vec::new();
    let mut c = AuthzClient::new(
        Endpoint::from_shared(authz_url.clone())
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let at_least = || {
        Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::AtLeast(
                last_revision.to_string(),
            )),
        })
    };
    let recent = acked.saturating_sub(KEEP + 20)..acked;
    for i in recent.clone() {
        let id = format!("soak-{i}");
        let should_exist = i + KEEP >= acked;
        match c
            .check(check_request(("u-admin", "read", "mini", &id), at_least()))
            .await
        {
            Ok(r) if r.get_ref().allowed == should_exist => {}
            Ok(r) => lost.push(format!(
                "{id}: allowed={} expected {should_exist}",
                r.get_ref().allowed
            )),
            Err(e) => lost.push(format!("{id}: {e}")),
        }
    }
    // The same, in one CheckBatch.
    let ids: Vec<String> = recent.clone().map(|i| format!("soak-{i}")).collect();
    let batch = c
        .check_batch(pb::CheckBatchRequest {
            checks: ids
                .iter()
                .map(|id| check_request(("u-admin", "read", "mini", id), None))
                .collect(),
            consistency: at_least(),
        })
        .await;
    match batch {
        Ok(r) if r.get_ref().results.len() == ids.len() => {
            for (i, answer) in recent.zip(&r.get_ref().results) {
                let should_exist = i + KEEP >= acked;
                if answer.allowed != should_exist {
                    lost.push(format!(
                        "soak-{i} in a CheckBatch: allowed={} expected {should_exist}",
                        answer.allowed
                    ));
                }
            }
        }
        Ok(r) => lost.push(format!(
            "a CheckBatch of {} answered {}",
            ids.len(),
            r.get_ref().results.len()
        )),
        Err(e) => lost.push(format!("CheckBatch at_least {last_revision}: {e}")),
    }
    let mut export_admin = admin.clone();
    let exported = export_admin
        .export(pb::ExportRequest {
            workspace: WS.into(),
        })
        .await;
    let soak_in_export = match &exported {
        Ok(r) => {
            let snapshot = rolecall::admin_convert::snapshot_from_pb(
                r.get_ref().snapshot.clone().unwrap_or_default(),
            );
            match snapshot {
                Ok(s) => s
                    .workspaces
                    .iter()
                    .flat_map(|w| w.resources.iter())
                    .filter(|r| r.id.starts_with("soak-"))
                    .count() as u64,
                Err(e) => {
                    lost.push(format!("Export does not convert: {e:?}"));
                    0
                }
            }
        }
        Err(e) => {
            lost.push(format!("Export: {e}"));
            0
        }
    };
    if soak_in_export != acked.min(KEEP) {
        lost.push(format!(
            "Export holds {soak_in_export} soak minis, expected {}",
            acked.min(KEEP)
        ));
    }
    // The watchers must have reached the last revision.
    let mut watcher_ends = Vec::new();
    for w in watchers {
        watcher_ends.push(w.await.unwrap_or(0));
    }
    let server_alive = matches!(server.child.try_wait(), Ok(None));
    drop(server);
    let watchers_ok = watcher_ends.iter().all(|&n| n > last_revision);

    // RSS: after warm-up (a quarter of the run, at least 30 s of retention
    // filling up) versus the last quarter.
    let warm = (args.seconds / 4).max(30.min(args.seconds / 2));
    let after_warm: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= warm)
        .map(|s| s.1)
        .collect();
    let baseline = after_warm.first().copied().unwrap_or(0);
    let tail_from = args.seconds * 3 / 4;
    let tail_max = samples
        .iter()
        .filter(|(t, _)| *t >= tail_from)
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let allowed_kib =
        baseline + baseline * args.rss_margin_percent / 100 + args.rss_margin_mib * 1024;
    let rss_flat = tail_max <= allowed_kib;

    let s = stats.lock().unwrap_or_else(|p| p.into_inner());
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "soak: {:.0} s, {} clients, {} watchers, server pid {pid}",
        elapsed, args.clients, args.watchers
    );
    println!(
        "authz calls: {} ({:.0}/s); applies acknowledged: {acked} ({:.1}/s), last revision {last_revision}",
        calls.load(Ordering::Relaxed),
        calls.load(Ordering::Relaxed) as f64 / elapsed,
        acked as f64 / elapsed
    );
    println!("{}", report("check latency", &s.check));
    println!(
        "{}",
        report(
            &format!("check_batch latency ({} checks)", CHECKS.len()),
            &s.batch
        )
    );
    println!("{}", report("list_visible latency", &s.list));
    println!("{}", report("apply latency (durable ack)", &s.apply));
    println!(
        "rss: first {} KiB, after warm-up ({warm} s) {baseline} KiB, last quarter max {tail_max} KiB, peak {peak} KiB, limit {allowed_kib} KiB: {}",
        samples.first().map_or(0, |s| s.1),
        if rss_flat { "flat" } else { "GREW" }
    );
    let rss_line: Vec<String> = samples
        .iter()
        .step_by((samples.len() / 12).max(1))
        .map(|(t, k)| format!("{t}s:{}MiB", k / 1024))
        .collect();
    println!("rss samples: {}", rss_line.join(" "));
    let csv: String = samples.iter().map(|(t, k)| format!("{t},{k}\n")).collect();
    let _ = std::fs::write(at("rss.csv"), format!("seconds,rss_kib\n{csv}"));
    println!("every sample: {}", at("rss.csv").display());
    println!("watchers reached: {watcher_ends:?} (need > {last_revision})");
    println!("unexpected errors: {}", s.errors.len());
    for e in &s.errors {
        println!("  {e}");
    }
    println!("lost updates: {}", lost.len());
    for l in lost.iter().take(20) {
        println!("  {l}");
    }
    println!("server still running at the end: {server_alive}");
    let ok = s.errors.is_empty()
        && lost.is_empty()
        && rss_flat
        && watchers_ok
        && acked > 0
        && server_alive;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}
