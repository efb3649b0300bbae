//! Validation problems: each names the place, the item and the rule broken.

use std::fmt;

/// The rule a problem breaks, in SPEC's words, so people and scripts can
/// search for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The file could not be parsed (syntax, types, unknown fields).
    Syntax,
    UnknownField,
    Duplicate,
    BuiltIn,
    UnknownRole,
    UnknownLabel,
    UnknownResource,
    UnknownMember,
    UnknownType,
    UnknownAction,
    UnknownFeature,
    Parent,
    Cycle,
    Grant,
    Scope,
    Id,
    MinAdmins,
    MaxRolesPerUser,
    Directory,
    Limit,
    Revision,
    /// A bug in rolecall, not in the model it was given: the message says
    /// what failed.
    Internal,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Syntax => "syntax",
            Rule::UnknownField => "unknown field",
            Rule::Duplicate => "duplicate",
            Rule::BuiltIn => "built-in",
            Rule::UnknownRole => "unknown role",
            Rule::UnknownLabel => "unknown label",
            Rule::UnknownResource => "unknown resource",
            Rule::UnknownMember => "unknown member",
            Rule::UnknownType => "unknown type",
            Rule::UnknownAction => "unknown action",
            Rule::UnknownFeature => "unknown feature",
            Rule::Parent => "parent",
            Rule::Cycle => "cycle",
            Rule::Grant => "grant",
            Rule::Scope => "scope",
            Rule::Id => "id",
            Rule::MinAdmins => "min_admins",
            Rule::MaxRolesPerUser => "max_roles_per_user",
            Rule::Directory => "directory",
            Rule::Limit => "limit",
            Rule::Revision => "expected_revision",
            Rule::Internal => "internal",
        }
    }
}

/// One broken rule. `place` says where (workspace and item, or a file line
/// and column), `message` says what is wrong in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub rule: Rule,
    pub place: String,
    pub message: String,
}

impl Problem {
    pub fn new(rule: Rule, place: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            rule,
            place: place.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            write!(f, "{} [{}]", self.message, self.rule.as_str())
        } else {
            write!(
                f,
                "{}: {} [{}]",
                self.place,
                self.message,
                self.rule.as_str()
            )
        }
    }
}

/// A snapshot or update that was rejected as a whole, with every problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSnapshot {
    pub problems: Vec<Problem>,
}

impl fmt::Display for InvalidSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl From<Vec<Problem>> for InvalidSnapshot {
    fn from(problems: Vec<Problem>) -> Self {
        InvalidSnapshot { problems }
    }
}
