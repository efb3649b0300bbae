//! Reading snapshot files: YAML or JSON (JSON is read as JSON so its errors
//! carry JSON positions), unknown fields rejected, errors with line and column.

mod stored;

use std::path::Path;

use serde::de::DeserializeOwned;

use super::problem::{InvalidSnapshot, Problem, Rule};
use super::spec::SnapshotSpec;

pub(crate) use stored::ResourceList;
pub use stored::StoredSnapshot;

/// Parses YAML or JSON text into `T`, naming the line and column of an error.
pub fn from_text<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, InvalidSnapshot> {
    let looks_json = text.trim_start().starts_with('{') || text.trim_start().starts_with('[');
    let result = if looks_json {
        serde_json::from_str(text).map_err(|e| {
            let place = format!("{origin}:{}:{}", e.line(), e.column());
            problem(place, e.to_string())
        })
    } else {
        serde_norway::from_str(text).map_err(|e| {
            let place = match e.location() {
                Some(l) => format!("{origin}:{}:{}", l.line(), l.column()),
                None => origin.to_string(),
            };
            problem(place, e.to_string())
        })
    };
    result.map_err(|p| InvalidSnapshot { problems: vec![p] })
}

fn problem(place: String, message: String) -> Problem {
    let rule = if message.contains("unknown field") {
        Rule::UnknownField
    } else {
        Rule::Syntax
    };
    Problem::new(rule, place, message)
}

/// The largest snapshot file [`read_snapshot_file`] reads (256 MiB). A
/// file is parsed whole in memory, and the parsed model takes several times
/// its size, so a larger one is refused before a byte of it is read.
pub const MAX_SNAPSHOT_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a snapshot file (not yet validated); one over
/// [`MAX_SNAPSHOT_FILE_BYTES`] is refused with rule `limit`.
pub fn read_snapshot_file(path: &Path) -> Result<SnapshotSpec, InvalidSnapshot> {
    let origin = path.display().to_string();
    let unreadable = |e: std::io::Error| InvalidSnapshot {
        problems: vec![Problem::new(
            Rule::Syntax,
            origin.clone(),
            format!("cannot read file: {e}"),
        )],
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_SNAPSHOT_FILE_BYTES {
        return Err(InvalidSnapshot {
            problems: vec![Problem::new(
                Rule::Limit,
                origin.clone(),
                format!(
                    "the file is {size} bytes, over the limit of {MAX_SNAPSHOT_FILE_BYTES} bytes \
                     for a snapshot file"
                ),
            )],
        });
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    from_text(&text, &origin)
}
