//! `CheckBatchRequest` off the wire: the batch's bytes kept as one buffer,
//! and where each check's strings lie in it, instead of prost's five
//! `String`s per check (which cost a batch more than its decisions did;
//! BENCHMARKS.md).
//!
//! Each check is read as [`check_wire`](super::check_wire) reads a Check's
//! request. A batch holding anything that reader leaves to prost (labels, a
//! field repeated or unknown) goes to prost whole, so every input is
//! accepted, or refused with the same error, exactly as the generated
//! decoder would (`tests` hold it to that). Checks past the batch limit are
//! read (so that bad bytes are refused as prost refuses them) but not kept:
//! the batch is refused for its size, and a large message of tiny checks
//! does not become a large allocation (prost's would be about 100 times the
//! message).

use prost::bytes::{Buf, Bytes};
use prost::{DecodeError, Message};

use super::check_wire::{
    once, read_consistency, requirement_in, CheckFields, Reader, Requirement, SpanRequirement,
    Spans, Text, LEN,
};
use super::convert;
use super::status::ApiError;
use crate::pb;

/// A decoded `CheckBatchRequest`: spans into its bytes, or prost's message
/// for the rare shapes the reader leaves to it.
#[derive(Debug, Clone)]
pub struct CheckBatchWire(Decoded);

#[derive(Debug, Clone)]
enum Decoded {
    Spans {
        bytes: Bytes,
        /// The first checks, up to the limit the batch was decoded with.
        checks: Vec<Spans>,
        /// How many checks the batch holds, kept or not.
        len: usize,
        requirement: Option<SpanRequirement>,
    },
    Prost(pb::CheckBatchRequest),
}

impl CheckBatchWire {
    /// Decodes one whole message from `buf`, consuming it, and keeps at
    /// most `max_checks` of its checks (all of them when it holds no more).
    pub fn decode(buf: &mut impl Buf, max_checks: usize) -> Result<CheckBatchWire, DecodeError> {
        // One buffer for the whole batch (tonic's buffer splits it off
        // without a copy).
        let bytes = buf.copy_to_bytes(buf.remaining());
        match read_batch(&bytes, max_checks) {
            Some((checks, len, requirement)) => Ok(CheckBatchWire(Decoded::Spans {
                bytes,
                checks,
                len,
                requirement,
            })),
            None => pb::CheckBatchRequest::decode(&bytes[..]).map(CheckBatchWire::from),
        }
    }

    /// How many checks the batch holds.
    pub fn len(&self) -> usize {
        match &self.0 {
            Decoded::Spans { len, .. } => *len,
            Decoded::Prost(m) => m.checks.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The checks kept, in order: every check when [`Self::len`] is within
    /// the limit the batch was decoded with. Each is `Err` only if its
    /// strings are not UTF-8, which decoding has already ruled out; a
    /// failure is reported, never assumed away.
    pub fn checks(&self) -> impl Iterator<Item = Result<CheckFields<'_>, ApiError>> + '_ {
        let (text, spans, prost) = match &self.0 {
            Decoded::Spans { bytes, checks, .. } => (Text::new(bytes), &checks[..], &[][..]),
            // Every field named: a new one is a compile error, not ignored.
            Decoded::Prost(pb::CheckBatchRequest {
                checks,
                consistency: _,
            }) => (Text::new(&[]), &[][..], &checks[..]),
        };
        let inline = spans.iter().map(move |s| s.fields(&text));
        inline.chain(prost.iter().map(|c| Ok(CheckFields::from(c))))
    }

    /// The batch's `consistency` requirement (each check's own is ignored).
    pub fn requirement(&self) -> Result<Option<Requirement<'_>>, ApiError> {
        match &self.0 {
            Decoded::Spans {
                bytes, requirement, ..
            } => requirement_in(*requirement, &Text::new(bytes)),
            Decoded::Prost(pb::CheckBatchRequest {
                checks: _,
                consistency,
            }) => Ok(consistency.as_ref().and_then(convert::requirement_of)),
        }
    }

    /// Whether the span reader decoded it (rather than prost).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Decoded::Spans { .. })
    }
}

impl From<pb::CheckBatchRequest> for CheckBatchWire {
    fn from(m: pb::CheckBatchRequest) -> Self {
        CheckBatchWire(Decoded::Prost(m))
    }
}

/// `CheckBatchRequest`: 1 checks (repeated), 2 consistency. The checks
/// kept (at most `max_checks`), how many there are, and the requirement.
fn read_batch(
    message: &[u8],
    max_checks: usize,
) -> Option<(Vec<Spans>, usize, Option<SpanRequirement>)> {
    let mut r = Reader::new(message);
    // A typical check takes 50 to 120 bytes: room for all of them at once.
    let mut checks = Vec::with_capacity(max_checks.min(message.len() / 32));
    let mut len = 0;
    let mut consistency = None;
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, LEN) => {
                let check = Spans::read_from(r.delimited()?.1)?;
                len += 1;
                if len <= max_checks {
                    checks.push(check);
                }
            }
            (2, LEN) => once(&mut consistency, read_consistency(r.delimited()?.1)?)?,
            _ => return None,
        }
    }
    Some((checks, len, consistency.flatten()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::check_wire::tests::{agrees_with_prost, typical};
    use proptest::prelude::*;

    fn decode(bytes: &[u8], max_checks: usize) -> Result<CheckBatchWire, DecodeError> {
        CheckBatchWire::decode(&mut &bytes[..], max_checks)
    }

    /// What a decoded batch holds, to compare two decodings.
    fn view(w: &CheckBatchWire) -> String {
        let checks: Vec<_> = w.checks().collect();
        format!("{} {checks:?} {:?}", w.len(), w.requirement())
    }

    fn ours(bytes: &[u8], max_checks: usize) -> Result<String, String> {
        decode(bytes, max_checks)
            .map(|w| view(&w))
            .map_err(|e| e.to_string())
    }

    fn prost(bytes: &[u8]) -> Result<String, String> {
        pb::CheckBatchRequest::decode(bytes)
            .map(|m| view(&m.into()))
            .map_err(|e| e.to_string())
    }

    fn batch(checks: Vec<pb::CheckRequest>, at_least: Option<&str>) -> pb::CheckBatchRequest {
        pb::CheckBatchRequest {
            checks,
            consistency: at_least.map(|r| pb::Consistency {
                requirement: Some(pb::consistency::Requirement::AtLeast(r.into())),
            }),
        }
    }

    fn three_checks() -> Vec<pb::CheckRequest> {
        let mut second = typical();
        second.subject = "u-bob".into();
        second.consistency = None;
        let mut third = typical();
        third.resource = None;
        third.explain = false;
        vec![typical(), second, third]
    }

    #[test]
    fn a_typical_batch_is_read_with_every_check_and_the_batch_s_requirement() {
        let m = batch(three_checks(), Some("12"));
        let wire = decode(&m.encode_to_vec(), 1000).expect("decodes");
        assert!(wire.is_inline());
        assert_eq!(wire.len(), 3);
        let checks: Vec<_> = wire.checks().map(|c| c.expect("UTF-8")).collect();
        let want: Vec<_> = m.checks.iter().map(CheckFields::from).collect();
        assert_eq!(checks, want);
        assert_eq!(checks[1].subject, "u-bob");
        assert_eq!(wire.requirement(), Ok(Some(Requirement::AtLeast("12"))));
        let empty = decode(&[], 1000).expect("decodes");
        assert!(empty.is_inline() && empty.is_empty());
        assert_eq!(empty.requirement(), Ok(None));
    }

    #[test]
    fn labels_a_repeat_or_an_unknown_field_send_the_batch_to_prost() {
        let mut checks = three_checks();
        checks[2].resource = typical().resource.map(|mut r| {
            r.id.clear();
            r.labels = vec!["site-a".into()];
            r
        });
        let with_labels = batch(checks, None).encode_to_vec();
        let mut repeated = batch(three_checks(), Some("3")).encode_to_vec();
        repeated.extend_from_slice(&[0x12, 0x02, 0x08, 0x01]); // consistency again
        let mut unknown = batch(three_checks(), None).encode_to_vec();
        unknown.extend_from_slice(&[0x18, 0x05]); // field 3, a varint
        for bytes in [with_labels, repeated, unknown] {
            let wire = decode(&bytes, 1000).expect("decodes");
            assert!(!wire.is_inline());
            assert_eq!(Ok(view(&wire)), prost(&bytes));
        }
    }

    #[test]
    fn checks_past_the_limit_are_counted_not_kept() {
        let mut checks = three_checks();
        checks.extend(three_checks());
        let bytes = batch(checks, None).encode_to_vec();
        let wire = decode(&bytes, 4).expect("decodes");
        assert_eq!((wire.len(), wire.checks().count()), (6, 4));
        let wire = decode(&bytes, 6).expect("decodes");
        assert_eq!((wire.len(), wire.checks().count()), (6, 6));
        // A bad check past the limit is still refused as prost refuses it.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] = 0xff; // inside the last check's last string
        assert!(prost(&bad).is_err());
        assert_eq!(ours(&bad, 4), prost(&bad));
    }

    #[test]
    fn what_prost_refuses_is_refused_with_prost_s_error() {
        let good = batch(three_checks(), Some("7")).encode_to_vec();
        let mut not_utf8 = good.clone();
        let at = not_utf8.iter().position(|&b| b == b'u').expect("a 'u'");
        not_utf8[at] = 0xc3;
        let truncated = good[..good.len() - 3].to_vec();
        for bytes in [not_utf8, truncated] {
            let prost = prost(&bytes);
            assert!(prost.is_err());
            assert_eq!(ours(&bytes, 1000), prost);
        }
    }

    fn request() -> impl Strategy<Value = pb::CheckBatchRequest> {
        (
            prop::collection::vec(agrees_with_prost::request(), 0..6),
            prop::option::of(agrees_with_prost::consistency()),
        )
            .prop_map(|(checks, consistency)| pb::CheckBatchRequest {
                checks,
                consistency,
            })
    }

    proptest! {
        #[test]
        fn every_batch_decodes_as_prost_decodes_it(m in request(), max in 0..8usize) {
            let bytes = m.encode_to_vec();
            prop_assert_eq!(ours(&bytes, usize::MAX), prost(&bytes));
            let labels = m.checks.iter()
                .any(|c| c.resource.as_ref().is_some_and(|r| !r.labels.is_empty()));
            let wire = decode(&bytes, max).expect("decodes");
            prop_assert_eq!(wire.is_inline(), !labels);
            prop_assert_eq!(wire.len(), m.checks.len());
            // Up to the limit, the first checks are kept.
            let kept = if labels { m.checks.len() } else { m.checks.len().min(max) };
            let want: Vec<_> = m.checks[..kept].iter().map(|c| Ok(CheckFields::from(c))).collect();
            prop_assert_eq!(wire.checks().collect::<Vec<_>>(), want);
        }

        #[test]
        fn any_bytes_are_accepted_or_refused_as_prost_would(
            bytes in agrees_with_prost::spoiled(request().prop_map(|m| m.encode_to_vec())),
        ) {
            prop_assert_eq!(ours(&bytes, usize::MAX), prost(&bytes));
        }

        #[test]
        fn random_bytes_are_accepted_or_refused_as_prost_would(
            bytes in prop::collection::vec(any::<u8>(), 0..60),
        ) {
            prop_assert_eq!(ours(&bytes, usize::MAX), prost(&bytes));
        }
    }
}
