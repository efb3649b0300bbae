//! Runs every scenario file of `tests/scenarios/` through the engine, and
//! the shared scenario files of `../shared/scenarios/` when that directory
//! is there (it is skipped silently when absent).

use std::path::{Path, PathBuf};

use rolecall::scenario::{read_file, run};

/// The `*.yaml` files of a directory, sorted; none when it does not exist.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Runs every scenario of every file; returns (cases run, failures).
fn run_all(files: &[PathBuf]) -> (usize, Vec<String>) {
    let mut cases = 0;
    let mut failures = Vec::new();
    for f in files {
        let scenarios = match read_file(f) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: cannot read: {e}", f.display()));
                continue;
            }
        };
        if scenarios.is_empty() {
            failures.push(format!("{}: holds no scenario", f.display()));
        }
        for s in &scenarios {
            let results = run(s);
            if results.is_empty() {
                failures.push(format!("{} / {}: no cases", f.display(), s.name));
            }
            for r in results {
                cases += 1;
                if let Some(why) = r.failure {
                    failures.push(format!("{} / {} / {}: {why}", f.display(), s.name, r.label));
                }
            }
        }
    }
    (cases, failures)
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn project_scenarios_pass() {
    let files = yaml_files(&manifest_dir().join("tests").join("scenarios"));
    assert!(!files.is_empty(), "tests/scenarios holds no scenario file");
    let (cases, failures) = run_all(&files);
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // A floor, so that scenario files cannot silently lose their cases.
    assert!(cases >= 300, "only {cases} cases in tests/scenarios");
}

#[test]
fn shared_scenarios_pass() {
    let Some(root) = manifest_dir().parent().map(Path::to_path_buf) else {
        return;
    };
    let dir = root.join("shared").join("scenarios");
    if !dir.is_dir() {
        return;
    }
    let (cases, failures) = run_all(&yaml_files(&dir));
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
