//! The tonic services. [`convert`] is the only place protobuf messages
//! become engine requests and engine answers become messages; [`status`] is
//! the only place errors become `tonic::Status`. The service impls in
//! [`authz`] glue the two to the store and the engine; [`admin`] serves the
//! control plane over the write path (`store::apply`), behind [`auth`].
//! Check's requests are read off the wire by [`check_wire`] (no allocation),
//! CheckBatch's by [`batch_wire`] (one buffer per batch), on the routes
//! [`check_route`] adds to the generated server. Every route's malformed
//! message is INVALID_ARGUMENT ([`codec`]).

pub mod admin;
pub mod apply_stream;
pub mod auth;
pub mod authz;
pub mod batch_answer;
pub mod batch_wire;
pub mod check_route;
pub mod check_wire;
pub mod codec;
pub mod convert;
pub mod export;
pub mod page_token;
pub mod snapshot_pieces;
pub mod status;

use std::time::Duration;

pub use admin::{AdminLimits, AdminService};
pub use auth::{AdminAuth, BearerToken};
pub use authz::AuthzService;
pub use status::ApiError;

/// Limits the Authz service enforces, set by `rolecall serve` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most checks in one `CheckBatch`; more is RESOURCE_EXHAUSTED.
    pub max_batch: usize,
    /// The page size used when a request gives 0.
    pub default_page_size: u32,
    /// The largest page. A larger `page_size` is clamped to it (AIP-158:
    /// "coerce to the maximum"), never an error: the answer still carries a
    /// `next_page_token` when more remain, so nothing is cut silently.
    pub max_page_size: u32,
    /// How long an `at_least` read waits when the call has no deadline (and
    /// the most it waits when the deadline is longer).
    pub max_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 1000,
            default_page_size: 100,
            max_page_size: 1000,
            max_wait: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The page size a request gets: 0 means the default, more than the
    /// maximum is clamped to it.
    pub fn page_size(&self, requested: u32) -> usize {
        let size = match requested {
            0 => self.default_page_size,
            n => n.min(self.max_page_size),
        };
        size.max(1) as usize
    }
}
