//! Engine benchmarks on the `small` and `large` synthetic models, built in
//! memory by `rolecall::gen` (no files).
//!
//! ```text
//! cargo bench --bench engine                      # everything, a few minutes
//! cargo bench --bench engine -- check/            # one group
//! ROLECALL_BENCH_MODELS=small cargo bench --bench engine   # skip `large`
//! ```
//!
//! - `check/<model>/from_strings`: what a Check RPC does once decoded: find
//!   the workspace, resolve the resource (its type and id come as two
//!   fields, as in the RPC) and the action, decide. Round-robin over 4,096 requests of the realistic mix
//!   (`gen::generate_requests`); the time is per check. Each request's
//!   strings are packed in one buffer, as a decoded request sits in the
//!   buffers it was just decoded into: the harness's own data is one cache
//!   line per request, not one per string.
//! - `check/<model>/from_strings_spread`: the same over 262,144 requests,
//!   whose data is far more than the cache holds: what a check costs when
//!   every lookup goes to memory (`engine_stats memlat` measures one such
//!   miss).
//! - `check_batch/<model>/batch_64_spread`: batches of 64 requests of the
//!   spread-out set through `engine::batch::check_each`, as the CheckBatch
//!   RPC runs them (the memory of each chunk of items touched before they
//!   are checked); `check_batch/<model>/one_by_one_64_spread`: the same 64
//!   checks in a plain loop. The time is per check (a batch's time divided
//!   by 64).
//! - `check/large_hashed/...`: the same checks on `large` with one more
//!   record, numbered far past the others: the record ids are no longer a
//!   run (ids handed out in sequence, whose place a lookup computes), so
//!   each check finds its record through the hash index instead.
//! - `check/large_holes/...`: the same with every 128th record removed:
//!   still a run, with holes, which a lookup counts below its number.
//! - `check/<model>/resolved`: the decision alone, on requests resolved
//!   beforehand (the subject is still looked up by id).
//! - `list_visible/<model>/...`: the first page of 1,000 record ids for a
//!   lead (who may read every record) and for a site nurse, and every page
//!   of 1,000 for `u-wide-reader`, a user added to see about 100,000 records
//!   (`gen::add_wide_reader`; the generated mix has nobody between a few
//!   thousand and all records).
//! - `list_subjects/<model>/record`: every user who may read one record,
//!   with the bindings that grant it.
//! - `build/small`: validation and indexing of the whole `small` model.
//! - `delta/<model>/...`: one update through `Snapshot::apply`, as the
//!   write path runs it (without the log's fsync): a one-record upsert on a
//!   fresh model and on one whose overlay already holds 10,000 changes, and
//!   a one-user upsert (which rebuilds the workspace).
//! - `check/<model>/from_strings_overlay_10k`: checks on a model that has
//!   taken 10,000 one-record deltas since it was built.

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rolecall::engine::{batch, CompiledWorkspace, Resolved, ResourceQuery, Snapshot};
use rolecall::gen::{self, GenOptions, GenRequest, Preset};
use rolecall::model::delta::{Change, Delta, Update, UpdateBody, UpdateSource};
use rolecall::model::schema::PermId;
use rolecall::model::spec::WorkspaceSpec;
use rolecall::model::SnapshotSpec;

/// Requests in the round-robin set (a power of two).
const REQUESTS: usize = 4096;
/// Requests in the spread-out set, whose data does not fit in the cache.
const SPREAD: usize = 1 << 18;
const PAGE: usize = 1000;

struct Model {
    name: &'static str,
    spec: SnapshotSpec,
    snap: Snapshot,
    requests: Vec<GenRequest>,
    packed: Vec<Packed>,
    spread: Vec<Packed>,
    /// A user who may read every record.
    lead: String,
    /// A site nurse: `record_all_viewer` plus `viewer` at 1–3 labels.
    nurse: String,
    /// `u-wide-reader` and how many records it may read.
    wide: (String, usize),
    /// A record carrying two labels, for list_subjects.
    record: String,
}

fn model(name: &'static str, preset: Preset) -> Model {
    let t0 = Instant::now();
    let opts = GenOptions {
        requests: REQUESTS,
        ..GenOptions::preset(preset)
    };
    let mut spec = gen::generate(&opts);
    let requests = gen::generate_requests(&spec, &opts);
    let spread = gen::generate_requests(
        &spec,
        &GenOptions {
            requests: SPREAD,
            ..opts.clone()
        },
    );
    let wide = gen::add_wide_reader(&mut spec.workspaces[0], 100_000);
    let snap = match Snapshot::from_spec(&spec) {
        Ok(s) => s,
        Err(e) => panic!("the generated {name} model is invalid: {e}"),
    };
    let ws = &spec.workspaces[0];
    let active = |u: &&rolecall::model::spec::UserSpec| u.status.is_active();
    let has = |u: &rolecall::model::spec::UserSpec, roles: &[&str]| {
        let mut rs: Vec<&str> = u.bindings.iter().map(|b| b.role.as_str()).collect();
        rs.sort_unstable();
        rs.dedup();
        rs == roles
    };
    let lead = ws
        .users
        .iter()
        .filter(active)
        .find(|u| has(u, &["mini_all_viewer", "record_all_viewer"]))
        .map(|u| u.id.clone())
        .unwrap_or_default();
    let nurse = ws
        .users
        .iter()
        .filter(active)
        .find(|u| has(u, &["record_all_viewer", "viewer"]) && u.bindings.len() == 3)
        .map(|u| u.id.clone())
        .unwrap_or_default();
    let record = ws
        .resources
        .iter()
        .find(|r| r.type_ == "record" && r.labels.len() == 2)
        .map(|r| format!("record:{}", r.id))
        .unwrap_or_default();
    eprintln!(
        "{name}: generated and built in {:.1}s; lead {lead}, nurse {nurse}, {} may read {} records; list_subjects on {record}",
        t0.elapsed().as_secs_f64(),
        wide.0,
        wide.1
    );
    Model {
        name,
        spec,
        snap,
        packed: requests.iter().map(Packed::new).collect(),
        requests,
        spread: spread.iter().map(Packed::new).collect(),
        lead,
        nurse,
        wide,
        record,
    }
}

/// `m` with its workspace changed by `alter` and built again, under
/// another name; the same requests.
fn variant(m: &Model, name: &'static str, alter: impl FnOnce(&mut WorkspaceSpec)) -> Model {
    let mut spec = m.spec.clone();
    alter(&mut spec.workspaces[0]);
    let snap = match Snapshot::from_spec(&spec) {
        Ok(s) => s,
        Err(e) => panic!("{name}: {e}"),
    };
    Model {
        name,
        spec,
        snap,
        requests: m.requests.clone(),
        packed: m.packed.clone(),
        spread: m.spread.clone(),
        lead: m.lead.clone(),
        nurse: m.nurse.clone(),
        wide: m.wide.clone(),
        record: m.record.clone(),
    }
}

/// One more record, numbered far past the others (`r-9999999` on
/// `large`): the record ids are then no longer a run, which a lookup
/// places by its number alone (see `model::id_columns`), and a check finds
/// its record through the hash index, as it does when ids are not handed
/// out in sequence.
fn record_off_the_run(ws: &mut WorkspaceSpec) {
    let Some(mut extra) = ws.resources.iter().find(|r| r.type_ == "record").cloned() else {
        panic!("no record")
    };
    let digits = extra
        .id
        .bytes()
        .rev()
        .take_while(u8::is_ascii_digit)
        .count();
    extra.id = format!(
        "{}{}",
        &extra.id[..extra.id.len() - digits],
        "9".repeat(digits)
    );
    assert!(
        ws.resources.iter().all(|r| r.id != extra.id),
        "{} is taken",
        extra.id
    );
    ws.resources.push(extra);
}

/// Every 128th record removed, unless a binding names it: the record ids
/// are still a run, with one hole per 128 ids (a run may have one per 64),
/// so a lookup also counts the holes below its number. The requests for
/// removed records find none.
fn holes_in_the_run(ws: &mut WorkspaceSpec) {
    let bound: HashSet<String> = ws
        .users
        .iter()
        .flat_map(|u| &u.bindings)
        .chain(ws.groups.iter().flat_map(|g| &g.bindings))
        .filter_map(|b| b.scope.clone())
        .collect();
    let mut k = 0usize;
    ws.resources.retain(|r| {
        if r.type_ != "record" {
            return true;
        }
        k += 1;
        k % 128 != 0 || bound.contains(&format!("resource:record:{}", r.id))
    });
}

fn workspace(m: &Model) -> &Arc<CompiledWorkspace> {
    match m.snap.workspace("bench") {
        Some(w) => w,
        None => panic!("no workspace bench"),
    }
}

/// A request's strings in one allocation: workspace, subject, resource
/// type and resource id (separate fields, as a Check RPC carries them).
#[derive(Clone)]
struct Packed {
    text: Box<str>,
    subject_at: usize,
    type_at: usize,
    id_at: usize,
    action: &'static str,
}

impl Packed {
    fn new(r: &GenRequest) -> Packed {
        let (type_, id) = r.resource.split_once(':').unwrap_or(("", &r.resource));
        let subject_at = r.workspace.len();
        let type_at = subject_at + r.subject.len();
        Packed {
            text: format!("{}{}{type_}{id}", r.workspace, r.subject).into(),
            subject_at,
            type_at,
            id_at: type_at + type_.len(),
            action: r.action,
        }
    }

    /// Workspace, subject and the resource.
    fn parts(&self) -> (&str, &str, ResourceQuery<'_>) {
        let t = &self.text;
        (
            &t[..self.subject_at],
            &t[self.subject_at..self.type_at],
            ResourceQuery::Existing {
                type_: &t[self.type_at..self.id_at],
                id: &t[self.id_at..],
            },
        )
    }

    fn check(&self, snap: &Snapshot) -> bool {
        let (workspace, subject, resource) = self.parts();
        check_from_strings(snap, workspace, subject, self.action, &resource)
    }
}

/// A Check as the API runs it, from strings.
#[inline]
fn check_from_strings(
    snap: &Snapshot,
    workspace: &str,
    subject: &str,
    action: &str,
    resource: &ResourceQuery<'_>,
) -> bool {
    let Some(ws) = snap.workspace(workspace) else {
        return false;
    };
    let Ok((t, resolved)) = ws.resolve(resource) else {
        return false;
    };
    let Ok(perm) = ws.perm_of(t, action) else {
        return false;
    };
    ws.decide(subject, perm, &resolved).allowed()
}

fn resolved(m: &Model) -> Vec<(String, PermId, Resolved)> {
    let ws = workspace(m);
    m.requests
        .iter()
        .filter_map(|r| {
            let q = ResourceQuery::parse_key(&r.resource)?;
            let (t, res) = ws.resolve(&q).ok()?;
            let perm = ws.perm_of(t, r.action).ok()?;
            Some((r.subject.clone(), perm, res))
        })
        .collect()
}

fn bench_check(c: &mut Criterion, m: &Model) {
    let allowed = m.packed.iter().filter(|r| r.check(&m.snap)).count();
    eprintln!(
        "{}: {allowed} of {} benchmark requests allowed",
        m.name,
        m.requests.len()
    );
    let mut g = c.benchmark_group(format!("check/{}", m.name));
    let mut i = 0usize;
    g.bench_function("from_strings", |b| {
        b.iter(|| {
            let r = &m.packed[i % REQUESTS];
            i = i.wrapping_add(1);
            black_box(black_box(r).check(&m.snap))
        })
    });
    let mut i = 0usize;
    g.bench_function("from_strings_spread", |b| {
        b.iter(|| {
            let r = &m.spread[i % SPREAD];
            i = i.wrapping_add(1);
            black_box(black_box(r).check(&m.snap))
        })
    });
    let pre = resolved(m);
    let ws = workspace(m);
    let mut i = 0usize;
    g.bench_function("resolved", |b| {
        b.iter(|| {
            let (s, perm, res) = &pre[i % pre.len()];
            i = i.wrapping_add(1);
            black_box(ws.decide(black_box(s), *perm, black_box(res)).allowed())
        })
    });
    g.finish();
}

/// Items in a batch of `check_batch/<model>/...`.
const BATCH: usize = 64;

impl Packed {
    /// What `batch::check_each` touches ahead of this check.
    fn item<'a>(&'a self, snap: &'a Snapshot) -> Option<batch::Item<'a>> {
        let (workspace, subject, resource) = self.parts();
        Some(batch::Item {
            workspace: snap.workspace(workspace)?,
            subject,
            resource,
        })
    }
}

/// A batch of checks as the CheckBatch RPC runs it: how many are allowed.
fn check_batch(snap: &Snapshot, items: &[Packed]) -> usize {
    let answers = batch::check_each(items, |r| r.item(snap), |_, r| Ok::<_, ()>(r.check(snap)));
    answers.map_or(0, |a| a.iter().filter(|&&x| x).count())
}

/// `check_batch/<model>/batch_64_spread`: batches of 64 checks from the
/// spread-out set through `batch::check_each`, and
/// `check_batch/<model>/one_by_one_64_spread`: the same 64 checks in a
/// plain loop. The time reported is per check (an iteration is a batch,
/// its time divided by 64).
fn bench_batch(c: &mut Criterion, m: &Model) {
    let batches = SPREAD / BATCH;
    for (i, r) in m.spread.iter().enumerate().take(BATCH * 64) {
        let one = r.check(&m.snap);
        let start = i - i % BATCH;
        let all = batch::check_each(
            &m.spread[start..start + BATCH],
            |r| r.item(&m.snap),
            |_, r| Ok::<_, ()>(r.check(&m.snap)),
        );
        assert_eq!(all.map(|a| a[i % BATCH]), Ok(one), "request {i}");
    }
    let mut g = c.benchmark_group(format!("check_batch/{}", m.name));
    let per_check = |b: &mut criterion::Bencher, f: &dyn Fn(&[Packed]) -> usize| {
        let mut i = 0usize;
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let at = (i % batches) * BATCH;
                i = i.wrapping_add(1);
                black_box(f(black_box(&m.spread[at..at + BATCH])));
            }
            t.elapsed() / BATCH as u32
        })
    };
    g.bench_function("batch_64_spread", |b| {
        per_check(b, &|items| check_batch(&m.snap, items))
    });
    g.bench_function("one_by_one_64_spread", |b| {
        per_check(b, &|items| {
            items.iter().filter(|r| r.check(&m.snap)).count()
        })
    });
    g.finish();
}

/// Walks every page; returns how many ids came back.
fn all_pages(ws: &CompiledWorkspace, subject: &str) -> usize {
    let mut n = 0;
    let mut after: Option<String> = None;
    loop {
        let page = match ws.list_visible(subject, "record", "read", None, after.as_deref(), PAGE) {
            Ok(p) => p,
            Err(e) => panic!("list_visible: {e}"),
        };
        n += page.items.len();
        match page.next_after {
            Some(a) => after = Some(a),
            None => return n,
        }
    }
}

fn first_page(ws: &CompiledWorkspace, subject: &str) -> usize {
    match ws.list_visible(subject, "record", "read", None, None, PAGE) {
        Ok(p) => p.items.len(),
        Err(e) => panic!("list_visible: {e}"),
    }
}

fn bench_lists(c: &mut Criterion, m: &Model) {
    let ws = workspace(m);
    let mut g = c.benchmark_group(format!("list_visible/{}", m.name));
    g.sample_size(10);
    g.bench_function("first_page_1000/lead", |b| {
        b.iter(|| black_box(first_page(ws, black_box(&m.lead))))
    });
    g.bench_function("first_page_1000/nurse", |b| {
        b.iter(|| black_box(first_page(ws, black_box(&m.nurse))))
    });
    let t = Instant::now();
    let n = all_pages(ws, &m.wide.0);
    eprintln!(
        "{}: {} sees {n} records ({} expected) in {} pages; one walk took {:.1} ms",
        m.name,
        m.wide.0,
        m.wide.1,
        n.div_ceil(PAGE),
        t.elapsed().as_secs_f64() * 1e3
    );
    g.bench_function(format!("all_pages_1000/wide_reader_{}k", n / 1000), |b| {
        b.iter(|| black_box(all_pages(ws, black_box(&m.wide.0))))
    });
    g.finish();

    let mut g = c.benchmark_group(format!("list_subjects/{}", m.name));
    g.sample_size(20);
    let q = ResourceQuery::parse_key(&m.record);
    let (perm, target) = match q.map(|q| ws.resolve(&q)) {
        Some(Ok((t, target))) => match ws.perm_of(t, "read") {
            Ok(perm) => (perm, target),
            Err(e) => panic!("{e}"),
        },
        _ => panic!("cannot resolve {}", m.record),
    };
    let n = ws
        .list_subjects(perm, &target, None, usize::MAX)
        .items
        .len();
    eprintln!(
        "{}: {n} of {} users may read {}",
        m.name,
        ws.model.users.len(),
        m.record
    );
    g.bench_function("record_read_all", |b| {
        b.iter(|| black_box(ws.list_subjects(perm, black_box(&target), None, usize::MAX)))
    });
    g.bench_function("record_read_page_100", |b| {
        b.iter(|| black_box(ws.list_subjects(perm, black_box(&target), None, 100)))
    });
    g.finish();
}

fn bench_build(c: &mut Criterion, m: &Model) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    g.bench_function(m.name, |b| {
        b.iter(|| match Snapshot::from_spec(black_box(&m.spec)) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        })
    });
    g.finish();
}

/// One-change deltas that rewrite existing records: each moves a record's
/// first label to the end of its list and back (a no-op for the decision
/// but a real write), round-robin over `n` records.
fn record_deltas(m: &Model, n: usize) -> Vec<Update> {
    let ws = &m.spec.workspaces[0];
    ws.resources
        .iter()
        .filter(|r| r.type_ == "record")
        .take(n)
        .map(|r| {
            let mut r = r.clone();
            let by = 1.min(r.labels.len());
            r.labels.rotate_left(by);
            one_change(Change::UpsertResource(r))
        })
        .collect()
}

fn one_change(change: Change) -> Update {
    Update {
        request_id: String::new(),
        source: UpdateSource::Admin,
        expected_revision: None,
        body: UpdateBody::Delta(Delta {
            workspace: "bench".into(),
            changes: vec![change],
        }),
    }
}

fn apply(snap: &Snapshot, u: &Update) -> Snapshot {
    let mut next = snap.clone();
    match snap.apply(u) {
        Ok(ws) => ws.into_iter().for_each(|w| next.insert(Arc::new(w))),
        Err(e) => panic!("{e}"),
    }
    next
}

/// The model after 10,000 one-record deltas.
fn with_overlay(m: &Model) -> Snapshot {
    record_deltas(m, 10_000)
        .iter()
        .fold(m.snap.clone(), |s, u| apply(&s, u))
}

fn bench_delta(c: &mut Criterion, m: &Model) {
    let deltas = record_deltas(m, REQUESTS);
    let busy = with_overlay(m);
    let mut g = c.benchmark_group(format!("delta/{}", m.name));
    for (name, snap) in [
        ("upsert_record", &m.snap),
        ("upsert_record_overlay_10k", &busy),
    ] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % deltas.len();
                match snap.apply(black_box(&deltas[i])) {
                    Ok(ws) => ws,
                    Err(e) => panic!("{e}"),
                }
            })
        });
    }
    let mut user = m.spec.workspaces[0].users[0].clone();
    user.id = "u-bench-new".into();
    let add_user = one_change(Change::UpsertUser(user));
    g.sample_size(10);
    g.bench_function("upsert_user_rebuild", |b| {
        b.iter(|| match m.snap.apply(black_box(&add_user)) {
            Ok(ws) => ws,
            Err(e) => panic!("{e}"),
        })
    });
    g.finish();

    // Checks once the overlay holds 10,000 changes.
    let mut g = c.benchmark_group(format!("check/{}", m.name));
    let mut i = 0;
    g.bench_function("from_strings_overlay_10k", |b| {
        b.iter(|| {
            i = (i + 1) % REQUESTS;
            black_box(&m.packed[i]).check(&busy)
        })
    });
    g.finish();
}

fn wanted(name: &str) -> bool {
    match std::env::var("ROLECALL_BENCH_MODELS") {
        Ok(v) => v.split(',').any(|m| m.trim() == name),
        Err(_) => true,
    }
}

fn engine(c: &mut Criterion) {
    if wanted("small") {
        let small = model("small", Preset::Small);
        bench_check(c, &small);
        bench_batch(c, &small);
        bench_lists(c, &small);
        bench_build(c, &small);
        bench_delta(c, &small);
    }
    if wanted("large") {
        let large = model("large", Preset::Large);
        bench_check(c, &large);
        bench_batch(c, &large);
        bench_lists(c, &large);
        bench_delta(c, &large);
        if wanted("large_hashed") {
            bench_check(c, &variant(&large, "large_hashed", record_off_the_run));
        }
        if wanted("large_holes") {
            bench_check(c, &variant(&large, "large_holes", holes_in_the_run));
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = engine
}
criterion_main!(benches);
