//! The in-memory store's listing: the creation-order index, the `source_id` and metadata
//! indexes the filters use, and the page walk over them.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use time::OffsetDateTime;

use super::Inner;
use crate::id::SessionId;
use crate::json::millis::truncate;
use crate::session::CheckoutSession;
use crate::store::{ListQuery, Page, StoreError};

/// A session's place in the listing order.
pub(super) type Key = (OffsetDateTime, SessionId);

/// A metadata key with its value's text.
type Entry = (Box<str>, Box<str>);

/// The indexes of the listing filters. Sessions without a `source_id` or metadata cost
/// nothing here, so a store of plain sessions keeps its size.
#[derive(Default)]
pub(super) struct FilterIndex {
    by_source: HashMap<Box<str>, BTreeSet<Key>>,
    by_metadata: HashMap<Entry, BTreeSet<Key>>,
    /// Each indexed session's metadata entries, to remove them when they change.
    metadata_of: HashMap<u32, Box<[Entry]>>,
}

impl FilterIndex {
    /// Indexes `s` (in `slot`) after a commit; `new` when the commit inserted it.
    pub(super) fn update(&mut self, slot: u32, s: &CheckoutSession, new: bool) {
        let key = (s.created(), s.id());
        if new && let Some(source) = s.source_id() {
            // `source_id` is set at creation and never changes.
            self.by_source.entry(source.into()).or_default().insert(key);
        }
        let metadata = s.metadata();
        let unchanged = match self.metadata_of.get(&slot) {
            None => metadata.is_empty(),
            Some(old) => {
                old.len() == metadata.len()
                    && old
                        .iter()
                        .zip(metadata.iter())
                        .all(|((k, v), (k2, v2))| **k == *k2 && **v == *v2.text())
            }
        };
        if unchanged {
            // Most commits leave the metadata alone: no allocation on the hot path.
            return;
        }
        if let Some(old) = self.metadata_of.remove(&slot) {
            for entry in old.into_vec() {
                if let Some(set) = self.by_metadata.get_mut(&entry) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.by_metadata.remove(&entry);
                    }
                }
            }
        }
        if metadata.is_empty() {
            return;
        }
        let entries: Box<[Entry]> = metadata
            .iter()
            .map(|(k, v)| (Box::from(k), Box::from(v.text())))
            .collect();
        for entry in entries.iter() {
            self.by_metadata
                .entry(entry.clone())
                .or_default()
                .insert(key);
        }
        self.metadata_of.insert(slot, entries);
    }
}

/// The tighter of two lower bounds (`upper` false) or upper bounds (`upper` true): the
/// one whose key lies further inside, or the excluding one of two on the same key.
fn tighter(a: Bound<Key>, b: Bound<Key>, upper: bool) -> Bound<Key> {
    let key = |x: &Bound<Key>| match x {
        Bound::Included(k) | Bound::Excluded(k) => Some(*k),
        Bound::Unbounded => None,
    };
    let (Some(ka), Some(kb)) = (key(&a), key(&b)) else {
        return if key(&a).is_some() { a } else { b };
    };
    let inside = if upper { ka < kb } else { ka > kb };
    if ka == kb {
        if matches!(a, Bound::Excluded(_)) {
            a
        } else {
            b
        }
    } else if inside {
        a
    } else {
        b
    }
}

/// Whether no key lies between the bounds (`BTreeSet::range` refuses such bounds).
fn empty(lower: &Bound<Key>, upper: &Bound<Key>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    }
}

fn empty_page() -> Page {
    Page {
        data: Vec::new(),
        has_more: false,
    }
}

impl Inner {
    pub(super) fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.page_size()?;
        let none = BTreeSet::new();
        let metadata = query.metadata.as_ref().map(|(k, v)| {
            self.filters
                .by_metadata
                .get(&(k.as_str().into(), v.as_str().into()))
        });
        let source = query
            .source_id
            .as_deref()
            .map(|s| self.filters.by_source.get(s));
        // Walk the smallest index that names the candidates; check the other filters on
        // each candidate.
        let base = match (source, metadata) {
            (Some(set), _) | (None, Some(set)) => set.unwrap_or(&none),
            (None, None) => &self.by_created,
        };
        let matches = |key: &Key| {
            let slot = *self.ids.get(&key.1)?;
            let s = self.slots.get(slot as usize)?;
            let status = query.status.is_none_or(|st| s.status == st)
                && (!query.unresolved_flags || s.review)
                && query.livemode.is_none_or(|live| s.livemode == live);
            let meta = metadata.is_none_or(|set| set.is_some_and(|set| set.contains(key)));
            (status && meta).then_some(slot)
        };
        // The creation range, then the cursor's side of it.
        let least = SessionId::from_uuid(uuid::Uuid::nil());
        let mut lower = query
            .created_gte
            .map_or(Bound::Unbounded, |t| Bound::Included((truncate(t), least)));
        let mut upper = query
            .created_lt
            .map_or(Bound::Unbounded, |t| Bound::Excluded((truncate(t), least)));
        let cursor = query.ending_before.or(query.starting_after);
        if let Some(id) = cursor {
            let Some(slot) = self.slot_of(id) else {
                return Ok(empty_page());
            };
            let at = Bound::Excluded((slot.created, id));
            if query.ending_before.is_some() {
                lower = tighter(lower, at, false);
            } else {
                upper = tighter(upper, at, true);
            }
        }
        if empty(&lower, &upper) {
            return Ok(empty_page());
        }
        let range = base.range((lower, upper));
        let mut slots = Vec::new();
        let has_more = if query.ending_before.is_some() {
            // The page just newer than the cursor: walk upwards, then newest first.
            let mut newer = range.filter_map(matches);
            slots.extend(newer.by_ref().take(limit));
            slots.reverse();
            newer.next().is_some()
        } else {
            let mut older = range.rev().filter_map(matches);
            slots.extend(older.by_ref().take(limit));
            older.next().is_some()
        };
        let data = slots
            .into_iter()
            .map(|slot| self.decode(slot))
            .collect::<Result<_, _>>()?;
        Ok(Page { data, has_more })
    }
}
