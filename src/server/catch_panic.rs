//! A panic inside one RPC never takes the server down: it becomes INTERNAL
//! for that call, is logged (`tracing::error`) and counted, and the server
//! goes on serving every other call, on the same connection and others.
//!
//! Two places can panic while a call is answered:
//!
//! - the service itself: its `call` (interceptors run there) and its
//!   response future (the handler). [`CatchPanicLayer`] sits on every
//!   listener's server, around all its routes (rolecall's services, health
//!   and reflection), and turns such a panic into a trailers-only INTERNAL
//!   response. It costs no allocation: the routes' future is `Unpin`, so it
//!   is polled in place inside `catch_unwind`.
//! - a task a streaming call spawned to produce its responses (Apply,
//!   Watch). [`spawn_supervised`] runs such a task and, if it panics, hands
//!   the INTERNAL status to the stream so that the client sees an error,
//!   not a stream that ends as if all were well.
//!
//! A panic message is logged but never sent to the client: it could carry
//! model data. The client sees only "internal error" and the RPC's name.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::codegen::Service;
use tonic::Status;
use tracing::error;

/// The Prometheus counter of caught panics (label `rpc`: the gRPC path or
/// the streaming task's RPC name).
pub const PANICS: &str = "rolecall_panics_total";

/// Panics caught since the process started, in every server of the
/// process (tests and the soak read it).
static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// How many panics have been caught and answered INTERNAL so far.
pub fn panics_caught() -> u64 {
    CAUGHT.load(Ordering::Relaxed)
}

/// Logs and counts one caught panic.
fn record(rpc: &str, payload: &(dyn std::any::Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    error!(
        rpc,
        panic = message,
        "a call panicked: answered INTERNAL; the server goes on serving"
    );
    CAUGHT.fetch_add(1, Ordering::Relaxed);
    ::metrics::counter!(PANICS, "rpc" => rpc.to_string()).increment(1);
}

/// The status a panicking call gets.
fn internal(rpc: &str) -> Status {
    Status::internal(format!(
        "internal error while answering {rpc}; it was logged, and the server goes on serving"
    ))
}

/// Wraps a server's routes in [`CatchPanic`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> tower_layer::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

/// A gRPC service whose panics become INTERNAL answers.
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for CatchPanic<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Unpin,
    R: Default + Unpin,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => CatchPanicFuture::Running { future, path },
            Err(payload) => {
                record(&path, payload.as_ref());
                CatchPanicFuture::Panicked(Some(internal(&path).into_http()))
            }
        }
    }
}

/// The response future of [`CatchPanic`].
pub enum CatchPanicFuture<F, R> {
    Running {
        future: F,
        path: String,
    },
    /// `call` itself panicked: this answer, once.
    Panicked(Option<http::Response<R>>),
}

impl<F, R, E> Future for CatchPanicFuture<F, R>
where
    F: Future<Output = Result<http::Response<R>, E>> + Unpin,
    R: Default + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin, so the future is too.
        let this = self.get_mut();
        match this {
            CatchPanicFuture::Running { future, path } => {
                match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *future).poll(cx))) {
                    Ok(poll) => poll,
                    Err(payload) => {
                        record(path, payload.as_ref());
                        let answer = internal(path).into_http();
                        // Never poll the panicked future again.
                        *this = CatchPanicFuture::Panicked(None);
                        Poll::Ready(Ok(answer))
                    }
                }
            }
            CatchPanicFuture::Panicked(answer) => match answer.take() {
                Some(a) => Poll::Ready(Ok(a)),
                // Polled after it completed: answer again rather than panic.
                None => Poll::Ready(Ok(internal("a call").into_http())),
            },
        }
    }
}

/// Spawns `task`, the producer of a streaming call's responses. If it
/// panics, the panic is logged and counted and `on_panic` is given the
/// INTERNAL status to end the stream with. `on_panic` runs after the task
/// has ended, so whatever the task held (its sender) is already dropped:
/// the caller keeps the stream open (e.g. with a sender clone moved into
/// `on_panic`) until the status is delivered.
pub fn spawn_supervised<T, P, PF>(rpc: &'static str, task: T, on_panic: P)
where
    T: Future<Output = ()> + Send + 'static,
    P: FnOnce(Status) -> PF + Send + 'static,
    PF: Future<Output = ()> + Send + 'static,
{
    let handle = tokio::spawn(task);
    tokio::spawn(async move {
        match handle.await {
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                record(rpc, payload.as_ref());
                on_panic(internal(rpc)).await;
            }
            // Finished, or cancelled at runtime shutdown.
            _ => {}
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A service that panics in `call` for "/call", in its future for
    /// "/poll", and answers OK otherwise.
    #[derive(Clone)]
    struct Flaky;

    struct PanicOnPoll(bool);

    impl Future for PanicOnPoll {
        type Output = Result<http::Response<String>, Infallible>;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            if self.0 {
                panic!("boom in poll");
            }
            Poll::Ready(Ok(http::Response::new("ok".to_string())))
        }
    }

    impl Service<http::Request<()>> for Flaky {
        type Response = http::Response<String>;
        type Error = Infallible;
        type Future = PanicOnPoll;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<()>) -> PanicOnPoll {
            match req.uri().path() {
                "/call" => panic!("boom in call"),
                p => PanicOnPoll(p == "/poll"),
            }
        }
    }

    fn grpc_status(r: &http::Response<String>) -> Option<&str> {
        r.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn panics_in_call_and_in_the_future_become_internal() {
        let mut svc = tower_layer::Layer::layer(&CatchPanicLayer, Flaky);
        let before = panics_caught();
        for path in ["/call", "/poll"] {
            let req = http::Request::builder().uri(path).body(()).unwrap();
            let r = svc.call(req).await.unwrap();
            assert_eq!(grpc_status(&r), Some("13"), "{path}");
        }
        let req = http::Request::builder().uri("/fine").body(()).unwrap();
        let r = svc.call(req).await.unwrap();
        assert_eq!(grpc_status(&r), None);
        assert_eq!(r.body(), "ok");
        assert!(panics_caught() >= before + 2);
    }

    #[tokio::test]
    async fn a_panicking_stream_task_hands_over_internal() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn_supervised(
            "Test",
            async { panic!("boom in a task") },
            move |status| async move {
                let _ = tx.send(status);
            },
        );
        let status = rx.await.unwrap();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("boom"), "{}", status.message());

        let (tx, rx) = tokio::sync::oneshot::channel::<Status>();
        spawn_supervised("Test", async {}, move |status| async move {
            let _ = tx.send(status);
        });
        assert!(rx.await.is_err(), "no status when the task ends normally");
    }
}
