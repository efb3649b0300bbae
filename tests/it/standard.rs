//! Health and reflection, as grpcurl and Kubernetes probes use them.

use std::sync::Arc;
use std::time::Duration;

use rolecall::server::ServeConfig;
use rolecall::store::{Retention, Store};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::support::*;

async fn status(channel: &Channel, service: &str) -> ServingStatus {
    let r = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("health {service:?}: {e}"))
        .into_inner();
    ServingStatus::try_from(r.status).unwrap_or(ServingStatus::Unknown)
}

#[tokio::test]
async fn health_is_not_serving_until_a_model_is_loaded() {
    let store = Arc::new(Store::new(Retention::default()));
    let server =
        TestServer::start(Arc::clone(&store), ServeConfig::default(), Transport::Tcp).await;
    for service in ["", "rolecall.v1.Authz"] {
        assert_eq!(
            status(&server.channel, service).await,
            ServingStatus::NotServing
        );
    }
    store.publish(demo_snapshot());
    for service in ["", "rolecall.v1.Authz"] {
        let mut last = ServingStatus::Unknown;
        for _ in 0..100 {
            last = status(&server.channel, service).await;
            if last == ServingStatus::Serving {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(last, ServingStatus::Serving, "{service:?}");
    }
}

#[tokio::test]
async fn health_is_serving_at_once_with_a_bootstrap_model() {
    let server = TestServer::with_snapshot(demo_snapshot(), Transport::Unix).await;
    assert_eq!(status(&server.channel, "").await, ServingStatus::Serving);
    assert_eq!(
        status(&server.channel, "rolecall.v1.Authz").await,
        ServingStatus::Serving
    );
}

const EXPECTED: [&str; 4] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "rolecall.v1.Authz",
];

#[tokio::test]
async fn reflection_v1_lists_and_describes_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = TestServer::demo().await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("rolecall.v1.Authz".into()),
    ]
    .map(|m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let mut names = Vec::new();
    let mut described = false;
    while let Some(r) = answers.message().await.unwrap_or_else(|e| panic!("{e}")) {
        match r.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                names = l.service.into_iter().map(|s| s.name).collect()
            }
            Some(MessageResponse::FileDescriptorResponse(f)) => {
                described = !f.file_descriptor_proto.is_empty()
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, EXPECTED);
    assert!(described);
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_services() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;

    let server = TestServer::demo().await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("grpc.reflection.v1.ServerReflection".into()),
    ]
    .map(|m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let mut names = Vec::new();
    let mut described = false;
    while let Some(r) = answers.message().await.unwrap_or_else(|e| panic!("{e}")) {
        match r.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                names = l.service.into_iter().map(|s| s.name).collect()
            }
            Some(MessageResponse::FileDescriptorResponse(f)) => {
                described = !f.file_descriptor_proto.is_empty()
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, EXPECTED);
    assert!(described);
}
