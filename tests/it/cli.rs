//! The `rolecall` binary's own answers, as an operator sees them: what
//! `validate` prints for files with nothing in them, what `serve` starts
//! from and how it logs, boolean environment variables written the usual
//! ways, `check`'s answers and exit codes, `gen`'s files, and reports
//! written to a pipe that closes early or a full disk.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn rolecall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rolecall"))
}

#[test]
fn validate_lists_every_misfit_of_a_file_at_once() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/files/typos.yaml");
    let (ok, said) = validate(std::path::Path::new(file));
    assert!(!ok, "{said}");
    assert!(said.contains("invalid: 3 problems"), "{said}");
    for path in [
        "typos.yaml:6:20: workspaces[0].users[0]",
        "workspaces[0].users[1]",
        "workspaces[0].resources[0]",
    ] {
        assert!(said.contains(path), "{path} in: {said}");
    }
}

/// `rolecall validate FILE`: whether it passed, and what it printed.
fn validate(path: &std::path::Path) -> (bool, String) {
    let out = rolecall()
        .arg("validate")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn validate_refuses_an_empty_file_and_names_a_snapshot_of_no_workspace() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("empty.yaml");
    let none = dir.path().join("none.yaml");
    std::fs::write(&empty, "# nothing yet\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&none, "workspaces: []\n").unwrap_or_else(|e| panic!("{e}"));
    let (ok, said) = validate(&empty);
    assert!(!ok && said.contains("the file is empty"), "{said}");
    let (ok, said) = validate(&none);
    assert!(
        ok && said.contains("valid, but it holds no workspace"),
        "{said}"
    );
}

/// The log lines `rolecall serve` writes up to "listening", which say
/// whether a model was loaded.
fn startup_log(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut child = rolecall()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("ROLECALL_DEMO")
        .env_remove("ROLECALL_SNAPSHOT")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // tracing writes the log to standard output.
    let Some(stdout) = child.stdout.take() else {
        panic!("no stdout")
    };
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
    seen
}

#[test]
fn serve_starts_with_no_model_unless_given_one_and_rolecall_demo_takes_1_as_true() {
    let log = startup_log(&[], &[]).join("\n");
    assert!(log.contains("no model loaded"), "{log}");
    assert!(!log.contains("model loaded revision"), "{log}");

    let log = startup_log(&[], &[("ROLECALL_DEMO", "1")]).join("\n");
    assert!(
        log.contains("model loaded revision=1") && log.contains("source=built-in demo"),
        "{log}"
    );
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let lines = startup_log(&["--demo", "--log-format", "json"], &[]);
    assert!(lines.len() >= 2, "{lines:?}");
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let loaded = events
        .iter()
        .find(|e| e["message"] == "model loaded")
        .unwrap_or_else(|| panic!("no \"model loaded\" event: {lines:?}"));
    assert_eq!(loaded["level"], "INFO");
    assert_eq!(loaded["revision"], 1);
    assert_eq!(loaded["source"], "built-in demo");
    assert!(loaded["timestamp"].is_string(), "{loaded}");
    // Each listener says where it listens and whether TLS is on.
    let listening = events
        .iter()
        .find(|e| e["message"] == "listening")
        .unwrap_or_else(|| panic!("no \"listening\" event: {lines:?}"));
    assert_eq!(listening["listener"], "authz");
    assert_eq!(listening["tls"], false);
}

/// `rolecall check` on the demo model: its exit code and what it prints.
fn check(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let demo = dir.path().join("demo.yaml");
    std::fs::write(&demo, rolecall::server::DEMO_SNAPSHOT).unwrap_or_else(|e| panic!("{e}"));
    let out = rolecall()
        .arg("check")
        .arg("--snapshot")
        .arg(&demo)
        .args(["--workspace", "sunrise-care"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

#[test]
fn check_decides_one_question_on_a_file_and_says_why() {
    let nurse = ["--subject", "u-nurse", "--action", "read"];
    let (code, said) = check(&[&nurse[..], &["--resource", "record:r-rose-1"]].concat());
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.starts_with("allow (granted): ")
            && said.contains("granted by role record_all_viewer at workspace")
            && said.contains("reach through mini:m-rose"),
        "{said}"
    );

    let (code, said) = check(&[&nurse[..], &["--resource", "record:r-oak-1"]].concat());
    assert_eq!(code, Some(1), "{said}");
    assert!(said.starts_with("deny (no_reach): "), "{said}");

    // A resource not created yet: its type, parent and labels.
    let new_record = [
        "--action",
        "create",
        "--resource",
        "record",
        "--parent",
        "mini:m-ivy",
        "--label",
        "site-a",
    ];
    let (code, said) = check(&[&["--subject", "u-editor"][..], &new_record].concat());
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = check(&[&["--subject", "u-nurse"][..], &new_record].concat());
    assert_eq!(
        (code, said.starts_with("deny (no_grant)")),
        (Some(1), true),
        "{said}"
    );
}

#[test]
fn check_exits_2_when_the_question_cannot_be_asked() {
    for (args, says) in [
        (
            &[
                "--subject",
                "u-nurse",
                "--action",
                "fly",
                "--resource",
                "record:r-rose-1",
            ][..],
            "has no action \"fly\"",
        ),
        (
            &[
                "--subject",
                "u-nurse",
                "--action",
                "read",
                "--resource",
                "record:r-1",
                "--parent",
                "mini:m-ivy",
            ],
            "give its type alone",
        ),
        (
            &[
                "--subject",
                "u-admin",
                "--action",
                "read",
                "--resource",
                "record:",
            ],
            "the id is empty",
        ),
    ] {
        let (code, said) = check(args);
        assert_eq!(code, Some(2), "{said}");
        assert!(said.contains(says), "{said}");
    }
}

#[test]
fn validate_names_what_a_valid_snapshot_holds_that_is_worth_a_look() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("lint.yaml");
    std::fs::write(
        &file,
        "workspaces:\n  - id: w\n    roles:\n      - { id: retired, name: Retired, grants: [\"mini:read\"], disabled: true }\n      - { id: spare, name: Spare, grants: [\"mini:read\"] }\n    users:\n      - { id: u-old, bindings: [ { role: retired } ] }\n      - { id: u-admin, bindings: [ { role: admin } ] }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = rolecall()
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&out.stdout);
    // Lint findings are not errors: the file is valid.
    assert!(out.status.success(), "{said}");
    let lint: Vec<&str> = said.lines().filter(|l| l.contains(": lint: ")).collect();
    assert_eq!(lint.len(), 2, "{said}");
    assert!(
        lint[0]
            .ends_with("user \"u-old\" holds only disabled roles (retired): they can do nothing"),
        "{said}"
    );
    assert!(
        lint[1].contains("role \"spare\" (Spare) is not bound"),
        "{said}"
    );
}

/// `rolecall validate FILE` and `rolecall test FILE`, both of which
/// succeed, with standard output sent to `stdout()`: their exit codes and
/// standard error.
fn report_to(stdout: impl Fn() -> Stdio) -> Vec<(Option<i32>, String)> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let demo = dir.path().join("demo.yaml");
    std::fs::write(&demo, rolecall::server::DEMO_SNAPSHOT).unwrap_or_else(|e| panic!("{e}"));
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/ranks.yaml");
    [
        vec!["validate".to_string(), demo.display().to_string()],
        vec!["test".to_string(), scenarios.to_string()],
    ]
    .into_iter()
    .map(|args| {
        let mut child = rolecall()
            .args(&args)
            .stdout(stdout())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        // A reader that is gone before the first line (as `| head -0`).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .collect()
}

#[test]
fn a_report_whose_reader_stops_early_keeps_its_exit_code() {
    for (code, stderr) in report_to(Stdio::piped) {
        assert_eq!(code, Some(0), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_report_that_cannot_be_written_fails_the_command() {
    let full = || {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap_or_else(|e| panic!("{e}"));
        Stdio::from(f)
    };
    for (code, stderr) in report_to(full) {
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains("cannot write to standard output") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

#[test]
fn gen_writes_a_valid_model_the_same_each_time_and_requests_check_agrees_with() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gen = |name: &str| {
        let (model, requests) = (
            dir.path().join(format!("{name}.json")),
            dir.path().join(format!("{name}.jsonl")),
        );
        let out = rolecall()
            .arg("gen")
            .args(["--users", "20", "--groups", "3", "--labels", "4"])
            .args(["--minis", "10", "--records", "100", "--requests", "40"])
            .arg("--out")
            .arg(&model)
            .arg("--requests-out")
            .arg(&requests)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{out:?}");
        let read = |p: &std::path::Path| std::fs::read(p).unwrap_or_else(|e| panic!("{e}"));
        (model.clone(), read(&model), read(&requests))
    };
    let (model, bytes, requests) = gen("a");
    let (_, again, requests_again) = gen("b");
    assert!(
        bytes == again && requests == requests_again,
        "the same seed and sizes"
    );

    let out = rolecall()
        .arg("validate")
        .arg(&model)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("valid (20 users, 3 groups"),
        "{said}"
    );

    // Each request's `allowed`, as `rolecall check` decides it.
    let requests = String::from_utf8_lossy(&requests);
    let lines: Vec<serde_json::Value> = requests
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 40);
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    let mut allowed = 0;
    for r in &lines {
        let code = rolecall()
            .arg("check")
            .arg("--snapshot")
            .arg(&model)
            .args(["--workspace", &field(r, "workspace")])
            .args(["--subject", &field(r, "subject")])
            .args(["--action", &field(r, "action")])
            .args(["--resource", &field(r, "resource")])
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
            .status
            .code();
        let want = r["allowed"].as_bool();
        assert_eq!(code, Some(if want == Some(true) { 0 } else { 1 }), "{r}");
        allowed += usize::from(want == Some(true));
    }
    assert!(
        allowed > 0 && allowed < lines.len(),
        "{allowed} of 40 allowed"
    );
}
