//! The checks of the HTTP API's reads can fail: a store that finds only first quotes by
//! payment id, reads the outbox backwards oldest first or with an inclusive bound, answers
//! an event lookup with another sequence number, or ignores the mode filter of a session
//! or link listing fails the check of that read, with a message naming it; the in-memory
//! store it wraps passes.

use crate::common::panic_message;
use std::collections::HashSet;
use std::sync::Mutex;

use bitcoin_checkout::link::LinkId;
use bitcoin_checkout::store::{
    Commit, LinkCommit, LinkListQuery, LinkPage, LinkStore, ListQuery, MemoryStore, Page, Store,
    StoreError, StoredEvent,
};
use bitcoin_checkout::testkit::conformance;
use bitcoin_checkout::{EventId, PaymentId, SessionId};

/// What a broken store does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// `find_by_payment` knows only the payments of each session's creation commit.
    FindsFirstQuotesOnly,
    /// `events_before` returns its page oldest first.
    OldestFirst,
    /// `events_before(Some(b))` includes the event numbered `b`.
    InclusiveBound,
    /// `event` answers with a sequence number one too high.
    ShiftedEvent,
    /// `list` drops the mode filter.
    SessionsOfEveryMode,
    /// `list_links` drops the mode filter.
    LinksOfEveryMode,
    /// `list_links` ignores `ending_before` (answers the first page).
    LinksIgnoreEndingBefore,
}

struct Flawed {
    inner: MemoryStore,
    flaw: Flaw,
    /// The payments of creation commits (for `FindsFirstQuotesOnly`).
    first_quotes: Mutex<HashSet<PaymentId>>,
}

impl Flawed {
    fn new(flaw: Flaw) -> Self {
        Self {
            inner: MemoryStore::new(),
            flaw,
            first_quotes: Mutex::default(),
        }
    }
}

impl Store for Flawed {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.inner.commit(commit)?;
        if commit.expected_version.is_none() {
            self.first_quotes
                .lock()
                .unwrap()
                .extend(commit.payments.iter().copied());
        }
        Ok(())
    }

    fn find_by_payment(&self, id: PaymentId) -> Result<Option<SessionId>, StoreError> {
        if self.flaw == Flaw::FindsFirstQuotesOnly
            && !self.first_quotes.lock().unwrap().contains(&id)
        {
            return Ok(None);
        }
        self.inner.find_by_payment(id)
    }

    fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self.flaw {
            Flaw::OldestFirst => {
                let mut page = self.inner.events_before(before, limit)?;
                page.reverse();
                Ok(page)
            }
            Flaw::InclusiveBound => self.inner.events_before(before.map(|b| b + 1), limit),
            _ => self.inner.events_before(before, limit),
        }
    }

    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let mut found = self.inner.event(id)?;
        if self.flaw == Flaw::ShiftedEvent
            && let Some(e) = &mut found
        {
            e.seq += 1;
        }
        Ok(found)
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let mut query = query.clone();
        if self.flaw == Flaw::SessionsOfEveryMode {
            query.livemode = None;
        }
        self.inner.list(&query)
    }

    bitcoin_checkout::forward_store!(inner:
        load, find_by_transfer, find_by_payment_hash, find_by_address, due, events_after,
        session_events, held_transfers, idempotency, claim_idempotency, release_idempotency, prune_idempotency, prune_events, prune_session_events);
}

impl LinkStore for Flawed {
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        self.inner.commit_link(commit)
    }

    fn list_links(&self, query: &LinkListQuery) -> Result<LinkPage, StoreError> {
        let mut query = query.clone();
        match self.flaw {
            Flaw::LinksOfEveryMode => query.livemode = None,
            Flaw::LinksIgnoreEndingBefore => query.ending_before = None,
            _ => {}
        }
        self.inner.list_links(&query)
    }

    fn load_link(&self, id: LinkId) -> Result<Option<bitcoin_checkout::link::Link>, StoreError> {
        self.inner.load_link(id)
    }

    bitcoin_checkout::forward_store!(inner: link_sessions);
}

/// A flaw, the name of the check it must fail and the check.
type Case = (Flaw, &'static str, fn(&Flawed));

/// Each flaw with the check it must fail.
const CASES: [Case; 7] = [
    (
        Flaw::FindsFirstQuotesOnly,
        "check_find_by_payment",
        conformance::check_find_by_payment,
    ),
    (
        Flaw::OldestFirst,
        "check_events_before",
        conformance::check_events_before,
    ),
    (
        Flaw::InclusiveBound,
        "check_events_before",
        conformance::check_events_before,
    ),
    (
        Flaw::ShiftedEvent,
        "check_event_by_id",
        conformance::check_event_by_id,
    ),
    (
        Flaw::SessionsOfEveryMode,
        "check_list_livemode",
        conformance::check_list_livemode,
    ),
    (
        Flaw::LinksOfEveryMode,
        "check_list_links",
        conformance::check_list_links,
    ),
    (
        Flaw::LinksIgnoreEndingBefore,
        "check_list_links",
        conformance::check_list_links,
    ),
];

#[test]
fn each_flaw_fails_the_check_of_its_read_and_no_other() {
    for (flaw, name, check) in CASES {
        let message = panic_message(|| check(&Flawed::new(flaw)))
            .unwrap_or_else(|| panic!("{name} must fail on a store that {flaw:?}"));
        assert!(message.starts_with(name), "{flaw:?}: {message}");
        // The wrapped in-memory store answers the other reads right.
        for (_, other, check) in CASES {
            if other != name {
                check(&Flawed::new(flaw));
            }
        }
    }
}
