//! Revisions over gRPC (SPEC 4): exact, at_least, and page tokens pinned
//! to the first page's revision.

use std::sync::Arc;
use std::time::Duration;

use rolecall::pb;
use rolecall::server::ServeConfig;
use rolecall::store::{Retention, Store};
use tonic::Code;

use crate::support::*;

/// Four records visible to u-1; the second revision removes two of them.
fn model(records: &[&str]) -> rolecall::engine::Snapshot {
    let resources: String = records
        .iter()
        .map(|r| format!("      - {{ type: record, id: {r}, parent: \"mini:m-1\" }}\n"))
        .collect();
    snapshot(&format!(
        "workspaces:
  - id: w
    catalog: minikai
    users:
      - {{ id: u-1, bindings: [{{ role: mini_all_viewer }}, {{ role: record_all_viewer }}] }}
    resources:
      - {{ type: mini, id: m-1 }}
{resources}"
    ))
}

fn list(page_size: u32, page_token: &str) -> pb::ListVisibleRequest {
    pb::ListVisibleRequest {
        workspace: "w".into(),
        subject: "u-1".into(),
        resource_type: "record".into(),
        action: "read".into(),
        parent: "mini:m-1".into(),
        page_size,
        page_token: page_token.into(),
        consistency: None,
    }
}

async fn start(retention: Retention) -> TestServer {
    let store = Arc::new(Store::new(retention));
    store.publish(model(&["r-1", "r-2", "r-3", "r-4"]));
    TestServer::start(store, ServeConfig::default(), Transport::Tcp).await
}

#[tokio::test]
async fn exact_answers_at_a_retained_revision_and_refuses_an_old_one() {
    let server = start(Retention {
        revisions: 2,
        max_age: Duration::ZERO,
    })
    .await;
    let mut c = server.authz();
    server.store.publish(model(&["r-1", "r-2"]));
    let read = |consistency| pb::CheckRequest {
        consistency,
        ..check("w", "u-1", "read", existing("record", "r-4"))
    };
    let at = |r: Result<tonic::Response<pb::CheckResponse>, tonic::Status>| {
        let r = r.unwrap_or_else(|e| panic!("{e}")).into_inner();
        (r.allowed, r.revision)
    };
    assert_eq!(at(c.check(read(None)).await), (false, "2".to_string()));
    assert_eq!(at(c.check(read(exact("1"))).await), (true, "1".to_string()));
    server.store.publish(model(&["r-1"]));
    assert_status(
        c.check(read(exact("1"))).await,
        Code::FailedPrecondition,
        "too old",
    );
    assert_status(
        c.check(read(exact("9"))).await,
        Code::FailedPrecondition,
        "not been applied",
    );
    assert_eq!(
        at(c.check(read(exact("2"))).await),
        (false, "2".to_string())
    );
}

#[tokio::test]
async fn at_least_waits_for_a_publish() {
    let server = start(Retention::default()).await;
    let mut c = server.authz();
    let store = Arc::clone(&server.store);
    let publisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        store.publish(model(&["r-1"]))
    });
    let mut req = tonic::Request::new(pb::CheckRequest {
        consistency: at_least("2"),
        ..check("w", "u-1", "read", existing("record", "r-1"))
    });
    req.set_timeout(Duration::from_secs(10));
    let r = c
        .check(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(r.revision, "2");
    assert!(r.allowed);
    assert_eq!(publisher.await.ok(), Some(2));
}

#[tokio::test]
async fn a_page_token_pins_the_first_pages_revision() {
    let server = start(Retention::default()).await;
    let mut c = server.authz();
    let first = c
        .list_visible(list(2, ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(first.ids, ["r-1", "r-2"]);
    assert_eq!(first.revision, "1");
    server.store.publish(model(&["r-1", "r-2"]));
    let second = c
        .list_visible(list(2, &first.next_page_token))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(second.ids, ["r-3", "r-4"]);
    assert_eq!(second.revision, "1");
    assert!(second.next_page_token.is_empty());
    // A fresh listing sees the new revision.
    let fresh = c
        .list_visible(list(2, ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!((fresh.ids.len(), fresh.revision.as_str()), (2, "2"));
    assert!(fresh.next_page_token.is_empty());
}

#[tokio::test]
async fn stale_garbled_and_misused_page_tokens_are_refused() {
    let server = start(Retention {
        revisions: 1,
        max_age: Duration::ZERO,
    })
    .await;
    let mut c = server.authz();
    let first = c
        .list_visible(list(1, ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let token = first.next_page_token;
    assert!(!token.is_empty());
    // The same token with other parameters.
    let other = pb::ListVisibleRequest {
        subject: "u-2".into(),
        ..list(1, &token)
    };
    assert_status(
        c.list_visible(other).await,
        Code::InvalidArgument,
        "page_token",
    );
    // A page size may change between pages.
    assert!(c.list_visible(list(3, &token)).await.is_ok());
    // Garbage.
    assert_status(
        c.list_visible(list(1, "not a token")).await,
        Code::InvalidArgument,
        "page_token",
    );
    assert_status(
        c.list_visible(list(1, "AQID")).await,
        Code::InvalidArgument,
        "page_token",
    );
    // Once its revision is gone, the token is stale.
    server.store.publish(model(&["r-1"]));
    assert_status(
        c.list_visible(list(1, &token)).await,
        Code::FailedPrecondition,
        "stale page token",
    );

    // ListSubjects tokens behave the same.
    let subjects = |page_token: &str| pb::ListSubjectsRequest {
        workspace: "w".into(),
        action: "read".into(),
        resource: existing("record", "r-1"),
        page_size: 1,
        page_token: page_token.into(),
        consistency: None,
    };
    let r = c
        .list_subjects(subjects(""))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(r.subjects.len(), 1);
    assert!(r.next_page_token.is_empty(), "one user only");
    assert_status(
        c.list_subjects(subjects("@@")).await,
        Code::InvalidArgument,
        "page_token",
    );
    assert_status(
        c.list_subjects(subjects(&token)).await,
        Code::InvalidArgument,
        "different request",
    );
}
