//! `CheckBatchResponse` onto the wire: the bytes prost would write for the
//! batch's answers, each sized once and each given the batch's revision.
//!
//! prost sizes a message before encoding it, and each nested message again
//! for its length prefix: for a batch of 64 answers, two passes over every
//! answer besides the one that writes it, about 12 % of a batch's
//! instructions (callgrind, BENCHMARKS.md). And a `pb::CheckResponse`
//! owns its revision: one allocation per answer for a string that is the
//! same for all of them. A [`BatchAnswer`] holds the answers without
//! revisions and the revision once; [`encode`] writes each answer's fields
//! itself, the revision among them. `tests` hold the bytes to prost's.

use prost::bytes::BufMut;
use prost::encoding::{encode_varint, encoded_len_varint, string};
use prost::Message;
use tonic::codec::{EncodeBuf, Encoder};
use tonic::Status;

use super::convert::Answer;
use crate::pb;

/// A CheckBatch's answers, in request order, all at `revision`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchAnswer {
    pub results: Vec<Answer>,
    pub revision: String,
}

/// The message a client reads: each answer carries the revision.
impl From<BatchAnswer> for pb::CheckBatchResponse {
    fn from(b: BatchAnswer) -> Self {
        let BatchAnswer { results, revision } = b;
        pb::CheckBatchResponse {
            results: results
                .into_iter()
                .map(|a| a.with_revision(revision.clone()))
                .collect(),
            revision,
        }
    }
}

/// Field keys of `CheckResponse` (field number << 3 | wire type).
const ALLOWED: u8 = 1 << 3;
const REVISION: u8 = (2 << 3) | 2;
const EXPLANATION: u8 = (3 << 3) | 2;
const REASON: u8 = 4 << 3;
/// `CheckBatchResponse.results`, a length-delimited field 1.
const RESULT: u8 = (1 << 3) | 2;

/// Writes `m` as prost's `encode` would write the `pb::CheckBatchResponse`
/// it stands for.
pub fn encode(m: &BatchAnswer, buf: &mut impl BufMut) {
    // Into a buffer of our own, then one copy: tonic's buffer pays a
    // capacity check and a `memcpy` call for every small write.
    let mut out = Vec::with_capacity(m.results.len() * TYPICAL_ANSWER + m.revision.len() + 8);
    write(m, &mut out);
    buf.put_slice(&out);
}

/// Bytes of a typical unexplained answer with its key and length: allowed,
/// a revision of up to 20 digits, a reason.
const TYPICAL_ANSWER: usize = 2 + 2 + 22 + 2;

fn write(m: &BatchAnswer, buf: &mut Vec<u8>) {
    // The revision field, the same in every answer.
    let rev = m.revision.as_bytes();
    let rev_len = if rev.is_empty() {
        0
    } else {
        1 + encoded_len_varint(rev.len() as u64) + rev.len()
    };
    for r in &m.results {
        // As prost's int32: a negative value is ten bytes, sign-extended.
        let reason = r.reason as i32 as u64;
        let explanation_len = r.explanation.as_ref().map(Message::encoded_len);
        let len = if r.allowed { 2 } else { 0 }
            + rev_len
            + explanation_len.map_or(0, |n| 1 + encoded_len_varint(n as u64) + n)
            + if reason != 0 {
                1 + encoded_len_varint(reason)
            } else {
                0
            };
        buf.put_u8(RESULT);
        encode_varint(len as u64, buf);
        // Fields in number order, as prost writes them.
        if r.allowed {
            buf.put_slice(&[ALLOWED, 1]);
        }
        if !rev.is_empty() {
            buf.put_u8(REVISION);
            encode_varint(rev.len() as u64, buf);
            buf.put_slice(rev);
        }
        if let (Some(e), Some(n)) = (&r.explanation, explanation_len) {
            buf.put_u8(EXPLANATION);
            encode_varint(n as u64, buf);
            e.encode_raw(buf);
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
    type Item = BatchAnswer;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        encode(&item, buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ours(m: &BatchAnswer) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(m, &mut buf);
        buf
    }

    /// What prost writes for the message `m` stands for.
    fn prosts(m: &BatchAnswer) -> Vec<u8> {
        pb::CheckBatchResponse::from(m.clone()).encode_to_vec()
    }

    fn answer() -> impl Strategy<Value = Answer> {
        let explanation = prop_oneof![
            3 => Just(None),
            1 => ("[a-z_]{0,12}", ".{0,200}", "[a-z:0-9-]{0,16}", 0..3usize).prop_map(
                |(rule, message, reach, bindings)| {
                    Some(pb::Explanation {
                        rule,
                        message,
                        granted_by: vec![
                            pb::Binding {
                                role: "viewer".into(),
                                scope: "workspace".into(),
                                via_group: String::new(),
                            };
                            bindings
                        ],
                        reach_through: reach,
                    })
                }
            ),
        ];
        let reason = (0..9i32).prop_map(|r| pb::Reason::try_from(r).unwrap_or_default());
        (any::<bool>(), explanation, reason).prop_map(|(allowed, explanation, reason)| Answer {
            allowed,
            reason,
            explanation,
        })
    }

    proptest! {
        #[test]
        fn writes_the_bytes_prost_writes(
            results in prop::collection::vec(answer(), 0..80),
            revision in "[0-9]{0,20}|.{0,200}",
        ) {
            let m = BatchAnswer { results, revision };
            prop_assert_eq!(ours(&m), prosts(&m));
        }
    }

    #[test]
    fn a_typical_batch_is_the_same_bytes() {
        let answer = |allowed, reason| Answer {
            allowed,
            reason,
            explanation: None,
        };
        let m = BatchAnswer {
            results: vec![
                answer(true, pb::Reason::Granted),
                answer(false, pb::Reason::NoReach),
                answer(false, pb::Reason::Unspecified),
            ],
            revision: "18446744073709551615".into(),
        };
        assert_eq!(ours(&m), prosts(&m));
        let got = match pb::CheckBatchResponse::decode(&ours(&m)[..]) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert!(got.results.iter().all(|r| r.revision == m.revision));
        assert_eq!(got.results[1].reason, pb::Reason::NoReach as i32);
    }
}
