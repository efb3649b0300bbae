//! The state dir's snapshot read for a restart: the JSON of a
//! [`SnapshotSpec`](crate::model::SnapshotSpec), read into
//! [`StoredSnapshot`], whose only use is to be validated
//! ([`crate::model::validate::validate_stored`]).
//!
//! Everything but the resources is read by the derived `Deserialize` of the
//! spec types. The resources, a million in a large model, are kept compact:
//! their ids and parents back to back in one string, their type and label
//! names once each (labels as 4-byte indexes), 24 bytes a resource besides
//! its text. As a `ResourceSpec` each took 96 bytes and four or five
//! allocations, which made reading the spec most of a restart. Type and
//! label names being kept once, validation also resolves each name once.
//!
//! The same JSON is accepted and refused as when it is read as a
//! `SnapshotSpec`, with the same error messages: the visitors below do what
//! `#[derive(Deserialize)]` does for `SnapshotSpec`, `WorkspaceSpec` and
//! `ResourceSpec` (unknown, duplicate and missing fields), refusing a list
//! where a struct's map belongs as [`crate::model::map_only`] does, and the
//! tests compare the two.

use std::fmt;

use rustc_hash::FxHashMap;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::model::map_only::{MapOnly, EXPECTING};
use crate::model::spec::WorkspaceSpec;

/// A snapshot read for validation only (see the module docs).
#[derive(Debug, Default)]
pub struct StoredSnapshot {
    pub(crate) workspaces: Vec<StoredWorkspace>,
}

/// One workspace: its spec without resources, and its resources.
#[derive(Debug)]
pub(crate) struct StoredWorkspace {
    /// `resources` is empty: they are in [`Self::resources`].
    pub head: WorkspaceSpec,
    pub resources: ResourceList,
}

/// The resources of a workspace, in the order they are listed.
#[derive(Debug, Default)]
pub(crate) struct ResourceList {
    /// Every id and parent, back to back.
    text: String,
    /// Type names, each once, in order of first use.
    types: Vec<String>,
    /// Label names, each once, in order of first use.
    labels: Vec<String>,
    items: Vec<Item>,
    /// Each resource's labels, as indexes into `labels`, back to back.
    label_refs: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    type_: u32,
    id: Span,
    /// `start == NO_PARENT` when the resource names no parent.
    parent: Span,
    /// Its labels are `label_refs[previous item's labels_end..labels_end]`.
    labels_end: u32,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

const NO_PARENT: u32 = u32::MAX;

impl ResourceList {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The type names that [`Self::type_of`] indexes.
    pub fn type_names(&self) -> &[String] {
        &self.types
    }

    /// The label names that [`Self::labels`] indexes.
    pub fn label_names(&self) -> &[String] {
        &self.labels
    }

    pub fn type_of(&self, i: usize) -> u32 {
        self.items[i].type_
    }

    pub fn type_name(&self, i: usize) -> &str {
        &self.types[self.items[i].type_ as usize]
    }

    pub fn id(&self, i: usize) -> &str {
        self.span(self.items[i].id)
    }

    pub fn parent(&self, i: usize) -> Option<&str> {
        let p = self.items[i].parent;
        (p.start != NO_PARENT).then(|| self.span(p))
    }

    pub fn labels(&self, i: usize) -> &[u32] {
        let start = match i {
            0 => 0,
            _ => self.items[i - 1].labels_end as usize,
        };
        &self.label_refs[start..self.items[i].labels_end as usize]
    }

    fn span(&self, s: Span) -> &str {
        &self.text[s.start as usize..s.start as usize + s.len as usize]
    }
}

impl<'de> Deserialize<'de> for StoredSnapshot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SnapshotVisitor)
    }
}

const SNAPSHOT_FIELDS: &[&str] = &["workspaces"];

struct SnapshotVisitor;

impl<'de> Visitor<'de> for SnapshotVisitor {
    type Value = StoredSnapshot;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoredSnapshot, A::Error> {
        let mut workspaces = None;
        while let Some(f) = map.next_key_seed(Field(SNAPSHOT_FIELDS))? {
            debug_assert_eq!(f, 0);
            if workspaces.is_some() {
                return Err(de::Error::duplicate_field("workspaces"));
            }
            workspaces = Some(map.next_value_seed(Workspaces)?);
        }
        Ok(StoredSnapshot {
            workspaces: workspaces.unwrap_or_default(),
        })
    }
}

/// A field name of a struct with `deny_unknown_fields`, as its index.
struct Field(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Field {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for Field {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        match usize::try_from(v) {
            Ok(i) if i < self.0.len() => Ok(i),
            _ => Err(E::invalid_value(
                de::Unexpected::Unsigned(v),
                &format!("field index 0 <= i < {}", self.0.len()).as_str(),
            )),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.0
            .iter()
            .position(|&name| name == v)
            .ok_or_else(|| E::unknown_field(v, self.0))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<usize, E> {
        match self.0.iter().position(|&name| name.as_bytes() == v) {
            Some(i) => Ok(i),
            None => Err(E::unknown_field(&String::from_utf8_lossy(v), self.0)),
        }
    }
}

/// [`Field`] for [`RESOURCE_FIELDS`], read a few million times in a large
/// model: a `match` compares less than a loop over the names.
struct ResourceField;

impl<'de> DeserializeSeed<'de> for ResourceField {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for ResourceField {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        Field(RESOURCE_FIELDS).visit_u64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        match v {
            "type" => Ok(0),
            "id" => Ok(1),
            "parent" => Ok(2),
            "labels" => Ok(3),
            _ => Err(E::unknown_field(v, RESOURCE_FIELDS)),
        }
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<usize, E> {
        Field(RESOURCE_FIELDS).visit_bytes(v)
    }
}

struct Workspaces;

impl<'de> DeserializeSeed<'de> for Workspaces {
    type Value = Vec<StoredWorkspace>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Workspaces {
    type Value = Vec<StoredWorkspace>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(w) = seq.next_element_seed(WorkspaceSeed)? {
            out.push(w);
        }
        Ok(out)
    }
}

/// Field for field, `WorkspaceSpec`'s.
const WORKSPACE_FIELDS: &[&str] = &[
    "id",
    "catalog",
    "features",
    "policy",
    "types",
    "roles",
    "labels",
    "groups",
    "users",
    "resources",
];

struct WorkspaceSeed;

impl<'de> DeserializeSeed<'de> for WorkspaceSeed {
    type Value = StoredWorkspace;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<StoredWorkspace, D::Error> {
        d.deserialize_map(self)
    }
}

/// A list field read as maps only, or its default.
fn unwrap_maps<T>(list: Option<Vec<MapOnly<T>>>) -> Vec<T> {
    list.map_or_else(Vec::new, |v| v.into_iter().map(|m| m.0).collect())
}

/// Sets a field read from a map, refusing a second value as derive does.
fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Visitor<'de> for WorkspaceSeed {
    type Value = StoredWorkspace;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoredWorkspace, A::Error> {
        // Fields that hold structs read them as maps only, as the spec
        // types' `deserialize_with` does.
        let (mut id, mut catalog, mut features) = (None, None, None);
        let mut policy: Option<Option<MapOnly<_>>> = None;
        let (mut types, mut roles, mut groups, mut users): (Option<Vec<MapOnly<_>>>, _, _, _) =
            (None, None, None, None);
        let mut labels = None;
        let mut resources = None;
        while let Some(f) = map.next_key_seed(Field(WORKSPACE_FIELDS))? {
            let name = WORKSPACE_FIELDS[f];
            match f {
                0 => once(&mut id, name, &mut map)?,
                1 => once(&mut catalog, name, &mut map)?,
                2 => once(&mut features, name, &mut map)?,
                3 => once(&mut policy, name, &mut map)?,
                4 => once(&mut types, name, &mut map)?,
                5 => once(&mut roles, name, &mut map)?,
                6 => once(&mut labels, name, &mut map)?,
                7 => once(&mut groups, name, &mut map)?,
                8 => once(&mut users, name, &mut map)?,
                _ => {
                    if resources.is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    resources = Some(map.next_value_seed(Resources)?);
                }
            }
        }
        let Some(id) = id else {
            return Err(de::Error::missing_field("id"));
        };
        // Listing every field (no `..`) keeps this in step with the type.
        let head = WorkspaceSpec {
            id,
            catalog: catalog.unwrap_or_default(),
            features: features.unwrap_or_default(),
            policy: policy.flatten().map(|m| m.0),
            types: unwrap_maps(types),
            roles: unwrap_maps(roles),
            labels: labels.unwrap_or_default(),
            groups: unwrap_maps(groups),
            users: unwrap_maps(users),
            resources: Vec::new(),
        };
        Ok(StoredWorkspace {
            head,
            resources: resources.unwrap_or_default(),
        })
    }
}

/// The `resources` list of a workspace.
struct Resources;

impl<'de> DeserializeSeed<'de> for Resources {
    type Value = ResourceList;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ResourceList, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Resources {
    type Value = ResourceList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ResourceList, A::Error> {
        let mut b = Builder::default();
        while seq.next_element_seed(ResourceSeed(&mut b))?.is_some() {}
        Ok(b.list)
    }
}

/// A [`ResourceList`] being read, with the indexes of the names seen.
#[derive(Default)]
struct Builder {
    list: ResourceList,
    type_ix: Names,
    label_ix: Names,
}

/// Field for field, `ResourceSpec`'s (`type_` is written `type`).
const RESOURCE_FIELDS: &[&str] = &["type", "id", "parent", "labels"];

/// Reads one resource into the builder.
struct ResourceSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for ResourceSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResourceSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let b = self.0;
        let (mut type_, mut id, mut parent, mut labels) = (None, None, None, false);
        while let Some(f) = map.next_key_seed(ResourceField)? {
            let duplicate = match f {
                0 => type_.is_some(),
                1 => id.is_some(),
                2 => parent.is_some(),
                _ => labels,
            };
            if duplicate {
                return Err(de::Error::duplicate_field(RESOURCE_FIELDS[f]));
            }
            match f {
                0 => type_ = Some(map.next_value_seed(Name(&mut b.list.types, &mut b.type_ix))?),
                1 => id = Some(map.next_value_seed(Text(&mut b.list.text))?),
                2 => parent = Some(map.next_value_seed(OptText(&mut b.list.text))?),
                _ => {
                    map.next_value_seed(Labels(b))?;
                    labels = true;
                }
            }
        }
        let Some(type_) = type_ else {
            return Err(de::Error::missing_field("type"));
        };
        let Some(id) = id else {
            return Err(de::Error::missing_field("id"));
        };
        let parent = parent.flatten().unwrap_or(Span {
            start: NO_PARENT,
            len: 0,
        });
        b.push(type_, id, parent)
    }
}

impl Builder {
    fn push<E: de::Error>(&mut self, type_: u32, id: Span, parent: Span) -> Result<(), E> {
        let labels_end = u32::try_from(self.list.label_refs.len()).map_err(|_| too_large())?;
        self.list.items.push(Item {
            type_,
            id,
            parent,
            labels_end,
        });
        Ok(())
    }
}

fn too_large<E: de::Error>() -> E {
    E::custom("the resources of one workspace are over 4 GiB")
}

/// A string appended to the text, as its span.
struct Text<'t>(&'t mut String);

impl<'de> DeserializeSeed<'de> for Text<'_> {
    type Value = Span;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Span, D::Error> {
        d.deserialize_string(self)
    }
}

impl<'de> Visitor<'de> for Text<'_> {
    type Value = Span;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
        let start = u32::try_from(self.0.len()).map_err(|_| too_large())?;
        let len = u32::try_from(v.len()).map_err(|_| too_large())?;
        if start.checked_add(len).is_none_or(|end| end == NO_PARENT) {
            return Err(too_large());
        }
        self.0.push_str(v);
        Ok(Span { start, len })
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Span, E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
        }
    }
}

/// An `Option<String>` appended to the text.
struct OptText<'t>(&'t mut String);

impl<'de> DeserializeSeed<'de> for OptText<'_> {
    type Value = Option<Span>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Span>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptText<'_> {
    type Value = Option<Span>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("option")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<Span>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Span>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Span>, D::Error> {
        Text(self.0).deserialize(d).map(Some)
    }
}

/// A name (a type or a label) kept once, as its index.
struct Name<'n>(&'n mut Vec<String>, &'n mut Names);

/// Names kept once each, and the last one read: resources of one type
/// tend to come together.
#[derive(Default)]
struct Names {
    index: FxHashMap<String, u32>,
    last: Option<u32>,
}

impl<'de> DeserializeSeed<'de> for Name<'_> {
    type Value = u32;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_string(self)
    }
}

impl<'de> Visitor<'de> for Name<'_> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        let Name(names, seen) = self;
        if let Some(last) = seen.last.filter(|&l| names[l as usize] == v) {
            return Ok(last);
        }
        let i = match seen.index.get(v) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(names.len()).map_err(|_| too_large())?;
                names.push(v.to_string());
                seen.index.insert(v.to_string(), i);
                i
            }
        };
        seen.last = Some(i);
        Ok(i)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<u32, E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
        }
    }
}

/// A resource's `labels`, appended to the label references.
struct Labels<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for Labels<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Labels<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let b = self.0;
        while let Some(l) = seq.next_element_seed(Name(&mut b.list.labels, &mut b.label_ix))? {
            b.list.label_refs.push(l);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::spec::{ResourceSpec, SnapshotSpec};

    /// The resources of a stored workspace, as specs again.
    fn specs(list: &ResourceList) -> Vec<ResourceSpec> {
        (0..list.len())
            .map(|i| ResourceSpec {
                type_: list.type_name(i).to_string(),
                id: list.id(i).to_string(),
                parent: list.parent(i).map(str::to_string),
                labels: list
                    .labels(i)
                    .iter()
                    .map(|&l| list.label_names()[l as usize].clone())
                    .collect(),
            })
            .collect()
    }

    fn as_spec(s: &StoredSnapshot) -> SnapshotSpec {
        SnapshotSpec {
            workspaces: s
                .workspaces
                .iter()
                .map(|w| WorkspaceSpec {
                    resources: specs(&w.resources),
                    ..w.head.clone()
                })
                .collect(),
        }
    }

    /// Reads `json` both ways: the same spec, or the same error message.
    fn same(json: &str) {
        // As `from_text` reads a file: a map at every level.
        let derived = serde_json::from_str::<MapOnly<SnapshotSpec>>(json).map(|m| m.0);
        let stored = serde_json::from_str::<StoredSnapshot>(json);
        match (derived, stored) {
            (Ok(d), Ok(s)) => assert_eq!(d, as_spec(&s), "{json}"),
            (Err(d), Err(s)) => assert_eq!(d.to_string(), s.to_string(), "{json}"),
            (d, s) => panic!("{json}: derived {d:?}, stored {:?}", s.map(|s| as_spec(&s))),
        }
    }

    #[test]
    fn reads_what_the_spec_types_read() {
        for json in [
            r#"{}"#,
            r#"{"workspaces":[]}"#,
            r#"{"workspaces":[{"id":"w"}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[]}]}"#,
            r#"{"workspaces":[{"id":"w","labels":["a","b"],"users":[{"id":"u"}],"resources":[
                {"type":"mini","id":"m-1","labels":["a","b","a"]},
                {"type":"record","id":"r-1","parent":"mini:m-1","labels":["b"]},
                {"id":"r-2","type":"record","parent":null},
                {"labels":[],"parent":"m-1","id":"r-3","type":"record"},
                {"type":"r\u00e9cord","id":"a\"b\\c\n","parent":"x:\u0041"}]}]}"#,
            r#"{"workspaces":[{"id":"a","resources":[{"type":"mini","id":"m"}]},
                {"id":"b","resources":[{"type":"mini","id":"m","labels":["z"]}]}]}"#,
        ] {
            same(json);
        }
    }

    #[test]
    fn refuses_what_the_spec_types_refuse_with_the_same_message() {
        for json in [
            r#""#,
            r#"{"workspaces":[{"id":"w"}],"extra":1}"#,
            r#"{"workspaces":[],"workspaces":[]}"#,
            r#"{"workspaces":{}}"#,
            r#"{"workspaces":[{}]}"#,
            r#"{"workspaces":[{"id":"w","id":"v"}]}"#,
            r#"{"workspaces":[{"id":"w","bogus":[]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[],"resources":[]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":null}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"id":"r"}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":"record"}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":"record","id":"r","id":"s"}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":"a","id":"r","labels":[],"labels":[]}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":"a","id":"r","parent":1}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":"a","id":"r","labels":null}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":"a","id":"r","labels":[3]}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":"a","id":"r","color":"red"}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":5,"id":"r"}]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[7]}]}"#,
            r#"{"workspaces":[{"id":"w","resources":[{"type":"a","id":"r"}"#,
            r#"{"workspaces":[{"id":"w","users":[{"id":"u","x":1}]}]}"#,
            // the array forms of the structs, at each level
            r#"[[]]"#,
            r#"[]"#,
            r#"{"workspaces":[["w"]]}"#,
            r#"{"workspaces":[{"id":"w","resources":[["mini","m"]]}]}"#,
            r#"{"workspaces":[{"id":"w","users":[["u"]]}]}"#,
            r#"{"workspaces":[{"id":"w","users":[{"id":"u","bindings":[["viewer"]]}]}]}"#,
            r#"{"workspaces":[{"id":"w","policy":[1]}]}"#,
            r#"{"workspaces":[{"id":"w","roles":[["r"]]}]}"#,
            r#"[[["w",null,null,null,[],[],[],[],[],[["mini","m"],["record","r","m",["l"]]]]]]"#,
        ] {
            same(json);
        }
    }
}
