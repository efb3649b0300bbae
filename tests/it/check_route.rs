//! The Check route reads requests without prost (`api::check_wire`); these
//! send it bytes the generated client never would, over real gRPC, and
//! expect what prost's decoding would give: the same answer for the same
//! request in any valid encoding, and INTERNAL for bytes that are not one.

#![allow(clippy::unwrap_used)]

use prost::bytes::BufMut;
use prost::Message;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Status};
use tonic_prost::ProstDecoder;

use rolecall::pb;

use crate::support::*;

/// Sends its bytes as the message, decodes a `CheckResponse`.
#[derive(Debug, Clone, Copy, Default)]
struct RawCheckCodec;

impl Codec for RawCheckCodec {
    type Encode = Vec<u8>;
    type Decode = pb::CheckResponse;
    type Encoder = RawEncoder;
    type Decoder = ProstDecoder<pb::CheckResponse>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

#[derive(Debug, Clone, Copy)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

async fn raw_check(server: &TestServer, bytes: Vec<u8>) -> Result<pb::CheckResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let path = PathAndQuery::from_static("/rolecall.v1.Authz/Check");
    grpc.unary(tonic::Request::new(bytes), path, RawCheckCodec)
        .await
        .map(tonic::Response::into_inner)
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
async fn bytes_that_are_not_a_check_are_internal_as_prost_says() {
    let server = TestServer::demo().await;
    let plain = nurse_reads("r-rose-1").encode_to_vec();
    let truncated = plain[..plain.len() - 3].to_vec();
    let mut not_utf8 = plain.clone();
    not_utf8[2] = 0xff; // the first byte of the workspace
    for bytes in [truncated, not_utf8] {
        let prost_says = pb::CheckRequest::decode(&bytes[..])
            .unwrap_err()
            .to_string();
        let status = raw_check(&server, bytes).await.unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), prost_says);
    }
    // and the server goes on answering
    let again = raw_check(&server, plain).await.unwrap();
    assert!(again.allowed);
}
