//! The SPEC 5 error table, over gRPC, for the Authz service.

use std::sync::Arc;
use std::time::Duration;

use rolecall::api::Limits;
use rolecall::model::validate::MAX_LABELS_PER_RESOURCE;
use rolecall::pb;
use rolecall::server::ServeConfig;
use rolecall::store::{Retention, Store};
use tonic::Code;

use crate::support::*;

const W: &str = "sunrise-care";

#[tokio::test]
async fn malformed_requests_are_invalid_argument_naming_the_field() {
    let server = TestServer::demo().await;
    let mut c = server.authz();
    let rec = || existing("record", "r-rose-1");

    let cases: Vec<(pb::CheckRequest, &str)> = vec![
        (check("", "u-nurse", "read", rec()), "workspace"),
        (check(W, "", "read", rec()), "subject"),
        (check(W, "u-nurse", "", rec()), "action"),
        (check(W, "u-nurse", "read", None), "resource"),
        (
            check(W, "u-nurse", "read", existing("", "r-rose-1")),
            "resource.type",
        ),
        // unknown type and unknown action
        (
            check(W, "u-nurse", "read", existing("boat", "b-1")),
            "resource.type",
        ),
        (check(W, "u-nurse", "fly", rec()), "action"),
        // an id together with a parent or labels is ambiguous
        (
            check(
                W,
                "u-nurse",
                "read",
                Some(pb::ResourceRef {
                    r#type: "record".into(),
                    id: "r-rose-1".into(),
                    parent: "mini:m-rose".into(),
                    labels: vec![],
                }),
            ),
            "resource.parent",
        ),
        (
            check(
                W,
                "u-nurse",
                "read",
                Some(pb::ResourceRef {
                    r#type: "record".into(),
                    id: "r-rose-1".into(),
                    parent: String::new(),
                    labels: vec!["site-a".into()],
                }),
            ),
            "resource.labels",
        ),
        // a new record whose parent is not a Mini
        (
            check(
                W,
                "u-nurse",
                "create",
                Some(pb::ResourceRef {
                    r#type: "record".into(),
                    parent: "record:r-rose-1".into(),
                    ..Default::default()
                }),
            ),
            "resource.parent",
        ),
        (
            pb::CheckRequest {
                consistency: exact("seven"),
                ..check(W, "u-nurse", "read", rec())
            },
            "consistency.exact",
        ),
        (
            pb::CheckRequest {
                consistency: at_least("-1"),
                ..check(W, "u-nurse", "read", rec())
            },
            "consistency.at_least",
        ),
    ];
    for (req, field) in cases {
        let r = c.check(req.clone()).await;
        match r {
            Err(s) if s.code() == Code::InvalidArgument && s.message().starts_with(field) => {}
            other => panic!("{req:?}: expected INVALID_ARGUMENT naming {field}, got {other:?}"),
        }
    }

    let list = |resource_type: &str, action: &str, parent: &str| pb::ListVisibleRequest {
        workspace: W.into(),
        subject: "u-nurse".into(),
        resource_type: resource_type.into(),
        action: action.into(),
        parent: parent.into(),
        ..Default::default()
    };
    assert_status(
        c.list_visible(list("", "", "")).await,
        Code::InvalidArgument,
        "resource_type",
    );
    assert_status(
        c.list_visible(list("boat", "", "")).await,
        Code::InvalidArgument,
        "resource_type",
    );
    assert_status(
        c.list_visible(list("record", "fly", "")).await,
        Code::InvalidArgument,
        "action",
    );
    assert_status(
        c.list_visible(list("record", "", "record:r-rose-1")).await,
        Code::InvalidArgument,
        "parent",
    );
    assert_status(
        c.list_visible(pb::ListVisibleRequest {
            subject: String::new(),
            ..list("record", "", "")
        })
        .await,
        Code::InvalidArgument,
        "subject",
    );

    let subjects = |action: &str, resource| pb::ListSubjectsRequest {
        workspace: W.into(),
        action: action.into(),
        resource,
        ..Default::default()
    };
    assert_status(
        c.list_subjects(subjects("", rec())).await,
        Code::InvalidArgument,
        "action",
    );
    assert_status(
        c.list_subjects(subjects("read", None)).await,
        Code::InvalidArgument,
        "resource",
    );
    assert_status(
        c.list_subjects(subjects("fly", rec())).await,
        Code::InvalidArgument,
        "action",
    );
    assert_status(
        c.list_subjects(subjects("read", existing("boat", "x")))
            .await,
        Code::InvalidArgument,
        "resource.type",
    );
}

#[tokio::test]
async fn an_unknown_workspace_is_not_found() {
    let server = TestServer::demo().await;
    let mut c = server.authz();
    assert_status(
        c.check(check(
            "nowhere",
            "u-nurse",
            "read",
            existing("record", "r-1"),
        ))
        .await,
        Code::NotFound,
        "nowhere",
    );
    assert_status(
        c.list_visible(pb::ListVisibleRequest {
            workspace: "nowhere".into(),
            subject: "u".into(),
            resource_type: "record".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "nowhere",
    );
    assert_status(
        c.list_subjects(pb::ListSubjectsRequest {
            workspace: "nowhere".into(),
            action: "read".into(),
            resource: existing("record", "r-1"),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "nowhere",
    );
    assert_status(
        c.check_batch(pb::CheckBatchRequest {
            checks: vec![
                check(W, "u-nurse", "read", existing("record", "r-rose-1")),
                check("nowhere", "u-nurse", "read", existing("record", "r-1")),
            ],
            consistency: None,
        })
        .await,
        Code::NotFound,
        "checks[1].workspace",
    );
}

#[tokio::test]
async fn unknown_subjects_and_resources_are_denials_with_their_reason() {
    let server = TestServer::demo().await;
    let mut c = server.authz();
    let cases = [
        (
            check(W, "u-nobody", "read", existing("record", "r-rose-1")),
            "unknown_subject",
        ),
        (
            check(W, "u-admin", "read", existing("record", "r-missing")),
            "unknown_resource",
        ),
        (
            check(W, "u-away", "read", existing("record", "r-rose-1")),
            "suspended",
        ),
        (
            check(W, "u-nurse", "read", existing("record", "r-oak-1")),
            "no_reach",
        ),
        (
            check(W, "u-nurse", "update", existing("record", "r-rose-1")),
            "no_grant",
        ),
        (
            check(
                W,
                "u-admin",
                "create",
                Some(pb::ResourceRef {
                    r#type: "record".into(),
                    parent: "mini:m-gone".into(),
                    ..Default::default()
                }),
            ),
            "unknown_resource",
        ),
    ];
    for (req, rule) in &cases {
        let r = c
            .check(pb::CheckRequest {
                explain: true,
                ..req.clone()
            })
            .await
            .unwrap_or_else(|e| panic!("{req:?}: {e}"))
            .into_inner();
        assert!(!r.allowed, "{req:?}");
        let e = r.explanation.unwrap_or_default();
        assert_eq!(e.rule, *rule, "{}", e.message);
        assert!(!e.message.is_empty());
        assert_eq!(reason_name(r.reason), *rule, "{req:?}");
    }
    // The reason comes without `explain` too, alone and in a batch: a caller
    // can tell "no such user" from "not allowed" without asking for more.
    let mut batch = Vec::new();
    for (req, rule) in &cases {
        let r = c
            .check(req.clone())
            .await
            .unwrap_or_else(|e| panic!("{req:?}: {e}"))
            .into_inner();
        assert_eq!((r.allowed, r.explanation), (false, None), "{req:?}");
        assert_eq!(reason_name(r.reason), *rule, "{req:?}");
        batch.push(req.clone());
    }
    let answers = c
        .check_batch(pb::CheckBatchRequest {
            checks: batch,
            consistency: None,
        })
        .await
        .unwrap_or_else(|e| panic!("batch: {e}"))
        .into_inner()
        .results;
    let rules: Vec<String> = answers.iter().map(|r| reason_name(r.reason)).collect();
    let want: Vec<&str> = cases.iter().map(|(_, rule)| *rule).collect();
    assert_eq!(rules, want);
}

#[tokio::test]
async fn check_explains_a_grant_and_decides_a_new_resource() {
    let server = TestServer::demo().await;
    let mut c = server.authz();
    let r = c
        .check(pb::CheckRequest {
            explain: true,
            ..check(W, "u-nurse", "read", existing("record", "r-rose-1"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(r.allowed);
    assert_eq!(r.revision, "1");
    let e = r.explanation.unwrap_or_default();
    assert_eq!(e.rule, "granted");
    assert_eq!(e.reach_through, "mini:m-rose");
    assert_eq!(
        e.granted_by,
        vec![pb::Binding {
            role: "record_all_viewer".into(),
            scope: "workspace".into(),
            via_group: String::new(),
        }]
    );
    // A group binding says which group it comes through.
    let r = c
        .check(pb::CheckRequest {
            explain: true,
            ..check(W, "u-nina", "read", existing("record", "r-rose-1"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let e = r.explanation.unwrap_or_default();
    assert!(r.allowed);
    assert!(
        e.granted_by.iter().all(|b| b.via_group == "nurses-site-a"),
        "{e:?}"
    );
    // Without explain there is no explanation.
    let r = c
        .check(check(W, "u-nurse", "read", existing("record", "r-rose-1")))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(r.explanation.is_none());
    // A record not yet created, under a Mini the editor reaches.
    let new = |parent: &str, labels: Vec<String>| {
        Some(pb::ResourceRef {
            r#type: "record".into(),
            parent: parent.into(),
            labels,
            ..Default::default()
        })
    };
    let allowed = |r: Result<tonic::Response<pb::CheckResponse>, tonic::Status>| {
        r.unwrap_or_else(|e| panic!("{e}")).into_inner().allowed
    };
    assert!(allowed(
        c.check(check(W, "u-editor", "create", new("mini:m-ivy", vec![])))
            .await
    ));
    assert!(!allowed(
        c.check(check(W, "u-lead", "create", new("mini:m-ivy", vec![])))
            .await
    ));
    // The coordinator holds record:* on label site-b only.
    assert!(allowed(
        c.check(check(
            W,
            "u-coord",
            "create",
            new("mini:m-oak", vec!["site-b".into()])
        ))
        .await
    ));
    assert!(!allowed(
        c.check(check(W, "u-coord", "create", new("mini:m-oak", vec![])))
            .await
    ));
}

#[tokio::test]
async fn no_model_is_unavailable() {
    let store = Arc::new(Store::new(Retention::default()));
    let server = TestServer::start(store, ServeConfig::default(), Transport::Tcp).await;
    let mut c = server.authz();
    let rec = || existing("record", "r-rose-1");
    assert_status(
        c.check(check(W, "u", "read", rec())).await,
        Code::Unavailable,
        "no model",
    );
    assert_status(
        c.check(pb::CheckRequest {
            consistency: at_least("1"),
            ..check(W, "u", "read", rec())
        })
        .await,
        Code::Unavailable,
        "no model",
    );
    assert_status(
        c.check_batch(pb::CheckBatchRequest {
            checks: vec![check(W, "u", "read", rec())],
            consistency: None,
        })
        .await,
        Code::Unavailable,
        "no model",
    );
    assert_status(
        c.list_visible(pb::ListVisibleRequest {
            workspace: W.into(),
            subject: "u".into(),
            resource_type: "record".into(),
            ..Default::default()
        })
        .await,
        Code::Unavailable,
        "no model",
    );
    assert_status(
        c.list_subjects(pb::ListSubjectsRequest {
            workspace: W.into(),
            action: "read".into(),
            resource: rec(),
            ..Default::default()
        })
        .await,
        Code::Unavailable,
        "no model",
    );
}

#[tokio::test]
async fn a_batch_or_message_over_the_limit_is_resource_exhausted() {
    let store = Arc::new(Store::new(Retention::default()));
    store.publish(demo_snapshot());
    let config = ServeConfig {
        limits: Limits {
            max_batch: 3,
            ..Limits::default()
        },
        max_message_bytes: 4096,
        ..ServeConfig::default()
    };
    let server = TestServer::start(store, config, Transport::Tcp).await;
    let mut c = server.authz();
    let one = check(W, "u-nurse", "read", existing("record", "r-rose-1"));
    let ok = c
        .check_batch(pb::CheckBatchRequest {
            checks: vec![one.clone(); 3],
            consistency: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(ok.results.len(), 3);
    assert!(ok
        .results
        .iter()
        .all(|r| r.allowed && r.revision == ok.revision));
    assert_status(
        c.check_batch(pb::CheckBatchRequest {
            checks: vec![one.clone(); 4],
            consistency: None,
        })
        .await,
        Code::ResourceExhausted,
        "limit of 3",
    );
    // An error inside a batch names the check.
    assert_status(
        c.check_batch(pb::CheckBatchRequest {
            checks: vec![
                one.clone(),
                check(W, "", "read", existing("record", "r-rose-1")),
            ],
            consistency: None,
        })
        .await,
        Code::InvalidArgument,
        "checks[1].subject",
    );
    // A message over --max-message-bytes.
    assert_status(
        c.check(check(
            W,
            &"u".repeat(5000),
            "read",
            existing("record", "r-rose-1"),
        ))
        .await,
        Code::ResourceExhausted,
        "too large",
    );
}

#[tokio::test]
async fn inline_labels_over_the_limit_are_invalid_argument_naming_the_field() {
    let server = TestServer::demo().await;
    let mut c = server.authz();
    // A record not yet created with `n` labels: site-b (which grants the
    // coordinator) and undeclared ones.
    let new = |n: usize| {
        let mut labels = vec!["site-b".to_string()];
        labels.extend((1..n).map(|i| format!("junk-{i}")));
        Some(pb::ResourceRef {
            r#type: "record".into(),
            parent: "mini:m-oak".into(),
            labels,
            ..Default::default()
        })
    };
    let coord = |n: usize| check(W, "u-coord", "create", new(n));
    let over = MAX_LABELS_PER_RESOURCE + 1;
    let limit = format!("{over} labels are over the limit of {MAX_LABELS_PER_RESOURCE}");

    // Exactly the limit is answered.
    let r = c
        .check(coord(MAX_LABELS_PER_RESOURCE))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(r.allowed);
    // One more is refused, naming the field and the limit.
    let e = c.check(coord(over)).await.err();
    assert!(
        e.as_ref().is_some_and(|s| s.code() == Code::InvalidArgument
            && s.message().starts_with("resource.labels:")
            && s.message().contains(&limit)),
        "{e:?}"
    );
    // In a batch, the message names the check.
    let e = c
        .check_batch(pb::CheckBatchRequest {
            checks: vec![coord(1), coord(over)],
            consistency: None,
        })
        .await
        .err();
    assert!(
        e.as_ref().is_some_and(|s| s.code() == Code::InvalidArgument
            && s.message().starts_with("checks[1].resource.labels:")
            && s.message().contains(&limit)),
        "{e:?}"
    );
    let ok = c
        .check_batch(pb::CheckBatchRequest {
            checks: vec![coord(1), coord(MAX_LABELS_PER_RESOURCE)],
            consistency: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(ok.results.iter().all(|r| r.allowed));
    // ListSubjects takes the same resource reference, and the same limit.
    let subjects = |n: usize| pb::ListSubjectsRequest {
        workspace: W.into(),
        action: "create".into(),
        resource: new(n),
        ..Default::default()
    };
    let e = c.list_subjects(subjects(over)).await.err();
    assert!(
        e.as_ref().is_some_and(|s| s.code() == Code::InvalidArgument
            && s.message().starts_with("resource.labels:")
            && s.message().contains(&limit)),
        "{e:?}"
    );
    let listed = c
        .list_subjects(subjects(MAX_LABELS_PER_RESOURCE))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(
        listed.subjects.iter().any(|s| s.user == "u-coord"),
        "{listed:?}"
    );
}

#[tokio::test]
async fn at_least_a_revision_not_reached_is_deadline_exceeded() {
    let server = TestServer::demo().await;
    let mut c = server.authz();
    let mut req = tonic::Request::new(pb::CheckRequest {
        consistency: at_least("2"),
        ..check(W, "u-nurse", "read", existing("record", "r-rose-1"))
    });
    req.set_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_status(c.check(req).await, Code::DeadlineExceeded, "revision 2");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A revision already reached answers at once.
    let r = c
        .check(pb::CheckRequest {
            consistency: at_least("1"),
            ..check(W, "u-nurse", "read", existing("record", "r-rose-1"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(r.allowed);
}

#[tokio::test]
async fn page_sizes_default_and_clamp() {
    let store = Arc::new(Store::new(Retention::default()));
    store.publish(demo_snapshot());
    let config = ServeConfig {
        limits: Limits {
            default_page_size: 2,
            max_page_size: 3,
            ..Limits::default()
        },
        ..ServeConfig::default()
    };
    let server = TestServer::start(store, config, Transport::Tcp).await;
    let mut c = server.authz();
    let list = |page_size| pb::ListVisibleRequest {
        workspace: W.into(),
        subject: "u-lead".into(),
        resource_type: "record".into(),
        page_size,
        ..Default::default()
    };
    let r = c
        .list_visible(list(0))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(r.ids.len(), 2);
    assert!(!r.next_page_token.is_empty());
    let r = c
        .list_visible(list(500))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(r.ids, ["r-ivy-1", "r-oak-1", "r-oak-2"]);
    assert!(!r.next_page_token.is_empty(), "clamped, never cut silently");
}
