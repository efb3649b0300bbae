//! Reading snapshot files: YAML or JSON (JSON is read as JSON so its errors
//! carry JSON positions; flow-style YAML is read as YAML), unknown fields
//! rejected, errors with line and column.

mod shape;
mod stored;

use std::path::Path;

use serde::de::DeserializeOwned;

use super::map_only::MapOnly;
use super::problem::{InvalidSnapshot, Problem, Rule};
use super::spec::SnapshotSpec;

pub(crate) use stored::ResourceList;
pub use stored::StoredSnapshot;

/// Parses YAML or JSON text into `T`, naming the line and column of an error.
///
/// A `.json` file is read as JSON. Other text that opens with `{` or `[` is
/// read as JSON first too, so JSON's errors carry JSON's positions; but YAML
/// written in flow style opens the same way, so when the JSON reader finds
/// a syntax error such text is read again as YAML, and of two failures the
/// one found further into the text is reported: that reader understood
/// more of it.
pub fn from_text<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, InvalidSnapshot> {
    // YAML reads a file of blanks and comments as an empty snapshot, which
    // is much more likely a mistake (a wrong or truncated file).
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(InvalidSnapshot {
            problems: vec![problem(
                origin.to_string(),
                "the file is empty: a snapshot has at least `workspaces:`".to_string(),
            )],
        });
    }
    let opening = text.trim_start();
    let looks_json = opening.starts_with('{') || opening.starts_with('[');
    let result = if origin.ends_with(".json") {
        from_json(text)
    } else if looks_json {
        from_json(text).or_else(|json| {
            if !json.retry_as_yaml {
                return Err(json);
            }
            from_yaml(text).map_err(|yaml| if yaml.place > json.place { yaml } else { json })
        })
    } else {
        from_yaml(text)
    };
    result.map_err(|e| InvalidSnapshot {
        problems: vec![e.problem(origin)],
    })
}

/// Reads a snapshot file's text, as [`from_text`] does; when that fails on
/// well-formed YAML or JSON, every element that does not fit the format is
/// a problem, not only the first (see [`shape`]).
pub fn snapshot_from_text(text: &str, origin: &str) -> Result<SnapshotSpec, InvalidSnapshot> {
    from_text(text, origin).map_err(|first: InvalidSnapshot| InvalidSnapshot {
        problems: with_misfits(first.problems, text, origin),
    })
}

/// `problems` (the typed reading's one) and each other misfit of `text`.
fn with_misfits(mut problems: Vec<Problem>, text: &str, origin: &str) -> Vec<Problem> {
    if text.len() > shape::MAX_SHAPE_CHECK_BYTES {
        return problems;
    }
    let opening = text.trim_start();
    let json = origin.ends_with(".json") || opening.starts_with('{') || opening.starts_with('[');
    let as_json = || {
        serde_json::from_str(text)
            .ok()
            .map(|t| (t, shape::Format::Json))
    };
    let as_yaml = || {
        serde_norway::from_str(text)
            .ok()
            .map(|t| (t, shape::Format::Yaml))
    };
    let read = if json {
        as_json().or_else(as_yaml)
    } else {
        as_yaml()
    };
    let Some((tree, format)) = read else {
        // Not well-formed: the typed reading may have stopped before the
        // syntax error, which is then a problem too.
        if let Err(not_a_tree) = from_text::<serde_norway::Value>(text, origin) {
            for p in not_a_tree.problems {
                if !problems.iter().any(|q| q.message == p.message) {
                    problems.push(p);
                }
            }
        }
        return problems;
    };
    // The typed reading's problem is listed first, with its line and
    // column; the same misfit found again is not listed twice. YAML's
    // reader names the element's path; JSON's does not, and its problem
    // takes the path of the first misfit that says the same (both go in
    // the file's order, so that is the one).
    let mut first_found = problems.is_empty();
    let mut others = Vec::new();
    for misfit in shape::misfits(tree, format) {
        let message = misfit.message();
        match problems.first_mut() {
            Some(p) if !first_found && is_within(&p.message, &misfit.path) => first_found = true,
            Some(p) if !first_found && (p.message == message || p.message == misfit.said) => {
                p.message = message;
                first_found = true;
            }
            _ => others.push(problem(origin.to_string(), message)),
        }
    }
    problems.append(&mut others);
    problems
}

/// Whether `message` is about the element at `path` or a field inside it;
/// not about an element of one of its lists, which is a misfit of its own.
fn is_within(message: &str, path: &str) -> bool {
    let Some(rest) = message.strip_prefix(path) else {
        return false;
    };
    let in_a_list = shape::LIST_NAMES.iter().any(|list| {
        rest.strip_prefix('.')
            .and_then(|r| r.strip_prefix(list))
            .is_some_and(|r| r.starts_with('['))
    });
    !path.is_empty() && rest.starts_with([':', '.', '[']) && !in_a_list
}

/// A parser's error and where it stopped (line and column, 1-based; `None`
/// when the parser does not say).
struct ParseError {
    place: Option<(usize, usize)>,
    message: String,
    /// Whether the text may be YAML that the JSON reader could not read.
    retry_as_yaml: bool,
}

impl ParseError {
    fn problem(self, origin: &str) -> Problem {
        let Some((line, column)) = self.place else {
            return problem(origin.to_string(), self.message);
        };
        // The parsers end their messages with the place, which the problem
        // already leads with.
        let suffix = format!(" at line {line} column {column}");
        let message = match self.message.strip_suffix(&suffix) {
            Some(m) => m.to_string(),
            None => self.message,
        };
        problem(format!("{origin}:{line}:{column}"), message)
    }
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    serde_json::from_str(text)
        .map(|m: MapOnly<T>| m.0)
        .map_err(|e| ParseError {
            place: Some((e.line(), e.column())),
            // Not a cut file (end of input) nor a wrong field: flow-style YAML
            // fails JSON's syntax.
            retry_as_yaml: e.is_syntax(),
            message: e.to_string(),
        })
}

fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    serde_norway::from_str(text)
        .map(|m: MapOnly<T>| m.0)
        .map_err(yaml_error)
}

fn yaml_error(e: serde_norway::Error) -> ParseError {
    ParseError {
        place: e.location().map(|l| (l.line(), l.column())),
        retry_as_yaml: false,
        message: e.to_string(),
    }
}

/// A YAML reader's error as a problem placed at `origin:line:column`.
pub fn yaml_problem(e: serde_norway::Error, origin: &str) -> Problem {
    yaml_error(e).problem(origin)
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
    let over = |size: &str| InvalidSnapshot {
        problems: vec![Problem::new(
            Rule::Limit,
            origin.clone(),
            format!(
                "the file is {size} bytes, over the limit of {MAX_SNAPSHOT_FILE_BYTES} bytes for \
                 a snapshot file"
            ),
        )],
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_SNAPSHOT_FILE_BYTES {
        return Err(over(&size.to_string()));
    }
    // A pipe or a device has no size to look at first.
    match read_text_at_most(path, MAX_SNAPSHOT_FILE_BYTES).map_err(unreadable)? {
        Some(text) => snapshot_from_text(&text, &origin),
        None => Err(over(&format!("more than {MAX_SNAPSHOT_FILE_BYTES}"))),
    }
}

/// Reads `path` as UTF-8 text of at most `max` bytes, or `None` when it
/// holds more. It reads at most `max + 1` bytes, so a pipe or a device
/// that never ends (`/dev/zero`) is refused instead of read until memory
/// runs out.
pub fn read_text_at_most(path: &Path, max: u64) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_string(&mut text)?;
    Ok((text.len() as u64 <= max).then_some(text))
}
