//! The `rolecall` command: serve, validate, test, gen.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: every RPC allocates a few
/// small buffers (headers, messages, strings), and mimalloc's thread-local
/// free lists make each of them cheaper (about 12 % fewer instructions per
/// call; see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Serve the Authz gRPC API (with health and reflection) until SIGTERM.
    Serve(rolecall::server::ServeArgs),
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
    /// Write a synthetic snapshot of a given size, for benchmarks.
    Gen(rolecall::gen::GenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Validate { files } => validate(&files),
        Command::Test { files, quiet } => test(&files, quiet),
        Command::Gen(args) => match rolecall::gen::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rolecall gen: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs the server on a multi-threaded runtime; exits 0 after a drained
/// shutdown, 1 if it could not start (e.g. the bootstrap snapshot is invalid).
fn serve(args: rolecall::server::ServeArgs) -> ExitCode {
    rolecall::server::init_tracing(args.log_format, &args.log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rolecall serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(rolecall::server::serve(
        args,
        rolecall::server::shutdown_signal(),
    ));
    // Calls abandoned after the grace period are dropped here, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rolecall serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        let result = rolecall::model::parse::read_snapshot_file(f)
            .and_then(|spec| rolecall::engine::Snapshot::from_spec(&spec));
        match result {
            Ok(snap) => {
                if snap.workspaces().is_empty() {
                    println!("{}: valid, but it holds no workspace", f.display());
                }
                for w in snap.workspaces() {
                    println!(
                        "{}: workspace {}: valid ({} users, {} groups, {} roles, {} resources, {} seats in use)",
                        f.display(),
                        w.model.id,
                        w.model.users.len(),
                        w.model.groups.len(),
                        w.model.roles.len(),
                        w.model.listed_resources(),
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
        let scenarios = match rolecall::scenario::read_each(f) {
            Ok(s) => s,
            Err(e) => {
                println!("ERROR {e}");
                failed += 1;
                continue;
            }
        };
        for s in &scenarios {
            let s = match s {
                Ok(s) => s,
                Err(e) => {
                    println!("ERROR {e}");
                    failed += 1;
                    continue;
                }
            };
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
