//! Every scenario file, replayed over gRPC: the project's own
//! (`tests/scenarios/*.yaml`) and the shared ones (`../shared/scenarios`,
//! when that directory exists). Each scenario's snapshot goes through the
//! same loading path as `rolecall serve --snapshot FILE`.

use std::path::{Path, PathBuf};

use rolecall::pb;
use rolecall::scenario::{self, ResourceCase, Scenario};
use rolecall::server::{self, Bootstrap};

use crate::support::{reason_name, TestServer, Transport};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

fn scenario_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = yaml_files(&root.join("tests").join("scenarios"));
    files.extend(yaml_files(
        &root.join("..").join("shared").join("scenarios"),
    ));
    files
}

fn resource_ref(r: &ResourceCase) -> pb::ResourceRef {
    match r {
        ResourceCase::Key(k) => {
            let (t, id) = k.split_once(':').unwrap_or((k.as_str(), ""));
            pb::ResourceRef {
                r#type: t.into(),
                id: id.into(),
                ..Default::default()
            }
        }
        ResourceCase::New {
            type_,
            parent,
            labels,
        } => pb::ResourceRef {
            r#type: type_.clone(),
            id: String::new(),
            parent: parent.clone().unwrap_or_default(),
            labels: labels.clone(),
        },
    }
}

/// Loads a scenario's snapshot the way the server loads a bootstrap file.
fn load_like_bootstrap(s: &Scenario) -> Result<rolecall::engine::Snapshot, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("snapshot.yaml");
    let yaml = serde_norway::to_string(&s.snapshot).map_err(|e| e.to_string())?;
    std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
    match server::load_bootstrap(&Bootstrap::File(path)) {
        Ok(Some(snap)) => Ok(snap),
        Ok(None) => Err("no snapshot".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one scenario over gRPC; returns what went wrong.
async fn run(s: &Scenario, transport: Transport) -> Vec<String> {
    let mut failures = Vec::new();
    let loaded = load_like_bootstrap(s);
    if let Some(want) = &s.reject {
        match loaded {
            Ok(_) => failures.push(format!("accepted, but must be rejected with \"{want}\"")),
            Err(e) if e.contains(want.as_str()) => {}
            Err(e) => failures.push(format!("rejected without \"{want}\": {e}")),
        }
        return failures;
    }
    let snap = match loaded {
        Ok(snap) => snap,
        Err(e) => return vec![format!("snapshot refused: {e}")],
    };
    let server = TestServer::with_snapshot(snap, transport).await;
    let mut client = server.authz();

    let mut batch = Vec::new();
    for c in &s.checks {
        let label = format!(
            "check {} {} {} {}",
            c.workspace, c.subject, c.action, c.resource
        );
        let req = pb::CheckRequest {
            workspace: c.workspace.clone(),
            subject: c.subject.clone(),
            action: c.action.clone(),
            resource: Some(resource_ref(&c.resource)),
            consistency: None,
            explain: false,
        };
        batch.push(req.clone());
        let reason = match client.check(req.clone()).await {
            Ok(r) if r.get_ref().allowed == c.allowed => r.get_ref().reason,
            Ok(r) => {
                failures.push(format!("{label}: got allowed={}", r.get_ref().allowed));
                r.get_ref().reason
            }
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        if let Some(want) = c.reason.filter(|want| reason_name(reason) != want.as_str()) {
            failures.push(format!(
                "{label}: reason {} where the scenario says {}",
                reason_name(reason),
                want.as_str()
            ));
        }
        // The explanation agrees with the decision.
        let explained = pb::CheckRequest {
            explain: true,
            ..req
        };
        match client.check(explained).await {
            Ok(r) => {
                let r = r.into_inner();
                let rule = r.explanation.map(|e| e.rule).unwrap_or_default();
                if r.allowed != c.allowed || (rule == "granted") != c.allowed {
                    failures.push(format!(
                        "{label} (explain): allowed={} rule={rule}",
                        r.allowed
                    ));
                }
                // Every answer names its rule, explained or not, alike.
                if reason_name(reason) != rule || reason != r.reason {
                    failures.push(format!(
                        "{label}: reason {reason} without explain, {} with, rule {rule}",
                        r.reason
                    ));
                }
            }
            Err(e) => failures.push(format!("{label} (explain): {e}")),
        }
    }
    if !batch.is_empty() {
        let n = batch.len();
        match client
            .check_batch(pb::CheckBatchRequest {
                checks: batch,
                consistency: None,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                if r.results.len() != n {
                    failures.push(format!("batch: {} results for {n} checks", r.results.len()));
                }
                for (c, got) in s.checks.iter().zip(&r.results) {
                    let granted = got.reason == pb::Reason::Granted as i32;
                    let reason_ok = c
                        .reason
                        .is_none_or(|want| reason_name(got.reason) == want.as_str());
                    if got.allowed != c.allowed
                        || granted != c.allowed
                        || !reason_ok
                        || got.revision != r.revision
                    {
                        failures.push(format!(
                            "batch check {} {} {} {}: allowed={} reason={} revision={}",
                            c.workspace,
                            c.subject,
                            c.action,
                            c.resource,
                            got.allowed,
                            reason_name(got.reason),
                            got.revision
                        ));
                    }
                }
            }
            Err(e) => failures.push(format!("batch: {e}")),
        }
    }

    for l in &s.lists {
        let mut want = l.ids.clone();
        want.sort();
        for page_size in [1u32, 2] {
            let label = format!(
                "list {} {} {} {} under {:?} by {page_size}",
                l.workspace, l.subject, l.type_, l.action, l.parent
            );
            match walk_list(&mut client, l, page_size).await {
                Ok(got) if got == want => {}
                Ok(got) => failures.push(format!("{label}: got {got:?}, want {want:?}")),
                Err(e) => failures.push(format!("{label}: {e}")),
            }
        }
    }

    for c in &s.subjects {
        let mut want = c.users.clone();
        want.sort();
        for page_size in [0u32, 1] {
            let label = format!(
                "subjects {} {} {} by {page_size}",
                c.workspace, c.action, c.resource
            );
            match walk_subjects(&mut client, c, page_size).await {
                Ok(got) if got == want => {}
                Ok(got) => failures.push(format!("{label}: got {got:?}, want {want:?}")),
                Err(e) => failures.push(format!("{label}: {e}")),
            }
        }
    }
    if let Err(e) = server.stop().await {
        failures.push(format!("server stopped with {e}"));
    }
    failures
}

type Client = pb::authz_client::AuthzClient<tonic::transport::Channel>;

/// Pages through a ListVisible, checking each page's shape and that every
/// page is answered at the first page's revision.
async fn walk_list(
    client: &mut Client,
    l: &scenario::ListCase,
    page_size: u32,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let mut token = String::new();
    let mut revision = None;
    for _ in 0..10_000 {
        let r = client
            .list_visible(pb::ListVisibleRequest {
                workspace: l.workspace.clone(),
                subject: l.subject.clone(),
                resource_type: l.type_.clone(),
                // "read" is the default: leave it out to exercise that.
                action: if l.action == "read" {
                    String::new()
                } else {
                    l.action.clone()
                },
                parent: l.parent.clone().unwrap_or_default(),
                page_size,
                page_token: token,
                consistency: None,
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        if r.ids.len() > page_size as usize {
            return Err(format!(
                "a page of {} for page_size {page_size}",
                r.ids.len()
            ));
        }
        if !r.next_page_token.is_empty() && r.ids.len() != page_size as usize {
            return Err(format!("a short page ({}) before the last", r.ids.len()));
        }
        if *revision.get_or_insert(r.revision.clone()) != r.revision {
            return Err(format!(
                "pages at revisions {revision:?} and {}",
                r.revision
            ));
        }
        ids.extend(r.ids);
        if r.next_page_token.is_empty() {
            let mut sorted = ids.clone();
            sorted.sort();
            if sorted != ids {
                return Err(format!("ids not ascending: {ids:?}"));
            }
            return Ok(ids);
        }
        token = r.next_page_token;
    }
    Err("more than 10000 pages".into())
}

async fn walk_subjects(
    client: &mut Client,
    c: &scenario::SubjectsCase,
    page_size: u32,
) -> Result<Vec<String>, String> {
    let (t, id) = c
        .resource
        .split_once(':')
        .unwrap_or((c.resource.as_str(), ""));
    let mut users = Vec::new();
    let mut token = String::new();
    for _ in 0..10_000 {
        let r = client
            .list_subjects(pb::ListSubjectsRequest {
                workspace: c.workspace.clone(),
                action: c.action.clone(),
                resource: Some(pb::ResourceRef {
                    r#type: t.into(),
                    id: id.into(),
                    ..Default::default()
                }),
                page_size,
                page_token: token,
                consistency: None,
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        for s in &r.subjects {
            if s.bindings.is_empty() {
                return Err(format!(
                    "{} is listed without the bindings that give it",
                    s.user
                ));
            }
        }
        users.extend(r.subjects.into_iter().map(|s| s.user));
        if r.next_page_token.is_empty() {
            let mut sorted = users.clone();
            sorted.sort();
            if sorted != users {
                return Err(format!("users not ascending: {users:?}"));
            }
            return Ok(users);
        }
        token = r.next_page_token;
    }
    Err("more than 10000 pages".into())
}

async fn run_all(transport: Transport) {
    let mut failures = Vec::new();
    let (mut scenarios, mut cases) = (0, 0);
    for file in scenario_files() {
        let parsed = match scenario::read_file(&file) {
            Ok(s) => s,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for s in &parsed {
            scenarios += 1;
            cases +=
                s.checks.len() + s.lists.len() + s.subjects.len() + usize::from(s.reject.is_some());
            for f in run(s, transport).await {
                failures.push(format!("{name}: {}: {f}", s.name));
            }
        }
    }
    eprintln!("{scenarios} scenarios ({cases} cases) over {transport:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_over_tcp() {
    run_all(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_over_a_unix_socket() {
    run_all(Transport::Unix).await;
}
