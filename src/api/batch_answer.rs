//! `CheckBatchResponse` onto the wire: the bytes prost would write, with
//! each answer sized once.
//!
//! prost sizes a message before encoding it, and each nested message again
//! for its length prefix: for a batch of 64 answers, two passes over every
//! answer besides the one that writes it, about 12 % of a batch's
//! instructions (callgrind, BENCHMARKS.md). An answer without explanation
//! (all of them unless `explain` was asked) is three small fields, whose
//! length is a sum; [`encode`] writes those itself, and leaves an answer
//! with an explanation to prost. `tests` hold the bytes to prost's.

use prost::bytes::BufMut;
use prost::encoding::{encode_varint, encoded_len_varint, message, string};
use tonic::codec::{EncodeBuf, Encoder};
use tonic::Status;

use crate::pb;

/// Field keys of `CheckResponse` (field number << 3 | wire type).
const ALLOWED: u8 = 1 << 3;
const REVISION: u8 = (2 << 3) | 2;
const REASON: u8 = 4 << 3;
/// `CheckBatchResponse.results`, a length-delimited field 1.
const RESULT: u8 = (1 << 3) | 2;

/// Writes `m` as prost's `encode` would.
pub fn encode(m: &pb::CheckBatchResponse, buf: &mut impl BufMut) {
    // Into a buffer of our own, then one copy: tonic's buffer pays a
    // capacity check and a `memcpy` call for every small write.
    let mut out = Vec::with_capacity(m.results.len() * TYPICAL_ANSWER + m.revision.len() + 8);
    write(m, &mut out);
    buf.put_slice(&out);
}

/// Bytes of a typical unexplained answer with its key and length: allowed,
/// a revision of up to 20 digits, a reason.
const TYPICAL_ANSWER: usize = 2 + 2 + 22 + 2;

fn write(m: &pb::CheckBatchResponse, buf: &mut Vec<u8>) {
    for r in &m.results {
        if r.explanation.is_some() {
            message::encode(1, r, buf);
            continue;
        }
        // As prost's int32: a negative value is ten bytes, sign-extended.
        let reason = r.reason as u64;
        let rev = r.revision.len();
        let len = if r.allowed { 2 } else { 0 }
            + if rev > 0 {
                1 + encoded_len_varint(rev as u64) + rev
            } else {
                0
            }
            + if reason != 0 {
                1 + encoded_len_varint(reason)
            } else {
                0
            };
        buf.put_u8(RESULT);
        encode_varint(len as u64, buf);
        if r.allowed {
            buf.put_slice(&[ALLOWED, 1]);
        }
        if rev > 0 {
            buf.put_u8(REVISION);
            encode_varint(rev as u64, buf);
            buf.put_slice(r.revision.as_bytes());
        }
        if reason != 0 {
            buf.put_u8(REASON);
            encode_varint(reason, buf);
        }
    }
    if !m.revision.is_empty() {
        string::encode(2, &m.revision, buf);
    }
}

/// The CheckBatch route's encoder (check_route.rs).
#[derive(Debug, Default)]
pub struct BatchAnswerEncoder;

impl Encoder for BatchAnswerEncoder {
    type Item = pb::CheckBatchResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        encode(&item, buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;

    fn ours(m: &pb::CheckBatchResponse) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(m, &mut buf);
        buf
    }

    fn answer() -> impl Strategy<Value = pb::CheckResponse> {
        let explanation = prop_oneof![
            3 => Just(None),
            1 => ("[a-z_]{0,12}", ".{0,40}", "[a-z:0-9-]{0,16}").prop_map(|(rule, message, reach)| {
                Some(pb::Explanation {
                    rule,
                    message,
                    granted_by: vec![pb::Binding {
                        role: "viewer".into(),
                        scope: "workspace".into(),
                        via_group: String::new(),
                    }],
                    reach_through: reach,
                })
            }),
        ];
        let reason = prop_oneof![0..9i32, any::<i32>()];
        (any::<bool>(), "[0-9]{0,20}|.{0,200}", explanation, reason).prop_map(
            |(allowed, revision, explanation, reason)| pb::CheckResponse {
                allowed,
                revision,
                explanation,
                reason,
            },
        )
    }

    proptest! {
        #[test]
        fn writes_the_bytes_prost_writes(
            results in prop::collection::vec(answer(), 0..80),
            revision in "[0-9]{0,20}",
        ) {
            let m = pb::CheckBatchResponse { results, revision };
            prop_assert_eq!(ours(&m), m.encode_to_vec());
        }
    }

    #[test]
    fn a_typical_batch_is_the_same_bytes() {
        let answer = |allowed, reason: pb::Reason| pb::CheckResponse {
            allowed,
            revision: "18446744073709551615".into(),
            explanation: None,
            reason: reason as i32,
        };
        let m = pb::CheckBatchResponse {
            results: vec![
                answer(true, pb::Reason::Granted),
                answer(false, pb::Reason::NoReach),
                answer(false, pb::Reason::Unspecified),
            ],
            revision: "7".into(),
        };
        assert_eq!(ours(&m), m.encode_to_vec());
    }
}
