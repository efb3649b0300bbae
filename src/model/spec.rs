//! The snapshot file format (SPEC 3): plain serde types, field for field.
//!
//! These types are what a person writes and what the admin stream carries;
//! they hold strings, not resolved references. [`super::validate`] turns them
//! into a [`super::ValidModel`]. Unknown fields are errors everywhere.

use serde::{Deserialize, Serialize};

use super::map_only::{map_only_opt, maps_only};

/// A whole snapshot: any number of workspaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    #[serde(default, deserialize_with = "maps_only")]
    pub workspaces: Vec<WorkspaceSpec>,
}

/// One tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    pub id: String,
    /// The built-in role catalog the workspace starts from (default `minikai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogName>,
    /// Enabled features; `None` means every feature of the schema is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "map_only_opt"
    )]
    pub policy: Option<PolicySpec>,
    /// Resource types added to the default schema.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "maps_only"
    )]
    pub types: Vec<TypeSpec>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "maps_only"
    )]
    pub roles: Vec<RoleSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "maps_only"
    )]
    pub groups: Vec<GroupSpec>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "maps_only"
    )]
    pub users: Vec<UserSpec>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "maps_only"
    )]
    pub resources: Vec<ResourceSpec>,
}

/// The built-in role catalogs of SPEC 2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogName {
    #[default]
    Minikai,
    Environment,
    Seats,
    None,
}

impl CatalogName {
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogName::Minikai => "minikai",
            CatalogName::Environment => "environment",
            CatalogName::Seats => "seats",
            CatalogName::None => "none",
        }
    }
}

/// Workspace policies checked on every update (SPEC 1.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_admins: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_roles_per_user: Option<u32>,
    /// Roles that count as admin for `min_admins` (default `[admin, owner]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_roles: Option<Vec<String>>,
}

/// A custom resource type (a "custom app").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    /// The feature (app) every action of this type belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    pub id: String,
    /// Display name, unique per (workspace, organization); defaults to the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default)]
    pub rank: u32,
    /// `type:action`, `type:*` or `*:*`.
    #[serde(default)]
    pub grants: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub seat: bool,
    /// A disabled (removed) role stays a resource but grants nothing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
}

/// Who manages an item: the admin API (`local`) or the identity provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    Local,
    Directory,
}

impl Source {
    pub fn is_local(&self) -> bool {
        *self == Source::Local
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "Source::is_local")]
    pub source: Source,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default, deserialize_with = "maps_only")]
    pub bindings: Vec<BindingSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    Suspended,
}

impl UserStatus {
    pub fn is_active(&self) -> bool {
        *self == UserStatus::Active
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "UserStatus::is_active")]
    pub status: UserStatus,
    #[serde(default, skip_serializing_if = "Source::is_local")]
    pub source: Source,
    #[serde(default, deserialize_with = "maps_only")]
    pub bindings: Vec<BindingSpec>,
}

/// One role at one scope: `workspace` (the default), `label:L` or
/// `resource:TYPE:ID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    #[serde(rename = "type")]
    pub type_: String,
    pub id: String,
    /// `type:id`; a bare id is read as an id of the type's parent type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}
