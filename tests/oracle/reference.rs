//! The reference oracle: a deliberately naive reading of SPEC 1.1–1.2 and
//! the catalogs of SPEC 2, working on the plain snapshot strings.
//!
//! Nothing here uses the engine's indexes or `src/model/catalog.rs`: the
//! default schema and the three catalogs are written out again from SPEC's
//! tables, so that a typo in one is caught by the other. Everything is a
//! linear scan; speed does not matter, obviousness does.

use rolecall::model::spec::{CatalogName, ResourceSpec, UserStatus, WorkspaceSpec};

/// The Mini feature actions (SPEC 2, the `mini` row).
pub const MINI_FEATURES: [&str; 5] = [
    "chat",
    "prompt_recommendations",
    "citations",
    "email_drafting",
    "speech_to_text",
];

/// The default schema of SPEC 2: `(type, parent type, actions)`.
/// The Mini features are listed as actions of `mini`.
pub const DEFAULT_SCHEMA: &[(&str, Option<&str>, &[&str])] = &[
    ("workspace", None, &["read", "delete", "manage_settings"]),
    ("user", None, &["read", "invite", "remove"]),
    (
        "group",
        None,
        &["read", "create", "update", "manage_members", "delete"],
    ),
    ("label", None, &["read", "create", "update", "delete"]),
    (
        "role",
        None,
        &["read", "create", "update", "delete", "assign"],
    ),
    (
        "mini",
        None,
        &[
            "read",
            "create",
            "update",
            "delete",
            "import_records",
            "chat",
            "prompt_recommendations",
            "citations",
            "email_drafting",
            "speech_to_text",
        ],
    ),
    (
        "record",
        Some("mini"),
        &["read", "create", "update", "archive", "delete", "attach"],
    ),
];

/// The types whose resources are the workspace's own parts.
pub const IMPLICIT_TYPES: [&str; 5] = ["workspace", "user", "group", "label", "role"];

/// How a built-in role grants: an explicit list, everything, or everything
/// but `workspace:delete`.
#[derive(Clone, Copy, Debug)]
pub enum Grants {
    List(&'static [&'static str]),
    All,
    AllButWorkspaceDelete,
}

/// A built-in role as SPEC 2's tables give it.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    pub id: &'static str,
    pub rank: u32,
    pub grants: Grants,
}

const fn b(id: &'static str, rank: u32, grants: Grants) -> Builtin {
    Builtin { id, rank, grants }
}

const RECORD_EDITING: &[&str] = &[
    "record:read",
    "record:create",
    "record:update",
    "record:archive",
    "record:attach",
];

/// SPEC 2, `minikai`.
pub const MINIKAI: &[Builtin] = &[
    b("member", 0, Grants::List(&[])),
    b("record_all_viewer", 10, Grants::List(&["record:read"])),
    b("record_all_editor", 20, Grants::List(RECORD_EDITING)),
    b("mini_all_viewer", 10, Grants::List(&["mini:read"])),
    b(
        "mini_all_editor",
        20,
        Grants::List(&["mini:read", "mini:update"]),
    ),
    b("viewer", 10, Grants::List(&["mini:read", "record:read"])),
    b(
        "editor",
        20,
        Grants::List(&[
            "mini:read",
            "record:read",
            "record:create",
            "record:update",
            "record:archive",
            "record:attach",
        ]),
    ),
    b("admin", 90, Grants::AllButWorkspaceDelete),
    b("owner", 100, Grants::All),
];

/// SPEC 2, `environment`.
pub const ENVIRONMENT: &[Builtin] = &[
    b("admin", 90, Grants::AllButWorkspaceDelete),
    b(
        "creator",
        50,
        Grants::List(&[
            "mini:read",
            "mini:create",
            "mini:update",
            "mini:import_records",
            "record:read",
            "record:create",
            "record:update",
            "record:archive",
            "record:attach",
            "label:read",
        ]),
    ),
    b("member", 0, Grants::List(&[])),
    b("viewer", 10, Grants::List(&["mini:read", "record:read"])),
    b(
        "editor",
        20,
        Grants::List(&[
            "mini:read",
            "record:read",
            "record:create",
            "record:update",
            "record:archive",
            "record:attach",
        ]),
    ),
];

/// SPEC 2, `seats`.
pub const SEATS: &[Builtin] = &[
    b("admin", 90, Grants::All),
    b(
        "member",
        10,
        Grants::List(&[
            "workspace:read",
            "mini:read",
            "mini:chat",
            "mini:prompt_recommendations",
            "mini:citations",
            "mini:email_drafting",
            "mini:speech_to_text",
        ]),
    ),
    b("viewer", 0, Grants::List(&["workspace:read", "mini:read"])),
];

pub fn builtins(c: CatalogName) -> &'static [Builtin] {
    match c {
        CatalogName::Minikai => MINIKAI,
        CatalogName::Environment => ENVIRONMENT,
        CatalogName::Seats => SEATS,
        CatalogName::None => &[],
    }
}

/// A resource as the oracle sees it: an existing one (`id` set) or one not
/// yet created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Res {
    pub ty: String,
    pub id: Option<String>,
    /// `(type, id)` of the parent.
    pub parent: Option<(String, String)>,
    pub labels: Vec<String>,
}

/// One binding as it applies to a user: role id, scope as written in
/// files, and the group it comes through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GrantingBinding {
    pub role: String,
    pub scope: String,
    pub via_group: Option<String>,
}

/// Which rules of SPEC 1.1–1.2 fail for one check (all of them, not just
/// the first, so that any reason the engine names can be checked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub unknown_subject: bool,
    pub suspended: bool,
    pub unknown_resource: bool,
    pub feature_disabled: bool,
    pub no_grant: bool,
    pub no_reach: bool,
    pub rank_too_low: bool,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        *self == Verdict::default()
    }
}

/// The oracle over one workspace.
pub struct Oracle<'a> {
    pub ws: &'a WorkspaceSpec,
    pub catalog: CatalogName,
}

impl<'a> Oracle<'a> {
    pub fn new(ws: &'a WorkspaceSpec) -> Self {
        Oracle {
            ws,
            catalog: ws.catalog.unwrap_or(CatalogName::Minikai),
        }
    }

    /// Every type name of the schema: the default ones, then the custom ones.
    pub fn type_names(&self) -> Vec<String> {
        let mut v: Vec<String> = DEFAULT_SCHEMA.iter().map(|t| t.0.to_string()).collect();
        v.extend(self.ws.types.iter().map(|t| t.name.clone()));
        v
    }

    pub fn parent_type(&self, t: &str) -> Option<String> {
        if let Some(d) = DEFAULT_SCHEMA.iter().find(|d| d.0 == t) {
            return d.1.map(str::to_string);
        }
        self.ws
            .types
            .iter()
            .find(|c| c.name == t)
            .and_then(|c| c.parent.clone())
    }

    pub fn actions(&self, t: &str) -> Vec<String> {
        if let Some(d) = DEFAULT_SCHEMA.iter().find(|d| d.0 == t) {
            return d.2.iter().map(|a| a.to_string()).collect();
        }
        self.ws
            .types
            .iter()
            .find(|c| c.name == t)
            .map(|c| c.actions.clone())
            .unwrap_or_default()
    }

    /// The feature action `a` of type `t` belongs to, if any (SPEC 2).
    pub fn feature_of(&self, t: &str, a: &str) -> Option<String> {
        if t == "mini" && MINI_FEATURES.contains(&a) {
            return Some(a.to_string());
        }
        self.ws
            .types
            .iter()
            .find(|c| c.name == t)
            .and_then(|c| c.feature.clone())
    }

    pub fn feature_enabled(&self, f: &str) -> bool {
        match &self.ws.features {
            None => true,
            Some(list) => list.iter().any(|x| x == f),
        }
    }

    /// The rank of role `id` and whether it is disabled, built-in or custom.
    fn role(&self, id: &str) -> Option<(u32, bool)> {
        if let Some(b) = builtins(self.catalog).iter().find(|b| b.id == id) {
            return Some((b.rank, false));
        }
        self.ws
            .roles
            .iter()
            .find(|r| r.id == id)
            .map(|r| (r.rank, r.disabled))
    }

    /// Every role id, built-in ones first.
    pub fn role_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = builtins(self.catalog)
            .iter()
            .map(|b| b.id.to_string())
            .collect();
        v.extend(self.ws.roles.iter().map(|r| r.id.clone()));
        v
    }

    /// Whether one grant string matches `t:a` directly or by wildcard.
    fn grant_matches(g: &str, t: &str, a: &str) -> bool {
        g == "*:*" || g == format!("{t}:*") || g == format!("{t}:{a}")
    }

    /// Whether role `id` (ignoring `disabled`) grants `t:a`, directly, by
    /// wildcard, or through an action that implies `a`.
    pub fn role_grants(&self, id: &str, t: &str, a: &str) -> bool {
        let direct = |t: &str, a: &str| -> bool {
            if let Some(b) = builtins(self.catalog).iter().find(|b| b.id == id) {
                return match b.grants {
                    Grants::All => true,
                    Grants::AllButWorkspaceDelete => !(t == "workspace" && a == "delete"),
                    Grants::List(l) => l.iter().any(|g| Self::grant_matches(g, t, a)),
                };
            }
            self.ws
                .roles
                .iter()
                .find(|r| r.id == id)
                .is_some_and(|r| r.grants.iter().any(|g| Self::grant_matches(g, t, a)))
        };
        if direct(t, a) {
            return true;
        }
        // Mini features are implied by `read`, except in the seats catalog.
        t == "mini"
            && MINI_FEATURES.contains(&a)
            && self.catalog != CatalogName::Seats
            && direct("mini", "read")
    }

    /// Every binding of `u` with the group it comes through: its own, then
    /// those of each group it is a member of.
    pub fn bindings_of(&self, u: &str) -> Vec<(String, Option<String>, Option<String>)> {
        let mut out = Vec::new();
        if let Some(user) = self.ws.users.iter().find(|x| x.id == u) {
            for b in &user.bindings {
                out.push((b.role.clone(), b.scope.clone(), None));
            }
        }
        for g in &self.ws.groups {
            if g.members.iter().any(|m| m == u) {
                for b in &g.bindings {
                    out.push((b.role.clone(), b.scope.clone(), Some(g.id.clone())));
                }
            }
        }
        out
    }

    /// Looks up an existing resource, implicit ones included.
    pub fn find(&self, t: &str, id: &str) -> Option<Res> {
        let implicit = match t {
            "workspace" => self.ws.id == id,
            "user" => self.ws.users.iter().any(|x| x.id == id),
            "group" => self.ws.groups.iter().any(|x| x.id == id),
            "label" => self.ws.labels.iter().any(|x| x == id),
            "role" => self.role_ids().iter().any(|x| x == id),
            _ => false,
        };
        if implicit {
            return Some(Res {
                ty: t.to_string(),
                id: Some(id.to_string()),
                parent: None,
                labels: Vec::new(),
            });
        }
        if IMPLICIT_TYPES.contains(&t) {
            return None;
        }
        self.ws
            .resources
            .iter()
            .find(|r| r.type_ == t && r.id == id)
            .map(|r| self.res_of(r))
    }

    fn res_of(&self, r: &ResourceSpec) -> Res {
        Res {
            ty: r.type_.clone(),
            id: Some(r.id.clone()),
            parent: r.parent.as_deref().map(|p| self.parent_key(&r.type_, p)),
            labels: r.labels.clone(),
        }
    }

    /// `type:id`, or a bare id read as an id of the parent type.
    pub fn parent_key(&self, child_type: &str, p: &str) -> (String, String) {
        match p.split_once(':') {
            Some((t, id)) => (t.to_string(), id.to_string()),
            None => (
                self.parent_type(child_type).unwrap_or_default(),
                p.to_string(),
            ),
        }
    }

    /// Every resource of type `t`, implicit ones included, unsorted.
    pub fn all_of_type(&self, t: &str) -> Vec<Res> {
        let ids: Vec<String> = match t {
            "workspace" => vec![self.ws.id.clone()],
            "user" => self.ws.users.iter().map(|x| x.id.clone()).collect(),
            "group" => self.ws.groups.iter().map(|x| x.id.clone()).collect(),
            "label" => self.ws.labels.clone(),
            "role" => self.role_ids(),
            _ => {
                return self
                    .ws
                    .resources
                    .iter()
                    .filter(|r| r.type_ == t)
                    .map(|r| self.res_of(r))
                    .collect()
            }
        };
        ids.into_iter()
            .map(|id| Res {
                ty: t.to_string(),
                id: Some(id),
                parent: None,
                labels: Vec::new(),
            })
            .collect()
    }

    /// Whether a binding's scope covers `x`: the workspace, a label `x`
    /// carries, or `x` itself or one of its ancestors.
    pub fn covers(&self, scope: Option<&str>, x: &Res) -> bool {
        let s = match scope {
            None | Some("workspace") => return true,
            Some(s) => s,
        };
        if let Some(l) = s.strip_prefix("label:") {
            return x.labels.iter().any(|y| y == l);
        }
        let Some((st, sid)) = s.strip_prefix("resource:").and_then(|r| r.split_once(':')) else {
            return false;
        };
        if x.ty == st && x.id.as_deref() == Some(sid) {
            return true;
        }
        // Walk up the parents (bounded: parents form a tree in a valid model).
        let mut at = x.parent.clone();
        let mut steps = 0;
        while let Some((pt, pid)) = at {
            if pt == st && pid == sid {
                return true;
            }
            steps += 1;
            if steps > 64 {
                return false;
            }
            at = self.find(&pt, &pid).and_then(|p| p.parent);
        }
        false
    }

    /// The highest rank among the enabled roles bound to `u`, at any scope.
    pub fn max_rank(&self, u: &str) -> Option<u32> {
        self.bindings_of(u)
            .iter()
            .filter_map(|(r, _, _)| self.role(r))
            .filter(|(_, disabled)| !disabled)
            .map(|(rank, _)| rank)
            .max()
    }

    /// The bindings of `u` that grant `a` on `x` itself (rule 3 alone).
    pub fn granting(&self, u: &str, a: &str, x: &Res) -> Vec<GrantingBinding> {
        let mut out: Vec<GrantingBinding> = self
            .bindings_of(u)
            .into_iter()
            .filter(|(role, scope, _)| {
                self.role(role).is_some_and(|(_, disabled)| !disabled)
                    && self.role_grants(role, &x.ty, a)
                    && self.covers(scope.as_deref(), x)
            })
            .map(|(role, scope, via_group)| GrantingBinding {
                role,
                scope: scope.unwrap_or_else(|| "workspace".to_string()),
                via_group,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every rule of SPEC 1.1 and 1.2 that fails for `u` doing `a` to `x`
    /// (`None` for a resource that does not exist).
    pub fn verdict(&self, u: &str, a: &str, x: Option<&Res>) -> Verdict {
        let mut v = Verdict::default();
        // Rule 1.
        match self.ws.users.iter().find(|y| y.id == u) {
            None => v.unknown_subject = true,
            Some(user) => v.suspended = user.status == UserStatus::Suspended,
        }
        let Some(x) = x else {
            v.unknown_resource = true;
            return v;
        };
        // Rule 2.
        if let Some(f) = self.feature_of(&x.ty, a) {
            v.feature_disabled = !self.feature_enabled(&f);
        }
        // Rule 3.
        v.no_grant = self.granting(u, a, x).is_empty();
        // Rule 4.
        if self.parent_type(&x.ty).is_some() {
            v.no_reach = match &x.parent {
                None => true,
                Some((pt, pid)) => !self.allowed(u, "read", self.find(pt, pid).as_ref()),
            };
        }
        // SPEC 1.2: a role not yet created counts as rank 0.
        if x.ty == "role" {
            let target =
                x.id.as_deref()
                    .and_then(|id| self.role(id))
                    .map_or(0, |(rank, _)| rank);
            v.rank_too_low = self.max_rank(u).is_none_or(|m| target > m);
        }
        v
    }

    /// `allowed(u, a, x)`.
    pub fn allowed(&self, u: &str, a: &str, x: Option<&Res>) -> bool {
        // An action the type does not have is granted to nobody.
        if let Some(x) = x {
            if !self.actions(&x.ty).iter().any(|y| y == a) {
                return false;
            }
        }
        self.verdict(u, a, x).allowed()
    }

    /// ListVisible: every resource of type `t` (direct children of `parent`
    /// when given) that `u` may `a`, ids ascending.
    pub fn list_visible(
        &self,
        u: &str,
        t: &str,
        a: &str,
        parent: Option<(&str, &str)>,
    ) -> Vec<String> {
        let mut ids: Vec<String> = self
            .all_of_type(t)
            .into_iter()
            .filter(|r| match parent {
                None => true,
                Some((pt, pid)) => r.parent.as_ref().is_some_and(|(a, b)| a == pt && b == pid),
            })
            .filter(|r| self.allowed(u, a, Some(r)))
            .filter_map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }

    /// ListSubjects: every user allowed `a` on `x`, ids ascending.
    pub fn list_subjects(&self, a: &str, x: Option<&Res>) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ws
            .users
            .iter()
            .filter(|u| self.allowed(&u.id, a, x))
            .map(|u| u.id.clone())
            .collect();
        ids.sort();
        ids
    }
}
