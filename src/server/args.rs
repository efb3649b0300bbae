//! The `rolecall serve` flags, and what they turn into: the limits and
//! grace period of a running server ([`ServeConfig`]), its retention, and
//! where its first model comes from ([`Bootstrap`]).

use std::path::PathBuf;
use std::time::Duration;

use super::ListenAddr;
use crate::api::{AdminLimits, Limits};
use crate::store::Retention;

/// `rolecall serve` flags; each can also be set by its `ROLECALL_*`
/// environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where the Authz service listens: host:port, or unix:/path for a Unix
    /// socket (created with mode 0660).
    #[arg(long, env = "ROLECALL_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: ListenAddr,
    /// The snapshot file (YAML or JSON) to serve as revision 1. Without it
    /// (and without --demo) the server starts with no model: every Authz
    /// call is UNAVAILABLE and health NOT_SERVING until the control plane
    /// applies one. With a state dir, it is read only when the state dir
    /// is empty.
    #[arg(long, env = "ROLECALL_SNAPSHOT", conflicts_with = "demo")]
    pub snapshot: Option<PathBuf>,
    /// Serve the built-in demo model (src/demo.yaml) as revision 1, to try
    /// the API at once; never in a real deployment. With a state dir, only
    /// when the state dir is empty. (ROLECALL_DEMO takes true/false, 1/0,
    /// yes/no or on/off.)
    #[arg(
        long,
        env = "ROLECALL_DEMO",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub demo: bool,
    /// Where the Admin service (the control plane's API) listens: host:port
    /// or unix:/path. Without it there is no Admin API. Needs
    /// --admin-token-file.
    #[arg(long, env = "ROLECALL_ADMIN_LISTEN")]
    pub admin_listen: Option<ListenAddr>,
    /// A file holding the bearer token every Admin call must send as
    /// `authorization: Bearer <token>` (one trailing newline is ignored).
    #[arg(long, env = "ROLECALL_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Serve the admin listener over TLS with this PEM certificate chain
    /// (with --admin-tls-key).
    #[arg(long, env = "ROLECALL_ADMIN_TLS_CERT", requires = "admin_tls_key")]
    pub admin_tls_cert: Option<PathBuf>,
    /// The PEM private key of --admin-tls-cert.
    #[arg(long, env = "ROLECALL_ADMIN_TLS_KEY", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
    /// Require admin clients to present a certificate signed by one of
    /// these PEM CA certificates (mutual TLS; needs --admin-tls-cert). With
    /// it, --admin-token-file becomes optional.
    #[arg(
        long,
        env = "ROLECALL_ADMIN_TLS_CLIENT_CA",
        requires = "admin_tls_cert"
    )]
    pub admin_tls_client_ca: Option<PathBuf>,
    /// The state directory: every accepted update is logged (and fsynced)
    /// here before it is acknowledged, and the model is restored from it on
    /// start. Without it, applied updates are lost on restart.
    #[arg(long, env = "ROLECALL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Compact the state directory into a snapshot after this many logged
    /// updates (0: never), once the log is also a quarter of the last
    /// snapshot's size.
    #[arg(long, env = "ROLECALL_COMPACT_EVERY", default_value_t = crate::store::apply::DEFAULT_COMPACT_EVERY)]
    pub compact_every: u64,
    /// The most checks in one CheckBatch (more is RESOURCE_EXHAUSTED).
    #[arg(long, env = "ROLECALL_MAX_BATCH", default_value_t = 1000, value_parser = at_least_one)]
    pub max_batch: usize,
    /// The page size of a list call that asks for 0.
    #[arg(long, env = "ROLECALL_DEFAULT_PAGE_SIZE", default_value_t = 100)]
    pub default_page_size: u32,
    /// The largest page; a larger page_size is clamped to it.
    #[arg(long, env = "ROLECALL_MAX_PAGE_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_page_size: u32,
    /// The largest request message, in bytes (more is RESOURCE_EXHAUSTED),
    /// on both listeners unless --admin-max-message-bytes is given: it also
    /// caps one Apply request (snapshot or delta).
    #[arg(long, env = "ROLECALL_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = at_least_one)]
    pub max_message_bytes: usize,
    /// The largest request message on the Admin listener, in bytes: one
    /// Apply request, so a whole snapshot (a million records take about
    /// 45 MB) unless it is sent in pieces. Default: --max-message-bytes. The Authz listener keeps its
    /// own limit.
    #[arg(long, env = "ROLECALL_ADMIN_MAX_MESSAGE_BYTES", value_parser = at_least_one)]
    pub admin_max_message_bytes: Option<usize>,
    /// The largest snapshot sent to Apply in pieces (`snapshot_piece`), in
    /// bytes, all pieces together: what one Apply stream may hold before
    /// its update is complete (more is RESOURCE_EXHAUSTED).
    #[arg(long, env = "ROLECALL_ADMIN_MAX_SNAPSHOT_BYTES", default_value_t = AdminLimits::default().max_snapshot_bytes, value_parser = at_least_one)]
    pub admin_max_snapshot_bytes: usize,
    /// The most Admin Apply streams open at once; one more is refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "ROLECALL_MAX_APPLY_STREAMS", default_value_t = AdminLimits::default().max_apply_streams, value_parser = at_least_one)]
    pub max_apply_streams: usize,
    /// The most Admin Watch streams open at once; one more is refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "ROLECALL_MAX_WATCHERS", default_value_t = AdminLimits::default().max_watchers, value_parser = at_least_one)]
    pub max_watchers: usize,
    /// The most Admin exports (Export and ExportPieces) in progress at
    /// once; one more is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "ROLECALL_MAX_EXPORTS", default_value_t = AdminLimits::default().max_exports, value_parser = at_least_one)]
    pub max_exports: usize,
    /// Keep at least this many revisions (the current one included) for
    /// `exact` reads and page tokens.
    #[arg(long, env = "ROLECALL_RETAIN_REVISIONS", default_value_t = 64)]
    pub retain_revisions: usize,
    /// Also keep every revision replaced less than this many seconds ago
    /// (at most 1024 of them: a burst of updates cannot grow memory without
    /// bound).
    #[arg(long, env = "ROLECALL_RETAIN_SECONDS", default_value_t = 300)]
    pub retain_seconds: u64,
    /// How long an `at_least` read waits when the call has no deadline (and
    /// the most it waits when it has a longer one).
    #[arg(long, env = "ROLECALL_MAX_WAIT_SECONDS", default_value_t = 30)]
    pub max_wait_seconds: u64,
    /// Ping each Admin connection (HTTP/2 PING) after this many seconds
    /// without a frame from it, and close it when the ping is not answered
    /// within as many again: a control plane that hung or whose network
    /// path died silently gives its Apply or Watch slot back (0: never
    /// ping).
    #[arg(long, env = "ROLECALL_KEEPALIVE_SECONDS", default_value_t = 20)]
    pub keepalive_seconds: u64,
    /// After SIGTERM, go on serving for this many seconds with health
    /// NOT_SERVING before draining: an app container that gets SIGTERM at
    /// the same moment can still check while it finishes its own requests
    /// (what a native sidecar container or a preStop sleep also give).
    #[arg(long, env = "ROLECALL_SHUTDOWN_DELAY_SECONDS", default_value_t = 0)]
    pub shutdown_delay_seconds: u64,
    /// How long in-flight calls may take to finish after SIGTERM.
    #[arg(long, env = "ROLECALL_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
    /// Log lines as text or as JSON objects.
    #[arg(long, env = "ROLECALL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which logs to write, as tracing directives ("info",
    /// "rolecall=debug" for a span per call).
    #[arg(long, env = "ROLECALL_LOG", default_value = "info")]
    pub log_filter: String,
    /// Where to serve Prometheus metrics: an IP address and port (e.g.
    /// 127.0.0.1:9090 or 0.0.0.0:9090; no host name, no Unix socket),
    /// scraped at /metrics. No metrics without it.
    #[arg(long, env = "ROLECALL_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What a running server needs besides its listeners and store.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub limits: Limits,
    pub admin_limits: AdminLimits,
    pub max_message_bytes: usize,
    /// The same on the Admin listener.
    pub admin_max_message_bytes: usize,
    pub shutdown_grace: Duration,
    /// How long to go on serving, NOT_SERVING, after the shutdown signal.
    pub shutdown_delay: Duration,
    /// The HTTP/2 keepalive interval, which is also the ping's timeout.
    pub keepalive: Option<Duration>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            limits: Limits::default(),
            admin_limits: AdminLimits::default(),
            max_message_bytes: 4 * 1024 * 1024,
            admin_max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            keepalive: Some(Duration::from_secs(20)),
        }
    }
}

/// Where the first model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    File(PathBuf),
    Demo,
    Empty,
}

impl ServeArgs {
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            limits: Limits {
                max_batch: self.max_batch,
                default_page_size: self.default_page_size.clamp(1, self.max_page_size.max(1)),
                max_page_size: self.max_page_size.max(1),
                max_wait: Duration::from_secs(self.max_wait_seconds),
            },
            admin_limits: AdminLimits {
                max_apply_streams: self.max_apply_streams,
                max_watchers: self.max_watchers,
                max_exports: self.max_exports,
                max_snapshot_bytes: self.admin_max_snapshot_bytes,
            },
            max_message_bytes: self.max_message_bytes,
            admin_max_message_bytes: self
                .admin_max_message_bytes
                .unwrap_or(self.max_message_bytes),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            shutdown_delay: Duration::from_secs(self.shutdown_delay_seconds),
            keepalive: (self.keepalive_seconds > 0)
                .then(|| Duration::from_secs(self.keepalive_seconds)),
        }
    }

    pub fn retention(&self) -> Retention {
        Retention {
            revisions: self.retain_revisions,
            max_age: Duration::from_secs(self.retain_seconds),
        }
    }

    pub fn bootstrap(&self) -> Bootstrap {
        match (&self.snapshot, self.demo) {
            (Some(path), _) => Bootstrap::File(path.clone()),
            (None, true) => Bootstrap::Demo,
            (None, false) => Bootstrap::Empty,
        }
    }
}

/// A limit of 0 would refuse every call it bounds: refused at start.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would refuse every call it limits)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
