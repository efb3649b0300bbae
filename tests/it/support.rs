//! Starting a real server for a test and connecting to it.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use prost::bytes::BufMut;
use prost::Message;
use rolecall::api::{AdminAuth, BearerToken};
use rolecall::engine::Snapshot;
use rolecall::pb::admin_client::AdminClient;
use rolecall::pb::authz_client::AuthzClient;
use rolecall::pb::{self, ResourceRef};
use rolecall::server::{self, Bootstrap, ListenAddr, Listener, ServeConfig, ServeError};
use rolecall::store::apply::Applier;
use rolecall::store::{Retention, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::Status;
use tonic_prost::ProstDecoder;

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
    /// The TCP address, on TCP.
    pub addr: Option<std::net::SocketAddr>,
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
            addr: tcp,
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

/// A connection whose HTTP/2 windows take 64 KiB at a time, so that a
/// server streaming much more must wait for its reader.
pub async fn connect_slow(uri: &str) -> Channel {
    Endpoint::from_shared(uri.to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {uri}: {e}"))
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

/// The admin bearer token of [`TestSidecar`]s.
pub const TOKEN: &str = "test-admin-token";

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct WithToken(pub String);

impl tonic::service::Interceptor for WithToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let value = format!("Bearer {}", self.0)
            .parse()
            .unwrap_or_else(|e| panic!("token header: {e}"));
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

pub type AuthedAdminClient =
    AdminClient<tonic::service::interceptor::InterceptedService<Channel, WithToken>>;

/// An Admin client sending `token`.
pub fn admin_client(channel: &Channel, token: &str) -> AuthedAdminClient {
    AdminClient::with_interceptor(channel.clone(), WithToken(token.to_string()))
}

/// A sidecar with both listeners on TCP port 0, in the test's runtime: the
/// Authz listener and the Admin one (token [`TOKEN`]), memory only.
pub struct TestSidecar {
    pub store: Arc<Store>,
    pub authz: Channel,
    pub admin: Channel,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestSidecar {
    /// Serves `snapshot` (if any) as revision 1.
    pub async fn start(snapshot: Option<Snapshot>) -> TestSidecar {
        let token = BearerToken::new(TOKEN.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
        TestSidecar::start_with(snapshot, AdminAuth::token(token), None).await
    }

    /// Serves `snapshot` with the admin listener behind `auth` and `tls`.
    /// With TLS, `admin` is not connected (connect with TLS yourself to
    /// `admin_url`).
    pub async fn start_with(
        snapshot: Option<Snapshot>,
        auth: AdminAuth,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> TestSidecar {
        TestSidecar::start_configured(snapshot, auth, tls, ServeConfig::default()).await
    }

    /// The demo model behind the test token, with `config` instead of the
    /// defaults.
    pub async fn demo_configured(config: ServeConfig) -> TestSidecar {
        let token = BearerToken::new(TOKEN.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
        TestSidecar::start_configured(Some(demo_snapshot()), AdminAuth::token(token), None, config)
            .await
    }

    /// [`Self::start_with`] with `config` instead of the defaults.
    pub async fn start_configured(
        snapshot: Option<Snapshot>,
        auth: AdminAuth,
        tls: Option<tonic::transport::ServerTlsConfig>,
        config: ServeConfig,
    ) -> TestSidecar {
        let store = Arc::new(Store::new(Retention::default()));
        if let Some(s) = snapshot {
            store.publish(s);
        }
        let applier = Arc::new(Applier::in_memory(Arc::clone(&store)));
        let sidecar = server::Sidecar::new(config, Arc::clone(&store));
        let bind = || async {
            Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"))
        };
        let (authz_l, admin_l) = (bind().await, bind().await);
        let urls = [&authz_l, &admin_l].map(|l| match l.tcp_addr() {
            Some(a) => format!("http://{a}"),
            None => unreachable!(),
        });
        let tls_on = tls.is_some();
        let endpoints = vec![
            sidecar
                .authz_endpoint(authz_l)
                .unwrap_or_else(|e| panic!("{e}")),
            sidecar
                .admin_endpoint_tls(admin_l, applier, auth, tls)
                .unwrap_or_else(|e| panic!("{e}")),
        ];
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(sidecar.run(endpoints, async {
            let _ = rx.await;
        }));
        TestSidecar {
            store,
            authz: connect_tcp(&urls[0]).await,
            admin: if tls_on {
                Endpoint::from_static("http://unused.invalid").connect_lazy()
            } else {
                connect_tcp(&urls[1]).await
            },
            admin_url: urls[1].clone(),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn demo() -> TestSidecar {
        TestSidecar::start(Some(demo_snapshot())).await
    }

    pub fn authz_client(&self) -> AuthzClient<Channel> {
        AuthzClient::new(self.authz.clone())
    }

    /// An Admin client with the right token.
    pub fn admin_client(&self) -> AuthedAdminClient {
        admin_client(&self.admin, TOKEN)
    }

    /// Opens an Apply stream.
    pub async fn apply_stream(&self) -> ApplyStream {
        ApplyStream::open(&mut self.admin_client()).await
    }

    /// Signals shutdown and waits for the server future to return.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .unwrap_or_else(|_| panic!("the sidecar did not stop within 20 s"))
                .unwrap_or_else(|e| panic!("sidecar task: {e}")),
            None => Ok(()),
        }
    }
}

/// One open Apply stream: send a request, read its answer.
pub struct ApplyStream {
    requests: tokio::sync::mpsc::Sender<pb::ApplyRequest>,
    answers: tonic::Streaming<pb::ApplyResponse>,
}

impl ApplyStream {
    pub async fn open(client: &mut AuthedAdminClient) -> ApplyStream {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let answers = client
            .apply(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap_or_else(|e| panic!("Apply: {e}"))
            .into_inner();
        ApplyStream {
            requests: tx,
            answers,
        }
    }

    /// Sends one request and returns its answer, or the status that ended
    /// the stream.
    pub async fn try_send(
        &mut self,
        request: pb::ApplyRequest,
    ) -> Result<pb::ApplyResponse, tonic::Status> {
        self.push(request).await;
        match self.answers.message().await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => panic!("the Apply stream ended without an answer"),
            Err(s) => Err(s),
        }
    }

    /// Sends one request without reading an answer (a snapshot piece that
    /// is not the last gets none).
    pub async fn push(&mut self, request: pb::ApplyRequest) {
        self.requests
            .send(request)
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Closes the sending side and returns what comes next: an answer,
    /// the stream's clean end (`None`), or the status that ended it.
    pub async fn close(self) -> Result<Option<pb::ApplyResponse>, tonic::Status> {
        let ApplyStream {
            requests,
            mut answers,
        } = self;
        drop(requests);
        answers.message().await
    }

    pub async fn send(&mut self, request: pb::ApplyRequest) -> pb::ApplyResponse {
        self.try_send(request)
            .await
            .unwrap_or_else(|e| panic!("Apply: {e}"))
    }

    /// Sends one request that must be applied; returns its revision.
    pub async fn applied(&mut self, request: pb::ApplyRequest) -> String {
        let id = request.request_id.clone();
        let r = self.send(request).await;
        assert_eq!(r.request_id, id);
        match r.result {
            Some(pb::apply_response::Result::Revision(rev)) => rev,
            other => panic!("request {id} was not applied: {other:?}"),
        }
    }

    /// Sends one request that must be rejected; returns its problems.
    pub async fn rejected(&mut self, request: pb::ApplyRequest) -> Vec<String> {
        let id = request.request_id.clone();
        let r = self.send(request).await;
        assert_eq!(r.request_id, id);
        match r.result {
            Some(pb::apply_response::Result::Rejected(pb::Rejected { problems })) => problems,
            other => panic!("request {id} was not rejected: {other:?}"),
        }
    }
}

/// An ApplyRequest from its JSON form, as grpcurl's `-d` takes it.
pub fn apply_json(json: &str) -> pb::ApplyRequest {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    apply_from_value(&v)
}

/// Builds an ApplyRequest from JSON, through the domain types (the same
/// shape as the proto JSON for these tests' requests).
fn apply_from_value(v: &serde_json::Value) -> pb::ApplyRequest {
    use rolecall::model::delta::{Delta, Update, UpdateBody, UpdateSource};
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let body = if let Some(d) = v.get("delta") {
        UpdateBody::Delta(Delta {
            workspace: d["workspace"].as_str().unwrap_or("").to_string(),
            changes: serde_json::from_value(d["changes"].clone())
                .unwrap_or_else(|e| panic!("changes: {e}")),
        })
    } else {
        UpdateBody::Snapshot(
            serde_json::from_value(v["snapshot"].clone())
                .unwrap_or_else(|e| panic!("snapshot: {e}")),
        )
    };
    let update = Update {
        request_id: s("request_id"),
        source: UpdateSource::parse(&s("source")).unwrap_or(UpdateSource::Admin),
        expected_revision: None,
        body,
    };
    let mut req = pb::ApplyRequest::from(&update);
    req.source = s("source");
    req.expected_revision = s("expected_revision");
    req
}

/// Sends its bytes as the message, decodes an `R`.
#[derive(Debug, Clone, Copy)]
struct RawCodec<R>(PhantomData<R>);

impl<R: Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = ProstDecoder<R>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

#[derive(Debug, Clone, Copy)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

/// Sends `bytes` as the message of a unary call to `path` (bytes a
/// generated client never would), decodes an `R`.
pub async fn raw_call_on<R: Message + Default + Send + 'static>(
    channel: &Channel,
    path: &'static str,
    bytes: Vec<u8>,
) -> Result<R, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let path = PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(bytes), path, RawCodec(PhantomData))
        .await
        .map(tonic::Response::into_inner)
}

/// The wire enum's name in the words of `Explanation.rule`.
pub fn reason_name(reason: i32) -> String {
    let name = pb::Reason::try_from(reason)
        .map(|r| r.as_str_name())
        .unwrap_or("not a Reason");
    name.strip_prefix("REASON_").unwrap_or(name).to_lowercase()
}
