//! Measurements that criterion does not make, on a model built in memory by
//! `rolecall::gen`:
//!
//! ```text
//! cargo run --release --example engine_stats -- rss large
//!     resident memory (VmRSS, VmHWM) after each step of building `large`,
//!     against the size of its JSON
//! cargo run --release --example engine_stats -- latency large
//!     per-request check cost over the mix: p50/p90/p99 of the time of one
//!     request repeated (warm caches), and of the round-robin mean
//! cargo run --release --example engine_stats -- parts large
//!     round-robin mean of each step of a check (lookups, decide)
//! cargo run --release --example engine_stats -- checks small 100000
//!     builds `small`, then runs that many checks and nothing else: run it
//!     under `valgrind --tool=memcheck` (or dhat) with 0 and with N checks;
//!     the difference in allocations is what the checks allocate
//! cargo run --release --example engine_stats -- list large [USER [PAGE [WALKS]]]
//!     complete list_visible walks of a user's records (default:
//!     `u-wide-reader`, pages of 1,000, once), also for the profiler
//!     (`perf record -D <ms>` to skip the build)
//! cargo run --release --example engine_stats -- memlat
//!     the latency of one dependent memory load, over buffers from 1 MB to
//!     128 MB: where the machine's cache ends and what a miss costs
//! ```

use std::hint::black_box;
use std::io::{self, Write};
use std::time::Instant;

use rolecall::engine::{ResourceQuery, Snapshot};
use rolecall::gen::{self, GenOptions, GenRequest, Preset};

fn status(field: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_else(|| "?".to_string())
}

fn mem(step: &str, t: Instant) {
    println!(
        "{step:<44} VmRSS {:>12}  VmHWM {:>12}  ({:.2}s)",
        status("VmRSS:"),
        status("VmHWM:"),
        t.elapsed().as_secs_f64()
    );
}

/// Counts bytes written.
struct Count(usize);
impl Write for Count {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn preset(name: &str) -> Preset {
    match name {
        "large" => Preset::Large,
        _ => Preset::Small,
    }
}

fn check(snap: &Snapshot, r: &GenRequest) -> bool {
    let Some(ws) = snap.workspace(&r.workspace) else {
        return false;
    };
    let Some(q) = ResourceQuery::parse_key(&r.resource) else {
        return false;
    };
    let Ok((t, resolved)) = ws.resolve(&q) else {
        return false;
    };
    let Ok(perm) = ws.perm_of(t, r.action) else {
        return false;
    };
    ws.decide(&r.subject, perm, &resolved).allowed()
}

fn build(p: Preset, requests: usize) -> (Snapshot, Vec<GenRequest>) {
    let opts = GenOptions {
        requests,
        ..GenOptions::preset(p)
    };
    let mut spec = gen::generate(&opts);
    let reqs = gen::generate_requests(&spec, &opts);
    gen::add_wide_reader(&mut spec.workspaces[0], 100_000);
    match Snapshot::from_spec(&spec) {
        Ok(s) => (s, reqs),
        Err(e) => panic!("{e}"),
    }
}

fn rss(p: Preset) {
    let t = Instant::now();
    mem("start", t);
    let spec = gen::generate(&GenOptions::preset(p));
    mem("spec generated (SnapshotSpec in memory)", t);
    let mut count = Count(0);
    let _ = gen::write_snapshot(&mut count, &spec);
    println!("JSON size: {:.1} MB", count.0 as f64 / 1e6);
    let snap = match Snapshot::from_spec(&spec) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    mem("snapshot built (spec still held)", t);
    drop(spec);
    mem("spec dropped (only the snapshot held)", t);
    let n: usize = snap
        .workspaces()
        .iter()
        .map(|w| w.model.resources.len())
        .sum();
    let kept: usize = snap
        .workspaces()
        .iter()
        .map(|w| w.model.spec_head.heap_size())
        .sum();
    println!(
        "{n} resources; the normalised spec each workspace keeps (users, groups, roles, as \
         compact JSON; resources are kept once, in the table) holds about {:.1} MB of heap",
        kept as f64 / 1e6
    );
    for w in snap.workspaces() {
        let parts = w.model.resources.base().heap_sizes();
        let index = w.index.heap_sizes();
        let total: usize = parts.iter().chain(&index).map(|(_, b)| b).sum();
        for (name, bytes) in parts.iter().chain(&index) {
            println!("  {name:<36} {:>6.1} MB", *bytes as f64 / 1e6);
        }
        println!("  {:<36} {:>6.1} MB", "tables in all", total as f64 / 1e6);
    }
}

fn latency(p: Preset) {
    let (snap, reqs) = build(p, 4096);
    // Round-robin mean, as the criterion bench measures it.
    let rounds = 200;
    let t = Instant::now();
    let mut yes = 0usize;
    for _ in 0..rounds {
        for r in &reqs {
            yes += usize::from(check(&snap, black_box(r)));
        }
    }
    let mean = t.elapsed().as_nanos() as f64 / (rounds * reqs.len()) as f64;
    black_box(yes);
    // Each request repeated: its own (warm) cost.
    let reps = 64;
    let mut each: Vec<f64> = reqs
        .iter()
        .map(|r| {
            let t = Instant::now();
            for _ in 0..reps {
                black_box(check(&snap, black_box(r)));
            }
            t.elapsed().as_nanos() as f64 / reps as f64
        })
        .collect();
    each.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| each[((each.len() - 1) as f64 * f) as usize];
    println!(
        "check from strings over {} requests: round-robin mean {mean:.0} ns; \
         each request repeated {reps}x: p50 {:.0} ns, p90 {:.0} ns, p99 {:.0} ns, max {:.0} ns",
        reqs.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}

/// Round-robin mean of each step of a check, to see where the time goes.
fn parts(p: Preset) {
    let (snap, reqs) = build(p, 4096);
    let Some(ws) = snap.workspace("bench") else {
        return;
    };
    let rounds = 200;
    let time = |name: &str, f: &mut dyn FnMut(&GenRequest) -> usize| {
        let t = Instant::now();
        let mut x = 0usize;
        for _ in 0..rounds {
            for r in &reqs {
                x = x.wrapping_add(f(black_box(r)));
            }
        }
        black_box(x);
        let ns = t.elapsed().as_nanos() as f64 / (rounds * reqs.len()) as f64;
        println!("{name:<48} {ns:>7.0} ns");
    };
    time("workspace + parse_key", &mut |r| {
        usize::from(snap.workspace(&r.workspace).is_some())
            + usize::from(ResourceQuery::parse_key(&r.resource).is_some())
    });
    time("resolve (type lookup + Resources::find)", &mut |r| {
        ResourceQuery::parse_key(&r.resource)
            .and_then(|q| ws.resolve(&q).ok())
            .map_or(0, |(t, _)| t as usize)
    });
    time("perm (type + action by name)", &mut |r| {
        let t = if r.resource.starts_with("mini") {
            "mini"
        } else {
            "record"
        };
        ws.perm("action", t, r.action)
            .map_or(0, |(_, p)| p as usize)
    });
    let pre: Vec<_> = reqs
        .iter()
        .filter_map(|r| {
            let q = ResourceQuery::parse_key(&r.resource)?;
            let (t, res) = ws.resolve(&q).ok()?;
            let (_, perm) = ws
                .perm("action", &ws.model.schema.ty(t).name, r.action)
                .ok()?;
            Some((r.subject.clone(), perm, res))
        })
        .collect();
    let t = Instant::now();
    let mut x = 0usize;
    for _ in 0..rounds {
        for (s, perm, res) in &pre {
            x += usize::from(ws.decide(black_box(s), *perm, black_box(res)).allowed());
        }
    }
    black_box(x);
    println!(
        "{:<48} {:>7.0} ns",
        "decide (pre-resolved)",
        t.elapsed().as_nanos() as f64 / (rounds * pre.len()) as f64
    );
    time("whole check from strings", &mut |r| {
        usize::from(check(&snap, r))
    });
}

fn checks(p: Preset, n: usize) {
    let (snap, reqs) = build(p, 4096);
    let mut yes = 0usize;
    for i in 0..n {
        yes += usize::from(check(&snap, &reqs[i % reqs.len()]));
    }
    println!("{n} checks, {yes} allowed");
}

fn list(p: Preset, user: &str, page_size: usize, walks: usize) {
    let (snap, _) = build(p, 16);
    let Some(ws) = snap.workspace("bench") else {
        return;
    };
    for _ in 0..walks {
        let t = Instant::now();
        let mut after: Option<String> = None;
        let (mut n, mut pages) = (0, 0);
        let mut first = 0.0;
        loop {
            let page =
                match ws.list_visible(user, "record", "read", None, after.as_deref(), page_size) {
                    Ok(p) => p,
                    Err(e) => panic!("{e}"),
                };
            if pages == 0 {
                first = t.elapsed().as_secs_f64() * 1e3;
            }
            pages += 1;
            n += page.items.len();
            match page.next_after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        println!(
            "{user}: {n} ids in {pages} pages of {page_size} in {:.1} ms (first page {first:.2} ms)",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// Chases a random cycle through a buffer, one load per cache line, each
/// load's address given by the one before: the time per step is the
/// latency of a load from wherever the buffer fits.
fn memlat() {
    const LINE: usize = 16; // u32s per 64-byte line
    for mb in [1usize, 2, 4, 8, 16, 32, 64, 128] {
        let lines = (mb << 20) / 64;
        let mut order: Vec<usize> = (0..lines).collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in (1..lines).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let mut next = vec![0u32; lines * LINE];
        for w in 0..lines {
            next[order[w] * LINE] = (order[(w + 1) % lines] * LINE) as u32;
        }
        let steps = 4_000_000usize;
        let mut at = 0u32;
        for _ in 0..lines {
            at = next[at as usize]; // warm up: touch every line once
        }
        let t = Instant::now();
        for _ in 0..steps {
            at = next[black_box(at) as usize];
        }
        let ns = t.elapsed().as_nanos() as f64 / steps as f64;
        black_box(at);
        println!("{mb:>4} MB  {ns:>6.1} ns per dependent load");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let p = preset(arg(1));
    match arg(0) {
        "rss" => rss(p),
        "latency" => latency(p),
        "parts" => parts(p),
        "memlat" => memlat(),
        "checks" => checks(p, arg(2).parse().unwrap_or(100_000)),
        "list" => list(
            p,
            match arg(2) {
                "" => "u-wide-reader",
                u => u,
            },
            arg(3).parse().unwrap_or(1000),
            arg(4).parse().unwrap_or(1),
        ),
        _ => {
            eprintln!("usage: engine_stats rss|latency|parts|checks|list|memlat small|large [...]")
        }
    }
}
