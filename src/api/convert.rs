//! Protobuf messages in, engine requests out; engine answers in, messages
//! out. Every message is destructured completely, so a new proto field is
//! a compile error rather than a field silently ignored; this is the only
//! module that reads `pb::` request fields, but for `CheckBatchRequest`'s
//! two, which `batch_wire` reads.
//!
//! Requests are borrowed, not copied: a query holds `&str`s into the
//! decoded message. A Check's request is read either by prost or, on the
//! Check route, straight off the wire by `check_wire` (a CheckBatch's by
//! `batch_wire`); both arrive here as [`CheckFields`].

use super::batch_wire::CheckBatchWire;
use super::check_wire::{CheckFields, Requirement, ResourceFields};
use super::status::ApiError;
use crate::engine::{self, BindingView, ResourceQuery, SubjectGrant};
use crate::model::validate::MAX_LABELS_PER_RESOURCE;
use crate::pb;
use crate::store::Consistency;

/// A `Check`, validated: every required field is non-empty.
#[derive(Debug, Clone, Copy)]
pub struct CheckQuery<'a> {
    pub workspace: &'a str,
    pub subject: &'a str,
    pub action: &'a str,
    pub resource: ResourceQuery<'a>,
    pub explain: bool,
}

/// A `ListVisible`, validated, with `action` defaulted to `read`.
#[derive(Debug, Clone, Copy)]
pub struct ListVisibleQuery<'a> {
    pub workspace: &'a str,
    pub subject: &'a str,
    pub resource_type: &'a str,
    pub action: &'a str,
    pub parent: Option<&'a str>,
    pub page_size: u32,
    pub page_token: &'a str,
}

/// A `ListSubjects`, validated.
#[derive(Debug, Clone, Copy)]
pub struct ListSubjectsQuery<'a> {
    pub workspace: &'a str,
    pub action: &'a str,
    pub resource: ResourceQuery<'a>,
    pub page_size: u32,
    pub page_token: &'a str,
}

pub fn check_request(req: CheckFields<'_>) -> Result<(CheckQuery<'_>, Consistency), ApiError> {
    let query = check_in_batch(req)?;
    Ok((query, requirement(req.requirement)?))
}

/// A check inside a `CheckBatch`: its own `consistency` is ignored, the
/// batch's applies (as the proto says).
pub fn check_in_batch(req: CheckFields<'_>) -> Result<CheckQuery<'_>, ApiError> {
    let CheckFields {
        workspace,
        subject,
        action,
        resource,
        requirement: _,
        explain,
    } = req;
    Ok(CheckQuery {
        workspace: required("workspace", workspace)?,
        subject: required("subject", subject)?,
        action: required("action", action)?,
        resource: resource_ref(resource)?,
        explain,
    })
}

impl<'a> From<&'a pb::CheckRequest> for CheckFields<'a> {
    fn from(req: &'a pb::CheckRequest) -> Self {
        let pb::CheckRequest {
            workspace,
            subject,
            action,
            resource,
            consistency,
            explain,
        } = req;
        CheckFields {
            workspace,
            subject,
            action,
            resource: resource.as_ref().map(ResourceFields::from),
            requirement: consistency.as_ref().and_then(requirement_of),
            explain: *explain,
        }
    }
}

impl<'a> From<&'a pb::ResourceRef> for ResourceFields<'a> {
    fn from(r: &'a pb::ResourceRef) -> Self {
        let pb::ResourceRef {
            r#type,
            id,
            parent,
            labels,
        } = r;
        ResourceFields {
            type_: r#type,
            id,
            parent,
            labels,
        }
    }
}

pub(super) fn requirement_of(c: &pb::Consistency) -> Option<Requirement<'_>> {
    use pb::consistency::Requirement as R;
    let pb::Consistency { requirement } = c;
    Some(match requirement.as_ref()? {
        R::Latest(b) => Requirement::Latest(*b),
        R::AtLeast(r) => Requirement::AtLeast(r),
        R::Exact(r) => Requirement::Exact(r),
    })
}

/// The batch's checks and consistency. The size limit is checked by the
/// caller before anything is converted.
pub fn check_batch_request(
    batch: &CheckBatchWire,
) -> Result<(Vec<CheckQuery<'_>>, Consistency), ApiError> {
    let queries = batch
        .checks()
        .enumerate()
        .map(|(index, check)| {
            check
                .and_then(check_in_batch)
                .map_err(|error| ApiError::InBatch {
                    index,
                    error: Box::new(error),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((queries, requirement(batch.requirement()?)?))
}

pub fn list_visible_request(
    req: &pb::ListVisibleRequest,
) -> Result<(ListVisibleQuery<'_>, Consistency), ApiError> {
    let pb::ListVisibleRequest {
        workspace,
        subject,
        resource_type,
        action,
        parent,
        page_size,
        page_token,
        consistency: c,
    } = req;
    let query = ListVisibleQuery {
        workspace: required("workspace", workspace)?,
        subject: required("subject", subject)?,
        resource_type: required("resource_type", resource_type)?,
        action: if action.is_empty() { "read" } else { action },
        parent: optional(parent),
        page_size: *page_size,
        page_token,
    };
    Ok((query, consistency(c.as_ref())?))
}

pub fn list_subjects_request(
    req: &pb::ListSubjectsRequest,
) -> Result<(ListSubjectsQuery<'_>, Consistency), ApiError> {
    let pb::ListSubjectsRequest {
        workspace,
        action,
        resource,
        page_size,
        page_token,
        consistency: c,
    } = req;
    let query = ListSubjectsQuery {
        workspace: required("workspace", workspace)?,
        action: required("action", action)?,
        resource: resource_ref(resource.as_ref().map(ResourceFields::from))?,
        page_size: *page_size,
        page_token,
    };
    Ok((query, consistency(c.as_ref())?))
}

/// An existing resource (`type` and `id`), or one not created yet (`type`
/// with an optional `parent` and `labels`). An `id` together with a parent
/// or labels is ambiguous and refused, naming the field. A resource not
/// created yet may carry at most [`MAX_LABELS_PER_RESOURCE`] labels, as a
/// stored one may (one length comparison; nothing is allocated unless it is
/// over).
pub fn resource_ref(r: Option<ResourceFields<'_>>) -> Result<ResourceQuery<'_>, ApiError> {
    let Some(ResourceFields {
        type_,
        id,
        parent,
        labels,
    }) = r
    else {
        return Err(ApiError::Missing { field: "resource" });
    };
    let type_ = required("resource.type", type_)?;
    if id.is_empty() {
        if labels.len() > MAX_LABELS_PER_RESOURCE {
            return Err(ApiError::Invalid {
                field: "resource.labels",
                message: format!(
                    "{} labels are over the limit of {MAX_LABELS_PER_RESOURCE} labels per \
                     resource (the limit of a stored resource)",
                    labels.len()
                ),
            });
        }
        return Ok(ResourceQuery::New {
            type_,
            parent: optional(parent),
            labels,
        });
    }
    let both = |field| ApiError::Invalid {
        field,
        message: "give an id for an existing resource, or a parent and labels for one not \
                  created yet, not both"
            .to_string(),
    };
    if !parent.is_empty() {
        return Err(both("resource.parent"));
    }
    if !labels.is_empty() {
        return Err(both("resource.labels"));
    }
    Ok(ResourceQuery::Existing { type_, id })
}

/// The read's consistency; unset means latest.
pub fn consistency(c: Option<&pb::Consistency>) -> Result<Consistency, ApiError> {
    requirement(c.and_then(requirement_of))
}

fn requirement(r: Option<Requirement<'_>>) -> Result<Consistency, ApiError> {
    Ok(match r {
        None | Some(Requirement::Latest(_)) => Consistency::Latest,
        Some(Requirement::AtLeast(r)) => {
            Consistency::AtLeast(parse_revision("consistency.at_least", r)?)
        }
        Some(Requirement::Exact(r)) => match parse_revision("consistency.exact", r)? {
            // No model is ever served at 0: a caller's bug, not an old read.
            0 => {
                return Err(ApiError::Invalid {
                    field: "consistency.exact",
                    message: "revision 0 is never served: revisions start at 1".into(),
                })
            }
            r => Consistency::Exact(r),
        },
    })
}

/// A revision on the wire: a decimal u64 (a string, as JSON numbers lose
/// precision past 2^53).
pub fn parse_revision(field: &'static str, s: &str) -> Result<u64, ApiError> {
    let invalid = || ApiError::Invalid {
        field,
        message: format!("\"{s}\" is not a revision (a decimal number)"),
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    s.parse().map_err(|_| invalid())
}

fn required<'a>(field: &'static str, s: &'a str) -> Result<&'a str, ApiError> {
    if s.is_empty() {
        Err(ApiError::Missing { field })
    } else {
        Ok(s)
    }
}

fn optional(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

pub fn revision(r: u64) -> String {
    r.to_string()
}

/// A Check's answer without its revision: the decision's rule on every
/// answer, the explanation when one was asked for. A Check's answer takes
/// the revision ([`Answer::with_revision`]); a batch's answers share the
/// batch's ([`super::batch_answer`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub allowed: bool,
    pub reason: pb::Reason,
    pub explanation: Option<pb::Explanation>,
}

impl Answer {
    pub fn new(decision: engine::Decision, explanation: Option<engine::Explanation>) -> Self {
        Answer {
            allowed: decision.allowed(),
            reason: reason(decision.reason),
            explanation: explanation.map(self::explanation),
        }
    }

    pub fn with_revision(self, revision: String) -> pb::CheckResponse {
        let Answer {
            allowed,
            reason,
            explanation,
        } = self;
        pb::CheckResponse {
            allowed,
            revision,
            explanation,
            reason: reason as i32,
        }
    }
}

/// The wire form of the engine's rule.
pub fn reason(r: engine::Reason) -> pb::Reason {
    use engine::Reason as R;
    match r {
        R::Granted => pb::Reason::Granted,
        R::UnknownSubject => pb::Reason::UnknownSubject,
        R::Suspended => pb::Reason::Suspended,
        R::UnknownResource => pb::Reason::UnknownResource,
        R::FeatureDisabled => pb::Reason::FeatureDisabled,
        R::NoGrant => pb::Reason::NoGrant,
        R::NoReach => pb::Reason::NoReach,
        R::RankTooLow => pb::Reason::RankTooLow,
    }
}

pub fn explanation(e: engine::Explanation) -> pb::Explanation {
    let engine::Explanation {
        decision,
        message,
        granted_by,
        reach_through,
    } = e;
    pb::Explanation {
        rule: decision.reason.as_str().to_string(),
        message,
        granted_by: granted_by.into_iter().map(binding).collect(),
        reach_through: reach_through.unwrap_or_default(),
    }
}

pub fn binding(b: BindingView) -> pb::Binding {
    let BindingView {
        role,
        scope,
        via_group,
    } = b;
    pb::Binding {
        role,
        scope,
        via_group: via_group.unwrap_or_default(),
    }
}

pub fn subject(s: SubjectGrant) -> pb::Subject {
    let SubjectGrant { user, bindings } = s;
    pb::Subject {
        user,
        bindings: bindings.into_iter().map(binding).collect(),
    }
}

pub fn list_visible_response(
    ids: Vec<String>,
    next_page_token: String,
    revision: String,
) -> pb::ListVisibleResponse {
    pb::ListVisibleResponse {
        ids,
        next_page_token,
        revision,
    }
}

pub fn list_subjects_response(
    subjects: Vec<SubjectGrant>,
    next_page_token: String,
    revision: String,
) -> pb::ListSubjectsResponse {
    pb::ListSubjectsResponse {
        subjects: subjects.into_iter().map(subject).collect(),
        next_page_token,
        revision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_goes_on_the_wire_under_its_own_name() {
        use engine::Reason as R;
        for (i, r) in R::ALL.into_iter().enumerate() {
            let want = format!("REASON_{}", r.as_str().to_uppercase());
            assert_eq!(reason(r).as_str_name(), want);
            assert_eq!(reason(r) as usize, i + 1, "Reason::ALL is in wire order");
            let answer = Answer::new(engine::Decision::new(r), None).with_revision("7".into());
            assert_eq!(answer.reason, reason(r) as i32);
            assert_eq!(answer.allowed, r == R::Granted);
        }
    }

    #[test]
    fn exact_revision_0_is_a_callers_mistake() {
        let e = requirement(Some(Requirement::Exact("0"))).map(|_| ());
        let said = e.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert_eq!(
            said,
            "consistency.exact: revision 0 is never served: revisions start at 1"
        );
        assert!(matches!(
            requirement(Some(Requirement::Exact("1"))),
            Ok(Consistency::Exact(1))
        ));
        assert!(matches!(
            requirement(Some(Requirement::AtLeast("0"))),
            Ok(Consistency::AtLeast(0))
        ));
    }

    fn rref(type_: &str, id: &str, parent: &str, labels: &[&str]) -> pb::ResourceRef {
        pb::ResourceRef {
            r#type: type_.into(),
            id: id.into(),
            parent: parent.into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn field_of(e: ApiError) -> String {
        e.to_string()
    }

    #[test]
    fn an_empty_id_means_a_resource_not_yet_created() {
        let r = rref("record", "", "mini:m-ivy", &["site-a"]);
        match resource_ref(Some((&r).into())) {
            Ok(ResourceQuery::New {
                type_,
                parent,
                labels,
            }) => {
                assert_eq!(type_, "record");
                assert_eq!(parent, Some("mini:m-ivy"));
                assert_eq!(labels, ["site-a".to_string()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_id_with_a_parent_or_labels_names_the_field() {
        let e = resource_ref(Some((&rref("record", "r-1", "mini:m", &[])).into())).err();
        assert!(e
            .map(field_of)
            .is_some_and(|m| m.starts_with("resource.parent:")));
        let e = resource_ref(Some((&rref("record", "r-1", "", &["a"])).into())).err();
        assert!(e
            .map(field_of)
            .is_some_and(|m| m.starts_with("resource.labels:")));
        let e = resource_ref(Some((&rref("", "r-1", "", &[])).into())).err();
        assert_eq!(
            e,
            Some(ApiError::Missing {
                field: "resource.type"
            })
        );
        assert_eq!(
            resource_ref(None).err(),
            Some(ApiError::Missing { field: "resource" })
        );
    }

    #[test]
    fn inline_labels_are_limited_as_a_stored_resource_s_are() {
        let labels: Vec<String> = (0..=MAX_LABELS_PER_RESOURCE)
            .map(|i| format!("l-{i}"))
            .collect();
        let at_limit: Vec<&str> = labels[..MAX_LABELS_PER_RESOURCE]
            .iter()
            .map(String::as_str)
            .collect();
        let over: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert!(resource_ref(Some((&rref("record", "", "mini:m", &at_limit)).into())).is_ok());
        let e = resource_ref(Some((&rref("record", "", "mini:m", &over)).into())).err();
        assert!(
            e.map(field_of)
                .is_some_and(|m| m.starts_with("resource.labels:")
                    && m.contains(&format!("{} labels", MAX_LABELS_PER_RESOURCE + 1))
                    && m.contains(&format!("limit of {MAX_LABELS_PER_RESOURCE}"))),
            "over the limit"
        );
    }

    #[test]
    fn revisions_are_decimal_strings() {
        use pb::consistency::Requirement;
        let c = |r| pb::Consistency {
            requirement: Some(r),
        };
        assert_eq!(consistency(None), Ok(Consistency::Latest));
        assert_eq!(
            consistency(Some(&c(Requirement::AtLeast("7".into())))),
            Ok(Consistency::AtLeast(7))
        );
        assert_eq!(
            consistency(Some(&c(Requirement::Exact("18446744073709551615".into())))),
            Ok(Consistency::Exact(u64::MAX))
        );
        for bad in ["", "+7", "-1", "7x", "18446744073709551616"] {
            let e = consistency(Some(&c(Requirement::Exact(bad.into())))).err();
            assert!(
                e.map(field_of)
                    .is_some_and(|m| m.starts_with("consistency.exact:")),
                "{bad}"
            );
        }
    }

    #[test]
    fn list_visible_defaults_the_action_to_read() {
        let req = pb::ListVisibleRequest {
            workspace: "w".into(),
            subject: "u".into(),
            resource_type: "record".into(),
            ..Default::default()
        };
        let (q, _) = list_visible_request(&req)
            .map_err(field_of)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.action, "read");
        assert_eq!(q.parent, None);
    }
}
