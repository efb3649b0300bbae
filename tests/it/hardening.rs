//! Hardening (RELIABILITY.md): a panicking call is INTERNAL and the server
//! goes on; every limit answers with a clear error; a stuck Watch reader
//! blocks nobody; the admin token file and the Unix socket are private;
//! the token never reaches the logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use rolecall::api::{AdminAuth, AdminLimits, AdminService, AuthzService, BearerToken, Limits};
use rolecall::model::parse::MAX_SNAPSHOT_FILE_BYTES;
use rolecall::model::validate::MAX_LABELS_PER_RESOURCE;
use rolecall::pb;
use rolecall::server::catch_panic::panics_caught;
use rolecall::server::{self, Endpoint, ListenAddr, Listener, ServeConfig, Sidecar};
use rolecall::store::apply::{Applier, WATCH_BUFFER};
use rolecall::store::{Retention, Store};
use tokio::sync::oneshot;
use tonic::codegen::http;
use tonic::service::RoutesBuilder;
use tonic::{Code, Request, Response, Status};

use crate::support::*;

async fn bind_tcp() -> (Listener, String) {
    let l = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let url = format!("http://{}", l.tcp_addr().unwrap());
    (l, url)
}

/// The Authz service, but `Check` panics for the subject "panic".
struct PanicOnSubject(AuthzService);

#[tonic::async_trait]
impl pb::authz_server::Authz for PanicOnSubject {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        if request.get_ref().subject == "panic" {
            panic!("a test panic inside Check");
        }
        pb::authz_server::Authz::check(&self.0, request).await
    }
    async fn check_batch(
        &self,
        request: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        pb::authz_server::Authz::check_batch(&self.0, request).await
    }
    async fn list_visible(
        &self,
        request: Request<pb::ListVisibleRequest>,
    ) -> Result<Response<pb::ListVisibleResponse>, Status> {
        pb::authz_server::Authz::list_visible(&self.0, request).await
    }
    async fn list_subjects(
        &self,
        request: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        pb::authz_server::Authz::list_subjects(&self.0, request).await
    }
}

#[tokio::test]
async fn a_panic_in_a_call_is_internal_and_the_server_goes_on() {
    let store = Arc::new(Store::new(Retention::default()));
    store.publish(demo_snapshot());
    let sidecar = Sidecar::new(ServeConfig::default(), Arc::clone(&store));
    let (listener, url) = bind_tcp().await;
    let mut routes = RoutesBuilder::default();
    routes.add_service(pb::authz_server::AuthzServer::new(PanicOnSubject(
        AuthzService::new(Arc::clone(&store), Limits::default()),
    )));
    // A listener like the real ones: `Endpoint::serve` adds the same
    // catch-panic layer to every listener.
    let endpoint = Endpoint {
        name: "panicky",
        listener,
        routes: routes.routes(),
        health_names: vec![],
        needs_model: false,
        tls: None,
        keepalive: None,
    };
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(sidecar.run(vec![endpoint], async {
        let _ = rx.await;
    }));
    let channel = connect_tcp(&url).await;
    let mut c = pb::authz_client::AuthzClient::new(channel.clone());
    let nurse = || {
        check(
            "sunrise-care",
            "u-nurse",
            "read",
            existing("record", "r-rose-1"),
        )
    };

    let before = panics_caught();
    for _ in 0..3 {
        let panicked = c
            .check(check(
                "sunrise-care",
                "panic",
                "read",
                existing("record", "r-1"),
            ))
            .await;
        assert_status(panicked, Code::Internal, "internal error");
        // The same connection answers the next call.
        let r = c.check(nurse()).await.unwrap().into_inner();
        assert!(r.allowed);
    }
    assert!(panics_caught() >= before + 3);
    // So does a new connection, and the other RPCs.
    let mut fresh = pb::authz_client::AuthzClient::new(connect_tcp(&url).await);
    assert!(fresh.check(nurse()).await.unwrap().into_inner().allowed);
    let list = fresh
        .list_visible(pb::ListVisibleRequest {
            workspace: "sunrise-care".into(),
            subject: "u-nurse".into(),
            resource_type: "record".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.ids.contains(&"r-rose-1".to_string()), "{:?}", list.ids);

    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The request id that makes [`PanicWhileRead`] panic.
const PANIC_MARKER: &str = "panic-while-the-apply-task-reads";

/// A request body that panics when the frame carrying [`PANIC_MARKER`] is
/// read. The Apply handler hands its request stream to the spawned Apply
/// task, so the body is read, and panics, inside that task: what a panic
/// while decoding or handling a request would do.
struct PanicWhileRead(tonic::body::Body);

impl http_body::Body for PanicWhileRead {
    type Data = tonic::codegen::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Status>>> {
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.0).poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            let marker = PANIC_MARKER.as_bytes();
            if f.data_ref()
                .is_some_and(|d| d.windows(marker.len()).any(|w| w == marker))
            {
                panic!("a test panic inside the Apply task");
            }
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.0)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.0)
    }
}

/// A gRPC service whose request bodies are [`PanicWhileRead`]s.
#[derive(Clone)]
struct PanickyBodies<S>(S);

impl<S: tonic::server::NamedService> tonic::server::NamedService for PanickyBodies<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for PanickyBodies<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> S::Future {
        self.0
            .call(req.map(|b| tonic::body::Body::new(PanicWhileRead(b))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_apply_task_is_internal_and_the_server_goes_on() {
    let store = Arc::new(Store::new(Retention::default()));
    store.publish(demo_snapshot());
    let applier = Arc::new(Applier::in_memory(Arc::clone(&store)));
    let sidecar = Sidecar::new(ServeConfig::default(), Arc::clone(&store));
    let (authz_l, authz_url) = bind_tcp().await;
    let (admin_l, admin_url) = bind_tcp().await;
    // The real Admin service, token check included; only its request
    // bodies are wrapped. Served by `Endpoint::serve`, like the real
    // listeners (the same catch-panic layer).
    let token = BearerToken::new(TOKEN.as_bytes()).unwrap();
    let mut routes = RoutesBuilder::default();
    routes.add_service(PanickyBodies(
        AdminService::new(applier).into_server(AdminAuth::token(token), 4 << 20),
    ));
    let admin = Endpoint {
        name: "admin",
        listener: admin_l,
        routes: routes.routes(),
        health_names: vec![],
        needs_model: false,
        tls: None,
        keepalive: None,
    };
    let endpoints = vec![sidecar.authz_endpoint(authz_l).unwrap(), admin];
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(sidecar.run(endpoints, async {
        let _ = rx.await;
    }));
    let admin_channel = connect_tcp(&admin_url).await;
    let mut client = admin_client(&admin_channel, TOKEN);
    let mut watch = client
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();

    let before = panics_caught();
    let mut apply = ApplyStream::open(&mut client).await;
    assert_eq!(
        apply
            .applied(delta("first", r#"[{"upsert_label":"x-1"}]"#))
            .await,
        "2"
    );
    // The next request panics the stream's task while it reads it: the
    // stream ends with INTERNAL from the task's supervisor (it names the
    // RPC, not the gRPC path the catch-panic layer would), not a clean end.
    let end = apply
        .try_send(delta(PANIC_MARKER, r#"[{"upsert_label":"x-2"}]"#))
        .await;
    assert_status(end, Code::Internal, "internal error while answering Apply;");
    assert!(panics_caught() > before, "the panic was not counted");
    assert_eq!(store.revision(), 2, "the panicked request was applied");

    // The server goes on: a new Apply stream on the same connection, the
    // Watch stream that was open, and a Check on the Authz listener.
    let mut again = ApplyStream::open(&mut client).await;
    assert_eq!(
        again
            .applied(delta("after", r#"[{"upsert_label":"x-3"}]"#))
            .await,
        "3"
    );
    for expected in ["2", "3"] {
        let e = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("the Watch stream stalled")
            .unwrap()
            .unwrap();
        assert_eq!(e.revision, expected);
    }
    let r = pb::authz_client::AuthzClient::new(connect_tcp(&authz_url).await)
        .check(check(
            "sunrise-care",
            "u-nurse",
            "read",
            existing("record", "r-rose-1"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.allowed);
    assert_eq!(r.revision, "3");

    drop((apply, again, watch));
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

fn delta(id: &str, changes: &str) -> pb::ApplyRequest {
    apply_json(&format!(
        r#"{{"request_id":"{id}","source":"admin","delta":{{"workspace":"sunrise-care","changes":{changes}}}}}"#
    ))
}

#[tokio::test]
async fn ids_over_256_bytes_are_refused_naming_the_rule() {
    let s = TestSidecar::demo().await;
    let mut apply = s.apply_stream().await;
    let at_limit = "u".repeat(256);
    let over = "u".repeat(257);
    let user = |id: &str| format!(r#"[{{"upsert_user":{{"id":"{id}","bindings":[]}}}}]"#);
    apply.applied(delta("ok", &user(&at_limit))).await;
    let problems = apply.rejected(delta("long", &user(&over))).await;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("[id]") && p.contains("1 to 256 bytes")),
        "{problems:?}"
    );
    // A label id, too.
    let problems = apply
        .rejected(delta(
            "long-label",
            &format!(r#"[{{"upsert_label":"{}"}}]"#, "l".repeat(300)),
        ))
        .await;
    assert!(
        problems.iter().any(|p| p.contains("256 bytes")),
        "{problems:?}"
    );
    // An over-long id in an Authz request is just unknown: a denial.
    let r = s
        .authz_client()
        .check(check(
            "sunrise-care",
            &"x".repeat(10_000),
            "read",
            existing("record", "r-1"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.allowed);
}

#[tokio::test]
async fn labels_per_resource_are_limited() {
    let s = TestSidecar::demo().await;
    let mut apply = s.apply_stream().await;
    let n = MAX_LABELS_PER_RESOURCE + 1;
    let labels: Vec<String> = (0..n).map(|i| format!("\"lim-{i}\"")).collect();
    let mut changes: Vec<String> = labels
        .iter()
        .map(|l| format!(r#"{{"upsert_label":{l}}}"#))
        .collect();
    apply
        .applied(delta("labels", &format!("[{}]", changes.join(","))))
        .await;
    let mini = |labels: &[String]| {
        format!(
            r#"{{"upsert_resource":{{"type":"mini","id":"m-many","labels":[{}]}}}}"#,
            labels.join(",")
        )
    };
    changes = vec![mini(&labels)];
    let problems = apply
        .rejected(delta("too-many", &format!("[{}]", changes.join(","))))
        .await;
    assert!(
        problems.iter().any(|p| p.contains("[limit]")
            && p.contains("mini:m-many")
            && p.contains(&format!("over the limit of {MAX_LABELS_PER_RESOURCE}"))),
        "{problems:?}"
    );
    // Exactly the limit is fine.
    changes = vec![mini(&labels[..MAX_LABELS_PER_RESOURCE])];
    apply
        .applied(delta("at-limit", &format!("[{}]", changes.join(","))))
        .await;
}

#[test]
fn a_snapshot_file_over_the_cap_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    // Sparse: no disk space used, and never read.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(MAX_SNAPSHOT_FILE_BYTES + 1).unwrap();
    let e = rolecall::model::parse::read_snapshot_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[limit]") && e.contains("over the limit of") && e.contains("huge.yaml"),
        "{e}"
    );
    let e = server::load_bootstrap(&server::Bootstrap::File(path))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("over the limit"), "{e}");
}

#[test]
fn a_file_without_a_size_is_read_only_up_to_the_cap() {
    use rolecall::model::parse::read_text_at_most;
    // A device that never ends: refused after max + 1 bytes.
    let zero = std::path::Path::new("/dev/zero");
    assert_eq!(read_text_at_most(zero, 4096).unwrap(), None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.yaml");
    std::fs::write(&path, "x".repeat(4096)).unwrap();
    assert_eq!(
        read_text_at_most(&path, 4096).unwrap().map(|t| t.len()),
        Some(4096)
    );
    assert_eq!(read_text_at_most(&path, 4095).unwrap(), None);
    // The whole path, as `validate /dev/zero` and `serve --snapshot
    // /dev/zero` take it: a limit problem, not memory running out.
    let e = rolecall::model::parse::read_snapshot_file(zero)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[limit]") && e.contains("more than"), "{e}");
}

/// A sidecar with both listeners on TCP and `admin_limits`.
struct Limited {
    store: Arc<Store>,
    admin: tonic::transport::Channel,
    admin_url: String,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

impl Limited {
    async fn start(admin_limits: AdminLimits) -> Limited {
        Limited::serving(admin_limits, demo_snapshot()).await
    }

    async fn serving(admin_limits: AdminLimits, model: rolecall::engine::Snapshot) -> Limited {
        let store = Arc::new(Store::new(Retention::default()));
        store.publish(model);
        let applier = Arc::new(Applier::in_memory(Arc::clone(&store)));
        let config = ServeConfig {
            admin_limits,
            ..ServeConfig::default()
        };
        let sidecar = Sidecar::new(config, Arc::clone(&store));
        let (authz_l, _) = bind_tcp().await;
        let (admin_l, admin_url) = bind_tcp().await;
        let token = BearerToken::new(TOKEN.as_bytes()).unwrap();
        let endpoints = vec![
            sidecar.authz_endpoint(authz_l).unwrap(),
            sidecar
                .admin_endpoint(admin_l, applier, AdminAuth::token(token))
                .unwrap(),
        ];
        let (stop, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(sidecar.run(endpoints, async {
            let _ = rx.await;
        }));
        Limited {
            store,
            admin: connect_tcp(&admin_url).await,
            admin_url,
            stop,
            handle,
        }
    }

    fn client(&self) -> AuthedAdminClient {
        admin_client(&self.admin, TOKEN)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn apply_streams_over_the_limit_are_resource_exhausted() {
    let s = Limited::start(AdminLimits {
        max_apply_streams: 2,
        ..AdminLimits::default()
    })
    .await;
    let mut client = s.client();
    let mut first = ApplyStream::open(&mut client).await;
    let second = ApplyStream::open(&mut client).await;
    let (_tx, rx) = tokio::sync::mpsc::channel::<pb::ApplyRequest>(1);
    assert_status(
        client
            .apply(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await,
        Code::ResourceExhausted,
        "--max-apply-streams",
    );
    // The open streams are not disturbed.
    first
        .applied(delta("a", r#"[{"upsert_label":"x-1"}]"#))
        .await;
    // Closing one frees its slot (once its task has seen the end).
    drop(second);
    let mut third = None;
    for _ in 0..100 {
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::ApplyRequest>(1);
        match client
            .apply(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        {
            Ok(answers) => {
                third = Some((tx, answers));
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(third.is_some(), "the closed stream's slot was never freed");
    assert_eq!(s.store.revision(), 2);
    drop(third);
    drop(first);
    s.stop().await;
}

#[tokio::test]
async fn exports_over_the_limit_are_resource_exhausted() {
    // A model of many pieces, and a client that takes 64 KiB at a time:
    // its export stays under way after the first piece.
    let spec = rolecall::gen::generate(&rolecall::gen::GenOptions {
        records: 150_000,
        ..Default::default()
    });
    let model = rolecall::engine::Snapshot::from_spec(&spec).unwrap();
    let s = Limited::serving(
        AdminLimits {
            max_exports: 1,
            ..AdminLimits::default()
        },
        model,
    )
    .await;
    let slow = connect_slow(&s.admin_url).await;
    let mut first = admin_client(&slow, TOKEN)
        .export_pieces(pb::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(first.message().await.unwrap().is_some());

    let mut client = s.client();
    assert_status(
        client.export_pieces(pb::ExportRequest::default()).await,
        Code::ResourceExhausted,
        "--max-exports",
    );
    assert_status(
        client.export(pb::ExportRequest::default()).await,
        Code::ResourceExhausted,
        "--max-exports",
    );
    // A reader that goes away gives its slot back.
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        match client.export_pieces(pb::ExportRequest::default()).await {
            Ok(pieces) => {
                again = Some(pieces);
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        again.is_some(),
        "the cancelled export's slot was never freed"
    );
    drop(again);
    s.stop().await;
}

#[tokio::test]
async fn watchers_over_the_limit_are_resource_exhausted() {
    let s = Limited::start(AdminLimits {
        max_watchers: 2,
        ..AdminLimits::default()
    })
    .await;
    let mut client = s.client();
    let mut w1 = client
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let w2 = client
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_status(
        client.watch(pb::WatchRequest::default()).await,
        Code::ResourceExhausted,
        "--max-watchers",
    );
    let mut apply = ApplyStream::open(&mut client).await;
    apply
        .applied(delta("w", r#"[{"upsert_label":"x-1"}]"#))
        .await;
    let e = tokio::time::timeout(Duration::from_secs(10), w1.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.revision, "2");
    drop(w2);
    let mut again = None;
    for _ in 0..100 {
        match client.watch(pb::WatchRequest::default()).await {
            Ok(w) => {
                again = Some(w);
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{e}"),
        }
        // The slot frees when the server's task sees the reader gone; an
        // update wakes it.
        apply
            .applied(delta("nudge", r#"[{"upsert_label":"x-2"}]"#))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        again.is_some(),
        "the dropped watcher's slot was never freed"
    );
    drop(again);
    drop(w1);
    drop(apply);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_watch_reader_never_blocks_updates_or_other_readers() {
    let s = Limited::start(AdminLimits::default()).await;
    let mut client = s.client();
    // Never read until the end: its queue, the HTTP/2 window and then the
    // event ring fill up. Its own connection, with a small HTTP/2 stream
    // window (hyper's client default, 2 MiB, would buffer ~25k events).
    let small_window = tonic::transport::Endpoint::from_shared(s.admin_url.clone())
        .unwrap()
        .initial_stream_window_size(Some(8 * 1024))
        .connect()
        .await
        .unwrap();
    let mut stuck = admin_client(&small_window, TOKEN)
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut follower = client
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Enough revisions to overflow every buffer in front of the stuck
    // reader (the ring alone holds WATCH_BUFFER).
    let updates = 3 * WATCH_BUFFER as u64;
    let reader = tokio::spawn(async move {
        let mut next = 2u64;
        while next < 2 + updates {
            let e = follower.message().await.unwrap().unwrap();
            assert_eq!(e.revision, next.to_string());
            next += 1;
        }
        next
    });
    let mut apply = ApplyStream::open(&mut client).await;
    let applied = tokio::time::timeout(Duration::from_secs(120), async {
        for i in 0..updates {
            // Add and remove one label: the model stays small.
            let change = if i % 2 == 0 {
                r#"[{"upsert_label":"churn"}]"#
            } else {
                r#"[{"remove_label":"churn"}]"#
            };
            apply.applied(delta(&format!("u-{i}"), change)).await;
        }
    })
    .await;
    assert!(applied.is_ok(), "updates were held up");
    assert_eq!(s.store.revision(), 1 + updates);
    let followed = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the live follower fell behind")
        .unwrap();
    assert_eq!(followed, 2 + updates);

    // The stuck reader gets what was queued for it, in order, then a clear
    // RESOURCE_EXHAUSTED, not a silent gap.
    let mut next = 2u64;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), stuck.message())
            .await
            .expect("the stuck stream neither delivered nor ended")
        {
            Ok(Some(e)) => {
                assert_eq!(e.revision, next.to_string(), "a gap in the stream");
                next += 1;
            }
            Ok(None) => panic!("the stuck stream ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::ResourceExhausted, "{end}");
    assert!(next < 2 + updates, "the stuck reader was never cut off");
    drop(apply);
    s.stop().await;
}

#[test]
fn a_token_file_readable_by_others_is_refused_and_group_readable_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = BearerToken::from_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("readable by every user")
            && e.contains("chmod 600")
            && e.contains(&path.display().to_string())
            && e.contains("644")
            && !e.contains("s3cret"),
        "{e}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(BearerToken::from_file(&path)
        .unwrap()
        .matches(b"s3cret-token"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(BearerToken::from_file(&path)
        .unwrap()
        .matches(b"s3cret-token"));
}

#[tokio::test]
async fn serve_refuses_to_start_with_a_world_readable_token_file() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: server::ServeArgs,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
    let cli = Cli::try_parse_from([
        "rolecall",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        path.to_str().unwrap(),
    ])
    .unwrap();
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        server::serve(cli.serve, std::future::pending()),
    )
    .await
    .expect("serve started instead of refusing")
    .unwrap_err()
    .to_string();
    assert!(e.contains("chmod 600") && !e.contains("s3cret"), "{e}");
}

#[tokio::test]
async fn the_authz_unix_socket_is_owner_and_group_only() {
    let server = TestServer::with_snapshot(demo_snapshot(), Transport::Unix).await;
    let path = server.socket.clone().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "{mode:o}");
    let r = server
        .authz()
        .check(check(
            "sunrise-care",
            "u-nurse",
            "read",
            existing("record", "r-rose-1"),
        ))
        .await
        .unwrap();
    assert!(r.into_inner().allowed);
    server.stop().await.unwrap();
}

/// Runs the real binary at trace level on Unix sockets in a temporary
/// directory, sends a wrong token and the right one, and returns its logs.
async fn logs_of_a_run_with_tokens(wrong: &str) -> String {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    std::fs::write(at("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(at("token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .arg("serve")
        .arg("--listen")
        .arg(format!("unix:{}", at("authz.sock").display()))
        .arg("--admin-listen")
        .arg(format!("unix:{}", at("admin.sock").display()))
        .arg("--admin-token-file")
        .arg(at("token"))
        .arg("--demo")
        .env("ROLECALL_LOG", "trace")
        .env_remove("ROLECALL_SNAPSHOT")
        .env_remove("ROLECALL_DEMO")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(at("out")).unwrap())
        .stderr(std::fs::File::create(at("err")).unwrap())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..600 {
        if std::os::unix::net::UnixStream::connect(at("admin.sock")).is_ok() {
            up = true;
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "rolecall exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "rolecall did not start within 30 s");
    let admin = connect_unix(&at("admin.sock")).await;
    assert_status(
        admin_client(&admin, wrong)
            .status(pb::StatusRequest {})
            .await,
        Code::Unauthenticated,
        "not valid",
    );
    let mut client = admin_client(&admin, TOKEN);
    let mut apply = ApplyStream::open(&mut client).await;
    apply
        .applied(delta("logged", r#"[{"upsert_label":"x-1"}]"#))
        .await;
    assert!(client.status(pb::StatusRequest {}).await.is_ok());
    drop(apply);
    // Stops this child by its own pid.
    child.kill().unwrap();
    child.wait().unwrap();
    let read = |n: &str| std::fs::read_to_string(at(n)).unwrap_or_default();
    format!("{}{}", read("out"), read("err"))
}

#[tokio::test]
async fn the_admin_token_never_reaches_the_logs_even_at_trace_level() {
    let wrong = "wrong-token-0123456789";
    let text = logs_of_a_run_with_tokens(wrong).await;
    assert!(text.contains("refused an Admin call"), "{text}");
    assert!(text.contains("applied an update"), "{text}");
    for secret in [TOKEN, wrong] {
        assert!(
            !text.contains(secret),
            "a token reached the logs: {}",
            text.lines().find(|l| l.contains(secret)).unwrap_or("")
        );
    }
}

/// Opens an HTTP/2 connection to an Admin listener by hand and then goes
/// silent, as a control plane that hung or lost its network path: it never
/// answers a ping. Returns how long the server kept the connection, if it
/// closed it within `wait`.
async fn silent_client_kept(keepalive: Option<Duration>, wait: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let store = Arc::new(Store::new(Retention::default()));
    let applier = Arc::new(Applier::in_memory(Arc::clone(&store)));
    let config = ServeConfig {
        keepalive,
        ..ServeConfig::default()
    };
    let sidecar = Sidecar::new(config, Arc::clone(&store));
    let (listener, _) = bind_tcp().await;
    let addr = listener.tcp_addr().unwrap();
    let auth = AdminAuth::token(BearerToken::new(TOKEN.as_bytes()).unwrap());
    let admin = sidecar
        .admin_endpoint_tls(listener, applier, auth, None)
        .unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(sidecar.run(vec![admin], async {
        let _ = rx.await;
    }));

    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The client preface, then an empty SETTINGS frame; nothing more.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(wait, async {
        // Read what the server sends (SETTINGS, pings) until it hangs up.
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    let kept = closed.ok().map(|()| started.elapsed());
    drop(tcp);
    let _ = tx.send(());
    let _ = handle.await;
    kept
}

#[tokio::test]
async fn an_admin_client_that_stops_answering_pings_is_disconnected() {
    let (keepalive, wait) = (Duration::from_millis(500), Duration::from_secs(10));
    let kept = silent_client_kept(Some(keepalive), wait).await;
    // A ping after 0.5 s of silence, unanswered for 0.5 s more.
    assert!(
        kept.is_some_and(|t| t >= keepalive && t < Duration::from_secs(5)),
        "{kept:?}"
    );
    // Without keepalive such a connection stays open, and its streams
    // (an Apply slot) with it.
    assert_eq!(silent_client_kept(None, Duration::from_secs(3)).await, None);

    // Authz calls are unary and hold no slot: its listener never pings.
    let sidecar = Sidecar::new(
        ServeConfig::default(),
        Arc::new(Store::new(Retention::default())),
    );
    let (listener, _) = bind_tcp().await;
    assert_eq!(sidecar.authz_endpoint(listener).unwrap().keepalive, None);
    assert!(ServeConfig::default().keepalive.is_some());
}
