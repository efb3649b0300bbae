//! `rolecall.v1.Authz` as served: the generated server, with its Check and
//! CheckBatch routes decoded off the wire ([`CheckWire`], no allocation
//! per request; [`CheckBatchWire`], one buffer per batch) instead of by
//! prost, and CheckBatch's answers written by [`BatchAnswerEncoder`]. The
//! other methods, and everything about errors and sizes, are the generated
//! server's.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::bytes::Buf;
use prost::DecodeError;
use tonic::body::Body as TonicBody;
use tonic::codec::{Codec, DecodeBuf, Decoder, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Status};
use tonic_prost::ProstEncoder;

use super::authz::{AuthzService, CheckFuture};
use super::batch_answer::{BatchAnswer, BatchAnswerEncoder};
use super::batch_wire::CheckBatchWire;
use super::check_wire::CheckWire;
use super::codec::malformed;
use crate::metrics::Rpc;
use crate::pb;
use crate::pb::authz_server::AuthzServer;

const CHECK_PATH: &str = "/rolecall.v1.Authz/Check";
const CHECK_BATCH_PATH: &str = "/rolecall.v1.Authz/CheckBatch";

/// The Authz service with its fast Check and CheckBatch routes.
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

    /// A unary call whose request `R` is read off the wire, configured as
    /// the generated routes are: no compression, the decoding limit,
    /// tonic's default encoding limit.
    fn unary<R, M, B>(
        &self,
        method: M,
        req: http::Request<B>,
    ) -> BoxFuture<http::Response<TonicBody>, Infallible>
    where
        R: WireRequest,
        M: UnaryService<R, Response = R::Response> + Send + 'static,
        M::Future: Send,
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let max_message_bytes = self.max_message_bytes;
        let codec = WireCodec::<R> {
            max_checks: self.service.max_batch(),
            request: PhantomData,
        };
        Box::pin(async move {
            let mut grpc =
                Grpc::new(codec).apply_max_message_size_config(Some(max_message_bytes), None);
            Ok(grpc.unary(method, req).await)
        })
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
        match req.uri().path() {
            CHECK_PATH => self.unary(CheckMethod(Arc::clone(&self.service)), req),
            CHECK_BATCH_PATH => self.unary(CheckBatchMethod(Arc::clone(&self.service)), req),
            _ => self.generated.call(req),
        }
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

struct CheckBatchMethod(Arc<AuthzService>);

impl UnaryService<CheckBatchWire> for CheckBatchMethod {
    type Response = BatchAnswer;
    type Future = BoxFuture<tonic::Response<BatchAnswer>, Status>;

    fn call(&mut self, request: Request<CheckBatchWire>) -> Self::Future {
        let service = Arc::clone(&self.0);
        Box::pin(async move { service.check_batch_call(request).await })
    }
}

/// A request message read off the wire by its own reader, answered by its
/// own encoder.
trait WireRequest: Sized + Send + 'static {
    type Response: Send + 'static;
    type Encoder: Encoder<Item = Self::Response, Error = Status> + Default + Send + 'static;
    /// The RPC, as the metrics name it.
    const RPC: Rpc;

    /// Reads one whole message; a batch keeps at most `max_checks` checks.
    fn read(buf: &mut impl Buf, max_checks: usize) -> Result<Self, DecodeError>;
}

impl WireRequest for CheckWire {
    type Response = pb::CheckResponse;
    type Encoder = ProstEncoder<pb::CheckResponse>;
    const RPC: Rpc = Rpc::Check;

    fn read(buf: &mut impl Buf, _max_checks: usize) -> Result<Self, DecodeError> {
        CheckWire::decode(buf)
    }
}

impl WireRequest for CheckBatchWire {
    type Response = BatchAnswer;
    type Encoder = BatchAnswerEncoder;
    const RPC: Rpc = Rpc::CheckBatch;

    fn read(buf: &mut impl Buf, max_checks: usize) -> Result<Self, DecodeError> {
        CheckBatchWire::decode(buf, max_checks)
    }
}

/// The codec of a route read off the wire: requests through `R`'s reader,
/// answers through `R`'s encoder.
struct WireCodec<R> {
    max_checks: usize,
    request: PhantomData<fn() -> R>,
}

impl<R: WireRequest> Codec for WireCodec<R> {
    type Encode = R::Response;
    type Decode = R;
    type Encoder = R::Encoder;
    type Decoder = WireCodec<R>;

    fn encoder(&mut self) -> Self::Encoder {
        R::Encoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        WireCodec {
            max_checks: self.max_checks,
            request: PhantomData,
        }
    }
}

impl<R: WireRequest> Decoder for WireCodec<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        // The same status as every other route's (codec.rs).
        R::read(buf, self.max_checks)
            .map(Some)
            .map_err(|e| malformed(Some(R::RPC), e))
    }
}
