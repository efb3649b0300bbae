//! Log records: the framing of one accepted update in a log segment.
//!
//! ```text
//! offset  size  field
//!      0     4  body length N, u32 little-endian (8 <= N <= MAX_BODY)
//!      4     4  CRC-32 of the 4 length bytes, u32 LE
//!      8     4  CRC-32 of the N body bytes, u32 LE
//!     12     8  body: the revision, u64 LE
//!     20   N-8  body: the update, serde_json of `model::delta::Update`
//! ```
//!
//! The length has its own checksum so that a damaged length is recognised
//! as damage, never trusted to skip over (or swallow) good records.
//! CRC-32 is the IEEE polynomial (`crc32fast`).

use std::fmt;
use std::io::{self, Write};

use crate::model::delta::Update;

/// Bytes before the body.
pub(crate) const HEADER_LEN: usize = 12;
/// The revision is the first 8 bytes of every body.
const MIN_BODY: usize = 8;
/// The buffer a record is written through.
const WRITE_BUFFER: usize = 1 << 20;
/// The largest body a record may carry (1 GiB): a snapshot update of a very
/// large model still fits; anything bigger is a damaged length.
pub(crate) const MAX_BODY: usize = 1 << 30;

/// Writes one record to `out` and returns its length. The update is
/// serialized twice: once to learn the body's length and checksum, which
/// come first, then into `out` through a buffer of at most 1 MiB. So no
/// record is ever held in memory whole: a snapshot update of a million
/// records is about 83 MB of JSON, which in a buffer growing by doubling
/// cost up to twice that at once. On an error, part of the record may have
/// been written.
pub(crate) fn write(out: impl Write, revision: u64, update: &Update) -> io::Result<usize> {
    let revision_bytes = revision.to_le_bytes();
    let mut sizing = Digest::new(io::sink());
    sizing.write_all(&revision_bytes)?;
    serde_json::to_writer(&mut sizing, update).map_err(io::Error::other)?;
    let n = sizing.len;
    if n > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("update for revision {revision} is {n} bytes encoded, over the {MAX_BODY}-byte record limit"),
        ));
    }
    // One write for a small record, one per MiB for a large one.
    let mut out = io::BufWriter::with_capacity((HEADER_LEN + n).min(WRITE_BUFFER), out);
    let len = (n as u32).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&crc32fast::hash(&len).to_le_bytes())?;
    out.write_all(&sizing.crc.clone().finalize().to_le_bytes())?;
    let mut body = Digest::new(&mut out);
    body.write_all(&revision_bytes)?;
    serde_json::to_writer(&mut body, update).map_err(io::Error::other)?;
    if body.len != n || body.crc.finalize() != sizing.crc.finalize() {
        // Never a record whose header does not describe its body.
        return Err(io::Error::other(format!(
            "update for revision {revision} did not encode the same twice"
        )));
    }
    out.flush()?;
    Ok(HEADER_LEN + n)
}

/// Encodes one record into memory (for tests and small records).
#[cfg(test)]
pub(crate) fn encode(revision: u64, update: &Update) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    write(&mut out, revision, update)?;
    Ok(out)
}

/// A writer that counts and checksums what it passes on to `inner`.
struct Digest<W> {
    inner: W,
    len: usize,
    crc: crc32fast::Hasher,
}

impl<W: Write> Digest<W> {
    fn new(inner: W) -> Self {
        Digest {
            inner,
            len: 0,
            crc: crc32fast::Hasher::new(),
        }
    }
}

impl<W: Write> Write for Digest<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why the bytes at some offset are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Fewer than [`HEADER_LEN`] bytes left.
    ShortHeader { have: usize },
    /// The length fails its checksum, or is out of range.
    Length,
    /// The body runs past the end of the file.
    ShortBody { need: usize, have: usize },
    /// The body fails its checksum.
    BodyChecksum,
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bad::ShortHeader { have } => {
                write!(f, "short record header ({have} of {HEADER_LEN} bytes)")
            }
            Bad::Length => f.write_str("record length fails its checksum"),
            Bad::ShortBody { need, have } => {
                write!(f, "short record ({have} of {need} body bytes)")
            }
            Bad::BodyChecksum => f.write_str("record fails its checksum"),
        }
    }
}

/// A well-framed record: its revision, the update's JSON, and where the next
/// record starts.
pub(crate) struct Framed<'a> {
    pub revision: u64,
    pub json: &'a [u8],
    pub end: usize,
}

/// Reads the record at `at`.
pub(crate) fn parse_at(buf: &[u8], at: usize) -> Result<Framed<'_>, Bad> {
    let rest = buf.get(at..).unwrap_or_default();
    if rest.len() < HEADER_LEN {
        return Err(Bad::ShortHeader { have: rest.len() });
    }
    let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
    let n = word(0) as usize;
    if crc32fast::hash(&rest[0..4]) != word(4) || !(MIN_BODY..=MAX_BODY).contains(&n) {
        return Err(Bad::Length);
    }
    let have = rest.len() - HEADER_LEN;
    if have < n {
        return Err(Bad::ShortBody { need: n, have });
    }
    let body = &rest[HEADER_LEN..HEADER_LEN + n];
    if crc32fast::hash(body) != word(8) {
        return Err(Bad::BodyChecksum);
    }
    let mut rev = [0u8; 8];
    rev.copy_from_slice(&body[..8]);
    Ok(Framed {
        revision: u64::from_le_bytes(rev),
        json: &body[8..],
        end: at + HEADER_LEN + n,
    })
}

/// A segment read up to its first bad record.
pub(crate) struct Scan<'a> {
    /// `(offset, record)` of every good record before the first bad one.
    pub records: Vec<(usize, Framed<'a>)>,
    /// The first bad record's offset and what is wrong with it.
    pub bad: Option<(usize, Bad)>,
}

pub(crate) fn scan(buf: &[u8]) -> Scan<'_> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        match parse_at(buf, at) {
            Ok(r) => {
                let end = r.end;
                records.push((at, r));
                at = end;
            }
            Err(b) => {
                return Scan {
                    records,
                    bad: Some((at, b)),
                }
            }
        }
    }
    Scan { records, bad: None }
}

/// The offset of the first whole, valid record that starts after `from`,
/// if any. Used to tell a torn tail (nothing valid follows the damage) from
/// damage inside the log (good records follow it). Two checksums must match
/// by chance for a false hit.
pub(crate) fn next_valid_after(buf: &[u8], from: usize) -> Option<usize> {
    let last = buf.len().checked_sub(HEADER_LEN + MIN_BODY)?;
    (from + 1..=last).find(|&o| parse_at(buf, o).is_ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::delta::{Delta, UpdateBody, UpdateSource};

    fn update(i: u64) -> Update {
        Update {
            request_id: format!("r{i}"),
            source: UpdateSource::Admin,
            expected_revision: None,
            body: UpdateBody::Delta(Delta {
                workspace: "w".into(),
                changes: vec![],
            }),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = encode(7, &update(7)).unwrap();
        buf.extend(encode(8, &update(8)).unwrap());
        let s = scan(&buf);
        assert!(s.bad.is_none());
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.records[1].1.revision, 8);
        let u: Update = serde_json::from_slice(s.records[1].1.json).unwrap();
        assert_eq!(u, update(8));
    }

    /// Takes at most `chunk` bytes a call, and fails once it holds
    /// `fail_after`.
    struct Trickle {
        got: Vec<u8>,
        chunk: usize,
        fail_after: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.fail_after.saturating_sub(self.got.len());
            if room == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.chunk).min(room);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_written_in_short_writes_is_the_record() {
        let mut out = Trickle {
            got: Vec::new(),
            chunk: 7,
            fail_after: usize::MAX,
        };
        let len = write(&mut out, 9, &update(9)).unwrap();
        assert_eq!(out.got, encode(9, &update(9)).unwrap());
        assert_eq!(len, out.got.len());
        let s = scan(&out.got);
        assert_eq!((s.records.len(), s.bad), (1, None));
    }

    #[test]
    fn a_failed_write_is_an_error() {
        let whole = encode(9, &update(9)).unwrap().len();
        for fail_after in [0, 5, HEADER_LEN, whole - 1] {
            let mut out = Trickle {
                got: Vec::new(),
                chunk: 3,
                fail_after,
            };
            let e = write(&mut out, 9, &update(9)).unwrap_err();
            assert_eq!(e.to_string(), "disk full", "after {fail_after}");
        }
    }

    #[test]
    fn zero_filled_tail_is_not_a_record() {
        let mut buf = encode(1, &update(1)).unwrap();
        let good = buf.len();
        buf.extend([0u8; 64]);
        let s = scan(&buf);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.bad.map(|b| b.0), Some(good));
        assert_eq!(next_valid_after(&buf, good), None);
    }

    #[test]
    fn damaged_length_is_found_and_resynced() {
        let mut buf = encode(1, &update(1)).unwrap();
        let second = buf.len();
        buf.extend(encode(2, &update(2)).unwrap());
        buf[0] ^= 0x40;
        let s = scan(&buf);
        assert_eq!(s.bad.map(|b| b.1), Some(Bad::Length));
        assert_eq!(next_valid_after(&buf, 0), Some(second));
    }
}
