//! Arbitrary Authz-like requests against the built-in demo model: subject,
//! action, type, id, parent and labels drawn from the model's vocabulary
//! plus junk. Never a panic, and every answer agrees with the others:
//!
//! - `decide` and `explain` give the same decision, and an allowed
//!   explanation names the bindings that grant it;
//! - for an existing resource, `list_visible` (paged, as the API pages)
//!   lists it exactly when `decide` allows it;
//! - `list_subjects` names the subject exactly when `decide` allows it.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rolecall::engine::{CompiledWorkspace, ResourceQuery, Snapshot};

static DEMO: LazyLock<Snapshot> = LazyLock::new(|| {
    match rolecall::server::load_snapshot_text(include_str!("../../src/demo.yaml"), "demo") {
        Ok(s) => s,
        Err(e) => panic!("the demo model does not load: {e}"),
    }
});

/// The words requests are built from, per workspace.
struct Vocabulary {
    users: Vec<String>,
    types: Vec<String>,
    actions: Vec<String>,
    ids: Vec<String>,
    keys: Vec<String>,
    labels: Vec<String>,
}

static VOCABULARY: LazyLock<Vec<Vocabulary>> = LazyLock::new(|| {
    DEMO.workspaces()
        .iter()
        .map(|w| {
            let m = &w.model;
            let spec = match m.to_spec() {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            let mut actions: Vec<String> = m
                .schema
                .types
                .iter()
                .flat_map(|t| t.actions.iter().map(|a| a.name.clone()))
                .collect();
            actions.sort();
            actions.dedup();
            Vocabulary {
                users: spec.users.iter().map(|u| u.id.clone()).collect(),
                types: m.schema.types.iter().map(|t| t.name.clone()).collect(),
                actions,
                ids: spec.resources.iter().map(|r| r.id.clone()).collect(),
                keys: spec
                    .resources
                    .iter()
                    .map(|r| format!("{}:{}", r.type_, r.id))
                    .collect(),
                labels: m.labels.to_vec(),
            }
        })
        .collect()
});

/// A word from the vocabulary, or junk.
#[derive(Debug, Arbitrary)]
enum Word {
    Known(u8),
    Junk(String),
}

impl Word {
    fn pick<'a>(&'a self, from: &'a [String]) -> &'a str {
        match self {
            Word::Known(i) if !from.is_empty() => &from[*i as usize % from.len()],
            Word::Known(_) => "",
            Word::Junk(s) => s,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Request {
    workspace: u8,
    subject: Word,
    action: Word,
    type_: Word,
    id: Word,
    /// Some: a resource not created yet, with this parent (`type:id`).
    new_with_parent: Option<Option<Word>>,
    labels: Vec<Word>,
    page_size: u8,
}

fuzz_target!(|r: Request| {
    let workspaces = DEMO.workspaces();
    let i = r.workspace as usize % workspaces.len();
    let (ws, v) = (workspaces[i].as_ref(), &VOCABULARY[i]);
    let subject = r.subject.pick(&v.users);
    let action = r.action.pick(&v.actions);
    let type_ = r.type_.pick(&v.types);
    let labels: Vec<String> = r
        .labels
        .iter()
        .map(|l| l.pick(&v.labels).to_string())
        .collect();
    let query = match &r.new_with_parent {
        None => ResourceQuery::Existing {
            type_,
            id: r.id.pick(&v.ids),
        },
        Some(parent) => ResourceQuery::New {
            type_,
            parent: parent.as_ref().map(|p| p.pick(&v.keys)),
            labels: &labels,
        },
    };
    check(ws, subject, action, &query, (r.page_size as usize % 7) + 1);
});

fn check(ws: &CompiledWorkspace, subject: &str, action: &str, q: &ResourceQuery<'_>, page: usize) {
    let Ok((t, target)) = ws.resolve(q) else {
        return;
    };
    let type_name = ws.model.schema.ty(t).name.clone();
    let Ok((_, perm)) = ws.perm("resource.type", &type_name, action) else {
        return;
    };
    let decision = ws.decide(subject, perm, &target);
    let explained = ws.explain(subject, action, perm, q, &target);
    assert_eq!(decision, explained.decision, "decide and explain disagree");
    if decision.allowed() {
        assert!(
            !explained.granted_by.is_empty(),
            "allowed with no granting binding: {explained:?}"
        );
    }

    // list_subjects, paged.
    let mut listed = false;
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let p = ws.list_subjects(perm, &target, after.as_deref(), page);
        listed |= p.items.iter().any(|g| g.user == subject);
        match p.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(
        listed,
        decision.allowed(),
        "list_subjects and decide disagree on {subject} {action} {q:?}: {decision:?}"
    );

    // list_visible, paged, for an existing resource.
    if let ResourceQuery::Existing { id, .. } = q {
        if ws.model.resources.find(t, id).is_none() {
            return;
        }
        let mut seen = false;
        let mut after: Option<String> = None;
        for _ in 0..10_000 {
            let p = match ws.list_visible(subject, &type_name, action, None, after.as_deref(), page)
            {
                Ok(p) => p,
                Err(e) => panic!("list_visible refused what check accepted: {e}"),
            };
            seen |= p.items.iter().any(|x| x == id);
            match p.next_after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        assert_eq!(
            seen,
            decision.allowed(),
            "list_visible and decide disagree on {subject} {action} {q:?}: {decision:?}"
        );
    }
}
