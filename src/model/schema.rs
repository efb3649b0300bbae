//! A workspace's schema: the default types (SPEC 2) plus its custom types,
//! with every `(type, action)` pair numbered as a permission bit.

use rustc_hash::FxHashMap;
use smallvec::{smallvec, SmallVec};

use super::catalog::{DefaultType, DEFAULT_TYPES, MINI_FEATURES};
use super::names::{self, NameMap};
use super::problem::{Problem, Rule};
use super::spec::TypeSpec;

pub type TypeId = u16;
pub type ActionId = u16;
pub type FeatureId = u16;
/// Index of a `(type, action)` pair in a workspace's permission bitsets.
pub type PermId = u32;

#[derive(Debug, Clone)]
pub struct ActionDef {
    pub name: String,
    /// The feature (app) this action belongs to; a disabled feature denies it
    /// to everyone.
    pub feature: Option<FeatureId>,
    /// An action of the same type whose grant also grants this one
    /// (Mini features are implied by `read`).
    pub implied_by: Option<ActionId>,
}

#[derive(Debug, Clone)]
pub struct TypeDef {
    pub name: String,
    pub parent: Option<TypeId>,
    pub actions: Vec<ActionDef>,
    /// Permission id of action 0; action `a` is `first_perm + a`.
    pub first_perm: PermId,
    /// Resources of implicit types (workspace, user, group, label, role)
    /// come from the model itself, never from the `resources` list.
    pub implicit: bool,
    pub custom: bool,
}

impl TypeDef {
    pub fn action(&self, name: &str) -> Option<ActionId> {
        self.actions
            .iter()
            .position(|a| names::eq(a.name.as_bytes(), name.as_bytes()))
            .map(|i| i as ActionId)
    }

    pub fn perm(&self, action: ActionId) -> PermId {
        self.first_perm + action as PermId
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub types: Vec<TypeDef>,
    by_name: NameMap<TypeId>,
    /// Each type's `read` permission: rule 4 asks for it on every check of
    /// a resource with a parent.
    read_perms: Vec<Option<PermId>>,
    pub features: Vec<String>,
    feature_by_name: FxHashMap<String, FeatureId>,
    pub perm_count: usize,
}

/// Well-known type ids: the default types come first, in `DEFAULT_TYPES` order.
pub const WORKSPACE_TYPE: TypeId = 0;
pub const USER_TYPE: TypeId = 1;
pub const GROUP_TYPE: TypeId = 2;
pub const LABEL_TYPE: TypeId = 3;
pub const ROLE_TYPE: TypeId = 4;

impl Schema {
    /// Builds the schema, reporting every problem with the custom types.
    pub fn build(
        place: &str,
        custom: &[TypeSpec],
        read_implies_mini_features: bool,
        problems: &mut Vec<Problem>,
    ) -> Schema {
        let mut s = Schema::default();
        for f in MINI_FEATURES {
            s.add_feature(f);
        }
        for d in DEFAULT_TYPES {
            s.add_default(d, read_implies_mini_features);
        }
        // Custom types: names first, so parents may refer forward.
        let mut accepted: Vec<&TypeSpec> = Vec::new();
        for t in custom {
            let tp = format!("{place}, type \"{}\"", t.name);
            if !valid_id(&t.name) {
                problems.push(Problem::new(Rule::Id, tp, id_rule_message("type name")));
                continue;
            }
            // A grant is `type:action`, with `*` for every type or action.
            if t.name == "*" || t.name.contains(':') {
                problems.push(Problem::new(
                    Rule::Id,
                    tp,
                    "a type name cannot be \"*\" nor hold a \":\": grants are written type:action, \
                     with * for every type"
                        .to_string(),
                ));
                continue;
            }
            if s.by_name.contains_key(&t.name) {
                problems.push(Problem::new(
                    Rule::Duplicate,
                    tp,
                    format!("type \"{}\" is already defined", t.name),
                ));
                continue;
            }
            let feature = t.feature.as_deref().map(|f| s.add_feature(f));
            let mut actions: Vec<ActionDef> = Vec::new();
            for a in &t.actions {
                if !valid_id(a) {
                    problems.push(Problem::new(
                        Rule::Id,
                        tp.clone(),
                        format!("action \"{a}\": {}", id_rule_message("action name")),
                    ));
                } else if a == "*" {
                    problems.push(Problem::new(
                        Rule::Id,
                        tp.clone(),
                        "an action cannot be named \"*\": type:* grants every action of a type"
                            .to_string(),
                    ));
                } else if actions.iter().any(|x| &x.name == a) {
                    problems.push(Problem::new(
                        Rule::Duplicate,
                        tp.clone(),
                        format!("action \"{a}\" is listed twice"),
                    ));
                } else {
                    actions.push(ActionDef {
                        name: a.clone(),
                        feature,
                        implied_by: None,
                    });
                }
            }
            s.push_type(TypeDef {
                name: t.name.clone(),
                parent: None,
                actions,
                first_perm: 0,
                implicit: false,
                custom: true,
            });
            accepted.push(t);
        }
        for t in accepted {
            let Some(parent) = &t.parent else { continue };
            let tp = format!("{place}, type \"{}\"", t.name);
            match s.type_id(parent) {
                Some(p) => {
                    if let Some(id) = s.type_id(&t.name) {
                        s.types[id as usize].parent = Some(p);
                    }
                }
                None => problems.push(Problem::new(
                    Rule::Parent,
                    tp,
                    format!("parent type \"{parent}\" is not a type of this schema"),
                )),
            }
        }
        s.break_cycles(place, problems);
        s
    }

    fn add_feature(&mut self, name: &str) -> FeatureId {
        if let Some(&f) = self.feature_by_name.get(name) {
            return f;
        }
        let f = self.features.len() as FeatureId;
        self.features.push(name.to_string());
        self.feature_by_name.insert(name.to_string(), f);
        f
    }

    fn add_default(&mut self, d: &DefaultType, read_implies_mini_features: bool) {
        let mut actions: Vec<ActionDef> = d
            .actions
            .iter()
            .map(|a| ActionDef {
                name: a.to_string(),
                feature: None,
                implied_by: None,
            })
            .collect();
        if d.name == "mini" {
            for f in MINI_FEATURES {
                actions.push(ActionDef {
                    name: f.to_string(),
                    feature: self.feature_by_name.get(f).copied(),
                    implied_by: read_implies_mini_features.then_some(0),
                });
            }
        }
        let parent = d.parent.and_then(|p| self.type_id(p));
        self.push_type(TypeDef {
            name: d.name.to_string(),
            parent,
            actions,
            first_perm: 0,
            implicit: d.implicit,
            custom: false,
        });
    }

    fn push_type(&mut self, mut t: TypeDef) {
        t.first_perm = self.perm_count as PermId;
        self.perm_count += t.actions.len();
        self.by_name.insert(&t.name, self.types.len() as TypeId);
        self.read_perms.push(t.action("read").map(|a| t.perm(a)));
        self.types.push(t);
    }

    /// Reports each cycle in the parent graph once and cuts it, so the rest
    /// of validation can walk parents without looping.
    fn break_cycles(&mut self, place: &str, problems: &mut Vec<Problem>) {
        for start in 0..self.types.len() {
            let mut seen = vec![false; self.types.len()];
            let mut at = start;
            while let Some(p) = self.types[at].parent {
                if seen[p as usize] {
                    break;
                }
                seen[p as usize] = true;
                if p as usize == start {
                    problems.push(Problem::new(
                        Rule::Cycle,
                        format!("{place}, type \"{}\"", self.types[start].name),
                        format!(
                            "the parent types of \"{}\" form a cycle",
                            self.types[start].name
                        ),
                    ));
                    self.types[start].parent = None;
                    break;
                }
                at = p as usize;
            }
        }
    }

    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    pub fn ty(&self, id: TypeId) -> &TypeDef {
        &self.types[id as usize]
    }

    /// The permission bit of type `t`'s `read` action, if it has one.
    #[inline]
    pub fn read_perm(&self, t: TypeId) -> Option<PermId> {
        self.read_perms.get(t as usize).copied().flatten()
    }

    pub fn feature_id(&self, name: &str) -> Option<FeatureId> {
        self.feature_by_name.get(name).copied()
    }

    /// The `(type, action)` pair a permission bit stands for.
    pub fn perm_name(&self, perm: PermId) -> String {
        for t in &self.types {
            let end = t.first_perm + t.actions.len() as PermId;
            if perm >= t.first_perm && perm < end {
                return format!(
                    "{}:{}",
                    t.name,
                    t.actions[(perm - t.first_perm) as usize].name
                );
            }
        }
        format!("#{perm}")
    }

    /// Expands one grant string (`type:action`, `type:*`, `*:*`) into
    /// permission bits, or says why it is not a grant of this schema.
    pub fn expand_grant(&self, grant: &str, bits: &mut PermSet) -> Result<(), (Rule, String)> {
        let Some((t, a)) = grant.split_once(':') else {
            return Err((
                Rule::Grant,
                format!("grant \"{grant}\" is not of the form type:action"),
            ));
        };
        if t == "*" {
            if a != "*" {
                return Err((
                    Rule::Grant,
                    format!("grant \"{grant}\": the only wildcards are type:* and *:*"),
                ));
            }
            for ty in &self.types {
                for i in 0..ty.actions.len() {
                    bits.insert(ty.perm(i as ActionId));
                }
            }
            return Ok(());
        }
        let Some(tid) = self.type_id(t) else {
            return Err((
                Rule::UnknownType,
                format!("grant \"{grant}\" names unknown type \"{t}\""),
            ));
        };
        let ty = self.ty(tid);
        if a == "*" {
            for i in 0..ty.actions.len() {
                bits.insert(ty.perm(i as ActionId));
            }
            return Ok(());
        }
        match ty.action(a) {
            Some(aid) => {
                bits.insert(ty.perm(aid));
                Ok(())
            }
            None => Err((
                Rule::UnknownAction,
                format!("grant \"{grant}\": type \"{t}\" has no action \"{a}\""),
            )),
        }
    }

    /// Adds the actions implied by granted ones (Mini features by `read`).
    pub fn close_implied(&self, bits: &mut PermSet) {
        for ty in &self.types {
            for (i, a) in ty.actions.iter().enumerate() {
                if let Some(by) = a.implied_by {
                    if bits.contains(ty.perm(by)) {
                        bits.insert(ty.perm(i as ActionId));
                    }
                }
            }
        }
    }
}

/// Words a [`PermSet`] holds without a heap allocation: 128 permissions,
/// enough for the default schema (36 with the Mini features) and a
/// few custom types. A larger schema's sets spill to the heap and work the
/// same.
pub const INLINE_PERM_WORDS: usize = 2;

/// A set of permission bits, sized to the schema. Its words are inline (up
/// to [`INLINE_PERM_WORDS`]) so that a check reading a user's or a role's
/// set touches no memory beyond the struct holding it; 24 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermSet {
    words: SmallVec<[u64; INLINE_PERM_WORDS]>,
}

impl PermSet {
    pub fn with_capacity(perm_count: usize) -> Self {
        PermSet {
            words: smallvec![0; perm_count.div_ceil(64).max(1)],
        }
    }

    /// Whether the words are inline (no heap allocation).
    pub fn is_inline(&self) -> bool {
        !self.words.spilled()
    }

    pub fn insert(&mut self, p: PermId) {
        let w = (p / 64) as usize;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (p % 64);
    }

    pub fn remove(&mut self, p: PermId) {
        if let Some(w) = self.words.get_mut((p / 64) as usize) {
            *w &= !(1 << (p % 64));
        }
    }

    #[inline]
    pub fn contains(&self, p: PermId) -> bool {
        match self.words.get((p / 64) as usize) {
            Some(w) => w & (1 << (p % 64)) != 0,
            None => false,
        }
    }

    pub fn union_with(&mut self, other: &PermSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }
}

/// Ids are non-empty, at most 256 bytes, printable, without whitespace.
pub const MAX_ID_LEN: usize = 256;

pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

pub fn id_rule_message(what: &str) -> String {
    format!("a {what} must be 1 to {MAX_ID_LEN} bytes with no spaces or control characters")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str, parent: Option<&str>, actions: &[&str]) -> TypeSpec {
        TypeSpec {
            name: name.to_string(),
            parent: parent.map(str::to_string),
            actions: actions.iter().map(|a| a.to_string()).collect(),
            feature: None,
        }
    }

    fn schema(types: &[TypeSpec], implies: bool) -> (Schema, Vec<Problem>) {
        let mut problems = Vec::new();
        let s = Schema::build("workspace \"w\"", types, implies, &mut problems);
        (s, problems)
    }

    fn grant(s: &Schema, g: &str) -> PermSet {
        let mut bits = PermSet::with_capacity(s.perm_count);
        if let Err((rule, msg)) = s.expand_grant(g, &mut bits) {
            panic!("{g}: {msg} [{}]", rule.as_str());
        }
        bits
    }

    fn has(s: &Schema, bits: &PermSet, t: &str, a: &str) -> bool {
        let Some(tid) = s.type_id(t) else {
            panic!("no type {t}")
        };
        let ty = s.ty(tid);
        let Some(aid) = ty.action(a) else {
            panic!("no action {t}:{a}")
        };
        bits.contains(ty.perm(aid))
    }

    #[test]
    fn the_default_schema_is_spec_section_2() {
        let (s, problems) = schema(&[], true);
        assert!(problems.is_empty());
        let names: Vec<&str> = s.types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "workspace",
                "user",
                "group",
                "label",
                "role",
                "mini",
                "record"
            ]
        );
        let actions = |t: &str| -> Vec<String> {
            s.type_id(t)
                .map(|id| s.ty(id).actions.iter().map(|a| a.name.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(actions("workspace"), ["read", "delete", "manage_settings"]);
        assert_eq!(actions("user"), ["read", "invite", "remove"]);
        assert_eq!(
            actions("group"),
            ["read", "create", "update", "manage_members", "delete"]
        );
        assert_eq!(actions("label"), ["read", "create", "update", "delete"]);
        assert_eq!(
            actions("role"),
            ["read", "create", "update", "delete", "assign"]
        );
        assert_eq!(
            actions("mini"),
            [
                "read",
                "create",
                "update",
                "delete",
                "import_records",
                "chat",
                "prompt_recommendations",
                "citations",
                "email_drafting",
                "speech_to_text"
            ]
        );
        assert_eq!(
            actions("record"),
            ["read", "create", "update", "archive", "delete", "attach"]
        );
        assert_eq!(
            s.type_id("record").map(|r| s.ty(r).parent),
            Some(s.type_id("mini"))
        );
        assert_eq!(s.ty(WORKSPACE_TYPE).name, "workspace");
        assert_eq!(s.ty(USER_TYPE).name, "user");
        assert_eq!(s.ty(GROUP_TYPE).name, "group");
        assert_eq!(s.ty(LABEL_TYPE).name, "label");
        assert_eq!(s.ty(ROLE_TYPE).name, "role");
    }

    #[test]
    fn each_mini_feature_is_its_own_feature() {
        let (s, _) = schema(&[], true);
        let Some(mini) = s.type_id("mini") else {
            panic!("no mini")
        };
        for a in &s.ty(mini).actions {
            let feature = a.feature.map(|f| s.features[f as usize].as_str());
            if MINI_FEATURES.contains(&a.name.as_str()) {
                assert_eq!(feature, Some(a.name.as_str()));
            } else {
                assert_eq!(feature, None, "{}", a.name);
            }
        }
    }

    #[test]
    fn wildcards_cover_custom_types_and_features() {
        let (s, problems) = schema(&[custom("manual", None, &["read", "restore"])], true);
        assert!(problems.is_empty());
        let all = grant(&s, "*:*");
        for t in &s.types {
            for i in 0..t.actions.len() {
                assert!(all.contains(t.perm(i as ActionId)));
            }
        }
        let minis = grant(&s, "mini:*");
        assert!(has(&s, &minis, "mini", "chat"));
        assert!(has(&s, &minis, "mini", "import_records"));
        assert!(!has(&s, &minis, "record", "read"));
        let manual = grant(&s, "manual:restore");
        assert!(has(&s, &manual, "manual", "restore"));
        assert!(!has(&s, &manual, "manual", "read"));
    }

    #[test]
    fn bad_grants_say_why() {
        let (s, _) = schema(&[], true);
        let mut bits = PermSet::with_capacity(s.perm_count);
        let rule = |g: &str, bits: &mut PermSet| s.expand_grant(g, bits).err().map(|e| e.0);
        assert_eq!(rule("*:read", &mut bits), Some(Rule::Grant));
        assert_eq!(rule("read", &mut bits), Some(Rule::Grant));
        assert_eq!(rule("plane:*", &mut bits), Some(Rule::UnknownType));
        assert_eq!(rule("mini:fly", &mut bits), Some(Rule::UnknownAction));
        assert_eq!(rule("mini:archive", &mut bits), Some(Rule::UnknownAction));
        assert!(bits.is_empty());
    }

    #[test]
    fn read_implies_mini_features_unless_told_not_to() {
        for implies in [true, false] {
            let (s, _) = schema(&[custom("doc", None, &["read", "chat"])], implies);
            let mut bits = grant(&s, "mini:read");
            bits.union_with(&grant(&s, "doc:read"));
            s.close_implied(&mut bits);
            for f in MINI_FEATURES {
                assert_eq!(has(&s, &bits, "mini", f), implies, "{f}");
            }
            // Custom types imply nothing.
            assert!(!has(&s, &bits, "doc", "chat"));
            assert!(!has(&s, &bits, "mini", "update"));
        }
    }

    #[test]
    fn custom_type_problems_are_all_reported() {
        let (s, problems) = schema(
            &[
                custom("mini", None, &["read"]),
                custom("a", Some("c"), &["read"]),
                custom("b", Some("a"), &["read", "read"]),
                custom("c", Some("b"), &["read"]),
                custom("orphan", Some("nowhere"), &["read"]),
                custom("bad name", None, &["read"]),
                custom("starry", None, &["*"]),
            ],
            true,
        );
        let rules: Vec<Rule> = problems.iter().map(|p| p.rule).collect();
        assert!(rules.contains(&Rule::Duplicate), "{problems:?}");
        assert!(rules.contains(&Rule::Cycle), "{problems:?}");
        assert!(rules.contains(&Rule::Parent), "{problems:?}");
        assert!(rules.contains(&Rule::Id), "{problems:?}");
        assert_eq!(rules.iter().filter(|r| **r == Rule::Id).count(), 2);
        // The cycle is cut, so walking parents terminates.
        for start in 0..s.types.len() {
            let mut at = start;
            let mut steps = 0;
            while let Some(p) = s.types[at].parent {
                at = p as usize;
                steps += 1;
                assert!(steps <= s.types.len(), "a cycle survived");
            }
        }
    }

    #[test]
    fn perm_sets_grow_and_shrink() {
        let mut a = PermSet::with_capacity(1);
        assert!(a.is_empty());
        a.insert(200);
        assert!(a.contains(200));
        assert!(!a.contains(199));
        assert!(!a.contains(10_000));
        let mut b = PermSet::with_capacity(300);
        b.insert(3);
        b.union_with(&a);
        assert!(b.contains(3) && b.contains(200));
        b.remove(200);
        b.remove(9_999);
        assert!(!b.contains(200));
        assert!(!b.is_empty());
        // 128 permissions fit inline; more spill to the heap and still work.
        assert!(PermSet::with_capacity(128).is_inline());
        assert!(!b.is_inline());
        let mut c = PermSet::with_capacity(40);
        assert!(c.is_inline());
        c.union_with(&b);
        assert!(c.contains(3) && !c.contains(200) && !c.contains(299));
        assert_eq!(std::mem::size_of::<PermSet>(), 24);
    }

    #[test]
    fn ids_are_printable_without_spaces() {
        assert!(valid_id("u-1"));
        assert!(valid_id("Ω"));
        assert!(!valid_id(""));
        assert!(!valid_id("two words"));
        assert!(!valid_id("tab\there"));
        assert!(!valid_id(&"x".repeat(MAX_ID_LEN + 1)));
        assert!(valid_id(&"x".repeat(MAX_ID_LEN)));
    }
}
