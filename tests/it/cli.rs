//! The `rolecall` binary's own answers, as an operator sees them: what
//! `validate` prints for files with nothing in them, and boolean
//! environment variables written the usual ways.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn rolecall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rolecall"))
}

#[test]
fn validate_refuses_an_empty_file_and_names_a_snapshot_of_no_workspace() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("empty.yaml");
    let none = dir.path().join("none.yaml");
    std::fs::write(&empty, "# nothing yet\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&none, "workspaces: []\n").unwrap_or_else(|e| panic!("{e}"));
    let run = |path: &std::path::Path| {
        let out = rolecall()
            .arg("validate")
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, said) = run(&empty);
    assert!(!ok && said.contains("the file is empty"), "{said}");
    let (ok, said) = run(&none);
    assert!(
        ok && said.contains("valid, but it holds no workspace"),
        "{said}"
    );
}

#[test]
fn rolecall_no_demo_takes_1_as_true() {
    let mut child = rolecall()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ROLECALL_NO_DEMO", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // tracing writes the log to standard output.
    let Some(stdout) = child.stdout.take() else {
        panic!("no stdout")
    };
    // The first lines say whether a model was loaded; stop at "listening".
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let done = line.contains("listening");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = seen.join("\n");
    assert!(log.contains("no model loaded"), "{log}");
    assert!(!log.contains("model loaded revision"), "{log}");
}
