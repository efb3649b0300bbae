//! `rolecall.v1.Authz`: Check, CheckBatch, ListVisible, ListSubjects.
//!
//! Each call loads the model once and answers from that one revision. A
//! `latest` Check (the hot path) arrives decoded without an allocation
//! ([`CheckWire`], on the route [`AuthzRoutes`] adds), borrows the current
//! revision lock-free (`ArcSwap::load`), converts nothing it does not need,
//! and looks each request string up once. It is answered before the call's
//! future is returned: only a Check that has to wait for a revision
//! (`at_least` one not yet published) gets a boxed future, so the hot path
//! carries no wait state and allocates no future. The answer's revision is
//! the decimal string formatted once per published revision
//! ([`Versioned::revision_text`]). A CheckBatch arrives read off the wire
//! too ([`CheckBatchWire`]: one buffer, each check's strings slices of it).

use std::future::{Future, Ready};
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use tracing::{debug, debug_span, Instrument};

use super::batch_answer::BatchAnswer;
use super::batch_wire::CheckBatchWire;
use super::check_route::AuthzRoutes;
use super::check_wire::{CheckFields, CheckWire};
use super::convert::{self, Answer, CheckQuery, ListSubjectsQuery, ListVisibleQuery};
use super::page_token::{self, PageToken};
use super::status::ApiError;
use super::Limits;
use crate::engine::{batch, CompiledWorkspace, ResourceQuery};
use crate::metrics::{Outcome, Rpc, RpcTimer, Rules};
use crate::pb;
use crate::store::{Consistency, Store, StoreError, Versioned};

/// The Authz service over a shared [`Store`].
#[derive(Debug, Clone)]
pub struct AuthzService {
    store: Arc<Store>,
    limits: Limits,
}

impl AuthzService {
    pub fn new(store: Arc<Store>, limits: Limits) -> Self {
        AuthzService { store, limits }
    }

    /// The tonic service for `rolecall.v1.Authz`, refusing request messages
    /// over `max_message_bytes`; its Check reads requests without
    /// allocating ([`AuthzRoutes`]).
    pub fn into_server(self, max_message_bytes: usize) -> AuthzRoutes {
        AuthzRoutes::new(self, max_message_bytes)
    }

    /// A Check, timed and traced. It is answered before its future is
    /// returned unless it must wait for a revision, so the hot path's
    /// future holds only the answer, not the request and the state of a
    /// possible wait.
    pub(super) fn check_call<'a, S, M>(service: S, request: Request<M>) -> CheckFuture<'a>
    where
        S: Deref<Target = AuthzService> + Send + Sync + 'a,
        M: CheckMessage + 'a,
    {
        let timer = RpcTimer::start(Rpc::Check);
        let span = debug_span!("rpc", method = "Check");
        let now = span.in_scope(|| match request.get_ref().fields() {
            Ok(fields) => service.check_now(fields),
            Err(e) => Some(Err(e)),
        });
        match now {
            Some(result) => CheckFuture::Now(std::future::ready(finish("Check", timer, result))),
            None => CheckFuture::Waiting(Box::pin(async move {
                let result = async {
                    let fields = request.get_ref().fields()?;
                    service.check_waiting(fields, request.metadata()).await
                }
                .instrument(span)
                .await;
                finish("Check", timer, result)
            })),
        }
    }

    /// A Check answered without waiting: `latest`, `exact`, and an
    /// `at_least` revision already published (what [`Store::resolve`] would
    /// answer at once). `None`: it must wait, in [`Self::check_waiting`].
    fn check_now(&self, request: CheckFields<'_>) -> Option<Result<pb::CheckResponse, ApiError>> {
        let (query, consistency) = match convert::check_request(request) {
            Ok(parsed) => parsed,
            Err(e) => return Some(Err(e)),
        };
        let current = self.store.load();
        let Some(v) = current.as_deref() else {
            return Some(Err(StoreError::NoModel.into()));
        };
        Some(match consistency {
            Consistency::Latest => answer_check(v, &query),
            Consistency::AtLeast(wanted) if v.revision >= wanted => answer_check(v, &query),
            Consistency::AtLeast(_) => return None,
            Consistency::Exact(wanted) => self
                .store
                .exact(wanted)
                .map_err(ApiError::from)
                .and_then(|v| answer_check(&v, &query)),
        })
    }

    /// A Check that waits for its `at_least` revision.
    async fn check_waiting(
        &self,
        request: CheckFields<'_>,
        metadata: &MetadataMap,
    ) -> Result<pb::CheckResponse, ApiError> {
        let (query, consistency) = convert::check_request(request)?;
        let wait = self.wait_budget(metadata);
        let v = self.store.resolve(consistency, wait).await?;
        answer_check(&v, &query)
    }

    /// A CheckBatch, timed and traced.
    pub(super) async fn check_batch_call(
        &self,
        request: Request<CheckBatchWire>,
    ) -> Result<Response<BatchAnswer>, Status> {
        let timer = RpcTimer::start(Rpc::CheckBatch);
        let span = debug_span!("rpc", method = "CheckBatch");
        finish(
            "CheckBatch",
            timer,
            self.check_batch(request).instrument(span).await,
        )
    }

    /// The most checks a batch may hold.
    pub(super) fn max_batch(&self) -> usize {
        self.limits.max_batch
    }

    async fn check_batch(&self, request: Request<CheckBatchWire>) -> Result<BatchAnswer, ApiError> {
        let len = request.get_ref().len();
        if len > self.limits.max_batch {
            return Err(ApiError::BatchTooLarge {
                len,
                max: self.limits.max_batch,
            });
        }
        let (queries, consistency) = convert::check_batch_request(request.get_ref())?;
        let v = self.resolve(consistency, request.metadata()).await?;
        // Each item is answered as a Check is, in order, up to the first
        // error; the items' memory is touched ahead (see `batch`).
        let results = batch::check_each(
            &queries,
            |q| {
                Some(batch::Item {
                    workspace: v.snapshot.workspace(q.workspace)?,
                    subject: q.subject,
                    resource: q.resource,
                })
            },
            |index, q| {
                decide(&v, q).map_err(|error| ApiError::InBatch {
                    index,
                    error: Box::new(error),
                })
            },
        )?;
        Ok(BatchAnswer {
            results,
            revision: v.revision_text().to_owned(),
        })
    }

    async fn list_visible(
        &self,
        request: Request<pb::ListVisibleRequest>,
    ) -> Result<pb::ListVisibleResponse, ApiError> {
        let (q, consistency): (ListVisibleQuery<'_>, _) =
            convert::list_visible_request(request.get_ref())?;
        let fingerprint = page_token::fingerprint(&[
            "ListVisible",
            q.workspace,
            q.subject,
            q.resource_type,
            q.action,
            q.parent.unwrap_or(""),
        ]);
        let (v, after) = self
            .page_start(q.page_token, fingerprint, consistency, request.metadata())
            .await?;
        let ws = workspace(&v, q.workspace)?;
        let page = ws.list_visible(
            q.subject,
            q.resource_type,
            q.action,
            q.parent,
            after.as_deref(),
            self.limits.page_size(q.page_size),
        )?;
        Ok(convert::list_visible_response(
            page.items,
            next_token(page.next_after, v.revision, fingerprint),
            v.revision_text().to_owned(),
        ))
    }

    async fn list_subjects(
        &self,
        request: Request<pb::ListSubjectsRequest>,
    ) -> Result<pb::ListSubjectsResponse, ApiError> {
        let (q, consistency): (ListSubjectsQuery<'_>, _) =
            convert::list_subjects_request(request.get_ref())?;
        let (type_, id, parent, labels) = match q.resource {
            ResourceQuery::Existing { type_, id } => (type_, id, "", String::new()),
            ResourceQuery::New {
                type_,
                parent,
                labels,
            } => (type_, "", parent.unwrap_or(""), labels.join("\n")),
        };
        let fingerprint = page_token::fingerprint(&[
            "ListSubjects",
            q.workspace,
            q.action,
            type_,
            id,
            parent,
            &labels,
        ]);
        let (v, after) = self
            .page_start(q.page_token, fingerprint, consistency, request.metadata())
            .await?;
        let ws = workspace(&v, q.workspace)?;
        let (t, target) = ws.resolve(&q.resource)?;
        let perm = ws.perm_of(t, q.action)?;
        let page = ws.list_subjects(
            perm,
            &target,
            after.as_deref(),
            self.limits.page_size(q.page_size),
        );
        Ok(convert::list_subjects_response(
            page.items,
            next_token(page.next_after, v.revision, fingerprint),
            v.revision_text().to_owned(),
        ))
    }

    async fn resolve(
        &self,
        consistency: Consistency,
        metadata: &MetadataMap,
    ) -> Result<Arc<Versioned>, ApiError> {
        let wait = match consistency {
            Consistency::AtLeast(_) => self.wait_budget(metadata),
            _ => Duration::ZERO,
        };
        Ok(self.store.resolve(consistency, wait).await?)
    }

    /// The revision and cursor a list page starts from. A page token pins
    /// the revision of the first page; the request's own `consistency` is
    /// then ignored.
    async fn page_start(
        &self,
        token: &str,
        fingerprint: u64,
        consistency: Consistency,
        metadata: &MetadataMap,
    ) -> Result<(Arc<Versioned>, Option<String>), ApiError> {
        if token.is_empty() {
            return Ok((self.resolve(consistency, metadata).await?, None));
        }
        let token = PageToken::decode(token, fingerprint)?;
        let v = self.store.exact(token.revision).map_err(|e| match e {
            StoreError::NoModel => ApiError::Store(e),
            e => ApiError::StalePageToken(e),
        })?;
        Ok((v, Some(token.after)))
    }

    /// How long an `at_least` read may wait: the call's deadline (the
    /// `grpc-timeout` header) less a small margin, so that the answer is our
    /// DEADLINE_EXCEEDED rather than tonic's own timeout, capped by
    /// `--max-wait-seconds`, which also applies when there is no deadline.
    fn wait_budget(&self, metadata: &MetadataMap) -> Duration {
        let deadline = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        match deadline {
            Some(t) => {
                let margin = (t / 10).min(Duration::from_millis(50));
                t.saturating_sub(margin).min(self.limits.max_wait)
            }
            None => self.limits.max_wait,
        }
    }
}

/// Answers one Check at one revision.
fn answer_check(v: &Versioned, q: &CheckQuery<'_>) -> Result<pb::CheckResponse, ApiError> {
    decide(v, q).map(|a| a.with_revision(v.revision_text().to_owned()))
}

/// Decides one check at one revision; the caller attaches the revision.
fn decide(v: &Versioned, q: &CheckQuery<'_>) -> Result<Answer, ApiError> {
    let ws = workspace(v, q.workspace)?;
    let (t, target) = ws.resolve(&q.resource)?;
    let perm = ws.perm_of(t, q.action)?;
    if q.explain {
        let e = ws.explain(q.subject, q.action, perm, &q.resource, &target);
        Ok(Answer::new(e.decision, Some(e)))
    } else {
        Ok(Answer::new(ws.decide(q.subject, perm, &target), None))
    }
}

fn workspace<'v>(v: &'v Versioned, id: &str) -> Result<&'v CompiledWorkspace, ApiError> {
    v.snapshot
        .workspace(id)
        .map(|w| &**w)
        .ok_or_else(|| ApiError::UnknownWorkspace(id.to_string()))
}

fn next_token(after: Option<String>, revision: u64, fingerprint: u64) -> String {
    after
        .map(|after| {
            PageToken {
                revision,
                fingerprint,
                after,
            }
            .encode()
        })
        .unwrap_or_default()
}

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`), per the gRPC HTTP/2 protocol.
pub fn parse_grpc_timeout(s: &str) -> Option<Duration> {
    let (&unit, digits) = s.as_bytes().split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Ends a call: counts and times it (see [`crate::metrics`]), logs the
/// outcome at debug level and turns an error into a status (in
/// [`super::status`]).
fn finish<T: Counted>(
    method: &'static str,
    timer: RpcTimer,
    result: Result<T, ApiError>,
) -> Result<Response<T>, Status> {
    match result {
        Ok(answer) => {
            timer.finish(|| answer.outcome());
            debug!(method, "ok");
            Ok(Response::new(answer))
        }
        Err(e) => {
            timer.finish(|| Outcome::Failed(e.code()));
            debug!(method, code = ?e.code(), error = %e, "failed");
            Err(e.into())
        }
    }
}

/// What an answer counts as in the metrics.
trait Counted {
    fn outcome(&self) -> Outcome;
}

impl Counted for pb::CheckResponse {
    fn outcome(&self) -> Outcome {
        Outcome::Decided(Rules::one(self.reason))
    }
}

impl Counted for BatchAnswer {
    fn outcome(&self) -> Outcome {
        let mut rules = Rules::default();
        for r in &self.results {
            rules.add(r.reason as i32);
        }
        Outcome::Decided(rules)
    }
}

impl Counted for pb::ListVisibleResponse {
    fn outcome(&self) -> Outcome {
        Outcome::Answered
    }
}

impl Counted for pb::ListSubjectsResponse {
    fn outcome(&self) -> Outcome {
        Outcome::Answered
    }
}

/// A Check request as it came off the wire: prost's message, or the
/// inline form the Check route decodes ([`CheckWire`]).
pub(super) trait CheckMessage: Send + Sync {
    fn fields(&self) -> Result<CheckFields<'_>, ApiError>;
}

impl CheckMessage for pb::CheckRequest {
    fn fields(&self) -> Result<CheckFields<'_>, ApiError> {
        Ok(self.into())
    }
}

impl CheckMessage for CheckWire {
    fn fields(&self) -> Result<CheckFields<'_>, ApiError> {
        CheckWire::fields(self)
    }
}

/// A Check's answer: ready at once (no allocation), or a wait for its
/// revision.
// The ready answer is the hot path: boxing it would be the allocation this
// enum exists to avoid.
#[allow(clippy::large_enum_variant)]
pub enum CheckFuture<'a> {
    Now(Ready<Result<Response<pb::CheckResponse>, Status>>),
    Waiting(Pin<Box<dyn Future<Output = Result<Response<pb::CheckResponse>, Status>> + Send + 'a>>),
}

impl Future for CheckFuture<'_> {
    type Output = Result<Response<pb::CheckResponse>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            CheckFuture::Now(ready) => Pin::new(ready).poll(cx),
            CheckFuture::Waiting(waiting) => waiting.as_mut().poll(cx),
        }
    }
}

#[tonic::async_trait]
impl pb::authz_server::Authz for AuthzService {
    /// The generated server's Check, which [`AuthzRoutes`] does not route
    /// to (its own Check decodes without allocating); it answers the same.
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        AuthzService::check_call(self, request).await
    }

    /// The generated server's CheckBatch, which [`AuthzRoutes`] does not
    /// route to (its own reads requests without prost); it answers the same.
    async fn check_batch(
        &self,
        request: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        let answer = self
            .check_batch_call(request.map(CheckBatchWire::from))
            .await?;
        Ok(answer.map(pb::CheckBatchResponse::from))
    }

    async fn list_visible(
        &self,
        request: Request<pb::ListVisibleRequest>,
    ) -> Result<Response<pb::ListVisibleResponse>, Status> {
        let timer = RpcTimer::start(Rpc::ListVisible);
        let span = debug_span!("rpc", method = "ListVisible");
        finish(
            "ListVisible",
            timer,
            self.list_visible(request).instrument(span).await,
        )
    }

    async fn list_subjects(
        &self,
        request: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        let timer = RpcTimer::start(Rpc::ListSubjects);
        let span = debug_span!("rpc", method = "ListSubjects");
        finish(
            "ListSubjects",
            timer,
            self.list_subjects(request).instrument(span).await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        for bad in ["", "m", "123456789m", "10x", "1.5S", "-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_wait_ends_before_the_deadline_and_within_the_cap() {
        let svc = AuthzService::new(
            Arc::new(Store::new(Default::default())),
            Limits {
                max_wait: Duration::from_secs(5),
                ..Limits::default()
            },
        );
        let mut md = MetadataMap::new();
        assert_eq!(svc.wait_budget(&md), Duration::from_secs(5));
        md.insert(
            "grpc-timeout",
            tonic::metadata::MetadataValue::from_static("200m"),
        );
        assert_eq!(svc.wait_budget(&md), Duration::from_millis(180));
        md.insert(
            "grpc-timeout",
            tonic::metadata::MetadataValue::from_static("1M"),
        );
        assert_eq!(svc.wait_budget(&md), Duration::from_secs(5));
    }

    /// `CheckBatch` as it was before the touches ahead: each item answered
    /// in order, the first error wrapped with its index.
    fn plain_batch(
        v: &Versioned,
        req: &pb::CheckBatchRequest,
    ) -> Result<pb::CheckBatchResponse, ApiError> {
        let batch = CheckBatchWire::from(req.clone());
        let (queries, _) = convert::check_batch_request(&batch)?;
        let results = queries
            .iter()
            .enumerate()
            .map(|(index, q)| {
                decide(v, q).map_err(|error| ApiError::InBatch {
                    index,
                    error: Box::new(error),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BatchAnswer {
            results,
            revision: v.revision_text().to_owned(),
        }
        .into())
    }

    fn existing(type_: &str, id: &str) -> Option<pb::ResourceRef> {
        Some(pb::ResourceRef {
            r#type: type_.into(),
            id: id.into(),
            ..Default::default()
        })
    }

    /// The generated mix of a two-workspace `small` model, with new
    /// resources, explanations, unknown users, resources and types.
    fn mixed_requests(
        spec: &crate::model::SnapshotSpec,
        opts: &crate::gen::GenOptions,
    ) -> Vec<pb::CheckRequest> {
        let mut out: Vec<pb::CheckRequest> = crate::gen::generate_requests(spec, opts)
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let (type_, id) = r.resource.split_once(':').unwrap_or(("record", ""));
                let resource = match i % 11 {
                    // A new record under the request's Mini, or an unknown one.
                    3 if type_ == "mini" => Some(pb::ResourceRef {
                        r#type: "record".into(),
                        parent: format!("mini:{id}"),
                        labels: vec!["site-001".into(), "undeclared".into()],
                        ..Default::default()
                    }),
                    5 => existing(type_, "no-such-resource"),
                    _ => existing(type_, id),
                };
                let action = match resource.as_ref().map(|r| r.id.as_str()) {
                    Some("") => "create",
                    _ => r.action,
                };
                let subject = match i % 13 {
                    7 => "no-such-user".to_string(),
                    _ => r.subject,
                };
                pb::CheckRequest {
                    workspace: r.workspace,
                    subject,
                    action: action.into(),
                    resource,
                    consistency: None,
                    explain: i % 9 == 4,
                }
            })
            .collect();
        // Resources in the other workspace.
        let ids: Vec<&str> = spec.workspaces.iter().map(|w| w.id.as_str()).collect();
        for (i, r) in out.iter_mut().enumerate().filter(|(i, _)| i % 17 == 2) {
            r.workspace = ids[i % ids.len()].to_string();
        }
        out
    }

    /// A batch answered by the generated route (prost's message) and by
    /// the route that reads it off the wire, which must agree.
    async fn check_batch_both_ways(
        svc: &AuthzService,
        req: pb::CheckBatchRequest,
    ) -> Result<pb::CheckBatchResponse, Status> {
        use pb::authz_server::Authz;
        use prost::Message;
        let bytes = req.encode_to_vec();
        let wire = match CheckBatchWire::decode(&mut &bytes[..], svc.max_batch()) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        };
        let off_the_wire = svc.check_batch_call(Request::new(wire)).await;
        let generated = Authz::check_batch(svc, Request::new(req)).await;
        match (off_the_wire, generated) {
            (Ok(a), Ok(b)) => {
                let a = pb::CheckBatchResponse::from(a.into_inner());
                assert_eq!(&a, b.get_ref());
                Ok(b.into_inner())
            }
            (Err(a), Err(b)) => {
                assert_eq!((a.code(), a.message()), (b.code(), b.message()));
                Err(b)
            }
            (a, b) => panic!("off the wire {a:?}, generated {b:?}"),
        }
    }

    /// Makes a check invalid.
    type Spoil = dyn Fn(&mut pb::CheckRequest);

    #[tokio::test]
    async fn a_batch_answers_as_its_checks_one_by_one() {
        use crate::gen::{self, GenOptions, Preset};
        use pb::authz_server::Authz;

        let opts = GenOptions {
            workspaces: 2,
            requests: 1500,
            ..GenOptions::preset(Preset::Small)
        };
        let spec = gen::generate(&opts);
        let store = Arc::new(Store::new(Default::default()));
        match crate::engine::Snapshot::from_spec(&spec) {
            Ok(s) => store.publish(s),
            Err(e) => panic!("{e}"),
        };
        let svc = AuthzService::new(Arc::clone(&store), Limits::default());
        let v = match store.current() {
            Some(v) => v,
            None => panic!("no model"),
        };
        let requests = mixed_requests(&spec, &opts);
        assert!(requests.len() >= 3000);

        // Every valid item: the batch's answer is the single Check's.
        let mut n = 0;
        for size in [1, 15, 16, 17, 64, 333, 1000] {
            for batch in requests.chunks(size).take(4) {
                let req = pb::CheckBatchRequest {
                    checks: batch.to_vec(),
                    consistency: None,
                };
                let got = match check_batch_both_ways(&svc, req).await {
                    Ok(r) => r,
                    Err(e) => panic!("{e}"),
                };
                assert_eq!(got.results.len(), batch.len());
                for (i, (one, answer)) in batch.iter().zip(&got.results).enumerate() {
                    let single = match Authz::check(&svc, Request::new(one.clone())).await {
                        Ok(r) => r.into_inner(),
                        Err(e) => panic!("{e}"),
                    };
                    assert_eq!(answer, &single, "item {i} of a batch of {size}: {one:?}");
                    n += 1;
                }
            }
        }
        assert!(n > 3000, "{n}");
        let allowed = |r: &pb::CheckBatchResponse| r.results.iter().filter(|x| x.allowed).count();

        // Errors: the first bad item is reported, with its index, as before.
        let bad: Vec<(&str, Box<Spoil>)> = vec![
            (
                "unknown type",
                Box::new(|r| r.resource = existing("gadget", "g-1")),
            ),
            ("unknown action", Box::new(|r| r.action = "fly".into())),
            (
                "unknown workspace",
                Box::new(|r| r.workspace = "nowhere".into()),
            ),
            ("no resource", Box::new(|r| r.resource = None)),
            ("no subject", Box::new(|r| r.subject.clear())),
            (
                "bad parent",
                Box::new(|r| {
                    r.resource = Some(pb::ResourceRef {
                        r#type: "mini".into(),
                        parent: "mini:m-1".into(),
                        ..Default::default()
                    })
                }),
            ),
        ];
        for (k, (what, spoil)) in bad.iter().enumerate() {
            for at in [0, 5, 15, 16, 40] {
                let mut checks = requests[k * 50..k * 50 + 50].to_vec();
                spoil(&mut checks[at]);
                // A later bad item is not the one reported.
                bad[(k + 1) % bad.len()].1(&mut checks[at + 3]);
                let req = pb::CheckBatchRequest {
                    checks,
                    consistency: None,
                };
                let want = match plain_batch(&v, &req) {
                    Ok(r) => panic!("{what} at {at}: answered {}", allowed(&r)),
                    Err(e) => Status::from(e),
                };
                // A field error anywhere comes before any engine error (the
                // whole batch is converted first).
                assert!(
                    want.message().starts_with("checks["),
                    "{what}: {}",
                    want.message()
                );
                match check_batch_both_ways(&svc, req).await {
                    Ok(_) => panic!("{what} at {at}: answered"),
                    Err(got) => {
                        assert_eq!(got.code(), want.code(), "{what} at {at}");
                        assert_eq!(got.message(), want.message(), "{what} at {at}");
                    }
                }
            }
        }

        // And whole batches equal the loop's, answers and revision.
        for batch in requests.chunks(100) {
            let req = pb::CheckBatchRequest {
                checks: batch.to_vec(),
                consistency: None,
            };
            let want = match plain_batch(&v, &req) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            };
            match check_batch_both_ways(&svc, req).await {
                Ok(got) => assert_eq!(got, want),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
