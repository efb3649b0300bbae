//! The built-in role catalogs of SPEC 2, held as data in this one place.

use super::spec::CatalogName;

/// Mini feature actions: implied by `mini:read` except in the `seats` catalog.
pub const MINI_FEATURES: [&str; 5] = [
    "chat",
    "prompt_recommendations",
    "citations",
    "email_drafting",
    "speech_to_text",
];

/// One type of the default schema.
pub struct DefaultType {
    pub name: &'static str,
    pub parent: Option<&'static str>,
    pub actions: &'static [&'static str],
    /// Resources of this type are not listed in snapshots: they are the
    /// workspace itself and its users, groups, labels and roles.
    pub implicit: bool,
}

/// The default schema every catalog keeps (SPEC 2). Mini feature actions
/// are appended to `mini` by the schema builder.
pub const DEFAULT_TYPES: &[DefaultType] = &[
    DefaultType {
        name: "workspace",
        parent: None,
        actions: &["read", "delete", "manage_settings"],
        implicit: true,
    },
    DefaultType {
        name: "user",
        parent: None,
        actions: &["read", "invite", "remove"],
        implicit: true,
    },
    DefaultType {
        name: "group",
        parent: None,
        actions: &["read", "create", "update", "manage_members", "delete"],
        implicit: true,
    },
    DefaultType {
        name: "label",
        parent: None,
        actions: &["read", "create", "update", "delete"],
        implicit: true,
    },
    DefaultType {
        name: "role",
        parent: None,
        actions: &["read", "create", "update", "delete", "assign"],
        implicit: true,
    },
    DefaultType {
        name: "mini",
        parent: None,
        actions: &["read", "create", "update", "delete", "import_records"],
        implicit: false,
    },
    DefaultType {
        name: "record",
        parent: Some("mini"),
        actions: &["read", "create", "update", "archive", "delete", "attach"],
        implicit: false,
    },
];

/// A built-in role: `grants` minus `except`, expanded against the
/// workspace's schema (so `*:*` covers custom types too).
pub struct BuiltinRole {
    pub id: &'static str,
    pub description: &'static str,
    pub rank: u32,
    pub grants: &'static [&'static str],
    pub except: &'static [&'static str],
    pub seat: bool,
}

const fn role(
    id: &'static str,
    description: &'static str,
    rank: u32,
    grants: &'static [&'static str],
) -> BuiltinRole {
    BuiltinRole {
        id,
        description,
        rank,
        grants,
        except: &[],
        seat: false,
    }
}

const ADMIN_EXCEPT_DELETE: BuiltinRole = BuiltinRole {
    id: "admin",
    description: "Administrator: every action except deleting the workspace",
    rank: 90,
    grants: &["*:*"],
    except: &["workspace:delete"],
    seat: false,
};
const VIEWER: BuiltinRole = role(
    "viewer",
    "Viewer: reads Minis and records, meant for label or Mini scope",
    10,
    &["mini:read", "record:read"],
);
const EDITOR: BuiltinRole = role(
    "editor",
    "Editor: edits records, meant for label or Mini scope",
    20,
    &[
        "mini:read",
        "record:read",
        "record:create",
        "record:update",
        "record:archive",
        "record:attach",
    ],
);
const RECORD_EDIT: &[&str] = &[
    "record:read",
    "record:create",
    "record:update",
    "record:archive",
    "record:attach",
];

const MINIKAI: &[BuiltinRole] = &[
    role(
        "member",
        "Member: signs in; access comes from other roles",
        0,
        &[],
    ),
    role(
        "record_all_viewer",
        "Record All Viewer: removes label limits on records, reaches no Mini on its own",
        10,
        &["record:read"],
    ),
    role(
        "record_all_editor",
        "Record All Editor: edits records on every reachable Mini",
        20,
        RECORD_EDIT,
    ),
    role(
        "mini_all_viewer",
        "Mini All Viewer: reads every Mini",
        10,
        &["mini:read"],
    ),
    role(
        "mini_all_editor",
        "Mini All Editor: reads and updates every Mini",
        20,
        &["mini:read", "mini:update"],
    ),
    VIEWER,
    EDITOR,
    ADMIN_EXCEPT_DELETE,
    role("owner", "Owner: everything", 100, &["*:*"]),
];

const ENVIRONMENT: &[BuiltinRole] = &[
    ADMIN_EXCEPT_DELETE,
    role(
        "creator",
        "Creator: creates and maintains Minis and records",
        50,
        &[
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
        ],
    ),
    role(
        "member",
        "Member: nothing by itself; access through group bindings",
        0,
        &[],
    ),
    VIEWER,
    EDITOR,
];

const SEATS: &[BuiltinRole] = &[
    BuiltinRole {
        id: "admin",
        description: "Admin: every action (consumes a seat)",
        rank: 90,
        grants: &["*:*"],
        except: &[],
        seat: true,
    },
    BuiltinRole {
        id: "member",
        description: "Member: reads Minis and uses every Mini feature (consumes a seat)",
        rank: 10,
        grants: &[
            "workspace:read",
            "mini:read",
            "mini:chat",
            "mini:prompt_recommendations",
            "mini:citations",
            "mini:email_drafting",
            "mini:speech_to_text",
        ],
        except: &[],
        seat: true,
    },
    role(
        "viewer",
        "Viewer: reads shared content, no AI features, no seat",
        0,
        &["workspace:read", "mini:read"],
    ),
];

/// What a catalog brings to a workspace.
pub struct Catalog {
    pub roles: &'static [BuiltinRole],
    /// Whether `mini:read` implies the Mini feature actions.
    pub read_implies_mini_features: bool,
    /// Policy defaults the workspace's own `policy` may override.
    pub default_min_admins: Option<u32>,
    pub default_max_roles_per_user: Option<u32>,
}

pub fn catalog(name: CatalogName) -> Catalog {
    match name {
        CatalogName::Minikai => Catalog {
            roles: MINIKAI,
            read_implies_mini_features: true,
            default_min_admins: None,
            default_max_roles_per_user: None,
        },
        CatalogName::Environment => Catalog {
            roles: ENVIRONMENT,
            read_implies_mini_features: true,
            default_min_admins: None,
            default_max_roles_per_user: None,
        },
        CatalogName::Seats => Catalog {
            roles: SEATS,
            read_implies_mini_features: false,
            default_min_admins: Some(1),
            default_max_roles_per_user: Some(1),
        },
        CatalogName::None => Catalog {
            roles: &[],
            read_implies_mini_features: true,
            default_min_admins: None,
            default_max_roles_per_user: None,
        },
    }
}

/// Admin roles counted by `min_admins` when the policy names none.
pub const DEFAULT_ADMIN_ROLES: [&str; 2] = ["admin", "owner"];
