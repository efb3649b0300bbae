//! What the engine answers: decisions with the rule that decided them, and
//! the request errors that are not decisions at all.

use std::fmt;

/// Why a check came out as it did: the first rule of SPEC 1.1–1.2 that
/// failed, or `Granted`. Scenario files name it in its wire words
/// (`no_reach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Granted,
    UnknownSubject,
    Suspended,
    UnknownResource,
    FeatureDisabled,
    NoGrant,
    /// Granted on the resource, but the parent's `read` is denied.
    NoReach,
    /// An action on a role ranked above the actor's highest role.
    RankTooLow,
}

impl Reason {
    /// Every rule, in the order of their wire values (`pb::Reason`, 1 to 8).
    pub const ALL: [Reason; 8] = [
        Reason::Granted,
        Reason::UnknownSubject,
        Reason::Suspended,
        Reason::UnknownResource,
        Reason::FeatureDisabled,
        Reason::NoGrant,
        Reason::NoReach,
        Reason::RankTooLow,
    ];

    /// The machine-readable name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Granted => "granted",
            Reason::UnknownSubject => "unknown_subject",
            Reason::Suspended => "suspended",
            Reason::UnknownResource => "unknown_resource",
            Reason::FeatureDisabled => "feature_disabled",
            Reason::NoGrant => "no_grant",
            Reason::NoReach => "no_reach",
            Reason::RankTooLow => "rank_too_low",
        }
    }
}

/// A decision: allowed exactly when the reason is `Granted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub reason: Reason,
}

impl Decision {
    pub const fn new(reason: Reason) -> Self {
        Decision { reason }
    }

    #[inline]
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Granted
    }
}

/// A binding as it applies to one user, in the file's words.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BindingView {
    pub role: String,
    /// `workspace`, `label:L` or `resource:TYPE:ID`.
    pub scope: String,
    /// The group it comes through; `None` when held directly.
    pub via_group: Option<String>,
}

impl fmt::Display for BindingView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "role {} at {}", self.role, self.scope)?;
        if let Some(g) = &self.via_group {
            write!(f, " (through group {g})")?;
        }
        Ok(())
    }
}

/// A decision with its reasons spelled out for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    pub message: String,
    /// The bindings that grant the action on the resource itself.
    pub granted_by: Vec<BindingView>,
    /// The parent whose `read` decided reach (`mini:m-1`), if any.
    pub reach_through: Option<String>,
}

/// A request the engine cannot answer because it is malformed: these are
/// errors for the caller (INVALID_ARGUMENT), never decisions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{field}: unknown resource type \"{type_}\"")]
    UnknownType { field: &'static str, type_: String },
    #[error("{field}: type \"{type_}\" has no action \"{action}\"")]
    UnknownAction {
        field: &'static str,
        type_: String,
        action: String,
    },
    #[error("{field}: {message}")]
    Malformed {
        field: &'static str,
        message: String,
    },
}
