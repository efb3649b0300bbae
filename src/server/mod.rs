//! `rolecall serve`: listeners, the standard services (health, reflection),
//! the bootstrap model, logging, and graceful shutdown.
//!
//! The shape follows mini-redis: [`run`] takes the listener, the store and a
//! `shutdown` future, so `main` passes SIGTERM/SIGINT and tests pass a
//! oneshot. A [`Sidecar`] can serve several [`Endpoint`]s (the Admin
//! service goes on its own listener): each gets health and reflection, and
//! all drain together.
//!
//! Shutdown: health turns NOT_SERVING at once, `at_least` waiters are
//! answered UNAVAILABLE, the listeners stop accepting, in-flight calls
//! finish within `--shutdown-grace-seconds`, and [`Sidecar::run`] returns
//! `Ok` (so the process exits 0) even if the grace period ran out.

pub mod listen;
pub mod remap;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::api::{AuthzService, Limits};
use crate::engine::Snapshot;
use crate::model::InvalidSnapshot;
use crate::pb;
use crate::store::{Retention, Store};
pub use listen::{ListenAddr, Listener};
use remap::OversizeIsResourceExhausted;

/// The built-in demo model, served when `rolecall serve` is given no
/// `--snapshot` (and not `--no-demo`), so the binary answers at once.
pub const DEMO_SNAPSHOT: &str = include_str!("../demo.yaml");

/// The gRPC name of the Authz service.
pub const AUTHZ_SERVICE: &str = <pb::authz_server::AuthzServer<AuthzService> as NamedService>::NAME;

/// `rolecall serve` flags; each can also be set by its `ROLECALL_*`
/// environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where the Authz service listens: host:port, or unix:/path for a Unix
    /// socket (created with mode 0660).
    #[arg(long, env = "ROLECALL_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: ListenAddr,
    /// The snapshot file (YAML or JSON) to serve as revision 1. Without it
    /// the built-in demo model is served, unless --no-demo.
    #[arg(long, env = "ROLECALL_SNAPSHOT")]
    pub snapshot: Option<PathBuf>,
    /// Start with no model: every Authz call is UNAVAILABLE and health is
    /// NOT_SERVING until a model is loaded.
    #[arg(long, env = "ROLECALL_NO_DEMO", conflicts_with = "snapshot")]
    pub no_demo: bool,
    /// The most checks in one CheckBatch (more is RESOURCE_EXHAUSTED).
    #[arg(long, env = "ROLECALL_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,
    /// The page size of a list call that asks for 0.
    #[arg(long, env = "ROLECALL_DEFAULT_PAGE_SIZE", default_value_t = 100)]
    pub default_page_size: u32,
    /// The largest page; a larger page_size is clamped to it.
    #[arg(long, env = "ROLECALL_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: u32,
    /// The largest request message, in bytes (more is RESOURCE_EXHAUSTED).
    #[arg(long, env = "ROLECALL_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Keep at least this many revisions (the current one included) for
    /// `exact` reads and page tokens.
    #[arg(long, env = "ROLECALL_RETAIN_REVISIONS", default_value_t = 64)]
    pub retain_revisions: usize,
    /// Also keep every revision replaced less than this many seconds ago.
    #[arg(long, env = "ROLECALL_RETAIN_SECONDS", default_value_t = 300)]
    pub retain_seconds: u64,
    /// How long an `at_least` read waits when the call has no deadline (and
    /// the most it waits when it has a longer one).
    #[arg(long, env = "ROLECALL_MAX_WAIT_SECONDS", default_value_t = 30)]
    pub max_wait_seconds: u64,
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
    pub max_message_bytes: usize,
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            limits: Limits::default(),
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
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
            max_message_bytes: self.max_message_bytes,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
        }
    }

    pub fn retention(&self) -> Retention {
        Retention {
            revisions: self.retain_revisions,
            max_age: Duration::from_secs(self.retain_seconds),
        }
    }

    pub fn bootstrap(&self) -> Bootstrap {
        match (&self.snapshot, self.no_demo) {
            (Some(path), _) => Bootstrap::File(path.clone()),
            (None, false) => Bootstrap::Demo,
            (None, true) => Bootstrap::Empty,
        }
    }
}

/// Why the server could not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the bootstrap snapshot was refused: {0}")]
    Bootstrap(#[from] InvalidSnapshot),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving {listener}: {source}")]
    Transport {
        listener: &'static str,
        source: tonic::transport::Error,
    },
    #[error("the {0} listener stopped on its own")]
    Stopped(&'static str),
    #[error("a listener task panicked")]
    Panicked,
}

/// Reads, validates and indexes the bootstrap model: the one path a
/// snapshot file takes into the server (the tests use it too).
pub fn load_bootstrap(bootstrap: &Bootstrap) -> Result<Option<Snapshot>, InvalidSnapshot> {
    match bootstrap {
        Bootstrap::File(path) => {
            let spec = crate::model::parse::read_snapshot_file(path)?;
            Snapshot::from_spec(&spec).map(Some)
        }
        Bootstrap::Demo => load_snapshot_text(DEMO_SNAPSHOT, "built-in demo").map(Some),
        Bootstrap::Empty => Ok(None),
    }
}

/// Parses (YAML or JSON), validates and indexes snapshot text.
pub fn load_snapshot_text(text: &str, origin: &str) -> Result<Snapshot, InvalidSnapshot> {
    Snapshot::from_spec(&crate::model::parse::from_text(text, origin)?)
}

/// One listener and the services it serves.
pub struct Endpoint {
    /// For logs and errors: "authz", "admin".
    pub name: &'static str,
    pub listener: Listener,
    pub routes: Routes,
    /// The health names of its services: NOT_SERVING at shutdown.
    pub health_names: Vec<&'static str>,
    /// Whether those services can answer only once a model is loaded
    /// (Authz); if not (Admin, which loads the model), they are SERVING
    /// from the start.
    pub needs_model: bool,
}

impl Endpoint {
    async fn serve(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let name = self.name;
        let router = tonic::transport::Server::builder().add_routes(self.routes);
        let served = match self.listener {
            Listener::Tcp(listener) => {
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                router.serve_with_incoming_shutdown(incoming, stop).await
            }
            Listener::Unix { listener, path } => {
                let _remove_on_exit = listen::SocketFile(path);
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                router.serve_with_incoming_shutdown(incoming, stop).await
            }
        };
        served.map_err(|source| ServeError::Transport {
            listener: name,
            source,
        })
    }
}

/// A server being assembled: the store, the health reporter shared by
/// every listener, and the configuration.
pub struct Sidecar {
    config: ServeConfig,
    store: Arc<Store>,
    health: HealthReporter,
}

impl Sidecar {
    pub fn new(config: ServeConfig, store: Arc<Store>) -> Sidecar {
        Sidecar {
            config,
            store,
            health: HealthReporter::new(),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// The reporter behind `grpc.health.v1.Health` on every listener.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Health plus reflection (v1 and v1alpha) listing `services` and
    /// themselves: what every listener serves besides its own services.
    /// `descriptor_sets` are the encoded descriptors reflection answers from.
    pub fn standard_routes(
        &self,
        services: &[&str],
        descriptor_sets: &[&'static [u8]],
    ) -> Result<RoutesBuilder, ServeError> {
        let reflection = || {
            // Both reflection versions' descriptors on both services, so
            // every listed service can be described whichever one is asked.
            let mut b = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                );
            for set in descriptor_sets {
                b = b.register_encoded_file_descriptor_set(set);
            }
            let standard = [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ];
            for name in services.iter().chain(standard.iter()) {
                b = b.with_service_name(*name);
            }
            b
        };
        let mut routes = RoutesBuilder::default();
        routes
            .add_service(tonic_health::pb::health_server::HealthServer::new(
                HealthService::from_health_reporter(self.health.clone()),
            ))
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
        Ok(routes)
    }

    /// The Authz listener: `rolecall.v1.Authz` plus health and reflection.
    pub fn authz_endpoint(&self, listener: Listener) -> Result<Endpoint, ServeError> {
        let mut routes = self.standard_routes(&[AUTHZ_SERVICE], &[pb::FILE_DESCRIPTOR_SET])?;
        let authz = AuthzService::new(Arc::clone(&self.store), self.config.limits);
        routes.add_service(OversizeIsResourceExhausted::new(
            authz.into_server(self.config.max_message_bytes),
        ));
        Ok(Endpoint {
            name: "authz",
            listener,
            routes: routes.routes(),
            health_names: vec![AUTHZ_SERVICE],
            needs_model: true,
        })
    }

    /// Serves every endpoint until `shutdown` completes, then drains.
    pub async fn run(
        self,
        endpoints: Vec<Endpoint>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        // The overall status ("") and model-bound services are NOT_SERVING
        // until a model is loaded (set before the first connection is
        // accepted), then follow the store; the others serve at once.
        let mut gated = vec![""];
        let mut all = vec![""];
        for ep in &endpoints {
            all.extend(ep.health_names.iter().copied());
            if ep.needs_model {
                gated.extend(ep.health_names.iter().copied());
            } else {
                for name in &ep.health_names {
                    self.health
                        .set_service_status(*name, ServingStatus::Serving)
                        .await;
                }
            }
        }
        report_model(&self.store, &self.health, &gated).await;
        let follower = tokio::spawn(follow_model(
            Arc::clone(&self.store),
            self.health.clone(),
            gated,
        ));

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut servers = JoinSet::new();
        for ep in endpoints {
            info!(
                listener = ep.name,
                address = %ep.listener.address(),
                revision = self.store.revision(),
                "listening"
            );
            let mut stop = stop_rx.clone();
            let name = ep.name;
            servers.spawn(async move {
                let result = ep
                    .serve(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                (name, result)
            });
        }

        let mut outcome = Ok(());
        tokio::select! {
            () = shutdown => info!("shutdown requested: draining in-flight calls"),
            Some(ended) = servers.join_next() => {
                outcome = Err(match ended {
                    Ok((_, Err(e))) => e,
                    Ok((name, Ok(()))) => ServeError::Stopped(name),
                    Err(_) => ServeError::Panicked,
                });
            }
        }

        // Stopped for good (awaited) before NOT_SERVING, so it cannot
        // report SERVING again.
        follower.abort();
        let _ = follower.await;
        for name in &all {
            self.health
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        self.store.close();
        stop_tx.send_replace(true);

        let grace = self.config.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while let Some(ended) = servers.join_next().await {
                if let Ok((name, Err(e))) = ended {
                    warn!(listener = name, error = %e, "listener ended with an error");
                }
            }
        })
        .await;
        match drained {
            Ok(()) => info!("drained; stopped"),
            Err(_) => {
                warn!(
                    grace_seconds = grace.as_secs_f64(),
                    "calls still in flight when the grace period ended; stopping anyway"
                );
                servers.abort_all();
            }
        }
        outcome
    }
}

async fn report_model(store: &Store, health: &HealthReporter, names: &[&'static str]) {
    let status = if store.current().is_some() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

/// Keeps health in step with the store: SERVING once a model is loaded.
async fn follow_model(store: Arc<Store>, health: HealthReporter, names: Vec<&'static str>) {
    let mut published = store.subscribe();
    // Subscribed first, so a model published before this line is reported.
    report_model(&store, &health, &names).await;
    while published.changed().await.is_ok() {
        report_model(&store, &health, &names).await;
    }
}

/// Serves `rolecall.v1.Authz` (with health and reflection) on one
/// listener until `shutdown` completes, then drains (see the module docs).
pub async fn run(
    config: ServeConfig,
    listener: Listener,
    store: Arc<Store>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let sidecar = Sidecar::new(config, store);
    let authz = sidecar.authz_endpoint(listener)?;
    sidecar.run(vec![authz], shutdown).await
}

/// `rolecall serve`: loads the bootstrap model, binds, and serves until
/// `shutdown` completes.
pub async fn serve(args: ServeArgs, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let store = Arc::new(Store::new(args.retention()));
    let bootstrap = args.bootstrap();
    match load_bootstrap(&bootstrap)? {
        Some(snapshot) => {
            let workspaces = snapshot.workspaces().len();
            let revision = store.publish(snapshot);
            let source = match &bootstrap {
                Bootstrap::File(p) => p.display().to_string(),
                _ => "built-in demo".to_string(),
            };
            info!(revision, workspaces, %source, "model loaded");
        }
        None => warn!("no model loaded: every Authz call is UNAVAILABLE until one is"),
    }
    let listener = bind(&args.listen).await?;
    run(args.config(), listener, store, shutdown).await
}

/// Binds a listen address, naming it in the error.
pub async fn bind(addr: &ListenAddr) -> Result<Listener, ServeError> {
    Listener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => info!("SIGINT received"),
        () = terminate => info!("SIGTERM received"),
    }
}

/// Installs the global tracing subscriber: text or JSON lines on stdout,
/// filtered by `filter` (tracing directives). Does nothing if one is
/// already installed.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_model_is_valid() {
        let snap = load_bootstrap(&Bootstrap::Demo).map_err(|e| e.to_string());
        assert!(matches!(snap, Ok(Some(_))), "{snap:?}");
    }

    #[test]
    fn serve_flags_have_env_names_and_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::try_parse_from(["rolecall", "--max-page-size", "50"])
            .unwrap_or_else(|e| panic!("{e}"));
        let args = cli.serve;
        assert_eq!(args.listen, ListenAddr::Tcp("127.0.0.1:50051".into()));
        assert_eq!(args.bootstrap(), Bootstrap::Demo);
        assert_eq!(args.config().limits.max_page_size, 50);
        assert_eq!(args.config().limits.default_page_size, 50);
        assert!(Cli::try_parse_from(["rolecall", "--no-demo", "--snapshot", "x"]).is_err());
    }
}
