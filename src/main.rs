//! The `rolecall` command: serve, validate, test, gen.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rolecall",
    version,
    about = "An authorization sidecar: role-and-label access checks over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a snapshot file and print every problem with its place.
    Validate {
        /// Snapshot files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run scenario files and print pass/fail per case.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print only failures and the summary.
        #[arg(short, long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::Test { files, quiet } => test(&files, quiet),
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        let result = rolecall::model::parse::read_snapshot_file(f)
            .and_then(|spec| rolecall::engine::Snapshot::from_spec(&spec));
        match result {
            Ok(snap) => {
                for w in snap.workspaces() {
                    println!(
                        "{}: workspace {}: valid ({} users, {} groups, {} roles, {} resources, {} seats in use)",
                        f.display(),
                        w.model.id,
                        w.model.users.len(),
                        w.model.groups.len(),
                        w.model.roles.len(),
                        w.model.spec.resources.len(),
                        w.seats_in_use()
                    );
                }
            }
            Err(e) => {
                ok = false;
                println!("{}: invalid: {e}", f.display());
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn test(files: &[PathBuf], quiet: bool) -> ExitCode {
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in files {
        let scenarios = match rolecall::scenario::read_file(f) {
            Ok(s) => s,
            Err(e) => {
                println!("ERROR {e}");
                failed += 1;
                continue;
            }
        };
        for s in &scenarios {
            println!("{}: {}", f.display(), s.name);
            for r in rolecall::scenario::run(s) {
                match &r.failure {
                    None => {
                        passed += 1;
                        if !quiet {
                            println!("  PASS {}", r.label);
                        }
                    }
                    Some(why) => {
                        failed += 1;
                        println!("  FAIL {}: {why}", r.label);
                    }
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
