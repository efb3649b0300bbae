//! Durability of the real binary (SPEC 6): every acknowledged update
//! survives `kill -9` and a restart without the bootstrap snapshot; a write
//! that fails is never acknowledged; a torn last write is cut and the valid
//! prefix served; a damaged snapshot stops the start with a clear message.
//! Each test runs `rolecall serve` on Unix sockets in its own temporary
//! directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rolecall::pb;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::support::*;

/// One run of `rolecall serve` over the files of `dir`.
struct Rolecall {
    child: Child,
    dir: PathBuf,
    run: usize,
}

impl Rolecall {
    /// Starts the binary on `dir`'s sockets, token and state dir, with
    /// `extra` flags; `run` numbers its log files.
    fn spawn(dir: &Path, run: usize, extra: &[&str]) -> Rolecall {
        Self::spawn_through(
            Command::new(env!("CARGO_BIN_EXE_rolecall")),
            dir,
            run,
            extra,
        )
    }

    /// As `spawn`, with every file the process writes limited to `kib` KiB
    /// (`ulimit -f`, with SIGXFSZ ignored): a write past it fails with
    /// EFBIG, as one fails on a full disk.
    fn spawn_with_file_limit(dir: &Path, run: usize, extra: &[&str], kib: u64) -> Rolecall {
        let mut bash = Command::new("bash");
        bash.args([
            "-c",
            &format!("trap '' XFSZ; ulimit -f {kib}; exec \"$@\""),
            "bash",
            env!("CARGO_BIN_EXE_rolecall"),
        ]);
        Self::spawn_through(bash, dir, run, extra)
    }

    fn spawn_through(mut command: Command, dir: &Path, run: usize, extra: &[&str]) -> Rolecall {
        fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
        // A token file readable by others is refused at start.
        fs::set_permissions(
            dir.join("token"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let out = fs::File::create(dir.join(format!("run-{run}.out"))).unwrap();
        let err = fs::File::create(dir.join(format!("run-{run}.err"))).unwrap();
        let arg = |name: &str| dir.join(name).display().to_string();
        let child = command
            .arg("serve")
            .args(["--listen", &format!("unix:{}", arg("authz.sock"))])
            .args(["--admin-listen", &format!("unix:{}", arg("admin.sock"))])
            .args(["--admin-token-file", &arg("token")])
            .args(["--state-dir", &arg("state")])
            .args(extra)
            .env_remove("ROLECALL_SNAPSHOT")
            .env_remove("ROLECALL_DEMO")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Rolecall {
            child,
            dir: dir.to_path_buf(),
            run,
        }
    }

    fn logs(&self) -> String {
        let read = |ext: &str| {
            fs::read_to_string(self.dir.join(format!("run-{}.{ext}", self.run))).unwrap_or_default()
        };
        format!("{}{}", read("out"), read("err"))
    }

    /// Waits until the admin listener answers health, then connects to both.
    async fn ready(&mut self) -> (Channel, Channel) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("rolecall exited early ({status}):\n{}", self.logs());
            }
            let admin = self.dir.join("admin.sock");
            if std::os::unix::net::UnixStream::connect(&admin).is_ok() {
                let channel = connect_unix(&admin).await;
                let up = HealthClient::new(channel.clone())
                    .check(HealthCheckRequest {
                        service: "rolecall.v1.Admin".into(),
                    })
                    .await
                    .is_ok();
                if up {
                    return (connect_unix(&self.dir.join("authz.sock")).await, channel);
                }
            }
            assert!(
                Instant::now() < deadline,
                "rolecall did not start within 60 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no drain, no flush, nothing after the last fsync.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit on its own.
    fn exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "rolecall did not exit:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rolecall {
    fn drop(&mut self) {
        // A failed test must not leave the server running: stop this pid.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn new_mini(i: usize) -> pb::ApplyRequest {
    apply_json(&format!(
        r#"{{"request_id":"mini-{i}","source":"admin","delta":{{"workspace":"sunrise-care","changes":[{{"upsert_resource":{{"type":"mini","id":"m-durable-{i}","labels":["site-a"]}}}}]}}}}"#
    ))
}

/// Whether u-nurse may read Mini `m-durable-i`, and at which revision.
async fn nurse_reads(
    authz: &Channel,
    i: usize,
    consistency: Option<pb::Consistency>,
) -> (bool, String) {
    let r = rolecall::pb::authz_client::AuthzClient::new(authz.clone())
        .check(pb::CheckRequest {
            consistency,
            ..check(
                "sunrise-care",
                "u-nurse",
                "read",
                existing("mini", &format!("m-durable-{i}")),
            )
        })
        .await
        .unwrap()
        .into_inner();
    (r.allowed, r.revision)
}

async fn status_revision(admin: &Channel) -> String {
    admin_client(admin, TOKEN)
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Every file of the state dir, by name, with its bytes.
fn state_dir_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    state_files(dir, "")
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn state_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn acknowledged_updates_survive_kill_9_and_a_restart_without_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("bootstrap.yaml");
    fs::write(&boot, rolecall::server::DEMO_SNAPSHOT).unwrap();
    let boot_arg = boot.display().to_string();

    // Compacting every 3 records: the restart reads a snapshot and a log.
    let mut first = Rolecall::spawn(
        dir.path(),
        1,
        &["--snapshot", &boot_arg, "--compact-every", "3"],
    );
    let (_, admin) = first.ready().await;
    let mut apply = ApplyStream::open(&mut admin_client(&admin, TOKEN)).await;
    for i in 1..=5 {
        assert_eq!(apply.applied(new_mini(i)).await, (i + 1).to_string());
    }
    // A rejected update leaves the state dir as it was, byte for byte.
    let before = state_dir_bytes(dir.path());
    // A valid Mini and an orphan record: rejected whole.
    let bad = apply_json(
        r#"{"request_id":"bad","source":"admin","delta":{"workspace":"sunrise-care","changes":[
            {"upsert_resource":{"type":"mini","id":"m-durable-99","labels":["site-a"]}},
            {"upsert_resource":{"type":"record","id":"r-orphan","parent":"mini:m-nowhere"}}]}}"#,
    );
    assert!(!apply.rejected(bad).await.is_empty());
    assert_eq!(state_dir_bytes(dir.path()), before);
    first.kill_9();

    // The bootstrap file is gone: the state dir alone must serve revision 6.
    fs::remove_file(&boot).unwrap();
    let mut second = Rolecall::spawn(dir.path(), 2, &[]);
    let (authz, admin) = second.ready().await;
    assert_eq!(status_revision(&admin).await, "6");
    for i in 1..=5 {
        assert_eq!(
            nurse_reads(&authz, i, exact("6")).await,
            (true, "6".to_string()),
            "mini {i} after the restart"
        );
    }
    // Nothing of the rejected update is served.
    assert_eq!(
        nurse_reads(&authz, 99, None).await,
        (false, "6".to_string())
    );
    // Watch replays only what the state dir still holds (since its last
    // compaction): an older start is refused, naming the field.
    let gone = admin_client(&admin, TOKEN)
        .watch(pb::WatchRequest {
            from_revision: "1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::FailedPrecondition, "{gone:?}");
    assert!(
        gone.message()
            .starts_with("from_revision: revision 1 is no longer retained for Watch"),
        "{gone:?}"
    );
    // Revisions go on from there.
    let mut apply = ApplyStream::open(&mut admin_client(&admin, TOKEN)).await;
    assert_eq!(apply.applied(new_mini(6)).await, "7");
    second.kill_9();

    let mut third = Rolecall::spawn(dir.path(), 3, &[]);
    let (authz, _) = third.ready().await;
    assert_eq!(nurse_reads(&authz, 6, None).await, (true, "7".to_string()));
}

#[tokio::test]
async fn retained_revisions_are_rebuilt_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // No compaction: the log holds every update since the demo model.
    let mut first = Rolecall::spawn(dir.path(), 1, &["--demo", "--compact-every", "0"]);
    let (_, admin) = first.ready().await;
    let mut apply = ApplyStream::open(&mut admin_client(&admin, TOKEN)).await;
    for i in 1..=5 {
        assert_eq!(apply.applied(new_mini(i)).await, (i + 1).to_string());
    }
    first.kill_9();

    // Keep 4 revisions: 6 (current), 5, 4 and 3 answer `exact` reads as
    // they did before the restart; 2 is gone.
    // --demo again: the state dir holds a model, which wins, and says so.
    let mut second = Rolecall::spawn(dir.path(), 2, &["--demo", "--retain-revisions", "4"]);
    let (authz, admin) = second.ready().await;
    assert_eq!(status_revision(&admin).await, "6");
    assert!(
        second
            .logs()
            .contains("the state dir holds a model: --demo is not used"),
        "{}",
        second.logs()
    );
    for (revision, mini, allowed) in [
        ("6", 5, true),
        ("5", 5, false),
        ("5", 4, true),
        ("3", 2, true),
        ("3", 3, false),
    ] {
        assert_eq!(
            nurse_reads(&authz, mini, exact(revision)).await,
            (allowed, revision.to_string()),
            "mini {mini} at revision {revision}"
        );
    }
    let gone = rolecall::pb::authz_client::AuthzClient::new(authz.clone())
        .check(pb::CheckRequest {
            consistency: exact("2"),
            ..check(
                "sunrise-care",
                "u-nurse",
                "read",
                existing("mini", "m-durable-1"),
            )
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::FailedPrecondition, "{gone:?}");
    assert!(gone.message().contains("oldest retained is 3"), "{gone:?}");
}

#[tokio::test]
async fn a_pipelined_burst_of_small_updates_is_answered_in_full() {
    // A control plane that sends without waiting for answers: 2,000 small
    // deltas, each made durable one at a time while the rest are read
    // ahead, all answered in order. (tests/e2e sends such a burst with
    // grpcurl, one DATA frame per request, which h2 would end the
    // connection over if they were left unread; tonic's client packs
    // requests into fewer frames.)
    let dir = tempfile::tempdir().unwrap();
    let mut server = Rolecall::spawn(dir.path(), 1, &["--demo"]);
    let (_, admin) = server.ready().await;
    const N: u64 = 2000;
    let requests: Vec<pb::ApplyRequest> = (0..N)
        .map(|i| {
            apply_json(&format!(
                r#"{{"request_id":"p{i}","source":"admin","delta":{{"workspace":"acme","changes":[{{"upsert_resource":{{"type":"manual","id":"p{i}"}}}}]}}}}"#
            ))
        })
        .collect();
    let mut answers = admin_client(&admin, TOKEN)
        .apply(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut answered = 0;
    while let Some(answer) = answers.message().await.unwrap() {
        assert_eq!(answer.request_id, format!("p{answered}"));
        assert_eq!(
            answer.result,
            Some(pb::apply_response::Result::Revision(
                (answered + 2).to_string()
            ))
        );
        answered += 1;
    }
    assert_eq!(answered, N);
    assert_eq!(status_revision(&admin).await, (N + 1).to_string());
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_the_valid_prefix_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Rolecall::spawn(dir.path(), 1, &["--demo"]);
    let (_, admin) = first.ready().await;
    let mut apply = ApplyStream::open(&mut admin_client(&admin, TOKEN)).await;
    for i in 1..=3 {
        apply.applied(new_mini(i)).await;
    }
    first.kill_9();

    // A crash in the middle of the next append: part of a record.
    let log = state_files(dir.path(), "log-").pop().unwrap();
    let good_len = fs::metadata(&log).unwrap().len();
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"\x40\x00\x00\x00torn write")
        .unwrap();

    let mut second = Rolecall::spawn(dir.path(), 2, &[]);
    let (authz, admin) = second.ready().await;
    assert_eq!(status_revision(&admin).await, "4");
    assert_eq!(nurse_reads(&authz, 3, None).await, (true, "4".to_string()));
    assert!(second.logs().contains("torn"), "{}", second.logs());
    assert_eq!(fs::metadata(&log).unwrap().len(), good_len);

    let mut apply = ApplyStream::open(&mut admin_client(&admin, TOKEN)).await;
    assert_eq!(apply.applied(new_mini(4)).await, "5");
    second.kill_9();
    let mut third = Rolecall::spawn(dir.path(), 3, &[]);
    let (authz, _) = third.ready().await;
    assert_eq!(nurse_reads(&authz, 4, None).await, (true, "5".to_string()));
}

#[tokio::test]
async fn a_write_that_fails_is_not_acknowledged_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // Files of at most 64 KiB: the demo's snapshot fits, a few hundred
    // small deltas in one log segment do not.
    let mut first =
        Rolecall::spawn_with_file_limit(dir.path(), 1, &["--demo", "--compact-every", "0"], 64);
    let (authz, admin) = first.ready().await;
    let mut apply = ApplyStream::open(&mut admin_client(&admin, TOKEN)).await;
    let mut acknowledged = 0;
    let refusal = loop {
        let i = acknowledged + 1;
        assert!(i <= 5_000, "no write failed within the file size limit");
        match apply.try_send(new_mini(i)).await {
            Ok(r) => {
                assert_eq!(
                    r.result,
                    Some(pb::apply_response::Result::Revision((i + 1).to_string()))
                );
                acknowledged = i;
            }
            Err(status) => break status,
        }
    };
    let failed = acknowledged + 1;
    assert!(acknowledged > 10, "only {acknowledged} updates fit");
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert!(
        refusal.message().contains(&format!("mini-{failed}"))
            && refusal.message().contains("not applied"),
        "{refusal:?}"
    );

    // Reads go on at the last acknowledged revision, without the update.
    let last = (acknowledged + 1).to_string();
    assert_eq!(status_revision(&admin).await, last);
    assert_eq!(
        nurse_reads(&authz, acknowledged, None).await,
        (true, last.clone())
    );
    assert_eq!(
        nurse_reads(&authz, failed, None).await,
        (false, last.clone())
    );
    // And no further update is taken: what is on disk is unknown now.
    let mut apply = ApplyStream::open(&mut admin_client(&admin, TOKEN)).await;
    let again = apply.try_send(new_mini(failed + 1)).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::Unavailable, "{again:?}");
    assert!(again.message().contains("restarts"), "{again:?}");
    first.kill_9();

    // Restarted with room: every acknowledged update, nothing else, and
    // revisions go on from the last acknowledged one.
    let mut second = Rolecall::spawn(dir.path(), 2, &[]);
    let (authz, admin) = second.ready().await;
    assert_eq!(status_revision(&admin).await, last);
    for i in [1, acknowledged / 2, acknowledged] {
        assert_eq!(
            nurse_reads(&authz, i, exact(&last)).await,
            (true, last.clone())
        );
    }
    assert_eq!(
        nurse_reads(&authz, failed, None).await,
        (false, last.clone())
    );
    let mut apply = ApplyStream::open(&mut admin_client(&admin, TOKEN)).await;
    assert_eq!(
        apply.applied(new_mini(failed)).await,
        (acknowledged + 2).to_string()
    );
}

#[tokio::test]
async fn a_corrupt_snapshot_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Rolecall::spawn(dir.path(), 1, &["--demo"]);
    first.ready().await;
    first.kill_9();

    // The bootstrap model is the state dir's first snapshot: damage it.
    let snapshot = state_files(dir.path(), "snapshot-").pop().unwrap();
    let mut bytes = fs::read(&snapshot).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x20;
    fs::write(&snapshot, bytes).unwrap();

    let (status, logs) = Rolecall::spawn(dir.path(), 2, &[]).exit();
    assert!(!status.success(), "{status}: {logs}");
    let name = snapshot.file_name().unwrap().to_str().unwrap();
    assert!(
        logs.contains(name) && logs.contains("checksum") && logs.contains("backup"),
        "{logs}"
    );
}

#[tokio::test]
async fn an_admin_listener_without_a_token_file_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .arg("serve")
        .args(["--listen", &format!("unix:{}", d.join("a.sock").display())])
        .args([
            "--admin-listen",
            &format!("unix:{}", d.join("b.sock").display()),
        ])
        .env_remove("ROLECALL_ADMIN_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--admin-token-file"), "{err}");
    assert!(!d.join("a.sock").exists(), "nothing listens");
}
