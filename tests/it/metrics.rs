//! `--metrics-listen`: Prometheus text over plain HTTP, counting what the
//! Authz service answered and following the store's revisions.
//!
//! The recorder is process-global and installed once: this module is the
//! only one that installs it (through `rolecall serve`, as the binary
//! does). Once it is installed, calls made by the other tests running in
//! this process count too, so counters are checked as lower bounds; the
//! revision and model gauges are set only by the stores followed here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rolecall::metrics;
use rolecall::pb;
use rolecall::server::{self, ServeArgs};
use rolecall::store::{Retention, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::support::{check, existing, raw_call_on, snapshot};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// A free loopback port: bound, read, released (the server binds it again
/// at once; another process taking it in between is unlikely enough).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

/// Connects once the server listens.
async fn connect_when_up(uri: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tonic::transport::Endpoint::from_shared(uri.to_string())
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
        {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("connect {uri}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// GET `path` over plain HTTP/1.1; the status code and the body.
async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect metrics port {port}: {e}"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    let text = String::from_utf8(raw).unwrap_or_else(|e| panic!("not UTF-8: {e}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in: {text}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in: {head}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked bodies are not decoded here: {head}"
    );
    (status, body.to_string())
}

/// The value of one series (`name{labels}` exactly as rendered), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok()).flatten()
    })
}

#[track_caller]
fn at_least(text: &str, series: &str, min: f64) {
    match value(text, series) {
        Some(v) => assert!(v >= min, "{series} = {v}, expected at least {min}\n{text}"),
        None => panic!("{series} missing from:\n{text}"),
    }
}

/// Renders until `ok` holds (the follower task sets gauges asynchronously).
async fn render_until(what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics::render().unwrap_or_default();
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never saw {what} in:\n{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn metrics_count_decisions_and_follow_the_revision() {
    let (authz_port, metrics_port) = (free_port(), free_port());
    let args = Cli::try_parse_from([
        "rolecall".to_string(),
        "--listen".into(),
        format!("127.0.0.1:{authz_port}"),
        "--metrics-listen".into(),
        format!("127.0.0.1:{metrics_port}"),
        "--demo".into(),
    ])
    .unwrap_or_else(|e| panic!("{e}"))
    .serve;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(args, async {
        let _ = stopped.await;
    }));
    let channel = connect_when_up(&format!("http://127.0.0.1:{authz_port}")).await;
    let mut authz = pb::authz_client::AuthzClient::new(channel.clone());

    // Two allows, two denials (by reach, by an unknown user), one unknown
    // workspace (NOT_FOUND).
    let allow = || {
        check(
            "sunrise-care",
            "u-nurse",
            "read",
            existing("record", "r-rose-1"),
        )
    };
    let deny = check(
        "sunrise-care",
        "u-nurse",
        "read",
        existing("record", "r-oak-1"),
    );
    let ghost = check(
        "sunrise-care",
        "u-ghost",
        "read",
        existing("record", "r-rose-1"),
    );
    for req in [allow(), allow(), deny.clone(), ghost] {
        authz
            .check(req)
            .await
            .unwrap_or_else(|e| panic!("check: {e}"));
    }
    let unknown = authz
        .check(check(
            "nowhere",
            "u-nurse",
            "read",
            existing("record", "r-1"),
        ))
        .await;
    assert_eq!(
        unknown.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::NotFound)
    );
    // A batch: two allows and a deny count as three decisions.
    authz
        .check_batch(pb::CheckBatchRequest {
            checks: vec![allow(), allow(), deny],
            consistency: None,
        })
        .await
        .unwrap_or_else(|e| panic!("check_batch: {e}"));
    authz
        .list_visible(pb::ListVisibleRequest {
            workspace: "sunrise-care".into(),
            subject: "u-nurse".into(),
            resource_type: "record".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("list_visible: {e}"));
    authz
        .list_subjects(pb::ListSubjectsRequest {
            workspace: "sunrise-care".into(),
            action: "update".into(),
            resource: existing("record", "r-oak-1"),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("list_subjects: {e}"));

    // Bytes that are not a request: refused by the codec, counted there.
    for path in ["/rolecall.v1.Authz/Check", "/rolecall.v1.Authz/ListVisible"] {
        let refused = raw_call_on::<pb::CheckResponse>(&channel, path, vec![0x12, 0x01, 0xff])
            .await
            .map(|_| ())
            .map_err(|s| s.code());
        assert_eq!(refused, Err(tonic::Code::InvalidArgument), "{path}");
    }
    // Over the size limit: refused before any handler, counted too.
    let oversized = authz
        .max_encoding_message_size(usize::MAX)
        .check(check(
            "sunrise-care",
            &"u".repeat(5 << 20),
            "read",
            existing("record", "r-rose-1"),
        ))
        .await
        .map(|_| ())
        .map_err(|s| s.code());
    assert_eq!(oversized, Err(tonic::Code::ResourceExhausted));

    // What the Admin service reports.
    metrics::update_accepted();
    metrics::update_rejected();
    metrics::update_failed();
    let stream = metrics::apply_stream_opened();

    render_until("revision 1", |t| value(t, "rolecall_revision") == Some(1.0)).await;
    let (status, text) = http_get(metrics_port, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    drop(stream);
    for (series, min) in [
        (
            r#"rolecall_decisions_total{rpc="check",result="allow"}"#,
            2.0,
        ),
        (
            r#"rolecall_decisions_total{rpc="check",result="deny"}"#,
            2.0,
        ),
        (
            r#"rolecall_denials_total{rpc="check",reason="no_reach"}"#,
            1.0,
        ),
        (
            r#"rolecall_denials_total{rpc="check",reason="unknown_subject"}"#,
            1.0,
        ),
        (
            r#"rolecall_denials_total{rpc="check_batch",reason="no_reach"}"#,
            1.0,
        ),
        (
            r#"rolecall_decisions_total{rpc="check",result="error"}"#,
            1.0,
        ),
        (
            r#"rolecall_rpc_errors_total{rpc="check",code="NotFound"}"#,
            1.0,
        ),
        (
            r#"rolecall_rpc_errors_total{rpc="check",code="InvalidArgument"}"#,
            1.0,
        ),
        (
            r#"rolecall_rpc_errors_total{rpc="list_visible",code="InvalidArgument"}"#,
            1.0,
        ),
        (
            r#"rolecall_rpc_errors_total{rpc="check",code="ResourceExhausted"}"#,
            1.0,
        ),
        (
            r#"rolecall_decisions_total{rpc="check_batch",result="allow"}"#,
            2.0,
        ),
        (
            r#"rolecall_decisions_total{rpc="check_batch",result="deny"}"#,
            1.0,
        ),
        (
            r#"rolecall_decisions_total{rpc="check_batch",result="error"}"#,
            0.0,
        ),
        (
            r#"rolecall_decisions_total{rpc="list_visible",result="ok"}"#,
            1.0,
        ),
        (
            r#"rolecall_decisions_total{rpc="list_subjects",result="ok"}"#,
            1.0,
        ),
        (r#"rolecall_rpc_duration_seconds_count{rpc="check"}"#, 5.0),
        (
            r#"rolecall_rpc_duration_seconds_count{rpc="check_batch"}"#,
            1.0,
        ),
        (
            r#"rolecall_rpc_duration_seconds_bucket{rpc="check",le="+Inf"}"#,
            5.0,
        ),
        (r#"rolecall_updates_total{result="accepted"}"#, 1.0),
        (r#"rolecall_updates_total{result="rejected"}"#, 1.0),
        (r#"rolecall_updates_total{result="failed"}"#, 1.0),
        ("rolecall_apply_streams", 1.0),
        (r#"rolecall_seats_in_use{workspace="sunrise-care"}"#, 0.0),
    ] {
        at_least(&text, series, min);
    }
    // The demo model's care workspace: 9 built-in roles and a custom one,
    // 3 Minis and 6 records.
    for (series, exact) in [
        ("rolecall_revision", 1.0),
        ("rolecall_workspaces", 2.0),
        ("users", 8.0),
        ("groups", 1.0),
        ("roles", 10.0),
        ("labels", 3.0),
        ("resources", 9.0),
    ] {
        let series = match series.strip_prefix("rolecall_") {
            Some(_) => series.to_string(),
            None => format!(r#"rolecall_model_items{{workspace="sunrise-care",kind="{series}"}}"#),
        };
        assert_eq!(value(&text, &series), Some(exact), "{series}\n{text}");
    }
    // A rule that denied nothing has no series; nor does an allow.
    for reason in ["rank_too_low", "granted"] {
        let series = format!(r#"rolecall_denials_total{{rpc="check",reason="{reason}"}}"#);
        assert_eq!(value(&text, &series), None, "{series}\n{text}");
    }
    // Lists are requests, not decisions; only this server had a model.
    assert_eq!(
        value(
            &text,
            r#"rolecall_decisions_total{rpc="list_visible",result="allow"}"#
        ),
        None
    );
    assert!(
        text.contains("# TYPE rolecall_rpc_duration_seconds histogram"),
        "{text}"
    );
    let sum = value(&text, r#"rolecall_rpc_duration_seconds_sum{rpc="check"}"#);
    assert!(sum.is_some_and(|s| s > 0.0 && s < 10.0), "{sum:?}");

    // One recorder per process.
    assert!(matches!(
        metrics::install(([127, 0, 0, 1], 0).into()),
        Err(metrics::MetricsError::AlreadyInstalled)
    ));

    let _ = stop.send(());
    let served = tokio::time::timeout(Duration::from_secs(20), server).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");

    // A followed store: the revision gauge moves, changed workspaces are
    // updated and a removed one reads 0.
    let model = |users: &str, extra: &str| {
        snapshot(&format!(
            "workspaces:
  - id: m-kept
    users: [{users}]
{extra}"
        ))
    };
    let store = Arc::new(Store::new(Retention::default()));
    store.publish(model(
        "{ id: u-1, bindings: [{ role: viewer }] }",
        "  - id: m-gone\n    users: [{ id: u-1, bindings: [{ role: viewer }] }]\n",
    ));
    let follower = metrics::spawn_follow_store(&store)
        .unwrap_or_else(|| panic!("metrics are installed: the store is followed"));
    render_until("m-gone's users", |t| {
        value(
            t,
            r#"rolecall_model_items{workspace="m-gone",kind="users"}"#,
        ) == Some(1.0)
    })
    .await;
    store.publish(model("{ id: u-1 }, { id: u-2 }, { id: u-3 }", ""));
    let text = render_until("revision 2", |t| value(t, "rolecall_revision") == Some(2.0)).await;
    assert_eq!(
        value(
            &text,
            r#"rolecall_model_items{workspace="m-kept",kind="users"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &text,
            r#"rolecall_model_items{workspace="m-gone",kind="users"}"#
        ),
        Some(0.0)
    );
    assert_eq!(value(&text, "rolecall_workspaces"), Some(1.0));
    // Following ends with the store.
    drop(store);
    let ended = tokio::time::timeout(Duration::from_secs(5), follower).await;
    assert!(ended.is_ok(), "the follower outlived its store");
}
