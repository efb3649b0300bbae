//! Snapshot files: the whole model at one revision, checksummed.
//!
//! Two lines of JSON (so `head -1` shows the header and `tail -n 1 | jq`
//! shows the model):
//!
//! ```text
//! {"format":"rolecall-snapshot","version":1,"revision":42,"length":N,"crc32":C}
//! <N bytes: the SnapshotSpec as compact JSON>
//! ```
//!
//! `crc32` is the CRC-32 (IEEE) of the revision (u64 little-endian) followed
//! by the N body bytes, so neither can change unnoticed; the file ends with a
//! newline after the body.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::SnapshotSpec;

const FORMAT: &str = "rolecall-snapshot";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    revision: u64,
    length: u64,
    crc32: u32,
}

fn checksum(revision: u64, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&revision.to_le_bytes());
    h.update(body);
    h.finalize()
}

pub(crate) fn encode(revision: u64, spec: &SnapshotSpec) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_vec(spec)?;
    let header = Header {
        format: FORMAT.to_string(),
        version: VERSION,
        revision,
        length: body.len() as u64,
        crc32: checksum(revision, &body),
    };
    let mut out = serde_json::to_vec(&header)?;
    out.push(b'\n');
    out.extend_from_slice(&body);
    out.push(b'\n');
    Ok(out)
}

/// Decodes a snapshot file, its model (a [`SnapshotSpec`]'s JSON) as `S`;
/// the error completes the sentence "FILE ...".
pub(crate) fn decode<S: DeserializeOwned>(bytes: &[u8]) -> Result<(u64, S), String> {
    let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
        return Err("has no header line (it is truncated or not a snapshot file)".into());
    };
    let header: Header = serde_json::from_slice(&bytes[..nl])
        .map_err(|e| format!("has an unreadable header ({e})"))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(format!(
            "is in format \"{}\" version {}, which this rolecall does not read ({FORMAT} version {VERSION})",
            header.format, header.version
        ));
    }
    let rest = &bytes[nl + 1..];
    let n = usize::try_from(header.length).unwrap_or(usize::MAX);
    if rest.len() < n {
        return Err(format!(
            "is truncated ({} of {} body bytes)",
            rest.len(),
            header.length
        ));
    }
    let body = &rest[..n];
    if checksum(header.revision, body) != header.crc32 {
        return Err("fails its checksum".into());
    }
    if &rest[n..] != b"\n" {
        return Err(format!(
            "has {} unexpected bytes after its body",
            rest.len() - n
        ));
    }
    // UTF-8 is checked once for the whole body rather than string by
    // string (a large model has millions); on invalid UTF-8 the slice
    // reader gives the error, with its position.
    let parsed = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    let spec = parsed.map_err(|e| {
        format!("passes its checksum but cannot be decoded ({e}); it was written by an incompatible rolecall")
    })?;
    Ok((header.revision, spec))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::spec::WorkspaceSpec;

    fn spec() -> SnapshotSpec {
        SnapshotSpec {
            workspaces: vec![WorkspaceSpec {
                id: "w".into(),
                features: Some(vec![]),
                labels: vec!["a".into()],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(42, &spec()).unwrap();
        assert_eq!(decode::<SnapshotSpec>(&bytes).unwrap(), (42, spec()));
    }

    #[test]
    fn every_single_bit_flip_and_truncation_is_caught() {
        let bytes = encode(42, &spec()).unwrap();
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                if let Ok((rev, s)) = decode::<SnapshotSpec>(&b) {
                    // A flip in the header's JSON may still parse to the same
                    // header (e.g. whitespace); it must then decode the same.
                    assert_eq!((rev, s), (42, spec()), "flip at byte {i} went unnoticed");
                }
            }
        }
        for cut in 0..bytes.len() {
            assert!(
                decode::<SnapshotSpec>(&bytes[..cut]).is_err(),
                "cut at {cut} went unnoticed"
            );
        }
    }
}
