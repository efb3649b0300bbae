//! tonic refuses a request message over the configured size with
//! OUT_OF_RANGE; SPEC 5 says a message over the limit is RESOURCE_EXHAUSTED.
//! This wrapper rewrites that one status on the way out, names the flag
//! that sets the limit at the end of its message, and counts it in
//! the metrics as an Authz call's error (no handler ran to count it). It
//! applies only to rolecall's own services, which never answer OUT_OF_RANGE
//! themselves, and costs no allocation (the generated services' futures
//! are already boxed).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tonic::codegen::http::{self, HeaderValue};
use tonic::codegen::Service;
use tonic::server::NamedService;

use crate::metrics::{self, Rpc};

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: HeaderValue = HeaderValue::from_static("8");

/// A gRPC service whose "message too large" is RESOURCE_EXHAUSTED.
#[derive(Debug, Clone)]
pub struct OversizeIsResourceExhausted<S> {
    inner: S,
    /// The flag that sets the limit, for the message.
    flag: &'static str,
}

impl<S> OversizeIsResourceExhausted<S> {
    pub fn new(inner: S, flag: &'static str) -> Self {
        OversizeIsResourceExhausted { inner, flag }
    }
}

impl<S: NamedService> NamedService for OversizeIsResourceExhausted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for OversizeIsResourceExhausted<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Unpin,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Remapped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rpc = Rpc::from_path(req.uri().path());
        Remapped {
            future: self.inner.call(req),
            rpc,
            flag: self.flag,
        }
    }
}

pub struct Remapped<F> {
    future: F,
    /// The Authz RPC called, to count a refusal under.
    rpc: Option<Rpc>,
    flag: &'static str,
}

impl<F, R, E> Future for Remapped<F>
where
    F: Future<Output = Result<http::Response<R>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut out = ready!(Pin::new(&mut self.future).poll(cx));
        if let Ok(resp) = &mut out {
            if resp
                .headers()
                .get(GRPC_STATUS)
                .is_some_and(|v| v == OUT_OF_RANGE)
            {
                resp.headers_mut().insert(GRPC_STATUS, RESOURCE_EXHAUSTED);
                // grpc-message is percent-encoded; what is added is plain
                // printable ASCII, which stays as it is.
                let said = resp.headers().get(GRPC_MESSAGE).map(HeaderValue::as_bytes);
                let mut message = said.unwrap_or_default().to_vec();
                message.extend_from_slice(format!(" (raise {})", self.flag).as_bytes());
                if let Ok(v) = HeaderValue::from_bytes(&message) {
                    resp.headers_mut().insert(GRPC_MESSAGE, v);
                }
                if let Some(rpc) = self.rpc {
                    metrics::refused_request(rpc, tonic::Code::ResourceExhausted);
                }
            }
        }
        Poll::Ready(out)
    }
}
