//! Reading snapshot files: YAML or JSON (JSON is read as JSON so its errors
//! carry JSON positions), unknown fields rejected, errors with line and column.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::problem::{InvalidSnapshot, Problem, Rule};
use super::spec::SnapshotSpec;

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

/// Reads a snapshot file (not yet validated).
pub fn read_snapshot_file(path: &Path) -> Result<SnapshotSpec, InvalidSnapshot> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| InvalidSnapshot {
        problems: vec![Problem::new(
            Rule::Syntax,
            origin.clone(),
            format!("cannot read file: {e}"),
        )],
    })?;
    from_text(&text, &origin)
}
