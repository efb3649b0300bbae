//! The indexed engine against a naive reference oracle, on random valid
//! snapshots: every check, every list (walked page by page and in one
//! page), every subject list, every explanation, and the policy invariants.
//!
//! Each property runs 1000 cases; each case compares thousands of
//! decisions. Run with `cargo test --release --test oracle`.

mod deltas;
mod reference;
mod strategy;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use rolecall::engine::{
    CompiledWorkspace, Reason, RequestError, Resolved, ResourceQuery, Snapshot,
};
use rolecall::model::spec::{CatalogName, PolicySpec, SnapshotSpec, UserStatus, WorkspaceSpec};

use reference::{GrantingBinding, Oracle, Res, Verdict};
use strategy::{workspace_plan, Built, WorkspacePlan};

/// A user no workspace has.
const GHOST: &str = "ghost";

/// 1000 cases per property, or more with `ROLECALL_ORACLE_CASES` for a
/// deeper search.
fn config() -> ProptestConfig {
    let cases = std::env::var("ROLECALL_ORACLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000u32)
        .max(1000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One or two workspaces (the second shares user ids with the first, so a
/// leak between tenants would show).
fn snapshot_plans() -> impl Strategy<Value = Vec<WorkspacePlan>> {
    proptest::collection::vec(workspace_plan(), 1..=2)
}

fn build(plans: &[WorkspacePlan]) -> (SnapshotSpec, Vec<Built>) {
    let built: Vec<Built> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| p.build(["ws-a", "ws-b"][i]))
        .collect();
    let spec = SnapshotSpec {
        workspaces: built.iter().map(|b| b.spec.clone()).collect(),
    };
    (spec, built)
}

fn compile(spec: &SnapshotSpec) -> Result<Snapshot, TestCaseError> {
    Snapshot::from_spec(spec).map_err(|e| {
        TestCaseError::fail(format!(
            "a snapshot valid by construction was rejected: {e}\n{}",
            serde_norway::to_string(spec).unwrap_or_default()
        ))
    })
}

/// Every existing resource of the workspace, implicit ones included, then
/// one unknown id per type.
fn all_targets(o: &Oracle<'_>) -> Vec<(String, String, Option<Res>)> {
    let mut out = Vec::new();
    for t in o.type_names() {
        for r in o.all_of_type(&t) {
            let id = r.id.clone().unwrap_or_default();
            out.push((t.clone(), id, Some(r)));
        }
        out.push((t.clone(), format!("no-such-{t}"), None));
    }
    out
}

fn subjects_of(ws: &WorkspaceSpec) -> Vec<String> {
    let mut v: Vec<String> = ws.users.iter().map(|u| u.id.clone()).collect();
    v.push(GHOST.to_string());
    v
}

/// Whether the reason the engine gives is one of the rules the oracle
/// finds broken (the engine may report any one of them first).
fn reason_is_a_broken_rule(reason: Reason, v: &Verdict) -> bool {
    match reason {
        Reason::Granted => v.allowed(),
        Reason::UnknownSubject => v.unknown_subject,
        Reason::Suspended => v.suspended,
        Reason::UnknownResource => v.unknown_resource,
        Reason::FeatureDisabled => v.feature_disabled,
        Reason::NoGrant => v.no_grant,
        Reason::NoReach => v.no_reach,
        Reason::RankTooLow => v.rank_too_low,
    }
}

fn views(bs: &[rolecall::engine::BindingView]) -> Vec<GrantingBinding> {
    let mut v: Vec<GrantingBinding> = bs
        .iter()
        .map(|b| GrantingBinding {
            role: b.role.clone(),
            scope: b.scope.clone(),
            via_group: b.via_group.clone(),
        })
        .collect();
    v.sort();
    v
}

/// A not-yet-created resource as the oracle sees it, or `None` when its
/// named parent does not exist ("unknown resource").
fn oracle_new(o: &Oracle<'_>, n: &strategy::NewResource) -> Option<Res> {
    let parent = match &n.parent {
        None => None,
        Some(p) => {
            let (pt, pid) = o.parent_key(&n.ty, p);
            o.find(&pt, &pid)?;
            Some((pt, pid))
        }
    };
    Some(Res {
        ty: n.ty.clone(),
        id: None,
        parent,
        labels: n.labels.clone(),
    })
}

/// One resource of a check, as the engine and the oracle see it.
struct Target<'a> {
    /// How failures name it.
    what: &'a str,
    query: &'a ResourceQuery<'a>,
    /// How the explanation of an unknown resource must name it.
    missing: String,
    resolved: &'a Resolved,
    x: Option<&'a Res>,
}

/// Compares one check, its explanation, and the reason given.
fn compare_check(
    cw: &CompiledWorkspace,
    o: &Oracle<'_>,
    subject: &str,
    action: &str,
    perm: u32,
    target: &Target<'_>,
) -> Result<(), TestCaseError> {
    let Target {
        what,
        query,
        resolved,
        x,
        ..
    } = *target;
    let d = cw.decide(subject, perm, resolved);
    let v = o.verdict(subject, action, x);
    let want = o.allowed(subject, action, x);
    prop_assert_eq!(
        d.allowed(),
        want,
        "check {} {} {} in {}: engine says {:?}, oracle finds {:?}",
        subject,
        action,
        what,
        o.ws.id,
        d.reason,
        v
    );
    prop_assert!(
        reason_is_a_broken_rule(d.reason, &v),
        "check {} {} {}: engine's reason {:?} is not a broken rule ({:?})",
        subject,
        action,
        what,
        d.reason,
        v
    );
    let e = cw.explain(subject, action, perm, query, resolved);
    prop_assert_eq!(e.decision, d, "explain disagrees with decide on {}", what);
    prop_assert!(!e.message.is_empty());
    if d.reason == Reason::UnknownResource {
        prop_assert!(
            e.message.contains(&target.missing),
            "the explanation \"{}\" does not name \"{}\"",
            e.message,
            target.missing
        );
    }
    // The parent whose `read` decides reach, for types that have one, on
    // the decisions reach took part in (an allow, a denial by reach).
    let want_reach = x
        .filter(|_| matches!(d.reason, Reason::Granted | Reason::NoReach))
        .filter(|x| o.parent_type(&x.ty).is_some())
        .and_then(|x| x.parent.as_ref())
        .map(|(pt, pid)| format!("{pt}:{pid}"));
    prop_assert_eq!(e.reach_through, want_reach, "reach_through of {}", what);
    // The bindings that grant the action on the resource itself: always on
    // an allow; on a denial only when the grant exists but reach or rank
    // fails (the explanation says "granted by …, but …"); never otherwise.
    match d.reason {
        Reason::Granted | Reason::NoReach | Reason::RankTooLow => {
            let x = x.ok_or_else(|| TestCaseError::fail("granted on a missing resource"))?;
            let want = o.granting(subject, action, x);
            prop_assert!(!want.is_empty());
            prop_assert_eq!(
                views(&e.granted_by),
                want,
                "granted_by of {} {} {}",
                subject,
                action,
                what
            );
        }
        _ => prop_assert!(
            e.granted_by.is_empty(),
            "granted_by is not empty on a {:?} denial",
            d.reason
        ),
    }
    Ok(())
}

fn checks_agree(plans: &[WorkspacePlan]) -> Result<(), TestCaseError> {
    let (spec, built) = build(plans);
    let snap = compile(&spec)?;
    for b in &built {
        let cw = snap
            .workspace(&b.spec.id)
            .ok_or_else(|| TestCaseError::fail("workspace missing"))?;
        checks_agree_on(cw, b)?;
    }
    Ok(())
}

/// Every check on one compiled workspace against the oracle on its spec.
fn checks_agree_on(cw: &CompiledWorkspace, b: &Built) -> Result<(), TestCaseError> {
    {
        let o = Oracle::new(&b.spec);
        let subjects = subjects_of(&b.spec);
        for (t, id, x) in all_targets(&o) {
            let q = ResourceQuery::Existing { type_: &t, id: &id };
            let (_, resolved) = cw
                .resolve(&q)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(matches!(resolved, Resolved::Missing), x.is_none());
            for a in o.actions(&t) {
                let (_, perm) = cw
                    .perm("action", &t, &a)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let target = Target {
                    what: &format!("{t}:{id}"),
                    query: &q,
                    missing: format!("{t}:{id} does not exist"),
                    resolved: &resolved,
                    x: x.as_ref(),
                };
                for s in &subjects {
                    compare_check(cw, &o, s, &a, perm, &target)?;
                }
            }
        }
        for n in &b.news {
            let q = ResourceQuery::New {
                type_: &n.ty,
                parent: n.parent.as_deref(),
                labels: &n.labels,
            };
            let (_, resolved) = cw
                .resolve(&q)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let x = oracle_new(&o, n);
            prop_assert_eq!(matches!(resolved, Resolved::Missing), x.is_none());
            for a in o.actions(&n.ty) {
                let (_, perm) = cw
                    .perm("action", &n.ty, &a)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let target = Target {
                    what: &format!("{n:?}"),
                    query: &q,
                    missing: match &n.parent {
                        Some(p) => {
                            let (pt, pid) = o.parent_key(&n.ty, p);
                            format!("the parent {pt}:{pid} named for a new {}", n.ty)
                        }
                        None => String::new(),
                    },
                    resolved: &resolved,
                    x: x.as_ref(),
                };
                for s in &subjects {
                    compare_check(cw, &o, s, &a, perm, &target)?;
                }
            }
        }
    }
    Ok(())
}

/// Walks a list `size` ids at a time through the `next_after` cursor.
fn walk(
    cw: &CompiledWorkspace,
    subject: &str,
    t: &str,
    a: &str,
    parent: Option<&str>,
    size: usize,
) -> Result<Vec<String>, TestCaseError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let page = cw
            .list_visible(subject, t, a, parent, after.as_deref(), size)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(page.items.len() <= size);
        if page.next_after.is_some() {
            prop_assert_eq!(page.items.len(), size, "a short page with a cursor");
            prop_assert_eq!(page.next_after.as_ref(), page.items.last());
        }
        out.extend(page.items);
        match page.next_after {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
    Err(TestCaseError::fail("the cursor never ends"))
}

fn lists_agree(plans: &[WorkspacePlan]) -> Result<(), TestCaseError> {
    let (spec, built) = build(plans);
    let snap = compile(&spec)?;
    for b in &built {
        let cw = snap
            .workspace(&b.spec.id)
            .ok_or_else(|| TestCaseError::fail("workspace missing"))?;
        lists_agree_on(cw, &b.spec)?;
    }
    Ok(())
}

/// Every list on one compiled workspace, whole and paged, against the
/// oracle on its spec.
fn lists_agree_on(cw: &CompiledWorkspace, spec: &WorkspaceSpec) -> Result<(), TestCaseError> {
    let b = Built {
        spec: spec.clone(),
        news: Vec::new(),
    };
    {
        let o = Oracle::new(&b.spec);
        let subjects = subjects_of(&b.spec);
        for t in o.type_names() {
            // No parent; each possible parent; one that does not exist.
            let mut parents: Vec<Option<(String, String)>> = vec![None];
            if let Some(pt) = o.parent_type(&t) {
                for p in o.all_of_type(&pt) {
                    parents.push(Some((pt.clone(), p.id.unwrap_or_default())));
                }
                parents.push(Some((pt.clone(), "no-such-parent".to_string())));
            }
            // A parent of another type than t's parent type (the workspace,
            // unless that is t's parent type) is a malformed request.
            let first_action = o.actions(&t).into_iter().next();
            if let (Some(a), false) = (
                first_action,
                o.parent_type(&t).as_deref() == Some("workspace"),
            ) {
                let other = format!("workspace:{}", b.spec.id);
                let got = cw.list_visible("anyone", &t, &a, Some(&other), None, 10);
                prop_assert!(
                    matches!(
                        got,
                        Err(RequestError::Malformed {
                            field: "parent",
                            ..
                        })
                    ),
                    "list {} under {}: {:?}",
                    t,
                    other,
                    got
                );
            }
            for a in o.actions(&t) {
                for parent in &parents {
                    let pkey = parent.as_ref().map(|(pt, pid)| format!("{pt}:{pid}"));
                    for s in &subjects {
                        let want = o.list_visible(
                            s,
                            &t,
                            &a,
                            parent.as_ref().map(|(x, y)| (x.as_str(), y.as_str())),
                        );
                        let whole = cw
                            .list_visible(s, &t, &a, pkey.as_deref(), None, usize::MAX)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(whole.next_after, None);
                        prop_assert_eq!(
                            &whole.items,
                            &want,
                            "list {} {} {} under {:?} in {}",
                            s,
                            t,
                            a,
                            pkey,
                            b.spec.id
                        );
                        for size in [1, 2, 5] {
                            let paged = walk(cw, s, &t, &a, pkey.as_deref(), size)?;
                            prop_assert_eq!(&paged, &want, "paging by {}", size);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn subjects_agree(plans: &[WorkspacePlan]) -> Result<(), TestCaseError> {
    let (spec, built) = build(plans);
    let snap = compile(&spec)?;
    for b in &built {
        let o = Oracle::new(&b.spec);
        let cw = snap
            .workspace(&b.spec.id)
            .ok_or_else(|| TestCaseError::fail("workspace missing"))?;
        let mut targets: Vec<(String, Option<Res>, Resolved)> = Vec::new();
        for (t, id, x) in all_targets(&o) {
            let (_, r) = cw
                .resolve(&ResourceQuery::Existing { type_: &t, id: &id })
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            targets.push((t, x, r));
        }
        for n in &b.news {
            let q = ResourceQuery::New {
                type_: &n.ty,
                parent: n.parent.as_deref(),
                labels: &n.labels,
            };
            let (_, r) = cw
                .resolve(&q)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            targets.push((n.ty.clone(), oracle_new(&o, n), r));
        }
        for (t, x, resolved) in &targets {
            for a in o.actions(t) {
                let (_, perm) = cw
                    .perm("action", t, &a)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want = o.list_subjects(&a, x.as_ref());
                let whole = cw.list_subjects(perm, resolved, None, usize::MAX);
                prop_assert_eq!(whole.next_after, None);
                let got: Vec<String> = whole.items.iter().map(|s| s.user.clone()).collect();
                prop_assert_eq!(&got, &want, "subjects {} on {:?}", a, x);
                for s in &whole.items {
                    let x = x
                        .as_ref()
                        .ok_or_else(|| TestCaseError::fail("subjects of a missing resource"))?;
                    prop_assert_eq!(views(&s.bindings), o.granting(&s.user, &a, x));
                }
                // Paged two at a time.
                let mut paged = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let page = cw.list_subjects(perm, resolved, after.as_deref(), 2);
                    prop_assert!(page.items.len() <= 2);
                    paged.extend(page.items.into_iter().map(|s| s.user));
                    match page.next_after {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                    prop_assert!(paged.len() <= want.len());
                }
                prop_assert_eq!(&paged, &want, "subjects paged by 2");
            }
        }
    }
    Ok(())
}

/// The policy invariants of SPEC 1.3 computed naively: the min_admins
/// shortfall (if any) and the users over max_roles_per_user.
fn policy_oracle(ws: &WorkspaceSpec) -> (bool, Vec<String>) {
    let o = Oracle::new(ws);
    let seats = o.catalog == CatalogName::Seats;
    let p = ws.policy.clone().unwrap_or_default();
    let min = p.min_admins.or(seats.then_some(1)).unwrap_or(0);
    let max = p.max_roles_per_user.or(seats.then_some(1));
    let admin_roles: Vec<String> = p
        .admin_roles
        .clone()
        .unwrap_or_else(|| vec!["admin".to_string(), "owner".to_string()]);
    let enabled = |r: &str| !ws.roles.iter().any(|x| x.id == r && x.disabled);
    let at_workspace = |s: &Option<String>| s.as_deref().is_none_or(|s| s == "workspace");
    let admins = ws
        .users
        .iter()
        .filter(|u| u.status == UserStatus::Active)
        .filter(|u| {
            o.bindings_of(&u.id)
                .iter()
                .any(|(r, s, _)| at_workspace(s) && admin_roles.contains(r) && enabled(r))
        })
        .count() as u32;
    let mut over = Vec::new();
    if let Some(max) = max {
        for u in &ws.users {
            let mut roles: Vec<String> = o
                .bindings_of(&u.id)
                .into_iter()
                .filter(|(_, s, _)| at_workspace(s))
                .map(|(r, _, _)| r)
                .collect();
            roles.sort();
            roles.dedup();
            if roles.len() as u32 > max {
                over.push(u.id.clone());
            }
        }
    }
    (admins < min, over)
}

fn policy_plan() -> impl Strategy<Value = (Option<u32>, Option<u32>, Option<Vec<usize>>, bool)> {
    (
        prop::option::of(0u32..4),
        prop::option::of(1u32..4),
        prop::option::weighted(0.3, proptest::collection::vec(0usize..16, 1..3)),
        prop::bool::weighted(0.2),
    )
}

fn policies_agree(
    plan: &WorkspacePlan,
    policy: &(Option<u32>, Option<u32>, Option<Vec<usize>>, bool),
) -> Result<(), TestCaseError> {
    let mut ws = plan.build("ws-p").spec;
    let o = Oracle::new(&ws);
    let role_ids = o.role_ids();
    let (min_admins, max_roles, admin_roles, no_policy) = policy;
    ws.policy = if *no_policy {
        None
    } else {
        Some(PolicySpec {
            min_admins: *min_admins,
            max_roles_per_user: *max_roles,
            admin_roles: admin_roles
                .as_ref()
                .filter(|_| !role_ids.is_empty())
                .map(|v| {
                    v.iter()
                        .map(|&i| role_ids[i % role_ids.len()].clone())
                        .collect()
                }),
        })
    };
    let (short, over) = policy_oracle(&ws);
    let spec = SnapshotSpec {
        workspaces: vec![ws.clone()],
    };
    match Snapshot::from_spec(&spec) {
        Ok(_) => prop_assert!(
            !short && over.is_empty(),
            "accepted, but the oracle finds min_admins short: {}, over max_roles_per_user: {:?}",
            short,
            over
        ),
        Err(e) => {
            prop_assert!(
                short || !over.is_empty(),
                "rejected, but the oracle finds no problem: {}",
                e
            );
            let text = e.to_string();
            let mins = e
                .problems
                .iter()
                .filter(|p| p.to_string().contains("min_admins"))
                .count();
            prop_assert_eq!(mins, usize::from(short), "{}", text);
            let maxes: Vec<_> = e
                .problems
                .iter()
                .filter(|p| p.to_string().contains("max_roles_per_user"))
                .collect();
            prop_assert_eq!(maxes.len(), over.len(), "{}", text);
            for u in &over {
                prop_assert!(
                    maxes
                        .iter()
                        .any(|p| p.to_string().contains(&format!("\"{u}\""))),
                    "no max_roles_per_user problem names user {}: {}",
                    u,
                    text
                );
            }
            prop_assert_eq!(e.problems.len(), mins + maxes.len(), "{}", text);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn check_and_explain_agree_with_the_oracle(plans in snapshot_plans()) {
        checks_agree(&plans)?;
    }

    #[test]
    fn list_visible_agrees_with_the_oracle(plans in snapshot_plans()) {
        lists_agree(&plans)?;
    }

    #[test]
    fn list_subjects_agrees_with_the_oracle(plans in snapshot_plans()) {
        subjects_agree(&plans)?;
    }

    #[test]
    fn policy_invariants_agree_with_the_oracle(plan in workspace_plan(), policy in policy_plan()) {
        policies_agree(&plan, &policy)?;
    }

    #[test]
    fn resource_deltas_agree_with_a_rebuild_and_the_oracle(
        plan in workspace_plan(),
        steps in deltas::delta_plans(),
    ) {
        deltas::deltas_agree(&plan, &steps)?;
    }
}

/// The oracle's own catalogs against SPEC's prose, so that the reference
/// is not wrong in the same way as the engine.
#[test]
fn the_oracle_reads_the_catalogs_as_spec_says() {
    let ws = WorkspaceSpec {
        id: "w".to_string(),
        ..WorkspaceSpec::default()
    };
    let o = Oracle::new(&ws);
    assert!(o.role_grants("admin", "record", "delete"));
    assert!(!o.role_grants("admin", "workspace", "delete"));
    assert!(o.role_grants("owner", "workspace", "delete"));
    assert!(o.role_grants("mini_all_viewer", "mini", "chat"));
    assert!(!o.role_grants("record_all_viewer", "mini", "read"));
    let seats = WorkspaceSpec {
        id: "s".to_string(),
        catalog: Some(CatalogName::Seats),
        ..WorkspaceSpec::default()
    };
    let o = Oracle::new(&seats);
    assert!(!o.role_grants("viewer", "mini", "chat"));
    assert!(o.role_grants("member", "mini", "chat"));
    assert!(o.role_grants("admin", "workspace", "delete"));
}
