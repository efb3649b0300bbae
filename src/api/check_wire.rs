//! `CheckRequest` off the wire without an allocation: the hot path of Check.
//!
//! prost decodes every string of a message into a fresh `String`. For a
//! Check that is five allocations and five frees, and with the rest of
//! prost's decoding about 4,000 of the 55,000 instructions a call costs the
//! server (callgrind, BENCHMARKS.md), where the decision itself costs 1,000.
//! A Check request is small: [`CheckWire`] copies its bytes once into an
//! inline buffer and keeps where each string lies.
//!
//! It reads only the shape clients send: each known field at most once,
//! with its own wire type, strings in UTF-8. Anything else (the labels of a
//! resource not created yet, a field repeated or unknown, a message over
//! [`INLINE`] bytes, bytes that are not a message) is handed to prost, so
//! every input is accepted, or refused with the same error, exactly as the
//! generated decoder would (`tests` hold it to that). `batch_wire` reads
//! each check of a CheckBatch with the same [`Reader`] and [`Spans`].

use prost::bytes::Buf;
use prost::{DecodeError, Message};

use super::status::ApiError;
use crate::pb;

/// The largest message kept inline: ids, names and framing of a typical
/// Check take 50 to 120 bytes. Its length then fits a byte.
pub const INLINE: usize = 128;
const _: () = assert!(INLINE <= u8::MAX as usize);

/// A decoded `CheckRequest`: inline bytes, or prost's message for the rare
/// shapes the inline reader leaves to it.
#[derive(Debug, Clone)]
pub struct CheckWire(Decoded);

#[derive(Debug, Clone)]
enum Decoded {
    Inline(InlineCheck),
    Prost(pb::CheckRequest),
}

/// The fields of a `CheckRequest`, borrowed from either form. An absent
/// `consistency` and one without a requirement are the same (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckFields<'a> {
    pub workspace: &'a str,
    pub subject: &'a str,
    pub action: &'a str,
    pub resource: Option<ResourceFields<'a>>,
    pub requirement: Option<Requirement<'a>>,
    pub explain: bool,
}

/// The fields of a `ResourceRef`, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceFields<'a> {
    pub type_: &'a str,
    pub id: &'a str,
    pub parent: &'a str,
    pub labels: &'a [String],
}

/// `Consistency.requirement`, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement<'a> {
    Latest(bool),
    AtLeast(&'a str),
    Exact(&'a str),
}

impl CheckWire {
    /// Decodes one whole message from `buf`, consuming it.
    pub fn decode(buf: &mut impl Buf) -> Result<CheckWire, DecodeError> {
        let len = buf.remaining();
        if len > INLINE || buf.chunk().len() < len {
            return pb::CheckRequest::decode(buf).map(|m| CheckWire(Decoded::Prost(m)));
        }
        let mut bytes = [0; INLINE];
        bytes[..len].copy_from_slice(&buf.chunk()[..len]);
        buf.advance(len);
        let message = &bytes[..len];
        match Spans::read(message) {
            Some(spans) => Ok(CheckWire(Decoded::Inline(InlineCheck {
                bytes,
                len: len as u8, // at most INLINE, which fits a byte
                spans,
            }))),
            None => pb::CheckRequest::decode(message).map(|m| CheckWire(Decoded::Prost(m))),
        }
    }

    /// The request's fields. Inline strings were checked to be UTF-8 when
    /// decoded; they are checked again here because a byte buffer cannot
    /// carry that proof, and a failure is reported, never assumed away.
    pub fn fields(&self) -> Result<CheckFields<'_>, ApiError> {
        match &self.0 {
            Decoded::Inline(inline) => inline.fields(),
            Decoded::Prost(m) => Ok(m.into()),
        }
    }

    /// Whether the inline reader decoded it (rather than prost).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Decoded::Inline(_))
    }
}

/// Where a string lies in the message's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SpanRequirement {
    Latest(bool),
    AtLeast(Span),
    Exact(Span),
}

#[derive(Debug, Clone, Copy, Default)]
struct ResourceSpans {
    type_: Span,
    id: Span,
    parent: Span,
}

/// Where each field of a `CheckRequest` lies in the message's bytes.
#[derive(Debug, Clone, Default)]
pub(super) struct Spans {
    workspace: Span,
    subject: Span,
    action: Span,
    resource: Option<ResourceSpans>,
    requirement: Option<SpanRequirement>,
    explain: bool,
}

#[derive(Debug, Clone)]
struct InlineCheck {
    bytes: [u8; INLINE],
    len: u8,
    spans: Spans,
}

impl InlineCheck {
    fn fields(&self) -> Result<CheckFields<'_>, ApiError> {
        self.spans
            .fields(&Text::new(&self.bytes[..usize::from(self.len)]))
    }
}

/// A message's bytes, with their strings to be read by [`Span`].
pub(super) struct Text<'a> {
    message: &'a [u8],
    /// The whole message, when it is text, as one with ASCII framing and
    /// UTF-8 strings is: checked for UTF-8 once, each string is then a slice.
    whole: Option<&'a str>,
}

impl<'a> Text<'a> {
    pub(super) fn new(message: &'a [u8]) -> Text<'a> {
        Text {
            message,
            whole: std::str::from_utf8(message).ok(),
        }
    }

    fn get(&self, field: &'static str, span: Span) -> Result<&'a str, ApiError> {
        let start = span.start as usize;
        let range = start..start + span.len as usize;
        self.whole
            .and_then(|w| w.get(range.clone()))
            .or_else(|| {
                self.message
                    .get(range)
                    .and_then(|b| std::str::from_utf8(b).ok())
            })
            .ok_or_else(|| ApiError::Invalid {
                field,
                message: "is not UTF-8".to_string(),
            })
    }
}

impl Spans {
    /// The fields these spans mark in `text`.
    pub(super) fn fields<'a>(&self, text: &Text<'a>) -> Result<CheckFields<'a>, ApiError> {
        Ok(CheckFields {
            workspace: text.get("workspace", self.workspace)?,
            subject: text.get("subject", self.subject)?,
            action: text.get("action", self.action)?,
            resource: match self.resource {
                None => None,
                Some(r) => Some(ResourceFields {
                    type_: text.get("resource.type", r.type_)?,
                    id: text.get("resource.id", r.id)?,
                    parent: text.get("resource.parent", r.parent)?,
                    labels: &[],
                }),
            },
            requirement: requirement_in(self.requirement, text)?,
            explain: self.explain,
        })
    }
}

/// A requirement's revision string, read from `text`.
pub(super) fn requirement_in<'a>(
    requirement: Option<SpanRequirement>,
    text: &Text<'a>,
) -> Result<Option<Requirement<'a>>, ApiError> {
    Ok(match requirement {
        None => None,
        Some(SpanRequirement::Latest(b)) => Some(Requirement::Latest(b)),
        Some(SpanRequirement::AtLeast(r)) => {
            Some(Requirement::AtLeast(text.get("consistency.at_least", r)?))
        }
        Some(SpanRequirement::Exact(r)) => {
            Some(Requirement::Exact(text.get("consistency.exact", r)?))
        }
    })
}

/// The protobuf wire types the inline reader accepts.
const VARINT: u64 = 0;
pub(super) const LEN: u64 = 2;

/// A cursor over a message (or a nested one) inside the message's bytes;
/// `base` is where `rest` starts in them. Every method returns `None` for
/// what it does not read, and the whole message then goes to prost.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
    base: usize,
    /// The whole message is ASCII, so every string in it is UTF-8.
    ascii: bool,
}

impl<'a> Reader<'a> {
    pub(super) fn new(message: &'a [u8]) -> Reader<'a> {
        Reader {
            rest: message,
            base: 0,
            ascii: message.is_ascii(),
        }
    }

    /// A varint of at most 9 bytes (63 bits: no overflow to care about;
    /// longer ones go to prost, which knows their rules).
    pub(super) fn varint(&mut self) -> Option<u64> {
        // Keys, lengths and flags of a typical request take one byte.
        if let Some(&b) = self.rest.first() {
            if b < 0x80 {
                self.skip(1);
                return Some(u64::from(b));
            }
        }
        let mut value = 0u64;
        for (i, &b) in self.rest.iter().enumerate().take(9) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.skip(i + 1);
                return Some(value);
            }
        }
        None
    }

    fn skip(&mut self, n: usize) {
        self.rest = &self.rest[n..];
        self.base += n;
    }

    /// The next field's number and wire type, `None` at the end.
    pub(super) fn key(&mut self) -> Option<Option<(u64, u64)>> {
        if self.rest.is_empty() {
            return Some(None);
        }
        let key = self.varint()?;
        Some(Some((key >> 3, key & 7)))
    }

    /// A length-delimited value: its span, and a reader over it.
    pub(super) fn delimited(&mut self) -> Option<(Span, Reader<'a>)> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.rest.len() {
            return None;
        }
        let inner = Reader {
            rest: &self.rest[..len],
            base: self.base,
            ascii: self.ascii,
        };
        let span = Span {
            start: u32::try_from(self.base).ok()?,
            len: u32::try_from(len).ok()?,
        };
        self.skip(len);
        Some((span, inner))
    }

    /// A string field's span, if its bytes are UTF-8 (prost refuses them
    /// otherwise, and will say so).
    fn string(&mut self) -> Option<Span> {
        let (span, inner) = self.delimited()?;
        if !inner.ascii {
            std::str::from_utf8(inner.rest).ok()?;
        }
        Some(span)
    }
}

/// Sets a field read for the first time; a repeated one goes to prost,
/// which merges repeats by rules not worth copying here.
pub(super) fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

impl Spans {
    /// `CheckRequest`: 1 workspace, 2 subject, 3 action, 4 resource,
    /// 5 consistency, 6 explain.
    fn read(message: &[u8]) -> Option<Spans> {
        Spans::read_from(Reader::new(message))
    }

    /// The `CheckRequest` `r` covers (a whole message, or one nested in a
    /// batch).
    pub(super) fn read_from(mut r: Reader<'_>) -> Option<Spans> {
        let (mut workspace, mut subject, mut action) = (None, None, None);
        let (mut resource, mut requirement, mut explain) = (None, None, None);
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, LEN) => once(&mut workspace, r.string()?)?,
                (2, LEN) => once(&mut subject, r.string()?)?,
                (3, LEN) => once(&mut action, r.string()?)?,
                (4, LEN) => once(&mut resource, read_resource(r.delimited()?.1)?)?,
                (5, LEN) => once(&mut requirement, read_consistency(r.delimited()?.1)?)?,
                (6, VARINT) => once(&mut explain, r.varint()? != 0)?,
                _ => return None,
            }
        }
        Some(Spans {
            workspace: workspace.unwrap_or_default(),
            subject: subject.unwrap_or_default(),
            action: action.unwrap_or_default(),
            resource,
            requirement: requirement.flatten(),
            explain: explain.unwrap_or_default(),
        })
    }
}

/// `ResourceRef`: 1 type, 2 id, 3 parent (4 labels goes to prost).
fn read_resource(mut r: Reader<'_>) -> Option<ResourceSpans> {
    let (mut type_, mut id, mut parent) = (None, None, None);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, LEN) => once(&mut type_, r.string()?)?,
            (2, LEN) => once(&mut id, r.string()?)?,
            (3, LEN) => once(&mut parent, r.string()?)?,
            _ => return None,
        }
    }
    Some(ResourceSpans {
        type_: type_.unwrap_or_default(),
        id: id.unwrap_or_default(),
        parent: parent.unwrap_or_default(),
    })
}

/// `Consistency`: the oneof `requirement`, 1 latest, 2 at_least, 3 exact.
/// `Some(None)`: present, with no requirement set.
pub(super) fn read_consistency(mut r: Reader<'_>) -> Option<Option<SpanRequirement>> {
    let mut requirement = None;
    while let Some((field, wire)) = r.key()? {
        let value = match (field, wire) {
            (1, VARINT) => SpanRequirement::Latest(r.varint()? != 0),
            (2, LEN) => SpanRequirement::AtLeast(r.string()?),
            (3, LEN) => SpanRequirement::Exact(r.string()?),
            _ => return None,
        };
        once(&mut requirement, value)?;
    }
    Some(requirement)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod tests {
    use super::*;

    fn encoded(m: &pb::CheckRequest) -> Vec<u8> {
        m.encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<CheckWire, DecodeError> {
        CheckWire::decode(&mut &bytes[..])
    }

    pub(in crate::api) fn typical() -> pb::CheckRequest {
        pb::CheckRequest {
            workspace: "acme".into(),
            subject: "u-alice".into(),
            action: "read".into(),
            resource: Some(pb::ResourceRef {
                r#type: "record".into(),
                id: "r-0000042".into(),
                ..Default::default()
            }),
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::AtLeast("7".into())),
            }),
            explain: true,
        }
    }

    #[test]
    fn a_typical_check_is_read_inline_with_every_field() {
        let m = typical();
        let wire = decode(&encoded(&m)).expect("decodes");
        assert!(wire.is_inline());
        let fields = wire.fields().expect("UTF-8");
        assert_eq!(fields, CheckFields::from(&m));
        assert_eq!(fields.resource.map(|r| r.id), Some("r-0000042"));
        assert_eq!(fields.requirement, Some(Requirement::AtLeast("7")));
        assert!(fields.explain);
    }

    #[test]
    fn labels_a_repeat_or_an_unknown_field_go_to_prost() {
        let mut with_labels = typical();
        if let Some(r) = &mut with_labels.resource {
            r.id.clear();
            r.labels = vec!["site-a".into()];
        }
        let mut repeated = encoded(&typical());
        repeated.extend_from_slice(&[0x0a, 0x01, b'b']); // workspace again: "b" wins
        let mut unknown = encoded(&typical());
        unknown.extend_from_slice(&[0x38, 0x05]); // field 7, a varint
        for bytes in [encoded(&with_labels), repeated, unknown] {
            let wire = decode(&bytes).expect("decodes");
            assert!(!wire.is_inline());
            let prost = pb::CheckRequest::decode(&bytes[..]).expect("prost decodes");
            assert_eq!(wire.fields().ok(), Some(CheckFields::from(&prost)));
        }
    }

    #[test]
    fn a_message_over_the_inline_size_goes_to_prost() {
        let mut m = typical();
        m.subject = "u".repeat(INLINE);
        let wire = decode(&encoded(&m)).expect("decodes");
        assert!(!wire.is_inline());
        assert_eq!(wire.fields().ok(), Some(CheckFields::from(&m)));
    }

    #[test]
    fn what_prost_refuses_is_refused_with_prost_s_error() {
        let mut not_utf8 = encoded(&typical());
        let at = not_utf8.iter().position(|&b| b == b'a').expect("an 'a'");
        not_utf8[at] = 0xff;
        let truncated = encoded(&typical())[..10].to_vec();
        for bytes in [not_utf8, truncated] {
            let ours = decode(&bytes).err().map(|e| e.to_string());
            let prost = pb::CheckRequest::decode(&bytes[..])
                .err()
                .map(|e| e.to_string());
            assert!(prost.is_some());
            assert_eq!(ours, prost);
        }
    }

    pub(in crate::api) mod agrees_with_prost {
        use super::*;
        use proptest::prelude::*;

        /// Short strings, mostly ASCII ids, sometimes empty or not ASCII.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => "[a-z0-9:-]{0,12}",
                1 => Just(String::new()),
                1 => "\\PC{0,6}",
            ]
        }

        fn resource() -> impl Strategy<Value = pb::ResourceRef> {
            (text(), text(), text(), prop::collection::vec(text(), 0..3)).prop_map(
                |(r#type, id, parent, labels)| pb::ResourceRef {
                    r#type,
                    id,
                    parent,
                    labels,
                },
            )
        }

        pub(in crate::api) fn consistency() -> impl Strategy<Value = pb::Consistency> {
            use pb::consistency::Requirement as R;
            prop::option::of(prop_oneof![
                any::<bool>().prop_map(R::Latest),
                "[0-9]{0,4}".prop_map(R::AtLeast),
                "[0-9]{0,4}".prop_map(R::Exact),
            ])
            .prop_map(|requirement| pb::Consistency { requirement })
        }

        pub(in crate::api) fn request() -> impl Strategy<Value = pb::CheckRequest> {
            (
                text(),
                text(),
                text(),
                prop::option::of(resource()),
                prop::option::of(consistency()),
                any::<bool>(),
            )
                .prop_map(
                    |(workspace, subject, action, resource, consistency, explain)| {
                        pb::CheckRequest {
                            workspace,
                            subject,
                            action,
                            resource,
                            consistency,
                            explain,
                        }
                    },
                )
        }

        /// An encoding with up to 3 bytes changed, perhaps cut short, and
        /// up to 5 random bytes after it.
        pub(in crate::api) fn spoiled(
            encoding: impl Strategy<Value = Vec<u8>>,
        ) -> impl Strategy<Value = Vec<u8>> {
            (
                encoding,
                prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
                prop::option::weighted(0.25, any::<prop::sample::Index>()),
                prop::collection::vec(any::<u8>(), 0..6),
            )
                .prop_map(|(mut bytes, edits, cut, tail)| {
                    for (at, value) in edits {
                        if !bytes.is_empty() {
                            let i = at.index(bytes.len());
                            bytes[i] = value;
                        }
                    }
                    if let Some(cut) = cut {
                        bytes.truncate(cut.index(bytes.len() + 1));
                    }
                    bytes.extend_from_slice(&tail);
                    bytes
                })
        }

        /// What a decoder made of some bytes: the fields, or the error.
        fn outcome(fields: Result<Result<String, String>, DecodeError>) -> Result<String, String> {
            fields.map_err(|e| e.to_string())?
        }

        fn ours(bytes: &[u8]) -> Result<String, String> {
            outcome(decode(bytes).map(|w| {
                w.fields()
                    .map(|f| format!("{f:?}"))
                    .map_err(|e| e.to_string())
            }))
        }

        fn prost(bytes: &[u8]) -> Result<String, String> {
            outcome(
                pb::CheckRequest::decode(bytes).map(|m| Ok(format!("{:?}", CheckFields::from(&m)))),
            )
        }

        proptest! {
            #[test]
            fn every_request_decodes_as_prost_decodes_it(m in request()) {
                let bytes = encoded(&m);
                prop_assert_eq!(ours(&bytes), prost(&bytes));
                // the inline reader took every request it should have
                let labels = m.resource.as_ref().is_some_and(|r| !r.labels.is_empty());
                let inline = decode(&bytes).map(|w| w.is_inline()).unwrap_or(false);
                prop_assert_eq!(inline, !labels && bytes.len() <= INLINE);
            }

            #[test]
            fn any_bytes_are_accepted_or_refused_as_prost_would(
                bytes in spoiled(request().prop_map(|m| encoded(&m))),
            ) {
                prop_assert_eq!(ours(&bytes), prost(&bytes));
            }

            #[test]
            fn random_bytes_are_accepted_or_refused_as_prost_would(
                bytes in prop::collection::vec(any::<u8>(), 0..40),
            ) {
                prop_assert_eq!(ours(&bytes), prost(&bytes));
            }
        }
    }
}
