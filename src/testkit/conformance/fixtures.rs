//! Fixtures of the conformance suite: fixed times, currency and rates, fresh hashes, the
//! [`Draft`] session builder and the [`Ck`] checker.

use std::fmt::{Debug, Display};

use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use crate::chain::Txid;
use crate::event::EventType;
use crate::id::{EventId, PaymentId, SessionId};
use crate::money::{Currency, Msats, TargetCurrency};
use crate::outbox::Event;
use crate::rates::{FixedRates, RateSource};
use crate::request::{Hash32, PaymentRequestGenerator, TestRequestGenerator};
use crate::session::{CheckoutSession, SessionChange, SessionParams, SessionUpdate};
use crate::store::{Commit, ListQuery, Store, StoreError, StoredEvent};
use crate::transfer::TransferReport;

/// 2026-01-01T00:00:00Z.
pub(super) fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_767_225_600)
}

pub(super) fn usd() -> Currency {
    Currency::from_code("USD").expect("USD is a supported currency")
}

/// `cents` USD.
pub(super) fn dollars(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// 1,000 sats per dollar.
pub(super) fn rates() -> FixedRates {
    FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000))
}

/// A fresh, unique 32-byte hash (for unknown payment hashes).
pub(super) fn fresh_hash() -> Hash32 {
    TestRequestGenerator::payment_hash(PaymentId::generate())
}

/// A fresh, unique txid.
pub(super) fn fresh_txid() -> Txid {
    Txid::from_byte_array(fresh_hash().to_bytes())
}

/// A session being built through the core, with what its next commit must carry.
#[derive(Clone)]
pub(super) struct Draft {
    pub(super) session: CheckoutSession,
    /// The version in the store (`None` until inserted).
    pub(super) stored: Option<u64>,
    pub(super) events: Vec<Event>,
    /// What changed since the last commit.
    pub(super) change: SessionChange,
}

impl Draft {
    /// A new session with its first quote.
    pub(super) fn new(params: SessionParams, now: OffsetDateTime) -> Self {
        let (session, change) =
            CheckoutSession::create(SessionId::generate(), params, now).expect("core: create");
        let mut d = Self {
            session,
            stored: None,
            events: Vec::new(),
            change: SessionChange::default(),
        };
        d.wrap(change);
        d.quote(now);
        d
    }

    pub(super) fn id(&self) -> SessionId {
        self.session.id()
    }

    /// Wraps the change's events for the outbox and adds it to what the next commit
    /// carries.
    pub(super) fn wrap(&mut self, change: SessionChange) {
        for e in change.events() {
            self.events
                .push(Event::for_session(EventId::generate(), e, &self.session));
        }
        self.change.merge(change);
    }

    /// Expires the quotes that ran out and issues a new one if the session needs it.
    pub(super) fn quote(&mut self, now: OffsetDateTime) {
        let mut change = self.session.expire_quotes(now).expect("core: expire");
        if self.session.needs_quote(now) {
            let s = &self.session;
            let rate = rates()
                .rate(s.currency(), s.target_currency(), now)
                .expect("fixture rate");
            let terms = s
                .next_quote(s.next_payment_id(PaymentId::generate()), rate, now)
                .expect("core: next quote");
            let request = TestRequestGenerator
                .generate(s, &terms)
                .expect("test request");
            change.merge(
                self.session
                    .issue_quote(terms, request, now)
                    .expect("core: issue quote"),
            );
        }
        self.wrap(change);
    }

    /// Records a report; returns how many events it caused.
    pub(super) fn record(&mut self, report: TransferReport, now: OffsetDateTime) -> usize {
        let change = self
            .session
            .record_transfer(report, now)
            .expect("core: record transfer");
        let caused = change.events().len();
        self.wrap(change);
        caused
    }

    pub(super) fn deactivate(&mut self, now: OffsetDateTime) {
        let change = self.session.deactivate(now).expect("core: deactivate");
        self.wrap(change);
    }

    pub(super) fn update(&mut self, update: &SessionUpdate, now: OffsetDateTime) {
        let change = self.session.update(update, now).expect("core: update");
        self.wrap(change);
    }

    /// The payment hash of the open quote's invoice.
    pub(super) fn open_hash(&self) -> Hash32 {
        let open = self.session.open_payment().expect("an open quote");
        TestRequestGenerator::payment_hash(open.id())
    }

    /// What the open quote asks for.
    pub(super) fn open_msats(&self) -> Msats {
        self.session
            .open_payment()
            .expect("an open quote")
            .target_msats()
    }

    pub(super) fn address(&self) -> String {
        TestRequestGenerator::address(self.id())
    }

    /// Pays the open quote in full over Lightning.
    pub(super) fn pay(&mut self, now: OffsetDateTime) {
        let report = TransferReport::lightning(self.open_hash(), self.open_msats());
        self.record(report, now);
    }

    pub(super) fn to_commit(&self) -> Commit {
        Commit::new(
            self.session.clone(),
            self.stored,
            &self.change,
            self.events.clone(),
        )
    }

    /// After a successful commit: the draft now matches the store.
    pub(super) fn committed(&mut self) -> Vec<Event> {
        self.stored = Some(self.session.version());
        self.change = SessionChange::default();
        std::mem::take(&mut self.events)
    }
}

/// A check's view of the store: unwraps results and names the check in failures.
pub(super) struct Ck<'a, S> {
    name: &'static str,
    pub(super) store: &'a S,
}

impl<'a, S: Store> Ck<'a, S> {
    pub(super) fn new(name: &'static str, store: &'a S) -> Self {
        Self { name, store }
    }

    #[track_caller]
    pub(super) fn ok<T>(&self, what: &str, r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| panic!("{}: {what}: unexpected store error: {e:?}", self.name))
    }

    #[track_caller]
    pub(super) fn svc<T, E: Debug>(&self, what: &str, r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{}: {what}: unexpected error: {e:?}", self.name))
    }

    #[track_caller]
    pub(super) fn that(&self, cond: bool, what: impl Display) {
        if !cond {
            panic!("{}: {what}", self.name);
        }
    }

    #[track_caller]
    pub(super) fn eq<T: PartialEq + Debug>(&self, what: &str, got: T, want: T) {
        if got != want {
            panic!(
                "{}: {what}: {}",
                self.name,
                crate::testkit::diff::debug_difference(&got, &want)
            );
        }
    }

    #[track_caller]
    pub(super) fn conflict(&self, what: &str, r: Result<(), StoreError>) {
        if !matches!(r, Err(StoreError::Conflict)) {
            panic!("{}: {what}: expected Err(Conflict), got {r:?}", self.name);
        }
    }

    #[track_caller]
    pub(super) fn load(&self, id: SessionId) -> Option<CheckoutSession> {
        self.ok("load", self.store.load(id))
    }

    /// Loads a session that must exist and equal the draft exactly.
    #[track_caller]
    pub(super) fn loads_as(&self, what: &str, d: &Draft) {
        let loaded = self.load(d.id());
        self.that(loaded.is_some(), format!("{what}: load found nothing"));
        let loaded = loaded.unwrap_or_else(|| d.session.clone());
        if loaded != d.session {
            let (got, want) = (loaded.to_json(), d.session.to_json());
            let difference = crate::testkit::diff::json_difference(&got, &want)
                .unwrap_or_else(|| crate::testkit::diff::debug_difference(&loaded, &d.session));
            panic!(
                "{}: {what}: the loaded session differs from the one committed: {difference}",
                self.name
            );
        }
    }

    /// Commits the draft; returns the events it carried.
    #[track_caller]
    pub(super) fn commit(&self, d: &mut Draft) -> Vec<Event> {
        self.ok("commit", self.store.commit(&d.to_commit()));
        d.committed()
    }

    /// The highest sequence number in the outbox.
    pub(super) fn last_seq(&self) -> Option<u64> {
        self.events_since(None).last().map(|e| e.seq)
    }

    /// Every event after `after`, read in pages.
    pub(super) fn events_since(&self, mut after: Option<u64>) -> Vec<StoredEvent> {
        let mut out = Vec::new();
        loop {
            let page = self.ok("events_after", self.store.events_after(after, 500));
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            let full = page.len() == 500;
            out.extend(page);
            if !full {
                break;
            }
        }
        out
    }

    pub(super) fn list(&self, query: ListQuery) -> crate::store::Page {
        self.ok("list", self.store.list(&query))
    }
}

pub(super) fn ids(sessions: &[CheckoutSession]) -> Vec<SessionId> {
    sessions.iter().map(CheckoutSession::id).collect()
}

pub(super) fn events_of(stored: &[StoredEvent]) -> Vec<Event> {
    stored.iter().map(|e| e.event.clone()).collect()
}

pub(super) fn paid_events(stored: &[StoredEvent], id: SessionId) -> usize {
    stored
        .iter()
        .filter(|e| {
            e.event.session_id == Some(id) && e.event.event_type == EventType::CheckoutSessionPaid
        })
        .count()
}
