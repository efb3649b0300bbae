//! The decision rule of SPEC 1.1 and the rank rule of SPEC 1.2.

use smallvec::SmallVec;

use super::decision::{BindingView, Decision, Explanation, Reason, RequestError};
use super::{CompiledWorkspace, ResourceQuery};
use crate::model::schema::{PermId, TypeId, ROLE_TYPE};
use crate::model::workspace::{LabelIdx, Labels, ResIdx, Scope, UserIdx};

/// A resource as a check sees it: an existing one, or one not yet created.
#[derive(Debug, Clone)]
pub struct Target {
    pub type_: TypeId,
    /// `None` for a resource not yet created.
    pub this: Option<ResIdx>,
    pub parent: Option<ResIdx>,
    /// The labels of a resource not yet created, sorted; empty for an
    /// existing one, whose labels the table holds (see
    /// [`CompiledWorkspace::labels_of`]): copying them here would cost a
    /// check more than reading them there.
    pub labels: SmallVec<[LabelIdx; 4]>,
}

/// A request resolved against one workspace: strings looked up once.
#[derive(Debug, Clone)]
pub enum Resolved {
    Target(Target),
    /// The resource (or the parent of a new one) does not exist.
    Missing,
}

impl CompiledWorkspace {
    /// Resolves a type name and action name into a permission bit.
    pub fn perm(
        &self,
        field: &'static str,
        type_: &str,
        action: &str,
    ) -> Result<(TypeId, PermId), RequestError> {
        let Some(t) = self.model.schema.type_id(type_) else {
            return Err(RequestError::UnknownType {
                field,
                type_: type_.to_string(),
            });
        };
        let ty = self.model.schema.ty(t);
        match ty.action(action) {
            Some(a) => Ok((t, ty.perm(a))),
            None => Err(RequestError::UnknownAction {
                field: "action",
                type_: type_.to_string(),
                action: action.to_string(),
            }),
        }
    }

    /// The permission bit of `action` on a type already resolved.
    pub fn perm_of(&self, t: TypeId, action: &str) -> Result<PermId, RequestError> {
        let ty = self.model.schema.ty(t);
        match ty.action(action) {
            Some(a) => Ok(ty.perm(a)),
            None => Err(RequestError::UnknownAction {
                field: "action",
                type_: ty.name.clone(),
                action: action.to_string(),
            }),
        }
    }

    /// Looks a resource query up, checking its shape.
    pub fn resolve(&self, q: &ResourceQuery<'_>) -> Result<(TypeId, Resolved), RequestError> {
        let schema = &self.model.schema;
        let res = &self.model.resources;
        match q {
            ResourceQuery::Existing { type_, id } => {
                let t = schema
                    .type_id(type_)
                    .ok_or_else(|| RequestError::UnknownType {
                        field: "resource.type",
                        type_: type_.to_string(),
                    })?;
                Ok((
                    t,
                    match res.find(t, id) {
                        Some(r) => Resolved::Target(Target {
                            type_: t,
                            this: Some(r),
                            parent: res.parent_of(r),
                            labels: SmallVec::new(),
                        }),
                        None => Resolved::Missing,
                    },
                ))
            }
            ResourceQuery::New {
                type_,
                parent,
                labels,
            } => {
                let t = schema
                    .type_id(type_)
                    .ok_or_else(|| RequestError::UnknownType {
                        field: "resource.type",
                        type_: type_.to_string(),
                    })?;
                let parent = match parent {
                    None => None,
                    Some(p) => match self.parent_named("resource.parent", t, p)? {
                        Some(r) => Some(r),
                        None => return Ok((t, Resolved::Missing)),
                    },
                };
                // A label the workspace does not declare cannot be bound, so
                // it can grant nothing: leaving it out changes no decision.
                let mut ls: SmallVec<[LabelIdx; 4]> = labels
                    .iter()
                    .filter_map(|l| self.model.label_idx(l))
                    .collect();
                ls.sort_unstable();
                ls.dedup();
                Ok((
                    t,
                    Resolved::Target(Target {
                        type_: t,
                        this: None,
                        parent,
                        labels: ls,
                    }),
                ))
            }
        }
    }

    /// The resource a request names as the parent of a `t` (`type:id`, or
    /// a bare id of `t`'s parent type); `None` when there is no such
    /// resource. A parent on a type without parent type, or of another type
    /// than `t`'s parent type, is a malformed request naming `field`.
    pub fn parent_named(
        &self,
        field: &'static str,
        t: TypeId,
        p: &str,
    ) -> Result<Option<ResIdx>, RequestError> {
        let schema = &self.model.schema;
        let type_ = schema.ty(t).name.as_str();
        let Some(pt) = schema.ty(t).parent else {
            return Err(RequestError::Malformed {
                field,
                message: format!(
                    "type \"{type_}\" has no parent type, so \"{p}\" cannot be its parent"
                ),
            });
        };
        let pname = schema.ty(pt).name.as_str();
        let (ptype, pid) = p.split_once(':').unwrap_or((pname, p));
        if ptype != pname {
            return Err(RequestError::Malformed {
                field,
                message: format!("the parent of a \"{type_}\" is a \"{pname}\", not \"{p}\""),
            });
        }
        Ok(self.model.resources.find(pt, pid))
    }

    /// The decision for `subject` doing `perm` to `target`. No allocation.
    pub fn decide(&self, subject: &str, perm: PermId, target: &Resolved) -> Decision {
        let Some(u) = self.index.user(subject) else {
            return Decision::new(Reason::UnknownSubject);
        };
        self.decide_user(u, perm, target)
    }

    pub fn decide_user(&self, u: UserIdx, perm: PermId, target: &Resolved) -> Decision {
        if !self.index.users[u as usize].active {
            return Decision::new(Reason::Suspended);
        }
        let Resolved::Target(t) = target else {
            return Decision::new(Reason::UnknownResource);
        };
        let labels = self.labels_of(t);
        Decision::new(self.rule_for_target(u, perm, t.type_, t.this, t.parent, &labels))
    }

    /// The target's labels: an existing resource's from the table, a new
    /// one's as the request gave them.
    #[inline]
    pub fn labels_of<'t>(&'t self, t: &'t Target) -> Labels<'t> {
        match t.this {
            Some(r) => self.model.resources.labels(r),
            None => Labels::from(&t.labels[..]),
        }
    }

    /// Rules 2–4 and the rank rule for an active user.
    pub(crate) fn rule_for_target(
        &self,
        u: UserIdx,
        perm: PermId,
        type_: TypeId,
        this: Option<ResIdx>,
        parent: Option<ResIdx>,
        labels: &[LabelIdx],
    ) -> Reason {
        if !self.feature_on(type_, perm) {
            return Reason::FeatureDisabled;
        }
        if !self.granted_here(u, perm, this, parent, labels) {
            return Reason::NoGrant;
        }
        if type_ == ROLE_TYPE && !self.rank_allows(u, this) {
            return Reason::RankTooLow;
        }
        if let Some(pt) = self.model.schema.ty(type_).parent {
            if !self.reaches(u, pt, parent) {
                return Reason::NoReach;
            }
        }
        Reason::Granted
    }

    /// Rule 4: the user may `read` the parent (recursively), a resource of
    /// type `pt` (validation holds every parent to its type's parent type).
    pub(crate) fn reaches(&self, u: UserIdx, pt: TypeId, parent: Option<ResIdx>) -> bool {
        let Some(p) = parent else { return false };
        let res = &self.model.resources;
        debug_assert_eq!(res.type_of(p), pt, "a parent of another type");
        let Some(perm) = self.model.schema.read_perm(pt) else {
            return false;
        };
        self.rule_for_target(u, perm, pt, Some(p), res.parent_of(p), &res.labels(p))
            == Reason::Granted
    }

    /// Rule 2: the action's feature, if any, is enabled.
    #[inline]
    /// The name of the feature `perm` of `type_` belongs to, if any.
    fn feature_of(&self, type_: TypeId, perm: PermId) -> Option<&str> {
        let schema = &self.model.schema;
        let ty = schema.ty(type_);
        let f = ty.actions[(perm - ty.first_perm) as usize].feature?;
        Some(schema.features[f as usize].as_str())
    }

    /// What a query names that was not found: the resource, or the parent
    /// named for a new one (as `type:id`, however the request wrote it).
    fn missing(&self, query: &ResourceQuery<'_>) -> String {
        let schema = &self.model.schema;
        match *query {
            ResourceQuery::Existing { type_, id } => format!("{type_}:{id}"),
            ResourceQuery::New { type_, parent, .. } => {
                let parent = parent.unwrap_or_default();
                let parent_type = schema
                    .type_id(type_)
                    .and_then(|t| schema.ty(t).parent)
                    .map(|pt| schema.ty(pt).name.as_str());
                match parent_type {
                    Some(pt) if !parent.contains(':') => {
                        format!("the parent {pt}:{parent} named for a new {type_}")
                    }
                    _ => format!("the parent {parent} named for a new {type_}"),
                }
            }
        }
    }

    pub(crate) fn feature_on(&self, type_: TypeId, perm: PermId) -> bool {
        let ty = self.model.schema.ty(type_);
        let a = (perm - ty.first_perm) as usize;
        match ty.actions[a].feature {
            Some(f) => self.model.features_enabled[f as usize],
            None => true,
        }
    }

    /// Rule 3: some enabled binding grants `perm` at a scope covering the target.
    #[inline]
    pub(crate) fn granted_here(
        &self,
        u: UserIdx,
        perm: PermId,
        this: Option<ResIdx>,
        parent: Option<ResIdx>,
        labels: &[LabelIdx],
    ) -> bool {
        let ix = &self.index.users[u as usize];
        if ix.workspace_perms.contains(perm) {
            return true;
        }
        let roles = &self.model.roles;
        for &(l, role) in ix.label_grants() {
            if roles[role as usize].perms.contains(perm) && labels.contains(&l) {
                return true;
            }
        }
        for &(r, role) in ix.resource_grants() {
            if roles[role as usize].perms.contains(perm) && self.within(r, this, parent) {
                return true;
            }
        }
        false
    }

    /// Whether the target is `scope` or lies below it.
    pub(crate) fn within(
        &self,
        scope: ResIdx,
        this: Option<ResIdx>,
        parent: Option<ResIdx>,
    ) -> bool {
        if this == Some(scope) {
            return true;
        }
        let mut at = parent;
        while let Some(p) = at {
            if p == scope {
                return true;
            }
            at = self.model.resources.parent_of(p);
        }
        false
    }

    /// SPEC 1.2: the target role's rank is not above the actor's highest.
    pub(crate) fn rank_allows(&self, u: UserIdx, this: Option<ResIdx>) -> bool {
        let target = match this {
            Some(r) => self
                .model
                .role_idx_of(self.model.resources.id(r))
                .map_or(0, |i| self.model.roles[i as usize].rank),
            None => 0,
        };
        self.index.users[u as usize]
            .max_rank()
            .is_some_and(|m| target <= m)
    }

    /// The bindings of `u` that grant `perm` on the target itself.
    pub fn granting_bindings(&self, u: UserIdx, perm: PermId, t: &Target) -> Vec<BindingView> {
        let ws = &self.model;
        let labels = self.labels_of(t);
        let mut out: Vec<BindingView> = ws
            .bindings_of(u)
            .filter(|(b, _)| {
                let role = &ws.roles[b.role as usize];
                !role.disabled
                    && role.perms.contains(perm)
                    && match b.scope {
                        Scope::Workspace => true,
                        Scope::Label(l) => labels.contains(&l),
                        Scope::Resource(r) => self.within(r, t.this, t.parent),
                    }
            })
            .map(|(b, g)| BindingView {
                role: ws.roles[b.role as usize].id.clone(),
                scope: ws.scope_string(b.scope),
                via_group: g.map(|g| ws.groups[g as usize].id.clone()),
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The decision with its reasons in words; `query` is what `target`
    /// was resolved from, so a missing resource can be named.
    pub fn explain(
        &self,
        subject: &str,
        action: &str,
        perm: PermId,
        query: &ResourceQuery<'_>,
        target: &Resolved,
    ) -> Explanation {
        let decision = self.decide(subject, perm, target);
        let ws = &self.model;
        let t = match target {
            Resolved::Target(t) => Some(t),
            Resolved::Missing => None,
        };
        let what = match t {
            Some(t) => match t.this {
                Some(r) => ws.resource_key(r),
                None => format!("a new {}", ws.schema.ty(t.type_).name),
            },
            None => "the resource".to_string(),
        };
        // Reach was looked at only on an allow and on a denial by reach.
        let reach_through = t
            .filter(|_| matches!(decision.reason, Reason::Granted | Reason::NoReach))
            .filter(|t| ws.schema.ty(t.type_).parent.is_some())
            .and_then(|t| t.parent)
            .map(|p| ws.resource_key(p));
        let u = ws.user_idx(subject);
        let granted_by = match (u, t) {
            (Some(u), Some(t))
                if matches!(
                    decision.reason,
                    Reason::Granted | Reason::NoReach | Reason::RankTooLow
                ) =>
            {
                self.granting_bindings(u, perm, t)
            }
            _ => Vec::new(),
        };
        let via = |bs: &[BindingView]| {
            bs.iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let message = match decision.reason {
            Reason::Granted => format!("{subject} may {action} {what}: granted by {}", via(&granted_by)),
            Reason::UnknownSubject => format!("{subject} is not a user of workspace {}", ws.id),
            Reason::Suspended => format!("{subject} is suspended and is denied everything"),
            Reason::UnknownResource => format!("{} does not exist in workspace {}", self.missing(query), ws.id),
            Reason::FeatureDisabled => match t.and_then(|t| self.feature_of(t.type_, perm)) {
                Some(f) => format!("action {action} on {what} belongs to feature {f}, which is switched off in workspace {}", ws.id),
                None => format!("action {action} belongs to a feature that is switched off in workspace {}", ws.id),
            },
            Reason::NoGrant => format!("no binding of {subject} grants {action} on {what}"),
            Reason::NoReach => match &reach_through {
                Some(p) => format!(
                    "{action} on {what} is granted by {}, but {subject} may not read its parent {p}",
                    via(&granted_by)
                ),
                None => format!("{action} is granted, but {what} names no parent for {subject} to reach"),
            },
            Reason::RankTooLow => format!(
                "{what} ranks above every role {subject} holds: nobody can hand out more power than they hold"
            ),
        };
        Explanation {
            decision,
            message,
            granted_by,
            reach_through,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const SNAPSHOT: &str = r#"
workspaces:
  - id: w
    labels: [site-a]
    types:
      - { name: note, parent: record, actions: [read] }
    users:
      - { id: u-admin, bindings: [{ role: admin }] }
      - { id: u-rav, bindings: [{ role: record_all_viewer }] }
      - { id: u-susp, status: suspended, bindings: [{ role: owner }] }
      - { id: u-mav, bindings: [{ role: mini_all_viewer }] }
    resources:
      - { type: mini, id: m-1, labels: [site-a] }
      - { type: record, id: r-1, parent: "mini:m-1" }
      - { type: note, id: n-1, parent: "record:r-1" }
"#;

    fn workspace() -> Arc<CompiledWorkspace> {
        crate::engine::compiled_w(SNAPSHOT)
    }

    fn existing<'a>(key: &'a str) -> ResourceQuery<'a> {
        match ResourceQuery::parse_key(key) {
            Some(q) => q,
            None => panic!("bad key {key}"),
        }
    }

    fn decide(cw: &CompiledWorkspace, subject: &str, action: &str, q: ResourceQuery<'_>) -> Reason {
        let (t, target) = match cw.resolve(&q) {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        let name = cw.model.schema.ty(t).name.clone();
        let (_, perm) = match cw.perm("action", &name, action) {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        cw.decide(subject, perm, &target).reason
    }

    #[test]
    fn reasons_follow_the_rules_in_order() {
        let cw = workspace();
        assert_eq!(
            decide(&cw, "nobody", "read", existing("mini:m-1")),
            Reason::UnknownSubject
        );
        assert_eq!(
            decide(&cw, "u-susp", "read", existing("mini:m-1")),
            Reason::Suspended
        );
        assert_eq!(
            decide(&cw, "u-susp", "read", existing("mini:m-9")),
            Reason::Suspended
        );
        assert_eq!(
            decide(&cw, "u-admin", "read", existing("mini:m-9")),
            Reason::UnknownResource
        );
        assert_eq!(
            decide(&cw, "u-rav", "read", existing("mini:m-1")),
            Reason::NoGrant
        );
        assert_eq!(
            decide(&cw, "u-rav", "read", existing("record:r-1")),
            Reason::NoReach
        );
        assert_eq!(
            decide(&cw, "u-admin", "read", existing("role:owner")),
            Reason::RankTooLow
        );
        assert_eq!(
            decide(&cw, "u-admin", "read", existing("note:n-1")),
            Reason::Granted
        );
        assert_eq!(
            decide(&cw, "u-mav", "chat", existing("mini:m-1")),
            Reason::Granted
        );
    }

    #[test]
    fn new_resources_are_decided_as_if_they_existed() {
        let cw = workspace();
        let labels = vec!["site-a".to_string(), "undeclared".to_string()];
        let new = |type_, parent| ResourceQuery::New {
            type_,
            parent,
            labels: &labels,
        };
        assert_eq!(
            decide(&cw, "u-admin", "create", new("record", Some("mini:m-1"))),
            Reason::Granted
        );
        assert_eq!(
            decide(&cw, "u-admin", "create", new("record", Some("m-1"))),
            Reason::Granted
        );
        assert_eq!(
            decide(&cw, "u-admin", "create", new("record", Some("mini:m-9"))),
            Reason::UnknownResource
        );
        // A record with no Mini named reaches nothing.
        assert_eq!(
            decide(&cw, "u-admin", "create", new("record", None)),
            Reason::NoReach
        );
        assert_eq!(
            decide(&cw, "u-admin", "read", new("note", Some("record:r-1"))),
            Reason::Granted
        );
        // A role not yet created is rank 0.
        assert_eq!(
            decide(&cw, "u-admin", "create", new("role", None)),
            Reason::Granted
        );
    }

    #[test]
    fn malformed_requests_are_errors_not_decisions() {
        let cw = workspace();
        let none: Vec<String> = Vec::new();
        assert!(matches!(
            cw.resolve(&existing("gadget:g-1")),
            Err(RequestError::UnknownType { .. })
        ));
        assert!(matches!(
            cw.resolve(&ResourceQuery::New {
                type_: "mini",
                parent: Some("mini:m-1"),
                labels: &none
            }),
            Err(RequestError::Malformed {
                field: "resource.parent",
                ..
            })
        ));
        assert!(matches!(
            cw.resolve(&ResourceQuery::New {
                type_: "record",
                parent: Some("record:r-1"),
                labels: &none
            }),
            Err(RequestError::Malformed {
                field: "resource.parent",
                ..
            })
        ));
        assert!(matches!(
            cw.perm("action", "mini", "fly"),
            Err(RequestError::UnknownAction { .. })
        ));
        assert!(matches!(
            cw.perm("resource_type", "gadget", "read"),
            Err(RequestError::UnknownType {
                field: "resource_type",
                ..
            })
        ));
        // `record:archive` exists, `mini:archive` does not.
        assert!(cw.perm("action", "record", "archive").is_ok());
        assert!(cw.perm("action", "mini", "archive").is_err());
    }

    #[test]
    fn explanations_name_the_bindings_and_the_parent() {
        let cw = workspace();
        let explain = |subject: &str, action: &str, key: &str| {
            let q = existing(key);
            let (t, target) = match cw.resolve(&q) {
                Ok(x) => x,
                Err(e) => panic!("{e}"),
            };
            let name = cw.model.schema.ty(t).name.clone();
            let (_, perm) = match cw.perm("action", &name, action) {
                Ok(x) => x,
                Err(e) => panic!("{e}"),
            };
            cw.explain(subject, action, perm, &q, &target)
        };
        let e = explain("u-admin", "read", "record:r-1");
        assert!(e.decision.allowed());
        assert_eq!(e.reach_through.as_deref(), Some("mini:m-1"));
        assert_eq!(e.granted_by.len(), 1);
        assert_eq!(e.granted_by[0].role, "admin");
        assert_eq!(e.granted_by[0].scope, "workspace");
        assert!(e.message.contains("admin"), "{}", e.message);

        let e = explain("u-rav", "read", "record:r-1");
        assert_eq!(e.decision.reason, Reason::NoReach);
        assert!(e.message.contains("mini:m-1"), "{}", e.message);
        assert_eq!(e.reach_through.as_deref(), Some("mini:m-1"));

        let e = explain("u-susp", "read", "mini:m-1");
        assert_eq!(e.decision.reason, Reason::Suspended);
        assert!(e.granted_by.is_empty());
        assert!(e.message.contains("suspended"), "{}", e.message);

        // Reach is named only where it was looked at.
        for subject in ["u-susp", "u-ghost"] {
            let e = explain(subject, "read", "record:r-1");
            assert!(!e.decision.allowed());
            assert_eq!(e.reach_through, None, "{subject}: {}", e.message);
        }

        let e = explain("u-admin", "read", "mini:m-1");
        assert_eq!(e.reach_through, None);
    }

    #[test]
    fn explanations_name_what_is_missing_and_the_feature_switched_off() {
        let cw = crate::engine::compiled_w(
            r#"
workspaces:
  - id: w
    catalog: none
    features: []
    types:
      - { name: manual, actions: [read], feature: manuals }
      - { name: page, parent: manual, actions: [read] }
    roles: [{ id: reader, grants: ["manual:read", "page:read"] }]
    users: [{ id: u-r, bindings: [{ role: reader }] }]
    resources: [{ type: manual, id: m-1 }]
"#,
        );
        let explain = |q: ResourceQuery<'_>| {
            let (t, target) = cw.resolve(&q).unwrap_or_else(|e| panic!("{e}"));
            let perm = cw.perm_of(t, "read").unwrap_or_else(|e| panic!("{e}"));
            cw.explain("u-r", "read", perm, &q, &target)
        };
        let e = explain(existing("manual:m-1"));
        assert_eq!(e.decision.reason, Reason::FeatureDisabled);
        assert!(
            e.message.contains("manual:m-1 belongs to feature manuals"),
            "{}",
            e.message
        );

        let e = explain(existing("manual:m-ghost"));
        assert_eq!(e.decision.reason, Reason::UnknownResource);
        assert_eq!(e.message, "manual:m-ghost does not exist in workspace w");

        // A new page under a missing manual, its parent written either way.
        for parent in ["m-ghost", "manual:m-ghost"] {
            let e = explain(ResourceQuery::New {
                type_: "page",
                parent: Some(parent),
                labels: &[],
            });
            assert_eq!(e.decision.reason, Reason::UnknownResource);
            assert_eq!(
                e.message,
                "the parent manual:m-ghost named for a new page does not exist in workspace w"
            );
        }
    }
}
