//! Batches of checks whose cache misses overlap.
//!
//! On a large model a check is a chain of dependent misses: the resource's
//! hash slot, then its record, then its id bytes and its parent's record
//! (for ids numbered in sequence the record's place is computed, so the
//! chain starts at the record); the user's hash slot, then its record. One
//! check cannot shorten its chain, but the items of a batch are
//! independent: [`check_each`] first touches the hash slots of a chunk of
//! items, then the records those slots point to, then the resources' ids
//! and parents, each pass a short loop whose fetches the processor overlaps
//! (prefetch instructions on x86-64, see
//! [`crate::model::id_table::touch`]), and only then runs each item's check
//! as a single Check runs it. The touches are hints: a check reads nothing
//! they computed, so its answer, or its error, is the single check's.

use super::{CompiledWorkspace, ResourceQuery};
use crate::model::id_table::IdTable;
use crate::model::workspace::{LookupHint, ResIdx};

/// Items touched together. An item touches about seven cache lines on as
/// many pages: 16 items stay within the first-level cache and its TLB, and
/// give the processor about as many misses as it can have in flight (on
/// `large`, chunks of 8, 32 and 64 measured within the noise of 16).
pub const CHUNK: usize = 16;

/// One item of a batch as the touches see it: its workspace, subject and
/// resource, or nothing to touch (an unknown workspace, a malformed key:
/// the check reports those).
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub workspace: &'a CompiledWorkspace,
    pub subject: &'a str,
    pub resource: ResourceQuery<'a>,
}

/// An item's lookups: what the passes touch.
#[derive(Clone, Copy)]
struct Lookups<'a> {
    workspace: &'a CompiledWorkspace,
    user: u64,
    /// `None` for a resource not yet created or of an unknown type.
    resource: Option<LookupHint>,
    /// The resource its slot names, from the second pass.
    guess: Option<ResIdx>,
}

impl<'a> Item<'a> {
    /// The hashes of the item's lookups (no memory beyond the item's own).
    #[inline]
    fn lookups(&self) -> Lookups<'a> {
        let ws = self.workspace;
        let resource = match self.resource {
            ResourceQuery::Existing { type_, id } => ws
                .model
                .schema
                .type_id(type_)
                .and_then(|t| ws.model.resources.base().lookup_hint(t, id)),
            ResourceQuery::New { .. } => None,
        };
        Lookups {
            workspace: ws,
            user: IdTable::hash(self.subject),
            resource,
            guess: None,
        }
    }
}

impl Lookups<'_> {
    /// The first pass: the hash slots, or the record itself when its
    /// place is computed (a run of ids).
    #[inline]
    fn touch_slots(&self) {
        let ws = self.workspace;
        ws.index.touch_user_slot(self.user);
        match self.resource {
            Some(LookupHint::Hash(h)) => ws.model.resources.base().touch_slot(h),
            Some(LookupHint::At(r)) => ws.model.resources.base().touch_record_at(r),
            None => {}
        }
    }

    /// The second pass: the records the slots point to.
    #[inline]
    fn touch_records(&mut self) {
        let ws = self.workspace;
        ws.index.touch_user(self.user);
        self.guess = match self.resource {
            Some(LookupHint::Hash(h)) => ws.model.resources.base().touch_record(h),
            Some(LookupHint::At(r)) => Some(r),
            None => None,
        };
    }

    /// The third pass: the resource's id and its parent's record.
    #[inline]
    fn touch_id_and_parent(&self) {
        if let Some(r) = self.guess {
            let base = self.workspace.model.resources.base();
            base.touch_id_and_parent(r);
        }
    }
}

/// `check(index, item)` for each of `items` in order, stopping at the
/// first error, as a plain loop would; but before a chunk of items is
/// checked, the memory their lookups read first is touched, a pass per
/// step of the chain. `locate` says what an item's check will look up; it
/// is only a hint (`None` touches nothing), so it does not decide anything
/// the check reports.
pub fn check_each<'a, T, R, E>(
    items: &'a [T],
    locate: impl Fn(&'a T) -> Option<Item<'a>>,
    mut check: impl FnMut(usize, &'a T) -> Result<R, E>,
) -> Result<Vec<R>, E> {
    let mut out = Vec::with_capacity(items.len());
    let mut ahead: [Option<Lookups<'a>>; CHUNK] = [None; CHUNK];
    for (c, chunk) in items.chunks(CHUNK).enumerate() {
        // Each pass is a short loop of independent loads, so that the
        // processor has the misses of many items in flight at once.
        for (a, item) in ahead.iter_mut().zip(chunk) {
            *a = locate(item).map(|i| i.lookups());
        }
        let ahead = &mut ahead[..chunk.len()];
        for a in ahead.iter().flatten() {
            a.touch_slots();
        }
        for a in ahead.iter_mut().flatten() {
            a.touch_records();
        }
        for a in ahead.iter().flatten() {
            a.touch_id_and_parent();
        }
        for (i, item) in chunk.iter().enumerate() {
            out.push(check(c * CHUNK + i, item)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"
workspaces:
  - id: w
    users:
      - { id: u-admin, bindings: [{ role: admin }] }
    resources:
      - { type: mini, id: m-1 }
"#;

    #[test]
    fn items_are_checked_in_order_up_to_the_first_error() {
        let cw = crate::engine::compiled_w(SNAPSHOT);
        let items: Vec<usize> = (0..100).collect();
        let locate = |&i: &usize| {
            let (type_, id) = match i % 4 {
                0 => ("mini", "m-1"),
                1 => ("mini", "m-9"),
                2 => ("gadget", "g-1"),
                _ => return None,
            };
            Some(Item {
                workspace: &cw,
                subject: if i % 3 == 0 { "u-admin" } else { "nobody" },
                resource: ResourceQuery::Existing { type_, id },
            })
        };
        let mut seen = Vec::new();
        let all = check_each(&items, locate, |at, &i| {
            seen.push(at);
            Ok::<_, usize>(i * 2)
        });
        assert_eq!(all, Ok((0..100).map(|i| i * 2).collect::<Vec<_>>()));
        assert_eq!(seen, items);

        let mut seen = Vec::new();
        let first_bad = check_each(&items, locate, |at, &i| {
            seen.push(at);
            if i == 37 || i == 60 {
                Err(i)
            } else {
                Ok(i)
            }
        });
        assert_eq!(first_bad, Err(37));
        assert_eq!(seen, (0..38).collect::<Vec<_>>());
        assert_eq!(
            check_each(&items[..0], locate, |_, &i| Ok::<_, ()>(i)),
            Ok(vec![])
        );
    }
}
