//! Opaque page tokens for ListVisible and ListSubjects.
//!
//! A token is base64url (no padding) of a small versioned binary record:
//!
//! ```text
//! byte 0      format version (1)
//! bytes 1..9  revision of the first page, u64 big-endian: later pages are
//!             answered at it, so a listing is one consistent view
//! bytes 9..17 fingerprint of the request parameters, u64 big-endian: a
//!             token reused with other parameters is INVALID_ARGUMENT
//! bytes 17..  the cursor: the last id returned, UTF-8
//! ```
//!
//! Tokens are not signed: they only name a position in a listing the
//! caller may read anyway, and the fingerprint only catches mistakes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const VERSION: u8 = 1;
const HEADER: usize = 17;
/// Longer than any real token (ids are at most 256 bytes).
const MAX_TOKEN_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub revision: u64,
    pub fingerprint: u64,
    /// Resume strictly after this id.
    pub after: String,
}

/// Why a page token cannot be used; always the caller's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    #[error("page_token: not a token this sidecar issued ({0})")]
    Garbled(&'static str),
    #[error("page_token: issued for a different request; send the same parameters as for the first page")]
    OtherRequest,
}

impl PageToken {
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(HEADER + self.after.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.revision.to_be_bytes());
        bytes.extend_from_slice(&self.fingerprint.to_be_bytes());
        bytes.extend_from_slice(self.after.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a token and checks it was issued for a request with this
    /// fingerprint.
    pub fn decode(token: &str, fingerprint: u64) -> Result<PageToken, PageTokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(PageTokenError::Garbled("too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| PageTokenError::Garbled("not base64url"))?;
        if bytes.len() <= HEADER {
            return Err(PageTokenError::Garbled("too short"));
        }
        if bytes[0] != VERSION {
            return Err(PageTokenError::Garbled("unknown version"));
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(w)
        };
        let (revision, fp) = (word(1), word(9));
        let after = std::str::from_utf8(&bytes[HEADER..])
            .map_err(|_| PageTokenError::Garbled("cursor is not UTF-8"))?;
        if fp != fingerprint {
            return Err(PageTokenError::OtherRequest);
        }
        Ok(PageToken {
            revision,
            fingerprint: fp,
            after: after.to_string(),
        })
    }
}

/// A stable 64-bit FNV-1a hash of the request parameters, each
/// length-prefixed so that `("ab", "c")` and `("a", "bc")` differ. Stable
/// across processes and versions, unlike `std`'s hasher.
pub fn fingerprint(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for p in parts {
        eat(&(p.len() as u64).to_le_bytes());
        eat(p.as_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips() {
        let fp = fingerprint(&["list_visible", "w", "u", "record", "read", ""]);
        let t = PageToken {
            revision: 7,
            fingerprint: fp,
            after: "r-rose-2".to_string(),
        };
        assert_eq!(PageToken::decode(&t.encode(), fp), Ok(t));
    }

    #[test]
    fn a_token_for_other_parameters_is_refused() {
        let fp = fingerprint(&["a", "bc"]);
        assert_ne!(fp, fingerprint(&["ab", "c"]));
        let t = PageToken {
            revision: 1,
            fingerprint: fp,
            after: "x".to_string(),
        };
        assert_eq!(
            PageToken::decode(&t.encode(), fingerprint(&["ab", "c"])),
            Err(PageTokenError::OtherRequest)
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "!!!", "AQ", &"A".repeat(2000)] {
            assert!(matches!(
                PageToken::decode(bad, 0),
                Err(PageTokenError::Garbled(_))
            ));
        }
    }
}
