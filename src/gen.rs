//! Synthetic snapshots for benchmarks (`rolecall gen`).
//!
//! The shape is that of the peers' reference generator
//! (`../shared/peers/gen/gen_snapshot.py`): one `minikai` workspace (or
//! several) of users, groups, labels, Minis and records, with the same user
//! mix, the same two custom roles, the same id padding and the same label,
//! group and record distributions. The numbers come from a hand-written
//! splitmix64 generator, so the output depends only on the seed and the
//! sizes and is stable across toolchains and crate versions; it is not
//! byte-identical to the Python generator's, whose random numbers differ.
//!
//! The user mix, per workspace (SPEC 2 `minikai` roles):
//!
//! - ~2% `admin` (user 1 is always an active admin: `min_admins: 1`);
//! - ~10% quality leads: `mini_all_viewer` + `record_all_viewer`;
//! - ~30% site nurses: `record_all_viewer` + `viewer` at 1–3 `label:` scopes;
//! - ~29% editors: `member` + `editor` at 1–2 `label:` scopes;
//! - ~1% coordinators: `member` + custom `site_coordinator` at one label;
//! - the rest members: `member`, in 1–3 groups; 5% of them also hold the
//!   *disabled* custom role `legacy_reader` (which grants nothing).
//!
//! `--suspended` of all users but the first are suspended. Groups carry 1–2
//! `viewer` bindings at label scopes, ~30% also `record_all_viewer` at
//! workspace scope; ~70% are `source: directory`. Minis carry 1–2 labels;
//! records have a parent Mini and 0–2 labels (a third none), each record
//! label being one of its Mini's with p = 0.6, else any label.
//!
//! Requests ([`generate_requests`]) follow the same mix as the Python
//! generator: 45% record read, 15% record update, 25% Mini read, 15% Mini
//! chat; with probability `p_near` the resource comes from the subject's
//! label neighbourhood; 0.5% name an unknown subject and 0.5% an unknown
//! resource. **The `allowed` written by `rolecall gen --requests-out` is the
//! engine's own decision**, so such a file is a fixture for benchmarks and
//! regression, not an independent check; the Python generator's `allowed`
//! comes from a separate oracle, and `tests/peer_requests.rs` compares the
//! engine with that.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::engine::{ResourceQuery, Snapshot};
use crate::model::spec::{
    BindingSpec, CatalogName, GroupSpec, PolicySpec, ResourceSpec, RoleSpec, SnapshotSpec, Source,
    UserSpec, UserStatus, WorkspaceSpec,
};

/// The five Mini features of the default schema.
pub const FEATURES: [&str; 5] = [
    "chat",
    "prompt_recommendations",
    "citations",
    "email_drafting",
    "speech_to_text",
];

/// The named sizes of the peers' generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// 1 workspace: 1,000 users, 100 groups, 100 labels, 1,000 Minis,
    /// 100,000 records.
    Small,
    /// 1 workspace: 10,000 users, 1,000 groups, 1,000 labels, 10,000 Minis,
    /// 1,000,000 records.
    Large,
}

/// What to generate. [`Default`] is the Python generator's default size
/// (100 users, 10 groups, 10 labels, 100 Minis, 1,000 records).
#[derive(Debug, Clone, PartialEq)]
pub struct GenOptions {
    pub workspaces: usize,
    /// Per workspace, as are the other counts.
    pub users: usize,
    pub groups: usize,
    pub labels: usize,
    pub minis: usize,
    pub records: usize,
    /// Requests per workspace, for [`generate_requests`].
    pub requests: usize,
    pub seed: u64,
    /// Fraction of users (all but the first) who are suspended.
    pub suspended: f64,
    /// Probability of an extra `resource:mini:M` binding per user and group
    /// (and, divided by 4, of a `resource:record:R` one per user).
    pub resource_scopes: f64,
    /// Enabled features.
    pub features: Vec<String>,
    /// Probability that a request targets the subject's label neighbourhood.
    pub p_near: f64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            workspaces: 1,
            users: 100,
            groups: 10,
            labels: 10,
            minis: 100,
            records: 1000,
            requests: 10_000,
            seed: 1,
            suspended: 0.01,
            resource_scopes: 0.0,
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
            p_near: 0.65,
        }
    }
}

impl GenOptions {
    pub fn preset(p: Preset) -> Self {
        let (users, groups, labels, minis, records) = match p {
            Preset::Small => (1000, 100, 100, 1000, 100_000),
            Preset::Large => (10_000, 1000, 1000, 10_000, 1_000_000),
        };
        GenOptions {
            users,
            groups,
            labels,
            minis,
            records,
            requests: 100_000,
            ..GenOptions::default()
        }
    }

    /// The sizes the generator needs: at least one user, Mini and label.
    pub fn check(&self) -> Result<(), String> {
        if self.users < 1 || self.minis < 1 || self.labels < 1 {
            return Err("need at least one user, one mini and one label".to_string());
        }
        for (name, p) in [
            ("suspended", self.suspended),
            ("resource-scopes", self.resource_scopes),
            ("p-near", self.p_near),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("--{name} must be between 0 and 1, not {p}"));
            }
        }
        for f in &self.features {
            if !FEATURES.contains(&f.as_str()) {
                return Err(format!(
                    "unknown feature \"{f}\" (the features are {})",
                    FEATURES.join(", ")
                ));
            }
        }
        Ok(())
    }
}

// --------------------------------------------------------------------- rng

/// splitmix64: tiny, fast, and the same numbers everywhere, forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one stream (`workspace`, `purpose`) of one seed.
    pub fn new(seed: u64, workspace: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ 0x5851_F42D_4C95_7F2D);
        let a = r.next_u64() ^ workspace.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut r = Rng(a);
        let b = r.next_u64() ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng(b)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`); Lemire's multiply-shift, bias < n/2^64.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// A uniformly chosen element, `None` for an empty slice.
    pub fn choice<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len()))
        }
    }

    /// `k` distinct indices of `0..n` (`k <= n`), in the order drawn.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let k = k.min(n);
        if k * 4 <= n {
            let mut out = Vec::with_capacity(k);
            while out.len() < k {
                let i = self.below(n);
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            out
        } else {
            let mut all: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = i + self.below(n - i);
                all.swap(i, j);
            }
            all.truncate(k);
            all
        }
    }
}

const STREAM_MODEL: u64 = 1;
const STREAM_REQUESTS: u64 = 2;

/// `prefix` and `i` zero-padded to the width of `n`: `pad("u-", 1, 10000)`
/// is `u-00001`, so ids sort as their numbers do.
pub fn pad(prefix: &str, i: usize, n: usize) -> String {
    let width = n.to_string().len().max(1);
    format!("{prefix}{i:0width$}")
}

// ------------------------------------------------------------------- model

fn binding(role: &str, scope: Option<String>) -> BindingSpec {
    BindingSpec {
        role: role.to_string(),
        scope,
    }
}

fn label_bindings(
    rng: &mut Rng,
    role: &str,
    labels: &[String],
    lo: usize,
    hi: usize,
) -> Vec<BindingSpec> {
    let k = rng.between(lo, hi).min(labels.len());
    rng.sample(labels.len(), k)
        .into_iter()
        .map(|i| binding(role, Some(format!("label:{}", labels[i]))))
        .collect()
}

/// The custom roles of every generated workspace: `site_coordinator`, and
/// `legacy_reader`, which is disabled (it stays a resource, granting nothing).
pub fn custom_roles() -> Vec<RoleSpec> {
    let grants = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        RoleSpec {
            id: "site_coordinator".to_string(),
            name: Some("Site Coordinator".to_string()),
            description: Some("Maintains records for one site".to_string()),
            rank: 30,
            grants: grants(&["mini:read", "mini:update", "record:*"]),
            ..RoleSpec::default()
        },
        RoleSpec {
            id: "legacy_reader".to_string(),
            name: Some("Legacy Reader".to_string()),
            description: Some("replaced in spring".to_string()),
            rank: 10,
            grants: grants(&["mini:read", "record:read"]),
            disabled: true,
            ..RoleSpec::default()
        },
    ]
}

/// A deterministic synthetic snapshot: the same options give the same spec.
pub fn generate(opts: &GenOptions) -> SnapshotSpec {
    SnapshotSpec {
        workspaces: (0..opts.workspaces)
            .map(|wi| generate_workspace(wi, opts))
            .collect(),
    }
}

fn generate_workspace(wi: usize, opts: &GenOptions) -> WorkspaceSpec {
    let mut rng = Rng::new(opts.seed, wi as u64, STREAM_MODEL);
    let id = if opts.workspaces > 1 {
        format!("ws-{}", wi + 1)
    } else {
        "bench".to_string()
    };
    let ids =
        |prefix: &str, n: usize| -> Vec<String> { (1..=n).map(|i| pad(prefix, i, n)).collect() };
    let labels = ids("site-", opts.labels);
    let user_ids = ids("u-", opts.users);
    let group_ids = ids("g-", opts.groups);
    let mini_ids = ids("m-", opts.minis);
    let record_ids = ids("r-", opts.records);

    // Users.
    let mut users = Vec::with_capacity(user_ids.len());
    let mut members = Vec::new();
    for (i, uid) in user_ids.iter().enumerate() {
        let x = rng.random();
        let bindings = if i == 0 || x < 0.02 {
            vec![binding("admin", None)]
        } else if x < 0.12 {
            vec![
                binding("mini_all_viewer", None),
                binding("record_all_viewer", None),
            ]
        } else if x < 0.42 {
            let mut b = vec![binding("record_all_viewer", None)];
            b.extend(label_bindings(&mut rng, "viewer", &labels, 1, 3));
            b
        } else if x < 0.71 {
            let mut b = vec![binding("member", None)];
            b.extend(label_bindings(&mut rng, "editor", &labels, 1, 2));
            b
        } else if x < 0.72 {
            let mut b = vec![binding("member", None)];
            if let Some(l) = rng.choice(&labels) {
                b.push(binding("site_coordinator", Some(format!("label:{l}"))));
            }
            b
        } else {
            let mut b = vec![binding("member", None)];
            if rng.random() < 0.05 {
                b.push(binding("legacy_reader", None));
            }
            members.push(i);
            b
        };
        let status = if i != 0 && rng.random() < opts.suspended {
            UserStatus::Suspended
        } else {
            UserStatus::Active
        };
        users.push(UserSpec {
            id: uid.clone(),
            status,
            source: Source::Local,
            bindings,
        });
    }

    // Optional resource-scoped bindings (not in the presets).
    if opts.resource_scopes > 0.0 {
        for u in &mut users {
            if rng.random() < opts.resource_scopes {
                let role = ["viewer", "editor", "mini_all_editor"][rng.below(3)];
                if let Some(m) = rng.choice(&mini_ids) {
                    u.bindings
                        .push(binding(role, Some(format!("resource:mini:{m}"))));
                }
            }
            if rng.random() < opts.resource_scopes / 4.0 {
                let role = ["viewer", "record_all_editor"][rng.below(2)];
                if let Some(r) = rng.choice(&record_ids) {
                    u.bindings
                        .push(binding(role, Some(format!("resource:record:{r}"))));
                }
            }
        }
    }

    // Groups: label-scoped viewer bindings; members drawn from `member` users.
    let mut groups = Vec::with_capacity(group_ids.len());
    for gid in &group_ids {
        let mut bindings = Vec::new();
        if rng.random() < 0.3 {
            bindings.push(binding("record_all_viewer", None));
        }
        if opts.resource_scopes > 0.0 && rng.random() < opts.resource_scopes {
            if let Some(m) = rng.choice(&mini_ids) {
                bindings.push(binding("viewer", Some(format!("resource:mini:{m}"))));
            }
        }
        bindings.extend(label_bindings(&mut rng, "viewer", &labels, 1, 2));
        let source = if rng.random() < 0.7 {
            Source::Directory
        } else {
            Source::Local
        };
        groups.push(GroupSpec {
            id: gid.clone(),
            source,
            members: Vec::new(),
            bindings,
        });
    }
    if !groups.is_empty() {
        for &u in &members {
            let k = rng.between(1, 3);
            let mut gs = rng.sample(groups.len(), k);
            gs.sort_unstable();
            for g in gs {
                groups[g].members.push(user_ids[u].clone());
            }
        }
    }

    // Resources: Minis with 1-2 labels, records on a Mini with 0-2 labels.
    let mut resources = Vec::with_capacity(mini_ids.len() + record_ids.len());
    let mut mini_labels: Vec<Vec<usize>> = Vec::with_capacity(mini_ids.len());
    for mid in &mini_ids {
        let k = rng.between(1, 2);
        let mut ls = rng.sample(labels.len(), k);
        ls.sort_unstable();
        resources.push(ResourceSpec {
            type_: "mini".to_string(),
            id: mid.clone(),
            parent: None,
            labels: ls.iter().map(|&l| labels[l].clone()).collect(),
        });
        mini_labels.push(ls);
    }
    if !mini_ids.is_empty() {
        for rid in &record_ids {
            let m = rng.below(mini_ids.len());
            let n = rng.below(3);
            let mut ls: Vec<usize> = Vec::with_capacity(2);
            for _ in 0..n {
                let near = rng.random() < 0.6;
                let l = match (near, rng.choice(&mini_labels[m])) {
                    (true, Some(&l)) => Some(l),
                    _ => (!labels.is_empty()).then(|| rng.below(labels.len())),
                };
                if let Some(l) = l {
                    if !ls.contains(&l) {
                        ls.push(l);
                    }
                }
            }
            ls.sort_unstable();
            resources.push(ResourceSpec {
                type_: "record".to_string(),
                id: rid.clone(),
                parent: Some(format!("mini:{}", mini_ids[m])),
                labels: ls.iter().map(|&l| labels[l].clone()).collect(),
            });
        }
    }

    WorkspaceSpec {
        id,
        catalog: Some(CatalogName::Minikai),
        features: Some(opts.features.clone()),
        policy: Some(PolicySpec {
            min_admins: Some(1),
            ..PolicySpec::default()
        }),
        types: Vec::new(),
        roles: custom_roles(),
        labels,
        groups,
        users,
        resources,
    }
}

/// Adds to `ws` an active user, `u-wide-reader`, who may read about
/// `target` records: `record_all_viewer` at workspace scope plus `viewer`
/// at the first labels (in label order) until the Minis carrying them hold
/// at least `target` records. Returns the user's id and how many records it
/// may read. For benchmarks: the generated mix has nobody between a few
/// thousand records (site nurses) and all of them (leads, admins).
pub fn add_wide_reader(ws: &mut WorkspaceSpec, target: usize) -> (String, usize) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut records_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut minis_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &ws.resources {
        match (r.type_.as_str(), &r.parent) {
            ("mini", _) => {
                for l in &r.labels {
                    minis_of.entry(l).or_default().push(&r.id);
                }
            }
            ("record", Some(p)) => {
                let m = p.split_once(':').map_or(p.as_str(), |(_, id)| id);
                *records_of.entry(m).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut count = 0;
    let mut bindings = vec![binding("record_all_viewer", None)];
    for l in &ws.labels {
        if count >= target {
            break;
        }
        bindings.push(binding("viewer", Some(format!("label:{l}"))));
        for m in minis_of.get(l.as_str()).map_or(&[][..], |v| v.as_slice()) {
            if reached.insert(m) {
                count += records_of.get(m).copied().unwrap_or(0);
            }
        }
    }
    let id = "u-wide-reader".to_string();
    ws.users.push(UserSpec {
        id: id.clone(),
        status: UserStatus::Active,
        source: Source::Local,
        bindings,
    });
    (id, count)
}

// ---------------------------------------------------------------- requests

/// One request of the realistic mix (no decision attached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenRequest {
    pub workspace: String,
    pub subject: String,
    pub action: &'static str,
    /// `type:id`.
    pub resource: String,
}

/// `opts.requests` requests per workspace of `spec` (as made by
/// [`generate`]): 45% record read, 15% record update, 25% Mini read, 15%
/// Mini chat; with probability `opts.p_near` on the subject's label
/// neighbourhood; 0.5% unknown subjects, 0.5% unknown resources.
pub fn generate_requests(spec: &SnapshotSpec, opts: &GenOptions) -> Vec<GenRequest> {
    let mut out = Vec::with_capacity(opts.requests * spec.workspaces.len());
    for (wi, ws) in spec.workspaces.iter().enumerate() {
        let mut rng = Rng::new(opts.seed, wi as u64, STREAM_REQUESTS);
        workspace_requests(ws, opts, &mut rng, &mut out);
    }
    out
}

/// The label of a `label:` binding.
fn label_of(b: &BindingSpec) -> Option<&str> {
    b.scope.as_deref()?.strip_prefix("label:")
}

fn workspace_requests(
    ws: &WorkspaceSpec,
    opts: &GenOptions,
    rng: &mut Rng,
    out: &mut Vec<GenRequest>,
) {
    use std::collections::BTreeMap;
    let mut minis: Vec<&str> = Vec::new();
    let mut minis_by_label: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut records: Vec<&str> = Vec::new();
    let mut records_by_mini: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &ws.resources {
        match r.type_.as_str() {
            "mini" => {
                minis.push(&r.id);
                for l in &r.labels {
                    minis_by_label.entry(l).or_default().push(&r.id);
                }
            }
            "record" => {
                records.push(&r.id);
                if let Some(p) = &r.parent {
                    let m = p.split_once(':').map_or(p.as_str(), |(_, id)| id);
                    records_by_mini.entry(m).or_default().push(&r.id);
                }
            }
            _ => {}
        }
    }
    // Each user's label neighbourhood: labels it is bound at, directly or
    // through a group.
    let mut near: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for u in &ws.users {
        near.insert(&u.id, u.bindings.iter().filter_map(label_of).collect());
    }
    for g in &ws.groups {
        for m in &g.members {
            if let Some(ls) = near.get_mut(m.as_str()) {
                ls.extend(g.bindings.iter().filter_map(label_of));
            }
        }
    }
    for ls in near.values_mut() {
        ls.sort_unstable();
        ls.dedup();
    }
    let users: Vec<&str> = ws.users.iter().map(|u| u.id.as_str()).collect();

    for _ in 0..opts.requests {
        let x = rng.random();
        let (is_record, action) = if x < 0.45 {
            (true, "read")
        } else if x < 0.60 {
            (true, "update")
        } else if x < 0.85 {
            (false, "read")
        } else {
            (false, "chat")
        };
        let y = rng.random();
        let subject = match rng.choice(&users) {
            Some(u) if y >= 0.005 => u.to_string(),
            _ => format!("u-unknown-{}", rng.below(1000)),
        };
        let ls = near.get(subject.as_str()).map_or(&[][..], |v| v.as_slice());
        let mut mini = None;
        let mut record = None;
        if !ls.is_empty() && rng.random() < opts.p_near {
            mini = rng
                .choice(ls)
                .and_then(|l| minis_by_label.get(l))
                .and_then(|ms| rng.choice(ms))
                .copied();
            if is_record {
                record = mini
                    .and_then(|m| records_by_mini.get(m))
                    .and_then(|rs| rng.choice(rs))
                    .copied();
            }
        }
        let mini = mini.or_else(|| rng.choice(&minis).copied());
        if is_record && record.is_none() {
            record = rng.choice(&records).copied();
        }
        let (t, id) = if is_record {
            ("record", record)
        } else {
            ("mini", mini)
        };
        let resource = match id {
            Some(id) if !(0.005..0.01).contains(&y) => format!("{t}:{id}"),
            _ => format!("{t}:{}-missing-{}", &t[..1], rng.below(1000)),
        };
        out.push(GenRequest {
            workspace: ws.id.clone(),
            subject,
            action,
            resource,
        });
    }
}

/// The engine's decision on one request; an error for a request the engine
/// refuses to decide (unknown workspace, type or action).
pub fn decide(snapshot: &Snapshot, r: &GenRequest) -> Result<bool, String> {
    let ws = snapshot
        .workspace(&r.workspace)
        .ok_or_else(|| format!("unknown workspace {}", r.workspace))?;
    let q = ResourceQuery::parse_key(&r.resource)
        .ok_or_else(|| format!("resource \"{}\" must be written type:id", r.resource))?;
    let (t, resolved) = ws.resolve(&q).map_err(|e| e.to_string())?;
    let perm = ws.perm_of(t, r.action).map_err(|e| e.to_string())?;
    Ok(ws.decide(&r.subject, perm, &resolved).allowed())
}

// ------------------------------------------------------------------ output

/// Writes a snapshot as JSON, one group, user or resource per line (so the
/// file is greppable and diffs well; JSON is valid YAML too).
pub fn write_snapshot<W: Write + ?Sized>(w: &mut W, spec: &SnapshotSpec) -> io::Result<()> {
    w.write_all(b"{\"workspaces\": [\n")?;
    for (wi, ws) in spec.workspaces.iter().enumerate() {
        let WorkspaceSpec {
            id,
            catalog,
            features,
            policy,
            types,
            roles,
            labels,
            groups,
            users,
            resources,
        } = ws;
        let head = WorkspaceSpec {
            id: id.clone(),
            catalog: *catalog,
            features: features.clone(),
            policy: policy.clone(),
            types: types.clone(),
            roles: roles.clone(),
            labels: labels.clone(),
            ..WorkspaceSpec::default()
        };
        let head = serde_json::to_string(&head)?;
        // `{...}` without its closing brace; the big lists follow.
        w.write_all(&head.as_bytes()[..head.len() - 1])?;
        write_list(w, "groups", groups)?;
        write_list(w, "users", users)?;
        write_list(w, "resources", resources)?;
        w.write_all(if wi + 1 < spec.workspaces.len() {
            b"},\n"
        } else {
            b"}\n"
        })?;
    }
    w.write_all(b"]}\n")
}

fn write_list<W: Write + ?Sized, T: Serialize>(
    w: &mut W,
    key: &str,
    items: &[T],
) -> io::Result<()> {
    write!(w, ",\n \"{key}\": [")?;
    for (i, it) in items.iter().enumerate() {
        w.write_all(if i == 0 { b"\n  " } else { b",\n  " })?;
        serde_json::to_writer(&mut *w, it)?;
    }
    w.write_all(if items.is_empty() { b"]" } else { b"\n ]" })
}

/// Writes requests as JSON lines with the engine's decision in `allowed`.
pub fn write_requests<W: Write + ?Sized>(
    w: &mut W,
    requests: &[GenRequest],
    allowed: &[bool],
) -> io::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        workspace: &'a str,
        subject: &'a str,
        action: &'a str,
        resource: &'a str,
        allowed: bool,
    }
    for (r, &ok) in requests.iter().zip(allowed) {
        let line = Line {
            workspace: &r.workspace,
            subject: &r.subject,
            action: r.action,
            resource: &r.resource,
            allowed: ok,
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

// --------------------------------------------------------------------- CLI

/// Options of `rolecall gen`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// A named size; the counts below override it.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Number of workspaces (ids `ws-1`…; a single one is `bench`).
    #[arg(long)]
    pub workspaces: Option<usize>,
    /// Users per workspace.
    #[arg(long)]
    pub users: Option<usize>,
    /// Groups per workspace.
    #[arg(long)]
    pub groups: Option<usize>,
    /// Labels per workspace.
    #[arg(long)]
    pub labels: Option<usize>,
    /// Minis per workspace.
    #[arg(long)]
    pub minis: Option<usize>,
    /// Records per workspace.
    #[arg(long)]
    pub records: Option<usize>,
    /// Requests per workspace (with --requests-out).
    #[arg(long)]
    pub requests: Option<usize>,
    /// The same seed and sizes give the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of suspended users.
    #[arg(long, default_value_t = 0.01)]
    pub suspended: f64,
    /// Probability of an extra resource:mini:M (and /4: resource:record:R)
    /// binding per user and group.
    #[arg(long, default_value_t = 0.0)]
    pub resource_scopes: f64,
    /// Comma-separated enabled features (default: all five Mini features;
    /// `""` for none).
    #[arg(
        long,
        default_value = "chat,prompt_recommendations,citations,email_drafting,speech_to_text"
    )]
    pub features: String,
    /// Probability that a request targets the subject's label neighbourhood.
    #[arg(long, default_value_t = 0.65)]
    pub p_near: f64,
    /// Where to write the snapshot (JSON); `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write requests as JSON lines, `allowed` being the engine's
    /// decision (not an independent oracle's, unlike the Python generator).
    #[arg(long)]
    pub requests_out: Option<PathBuf>,
}

impl GenArgs {
    pub fn options(&self) -> GenOptions {
        let mut o = self.preset.map(GenOptions::preset).unwrap_or_default();
        let set = |v: Option<usize>, d: &mut usize| {
            if let Some(v) = v {
                *d = v;
            }
        };
        set(self.workspaces, &mut o.workspaces);
        set(self.users, &mut o.users);
        set(self.groups, &mut o.groups);
        set(self.labels, &mut o.labels);
        set(self.minis, &mut o.minis);
        set(self.records, &mut o.records);
        set(self.requests, &mut o.requests);
        o.seed = self.seed;
        o.suspended = self.suspended;
        o.resource_scopes = self.resource_scopes;
        o.features = self
            .features
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        o.p_near = self.p_near;
        o
    }
}

/// Writes `path` through a temporary file renamed into place, or to
/// standard output for `-`.
fn write_file(path: &Path, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), String> {
    let err = |e: io::Error| format!("{}: {e}", path.display());
    if path == Path::new("-") {
        let stdout = io::stdout();
        let mut w = BufWriter::new(stdout.lock());
        f(&mut w).map_err(err)?;
        return w.flush().map_err(err);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        f(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // Nothing half-written is left behind (the rename may be what failed).
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

fn size_of(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) if path != Path::new("-") => format!("{:.1} MB", m.len() as f64 / 1e6),
        _ => "stdout".to_string(),
    }
}

pub fn run(args: &GenArgs) -> Result<(), String> {
    let opts = args.options();
    opts.check()?;
    let t0 = Instant::now();
    let spec = generate(&opts);
    let t1 = Instant::now();
    write_file(&args.out, |w| write_snapshot(w, &spec))?;
    let t2 = Instant::now();
    eprintln!(
        "gen: {} ws x ({} users, {} groups, {} labels, {} minis, {} records) seed={}",
        opts.workspaces, opts.users, opts.groups, opts.labels, opts.minis, opts.records, opts.seed
    );
    eprintln!(
        "gen: {} {} (build {:.2}s, write {:.2}s)",
        args.out.display(),
        size_of(&args.out),
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64()
    );
    if let Some(path) = &args.requests_out {
        let snapshot = Snapshot::from_spec(&spec)
            .map_err(|e| format!("generated snapshot is invalid: {e}"))?;
        let t3 = Instant::now();
        let requests = generate_requests(&spec, &opts);
        let allowed = requests
            .iter()
            .map(|r| decide(&snapshot, r))
            .collect::<Result<Vec<bool>, String>>()?;
        write_file(path, |w| write_requests(w, &requests, &allowed))?;
        let n = allowed.len().max(1);
        let yes = allowed.iter().filter(|&&a| a).count();
        eprintln!(
            "gen: {} {}, {} requests, {:.1}% allowed by the engine (index {:.2}s, requests {:.2}s)",
            path.display(),
            size_of(path),
            requests.len(),
            100.0 * yes as f64 / n as f64,
            (t3 - t2).as_secs_f64(),
            t3.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The rename onto a directory fails after the whole file is written.
        let target = dir.path().join("out");
        std::fs::create_dir(&target).unwrap();
        let e = write_file(&target, |w: &mut dyn Write| w.write_all(b"{}")).unwrap_err();
        assert!(e.contains("out"), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        // And a good write leaves only the file.
        let good = dir.path().join("good.json");
        write_file(&good, |w: &mut dyn Write| w.write_all(b"{}")).unwrap();
        assert_eq!(std::fs::read(&good).unwrap(), b"{}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn pad_matches_the_python_generator() {
        assert_eq!(pad("u-", 1, 10_000), "u-00001");
        assert_eq!(pad("u-", 1, 1000), "u-0001");
        assert_eq!(pad("site-", 7, 9), "site-7");
        assert_eq!(pad("r-", 1_000_000, 1_000_000), "r-1000000");
    }

    #[test]
    fn sample_draws_distinct_indices() {
        let mut rng = Rng::new(7, 0, 0);
        for (n, k) in [(10, 3), (4, 3), (3, 3), (100, 2), (1, 1)] {
            let s = rng.sample(n, k);
            let mut d = s.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), k);
            assert!(s.iter().all(|&i| i < n));
        }
    }

    #[test]
    fn written_snapshot_reads_back() {
        let opts = GenOptions {
            users: 30,
            groups: 4,
            labels: 5,
            minis: 10,
            records: 50,
            ..GenOptions::default()
        };
        let spec = generate(&opts);
        let mut buf = Vec::new();
        write_snapshot(&mut buf, &spec).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let back: SnapshotSpec = crate::model::parse::from_text(&text, "gen").unwrap();
        assert_eq!(back, spec);
    }
}
