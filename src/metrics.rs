//! Prometheus metrics, served as text on `--metrics-listen` (any path; the
//! scrape path is `/metrics`).
//!
//! # What is measured
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `rolecall_decisions_total` | `rpc`, `result` | Check and CheckBatch: one per decision, `allow` or `deny`; ListVisible and ListSubjects: one per request, `ok`; any RPC: one per failed request, `error` |
//! | `rolecall_denials_total` | `rpc`, `reason` | Check and CheckBatch: one per denial, by the rule that decided it (`no_grant`, `no_reach`, `unknown_subject`, ...; the wire `reason`); a series appears with its first denial |
//! | `rolecall_rpc_errors_total` | `rpc`, `code` | failed requests by gRPC status code (`InvalidArgument`, `NotFound`, ...) |
//! | `rolecall_rpc_duration_seconds` | `rpc` | histogram of the time a request takes, from decoded to answered |
//! | `rolecall_revision` | | the current revision (0: no model) |
//! | `rolecall_revision_applied_timestamp_seconds` | | when this sidecar published the current revision (Unix time) |
//! | `rolecall_workspaces` | | workspaces in the current revision |
//! | `rolecall_model_items` | `workspace`, `kind` | `users`, `groups`, `roles` (built-in and custom, disabled included), `labels`, `resources` |
//! | `rolecall_seats_in_use` | `workspace` | users who consume a seat (SPEC 1.4) |
//! | `rolecall_updates_total` | `result` | Admin updates `accepted` (applied and durable), `rejected` (malformed or breaking a rule) or `failed` (valid, but could not be made durable) |
//! | `rolecall_apply_streams` | | Admin `Apply` streams open now |
//! | `rolecall_panics_total` | `rpc` | calls (or Apply/Watch stream tasks) that panicked and were answered INTERNAL; counted by `server::catch_panic`, present once one has happened |
//!
//! `rpc` is `check`, `check_batch`, `list_visible` or `list_subjects`.
//!
//! # Cost on the hot path
//!
//! The recorder is process-global (the `metrics` facade has one), installed
//! once by [`install`], which also registers every per-RPC handle into one
//! static. An RPC then costs one `OnceLock` load, one `Instant::now()`, one
//! atomic counter add and one lock-free histogram push, and a denial one
//! more `OnceLock` load and add (its rule's counter): no lookup, no string,
//! no allocation. Without `--metrics-listen` nothing is installed
//! and an RPC pays the `OnceLock` load only.
//!
//! The model gauges are not set by the RPCs or the publishers: a task
//! ([`spawn_follow_store`]) follows the store's revision watch and updates
//! the gauges of the workspaces a revision changed (revisions share the
//! workspaces they did not change, so unchanged ones are skipped by pointer).
//!
//! # Several servers in one process
//!
//! Counters are shared by every server of the process (only one serves
//! `/metrics`; a second [`install`] is an error). Tests read the values back
//! with [`render`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ::metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::engine::{CompiledWorkspace, Reason};
use crate::store::{Store, Versioned};

pub const DECISIONS: &str = "rolecall_decisions_total";
pub const DENIALS: &str = "rolecall_denials_total";
pub const RPC_ERRORS: &str = "rolecall_rpc_errors_total";
pub const RPC_DURATION: &str = "rolecall_rpc_duration_seconds";
pub const REVISION: &str = "rolecall_revision";
pub const REVISION_APPLIED: &str = "rolecall_revision_applied_timestamp_seconds";
pub const WORKSPACES: &str = "rolecall_workspaces";
pub const MODEL_ITEMS: &str = "rolecall_model_items";
pub const SEATS_IN_USE: &str = "rolecall_seats_in_use";
pub const UPDATES: &str = "rolecall_updates_total";
pub const APPLY_STREAMS: &str = "rolecall_apply_streams";

/// Latency buckets, in seconds: a check takes microseconds; an `at_least`
/// read may wait up to `--max-wait-seconds` (30 by default).
const DURATION_BUCKETS: [f64; 21] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The gRPC status code names, indexed by code (as grpc-go spells them).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Why metrics could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics are already installed in this process")]
    AlreadyInstalled,
    #[error("metrics must be installed from inside the tokio runtime")]
    NoRuntime,
    #[error("cannot serve metrics on {addr}: {source}")]
    Exporter {
        addr: SocketAddr,
        source: BuildError,
    },
}

/// The Authz RPCs, as the `rpc` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    Check,
    CheckBatch,
    ListVisible,
    ListSubjects,
}

impl Rpc {
    pub const ALL: [Rpc; 4] = [
        Rpc::Check,
        Rpc::CheckBatch,
        Rpc::ListVisible,
        Rpc::ListSubjects,
    ];

    /// The Authz RPC a request path names, if it names one.
    pub fn from_path(path: &str) -> Option<Rpc> {
        match path.strip_prefix("/rolecall.v1.Authz/")? {
            "Check" => Some(Rpc::Check),
            "CheckBatch" => Some(Rpc::CheckBatch),
            "ListVisible" => Some(Rpc::ListVisible),
            "ListSubjects" => Some(Rpc::ListSubjects),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Rpc::Check => "check",
            Rpc::CheckBatch => "check_batch",
            Rpc::ListVisible => "list_visible",
            Rpc::ListSubjects => "list_subjects",
        }
    }

    fn index(self) -> usize {
        match self {
            Rpc::Check => 0,
            Rpc::CheckBatch => 1,
            Rpc::ListVisible => 2,
            Rpc::ListSubjects => 3,
        }
    }

    /// Whether its answers are decisions (counted `allow`/`deny`) rather
    /// than lists (counted `ok` per request).
    fn decides(self) -> bool {
        matches!(self, Rpc::Check | Rpc::CheckBatch)
    }
}

/// How many decisions of a Check or CheckBatch each rule made, indexed by
/// the wire value of `pb::Reason` (1 is granted; 0 is never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules([u64; Reason::ALL.len() + 1]);

impl Rules {
    /// Counts one decision by its wire `reason`.
    pub fn add(&mut self, reason: i32) {
        if let Some(n) = usize::try_from(reason).ok().and_then(|i| self.0.get_mut(i)) {
            *n += 1;
        }
    }

    /// One decision.
    pub fn one(reason: i32) -> Rules {
        let mut r = Rules::default();
        r.add(reason);
        r
    }

    fn allowed(&self) -> u64 {
        self.0[1]
    }

    /// The denials, by the index of their rule in [`Reason::ALL`].
    fn denials(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        (1..Reason::ALL.len())
            .map(|i| (i, self.0[i + 1]))
            .filter(|&(_, n)| n > 0)
    }
}

/// How one RPC ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Check or CheckBatch answered with these decisions.
    Decided(Rules),
    /// A list page answered.
    Answered,
    /// The call failed with this status.
    Failed(tonic::Code),
}

/// The handles of one RPC, registered once.
struct RpcMetrics {
    rpc: Rpc,
    /// `result="allow"` for decisions, `result="ok"` for lists.
    allow_or_ok: Counter,
    /// `result="deny"`; a no-op handle for lists.
    deny: Counter,
    error: Counter,
    /// `rolecall_denials_total` per rule, by index in [`Reason::ALL`],
    /// registered on the first denial by that rule.
    denials: [OnceLock<Counter>; Reason::ALL.len()],
    duration: Histogram,
    /// Per status code, registered on the first failure with that code so
    /// that the output does not carry 17 zero series per RPC.
    by_code: [OnceLock<Counter>; 17],
}

impl RpcMetrics {
    fn register(rpc: Rpc) -> RpcMetrics {
        let name = rpc.label();
        let (allow_or_ok, deny) = if rpc.decides() {
            (
                ::metrics::counter!(DECISIONS, "rpc" => name, "result" => "allow"),
                ::metrics::counter!(DECISIONS, "rpc" => name, "result" => "deny"),
            )
        } else {
            (
                ::metrics::counter!(DECISIONS, "rpc" => name, "result" => "ok"),
                Counter::noop(),
            )
        };
        RpcMetrics {
            rpc,
            allow_or_ok,
            deny,
            error: ::metrics::counter!(DECISIONS, "rpc" => name, "result" => "error"),
            denials: Default::default(),
            duration: ::metrics::histogram!(RPC_DURATION, "rpc" => name),
            by_code: Default::default(),
        }
    }

    fn denied(&self, rule: usize, n: u64) {
        self.deny.increment(n);
        if let (Some(cell), Some(reason)) = (self.denials.get(rule), Reason::ALL.get(rule)) {
            cell.get_or_init(|| {
                ::metrics::counter!(DENIALS, "rpc" => self.rpc.label(), "reason" => reason.as_str())
            })
            .increment(n);
        }
    }

    fn failed(&self, code: tonic::Code) {
        self.error.increment(1);
        let i = code as usize;
        if let (Some(cell), Some(&code_name)) = (self.by_code.get(i), CODE_NAMES.get(i)) {
            cell.get_or_init(
                || ::metrics::counter!(RPC_ERRORS, "rpc" => self.rpc.label(), "code" => code_name),
            )
            .increment(1);
        }
    }
}

/// Everything [`install`] sets up.
struct Installed {
    handle: PrometheusHandle,
    rpcs: [RpcMetrics; 4],
    updates_accepted: Counter,
    updates_rejected: Counter,
    updates_failed: Counter,
    apply_streams: Gauge,
    revision: Gauge,
    revision_applied: Gauge,
    workspaces: Gauge,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the process-global Prometheus recorder and serves it over HTTP
/// on `addr`. Call it from inside the tokio runtime (the listener and the
/// recorder's upkeep run as tasks on it); at most once per process.
pub fn install(addr: SocketAddr) -> Result<PrometheusHandle, MetricsError> {
    if INSTALLED.get().is_some() {
        return Err(MetricsError::AlreadyInstalled);
    }
    // `build` spawns the upkeep task and binds the listener on the current
    // runtime (and panics without one).
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(MetricsError::NoRuntime);
    }
    let exporter_error = |source| MetricsError::Exporter { addr, source };
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Full(RPC_DURATION.into()), &DURATION_BUCKETS)
        .map_err(exporter_error)?
        .build()
        .map_err(exporter_error)?;
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    describe();

    // Registered after the recorder is set: handles taken before are no-ops.
    let installed = Installed {
        handle: handle.clone(),
        rpcs: Rpc::ALL.map(RpcMetrics::register),
        updates_accepted: ::metrics::counter!(UPDATES, "result" => "accepted"),
        updates_rejected: ::metrics::counter!(UPDATES, "result" => "rejected"),
        updates_failed: ::metrics::counter!(UPDATES, "result" => "failed"),
        apply_streams: ::metrics::gauge!(APPLY_STREAMS),
        revision: ::metrics::gauge!(REVISION),
        revision_applied: ::metrics::gauge!(REVISION_APPLIED),
        workspaces: ::metrics::gauge!(WORKSPACES),
    };
    if INSTALLED.set(installed).is_err() {
        return Err(MetricsError::AlreadyInstalled);
    }
    tokio::spawn(async move {
        if let Err(e) = exporter.await {
            warn!(error = ?e, "the metrics listener stopped");
        }
    });
    Ok(handle)
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        DECISIONS,
        "Authz decisions (check, check_batch: allow/deny per check) and list requests (ok), and failed requests (error)"
    );
    describe_counter!(RPC_ERRORS, "Failed Authz requests by gRPC status code");
    describe_histogram!(
        RPC_DURATION,
        Unit::Seconds,
        "Time to answer an Authz request, from decoded to answered"
    );
    describe_gauge!(REVISION, "The current model revision (0: no model loaded)");
    describe_gauge!(
        REVISION_APPLIED,
        Unit::Seconds,
        "When the current revision was published here, as Unix time"
    );
    describe_gauge!(WORKSPACES, "Workspaces in the current revision");
    describe_gauge!(
        MODEL_ITEMS,
        "Items of each kind per workspace in the current revision"
    );
    describe_gauge!(SEATS_IN_USE, "Users who consume a seat, per workspace");
    describe_counter!(
        UPDATES,
        "Admin updates accepted, rejected (invalid) or failed (not durable)"
    );
    describe_gauge!(APPLY_STREAMS, "Admin Apply streams open now");
}

/// The metrics as Prometheus text, or `None` when they are not installed.
pub fn render() -> Option<String> {
    INSTALLED.get().map(|m| m.handle.render())
}

/// Times one Authz RPC and counts its outcome. Inert (and free, but for
/// one atomic load) when metrics are not installed.
#[must_use = "finish the timer with the call's outcome"]
pub struct RpcTimer {
    started: Option<(&'static RpcMetrics, Instant)>,
}

impl RpcTimer {
    #[inline]
    pub fn start(rpc: Rpc) -> RpcTimer {
        RpcTimer {
            started: INSTALLED
                .get()
                .map(|m| (&m.rpcs[rpc.index()], Instant::now())),
        }
    }

    /// Records the call's duration and outcome; `outcome` is computed only
    /// when metrics are on.
    #[inline]
    pub fn finish(self, outcome: impl FnOnce() -> Outcome) {
        let Some((m, started)) = self.started else {
            return;
        };
        m.duration.record(started.elapsed().as_secs_f64());
        match outcome() {
            Outcome::Decided(rules) => {
                if rules.allowed() > 0 {
                    m.allow_or_ok.increment(rules.allowed());
                }
                for (rule, n) in rules.denials() {
                    m.denied(rule, n);
                }
            }
            Outcome::Answered => m.allow_or_ok.increment(1),
            Outcome::Failed(code) => m.failed(code),
        }
    }
}

/// Counts an Authz request refused before it was answered because its
/// bytes do not decode (INVALID_ARGUMENT from the codec): an error with no
/// duration, as no handler ran.
pub fn malformed_request(rpc: Rpc) {
    refused_request(rpc, tonic::Code::InvalidArgument);
}

/// Counts an Authz request refused with `code` before a handler ran (its
/// bytes do not decode, or it is over the size limit): an error with no
/// duration.
pub fn refused_request(rpc: Rpc, code: tonic::Code) {
    if let Some(m) = INSTALLED.get() {
        m.rpcs[rpc.index()].failed(code);
    }
}

/// The Admin service calls this once per update applied (and durable).
pub fn update_accepted() {
    if let Some(m) = INSTALLED.get() {
        m.updates_accepted.increment(1);
    }
}

/// The Admin service calls this once per update refused (nothing applied).
pub fn update_rejected() {
    if let Some(m) = INSTALLED.get() {
        m.updates_rejected.increment(1);
    }
}

/// The Admin service calls this once per valid update it could not make
/// durable (nothing applied).
pub fn update_failed() {
    if let Some(m) = INSTALLED.get() {
        m.updates_failed.increment(1);
    }
}

/// The Admin service calls this when an `Apply` stream opens and keeps the
/// guard for the stream's life: the gauge goes down when it is dropped.
pub fn apply_stream_opened() -> ApplyStreamGuard {
    let gauge = INSTALLED.get().map(|m| &m.apply_streams);
    if let Some(g) = gauge {
        g.increment(1.0);
    }
    ApplyStreamGuard { gauge }
}

/// Counts one open `Apply` stream while it lives.
#[derive(Debug)]
#[must_use = "the stream counts as open only while the guard lives"]
pub struct ApplyStreamGuard {
    gauge: Option<&'static Gauge>,
}

impl Drop for ApplyStreamGuard {
    fn drop(&mut self) {
        if let Some(g) = self.gauge {
            g.decrement(1.0);
        }
    }
}

/// Follows `store`'s published revisions and keeps the revision and model
/// gauges in step, until the store is dropped. `None` when metrics are not
/// installed (nothing to follow for).
pub fn spawn_follow_store(store: &Arc<Store>) -> Option<JoinHandle<()>> {
    let installed = INSTALLED.get()?;
    let mut published = store.subscribe();
    // Weak, so that following does not keep the store (and its watch
    // sender) alive: once the server drops it, `changed` fails and the task
    // ends.
    let store = Arc::downgrade(store);
    Some(tokio::spawn(async move {
        let mut model = ModelGauges::default();
        loop {
            // Read after subscribing, so no revision is missed.
            let current = match store.upgrade() {
                Some(s) => s.current(),
                None => return,
            };
            model.update(installed, current.as_deref());
            if published.changed().await.is_err() {
                return;
            }
        }
    }))
}

/// The gauges of the workspaces last seen, and which version of each they
/// describe.
#[derive(Default)]
struct ModelGauges {
    revision: u64,
    workspaces: HashMap<String, WorkspaceGauges>,
}

struct WorkspaceGauges {
    /// The version these values are from; `Weak` keeps its allocation (not
    /// its contents) alive, so a pointer match cannot be a reused address.
    seen: Weak<CompiledWorkspace>,
    users: Gauge,
    groups: Gauge,
    roles: Gauge,
    labels: Gauge,
    resources: Gauge,
    seats: Gauge,
}

impl WorkspaceGauges {
    fn register(id: &str) -> WorkspaceGauges {
        let item = |kind: &'static str| ::metrics::gauge!(MODEL_ITEMS, "workspace" => id.to_string(), "kind" => kind);
        WorkspaceGauges {
            seen: Weak::new(),
            users: item("users"),
            groups: item("groups"),
            roles: item("roles"),
            labels: item("labels"),
            resources: item("resources"),
            seats: ::metrics::gauge!(SEATS_IN_USE, "workspace" => id.to_string()),
        }
    }

    fn set(&mut self, ws: &Arc<CompiledWorkspace>) {
        let m = &ws.model;
        self.users.set(m.users.len() as f64);
        self.groups.set(m.groups.len() as f64);
        self.roles.set(m.roles.len() as f64);
        self.labels.set(m.labels.len() as f64);
        // Listed resources, as Admin Status counts them.
        self.resources.set(m.listed_resources() as f64);
        self.seats.set(ws.seats_in_use() as f64);
        self.seen = Arc::downgrade(ws);
    }

    /// A workspace no longer served: its series read 0 (the facade cannot
    /// remove a series).
    fn clear(&self) {
        for g in [
            &self.users,
            &self.groups,
            &self.roles,
            &self.labels,
            &self.resources,
            &self.seats,
        ] {
            g.set(0.0);
        }
    }
}

impl ModelGauges {
    fn update(&mut self, installed: &Installed, current: Option<&Versioned>) {
        let Some(v) = current else {
            installed.revision.set(0.0);
            return;
        };
        if v.revision == self.revision {
            return;
        }
        self.revision = v.revision;
        installed.revision.set(v.revision as f64);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        installed.revision_applied.set(now);

        let workspaces = v.snapshot.workspaces();
        installed.workspaces.set(workspaces.len() as f64);
        for ws in &workspaces {
            let gauges = self
                .workspaces
                .entry(ws.model.id.clone())
                .or_insert_with(|| WorkspaceGauges::register(&ws.model.id));
            if !std::ptr::eq(gauges.seen.as_ptr(), Arc::as_ptr(ws)) {
                gauges.set(ws);
            }
        }
        self.workspaces.retain(|id, gauges| {
            let kept = v.snapshot.workspace(id).is_some();
            if !kept {
                gauges.clear();
            }
            kept
        });
    }
}
