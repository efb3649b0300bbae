//! Starting a real server for a test and connecting to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rolecall::engine::Snapshot;
use rolecall::pb::authz_client::AuthzClient;
use rolecall::pb::{self, ResourceRef};
use rolecall::server::{self, Bootstrap, ListenAddr, Listener, ServeConfig, ServeError};
use rolecall::store::{Retention, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where a test server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Unix,
}

/// A server running in the test's runtime, stopped by `stop` (or when
/// dropped, with the runtime).
pub struct TestServer {
    pub store: Arc<Store>,
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServeError>>>,
    _dir: Option<tempfile::TempDir>,
    pub socket: Option<PathBuf>,
}

impl TestServer {
    pub async fn start(store: Arc<Store>, config: ServeConfig, transport: Transport) -> TestServer {
        let (dir, addr) = match transport {
            Transport::Tcp => (None, ListenAddr::Tcp("127.0.0.1:0".into())),
            Transport::Unix => {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
                let path = dir.path().join("authz.sock");
                (Some(dir), ListenAddr::Unix(path))
            }
        };
        let listener = Listener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let tcp = listener.tcp_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(config, listener, Arc::clone(&store), async {
            let _ = rx.await;
        }));
        let socket = match &addr {
            ListenAddr::Unix(p) => Some(p.clone()),
            ListenAddr::Tcp(_) => None,
        };
        let channel = match (tcp, &socket) {
            (Some(a), _) => connect_tcp(&format!("http://{a}")).await,
            (None, Some(p)) => connect_unix(p).await,
            (None, None) => unreachable!(),
        };
        TestServer {
            store,
            channel,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
            socket,
        }
    }

    /// A server serving `snapshot` as revision 1.
    pub async fn with_snapshot(snapshot: Snapshot, transport: Transport) -> TestServer {
        let store = Arc::new(Store::new(Retention::default()));
        store.publish(snapshot);
        TestServer::start(store, ServeConfig::default(), transport).await
    }

    /// A server serving the built-in demo model over TCP.
    pub async fn demo() -> TestServer {
        TestServer::with_snapshot(demo_snapshot(), Transport::Tcp).await
    }

    pub fn authz(&self) -> AuthzClient<Channel> {
        AuthzClient::new(self.channel.clone())
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Whether the server future has returned.
    pub fn is_stopped(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Signals shutdown and waits for the server future to return.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        self.signal_shutdown();
        match self.handle.take() {
            Some(h) => tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .unwrap_or_else(|_| panic!("the server did not stop within 20 s"))
                .unwrap_or_else(|e| panic!("server task: {e}")),
            None => Ok(()),
        }
    }
}

pub async fn connect_tcp(uri: &str) -> Channel {
    Endpoint::from_shared(uri.to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {uri}: {e}"))
}

pub async fn connect_unix(path: &Path) -> Channel {
    let path = path.to_path_buf();
    // The URI is ignored: every connection goes to the socket.
    Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap_or_else(|e| panic!("connect unix socket: {e}"))
}

pub fn demo_snapshot() -> Snapshot {
    match server::load_bootstrap(&Bootstrap::Demo) {
        Ok(Some(s)) => s,
        other => panic!("the demo model does not load: {other:?}"),
    }
}

pub fn snapshot(yaml: &str) -> Snapshot {
    server::load_snapshot_text(yaml, "test").unwrap_or_else(|e| panic!("{e}"))
}

pub fn existing(type_: &str, id: &str) -> Option<ResourceRef> {
    Some(ResourceRef {
        r#type: type_.into(),
        id: id.into(),
        ..Default::default()
    })
}

pub fn check(
    workspace: &str,
    subject: &str,
    action: &str,
    resource: Option<ResourceRef>,
) -> pb::CheckRequest {
    pb::CheckRequest {
        workspace: workspace.into(),
        subject: subject.into(),
        action: action.into(),
        resource,
        consistency: None,
        explain: false,
    }
}

pub fn exact(r: &str) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::Exact(r.into())),
    })
}

pub fn at_least(r: &str) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeast(r.into())),
    })
}

/// Asserts a call failed with `code` and a message containing `text`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: tonic::Code,
    text: &str,
) {
    match r {
        Ok(v) => panic!("expected {code:?} ({text}), got {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            assert!(
                s.message().contains(text),
                "expected \"{text}\" in: {}",
                s.message()
            );
        }
    }
}
