//! The Admin API over real gRPC: Apply (deltas, snapshots, rejections,
//! expected revisions, the directory rule), read-your-writes through Authz,
//! authentication, Export, Watch and Status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rolecall::admin_convert::snapshot_from_pb;
use rolecall::pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::support::*;

/// The request of the README's grpcurl session, as grpcurl sends it.
const NEW_MINI: &str = r#"{"request_id":"1","source":"admin","delta":{"workspace":"sunrise-care","changes":[{"upsert_resource":{"type":"mini","id":"m-new","labels":["site-a"]}}]}}"#;

fn delta(id: &str, source: &str, workspace: &str, changes: &str) -> pb::ApplyRequest {
    apply_json(&format!(
        r#"{{"request_id":"{id}","source":"{source}","delta":{{"workspace":"{workspace}","changes":{changes}}}}}"#
    ))
}

fn add_label(id: &str, label: &str) -> pb::ApplyRequest {
    delta(
        id,
        "admin",
        "sunrise-care",
        &format!(r#"[{{"upsert_label":"{label}"}}]"#),
    )
}

async fn allowed(
    s: &TestSidecar,
    subject: &str,
    action: &str,
    resource: (&str, &str),
    consistency: Option<pb::Consistency>,
) -> (bool, String) {
    let r = s
        .authz_client()
        .check(pb::CheckRequest {
            consistency,
            ..check(
                "sunrise-care",
                subject,
                action,
                existing(resource.0, resource.1),
            )
        })
        .await
        .unwrap()
        .into_inner();
    (r.allowed, r.revision)
}

async fn health(channel: &tonic::transport::Channel, service: &str) -> ServingStatus {
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
async fn an_applied_delta_is_read_with_at_least() {
    let s = TestSidecar::demo().await;
    assert_eq!(
        allowed(&s, "u-nurse", "read", ("mini", "m-new"), None).await,
        (false, "1".to_string())
    );
    let mut apply = s.apply_stream().await;
    let revision = apply.applied(apply_json(NEW_MINI)).await;
    assert_eq!(revision, "2");
    assert_eq!(
        allowed(
            &s,
            "u-nurse",
            "read",
            ("mini", "m-new"),
            at_least(&revision)
        )
        .await,
        (true, "2".to_string())
    );
    let listed = s
        .authz_client()
        .list_visible(pb::ListVisibleRequest {
            workspace: "sunrise-care".into(),
            subject: "u-nurse".into(),
            resource_type: "mini".into(),
            action: "read".into(),
            consistency: at_least(&revision),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.ids, ["m-new", "m-rose"]);
    assert_eq!(listed.revision, "2");
}

#[tokio::test]
async fn a_rejected_update_names_every_problem_and_the_stream_goes_on() {
    let s = TestSidecar::demo().await;
    let mut apply = s.apply_stream().await;
    let problems = apply
        .rejected(delta(
            "bad",
            "admin",
            "sunrise-care",
            r#"[
                {"upsert_resource":{"type":"mini","id":"m-x","labels":["no-such-label"]}},
                {"upsert_user":{"id":"u-new","bindings":[{"role":"ghost"}]}},
                {"upsert_resource":{"type":"record","id":"r-x","parent":"mini:nowhere"}}
            ]"#,
        ))
        .await;
    let text = problems.join("\n");
    for want in ["no-such-label", "ghost", "nowhere"] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(problems.len() >= 3, "{problems:#?}");
    assert_eq!(s.store.revision(), 1, "a rejected update changes nothing");

    // Malformed on the wire: rejected too, naming the field; still open.
    let mut no_body = apply_json(NEW_MINI);
    no_body.request_id = "no-body".into();
    no_body.body = None;
    no_body.source = "root".into();
    let problems = apply.rejected(no_body).await;
    assert!(
        problems.iter().any(|p| p.starts_with("body:")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("source:")),
        "{problems:?}"
    );

    assert_eq!(apply.applied(apply_json(NEW_MINI)).await, "2");
}

#[tokio::test]
async fn a_rejection_with_thousands_of_problems_still_reaches_a_default_client() {
    let s = TestSidecar::demo().await;
    let mut apply = s.apply_stream().await;
    // 40,000 resources on an undeclared label: 40,000 problems, whose full
    // list (about 5 MB) would pass gRPC's usual 4 MiB receive limit.
    let changes: Vec<String> = (0..40_000)
        .map(|i| {
            format!(r#"{{"upsert_resource":{{"type":"mini","id":"m-{i}","labels":["nope"]}}}}"#)
        })
        .collect();
    let problems = apply
        .rejected(delta(
            "many",
            "admin",
            "sunrise-care",
            &format!("[{}]", changes.join(",")),
        ))
        .await;
    assert_eq!(problems.len(), 1001, "{:?}", problems.last());
    assert!(problems[0].contains("nope"), "{}", problems[0]);
    assert!(
        problems[1000].starts_with("... and 39000 more problems"),
        "{}",
        problems[1000]
    );
    assert_eq!(s.store.revision(), 1, "a rejected update changes nothing");
    assert_eq!(apply.applied(apply_json(NEW_MINI)).await, "2");
}

#[tokio::test]
async fn a_stale_expected_revision_is_rejected() {
    let s = TestSidecar::demo().await;
    let mut apply = s.apply_stream().await;
    assert_eq!(apply.applied(add_label("a", "l-a")).await, "2");
    let mut stale = add_label("b", "l-b");
    stale.expected_revision = "1".into();
    let problems = apply.rejected(stale).await;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("expected_revision 1 but the sidecar is at 2")),
        "{problems:?}"
    );
    let mut fresh = add_label("c", "l-c");
    fresh.expected_revision = "2".into();
    assert_eq!(apply.applied(fresh).await, "3");
}

#[tokio::test]
async fn an_admin_update_to_a_directory_group_is_rejected() {
    let s = TestSidecar::demo().await;
    let mut apply = s.apply_stream().await;
    let group = r#"[{"upsert_group":{"id":"nurses-site-a","source":"directory","members":["u-nina","u-lead"],"bindings":[{"role":"record_all_viewer"}]}}]"#;
    let problems = apply
        .rejected(delta("by-admin", "admin", "sunrise-care", group))
        .await;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("managed by the identity provider") && p.contains("nurses-site-a")),
        "{problems:?}"
    );
    assert_eq!(
        apply
            .applied(delta("by-directory", "directory", "sunrise-care", group))
            .await,
        "2"
    );
}

#[tokio::test]
async fn a_snapshot_body_replaces_only_the_workspaces_it_names() {
    let s = TestSidecar::demo().await;
    let before = s.store.current().unwrap();
    let mut apply = s.apply_stream().await;
    let revision = apply
        .applied(apply_json(
            r#"{"request_id":"snap","source":"admin","snapshot":{"workspaces":[
                {"id":"acme","catalog":"none",
                 "roles":[{"id":"boss","grants":["*:*"]}],
                 "users":[{"id":"u-new-boss","bindings":[{"role":"boss"}]}]}
            ]}}"#,
        ))
        .await;
    let after = s.store.current().unwrap();
    assert_eq!(after.revision.to_string(), revision);
    let acme = after.snapshot.workspace("acme").unwrap();
    assert!(acme.index.user("u-read").is_none());
    assert!(acme.index.user("u-new-boss").is_some());
    let sunrise =
        |v: &rolecall::store::Versioned| Arc::clone(v.snapshot.workspace("sunrise-care").unwrap());
    assert!(
        Arc::ptr_eq(&sunrise(&before), &sunrise(&after)),
        "an untouched workspace is shared, not rebuilt"
    );
}

#[tokio::test]
async fn admin_calls_need_the_token_but_health_and_reflection_do_not() {
    let s = TestSidecar::demo().await;
    let mut anonymous = pb::admin_client::AdminClient::new(s.admin.clone());
    assert_status(
        anonymous.status(pb::StatusRequest {}).await,
        Code::Unauthenticated,
        "authorization",
    );
    let mut wrong = admin_client(&s.admin, "not-the-token");
    assert_status(
        wrong.status(pb::StatusRequest {}).await,
        Code::Unauthenticated,
        "not valid",
    );
    let (_tx, rx) = tokio::sync::mpsc::channel::<pb::ApplyRequest>(1);
    assert_status(
        wrong
            .apply(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await,
        Code::Unauthenticated,
        "not valid",
    );
    assert!(s.admin_client().status(pb::StatusRequest {}).await.is_ok());

    assert_eq!(
        health(&s.admin, "rolecall.v1.Admin").await,
        ServingStatus::Serving
    );
    assert_eq!(health(&s.admin, "").await, ServingStatus::Serving);

    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    let mut answers = ServerReflectionClient::new(s.admin.clone())
        .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(l)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"rolecall.v1.Admin".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"rolecall.v1.Authz".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn admin_is_not_served_on_the_authz_listener() {
    let s = TestSidecar::demo().await;
    let mut on_authz = admin_client(&s.authz, TOKEN);
    assert_status(
        on_authz.status(pb::StatusRequest {}).await,
        Code::Unimplemented,
        "",
    );
    let mut authz_on_admin = rolecall::pb::authz_client::AuthzClient::new(s.admin.clone());
    assert_status(
        authz_on_admin
            .check(check(
                "sunrise-care",
                "u-admin",
                "read",
                existing("mini", "m-rose"),
            ))
            .await,
        Code::Unimplemented,
        "",
    );
}

#[tokio::test]
async fn admin_health_serves_before_any_model_and_a_snapshot_loads_one() {
    let s = TestSidecar::start(None).await;
    assert_eq!(
        health(&s.admin, "rolecall.v1.Admin").await,
        ServingStatus::Serving
    );
    assert_eq!(health(&s.admin, "").await, ServingStatus::NotServing);
    assert_eq!(
        health(&s.admin, "rolecall.v1.Authz").await,
        ServingStatus::NotServing
    );
    let mut apply = s.apply_stream().await;
    // A delta needs an existing workspace; a snapshot creates it.
    let problems = apply.rejected(apply_json(NEW_MINI)).await;
    assert!(problems[0].contains("no such workspace"), "{problems:?}");
    // (A new workspace from an admin may not bring directory items.)
    let mut spec = demo_snapshot().to_spec().unwrap();
    for w in &mut spec.workspaces {
        for g in &mut w.groups {
            g.source = rolecall::model::spec::Source::Local;
        }
    }
    let mut first = apply_json(&format!(
        r#"{{"request_id":"first","source":"admin","snapshot":{}}}"#,
        serde_json::to_string(&spec).unwrap()
    ));
    first.expected_revision = "0".into();
    assert_eq!(apply.applied(first).await, "1");
    let mut last = ServingStatus::Unknown;
    for _ in 0..100 {
        last = health(&s.authz, "rolecall.v1.Authz").await;
        if last == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last, ServingStatus::Serving);
}

#[tokio::test]
async fn export_round_trips_through_apply() {
    let s = TestSidecar::demo().await;
    let mut admin = s.admin_client();
    let export = admin
        .export(pb::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(export.revision, "1");
    let spec = snapshot_from_pb(export.snapshot.clone().unwrap()).unwrap();
    assert_eq!(spec, s.store.current().unwrap().snapshot.to_spec().unwrap());

    // Applying the export as it stands (directory items unchanged, so an
    // admin update may carry them) changes nothing but the revision.
    let mut apply = s.apply_stream().await;
    let revision = apply
        .applied(pb::ApplyRequest {
            request_id: "reapply".into(),
            source: "admin".into(),
            expected_revision: "1".into(),
            body: Some(pb::apply_request::Body::Snapshot(export.snapshot.unwrap())),
        })
        .await;
    assert_eq!(revision, "2");
    assert_eq!(s.store.current().unwrap().snapshot.to_spec().unwrap(), spec);

    let one = admin
        .export(pb::ExportRequest {
            workspace: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = one
        .snapshot
        .unwrap()
        .workspaces
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["acme"]);
    assert_status(
        admin
            .export(pb::ExportRequest {
                workspace: "nope".into(),
            })
            .await,
        Code::NotFound,
        "nope",
    );
}

/// Merges the pieces of an `ExportPieces` stream into a snapshot: each
/// workspace's pieces in order, with protobuf's merge (lists appended).
fn merge_pieces(pieces: &[pb::ExportPiece]) -> pb::Snapshot {
    use prost::Message;
    let mut workspaces: Vec<pb::Workspace> = Vec::new();
    for p in pieces {
        let w = p.workspace.clone().unwrap();
        match workspaces.last_mut() {
            Some(last) if last.id == w.id => last.merge(w.encode_to_vec().as_slice()).unwrap(),
            _ => workspaces.push(w),
        }
    }
    pb::Snapshot { workspaces }
}

/// A generated model of two workspaces with `records` records in all, and
/// its data as the sidecar gives it back.
fn two_workspaces(records: usize) -> (rolecall::engine::Snapshot, rolecall::model::SnapshotSpec) {
    let spec = rolecall::gen::generate(&rolecall::gen::GenOptions {
        workspaces: 2,
        records,
        ..Default::default()
    });
    let model = rolecall::engine::Snapshot::from_spec(&spec).unwrap();
    let at_one = model.to_spec().unwrap();
    (model, at_one)
}

#[tokio::test]
async fn export_pieces_carries_a_model_past_the_client_limit_at_one_revision() {
    use prost::Message;
    // Two workspaces, each with more records than fit one 4 MiB message.
    let (model, at_one) = two_workspaces(150_000);
    let s = TestSidecar::start(Some(model)).await;
    let mut admin = s.admin_client();
    // A client that takes 64 KiB at a time: the server must wait for it
    // long before it reaches the second workspace.
    let slow = connect_slow(&s.admin_url).await;

    // One message is past a default client's limit...
    let whole = admin.export(pb::ExportRequest::default()).await;
    assert_eq!(whole.map(|_| ()).unwrap_err().code(), Code::OutOfRange);

    // ... its pieces are not.
    let mut stream = admin_client(&slow, TOKEN)
        .export_pieces(pb::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut pieces = vec![stream.message().await.unwrap().unwrap()];
    assert_eq!(pieces[0].workspace.as_ref().unwrap().id, "ws-1");
    // An update to the second workspace while the first is still on its
    // way is not in the export: it shows revision 1 throughout.
    let mut apply = s.apply_stream().await;
    let revision = apply
        .applied(delta(
            "mid",
            "admin",
            "ws-2",
            r#"[{"upsert_label":"new-site"}]"#,
        ))
        .await;
    assert_eq!(revision, "2");
    while let Some(p) = stream.message().await.unwrap() {
        pieces.push(p);
    }
    let first_workspace = pieces
        .iter()
        .filter(|p| p.workspace.as_ref().unwrap().id == "ws-1");
    assert!(first_workspace.count() >= 4, "{} pieces", pieces.len());
    for p in &pieces {
        assert_eq!(p.revision, "1");
        assert!(p.encoded_len() <= rolecall::api::export::PIECE_BYTES);
    }
    assert_eq!(snapshot_from_pb(merge_pieces(&pieces)).unwrap(), at_one);
}

#[tokio::test]
async fn the_admin_listener_has_its_own_message_limit() {
    use prost::Message;
    let config = rolecall::server::ServeConfig {
        max_message_bytes: 64 * 1024,
        admin_max_message_bytes: 1024 * 1024,
        ..Default::default()
    };
    let s = TestSidecar::demo_configured(config).await;
    let snapshot_of = |records: usize| {
        let spec = rolecall::gen::generate(&rolecall::gen::GenOptions {
            records,
            ..Default::default()
        });
        pb::ApplyRequest {
            request_id: format!("{records} records"),
            source: "admin".into(),
            expected_revision: String::new(),
            body: Some(pb::apply_request::Body::Snapshot(pb::Snapshot::from(&spec))),
        }
    };
    // Past the Authz limit, within the Admin one: applied.
    let fits = snapshot_of(5_000);
    assert!((64 * 1024..1024 * 1024).contains(&fits.encoded_len()));
    let mut apply = s.apply_stream().await;
    assert_eq!(apply.applied(fits).await, "2");
    // Past the Admin limit: the stream ends RESOURCE_EXHAUSTED.
    let over = snapshot_of(40_000);
    assert!(over.encoded_len() > 1024 * 1024);
    let err = apply.try_send(over).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(
        err.message().ends_with("(raise --admin-max-message-bytes)"),
        "{err}"
    );
    // The Authz listener keeps its own, and says which flag sets it.
    let err = s
        .authz_client()
        .check(check(
            "sunrise-care",
            &"u".repeat(70_000),
            "read",
            existing("record", "r-rose-1"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(
        err.message().ends_with("(raise --max-message-bytes)"),
        "{err}"
    );
    // A unary Admin call over its limit names the Admin flag.
    let err = s
        .admin_client()
        .export(pb::ExportRequest {
            workspace: "w".repeat(2 * 1024 * 1024),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(
        err.message().ends_with("(raise --admin-max-message-bytes)"),
        "{err}"
    );
}

#[tokio::test]
async fn export_pieces_of_one_workspace_and_of_none() {
    let s = TestSidecar::demo().await;
    let mut admin = s.admin_client();
    let whole = admin
        .export(pb::ExportRequest {
            workspace: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut stream = admin
        .export_pieces(pb::ExportRequest {
            workspace: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut pieces = Vec::new();
    while let Some(p) = stream.message().await.unwrap() {
        pieces.push(p);
    }
    assert_eq!(Some(merge_pieces(&pieces)), whole.snapshot);

    assert_status(
        admin
            .export_pieces(pb::ExportRequest {
                workspace: "nope".into(),
            })
            .await,
        Code::NotFound,
        "nope",
    );
    let empty = TestSidecar::start(None).await;
    assert_status(
        empty
            .admin_client()
            .export_pieces(pb::ExportRequest::default())
            .await,
        Code::Unavailable,
        "",
    );
}

/// A request that carries one piece of a snapshot.
fn piece(request_id: &str, workspace: Option<pb::Workspace>, last: bool) -> pb::ApplyRequest {
    pb::ApplyRequest {
        request_id: request_id.into(),
        source: "admin".into(),
        expected_revision: String::new(),
        body: Some(pb::apply_request::Body::SnapshotPiece(Box::new(
            pb::SnapshotPiece { workspace, last },
        ))),
    }
}

#[tokio::test]
async fn a_model_past_the_message_limit_is_applied_in_pieces_from_export_pieces() {
    use prost::Message;
    // Two workspaces whose snapshot is past the 4 MiB an Apply request may
    // take by default.
    let (model, expected) = two_workspaces(60_000);
    let source = TestSidecar::start(Some(model)).await;
    let target = TestSidecar::start(None).await;

    // Sent whole, it is refused.
    let whole = pb::ApplyRequest {
        request_id: "whole".into(),
        source: "admin".into(),
        expected_revision: String::new(),
        body: Some(pb::apply_request::Body::Snapshot(pb::Snapshot::from(
            &expected,
        ))),
    };
    assert!(whole.encoded_len() > 4 << 20, "{}", whole.encoded_len());
    let err = target
        .apply_stream()
        .await
        .try_send(whole)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");

    // Sent as the pieces of an export, as they come, it is applied once.
    let mut exported = source
        .admin_client()
        .export_pieces(pb::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut apply = target.apply_stream().await;
    let mut sent = 0;
    while let Some(p) = exported.message().await.unwrap() {
        apply.push(piece("copy", p.workspace, false)).await;
        sent += 1;
    }
    assert!(sent >= 6, "{sent} pieces");
    assert_eq!(apply.applied(piece("copy", None, true)).await, "1");
    // No other answer: the pieces before the last got none.
    assert!(matches!(apply.close().await, Ok(None)));
    assert_eq!(
        target.store.current().unwrap().snapshot.to_spec().unwrap(),
        expected
    );
}

#[tokio::test]
async fn a_snapshot_in_pieces_is_all_or_nothing() {
    let config = rolecall::server::ServeConfig {
        admin_limits: rolecall::api::AdminLimits {
            max_snapshot_bytes: 4096,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestSidecar::demo_configured(config).await;
    let at_start = s.store.current().unwrap().snapshot.to_spec().unwrap();
    let acme = || {
        let export = pb::Snapshot::from(&at_start);
        export
            .workspaces
            .into_iter()
            .find(|w| w.id == "acme")
            .unwrap()
    };
    let labels_only = |labels: &[&str]| pb::Workspace {
        id: "acme".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..Default::default()
    };
    let unchanged = || {
        assert_eq!(s.store.current().unwrap().revision, 1);
        assert_eq!(
            s.store.current().unwrap().snapshot.to_spec().unwrap(),
            at_start
        );
    };

    // Another request between two pieces ends the stream, naming both.
    let mut apply = s.apply_stream().await;
    apply.push(piece("big", Some(acme()), false)).await;
    let err = apply
        .try_send(delta(
            "between",
            "admin",
            "acme",
            r#"[{"upsert_label":"x"}]"#,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    for said in ["snapshot_piece", "\"between\"", "\"big\""] {
        assert!(err.message().contains(said), "{said}: {err}");
    }
    unchanged();

    // A stream that ends before the last piece applies nothing.
    let mut apply = s.apply_stream().await;
    apply.push(piece("cut", Some(acme()), false)).await;
    let err = apply.close().await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("before the last piece"), "{err}");
    unchanged();

    // A piece with another source is refused.
    let mut apply = s.apply_stream().await;
    apply.push(piece("mixed", Some(acme()), false)).await;
    let mut other = piece("mixed", None, true);
    other.source = "directory".into();
    let err = apply.try_send(other).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("source"), "{err}");
    unchanged();

    // Past --admin-max-snapshot-bytes: RESOURCE_EXHAUSTED, naming it.
    let mut apply = s.apply_stream().await;
    let many: Vec<String> = (0..500).map(|i| format!("site-{i:03}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    apply.push(piece("huge", Some(acme()), false)).await;
    let err = apply
        .try_send(piece("huge", Some(labels_only(&many)), true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(
        err.message()
            .ends_with("(raise --admin-max-snapshot-bytes)"),
        "{err}"
    );
    unchanged();

    // A merged snapshot that breaks a rule is rejected like a whole one,
    // and the stream goes on; the pieces merge in order.
    let mut apply = s.apply_stream().await;
    let mut bad = acme();
    bad.users[0].bindings = vec![pb::RoleBinding {
        role: "no-such-role".into(),
        scope: None,
    }];
    apply.push(piece("bad", Some(bad), false)).await;
    let problems = apply.rejected(piece("bad", None, true)).await;
    assert!(
        problems.iter().any(|p| p.contains("no-such-role")),
        "{problems:?}"
    );
    unchanged();
    apply.push(piece("good", Some(acme()), false)).await;
    apply
        .push(piece("good", Some(labels_only(&["new-a"])), false))
        .await;
    assert_eq!(
        apply
            .applied(piece("good", Some(labels_only(&["new-b"])), true))
            .await,
        "2"
    );
    let labels = &s.store.current().unwrap().snapshot.to_spec().unwrap();
    let labels = &labels
        .workspaces
        .iter()
        .find(|w| w.id == "acme")
        .unwrap()
        .labels;
    assert_eq!(labels[labels.len() - 2..], ["new-a", "new-b"]);
}

#[tokio::test]
async fn watch_sees_every_applied_revision_in_order() {
    let s = TestSidecar::demo().await;
    let mut admin = s.admin_client();
    let mut live = admin
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut apply = s.apply_stream().await;
    assert_eq!(apply.applied(add_label("w-1", "l-1")).await, "2");
    assert_eq!(apply.applied(add_label("w-2", "l-2")).await, "3");
    for (revision, request_id) in [("2", "w-1"), ("3", "w-2")] {
        let e = tokio::time::timeout(Duration::from_secs(10), live.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.revision.as_str(), e.request_id.as_str()),
            (revision, request_id)
        );
        assert_eq!(e.source, "admin");
        assert_eq!(e.workspaces, ["sunrise-care"]);
        assert!(e.time.is_some());
    }

    // From a past revision: replayed, then live.
    let mut replay = admin
        .watch(pb::WatchRequest {
            from_revision: "2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = replay.message().await.unwrap().unwrap();
    let second = replay.message().await.unwrap().unwrap();
    assert_eq!(
        (first.revision.as_str(), second.revision.as_str()),
        ("2", "3")
    );

    assert_status(
        admin
            .watch(pb::WatchRequest {
                from_revision: "x".into(),
            })
            .await,
        Code::InvalidArgument,
        "from_revision",
    );
}

#[tokio::test]
async fn status_reports_counts_seats_retention_and_lint() {
    let s = TestSidecar::demo().await;
    let mut admin = s.admin_client();
    let status = admin
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.revision, "1");
    let retained = status.retained.clone().unwrap();
    assert_eq!(
        (retained.oldest.as_str(), retained.newest.as_str()),
        ("1", "1")
    );
    let ws = |st: &pb::StatusResponse, id: &str| {
        st.workspaces.iter().find(|w| w.id == id).cloned().unwrap()
    };
    let sunrise = ws(&status, "sunrise-care");
    assert_eq!(
        (
            sunrise.users,
            sunrise.groups,
            sunrise.labels,
            sunrise.resources
        ),
        (8, 1, 3, 9)
    );
    let acme = ws(&status, "acme");
    assert!(
        acme.lint
            .iter()
            .any(|l| l
                .contains("\"distributor\" grants manual:delete but not manuals_trash:restore")),
        "{:?}",
        acme.lint
    );

    // Removing a role disables it: its only holder is now flagged.
    let mut apply = s.apply_stream().await;
    apply
        .applied(delta(
            "rm",
            "admin",
            "acme",
            r#"[{"remove_role":"reader"}]"#,
        ))
        .await;
    let status = admin
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.revision, "2");
    assert!(
        ws(&status, "acme")
            .lint
            .iter()
            .any(|l| l.contains("user \"u-read\" holds only disabled roles (reader)")),
        "{:?}",
        ws(&status, "acme").lint
    );
}

#[tokio::test]
async fn streams_end_at_shutdown_and_the_sidecar_stops() {
    let s = TestSidecar::demo().await;
    let mut admin = s.admin_client();
    let mut watch = admin
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut apply = s.apply_stream().await;
    assert_eq!(apply.applied(add_label("x", "l-x")).await, "2");
    let stopped = tokio::time::timeout(Duration::from_secs(5), s.stop()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
    // The watch got revision 2, then was ended.
    let e = watch.message().await.unwrap().unwrap();
    assert_eq!(e.revision, "2");
    assert!(watch.message().await.is_err());
}

mod tls {
    //! The admin listener over TLS with client certificates (the fixtures
    //! in `tests/it/tls/`): a trusted client certificate is enough, no
    //! token; no certificate or an untrusted one gets nothing.
    use rolecall::api::AdminAuth;
    use rolecall::pb;
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

    use crate::support::*;

    fn pem(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/it/tls/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn status_with(url: &str, identity: Option<&str>) -> Result<String, tonic::Status> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pem("ca.pem")))
            .domain_name("localhost");
        if let Some(name) = identity {
            tls = tls.identity(Identity::from_pem(
                pem(&format!("{name}.pem")),
                pem(&format!("{name}.key")),
            ));
        }
        let url = url.replace("http://", "https://");
        let channel = match Endpoint::from_shared(url)
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
        {
            Ok(c) => c,
            Err(e) => return Err(tonic::Status::unavailable(e.to_string())),
        };
        pb::admin_client::AdminClient::new(channel)
            .status(pb::StatusRequest {})
            .await
            .map(|r| r.into_inner().revision)
    }

    #[tokio::test]
    async fn a_trusted_client_certificate_authenticates_and_others_are_refused() {
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(pem("server.pem"), pem("server.key")))
            .client_ca_root(Certificate::from_pem(pem("ca.pem")));
        let s = TestSidecar::start_with(
            Some(demo_snapshot()),
            AdminAuth::client_certificates_only(),
            Some(tls),
        )
        .await;
        assert_eq!(
            status_with(&s.admin_url, Some("client")).await.unwrap(),
            "1"
        );
        assert!(status_with(&s.admin_url, None).await.is_err());
        assert!(status_with(&s.admin_url, Some("rogue")).await.is_err());
        // Plain text is not spoken there at all.
        let plain = connect_tcp(&s.admin_url).await;
        assert!(admin_client(&plain, TOKEN)
            .status(pb::StatusRequest {})
            .await
            .is_err());
    }

    /// `rolecall serve` with these admin TLS files (in `tests/it/tls/`):
    /// what it says when it refuses to start.
    fn refused_start(cert: &str, key: &str, client_ca: Option<&str>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let fixture = |name: &str| format!("{}/tests/it/tls/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rolecall"));
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--admin-token-file")
        .arg(&token)
        .args([
            "--admin-tls-cert",
            &fixture(cert),
            "--admin-tls-key",
            &fixture(key),
        ])
        .env_remove("ROLECALL_DEMO")
        .env_remove("ROLECALL_SNAPSHOT");
        if let Some(ca) = client_ca {
            cmd.args(["--admin-tls-client-ca", &fixture(ca)]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn unusable_tls_files_are_named_with_what_is_wrong() {
        let said = refused_start("server.key", "server.key", None);
        assert!(
            said.contains("the certificate")
                && said.contains("server.key: holds no PEM certificate"),
            "{said}"
        );
        let said = refused_start("server.pem", "server.pem", None);
        assert!(
            said.contains("the key") && said.contains("server.pem: holds no PEM private key"),
            "{said}"
        );
        let said = refused_start("server.pem", "server.key", Some("client.key"));
        assert!(
            said.contains("the client CA") && said.contains("client.key: holds no PEM certificate"),
            "{said}"
        );
        // A key that is not the certificate's.
        let said = refused_start("server.pem", "rogue.key", None);
        assert!(
            said.contains("server.pem and the key")
                && said.contains("rogue.key cannot be served together"),
            "{said}"
        );
    }
}

#[tokio::test]
async fn an_oversized_request_ends_the_stream_with_resource_exhausted() {
    let s = TestSidecar::demo().await;
    let mut apply = s.apply_stream().await;
    let labels: Vec<String> = (0..300_000).map(|i| format!("label-{i:08}")).collect();
    let mut big = add_label("big", "x");
    if let Some(pb::apply_request::Body::Delta(d)) = &mut big.body {
        d.changes = labels
            .into_iter()
            .map(|l| pb::Change {
                change: Some(pb::change::Change::UpsertLabel(l)),
            })
            .collect();
    }
    let err = apply.try_send(big).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert_eq!(s.store.revision(), 1);
}
