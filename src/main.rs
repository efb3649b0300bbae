//! The `rolecall` command: serve, validate, test, check, gen.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rolecall::console::Console;

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
    /// Check a snapshot file and print every problem with its place, and
    /// what a valid one holds that is worth a look (lint).
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
        /// Also write the results to this file as a JUnit XML report.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Decide one check on a snapshot file and say why. Exits 0 when it is
    /// allowed, 1 when it is denied, 2 when it cannot be asked.
    Check(CheckArgs),
    /// Write a synthetic snapshot of a given size, for benchmarks.
    Gen(rolecall::gen::GenArgs),
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The snapshot file (YAML or JSON).
    #[arg(long)]
    snapshot: PathBuf,
    #[arg(long)]
    workspace: String,
    /// The user id.
    #[arg(long)]
    subject: String,
    #[arg(long)]
    action: String,
    /// `type:id`; or, for a resource not created yet, its type alone, with
    /// `--parent` and `--label`.
    #[arg(long)]
    resource: String,
    /// The parent of a resource not created yet (`type:id`).
    #[arg(long)]
    parent: Option<String>,
    /// A label of a resource not created yet (repeat it for several).
    #[arg(long = "label")]
    labels: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Validate { files } => validate(&files),
        Command::Test {
            files,
            quiet,
            junit,
        } => test(&files, quiet, junit.as_deref()),
        Command::Check(args) => check(&args),
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
    let mut out = Console::new();
    let mut ok = true;
    for f in files {
        let result = rolecall::model::parse::read_snapshot_file(f)
            .and_then(|spec| rolecall::engine::Snapshot::from_spec(&spec));
        match result {
            Ok(snap) => {
                if snap.workspaces().is_empty() {
                    out.line(format_args!(
                        "{}: valid, but it holds no workspace",
                        f.display()
                    ));
                }
                for w in snap.workspaces() {
                    out.line(format_args!(
                        "{}: workspace {}: valid ({} users, {} groups, {} roles, {} resources, {} seats in use)",
                        f.display(),
                        w.model.id,
                        w.model.users.len(),
                        w.model.groups.len(),
                        w.model.roles.len(),
                        w.model.listed_resources(),
                        w.seats_in_use()
                    ));
                    // Valid, but worth a look (the same findings as Admin.Status).
                    for finding in rolecall::model::lint::lint(&w.model) {
                        out.line(format_args!(
                            "{}: workspace {}: lint: {finding}",
                            f.display(),
                            w.model.id
                        ));
                    }
                }
            }
            Err(e) => {
                ok = false;
                out.line(format_args!("{}: invalid: {e}", f.display()));
            }
        }
    }
    out.finish(status(ok), ExitCode::FAILURE)
}

fn status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn test(files: &[PathBuf], quiet: bool, junit: Option<&std::path::Path>) -> ExitCode {
    use rolecall::junit::Suite;
    let mut out = Console::new();
    let mut suites = Vec::new();
    // A file or scenario that cannot be read counts as one failure.
    let unreadable = |out: &mut Console, file: &str, e: String| {
        out.line(format_args!("ERROR {e}"));
        Suite {
            file: file.to_string(),
            name: String::new(),
            outcome: Err(e),
        }
    };
    for f in files {
        let file = f.display().to_string();
        let scenarios = match rolecall::scenario::read_each(f) {
            Ok(s) => s,
            Err(e) => {
                suites.push(unreadable(&mut out, &file, e));
                continue;
            }
        };
        for s in scenarios {
            let s = match s {
                Ok(s) => s,
                Err(e) => {
                    suites.push(unreadable(&mut out, &file, e));
                    continue;
                }
            };
            out.line(format_args!("{file}: {}", s.name));
            let results = rolecall::scenario::run(&s);
            for r in &results {
                match &r.failure {
                    None if !quiet => out.line(format_args!("  PASS {}", r.label)),
                    None => {}
                    Some(why) => out.line(format_args!("  FAIL {}: {why}", r.label)),
                }
            }
            suites.push(Suite {
                file: file.clone(),
                name: s.name,
                outcome: Ok(results),
            });
        }
    }
    let failed: usize = suites.iter().map(|s| s.failures() + s.errors()).sum();
    let passed = suites.iter().map(Suite::tests).sum::<usize>() - failed;
    out.line(format_args!("{passed} passed, {failed} failed"));
    if let Some(path) = junit {
        if let Err(e) = std::fs::write(path, rolecall::junit::report(&suites)) {
            eprintln!("rolecall test: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    out.finish(status(failed == 0), ExitCode::FAILURE)
}

/// Exit code of `check` when the question cannot be asked.
const CHECK_ERROR: u8 = 2;

fn check(args: &CheckArgs) -> ExitCode {
    match explain_check(args) {
        Ok(e) => {
            let mut out = Console::new();
            let allowed = e.decision.allowed();
            let verdict = if allowed { "allow" } else { "deny" };
            out.line(format_args!(
                "{verdict} ({}): {}",
                e.decision.reason.as_str(),
                e.message
            ));
            for b in &e.granted_by {
                out.line(format_args!("  granted by {b}"));
            }
            if let Some(p) = &e.reach_through {
                out.line(format_args!("  reach through {p}"));
            }
            out.finish(status(allowed), ExitCode::from(CHECK_ERROR))
        }
        Err(e) => {
            eprintln!("rolecall check: {e}");
            ExitCode::from(CHECK_ERROR)
        }
    }
}

fn explain_check(args: &CheckArgs) -> Result<rolecall::engine::Explanation, String> {
    use rolecall::scenario::ResourceCase;
    let new = args.parent.is_some() || !args.labels.is_empty();
    if args.resource.ends_with(':') {
        // Over gRPC an empty id means a resource not yet created; here the
        // type alone says that, and `type:` is a slip.
        return Err(format!(
            "--resource {}: the id is empty; give TYPE:ID, or the type alone for a resource \
             not created yet",
            args.resource
        ));
    }
    let resource = match (args.resource.contains(':'), new) {
        (true, false) => ResourceCase::Key(args.resource.clone()),
        (false, _) => ResourceCase::New {
            type_: args.resource.clone(),
            parent: args.parent.clone(),
            labels: args.labels.clone(),
        },
        (true, true) => {
            return Err(format!(
                "--resource {}: --parent and --label describe a resource not created yet; \
                 give its type alone",
                args.resource
            ))
        }
    };
    let snap = rolecall::model::parse::read_snapshot_file(&args.snapshot)
        .and_then(|spec| rolecall::engine::Snapshot::from_spec(&spec))
        .map_err(|e| format!("{}: invalid: {e}", args.snapshot.display()))?;
    rolecall::scenario::explain(
        &snap,
        &args.workspace,
        &args.subject,
        &args.action,
        &resource,
    )
}
