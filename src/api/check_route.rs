//! `rolecall.v1.Authz` as served: the generated server, with its Check
//! route decoded by [`CheckCodec`] (no allocation per request) instead of
//! prost. The other methods, and everything about errors and sizes, are the
//! generated server's.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body as TonicBody;
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::Request;

use super::authz::{AuthzService, CheckFuture};
use super::check_wire::{CheckCodec, CheckWire};
use crate::pb;
use crate::pb::authz_server::AuthzServer;

const CHECK_PATH: &str = "/rolecall.v1.Authz/Check";

/// The Authz service with its fast Check route.
#[derive(Debug, Clone)]
pub struct AuthzRoutes {
    service: Arc<AuthzService>,
    generated: AuthzServer<AuthzService>,
    max_message_bytes: usize,
}

impl AuthzRoutes {
    pub fn new(service: AuthzService, max_message_bytes: usize) -> Self {
        let service = Arc::new(service);
        let generated = AuthzServer::from_arc(Arc::clone(&service))
            .max_decoding_message_size(max_message_bytes);
        AuthzRoutes {
            service,
            generated,
            max_message_bytes,
        }
    }
}

impl NamedService for AuthzRoutes {
    const NAME: &'static str = <AuthzServer<AuthzService> as NamedService>::NAME;
}

impl<B> Service<http::Request<B>> for AuthzRoutes
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<TonicBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CHECK_PATH {
            return self.generated.call(req);
        }
        let method = CheckMethod(Arc::clone(&self.service));
        let max_message_bytes = self.max_message_bytes;
        Box::pin(async move {
            // As the generated route configures it: no compression, the
            // decoding limit, tonic's default encoding limit.
            let mut grpc =
                Grpc::new(CheckCodec).apply_max_message_size_config(Some(max_message_bytes), None);
            Ok(grpc.unary(method, req).await)
        })
    }
}

struct CheckMethod(Arc<AuthzService>);

impl UnaryService<CheckWire> for CheckMethod {
    type Response = pb::CheckResponse;
    type Future = CheckFuture<'static>;

    fn call(&mut self, request: Request<CheckWire>) -> Self::Future {
        AuthzService::check_call(Arc::clone(&self.0), request)
    }
}
