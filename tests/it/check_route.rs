//! The Check and CheckBatch routes read requests without prost
//! (`api::check_wire`, `api::batch_wire`); these send them bytes the
//! generated client never would, over real gRPC, and expect what prost's
//! decoding would give: the same answer for the same request in any valid
//! encoding, and for bytes that are not one INVALID_ARGUMENT (SPEC 5: a
//! malformed request) with prost's message, which names the field. The
//! generated routes (ListVisible here) answer such bytes the same way.

#![allow(clippy::unwrap_used)]

use prost::Message;
use tonic::{Code, Status};

use rolecall::pb;

use crate::support::*;

async fn raw_call<R: Message + Default + Send + 'static>(
    server: &TestServer,
    path: &'static str,
    bytes: Vec<u8>,
) -> Result<R, Status> {
    raw_call_on(&server.channel, path, bytes).await
}

const CHECK: &str = "/rolecall.v1.Authz/Check";
const CHECK_BATCH: &str = "/rolecall.v1.Authz/CheckBatch";
const LIST_VISIBLE: &str = "/rolecall.v1.Authz/ListVisible";

async fn raw_check(server: &TestServer, bytes: Vec<u8>) -> Result<pb::CheckResponse, Status> {
    raw_call(server, CHECK, bytes).await
}

async fn raw_batch(server: &TestServer, bytes: Vec<u8>) -> Result<pb::CheckBatchResponse, Status> {
    raw_call(server, CHECK_BATCH, bytes).await
}

/// Bytes that prost refuses as a `Request` get INVALID_ARGUMENT on `path`,
/// with prost's own message.
async fn refused_as_prost_refuses<Request: Message + Default + std::fmt::Debug>(
    server: &TestServer,
    path: &'static str,
    bytes: Vec<u8>,
) {
    let prost_says = Request::decode(&bytes[..]).unwrap_err().to_string();
    let status = raw_call::<pb::CheckResponse>(server, path, bytes)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), prost_says);
}

fn nurse_reads(id: &str) -> pb::CheckRequest {
    check("sunrise-care", "u-nurse", "read", existing("record", id))
}

#[tokio::test]
async fn a_check_in_any_valid_encoding_gets_the_same_answer() {
    let server = TestServer::demo().await;
    let plain = nurse_reads("r-rose-1").encode_to_vec();
    let expected = raw_check(&server, plain.clone()).await.unwrap();
    assert!(expected.allowed, "the nurse reads her own record");

    // Fields in reverse order (read inline), a field sent twice and one
    // unknown to this server (both read by prost: the last workspace
    // wins, the unknown field is skipped), and a subject padded to a
    // message too long to keep inline: each decides as the plain one.
    let mut reversed = Vec::new();
    let mut fields = Vec::new();
    let mut rest = &plain[..];
    while !rest.is_empty() {
        let len = usize::from(rest[1]) + 2;
        fields.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    for f in fields.iter().rev() {
        reversed.extend_from_slice(f);
    }
    let mut repeated = vec![0x0a, 0x05];
    repeated.extend_from_slice(b"other");
    repeated.extend_from_slice(&plain);
    let mut unknown = plain.clone();
    unknown.extend_from_slice(&[0x48, 0x01]); // field 9, varint 1
    for bytes in [reversed, repeated, unknown] {
        let got = raw_check(&server, bytes).await.unwrap();
        assert_eq!(got, expected);
    }

    let long = check(
        "sunrise-care",
        &"u".repeat(200),
        "read",
        existing("record", "r-rose-1"),
    );
    let got = raw_check(&server, long.encode_to_vec()).await.unwrap();
    assert!(!got.allowed, "an unknown subject is a denial");
}

#[tokio::test]
async fn bytes_that_are_not_a_check_are_invalid_argument_as_prost_says() {
    let server = TestServer::demo().await;
    let plain = nurse_reads("r-rose-1").encode_to_vec();
    let truncated = plain[..plain.len() - 3].to_vec();
    let mut not_utf8 = plain.clone();
    not_utf8[2] = 0xff; // the first byte of the workspace
    for bytes in [truncated, not_utf8] {
        refused_as_prost_refuses::<pb::CheckRequest>(&server, CHECK, bytes).await;
    }
    // and the server goes on answering
    let again = raw_check(&server, plain).await.unwrap();
    assert!(again.allowed);
}

#[tokio::test]
async fn bytes_that_are_not_a_list_request_are_invalid_argument_as_prost_says() {
    let server = TestServer::demo().await;
    let plain = pb::ListVisibleRequest {
        workspace: "sunrise-care".into(),
        subject: "u-nurse".into(),
        resource_type: "record".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let truncated = plain[..plain.len() - 3].to_vec();
    let mut not_utf8 = plain.clone();
    not_utf8[2] = 0xff; // the first byte of the workspace
    for bytes in [truncated, not_utf8] {
        refused_as_prost_refuses::<pb::ListVisibleRequest>(&server, LIST_VISIBLE, bytes).await;
    }
    let again: pb::ListVisibleResponse = raw_call(&server, LIST_VISIBLE, plain).await.unwrap();
    assert!(again.ids.contains(&"r-rose-1".to_string()), "{again:?}");
}

/// Three checks of the demo model, the second denied.
fn a_batch() -> pb::CheckBatchRequest {
    pb::CheckBatchRequest {
        checks: vec![
            nurse_reads("r-rose-1"),
            check(
                "sunrise-care",
                "u-nurse",
                "delete",
                existing("record", "r-rose-1"),
            ),
            nurse_reads("r-rose-2"),
        ],
        consistency: Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::AtLeast("1".into())),
        }),
    }
}

#[tokio::test]
async fn a_batch_in_any_valid_encoding_gets_the_same_answer() {
    let server = TestServer::demo().await;
    let m = a_batch();
    let plain = m.encode_to_vec();
    let expected = raw_batch(&server, plain.clone()).await.unwrap();
    let allowed: Vec<bool> = expected.results.iter().map(|r| r.allowed).collect();
    assert_eq!(allowed[..2], [true, false], "{expected:?}");
    assert_eq!(expected.results.len(), 3);

    // The consistency before the checks (read off the wire) and an
    // unknown field (read by prost, which skips it) are answered as the
    // plain batch; a fourth check with its action sent twice is read by
    // prost, for which the last one wins.
    let consistency = m.consistency.as_ref().unwrap().encode_to_vec();
    let mut consistency_first = vec![0x12, consistency.len() as u8];
    consistency_first.extend_from_slice(&consistency);
    for c in &m.checks {
        let c = c.encode_to_vec();
        consistency_first.extend_from_slice(&[0x0a, c.len() as u8]);
        consistency_first.extend_from_slice(&c);
    }
    let mut twice = m.clone();
    twice.checks[1].action = "read".into();
    let mut twice = twice.encode_to_vec();
    let mut second = m.checks[1].encode_to_vec();
    second.extend_from_slice(&[0x1a, 0x06]);
    second.extend_from_slice(b"delete"); // action again: "delete" wins
    twice.extend_from_slice(&[0x0a, second.len() as u8]);
    twice.extend_from_slice(&second);
    let mut unknown = plain.clone();
    unknown.extend_from_slice(&[0x48, 0x01]); // field 9, varint 1
    for bytes in [consistency_first, unknown] {
        let got = raw_batch(&server, bytes).await.unwrap();
        assert_eq!(got, expected);
    }
    let got = raw_batch(&server, twice).await.unwrap();
    let answers: Vec<bool> = got.results.iter().map(|r| r.allowed).collect();
    assert_eq!(
        answers,
        [true, true, true, false],
        "the fourth check deletes"
    );
}

#[tokio::test]
async fn bytes_that_are_not_a_batch_are_internal_as_prost_says() {
    let server = TestServer::demo().await;
    let plain = a_batch().encode_to_vec();
    let truncated = plain[..plain.len() - 3].to_vec();
    let mut not_utf8 = plain.clone();
    let second = plain.windows(6).position(|w| w == b"delete").unwrap();
    not_utf8[second] = 0xff; // the second check's action
    for bytes in [truncated, not_utf8] {
        refused_as_prost_refuses::<pb::CheckBatchRequest>(&server, CHECK_BATCH, bytes).await;
    }
    let again = raw_batch(&server, plain).await.unwrap();
    assert_eq!(again.results.len(), 3);
}

#[tokio::test]
async fn a_batch_of_many_tiny_checks_is_refused_for_its_size_naming_it() {
    let server = TestServer::demo().await;
    // 100,000 empty checks: 200 KB on the wire, each counted, none kept.
    let bytes = [0x0a, 0x00].repeat(100_000);
    let status = raw_batch(&server, bytes).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("100000") && status.message().contains("limit of 1000"),
        "{}",
        status.message()
    );
}
