//! rolecall: an authorization sidecar.
//!
//! # Layout
//!
//! - [`model`]: the snapshot file format, the default schema, the built-in
//!   role catalogs, validation of every invariant (SPEC 1.3), deltas and
//!   the directory rule, and lint findings.
//! - [`engine`]: pure decision functions over an indexed, immutable
//!   snapshot: check with explanations, list_visible, list_subjects, seats.
//! - [`scenario`]: scenario files (a snapshot plus expected decisions) and
//!   their runner, shared by `rolecall test` and the test suite.
//! - [`gen`]: deterministic synthetic snapshots for benchmarks.
//! - [`console`]: the CLI reports' standard output, which a closed pipe
//!   does not turn into a panic.
//! - [`pb`]: the generated gRPC types; only [`api`] and [`admin_convert`]
//!   (the protobuf edges) use them.
//! - [`durable`]: the state directory: a checksummed, fsynced log of
//!   accepted updates plus compacted snapshots, recovered on start.
//! - [`admin_convert`]: Admin API messages to and from the domain update
//!   and snapshot types.
//! - [`store`]: the current snapshot behind one `ArcSwap`, its revision,
//!   retained revisions, and (in `store::apply`) the single write path:
//!   validate, log durably, publish.
//! - [`api`]: the tonic services; the one place errors become `tonic::Status`.
//! - [`server`]: listeners, health, reflection, graceful shutdown, and the
//!   layer that turns a panicking call into INTERNAL for that call only.
//! - [`metrics`]: Prometheus metrics on `--metrics-listen`: per-RPC
//!   decisions and latency, the revision, model sizes, Admin updates.

pub mod admin_convert;
pub mod api;
pub mod console;
pub mod durable;
pub mod engine;
pub mod gen;
pub mod junit;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod pb;
pub mod scenario;
pub mod server;
pub mod store;
