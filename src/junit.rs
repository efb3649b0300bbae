//! `rolecall test --junit FILE`: the scenario results as a JUnit XML
//! report, the format CI systems (GitLab, Jenkins, GitHub's test
//! reporters) read to show which case of a policy suite failed.

use std::fmt::Write as _;

use crate::scenario::CaseResult;

/// One scenario's results, or the error that kept it from running (a
/// malformed document, an unreadable file).
#[derive(Debug, Clone)]
pub struct Suite {
    /// The scenario file.
    pub file: String,
    /// The scenario's name; empty for a file-level error.
    pub name: String,
    pub outcome: Result<Vec<CaseResult>, String>,
}

impl Suite {
    /// Its cases; a scenario that could not run counts as one.
    pub fn tests(&self) -> usize {
        self.outcome.as_ref().map_or(1, Vec::len)
    }

    pub fn failures(&self) -> usize {
        self.outcome.as_ref().map_or(0, |cases| {
            cases.iter().filter(|c| c.failure.is_some()).count()
        })
    }

    pub fn errors(&self) -> usize {
        usize::from(self.outcome.is_err())
    }
}

/// The report: a `testsuite` per scenario, a `testcase` per case, a
/// `failure` for a case that failed and an `error` for a scenario that
/// could not run.
pub fn report(suites: &[Suite]) -> String {
    let sum = |f: fn(&Suite) -> usize| suites.iter().map(f).sum::<usize>();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "<testsuites name=\"rolecall test\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
        sum(Suite::tests),
        sum(Suite::failures),
        sum(Suite::errors)
    );
    for s in suites {
        let title = if s.name.is_empty() {
            s.file.clone()
        } else {
            format!("{}: {}", s.file, s.name)
        };
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
            escape(&title),
            s.tests(),
            s.failures(),
            s.errors()
        );
        match &s.outcome {
            Ok(cases) => {
                for c in cases {
                    case(&mut out, &s.file, &c.label, "failure", c.failure.as_deref());
                }
            }
            Err(e) => case(&mut out, &s.file, "scenario is readable", "error", Some(e)),
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn case(out: &mut String, file: &str, label: &str, kind: &str, problem: Option<&str>) {
    let _ = write!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\"",
        escape(file),
        escape(label)
    );
    match problem {
        None => out.push_str("/>\n"),
        Some(p) => {
            let first = p.lines().next().unwrap_or_default();
            let _ = writeln!(
                out,
                ">\n      <{kind} message=\"{}\">{}</{kind}>\n    </testcase>",
                escape(first),
                escape(p)
            );
        }
    }
}

/// Text fit for XML 1.0 content and attributes: the markup characters as
/// entities, and the control characters XML 1.0 cannot hold at all
/// replaced by U+FFFD (tab, newline and carriage return are kept).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(label: &str, failure: Option<&str>) -> CaseResult {
        CaseResult {
            label: label.to_string(),
            failure: failure.map(str::to_string),
        }
    }

    #[test]
    fn markup_and_control_characters_are_escaped() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>\u{1}\nz"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\u{FFFD}&#10;z"
        );
    }

    #[test]
    fn counts_cases_failures_and_errors_per_suite_and_in_all() {
        let suites = [
            Suite {
                file: "a.yaml".into(),
                name: "one".into(),
                outcome: Ok(vec![
                    case("check w u read mini:m -> allow", None),
                    case(
                        "check w u update mini:m -> deny",
                        Some("got allow\nby rule granted"),
                    ),
                ]),
            },
            Suite {
                file: "a.yaml".into(),
                name: String::new(),
                outcome: Err("document 2: unknown field `alowed`".into()),
            },
        ];
        let xml = report(&suites);
        assert!(
            xml.contains(
                "<testsuites name=\"rolecall test\" tests=\"3\" failures=\"1\" errors=\"1\">"
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<testsuite name=\"a.yaml: one\" tests=\"2\" failures=\"1\" errors=\"0\">"
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<testcase classname=\"a.yaml\" name=\"check w u read mini:m -&gt; allow\"/>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"got allow\">got allow&#10;by rule granted</failure>"),
            "{xml}"
        );
        assert!(
            xml.contains("<error message=\"document 2: unknown field `alowed`\">"),
            "{xml}"
        );
    }
}
