//! `rolecall serve`: listeners, the standard services (health, reflection),
//! the bootstrap model, logging, and graceful shutdown.
//!
//! The shape follows mini-redis: [`run`] takes the listener, the store and a
//! `shutdown` future, so `main` passes SIGTERM/SIGINT and tests pass a
//! oneshot. A [`Sidecar`] can serve several [`Endpoint`]s (the Admin
//! service goes on its own listener): each gets health and reflection, and
//! all drain together.
//!
//! Start-up ([`serve`]) fails closed: an Admin listener without a way to
//! authenticate callers, an unreadable token file, a damaged state dir or an
//! invalid bootstrap snapshot each stop the start with a message, before
//! anything listens. With a state dir, the model is the one the state dir
//! holds (the bootstrap snapshot is read only when the state dir is empty,
//! and is then written into it as revision 1).
//!
//! Shutdown: health turns NOT_SERVING at once, `at_least` waiters are
//! answered UNAVAILABLE, the listeners stop accepting, in-flight calls
//! finish within `--shutdown-grace-seconds`, and [`Sidecar::run`] returns
//! `Ok` (so the process exits 0) even if the grace period ran out.

pub mod args;
pub mod catch_panic;
pub mod listen;
pub mod remap;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::api::auth::TokenError;
use crate::api::{AdminAuth, AdminService, AuthzService, BearerToken};
use crate::durable::{StateDir, StateDirError};
use crate::engine::Snapshot;
use crate::model::parse::StoredSnapshot;
use crate::model::validate::validate_stored;
use crate::model::InvalidSnapshot;
use crate::pb;
use crate::store::apply::{restore_with, Applier, Event, Events, RecoverError, WATCH_BUFFER};
use crate::store::{Store, StoreError};
pub use args::{Bootstrap, LogFormat, ServeArgs, ServeConfig};
pub use listen::{ListenAddr, Listener};
use remap::OversizeIsResourceExhausted;

/// The built-in demo model, served by `rolecall serve --demo`, so the
/// binary can be tried at once.
pub const DEMO_SNAPSHOT: &str = include_str!("../demo.yaml");

/// The gRPC name of the Authz service.
pub const AUTHZ_SERVICE: &str = <pb::authz_server::AuthzServer<AuthzService> as NamedService>::NAME;

/// The gRPC name of the Admin service.
pub const ADMIN_SERVICE: &str = <pb::admin_server::AdminServer<AdminService> as NamedService>::NAME;

/// Why the server could not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the bootstrap snapshot was refused: {0}")]
    Bootstrap(#[from] InvalidSnapshot),
    #[error("--admin-listen {addr} is set but neither --admin-token-file nor --admin-tls-client-ca is: the Admin API is never served without authentication; give it a token file (ROLECALL_ADMIN_TOKEN_FILE)")]
    AdminWithoutAuth { addr: String },
    #[error("admin TLS: cannot read {what} {}: {source}", path.display())]
    AdminTlsFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin TLS: {what} {}: {problem}", path.display())]
    AdminTlsPem {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("admin TLS: the certificate {} and the key {} cannot be served together: {cause}", cert.display(), key.display())]
    AdminTlsPair {
        cert: PathBuf,
        key: PathBuf,
        cause: String,
    },
    #[error("admin TLS: {}", with_causes(.0))]
    AdminTls(tonic::transport::Error),
    #[error("{0}")]
    AdminToken(#[from] TokenError),
    #[error("{0}")]
    StateDir(#[from] StateDirError),
    #[error("state dir {}: {source}", dir.display())]
    Restore { dir: PathBuf, source: RecoverError },
    #[error("state dir {}: cannot write the bootstrap model as revision 1: {source}", dir.display())]
    WriteBootstrap {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("state dir {}: cannot serve its revision: {source}", dir.display())]
    Revision { dir: PathBuf, source: StoreError },
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
    #[error("metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
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
    Snapshot::from_spec(&crate::model::parse::snapshot_from_text(text, origin)?)
}

/// An error and the errors that caused it, as one line: tonic's transport
/// error alone says only "transport error".
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
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
    /// TLS (and client certificate) settings, if the listener uses TLS.
    pub tls: Option<ServerTlsConfig>,
    /// HTTP/2 keepalive: ping interval and timeout (Admin only: its
    /// streams hold Apply and Watch slots).
    pub keepalive: Option<std::time::Duration>,
}

impl Endpoint {
    async fn serve(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let name = self.name;
        // Unanswered pings close the connection, and its streams with it.
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(self.keepalive)
            .http2_keepalive_timeout(self.keepalive);
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls).map_err(ServeError::AdminTls)?;
        }
        // A panic in any call becomes INTERNAL for that call only.
        let router = builder
            .layer(catch_panic::CatchPanicLayer)
            .add_routes(self.routes);
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
            "--max-message-bytes",
        ));
        Ok(Endpoint {
            name: "authz",
            listener,
            routes: routes.routes(),
            health_names: vec![AUTHZ_SERVICE],
            needs_model: true,
            tls: None,
            // Unary calls hold no slot; hyper's keepalive bookkeeping would
            // cost every call about 800 instructions (1.5 %, callgrind).
            keepalive: None,
        })
    }

    /// The admin listener: `rolecall.v1.Admin` behind `auth`, plus health
    /// and reflection (which need no token: probes use them). Its health
    /// name is SERVING as soon as it listens, model or not.
    pub fn admin_endpoint(
        &self,
        listener: Listener,
        applier: Arc<Applier>,
        auth: AdminAuth,
    ) -> Result<Endpoint, ServeError> {
        self.admin_endpoint_tls(listener, applier, auth, None)
    }

    /// [`Sidecar::admin_endpoint`] over TLS (with client certificates when
    /// `tls` names a client CA). The TLS settings are checked here, so a
    /// bad certificate or key stops the start before anything listens.
    pub fn admin_endpoint_tls(
        &self,
        listener: Listener,
        applier: Arc<Applier>,
        auth: AdminAuth,
        tls: Option<ServerTlsConfig>,
    ) -> Result<Endpoint, ServeError> {
        if let Some(tls) = &tls {
            tonic::transport::Server::builder()
                .tls_config(tls.clone())
                .map_err(ServeError::AdminTls)?;
        }
        let mut routes = self.standard_routes(&[ADMIN_SERVICE], &[pb::FILE_DESCRIPTOR_SET])?;
        let admin = AdminService::with_limits(applier, self.config.admin_limits);
        routes.add_service(OversizeIsResourceExhausted::new(
            admin.into_server(auth, self.config.admin_max_message_bytes),
            "--admin-max-message-bytes",
        ));
        Ok(Endpoint {
            name: "admin",
            listener,
            routes: routes.routes(),
            health_names: vec![ADMIN_SERVICE],
            needs_model: false,
            tls,
            keepalive: self.config.keepalive,
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
                tls = ep.tls.is_some(),
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
        let mut requested = false;
        tokio::select! {
            () = shutdown => requested = true,
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
        let delay = self.config.shutdown_delay;
        if requested && !delay.is_zero() {
            // Still accepting and answering, so callers that are shutting
            // down themselves finish; health already sends new ones away.
            info!(
                delay_seconds = delay.as_secs_f64(),
                "shutdown requested: serving on, NOT_SERVING, before draining"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                Some(ended) = servers.join_next() => {
                    if let Ok((name, Err(e))) = ended {
                        warn!(listener = name, error = %e, "listener ended with an error");
                    }
                }
            }
        }
        if requested {
            info!("shutdown requested: draining in-flight calls");
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

/// `rolecall serve`: checks the admin authentication, restores the model
/// (from the state dir, else the bootstrap), binds, and serves until
/// `shutdown` completes. See the module docs for what stops the start.
pub async fn serve(args: ServeArgs, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let admin_auth = admin_auth(&args)?;
    let admin_tls = admin_tls(&args)?;
    let store = Arc::new(Store::new(args.retention()));
    let applier = Arc::new(start_model(&args, &store)?);
    // On this thread, which did the load and freed its scratch.
    crate::memory::release_freed();
    // A long log left by the last run is compacted before serving.
    applier.compact_if_due().await;
    if let Some(addr) = args.metrics_listen {
        crate::metrics::install(addr)?;
        crate::metrics::spawn_follow_store(&store);
        info!(address = %addr, "serving metrics at /metrics");
    }
    let sidecar = Sidecar::new(args.config(), Arc::clone(&store));
    let mut endpoints = vec![sidecar.authz_endpoint(bind(&args.listen).await?)?];
    if let (Some(addr), Some(auth)) = (&args.admin_listen, admin_auth) {
        let listener = bind(addr).await?;
        endpoints.push(sidecar.admin_endpoint_tls(listener, applier, auth, admin_tls)?);
    }
    sidecar.run(endpoints, shutdown).await
}

/// How Admin callers are authenticated; an Admin listener with no way to
/// authenticate is refused (fail closed). The token is never logged.
fn admin_auth(args: &ServeArgs) -> Result<Option<AdminAuth>, ServeError> {
    match (&args.admin_listen, &args.admin_token_file) {
        (Some(_), Some(path)) => Ok(Some(AdminAuth::token(BearerToken::from_file(path)?))),
        // The TLS handshake authenticates every caller by certificate.
        (Some(_), None) if args.admin_tls_client_ca.is_some() => {
            Ok(Some(AdminAuth::client_certificates_only()))
        }
        (Some(addr), None) => Err(ServeError::AdminWithoutAuth {
            addr: addr.to_string(),
        }),
        (None, Some(_)) => {
            warn!("--admin-token-file is set but --admin-listen is not: there is no Admin API");
            Ok(None)
        }
        (None, None) => Ok(None),
    }
}

/// The admin listener's TLS settings, read from their files.
fn admin_tls(args: &ServeArgs) -> Result<Option<ServerTlsConfig>, ServeError> {
    let (Some(cert), Some(key)) = (&args.admin_tls_cert, &args.admin_tls_key) else {
        return Ok(None);
    };
    if args.admin_listen.is_none() {
        warn!("--admin-tls-cert is set but --admin-listen is not: there is no Admin API");
        return Ok(None);
    }
    let read = |what: &'static str, path: &PathBuf, holds: Pem| -> Result<Vec<u8>, ServeError> {
        let bytes = std::fs::read(path).map_err(|source| ServeError::AdminTlsFile {
            what,
            path: path.clone(),
            source,
        })?;
        holds
            .check(&bytes)
            .map_err(|problem| ServeError::AdminTlsPem {
                what,
                path: path.clone(),
                problem,
            })?;
        Ok(bytes)
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read("the certificate", cert, Pem::Certificates)?,
        read("the key", key, Pem::PrivateKey)?,
    ));
    if let Some(ca) = &args.admin_tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(
            "the client CA",
            ca,
            Pem::Certificates,
        )?));
    }
    // rustls checks that the key is the certificate's (KeyMismatch).
    tonic::transport::Server::builder()
        .tls_config(tls.clone())
        .map_err(|e| ServeError::AdminTlsPair {
            cert: cert.clone(),
            key: key.clone(),
            cause: with_causes(&e),
        })?;
    Ok(Some(tls))
}

/// What a TLS file must hold. rustls reports a file that holds the wrong
/// thing (a key given as the certificate, a token as the CA) in words that
/// name neither the file nor the flag ("peer sent no certificates"), so
/// each file is read here first.
#[derive(Debug, Clone, Copy)]
enum Pem {
    Certificates,
    PrivateKey,
}

impl Pem {
    fn check(self, bytes: &[u8]) -> Result<(), String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        match self {
            Pem::Certificates => {
                let mut n = 0;
                for cert in CertificateDer::pem_slice_iter(bytes) {
                    cert.map_err(|e| format!("not PEM certificates: {e}"))?;
                    n += 1;
                }
                if n == 0 {
                    return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
                }
                Ok(())
            }
            Pem::PrivateKey => PrivateKeyDer::from_pem_slice(bytes)
                .map(drop)
                .map_err(|e| format!("holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")),
        }
    }
}

/// Loads the first model into `store` and returns the write path: from the
/// state dir when there is one and it is not empty, else from the
/// bootstrap (written to an empty state dir as revision 1).
fn start_model(args: &ServeArgs, store: &Arc<Store>) -> Result<Applier, ServeError> {
    let bootstrap = args.bootstrap();
    let Some(dir) = &args.state_dir else {
        warn!(
            "no --state-dir: updates applied through the Admin API are kept in memory only, and \
             acknowledged updates are lost on restart"
        );
        let events = Events::new(WATCH_BUFFER, 1);
        if let Some(snapshot) = load_bootstrap(&bootstrap)? {
            events.record(Event::bootstrap(1, &snapshot));
            let revision = store.publish(snapshot);
            log_loaded(&bootstrap, revision, store);
        } else {
            warn!("no model loaded: every Authz call is UNAVAILABLE until one is applied");
        }
        return Ok(Applier::new(Arc::clone(store), None, events, 0));
    };
    // Reading and validating the snapshot is most of a restart: it is read
    // only in the compact form that validation needs (see `StoredSnapshot`).
    let (mut state, recovered) = StateDir::open_as::<StoredSnapshot>(dir)?;
    if let Some(torn) = &recovered.torn_tail {
        warn!(
            file = %torn.file.display(),
            offset = torn.offset,
            reason = %torn.reason,
            revision = recovered.revision(),
            "the state dir ended in a torn write (a crash during an append); it was never \
             acknowledged and was cut off: serving the last complete revision"
        );
    }
    let build = |s: &StoredSnapshot| validate_stored(s).map(Snapshot::from_workspaces);
    let keep = store.retention().revisions;
    let restored = restore_with(&recovered, keep, build).map_err(|source| ServeError::Restore {
        dir: dir.clone(),
        source,
    })?;
    let in_place = |source| ServeError::Revision {
        dir: dir.clone(),
        source,
    };
    let events = match restored {
        Some(r) => {
            match &bootstrap {
                Bootstrap::File(path) => {
                    info!(snapshot = %path.display(), "the state dir holds a model: the bootstrap snapshot is not read");
                }
                Bootstrap::Demo => {
                    info!("the state dir holds a model: --demo is not used");
                }
                Bootstrap::Empty => {}
            }
            let workspaces = r.snapshot.workspaces().len();
            for (earlier, snapshot) in r.earlier {
                store.restore(earlier, snapshot).map_err(in_place)?;
            }
            let revision = store.restore(r.revision, r.snapshot).map_err(in_place)?;
            info!(
                revision,
                workspaces,
                replayed = r.replayed,
                state_dir = %dir.display(),
                "model restored from the state dir"
            );
            r.events
        }
        None => {
            let events = Events::new(WATCH_BUFFER, 1);
            match load_bootstrap(&bootstrap)? {
                Some(snapshot) => {
                    snapshot
                        .to_spec()
                        .map_err(std::io::Error::other)
                        .and_then(|spec| state.write_snapshot(1, &spec))
                        .map_err(|source| ServeError::WriteBootstrap {
                            dir: dir.clone(),
                            source,
                        })?;
                    events.record(Event::bootstrap(1, &snapshot));
                    let revision = store.restore(1, snapshot).map_err(in_place)?;
                    log_loaded(&bootstrap, revision, store);
                }
                None => warn!(
                    state_dir = %dir.display(),
                    "the state dir is empty and there is no bootstrap model: every Authz call is \
                     UNAVAILABLE until one is applied"
                ),
            }
            events
        }
    };
    Ok(Applier::new(
        Arc::clone(store),
        Some(state),
        events,
        args.compact_every,
    ))
}

fn log_loaded(bootstrap: &Bootstrap, revision: u64, store: &Store) {
    let workspaces = store.current().map_or(0, |v| v.snapshot.workspaces().len());
    let source = match bootstrap {
        Bootstrap::File(p) => p.display().to_string(),
        _ => "built-in demo".to_string(),
    };
    info!(revision, workspaces, %source, "model loaded");
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
        // No model unless one is given: a pod never answers from the demo.
        assert_eq!(args.bootstrap(), Bootstrap::Empty);
        assert_eq!(args.config().limits.max_page_size, 50);
        assert_eq!(args.config().limits.default_page_size, 50);
        let demo = Cli::try_parse_from(["rolecall", "--demo"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(demo.serve.bootstrap(), Bootstrap::Demo);
        let file =
            Cli::try_parse_from(["rolecall", "--snapshot", "x"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.serve.bootstrap(), Bootstrap::File("x".into()));
        let both = Cli::try_parse_from(["rolecall", "--demo", "--snapshot", "x"]).map(|_| ());
        assert!(both.is_err(), "--demo with --snapshot must be refused");
        // A limit of 0 would refuse every call it bounds.
        for flag in [
            "--max-batch",
            "--max-page-size",
            "--max-message-bytes",
            "--admin-max-message-bytes",
            "--admin-max-snapshot-bytes",
            "--max-apply-streams",
            "--max-watchers",
            "--max-exports",
        ] {
            let zero = Cli::try_parse_from(["rolecall", flag, "0"]).map(|_| ());
            let said = zero.map_err(|e| e.to_string()).err().unwrap_or_default();
            assert!(
                said.contains("at least 1") || said.contains("0 is not in"),
                "{flag}: {said}"
            );
        }
        // The Admin listener's message limit follows --max-message-bytes
        // unless it is given.
        let limits = |flags: &[&str]| {
            let mut argv = vec!["rolecall"];
            argv.extend_from_slice(flags);
            let c = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}"));
            let config = c.serve.config();
            (config.max_message_bytes, config.admin_max_message_bytes)
        };
        assert_eq!(limits(&[]), (4 << 20, 4 << 20));
        assert_eq!(limits(&["--max-message-bytes", "1000"]), (1000, 1000));
        assert_eq!(
            limits(&["--admin-max-message-bytes", "64000000"]),
            (4 << 20, 64_000_000)
        );
        assert_eq!(args.config().admin_limits.max_snapshot_bytes, 1 << 30);
        assert_eq!(
            args.config().keepalive,
            Some(std::time::Duration::from_secs(20))
        );
        let off = Cli::try_parse_from(["rolecall", "--keepalive-seconds", "0"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(off.serve.config().keepalive, None);
        assert_eq!(
            args.compact_every,
            crate::store::apply::DEFAULT_COMPACT_EVERY
        );
        assert_eq!(args.admin_listen, None);
    }
}
