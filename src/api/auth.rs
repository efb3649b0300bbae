//! Admin authentication (SPEC 5): every `rolecall.v1.Admin` call carries
//! `authorization: Bearer <token>`, compared in constant time with the token
//! read from `--admin-token-file`; anything else is UNAUTHENTICATED. Health
//! and reflection on the admin listener need no token (probes use them).
//!
//! The token is never logged, echoed in an error, or shown by `Debug`.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};
use tracing::{info, warn};

use super::status::ApiError;

/// The admin bearer token.
#[derive(Clone)]
pub struct BearerToken(Arc<[u8]>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Why a token file cannot be used. Never includes the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the admin token file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin token file {} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("the admin token file {} is readable by every user of the machine (mode {mode:03o}): refusing to start; restrict it with `chmod 600 {}` (or 640 for a trusted group)", path.display(), path.display())]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error("the admin token in {} has a space, a control character or a non-ASCII character (only one trailing newline is removed); a token must be printable ASCII to travel in a header", path.display())]
    Unprintable { path: PathBuf },
}

impl BearerToken {
    /// Reads the token from a file; one trailing newline (`\n` or `\r\n`)
    /// is removed, anything else must be printable ASCII.
    ///
    /// The file must not be readable by others (mode & 0o004): such a file
    /// is refused, naming it and `chmod 600`. A group-readable one is
    /// accepted with a warning (Kubernetes mounts the Secret 0440 for the
    /// pod's `fsGroup`, which is fine when that group is the pod's own).
    pub fn from_file(path: &Path) -> Result<BearerToken, TokenError> {
        let read_error = |source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        };
        // The mode of the file itself: a Kubernetes Secret is a symlink.
        let mode = std::fs::metadata(path)
            .map_err(read_error)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o004 != 0 {
            return Err(TokenError::ReadableByOthers {
                path: path.to_path_buf(),
                mode,
            });
        }
        if mode & 0o040 != 0 {
            warn!(
                file = %path.display(),
                mode = format!("{mode:03o}"),
                "the admin token file is readable by its group: make sure only this service's \
                 user is in it, or `chmod 600` the file"
            );
        }
        let bytes = std::fs::read(path).map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let token = bytes
            .strip_suffix(b"\n")
            .map(|t| t.strip_suffix(b"\r").unwrap_or(t))
            .unwrap_or(&bytes);
        BearerToken::new(token).map_err(|e| match e {
            TokenShape::Empty => TokenError::Empty {
                path: path.to_path_buf(),
            },
            TokenShape::Unprintable => TokenError::Unprintable {
                path: path.to_path_buf(),
            },
        })
    }

    /// A token from its bytes (printable ASCII, not empty).
    pub fn new(token: &[u8]) -> Result<BearerToken, TokenShape> {
        if token.is_empty() {
            return Err(TokenShape::Empty);
        }
        if !token.iter().all(|b| b.is_ascii_graphic()) {
            return Err(TokenShape::Unprintable);
        }
        Ok(BearerToken(token.into()))
    }

    /// Whether `presented` is the token, in time that depends only on the
    /// token's length, never on where the two first differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(&self.0, presented)
    }
}

/// What is wrong with a token's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenShape {
    Empty,
    Unprintable,
}

/// Compares every byte of `expected` whatever the input, so the time taken
/// tells nothing about how much of a guess was right.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != presented.len());
    for (i, &e) in expected.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(!e);
        diff |= e ^ p;
    }
    std::hint::black_box(diff) == 0
}

/// The interceptor in front of every Admin RPC.
///
/// With a token, every call must present it. Without one (allowed only when
/// the admin listener verifies TLS client certificates) the TLS handshake
/// has already authenticated the caller and every call passes.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    token: Option<BearerToken>,
}

impl AdminAuth {
    pub fn token(token: BearerToken) -> AdminAuth {
        AdminAuth { token: Some(token) }
    }

    /// No bearer token: only for a listener that requires client
    /// certificates.
    pub fn client_certificates_only() -> AdminAuth {
        AdminAuth { token: None }
    }

    fn check(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let Some(value) = metadata.get("authorization") else {
            return Err(ApiError::Unauthenticated(
                "missing: send the metadata \"authorization: Bearer <token>\"",
            ));
        };
        let value = value.as_bytes();
        let scheme = b"bearer ";
        let presented = match value.get(..scheme.len()) {
            Some(s) if s.eq_ignore_ascii_case(scheme) => &value[scheme.len()..],
            _ => {
                return Err(ApiError::Unauthenticated(
                    "not a bearer token: send \"authorization: Bearer <token>\"",
                ))
            }
        };
        if token.matches(presented.trim_ascii()) {
            Ok(())
        } else {
            Err(ApiError::Unauthenticated("the bearer token is not valid"))
        }
    }
}

impl Interceptor for AdminAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match self.check(request.metadata()) {
            Ok(()) => Ok(request),
            Err(e) => {
                info!(
                    peer = ?request.remote_addr(),
                    reason = %e,
                    "refused an Admin call: not authenticated"
                );
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tonic::metadata::{MetadataMap, MetadataValue};

    fn with(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", MetadataValue::try_from(value).unwrap());
        m
    }

    #[test]
    fn only_the_exact_token_passes() {
        let auth = AdminAuth::token(BearerToken::new(b"s3cret").unwrap());
        assert!(auth.check(&with("Bearer s3cret")).is_ok());
        assert!(auth.check(&with("bearer s3cret")).is_ok());
        for bad in [
            "Bearer s3cre",
            "Bearer s3cretx",
            "Bearer S3cret",
            "Basic s3cret",
            "s3cret",
        ] {
            let e = auth.check(&with(bad)).unwrap_err();
            assert_eq!(Status::from(e.clone()).code(), tonic::Code::Unauthenticated);
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
        assert!(auth.check(&MetadataMap::new()).is_err());
        assert!(AdminAuth::client_certificates_only()
            .check(&MetadataMap::new())
            .is_ok());
    }

    #[test]
    fn a_token_file_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\r\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(BearerToken::from_file(&path).unwrap().matches(b"abc"));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            BearerToken::from_file(&path),
            Err(TokenError::Empty { .. })
        ));
        std::fs::write(&path, "a b\n").unwrap();
        let e = BearerToken::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("printable") && !e.contains("a b"), "{e}");
        assert_eq!(
            format!("{:?}", BearerToken::new(b"xyz").unwrap()),
            "BearerToken(<redacted>)"
        );
    }

    #[test]
    fn comparison_is_length_and_content_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b""));
    }
}
