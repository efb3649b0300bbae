//! ListVisible and ListSubjects: set algebra over the indexes, then the same
//! per-resource rule as `check`, so a list never disagrees with a check.

use std::sync::Arc;

use roaring::{MultiOps, RoaringBitmap};
use smallvec::SmallVec;

use super::check::Resolved;
use super::decision::{BindingView, Reason, RequestError};
use super::CompiledWorkspace;
use crate::model::schema::{PermId, TypeId};
use crate::model::workspace::{LabelIdx, ResIdx, UserIdx};

/// One page of ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor to resume after, when there are more.
    pub next_after: Option<String>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page {
            items: Vec::new(),
            next_after: None,
        }
    }
}

/// Candidates for a list, narrowed by set algebra; each is then decided by
/// [`CompiledWorkspace::accepts`].
#[derive(Debug)]
pub struct Plan {
    candidates: RoaringBitmap,
    /// When set, a candidate's parent must be among these (reach, tested
    /// lazily because the readable parents cover most candidates).
    readable_parents: Option<RoaringBitmap>,
}

/// What a [`Plan`] is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanKey {
    user: UserIdx,
    type_: TypeId,
    perm: PermId,
    parent: Option<ResIdx>,
}

/// A user allowed an action, with the bindings that give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectGrant {
    pub user: String,
    pub bindings: Vec<BindingView>,
}

impl CompiledWorkspace {
    /// Ids of `type_` resources (direct children of `parent` when given) that
    /// `subject` may `action`, ascending, strictly after `after`, at most
    /// `limit` of them.
    pub fn list_visible(
        &self,
        subject: &str,
        type_: &str,
        action: &str,
        parent: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<String>, RequestError> {
        let (t, perm) = self.perm("resource_type", type_, action)?;
        let parent = match parent {
            None => None,
            Some(p) => match self.parent_named("parent", t, p)? {
                Some(r) => Some(r),
                // Nothing lies below a resource that does not exist.
                None => return Ok(Page::default()),
            },
        };
        let Some(u) = self.index.user(subject) else {
            return Ok(Page::default());
        };
        let key = PlanKey {
            user: u,
            type_: t,
            perm,
            parent,
        };
        // A page after a cursor most likely continues a walk: its plan is
        // kept. A first page that is the whole list needs none kept.
        let kept = after.and_then(|_| self.plans.get(&key));
        let fresh = kept.is_none();
        let plan = match kept {
            Some(p) => p,
            None => match self.plan(u, t, perm, parent) {
                Some(p) => Arc::new(p),
                None => return Ok(Page::default()),
            },
        };
        let res = &self.model.resources;
        let range = res.base_of_type(t);
        let start = match after {
            None => range.start,
            Some(a) => self.first_after(range.clone(), a),
        };
        // The base's candidates are in id order already; those added by
        // deltas since are merged in by id.
        let base = plan.candidates.range(start..range.end);
        let added = res
            .added_of_type(t, after)
            .filter(|&r| plan.candidates.contains(r));
        // Lazily: only as many candidates are tested as the page needs.
        let mut visible = res
            .merge_by_id(base, added)
            .filter(|&r| self.accepts(u, perm, &plan, r));
        let mut items = Vec::with_capacity(limit.min(1024));
        for r in visible.by_ref().take(limit) {
            items.push(self.model.resources.id(r).into());
        }
        let more = visible.next().is_some();
        if more && fresh {
            self.plans.put(key, Arc::clone(&plan));
        }
        Ok(Page {
            next_after: if more { items.last().cloned() } else { None },
            items,
        })
    }

    /// The first base resource of `range` whose id sorts after `after`.
    fn first_after(&self, range: std::ops::Range<ResIdx>, after: &str) -> ResIdx {
        let res = &self.model.resources;
        let (mut lo, mut hi) = (range.start, range.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if res.id(mid).cmp_str(after).is_le() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Every resource of type `t` (children of `parent` when given) that
    /// user `u` may act on with `perm`.
    pub fn visible_set(
        &self,
        u: UserIdx,
        t: TypeId,
        perm: PermId,
        parent: Option<ResIdx>,
    ) -> RoaringBitmap {
        match self.plan(u, t, perm, parent) {
            Some(plan) => plan
                .candidates
                .iter()
                .filter(|&r| self.accepts(u, perm, &plan, r))
                .collect(),
            None => RoaringBitmap::new(),
        }
    }

    /// Narrows the resources of type `t` down to a superset of what user
    /// `u` may act on with `perm`, with set algebra on the indexes; `None`
    /// when nothing can be visible. [`Self::accepts`] decides each one.
    fn plan(&self, u: UserIdx, t: TypeId, perm: PermId, parent: Option<ResIdx>) -> Option<Plan> {
        let ws = &self.model;
        let ix = &self.index.users[u as usize];
        if !ix.active || !self.feature_on(t, perm) {
            return None;
        }
        let res = &ws.resources;
        let range = res.base_of_type(t);
        let plain = res.overlay().is_empty();

        // What is granted on the resources themselves.
        let mut candidates = RoaringBitmap::new();
        if ix.workspace_perms.contains(perm) {
            candidates.insert_range(range.clone());
            candidates.extend(res.added_of_type(t, None));
        } else {
            let labels: SmallVec<[LabelIdx; 8]> = ix
                .label_grants()
                .iter()
                .filter(|(_, role)| ws.roles[*role as usize].perms.contains(perm))
                .map(|&(l, _)| l)
                .collect();
            // One multi-way union: far cheaper than OR-ing postings one by one.
            candidates = labels
                .iter()
                .map(|&l| &self.index.label_postings[l as usize])
                .union();
            if !plain {
                // The base postings are stale for changed resources.
                res.changed().subtract_from(&mut candidates);
                for &l in &labels {
                    candidates.extend(res.changed_carriers(l));
                }
            }
            for &(r, role) in ix.resource_grants() {
                if ws.roles[role as usize].perms.contains(perm) {
                    self.add_subtree(r, t, &mut candidates);
                }
            }
            let mut of_type = RoaringBitmap::new();
            of_type.insert_range(range);
            of_type.extend(res.added_of_type(t, None));
            candidates &= of_type;
        }
        if !plain {
            res.removed().subtract_from(&mut candidates);
        }
        if let Some(p) = parent {
            let children: RoaringBitmap = self.children(p).collect();
            candidates &= children;
        }
        let mut plan = Plan {
            candidates,
            readable_parents: None,
        };
        // Reach (rule 4): the parent must be readable.
        let Some(pt) = ws.schema.ty(t).parent else {
            return Some(plan);
        };
        let pperm = ws.schema.read_perm(pt)?;
        if let Some(p) = parent {
            // Only the given parent holds direct children.
            let res = &ws.resources;
            let readable =
                self.rule_for_target(u, pperm, pt, Some(p), res.parent_of(p), &res.labels(p))
                    == Reason::Granted;
            return readable.then_some(plan);
        }
        let readable = self.visible_set(u, pt, pperm, None);
        // Few children under the readable parents: intersect with them.
        // Many: test each candidate's parent as it comes (lazily).
        let reachable: u64 = readable.iter().map(|p| self.child_count(p)).sum();
        if reachable < plan.candidates.len() {
            // Sorted first: building a bitmap from sorted ids is a sequential fill.
            let mut children: Vec<ResIdx> = Vec::with_capacity(reachable as usize);
            for p in &readable {
                children.extend(self.children(p));
            }
            children.sort_unstable();
            plan.candidates &= RoaringBitmap::from_sorted_iter(children).unwrap_or_default();
        } else {
            plan.readable_parents = Some(readable);
        }
        Some(plan)
    }

    /// The exact rule for one candidate of a [`Plan`], as `check` decides it.
    #[inline]
    fn accepts(&self, u: UserIdx, perm: PermId, plan: &Plan, r: ResIdx) -> bool {
        let res = &self.model.resources;
        let parent = res.parent_of(r);
        if let Some(readable) = &plan.readable_parents {
            if !parent.is_some_and(|p| readable.contains(p)) {
                return false;
            }
        }
        self.granted_here(u, perm, Some(r), parent, &res.labels(r))
            && self.rank_ok(u, res.type_of(r), r)
    }

    /// The rank rule, for resources of type `role` only.
    #[inline]
    fn rank_ok(&self, u: UserIdx, t: TypeId, r: ResIdx) -> bool {
        t != crate::model::schema::ROLE_TYPE || self.rank_allows(u, Some(r))
    }

    /// `r` if it is of type `t`, else its descendants of type `t`.
    fn add_subtree(&self, r: ResIdx, t: TypeId, out: &mut RoaringBitmap) {
        if self.model.resources.type_of(r) == t {
            out.insert(r);
            return;
        }
        for c in self.children(r) {
            self.add_subtree(c, t, out);
        }
    }

    /// How many direct children `p` has.
    fn child_count(&self, p: ResIdx) -> u64 {
        if self.model.resources.overlay().is_empty() {
            self.index.base_child_count(p) as u64
        } else {
            self.children(p).count() as u64
        }
    }

    /// Users allowed `perm` on the target, ascending by id, strictly after
    /// `after`, at most `limit`, each with the bindings that grant it.
    pub fn list_subjects(
        &self,
        perm: PermId,
        target: &Resolved,
        after: Option<&str>,
        limit: usize,
    ) -> Page<SubjectGrant> {
        let Resolved::Target(t) = target else {
            return Page::default();
        };
        let users = &self.model.users;
        let start = match after {
            None => 0,
            Some(a) => users.partition_point(|u| u.id.as_str() <= a),
        };
        let mut items = Vec::new();
        for (u, user) in users.iter().enumerate().skip(start) {
            if !self.decide_user(u as UserIdx, perm, target).allowed() {
                continue;
            }
            if items.len() == limit {
                let last: Option<&SubjectGrant> = items.last();
                return Page {
                    next_after: last.map(|s| s.user.clone()),
                    items,
                };
            }
            items.push(SubjectGrant {
                user: user.id.clone(),
                bindings: self.granting_bindings(u as UserIdx, perm, t),
            });
        }
        Page {
            items,
            next_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ResourceQuery;
    use std::sync::Arc;

    const SNAPSHOT: &str = r#"
workspaces:
  - id: w
    users:
      - { id: u-admin, bindings: [{ role: admin }] }
      - { id: u-m1, bindings: [{ role: viewer, scope: "resource:mini:m-1" }] }
      - { id: u-susp, status: suspended, bindings: [{ role: admin }] }
    resources:
      - { type: mini, id: m-1 }
      - { type: mini, id: m-2 }
      - { type: record, id: a, parent: "mini:m-1" }
      - { type: record, id: c, parent: "mini:m-1" }
      - { type: record, id: e, parent: "mini:m-1" }
      - { type: record, id: b, parent: "mini:m-2" }
"#;

    fn workspace() -> Arc<CompiledWorkspace> {
        crate::engine::compiled_w(SNAPSHOT)
    }

    fn list(
        cw: &CompiledWorkspace,
        subject: &str,
        parent: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Page<String> {
        match cw.list_visible(subject, "record", "read", parent, after, limit) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_parent_may_be_a_bare_id_of_the_parent_type() {
        let cw = workspace();
        let by_key = list(&cw, "u-admin", Some("mini:m-1"), None, 10);
        assert_eq!(by_key.items, ["a", "c", "e"]);
        assert_eq!(list(&cw, "u-admin", Some("m-1"), None, 10), by_key);
        // Nothing lies below a parent that does not exist.
        assert!(list(&cw, "u-admin", Some("m-ghost"), None, 10)
            .items
            .is_empty());
    }

    #[test]
    fn pages_resume_after_the_cursor() {
        let cw = workspace();
        let p = list(&cw, "u-admin", None, None, 2);
        assert_eq!(p.items, ["a", "b"]);
        assert_eq!(p.next_after.as_deref(), Some("b"));
        let p = list(&cw, "u-admin", None, Some("b"), 2);
        assert_eq!(p.items, ["c", "e"]);
        // Exactly the rest: no cursor.
        assert_eq!(p.next_after, None);
        // A cursor need not be an id of the list.
        let p = list(&cw, "u-admin", None, Some("bb"), 10);
        assert_eq!(p.items, ["c", "e"]);
        let p = list(&cw, "u-admin", None, Some("z"), 10);
        assert!(p.items.is_empty() && p.next_after.is_none());
    }

    #[test]
    fn parents_narrow_the_list_to_direct_children() {
        let cw = workspace();
        assert_eq!(
            list(&cw, "u-admin", Some("mini:m-2"), None, 10).items,
            ["b"]
        );
        assert_eq!(list(&cw, "u-m1", None, None, 10).items, ["a", "c", "e"]);
        assert!(list(&cw, "u-m1", Some("mini:m-2"), None, 10)
            .items
            .is_empty());
        assert!(list(&cw, "u-admin", Some("mini:m-9"), None, 10)
            .items
            .is_empty());
        let p = list(&cw, "u-m1", Some("mini:m-1"), Some("a"), 1);
        assert_eq!(p.items, ["c"]);
        assert_eq!(p.next_after.as_deref(), Some("c"));
    }

    #[test]
    fn unknown_and_suspended_subjects_see_nothing() {
        let cw = workspace();
        assert!(list(&cw, "nobody", None, None, 10).items.is_empty());
        assert!(list(&cw, "u-susp", None, None, 10).items.is_empty());
    }

    #[test]
    fn malformed_lists_are_errors() {
        let cw = workspace();
        // A parent is named as a check names one: a parent of another type
        // than the listed type's parent type, or any parent of a type that
        // has none, is malformed, not an empty list.
        for (type_, parent) in [
            ("record", "gadget:g"),
            ("record", "record:a"),
            ("mini", "mini:m-1"),
            ("mini", "m-1"),
        ] {
            assert!(
                matches!(
                    cw.list_visible("u-admin", type_, "read", Some(parent), None, 10),
                    Err(RequestError::Malformed {
                        field: "parent",
                        ..
                    })
                ),
                "{type_} under {parent}"
            );
        }
        assert!(matches!(
            cw.list_visible("u-admin", "gadget", "read", None, None, 10),
            Err(RequestError::UnknownType { .. })
        ));
        assert!(matches!(
            cw.list_visible("u-admin", "record", "fly", None, None, 10),
            Err(RequestError::UnknownAction { .. })
        ));
    }

    #[test]
    fn subjects_come_with_their_bindings_and_pages() {
        let cw = workspace();
        let Some(q) = ResourceQuery::parse_key("record:c") else {
            panic!("bad key")
        };
        let (_, target) = match cw.resolve(&q) {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        let (_, perm) = match cw.perm("action", "record", "read") {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        let all = cw.list_subjects(perm, &target, None, usize::MAX);
        let users: Vec<&str> = all.items.iter().map(|s| s.user.as_str()).collect();
        assert_eq!(users, ["u-admin", "u-m1"]);
        assert_eq!(all.items[1].bindings[0].scope, "resource:mini:m-1");
        let first = cw.list_subjects(perm, &target, None, 1);
        assert_eq!(first.items.len(), 1);
        assert_eq!(first.next_after.as_deref(), Some("u-admin"));
        let rest = cw.list_subjects(perm, &target, Some("u-admin"), 1);
        assert_eq!(rest.items[0].user, "u-m1");
        assert_eq!(rest.next_after, None);
    }
}
