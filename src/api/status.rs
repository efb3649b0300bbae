//! Every error an Authz or Admin call can end with, and the one place it
//! becomes a `tonic::Status` (SPEC 5, "Errors"). A denial is never an error: unknown
//! subjects and resources are `allowed: false` answers.

use std::fmt;

use tonic::{Code, Status};

use super::page_token::PageTokenError;
use crate::engine::RequestError;
use crate::store::apply::WatchError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A required field is empty or absent.
    Missing {
        field: &'static str,
    },
    /// A field is present but malformed.
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The engine could not read the request (unknown type or action, a
    /// malformed parent); it names the field.
    Request(RequestError),
    UnknownWorkspace(String),
    Store(StoreError),
    PageToken(PageTokenError),
    /// The token's revision is no longer retained (or was never applied
    /// here): the listing must start again.
    StalePageToken(StoreError),
    BatchTooLarge {
        len: usize,
        max: usize,
    },
    /// An error in one check of a batch; the message names its index.
    InBatch {
        index: usize,
        error: Box<ApiError>,
    },
    /// An Admin call without a valid bearer token. The message never
    /// repeats what was sent.
    Unauthenticated(&'static str),
    /// An Apply request that was valid but could not be made durable, so it
    /// was not applied; the Apply stream ends with this.
    NotApplied {
        request_id: String,
        message: String,
    },
    /// A Watch stream that cannot start (too old) or go on (fell behind).
    Watch(WatchError),
    /// As many streams of this RPC are open as its flag allows.
    TooManyStreams {
        rpc: &'static str,
        max: usize,
        flag: &'static str,
    },
    /// As many exports (Export and ExportPieces) run as `--max-exports`
    /// allows.
    TooManyExports {
        max: usize,
    },
    /// A bug in rolecall kept it from answering; the message says what
    /// failed.
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> Code {
        match self {
            ApiError::Missing { .. }
            | ApiError::Invalid { .. }
            | ApiError::Request(_)
            | ApiError::PageToken(_) => Code::InvalidArgument,
            ApiError::UnknownWorkspace(_) => Code::NotFound,
            ApiError::Store(e) | ApiError::StalePageToken(e) => match e {
                StoreError::NoModel | StoreError::Closing => Code::Unavailable,
                StoreError::NotRetained { .. } | StoreError::NotYetApplied { .. } => {
                    Code::FailedPrecondition
                }
                StoreError::NotReached { .. } => Code::DeadlineExceeded,
                StoreError::RevisionNotAfter { .. } => Code::Internal,
            },
            ApiError::BatchTooLarge { .. }
            | ApiError::TooManyStreams { .. }
            | ApiError::TooManyExports { .. } => Code::ResourceExhausted,
            ApiError::InBatch { error, .. } => error.code(),
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::NotApplied { .. } => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
            ApiError::Watch(e) => match e {
                WatchError::NotRetained { .. } => Code::FailedPrecondition,
                WatchError::Lagged { .. } => Code::ResourceExhausted,
                WatchError::Closing => Code::Unavailable,
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Missing { field } => write!(f, "{field}: required"),
            ApiError::Invalid { field, message } => write!(f, "{field}: {message}"),
            ApiError::Request(e) => e.fmt(f),
            ApiError::UnknownWorkspace(w) => write!(f, "workspace: unknown workspace \"{w}\""),
            ApiError::Store(StoreError::NoModel) => {
                f.write_str("no model is loaded yet: the sidecar answers nothing until one is")
            }
            // Not the caller's doing: no field to name.
            ApiError::Store(e @ StoreError::Closing)
            | ApiError::StalePageToken(e @ StoreError::Closing) => e.fmt(f),
            ApiError::Store(e) => write!(f, "consistency: {e}"),
            ApiError::PageToken(e) => e.fmt(f),
            ApiError::StalePageToken(StoreError::NoModel) => {
                f.write_str("no model is loaded yet: the sidecar answers nothing until one is")
            }
            ApiError::StalePageToken(e) => {
                write!(f, "stale page token: {e}; list again from the first page")
            }
            ApiError::BatchTooLarge { len, max } => write!(
                f,
                "checks: {len} checks are over the limit of {max} per batch (--max-batch)"
            ),
            ApiError::InBatch { index, error } => match **error {
                // Field errors name the field inside the batch.
                ApiError::Missing { .. }
                | ApiError::Invalid { .. }
                | ApiError::Request(_)
                | ApiError::UnknownWorkspace(_) => write!(f, "checks[{index}].{error}"),
                _ => write!(f, "checks[{index}]: {error}"),
            },
            ApiError::Unauthenticated(why) => write!(f, "authorization: {why}"),
            ApiError::NotApplied {
                request_id,
                message,
            } => write!(f, "request \"{request_id}\": {message}"),
            ApiError::Watch(e @ WatchError::NotRetained { .. }) => {
                write!(f, "from_revision: {e}")
            }
            // Falling behind or a shutdown is not about the request's field.
            ApiError::Watch(e) => e.fmt(f),
            ApiError::TooManyStreams { rpc, max, flag } => write!(
                f,
                "{max} {rpc} streams are open, the most this sidecar allows ({flag}); close one \
                 or retry later"
            ),
            ApiError::TooManyExports { max } => write!(
                f,
                "{max} exports (Export and ExportPieces) are in progress, the most this sidecar \
                 allows (--max-exports); retry when one ends"
            ),
            ApiError::Internal(message) => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        ApiError::Request(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<PageTokenError> for ApiError {
    fn from(e: PageTokenError) -> Self {
        ApiError::PageToken(e)
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_code_and_names_its_field() {
        let cases = [
            (
                ApiError::Missing { field: "subject" },
                Code::InvalidArgument,
                "subject: required",
            ),
            (
                ApiError::Request(RequestError::UnknownType {
                    field: "resource.type",
                    type_: "boat".into(),
                }),
                Code::InvalidArgument,
                "resource.type",
            ),
            (
                ApiError::UnknownWorkspace("w".into()),
                Code::NotFound,
                "workspace",
            ),
            (
                ApiError::Store(StoreError::NoModel),
                Code::Unavailable,
                "no model",
            ),
            (
                ApiError::Store(StoreError::NotRetained {
                    wanted: 1,
                    latest: 9,
                    oldest: 5,
                }),
                Code::FailedPrecondition,
                "too old",
            ),
            (
                ApiError::StalePageToken(StoreError::NotRetained {
                    wanted: 1,
                    latest: 9,
                    oldest: 5,
                }),
                Code::FailedPrecondition,
                "stale page token",
            ),
            (
                ApiError::Store(StoreError::NotReached {
                    wanted: 9,
                    latest: 1,
                    waited_ms: 10,
                }),
                Code::DeadlineExceeded,
                "9",
            ),
            (
                ApiError::BatchTooLarge { len: 9, max: 2 },
                Code::ResourceExhausted,
                "checks",
            ),
            (
                ApiError::InBatch {
                    index: 3,
                    error: Box::new(ApiError::Missing { field: "action" }),
                },
                Code::InvalidArgument,
                "checks[3].action: required",
            ),
            (
                ApiError::Unauthenticated("missing bearer token"),
                Code::Unauthenticated,
                "authorization",
            ),
            (
                ApiError::NotApplied {
                    request_id: "r9".into(),
                    message: "the update was not applied: disk full".into(),
                },
                Code::Unavailable,
                "r9",
            ),
            (
                ApiError::Watch(WatchError::Lagged {
                    next: 2,
                    oldest: 9,
                    buffer: 8,
                }),
                Code::ResourceExhausted,
                "fell behind",
            ),
            (
                ApiError::Watch(WatchError::NotRetained { from: 2, oldest: 9 }),
                Code::FailedPrecondition,
                "no longer retained",
            ),
            (
                ApiError::Internal("workspace \"w\": cannot decode".into()),
                Code::Internal,
                "internal error: workspace \"w\"",
            ),
        ];
        for (e, code, text) in cases {
            let s = Status::from(e);
            assert_eq!(s.code(), code, "{}", s.message());
            assert!(s.message().contains(text), "{}", s.message());
        }

        // An error that is not about a field names none.
        for e in [
            ApiError::Store(StoreError::Closing),
            ApiError::StalePageToken(StoreError::Closing),
            ApiError::Watch(WatchError::Closing),
        ] {
            let s = Status::from(e);
            assert_eq!(s.code(), Code::Unavailable);
            assert_eq!(s.message(), "the sidecar is shutting down");
        }
        let lagged = Status::from(ApiError::Watch(WatchError::Lagged {
            next: 2,
            oldest: 9,
            buffer: 8,
        }));
        assert!(
            lagged.message().starts_with("the watcher fell behind"),
            "{}",
            lagged.message()
        );
    }
}
