//! The access model: the snapshot file format, the default schema and the
//! built-in catalogs, and validation into resolved, immutable workspaces.

pub mod catalog;
pub mod delta;
pub mod id_columns;
pub mod id_table;
pub mod lint;
pub mod map_only;
pub mod names;
pub mod overlay;
pub mod parse;
pub mod problem;
pub mod schema;
pub mod shared_bitmap;
pub mod spec;
pub mod spec_head;
pub mod validate;
pub mod workspace;

pub use problem::{InvalidSnapshot, Problem, Rule};
pub use spec::SnapshotSpec;
pub use validate::{validate_snapshot, validate_workspace};
pub use workspace::Workspace;
