//! Graceful shutdown: calls in flight are answered, the server future
//! returns, the socket file is removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rolecall::pb;
use rolecall::server::ServeConfig;
use rolecall::store::{Retention, Store};
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_a_waiting_call_and_returns() {
    let store = Arc::new(Store::new(Retention::default()));
    store.publish(demo_snapshot());
    let mut server = TestServer::start(store, ServeConfig::default(), Transport::Unix).await;
    let socket = server.socket.clone().unwrap_or_else(|| panic!("no socket"));
    assert!(socket.exists());
    let mut c = server.authz();
    // An at_least wait for a revision that never comes, with a long deadline.
    let waiting = tokio::spawn(async move {
        let mut req = tonic::Request::new(pb::CheckRequest {
            consistency: at_least("99"),
            ..check(
                "sunrise-care",
                "u-nurse",
                "read",
                existing("record", "r-rose-1"),
            )
        });
        req.set_timeout(Duration::from_secs(60));
        c.check(req).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    let started = Instant::now();
    server.signal_shutdown();
    let answered = waiting.await.unwrap_or_else(|e| panic!("{e}"));
    assert_status(answered, Code::Unavailable, "shutting down");
    assert!(server.stop().await.is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!socket.exists(), "the socket file is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_call_in_flight_finish() {
    // A Check whose request body is still on its way when shutdown is
    // signalled: the server has the stream (its HEADERS), keeps the
    // connection open, answers the call once the body arrives, and only
    // then returns.
    let mut server = TestServer::demo().await;
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    let (body, rx) = tokio::sync::mpsc::channel::<pb::CheckRequest>(1);
    let call = tokio::spawn(async move {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unknown(e.to_string()))?;
        grpc.client_streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            tonic::codegen::http::uri::PathAndQuery::from_static("/rolecall.v1.Authz/Check"),
            tonic_prost::ProstCodec::<pb::CheckRequest, pb::CheckResponse>::default(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.is_stopped(),
        "the server waits for the call in flight"
    );
    assert!(!call.is_finished());
    let sent = body
        .send(check(
            "sunrise-care",
            "u-nurse",
            "read",
            existing("record", "r-rose-1"),
        ))
        .await;
    assert!(sent.is_ok());
    drop(body);
    let answer = call
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|s| panic!("the call in flight was cut: {s:?}"))
        .into_inner();
    assert!(answer.allowed);
    assert!(server.stop().await.is_ok());
}

#[tokio::test]
async fn the_grace_period_bounds_the_drain() {
    let store = Arc::new(Store::new(Retention::default()));
    store.publish(demo_snapshot());
    let config = ServeConfig {
        shutdown_grace: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let server = TestServer::start(store, config, Transport::Tcp).await;
    // An open connection with nothing in flight does not hold the drain up.
    let _idle = server.authz();
    let started = Instant::now();
    assert!(server.stop().await.is_ok());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_delay_answers_on_while_health_sends_callers_away() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let store = Arc::new(Store::new(Retention::default()));
    store.publish(demo_snapshot());
    let delay = Duration::from_millis(1500);
    let config = ServeConfig {
        shutdown_delay: delay,
        ..ServeConfig::default()
    };
    let mut server = TestServer::start(store, config, Transport::Tcp).await;
    let started = Instant::now();
    server.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let health = HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(health.status, ServingStatus::NotServing as i32);
    // A caller still finishing its own work is answered, on a new
    // connection too.
    let fresh = connect_tcp(&format!(
        "http://{}",
        server.addr.unwrap_or_else(|| panic!("tcp"))
    ))
    .await;
    let answer = pb::authz_client::AuthzClient::new(fresh)
        .check(check(
            "sunrise-care",
            "u-nurse",
            "read",
            existing("record", "r-rose-1"),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(answer.allowed);
    assert!(!server.is_stopped());

    // Then it drains and stops.
    assert!(server.stop().await.is_ok());
    let took = started.elapsed();
    assert!(
        took >= delay && took < delay + Duration::from_secs(3),
        "{took:?}"
    );
}
