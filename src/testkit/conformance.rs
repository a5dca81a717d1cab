//! The store conformance suite: every [`Store`] implementation should pass [`run_all`].
//!
//! Each check is also a public function (`check_…`), so a failing one can be run alone.
//! The checks drive sessions through the real core ([`CheckoutSession`] commands with
//! [`TestRequestGenerator`] requests) or through the [`Checkout`] service with a
//! [`ManualClock`], and panic like a test assertion, naming the check, on the first
//! violation of the contract in [`crate::store`].
//!
//! Every check takes the store by reference and works only with sessions, keys and
//! events it makes itself (fresh ids), so the checks may also share one store, one after
//! another, even a store that already holds data. They must not run concurrently on one
//! store with each other or with other writers: several of them check that nothing else
//! was written to the outbox or listing meanwhile. [`check_due`] uses creation times in
//! 1971 (before any real session) and deactivates its sessions when it is done.
//!
//! Stores with more than sessions have suites of their own, run the same way:
//! [`run_links`] for a [`LinkStore`] (checkout links and payment links),
//! `run_delivery` for a webhook `DeliveryStore` (feature `webhooks`) and
//! [`run_address_index`] for an [`AddressIndex`].
//!
//! # Running the suite for your own store
//!
//! In your crate's tests, with `bitcoin-checkout` as a dev-dependency with the `testkit`
//! feature (here with the in-memory store standing in for yours):
//!
//! ```
//! use bitcoin_checkout::store::MemoryStore;
//! use bitcoin_checkout::testkit::conformance;
//!
//! // #[test]
//! fn my_store_conforms() {
//!     // Every check, each on a fresh store from the closure...
//!     conformance::run_all(MemoryStore::new);
//!     // ...or one check alone, while fixing it.
//!     conformance::check_list(&MemoryStore::new());
//! }
//! # my_store_conforms();
//! ```

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};
use std::sync::Barrier;

use rust_decimal::Decimal;
use serde_json::value::RawValue;
use time::{Duration, OffsetDateTime};

use crate::clock::ManualClock;
use crate::event::{EventType, SessionEvent};
use crate::outbox::Event;
use crate::id::{CheckoutLinkId, EventId, PaymentId, PaymentLinkId, SessionId};
use crate::link::{Link, LinkId, Opening};
use crate::metadata::{Metadata, MetadataValue};
use crate::money::{Currency, Msats, Sats, TargetCurrency};
use crate::rates::{FixedRates, RateSource};
use crate::request::{AddressIndex, Hash32, PaymentRequestGenerator, TestRequestGenerator};
use crate::service::{Checkout, ServiceError};
use crate::session::{
    Branding, CheckoutSession, SessionChange, SessionParams, SessionStatus, SessionUpdate,
};
use crate::store::{
    Commit, IdempotencyRecord, LinkCommit, LinkStore, ListQuery, Store, StoreError, StoredEvent,
};
use crate::transfer::{ConfirmationPolicy, PaymentMethod, TransferKey, TransferReport};

/// A check of the suite.
type Check<S> = fn(&S);

/// Every check, by name.
fn checks<S: Store>() -> Vec<(&'static str, Check<S>)> {
    vec![
        ("check_load_missing", check_load_missing::<S>),
        ("check_round_trip", check_round_trip::<S>),
        (
            "check_stale_version_conflict",
            check_stale_version_conflict::<S>,
        ),
        (
            "check_insert_existing_conflict",
            check_insert_existing_conflict::<S>,
        ),
        ("check_idempotency", check_idempotency::<S>),
        ("check_idempotency_race", check_idempotency_race::<S>),
        ("check_lookups", check_lookups::<S>),
        ("check_transfer_updated", check_transfer_updated::<S>),
        ("check_list", check_list::<S>),
        ("check_due", check_due::<S>),
        ("check_events_after", check_events_after::<S>),
        ("check_session_events", check_session_events::<S>),
        ("check_event_round_trip", check_event_round_trip::<S>),
        ("check_racing_commits", check_racing_commits::<S>),
        ("check_service_lifecycle", check_service_lifecycle::<S>),
    ]
}

/// Runs every conformance check, each on a fresh store from `fresh`, then all of them
/// again, one after another, on one more fresh store (so that each also holds with
/// the others' data around). Panics (like a test assertion) on the first violation,
/// naming the check.
pub fn run_all<S: Store>(fresh: impl FnMut() -> S) {
    run_checks(&checks::<S>(), fresh);
}

/// Runs each check on a fresh store, then all of them on one more.
fn run_checks<S>(all: &[(&'static str, Check<S>)], mut fresh: impl FnMut() -> S) {
    for (_name, check) in all {
        check(&fresh());
    }
    let shared = fresh();
    for (_name, check) in all {
        check(&shared);
    }
}

// ---- fixtures ----------------------------------------------------------------------------

/// 2026-01-01T00:00:00Z.
fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_767_225_600)
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD is a supported currency")
}

/// `cents` USD.
fn dollars(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// 1,000 sats per dollar.
fn rates() -> FixedRates {
    FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000))
}

/// A fresh, unique 32-byte hash (for txids and unknown payment hashes).
fn fresh_hash() -> Hash32 {
    TestRequestGenerator::payment_hash(PaymentId::generate())
}

/// A session being built through the core, with what its next commit must carry.
#[derive(Clone)]
struct Draft {
    session: CheckoutSession,
    /// The version in the store (`None` until inserted).
    stored: Option<u64>,
    events: Vec<Event>,
    /// What changed since the last commit.
    change: SessionChange,
}

impl Draft {
    /// A new session with its first quote.
    fn new(params: SessionParams, now: OffsetDateTime) -> Self {
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

    fn id(&self) -> SessionId {
        self.session.id()
    }

    /// Wraps the change's events for the outbox and adds it to what the next commit
    /// carries.
    fn wrap(&mut self, change: SessionChange) {
        for e in change.events() {
            self.events
                .push(Event::for_session(EventId::generate(), e, &self.session));
        }
        self.change.merge(change);
    }

    /// Expires the quotes that ran out and issues a new one if the session needs it.
    fn quote(&mut self, now: OffsetDateTime) {
        let mut change = self.session.expire_quotes(now).expect("core: expire");
        if self.session.needs_quote(now) {
            let s = &self.session;
            let rate = rates()
                .rate(s.currency(), s.target_currency(), now)
                .expect("fixture rate");
            let terms = s
                .next_quote(PaymentId::generate(), rate, now)
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
    fn record(&mut self, report: TransferReport, now: OffsetDateTime) -> usize {
        let change = self
            .session
            .record_transfer(report, now)
            .expect("core: record transfer");
        let caused = change.events().len();
        self.wrap(change);
        caused
    }

    fn deactivate(&mut self, now: OffsetDateTime) {
        let change = self.session.deactivate(now).expect("core: deactivate");
        self.wrap(change);
    }

    fn update(&mut self, update: &SessionUpdate, now: OffsetDateTime) {
        let change = self.session.update(update, now).expect("core: update");
        self.wrap(change);
    }

    /// The payment hash of the open quote's invoice.
    fn open_hash(&self) -> Hash32 {
        let open = self.session.open_payment().expect("an open quote");
        TestRequestGenerator::payment_hash(open.id())
    }

    /// What the open quote asks for.
    fn open_msats(&self) -> Msats {
        self.session
            .open_payment()
            .expect("an open quote")
            .target_msats()
    }

    fn address(&self) -> String {
        TestRequestGenerator::address(self.id())
    }

    /// Pays the open quote in full over Lightning.
    fn pay(&mut self, now: OffsetDateTime) {
        let report = TransferReport::lightning(self.open_hash(), self.open_msats());
        self.record(report, now);
    }

    fn to_commit(&self) -> Commit {
        Commit::new(
            self.session.clone(),
            self.stored,
            &self.change,
            self.events.clone(),
        )
    }

    /// After a successful commit: the draft now matches the store.
    fn committed(&mut self) -> Vec<Event> {
        self.stored = Some(self.session.version());
        self.change = SessionChange::default();
        std::mem::take(&mut self.events)
    }
}

/// A check's view of the store: unwraps results and names the check in failures.
struct Ck<'a, S> {
    name: &'static str,
    store: &'a S,
}

impl<'a, S: Store> Ck<'a, S> {
    fn new(name: &'static str, store: &'a S) -> Self {
        Self { name, store }
    }

    #[track_caller]
    fn ok<T>(&self, what: &str, r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| panic!("{}: {what}: unexpected store error: {e:?}", self.name))
    }

    #[track_caller]
    fn svc<T, E: Debug>(&self, what: &str, r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{}: {what}: unexpected error: {e:?}", self.name))
    }

    #[track_caller]
    fn that(&self, cond: bool, what: impl Display) {
        if !cond {
            panic!("{}: {what}", self.name);
        }
    }

    #[track_caller]
    fn eq<T: PartialEq + Debug>(&self, what: &str, got: T, want: T) {
        if got != want {
            panic!("{}: {what}\n  got:  {got:?}\n  want: {want:?}", self.name);
        }
    }

    #[track_caller]
    fn conflict(&self, what: &str, r: Result<(), StoreError>) {
        if !matches!(r, Err(StoreError::Conflict)) {
            panic!("{}: {what}: expected Err(Conflict), got {r:?}", self.name);
        }
    }

    #[track_caller]
    fn load(&self, id: SessionId) -> Option<CheckoutSession> {
        self.ok("load", self.store.load(id))
    }

    /// Loads a session that must exist and equal the draft exactly.
    #[track_caller]
    fn loads_as(&self, what: &str, d: &Draft) {
        let loaded = self.load(d.id());
        self.that(loaded.is_some(), format!("{what}: load found nothing"));
        let loaded = loaded.unwrap_or_else(|| d.session.clone());
        if loaded != d.session {
            panic!(
                "{}: {what}: the loaded session differs from the one committed\n  loaded:    {}\n  committed: {}",
                self.name,
                loaded.to_json(),
                d.session.to_json()
            );
        }
        self.eq(
            &format!("{what}: JSON"),
            loaded.to_json(),
            d.session.to_json(),
        );
    }

    /// Commits the draft; returns the events it carried.
    #[track_caller]
    fn commit(&self, d: &mut Draft) -> Vec<Event> {
        self.ok("commit", self.store.commit(&d.to_commit()));
        d.committed()
    }

    /// The highest sequence number in the outbox.
    fn last_seq(&self) -> Option<u64> {
        self.events_since(None).last().map(|e| e.seq)
    }

    /// Every event after `after`, read in pages.
    fn events_since(&self, mut after: Option<u64>) -> Vec<StoredEvent> {
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

    fn list(&self, query: ListQuery) -> crate::store::Page {
        self.ok("list", self.store.list(&query))
    }
}

fn ids(sessions: &[CheckoutSession]) -> Vec<SessionId> {
    sessions.iter().map(CheckoutSession::id).collect()
}

fn events_of(stored: &[StoredEvent]) -> Vec<Event> {
    stored.iter().map(|e| e.event.clone()).collect()
}

fn paid_events(stored: &[StoredEvent], id: SessionId) -> usize {
    stored
        .iter()
        .filter(|e| {
            e.event.session_id == Some(id) && e.event.event_type == EventType::CheckoutSessionPaid
        })
        .count()
}

// ---- checks ------------------------------------------------------------------------------

/// Loading an id never stored is `None`; lookups of unknown keys find nothing.
pub fn check_load_missing<S: Store>(store: &S) {
    let ck = Ck::new("check_load_missing", store);
    let id = SessionId::generate();
    ck.eq("load of an unknown id", ck.load(id), None);
    let events = ck.ok("session_events", store.session_events(id));
    ck.eq("session_events of an unknown id", events.len(), 0);
    let key = TransferKey::Lightning(fresh_hash());
    ck.eq(
        "find_by_transfer of an unknown key",
        ck.ok("find_by_transfer", store.find_by_transfer(&key)),
        None,
    );
    ck.eq(
        "find_by_payment_hash of an unknown hash",
        ck.ok(
            "find_by_payment_hash",
            store.find_by_payment_hash(&fresh_hash()),
        ),
        None,
    );
    ck.eq(
        "find_by_address of an unknown address",
        ck.ok(
            "find_by_address",
            store.find_by_address(&TestRequestGenerator::address(id)),
        ),
        None,
    );
    ck.eq(
        "idempotency of an unknown key",
        ck.ok("idempotency", store.idempotency(&format!("unknown-{id}"))),
        None,
    );
}

/// Insert then load gives back the whole session: every field, payments in every state,
/// transfers of every kind (pending, confirmed, reversed, late, after expiry) and the
/// flags they raise; sessions paid (overpaid) and deactivated (with late funds) too.
pub fn check_round_trip<S: Store>(store: &S) {
    let ck = Ck::new("check_round_trip", store);
    let t = t0() + Duration::milliseconds(123);
    let metadata = Metadata::from_pairs([
        ("order", MetadataValue::from("1001")),
        ("gift", MetadataValue::from(true)),
        ("qty", MetadataValue::from(2_i64)),
    ])
    .expect("fixture metadata");
    let params = SessionParams::new(dollars(2500), usd())
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
        .tolerance(Decimal::ONE)
        .confirmations(ConfirmationPolicy::Two)
        .ttl_secs(600)
        .description("Order #1001 — 2 × ☕ \"dark\"")
        .metadata(metadata)
        .success_url("https://shop.example/thanks")
        .cancel_url("https://shop.example/cart")
        .branding(Branding {
            title: Some("Coffee Shop".into()),
            title_description: Some("Fresh beans".into()),
            title_image: Some("https://shop.example/logo.png".into()),
        })
        .statement_descriptor("COFFEE SHOP")
        .source("woocommerce", "1001");
    let mut d = Draft::new(params, t);
    ck.commit(&mut d);
    ck.loads_as("a new session", &d);

    // The first quote runs out; a second is issued.
    let first = d.open_hash();
    let t1 = t + Duration::minutes(11);
    d.quote(t1);
    // Lightning funds for the expired quote (counted, flagged), an on-chain transfer
    // waiting for confirmations (RBF), and one confirmed that is reversed later.
    d.record(TransferReport::lightning(first, Msats::new(5_000_000)), t1);
    let pending = TransferReport::onchain(fresh_hash(), 0, d.address(), Sats::new(3_000), 0);
    d.record(pending.signals_rbf(true), t1);
    let reversed = TransferReport::onchain(fresh_hash(), 1, d.address(), Sats::new(4_000), 2);
    d.record(reversed.clone(), t1);
    d.quote(t1);
    ck.commit(&mut d);
    ck.loads_as("after transfers of every kind", &d);
    d.record(reversed.reversed(), t1 + Duration::seconds(30));
    ck.commit(&mut d);
    ck.loads_as("after a reversal", &d);
    ck.that(
        d.session.payments().len() >= 3,
        "fixture: expected three quotes",
    );
    ck.that(!d.session.flags().is_empty(), "fixture: expected flags");

    // Paid, with more than the price (Lightning only).
    let params =
        SessionParams::new(dollars(1000), usd()).payment_methods([PaymentMethod::Lightning]);
    let mut paid = Draft::new(params, t);
    let over = Msats::new(paid.open_msats().get() + 2_000_000);
    paid.record(
        TransferReport::lightning(paid.open_hash(), over),
        t + Duration::seconds(5),
    );
    ck.eq(
        "fixture: paid status",
        paid.session.status(),
        SessionStatus::Paid,
    );
    ck.commit(&mut paid);
    ck.loads_as("a paid, overpaid session", &paid);

    // Deactivated with funds, then late funds (on-chain only, priced in sats, paid in BTC).
    let params = SessionParams::new(Decimal::from(50_000), Currency::Sats)
        .target_currency(TargetCurrency::Btc)
        .payment_methods([PaymentMethod::Onchain]);
    let mut gone = Draft::new(params, t);
    let part = TransferReport::onchain(fresh_hash(), 0, gone.address(), Sats::new(10_000), 1);
    gone.record(part, t + Duration::seconds(1));
    gone.deactivate(t + Duration::seconds(2));
    let late = TransferReport::onchain(fresh_hash(), 3, gone.address(), Sats::new(1_000), 6);
    gone.record(late, t + Duration::seconds(3));
    ck.eq(
        "fixture: deactivated status",
        gone.session.status(),
        SessionStatus::Deactivated,
    );
    ck.commit(&mut gone);
    ck.loads_as("a deactivated session with late funds", &gone);
}

/// A commit whose `expected_version` is stale is `Conflict` and writes nothing: the
/// session, its transfers, the indexes, the outbox and the idempotency records are as
/// before. So is a commit expecting a version of a session never stored.
pub fn check_stale_version_conflict<S: Store>(store: &S) {
    let ck = Ck::new("check_stale_version_conflict", store);
    let t = t0();
    let mut d = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    ck.commit(&mut d);
    let stale = d.clone();

    // Someone else's change lands first.
    d.record(
        TransferReport::lightning(d.open_hash(), Msats::new(1_000_000)),
        t + Duration::seconds(1),
    );
    d.quote(t + Duration::seconds(1));
    ck.commit(&mut d);
    let events_before = ck.ok("session_events", store.session_events(d.id()));
    let cursor = ck.last_seq();

    // The stale change: a new quote (new invoice), an on-chain transfer, events.
    let mut stale = stale;
    let t2 = t + Duration::minutes(11);
    stale.quote(t2);
    let new_hash = stale.open_hash();
    let report = TransferReport::onchain(fresh_hash(), 0, stale.address(), Sats::new(2_000), 1);
    let key = report.key();
    stale.record(report, t2);
    ck.conflict(
        "commit from a stale version",
        store.commit(&stale.to_commit()),
    );
    ck.loads_as("the session after a refused commit", &d);
    ck.eq(
        "events after a refused commit",
        ck.events_since(cursor).len(),
        0,
    );
    ck.eq(
        "session_events after a refused commit",
        ck.ok("session_events", store.session_events(d.id())),
        events_before,
    );
    ck.eq(
        "find_by_transfer of the refused commit's transfer",
        ck.ok("find_by_transfer", store.find_by_transfer(&key)),
        None,
    );
    ck.eq(
        "find_by_payment_hash of the refused commit's invoice",
        ck.ok(
            "find_by_payment_hash",
            store.find_by_payment_hash(&new_hash),
        ),
        None,
    );

    // A version from the future, and an update of a session never stored.
    let mut ahead = d.to_commit();
    ahead.expected_version = Some(d.session.version() + 7);
    ck.conflict("commit expecting a future version", store.commit(&ahead));
    let ghost = Draft::new(SessionParams::new(dollars(100), usd()), t);
    let mut commit = ghost.to_commit();
    commit.expected_version = Some(0);
    ck.conflict("update of a session never stored", store.commit(&commit));
    ck.eq(
        "load of the never-stored session",
        ck.load(ghost.id()),
        None,
    );
    ck.eq(
        "events after refused commits",
        ck.events_since(cursor).len(),
        0,
    );
    ck.loads_as("the session after refused commits", &d);
}

/// Inserting a session that exists (`expected_version: None`) is `Conflict` and writes
/// nothing, whether it is the same session changed or another one with the same id.
pub fn check_insert_existing_conflict<S: Store>(store: &S) {
    let ck = Ck::new("check_insert_existing_conflict", store);
    let t = t0();
    let mut d = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    ck.commit(&mut d);
    let cursor = ck.last_seq();

    let mut again = d.clone();
    again.update(
        &SessionUpdate::new().description("changed"),
        t + Duration::seconds(1),
    );
    let mut commit = again.to_commit();
    commit.expected_version = None;
    ck.conflict("insert of an existing session", store.commit(&commit));

    let (other, change) =
        CheckoutSession::create(d.id(), SessionParams::new(dollars(999), usd()), t)
            .expect("core: create");
    let events = change
        .events()
        .iter()
        .map(|e| Event::for_session(EventId::generate(), e, &other))
        .collect();
    let commit = Commit::new(other, None, &change, events);
    ck.conflict(
        "insert of another session with an existing id",
        store.commit(&commit),
    );
    ck.loads_as("the session after refused inserts", &d);
    ck.eq(
        "events after refused inserts",
        ck.events_since(cursor).len(),
        0,
    );
}

/// `claim_idempotency` inserts a record whose key is new and reads it back exactly (to the
/// millisecond); a second claim of the key inserts nothing and returns the first record,
/// whatever it asks for; keys are compared exactly (case, Unicode).
pub fn check_idempotency<S: Store>(store: &S) {
    let ck = Ck::new("check_idempotency", store);
    let t = t0() + Duration::milliseconds(7);
    let key = format!("idem-ключ-{}-{}", SessionId::generate(), "k".repeat(100));
    let record = IdempotencyRecord {
        key: key.clone(),
        request: r#"{"amount":25.00,"currency":"USD","description":"é"}"#.into(),
        session_id: SessionId::generate(),
        created: t,
    };
    ck.eq(
        "idempotency of a key never claimed",
        ck.ok("idempotency", store.idempotency(&key)),
        None,
    );
    ck.eq(
        "the first claim of a key",
        ck.ok("claim_idempotency", store.claim_idempotency(&record)),
        None,
    );
    ck.eq(
        "the claimed idempotency record",
        ck.ok("idempotency", store.idempotency(&key)),
        Some(record.clone()),
    );
    let cursor = ck.last_seq();
    let duplicate = IdempotencyRecord {
        key: key.clone(),
        request: r#"{"amount":26.00}"#.into(),
        session_id: SessionId::generate(),
        created: t + Duration::seconds(1),
    };
    ck.eq(
        "a second claim of the key returns the first record",
        ck.ok("claim_idempotency", store.claim_idempotency(&duplicate)),
        Some(record.clone()),
    );
    ck.eq(
        "the idempotency record after a second claim",
        ck.ok("idempotency", store.idempotency(&key)),
        Some(record.clone()),
    );
    ck.eq(
        "events after claims",
        ck.events_since(cursor).len(),
        0,
    );
    ck.eq(
        "idempotency of a key differing in case",
        ck.ok("idempotency", store.idempotency(&key.to_uppercase())),
        None,
    );
    // Sub-millisecond parts are not kept: every store keeps milliseconds.
    let fine = IdempotencyRecord {
        key: format!("{key}-ns"),
        created: t + Duration::nanoseconds(123_456),
        ..record
    };
    ck.eq(
        "claim of a record with a sub-millisecond time",
        ck.ok("claim_idempotency", store.claim_idempotency(&fine)),
        None,
    );
    ck.eq(
        "its time read back in whole milliseconds",
        ck.ok("idempotency", store.idempotency(&fine.key)).map(|r| r.created),
        Some(t),
    );
}

/// Of many threads claiming one key at once, exactly one inserts; every other gets the
/// winner's record.
pub fn check_idempotency_race<S: Store>(store: &S) {
    let ck = Ck::new("check_idempotency_race", store);
    let key = format!("race-{}", SessionId::generate());
    let records: Vec<IdempotencyRecord> = (0..8)
        .map(|i| IdempotencyRecord {
            key: key.clone(),
            request: format!("{{\"n\":{i}}}"),
            session_id: SessionId::generate(),
            created: t0(),
        })
        .collect();
    let barrier = Barrier::new(records.len());
    let results: Vec<Option<IdempotencyRecord>> = std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .iter()
            .map(|r| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    store.claim_idempotency(r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => ck.ok("claim_idempotency", r),
                Err(_) => panic!("check_idempotency_race: a claiming thread panicked"),
            })
            .collect()
    });
    let winners: Vec<usize> = (0..records.len()).filter(|&i| results[i].is_none()).collect();
    ck.eq("claims that inserted", winners.len(), 1);
    let winner = &records[winners[0]];
    for (i, r) in results.iter().enumerate() {
        if i != winners[0] {
            ck.eq("a losing claim's answer", r.as_ref(), Some(winner));
        }
    }
    ck.eq(
        "the stored record",
        ck.ok("idempotency", store.idempotency(&key)).as_ref(),
        Some(winner),
    );
}

/// `find_by_transfer`, `find_by_payment_hash` and `find_by_address` find the session after
/// the commits that introduced the key, including transfers and quotes added by later
/// commits, and tell sessions apart.
pub fn check_lookups<S: Store>(store: &S) {
    let ck = Ck::new("check_lookups", store);
    let t = t0();
    let mut a = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    let mut b = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    ck.commit(&mut a);
    ck.commit(&mut b);
    let find_hash = |h: Hash32| ck.ok("find_by_payment_hash", store.find_by_payment_hash(&h));
    let find_key = |k: TransferKey| ck.ok("find_by_transfer", store.find_by_transfer(&k));
    let find_addr = |a: &str| ck.ok("find_by_address", store.find_by_address(a));

    let hash_a1 = a.open_hash();
    ck.eq("first invoice of a", find_hash(hash_a1), Some(a.id()));
    ck.eq("first invoice of b", find_hash(b.open_hash()), Some(b.id()));
    ck.eq("address of a", find_addr(&a.address()), Some(a.id()));
    ck.eq("address of b", find_addr(&b.address()), Some(b.id()));
    ck.eq(
        "a transfer not yet recorded",
        find_key(TransferKey::Lightning(hash_a1)),
        None,
    );

    // A partial Lightning payment, and the new quote it calls for.
    let t1 = t + Duration::seconds(10);
    a.record(
        TransferReport::lightning(hash_a1, Msats::new(10_000_000)),
        t1,
    );
    a.quote(t1);
    ck.commit(&mut a);
    let hash_a2 = a.open_hash();
    ck.eq(
        "the Lightning transfer",
        find_key(TransferKey::Lightning(hash_a1)),
        Some(a.id()),
    );
    ck.eq("the second invoice of a", find_hash(hash_a2), Some(a.id()));
    ck.eq(
        "the first invoice of a, later",
        find_hash(hash_a1),
        Some(a.id()),
    );

    // An on-chain transfer in a later commit.
    let t2 = t + Duration::seconds(20);
    let onchain = TransferReport::onchain(fresh_hash(), 5, a.address(), Sats::new(1_000), 0);
    let onchain_key = onchain.key();
    a.record(onchain, t2);
    ck.commit(&mut a);
    ck.eq("the on-chain transfer", find_key(onchain_key), Some(a.id()));
    ck.eq(
        "the Lightning transfer, later",
        find_key(TransferKey::Lightning(hash_a1)),
        Some(a.id()),
    );
    ck.eq("address of a, later", find_addr(&a.address()), Some(a.id()));

    // A transfer of b.
    let for_b = TransferReport::onchain(fresh_hash(), 0, b.address(), Sats::new(1_000), 1);
    let b_key = for_b.key();
    b.record(for_b, t2);
    ck.commit(&mut b);
    ck.eq("the transfer of b", find_key(b_key), Some(b.id()));
    ck.eq(
        "the on-chain transfer of a, after b's",
        find_key(onchain_key),
        Some(a.id()),
    );
    ck.eq(
        "an unknown address",
        find_addr("bcrt1qnobodyhasthisaddress"),
        None,
    );
    ck.loads_as("a after its lookups", &a);
    ck.loads_as("b after its lookups", &b);
}

/// A transfer reported again with more confirmations (or reversed) is stored updated,
/// and the session's other transfers stay as they were, although only the changed one is
/// in `changed_transfers`.
pub fn check_transfer_updated<S: Store>(store: &S) {
    let ck = Ck::new("check_transfer_updated", store);
    let t = t0();
    let mut d = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    ck.commit(&mut d);
    let t1 = t + Duration::seconds(1);
    d.record(
        TransferReport::lightning(d.open_hash(), Msats::new(5_000_000)),
        t1,
    );
    d.quote(t1);
    ck.commit(&mut d);

    let sats = Sats::new(d.open_msats().get() / 1_000);
    let txid = fresh_hash();
    let address = d.address();
    let report =
        |confirmations| TransferReport::onchain(txid, 0, address.clone(), sats, confirmations);
    let key = report(0).key();
    d.record(report(0), t + Duration::seconds(2));
    ck.commit(&mut d);
    ck.loads_as("a transfer waiting for confirmations", &d);
    ck.eq(
        "fixture: a pending transfer leaves the session active",
        d.session.status(),
        SessionStatus::Active,
    );

    d.record(report(1), t + Duration::seconds(3));
    ck.eq(
        "fixture: the confirmation pays",
        d.session.status(),
        SessionStatus::Paid,
    );
    ck.eq("fixture: changed transfers", d.change.transfers().to_vec(), vec![key]);
    ck.commit(&mut d);
    ck.loads_as("the transfer confirmed", &d);
    let stored = ck.load(d.id()).and_then(|s| s.transfer(&key).cloned());
    ck.eq(
        "confirmations of the stored transfer",
        stored.as_ref().map(|t| t.confirmations),
        Some(1),
    );

    // More confirmations change the transfer but raise no event.
    d.record(report(3), t + Duration::seconds(4));
    ck.commit(&mut d);
    ck.loads_as("the transfer with more confirmations", &d);
    let stored = ck.load(d.id()).and_then(|s| s.transfer(&key).cloned());
    ck.eq(
        "confirmations of the stored transfer, later",
        stored.map(|t| t.confirmations),
        Some(3),
    );
    ck.eq("the session's transfers", d.session.transfers().count(), 2);
}

/// `list`: newest first (creation time, then id), status filter, default page of 10,
/// limits clamped to 1..=100, `starting_after` and `ending_before` pages with the right
/// `has_more` in both directions, and an empty page for an unknown cursor.
pub fn check_list<S: Store>(store: &S) {
    let ck = Ck::new("check_list", store);
    const N: usize = 105;
    // Newer than anything stored, so that these sessions are the first pages.
    let newest = ck.list(ListQuery {
        limit: Some(1),
        ..Default::default()
    });
    let base = newest.data.first().map_or(t0(), CheckoutSession::created) + Duration::days(1);
    let mut sessions = Vec::with_capacity(N);
    for i in 0..N {
        // Two sessions share one creation time: the id breaks the tie.
        let offset = i64::try_from(i).unwrap_or(0) - i64::from(i == 51);
        let created = base + Duration::seconds(offset);
        let cents = 1_000 + i64::try_from(i).unwrap_or(0);
        let mut d = Draft::new(SessionParams::new(dollars(cents), usd()), created);
        if i % 3 == 0 {
            d.pay(created);
        } else if i % 5 == 1 {
            d.deactivate(created);
        }
        ck.commit(&mut d);
        sessions.push(d.session);
    }
    let mut expected = sessions;
    expected.sort_by_key(|s| std::cmp::Reverse((s.created(), s.id())));
    let q = |limit: Option<usize>| ListQuery {
        limit,
        ..Default::default()
    };

    let page = ck.list(q(None));
    ck.eq("default page", ids(&page.data), ids(&expected[..10]));
    ck.eq(
        "default page (sessions)",
        page.data,
        expected[..10].to_vec(),
    );
    ck.that(page.has_more, "default page: has_more");
    let page = ck.list(q(Some(0)));
    ck.eq(
        "limit 0 is clamped to 1",
        ids(&page.data),
        ids(&expected[..1]),
    );
    ck.that(page.has_more, "limit 0: has_more");
    let page = ck.list(q(Some(1_000)));
    ck.eq(
        "limit 1000 is clamped to 100",
        ids(&page.data),
        ids(&expected[..100]),
    );
    ck.that(page.has_more, "limit 1000: has_more");

    // Forward, 7 at a time (N is a multiple of 7).
    let older_exists = !ck
        .list(ListQuery {
            limit: Some(1),
            starting_after: Some(expected[N - 1].id()),
            ..Default::default()
        })
        .data
        .is_empty();
    let mut cursor = None;
    let mut seen = 0;
    while seen < N {
        let page = ck.list(ListQuery {
            limit: Some(7),
            starting_after: cursor,
            ..Default::default()
        });
        ck.eq(
            &format!("forward page from {seen}"),
            ids(&page.data),
            ids(&expected[seen..seen + 7]),
        );
        seen += 7;
        let more = seen < N || older_exists;
        ck.eq(
            &format!("forward page from {}: has_more", seen - 7),
            page.has_more,
            more,
        );
        cursor = page.data.last().map(CheckoutSession::id);
    }

    // Backward from the oldest, 7 at a time.
    let mut end = N - 1;
    while end > 0 {
        let page = ck.list(ListQuery {
            limit: Some(7),
            ending_before: Some(expected[end].id()),
            ..Default::default()
        });
        let start = end.saturating_sub(7);
        ck.eq(
            &format!("backward page ending before {end}"),
            ids(&page.data),
            ids(&expected[start..end]),
        );
        ck.eq(
            &format!("backward page ending before {end}: has_more"),
            page.has_more,
            start > 0,
        );
        end = start;
    }
    let page = ck.list(ListQuery {
        ending_before: Some(expected[0].id()),
        ..Default::default()
    });
    ck.eq("page before the newest", page.data.len(), 0);
    ck.that(!page.has_more, "page before the newest: has_more");

    // Status filter.
    for status in [
        SessionStatus::Paid,
        SessionStatus::Active,
        SessionStatus::Deactivated,
    ] {
        let mine: Vec<CheckoutSession> = expected
            .iter()
            .filter(|s| s.status() == status)
            .cloned()
            .collect();
        let what = |s: &str| format!("status {}: {s}", status.as_str());
        let page = ck.list(ListQuery {
            status: Some(status),
            ..Default::default()
        });
        ck.eq(&what("first page"), ids(&page.data), ids(&mine[..10]));
        ck.that(page.has_more, what("first page: has_more"));
        let page = ck.list(ListQuery {
            status: Some(status),
            limit: Some(5),
            starting_after: Some(mine[4].id()),
            ..Default::default()
        });
        ck.eq(&what("second page"), ids(&page.data), ids(&mine[5..10]));
        ck.that(page.has_more, what("second page: has_more"));
        let page = ck.list(ListQuery {
            status: Some(status),
            limit: Some(5),
            ending_before: Some(mine[12].id()),
            ..Default::default()
        });
        ck.eq(&what("page back"), ids(&page.data), ids(&mine[7..12]));
        ck.that(page.has_more, what("page back: has_more"));
        let page = ck.list(ListQuery {
            status: Some(status),
            limit: Some(10),
            ending_before: Some(mine[3].id()),
            ..Default::default()
        });
        ck.eq(&what("first page back"), ids(&page.data), ids(&mine[..3]));
        ck.that(!page.has_more, what("first page back: has_more"));
        ck.that(
            page.data.iter().all(|s| s.status() == status),
            what("every session has the status"),
        );
    }
    // A cursor of another status than the filter still marks a position.
    let cursor = expected
        .iter()
        .position(|s| s.status() == SessionStatus::Active)
        .unwrap_or(0);
    let page = ck.list(ListQuery {
        status: Some(SessionStatus::Paid),
        limit: Some(3),
        starting_after: Some(expected[cursor].id()),
        ..Default::default()
    });
    let want: Vec<CheckoutSession> = expected[cursor + 1..]
        .iter()
        .filter(|s| s.status() == SessionStatus::Paid)
        .take(3)
        .cloned()
        .collect();
    ck.eq(
        "paid sessions after an active one",
        ids(&page.data),
        ids(&want),
    );

    // Unknown cursors.
    for query in [
        ListQuery {
            starting_after: Some(SessionId::generate()),
            ..Default::default()
        },
        ListQuery {
            ending_before: Some(SessionId::generate()),
            ..Default::default()
        },
    ] {
        let page = ck.list(query.clone());
        ck.eq(&format!("{query:?}: data"), page.data.len(), 0);
        ck.that(!page.has_more, format!("{query:?}: has_more"));
    }
}

/// `due(now, limit)`: the sessions whose `wake_at` is at or before `now`, in wake order
/// (an open quote to expire, or an expired one to replace), at most `limit`; never paid
/// or deactivated sessions, nor those waking later.
pub fn check_due<S: Store>(store: &S) {
    let ck = Ck::new("check_due", store);
    // 1971: before any session of the other checks (or of a real application).
    let base = OffsetDateTime::UNIX_EPOCH + Duration::days(365);
    let at = |secs: i64| base + Duration::seconds(secs);
    let params = |ttl: i64| SessionParams::new(dollars(500), usd()).ttl_secs(ttl);
    let mut a = Draft::new(params(3_600), at(0));
    let mut b = Draft::new(params(300), at(100));
    let mut c = Draft::new(params(600), at(200));
    let mut paid = Draft::new(params(300), at(300));
    paid.pay(at(301));
    let mut gone = Draft::new(params(300), at(400));
    gone.deactivate(at(401));
    // Its quote ran out at 800 and was expired at 900: it waits for a new quote.
    let mut f = Draft::new(params(300), at(500));
    let expired = f.session.expire_quotes(at(900)).expect("core: expire");
    f.wrap(expired);
    let mut g = Draft::new(params(300), at(1_000));
    for d in [&mut a, &mut b, &mut c, &mut paid, &mut gone, &mut f, &mut g] {
        ck.commit(d);
    }
    let wakes: Vec<Option<OffsetDateTime>> = [&a, &b, &c, &paid, &gone, &f, &g]
        .iter()
        .map(|d| d.session.wake_at())
        .collect();
    ck.eq(
        "fixture: wake times",
        wakes,
        vec![
            Some(at(3_600)),
            Some(at(400)),
            Some(at(800)),
            None,
            None,
            Some(at(900)),
            Some(at(1_300)),
        ],
    );
    let due = |now: OffsetDateTime, limit: usize| ck.ok("due", store.due(now, limit));
    ck.eq("due before any wake time", due(at(399), 100), vec![]);
    ck.eq("due at a wake time", due(at(400), 100), vec![b.id()]);
    ck.eq(
        "due at 900",
        due(at(900), 100),
        vec![b.id(), c.id(), f.id()],
    );
    ck.eq("due at 900, limit 2", due(at(900), 2), vec![b.id(), c.id()]);
    ck.eq("due with limit 0", due(at(900), 0), vec![]);
    ck.eq(
        "due when every quote ran out",
        due(at(3_600), 100),
        vec![b.id(), c.id(), f.id(), g.id(), a.id()],
    );

    // Deactivated sessions are never due: clean up for the checks that follow.
    for d in [&mut a, &mut b, &mut c, &mut f, &mut g] {
        d.deactivate(at(4_000));
        ck.commit(d);
    }
    ck.eq("due after deactivation", due(at(4_000), 100), vec![]);
}

/// `events_after`: every committed event in commit order, with strictly increasing
/// sequence numbers; paging with the last sequence number seen as cursor returns each
/// event exactly once.
pub fn check_events_after<S: Store>(store: &S) {
    let ck = Ck::new("check_events_after", store);
    let cursor = ck.last_seq();
    let (expected, _, _) = interleaved(&ck);
    let got = ck.events_since(cursor);
    ck.eq("events after the cursor", events_of(&got), expected.clone());
    ck.eq(
        "events as JSON",
        got.iter().map(|e| e.event.to_json()).collect::<Vec<_>>(),
        expected.iter().map(Event::to_json).collect::<Vec<_>>(),
    );
    ck.that(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequence numbers strictly increase",
    );
    ck.that(
        got.first().is_none_or(|e| cursor.is_none_or(|c| e.seq > c)),
        "sequence numbers are above the cursor",
    );
    for limit in [1, 2, 3, 5] {
        let mut paged = Vec::new();
        let mut after = cursor;
        loop {
            let page = ck.ok("events_after", store.events_after(after, limit));
            ck.that(
                page.len() <= limit,
                format!("a page of limit {limit} is longer"),
            );
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            paged.extend(page);
        }
        ck.eq(
            &format!("events paged {limit} at a time"),
            paged.clone(),
            got.clone(),
        );
    }
    let last = got.last().map(|e| e.seq);
    ck.eq(
        "events after the last",
        ck.ok("events_after", store.events_after(last, 10)).len(),
        0,
    );
    ck.eq(
        "events_after with limit 0",
        ck.ok("events_after", store.events_after(cursor, 0)).len(),
        0,
    );
    let from_start = ck.ok("events_after", store.events_after(None, 1));
    ck.that(
        from_start.first().map(|e| e.seq) <= got.first().map(|e| e.seq),
        "events_after(None) starts at the beginning",
    );
    if cursor.is_none() {
        ck.eq(
            "events_after(None) on an empty outbox",
            ck.events_since(None),
            got,
        );
    }
}

/// `session_events`: one session's events in order, with the same sequence numbers as in
/// the outbox, and none of another session's.
pub fn check_session_events<S: Store>(store: &S) {
    let ck = Ck::new("check_session_events", store);
    let cursor = ck.last_seq();
    let (_, a, b) = interleaved(&ck);
    let all = ck.events_since(cursor);
    for (name, id) in [("a", a), ("b", b)] {
        let timeline = ck.ok("session_events", store.session_events(id));
        let want: Vec<StoredEvent> = all
            .iter()
            .filter(|e| e.event.session_id == Some(id))
            .cloned()
            .collect();
        ck.that(!want.is_empty(), "fixture: events for each session");
        ck.eq(&format!("timeline of {name}"), timeline, want);
    }
}

/// Commits two sessions' changes interleaved; returns the events in commit order.
fn interleaved<S: Store>(ck: &Ck<'_, S>) -> (Vec<Event>, SessionId, SessionId) {
    let t = t0();
    let mut expected = Vec::new();
    let mut a = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    expected.extend(ck.commit(&mut a));
    let mut b = Draft::new(SessionParams::new(dollars(1200), usd()), t);
    expected.extend(ck.commit(&mut b));
    let t1 = t + Duration::seconds(1);
    a.record(
        TransferReport::lightning(a.open_hash(), Msats::new(5_000_000)),
        t1,
    );
    a.quote(t1);
    expected.extend(ck.commit(&mut a));
    b.update(&SessionUpdate::new().description("gift wrap"), t1);
    expected.extend(ck.commit(&mut b));
    a.pay(t + Duration::seconds(2));
    expected.extend(ck.commit(&mut a));
    b.deactivate(t + Duration::seconds(3));
    expected.extend(ck.commit(&mut b));
    (expected, a.id(), b.id())
}

/// Events come back exactly: the JSON text of `object` byte for byte (whitespace, number
/// spelling, escapes), unknown event types, events without a session, live mode.
pub fn check_event_round_trip<S: Store>(store: &S) {
    let ck = Ck::new("check_event_round_trip", store);
    let t = t0() + Duration::milliseconds(999);
    let cursor = ck.last_seq();
    let mut d = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    let odd = r#"{ "amount" : 10.10, "big": 123456789012345678901234567890.000000001,
        "tiny": 1e-7, "text": "é \u00e9 \"q\" \\ 🚀 \u2028", "list": [1, 2.50, null, true],
        "empty": {} }"#;
    let raw = |text: &str| RawValue::from_string(text.to_owned()).expect("fixture JSON");
    d.events.push(Event {
        id: EventId::generate(),
        event_type: EventType::Unknown("vendor.custom_event".into()),
        session_id: None,
        livemode: true,
        created: t,
        object: raw(odd),
    });
    d.events.push(Event {
        id: EventId::generate(),
        event_type: EventType::CheckoutLinkCreated,
        session_id: Some(d.id()),
        livemode: false,
        created: t + Duration::milliseconds(1),
        object: raw("[]"),
    });
    let expected = ck.commit(&mut d);
    let got = ck.events_since(cursor);
    ck.eq("events", events_of(&got), expected.clone());
    for (g, e) in got.iter().zip(&expected) {
        ck.eq("object text", g.event.object.get(), e.object.get());
        ck.eq("event JSON", g.event.to_json(), e.to_json());
        ck.eq(
            "event type",
            g.event.event_type.as_str(),
            e.event_type.as_str(),
        );
    }
}

/// Threads racing to commit from the same version: at most one wins each round (the others
/// get `Conflict`, or a retryable error), the winner's change alone is stored, and of
/// several sessions inserted with one idempotency key exactly one is created.
pub fn check_racing_commits<S: Store>(store: &S) {
    let ck = Ck::new("check_racing_commits", store);
    const THREADS: usize = 4;
    const ROUNDS: u32 = 8;
    let t = t0();
    let mut d = Draft::new(SessionParams::new(dollars(100_000), usd()), t);
    let mut timeline = ck.commit(&mut d);
    let mut winners = BTreeSet::new();
    for round in 0..ROUNDS {
        let now = t + Duration::seconds(i64::from(round) + 1);
        let candidates: Vec<Draft> = (0..THREADS)
            .map(|i| {
                let mut c = d.clone();
                let vout = u32::try_from(i).unwrap_or(0);
                c.record(
                    TransferReport::onchain(fresh_hash(), vout, c.address(), Sats::new(1_000), 1),
                    now,
                );
                c
            })
            .collect();
        let results = race(store, &candidates);
        let won: Vec<usize> = (0..THREADS).filter(|i| results[*i].is_ok()).collect();
        ck.that(
            won.len() <= 1,
            format!(
                "round {round}: {} commits from one version succeeded",
                won.len()
            ),
        );
        for r in &results {
            ck.that(
                r.as_ref()
                    .err()
                    .is_none_or(|e| *e == StoreError::Conflict || e.is_retryable()),
                format!("round {round}: a losing commit failed with {r:?}"),
            );
        }
        match won.first() {
            Some(&w) => {
                d = candidates[w].clone();
                winners.extend(d.change.transfers().iter().copied());
                timeline.extend(d.committed());
            }
            None => ck.that(
                results
                    .iter()
                    .any(|r| !matches!(r, Err(StoreError::Conflict))),
                format!("round {round}: every commit got Conflict, yet none won"),
            ),
        }
        ck.loads_as(&format!("round {round}: the session"), &d);
    }
    let stored: BTreeSet<TransferKey> = d.session.transfers().map(|t| t.key).collect();
    ck.eq("the winners' transfers", stored, winners);
    let got = ck.ok("session_events", store.session_events(d.id()));
    ck.eq("the winners' events", events_of(&got), timeline);
}

/// Commits every candidate from its own thread, all released at once.
fn race<S: Store>(store: &S, candidates: &[Draft]) -> Vec<Result<(), StoreError>> {
    let barrier = Barrier::new(candidates.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = candidates
            .iter()
            .map(|c| {
                let commit = c.to_commit();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    store.commit(&commit)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StoreError::Backend {
                        message: "the committing thread panicked".into(),
                        retryable: false,
                    })
                })
            })
            .collect()
    })
}

/// The service's whole lifecycle on the store: create with an idempotency key, replay
/// it, refuse it with other parameters; a partial Lightning payment, a quote that runs out
/// and is replaced, a partial on-chain payment and a final Lightning payment make the
/// session paid; reporting a transfer again adds no event; exactly one
/// `checkout_session.paid` event.
pub fn check_service_lifecycle<S: Store>(store: &S) {
    let ck = Ck::new("check_service_lifecycle", store);
    let clock = ManualClock::new(t0() + Duration::milliseconds(250));
    let checkout = Checkout::new(store, rates(), TestRequestGenerator).with_clock(&clock);
    let cursor = ck.last_seq();
    let key = format!("order-{}", SessionId::generate());
    let params = SessionParams::new(dollars(2500), usd()).description("lifecycle");

    let s = ck.svc("create", checkout.create(params.clone(), Some(&key)));
    let id = s.id();
    ck.eq(
        "first quote",
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(25_000)),
    );
    ck.eq("load after create", ck.load(id), Some(s.clone()));
    let record = ck.ok("idempotency", store.idempotency(&key));
    ck.eq(
        "idempotency record",
        record.map(|r| (r.session_id, r.created)),
        Some((id, clock_now(&clock))),
    );
    clock.advance(Duration::seconds(5));
    let again = ck.svc("replayed create", checkout.create(params, Some(&key)));
    ck.eq("replayed create", again, s.clone());
    let other = checkout.create(SessionParams::new(dollars(2600), usd()), Some(&key));
    ck.eq(
        "create with a used key and other parameters",
        other.err(),
        Some(ServiceError::IdempotencyConflict),
    );

    // A partial Lightning payment: a new quote for the rest.
    clock.advance(Duration::seconds(5));
    let q1 = s.open_payment().map(|p| p.id()).expect("first quote");
    let ln1 = TransferReport::lightning(
        TestRequestGenerator::payment_hash(q1),
        Msats::new(10_000_000),
    );
    let s = ck.svc(
        "partial Lightning payment",
        checkout.record_transfer(ln1.clone()),
    );
    ck.eq(
        "status after a partial payment",
        s.status(),
        SessionStatus::Active,
    );
    ck.eq(
        "quote for the rest",
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(15_000)),
    );

    // That quote runs out; a refresh replaces it.
    clock.advance(Duration::minutes(11));
    ck.eq(
        "refresh after expiry",
        ck.svc("refresh", checkout.refresh(id)),
        true,
    );
    let s = ck.svc("get", checkout.get(id));
    ck.eq("quotes after the refresh", s.payments().len(), 3);

    // A partial on-chain payment, confirmed.
    clock.advance(Duration::seconds(5));
    let txid = fresh_hash();
    let chain = TransferReport::onchain(
        txid,
        1,
        TestRequestGenerator::address(id),
        Sats::new(5_000),
        1,
    );
    let s = ck.svc(
        "partial on-chain payment",
        checkout.record_transfer(chain.clone()),
    );
    ck.eq(
        "status after two partial payments",
        s.status(),
        SessionStatus::Active,
    );
    ck.eq(
        "quote for the rest, again",
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(10_000)),
    );

    // The final Lightning payment.
    clock.advance(Duration::seconds(5));
    let last = s.open_payment().map(|p| p.id()).expect("an open quote");
    let ln2 = TransferReport::lightning(
        TestRequestGenerator::payment_hash(last),
        Msats::new(10_000_000),
    );
    let s = ck.svc("final payment", checkout.record_transfer(ln2.clone()));
    ck.eq(
        "status after the final payment",
        s.status(),
        SessionStatus::Paid,
    );
    ck.eq("load after the final payment", ck.load(id), Some(s.clone()));
    let timeline = ck.ok("session_events", store.session_events(id));

    // Reports again: nothing new.
    clock.advance(Duration::seconds(5));
    for report in [ln2, chain, ln1] {
        let key = report.key();
        let again = ck.svc("duplicate report", checkout.record_transfer(report));
        ck.eq("session after a duplicate report", again, s.clone());
        ck.eq(
            "find_by_transfer",
            ck.ok("find_by_transfer", store.find_by_transfer(&key)),
            Some(id),
        );
    }
    let after = ck.ok("session_events", store.session_events(id));
    ck.eq(
        "events after duplicate reports",
        after.len(),
        timeline.len(),
    );
    ck.eq("paid events in the timeline", paid_events(&after, id), 1);
    ck.eq(
        "paid events in the outbox",
        paid_events(&ck.events_since(cursor), id),
        1,
    );
    let types: Vec<String> = after
        .iter()
        .map(|e| e.event.event_type.as_str().to_owned())
        .collect();
    ck.eq(
        "the first and last events",
        (types.first().cloned(), types.last().cloned()),
        (
            Some("checkout_session.created".to_owned()),
            Some("checkout_session.paid".to_owned()),
        ),
    );
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    crate::clock::Clock::now(clock)
}

// ---- links -------------------------------------------------------------------------------

/// Every link check, by name.
fn link_checks<S: LinkStore>() -> Vec<(&'static str, Check<S>)> {
    vec![
        ("check_link_round_trip", check_link_round_trip::<S>),
        (
            "check_link_conflict_writes_nothing",
            check_link_conflict_writes_nothing::<S>,
        ),
        (
            "check_link_stale_session_writes_nothing",
            check_link_stale_session_writes_nothing::<S>,
        ),
        ("check_link_sessions_order", check_link_sessions_order::<S>),
        (
            "check_link_events_in_outbox",
            check_link_events_in_outbox::<S>,
        ),
        ("check_link_service", check_link_service::<S>),
    ]
}

/// Runs every link check (the contract of [`LinkStore`]), each on a fresh store from
/// `fresh`, then all of them on one more fresh store. Panics on the first violation,
/// naming the check. Run [`run_all`] too: a link store is a [`Store`].
pub fn run_links<S: LinkStore>(fresh: impl FnMut() -> S) {
    run_checks(&link_checks::<S>(), fresh);
}

/// The events a link's commit carries, as the service makes them (no session).
fn link_events(link: &Link, events: &[SessionEvent]) -> Vec<Event> {
    let json = link.to_json(None);
    events
        .iter()
        .map(|e| Event {
            id: EventId::generate(),
            event_type: e.event_type.clone(),
            session_id: None,
            livemode: link.params().livemode,
            created: e.at,
            object: RawValue::from_string(json.clone()).expect("link JSON"),
        })
        .collect()
}

/// A new link of either kind with its creation events.
fn new_link(payment: bool, now: OffsetDateTime) -> (Link, Vec<Event>) {
    let id = if payment {
        LinkId::Payment(PaymentLinkId::generate())
    } else {
        LinkId::Checkout(CheckoutLinkId::generate())
    };
    let params = SessionParams::new(dollars(1250), usd()).description("link — ☕ \"x\"");
    let (link, events) =
        Link::create(id, params, Some(now + Duration::days(30)), now).expect("core: link");
    let events = link_events(&link, &events);
    (link, events)
}

/// A session opened by `link` at `now` (the link is opened for it).
fn open_draft(link: &mut Link, now: OffsetDateTime) -> Draft {
    let mut params = link.params().clone();
    params.link = Some(link.id());
    let d = Draft::new(params, now);
    match link.open(d.id(), now).expect("core: open link") {
        Opening::NewSession(id) if id == d.id() => {}
        other => panic!("fixture: opening the link gave {other:?}"),
    }
    d
}

impl<S: LinkStore> Ck<'_, S> {
    #[track_caller]
    fn load_link(&self, id: LinkId) -> Option<Link> {
        self.ok("load_link", self.store.load_link(id))
    }

    #[track_caller]
    fn link_sessions(&self, id: LinkId) -> Vec<SessionId> {
        self.ok("link_sessions", self.store.link_sessions(id))
    }

    /// Inserts a link with its events.
    #[track_caller]
    fn insert_link(&self, link: &Link, events: Vec<Event>) {
        let commit = LinkCommit {
            link: link.clone(),
            expected_version: None,
            events,
            sessions: Vec::new(),
        };
        self.ok("commit_link (insert)", self.store.commit_link(&commit));
    }

    /// Opens the stored `link` for a new session at `now` and commits both.
    #[track_caller]
    fn open_link(&self, link: &mut Link, now: OffsetDateTime) -> Draft {
        let expected = link.version();
        let mut d = open_draft(link, now);
        let commit = LinkCommit {
            link: link.clone(),
            expected_version: Some(expected),
            events: Vec::new(),
            sessions: vec![d.to_commit()],
        };
        self.ok("commit_link (open)", self.store.commit_link(&commit));
        d.committed();
        d
    }
}

/// A link inserted (with no expected version) loads back equal; opening it commits the
/// link's new version and the new session together; the session names its link, and a
/// later plain commit of it keeps it among the link's sessions. Inserting an existing link
/// again is `Conflict`. Unknown links load as `None` with no sessions.
pub fn check_link_round_trip<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_round_trip", store);
    let t = t0() + Duration::milliseconds(5);
    let unknown = LinkId::Payment(PaymentLinkId::generate());
    ck.eq("load_link of an unknown id", ck.load_link(unknown), None);
    ck.eq(
        "link_sessions of an unknown link",
        ck.link_sessions(unknown),
        vec![],
    );
    for payment in [false, true] {
        let (link, events) = new_link(payment, t);
        let id = link.id();
        ck.insert_link(&link, events);
        ck.eq(
            "load_link after insert",
            ck.load_link(id),
            Some(link.clone()),
        );
        ck.eq("link_sessions of a new link", ck.link_sessions(id), vec![]);

        let mut opened = link.clone();
        let t1 = t + Duration::seconds(1);
        let mut d = ck.open_link(&mut opened, t1);
        ck.eq(
            "load_link after open",
            ck.load_link(id),
            Some(opened.clone()),
        );
        ck.eq(
            "the opened link's version",
            opened.version(),
            link.version() + 1,
        );
        ck.loads_as("the link's session", &d);
        ck.eq(
            "the session's link",
            ck.load(d.id()).and_then(|s| s.link()),
            Some(id),
        );
        ck.eq(
            "link_sessions after open",
            ck.link_sessions(id),
            vec![d.id()],
        );

        // A plain commit of the session keeps it with its link.
        d.pay(t + Duration::seconds(2));
        ck.commit(&mut d);
        ck.loads_as("the link's session after a payment", &d);
        ck.eq(
            "link_sessions after a session commit",
            ck.link_sessions(id),
            vec![d.id()],
        );

        let again = LinkCommit {
            link: link.clone(),
            expected_version: None,
            events: Vec::new(),
            sessions: Vec::new(),
        };
        ck.conflict("insert of an existing link", store.commit_link(&again));
        ck.eq(
            "load_link after a refused insert",
            ck.load_link(id),
            Some(opened),
        );
    }
}

/// A link commit whose expected link version is stale (or names a link never stored) is
/// `Conflict` and writes nothing: neither the link, nor its events, nor any of its session
/// commits (inserts, updates, idempotency records, lookups).
pub fn check_link_conflict_writes_nothing<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_conflict_writes_nothing", store);
    let t = t0();
    let (link, events) = new_link(true, t);
    ck.insert_link(&link, events);
    let stale_link = link.clone();
    let mut current = link.clone();
    let a = ck.open_link(&mut current, t + Duration::seconds(1));
    let cursor = ck.last_seq();

    // From the stale version: open for b (with an idempotency record), deactivate a, and
    // a link event of its own.
    let t2 = t + Duration::seconds(2);
    let mut stale = stale_link.clone();
    let b = open_draft(&mut stale, t2);
    let b_hash = b.open_hash();
    let mut a2 = a.clone();
    a2.deactivate(t2);
    let note = SessionEvent::new(EventType::Unknown("vendor.link_note".into()), t2);
    let mut commit = LinkCommit {
        events: link_events(&stale, &[note]),
        link: stale,
        expected_version: Some(stale_link.version()),
        sessions: vec![b.to_commit(), a2.to_commit()],
    };
    ck.conflict(
        "link commit from a stale link version",
        store.commit_link(&commit),
    );
    let unchanged = |what: &str| {
        ck.eq(
            &format!("{what}: the link"),
            ck.load_link(link.id()),
            Some(current.clone()),
        );
        ck.loads_as(&format!("{what}: session a"), &a);
        ck.eq(&format!("{what}: session b"), ck.load(b.id()), None);
        ck.eq(
            &format!("{what}: link_sessions"),
            ck.link_sessions(link.id()),
            vec![a.id()],
        );
        ck.eq(&format!("{what}: events"), ck.events_since(cursor).len(), 0);
        ck.eq(
            &format!("{what}: b's invoice"),
            ck.ok("find_by_payment_hash", store.find_by_payment_hash(&b_hash)),
            None,
        );
    };
    unchanged("after a stale link commit");

    commit.expected_version = Some(current.version() + 5);
    ck.conflict(
        "link commit expecting a future version",
        store.commit_link(&commit),
    );
    unchanged("after a link commit from the future");

    // Updating a link never stored.
    let (ghost, _) = new_link(false, t);
    let mut ghost_open = ghost.clone();
    let g = open_draft(&mut ghost_open, t2);
    let commit = LinkCommit {
        link: ghost_open,
        expected_version: Some(ghost.version()),
        events: Vec::new(),
        sessions: vec![g.to_commit()],
    };
    ck.conflict("update of a link never stored", store.commit_link(&commit));
    ck.eq("the never-stored link", ck.load_link(ghost.id()), None);
    ck.eq("the never-stored link's session", ck.load(g.id()), None);
    unchanged("after an update of a link never stored");
}

/// A link commit whose link version is right but one of whose session commits is stale
/// (or inserts a session that exists) is `Conflict` and writes nothing: not the link, not
/// its events, not the other sessions' commits. The same commit from fresh versions then
/// applies whole.
pub fn check_link_stale_session_writes_nothing<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_stale_session_writes_nothing", store);
    let t = t0();
    let (link, events) = new_link(true, t);
    ck.insert_link(&link, events);
    let mut current = link.clone();
    let a = ck.open_link(&mut current, t + Duration::seconds(1));
    let mut b = ck.open_link(&mut current, t + Duration::seconds(2));
    let stale_b = b.clone();
    // Someone else changes b.
    b.update(
        &SessionUpdate::new().description("changed meanwhile"),
        t + Duration::seconds(3),
    );
    ck.commit(&mut b);
    let cursor = ck.last_seq();

    let t4 = t + Duration::seconds(4);
    let deactivation = |b: &Draft| {
        let mut l = current.clone();
        let events = l.deactivate(t4).expect("core: deactivate link");
        let mut a2 = a.clone();
        a2.deactivate(t4);
        let mut b2 = b.clone();
        b2.deactivate(t4);
        let commit = LinkCommit {
            events: link_events(&l, &events),
            link: l,
            expected_version: Some(current.version()),
            sessions: vec![a2.to_commit(), b2.to_commit()],
        };
        (commit, a2, b2)
    };
    let unchanged = |what: &str| {
        ck.eq(
            &format!("{what}: the link"),
            ck.load_link(link.id()),
            Some(current.clone()),
        );
        ck.loads_as(&format!("{what}: session a"), &a);
        ck.loads_as(&format!("{what}: session b"), &b);
        ck.eq(&format!("{what}: events"), ck.events_since(cursor).len(), 0);
    };

    let (commit, _, _) = deactivation(&stale_b);
    ck.conflict(
        "link commit with a stale session version",
        store.commit_link(&commit),
    );
    unchanged("after a link commit with a stale session");

    // A session insert of an id that exists.
    let mut opened = current.clone();
    let c = open_draft(&mut opened, t4);
    let mut dup = b.to_commit();
    dup.expected_version = None;
    let commit = LinkCommit {
        link: opened,
        expected_version: Some(current.version()),
        events: Vec::new(),
        sessions: vec![c.to_commit(), dup],
    };
    ck.conflict(
        "link commit inserting an existing session",
        store.commit_link(&commit),
    );
    ck.eq("the refused commit's new session", ck.load(c.id()), None);
    unchanged("after a link commit inserting an existing session");

    // From fresh versions, the whole commit applies.
    let (commit, mut a2, mut b2) = deactivation(&b);
    ck.ok("fresh link commit", store.commit_link(&commit));
    a2.committed();
    b2.committed();
    ck.eq(
        "the deactivated link",
        ck.load_link(link.id()),
        Some(commit.link.clone()),
    );
    ck.loads_as("session a deactivated", &a2);
    ck.loads_as("session b deactivated", &b2);
    let mut want = commit.events.clone();
    for s in &commit.sessions {
        want.extend(s.events.iter().cloned());
    }
    ck.eq(
        "events of the link commit, link first",
        events_of(&ck.events_since(cursor)),
        want,
    );
}

/// `link_sessions`: the sessions whose `link()` is the link, oldest first (by creation
/// time, then id), whatever order they were committed in; not another link's sessions nor
/// sessions without a link.
pub fn check_link_sessions_order<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_sessions_order", store);
    let t = t0();
    let (link, events) = new_link(true, t);
    ck.insert_link(&link, events);
    let (other, events) = new_link(false, t);
    ck.insert_link(&other, events);
    let mut current = link.clone();
    let mut mine = Vec::new();
    // Committed in the order 3 s, 1 s, 2 s, 2 s: the listing sorts by creation.
    for secs in [3, 1, 2, 2] {
        let d = ck.open_link(&mut current, t + Duration::seconds(secs));
        mine.push((d.session.created(), d.id()));
    }
    let mut other_link = other.clone();
    let o = ck.open_link(&mut other_link, t + Duration::seconds(1));
    let mut plain = Draft::new(SessionParams::new(dollars(1250), usd()), t);
    ck.commit(&mut plain);
    mine.sort();
    ck.eq(
        "link_sessions, oldest first",
        ck.link_sessions(link.id()),
        mine.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
    );
    ck.eq(
        "link_sessions of the other link",
        ck.link_sessions(other.id()),
        vec![o.id()],
    );
    ck.eq(
        "the link's sessions_opened",
        ck.load_link(link.id()).map(|l| l.sessions_opened()),
        Some(4),
    );
}

/// A link's events go to the outbox in commit order with `session_id` `None`, before the
/// events of the session commits they came with, and into no session's timeline.
pub fn check_link_events_in_outbox<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_events_in_outbox", store);
    let t = t0() + Duration::milliseconds(77);
    let cursor = ck.last_seq();
    let (link, created) = new_link(false, t);
    ck.insert_link(&link, created.clone());
    let got = ck.events_since(cursor);
    ck.eq(
        "the link's creation events",
        events_of(&got),
        created.clone(),
    );
    ck.that(
        got.iter().all(|e| e.event.session_id.is_none()),
        "link events have no session",
    );

    let mut opened = link.clone();
    let t1 = t + Duration::seconds(1);
    let mut d = open_draft(&mut opened, t1);
    let note = SessionEvent::new(EventType::Unknown("vendor.link_opened".into()), t1);
    let link_side = link_events(&opened, &[note]);
    let commit = LinkCommit {
        link: opened,
        expected_version: Some(link.version()),
        events: link_side.clone(),
        sessions: vec![d.to_commit()],
    };
    ck.ok("commit_link", store.commit_link(&commit));
    let session_side = d.committed();
    let mut want = created;
    want.extend(link_side);
    want.extend(session_side.clone());
    let got = ck.events_since(cursor);
    ck.eq("the outbox", events_of(&got), want);
    ck.that(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequence numbers strictly increase",
    );
    ck.eq(
        "the session's timeline holds only its own events",
        events_of(&ck.ok("session_events", store.session_events(d.id()))),
        session_side,
    );
}

/// Links through the service: a checkout link opened by several threads at once gets one
/// session; a payment link opens a session per call; deactivating it deactivates its
/// active sessions (cancelling their quotes) and leaves paid ones, with its events.
pub fn check_link_service<S: LinkStore>(store: &S) {
    const THREADS: usize = 4;
    let ck = Ck::new("check_link_service", store);
    let clock = ManualClock::new(t0() + Duration::milliseconds(500));
    let checkout = Checkout::new(store, rates(), TestRequestGenerator).with_clock(&clock);
    let params = SessionParams::new(dollars(300), usd());
    let link = ck.svc(
        "create_checkout_link",
        checkout.create_checkout_link(params.clone(), None),
    );
    let barrier = Barrier::new(THREADS);
    let opened: Vec<Result<SessionId, ServiceError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (checkout, barrier, id) = (&checkout, &barrier, link.id());
                scope.spawn(move || {
                    barrier.wait();
                    checkout.open_link(id).map(|s| s.id())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an opening thread panicked"))
            .collect()
    });
    let ids: Vec<SessionId> = opened.into_iter().map(|r| ck.svc("open_link", r)).collect();
    ck.that(
        ids.windows(2).all(|w| w[0] == w[1]),
        format!("concurrent opens of a checkout link gave several sessions: {ids:?}"),
    );
    ck.eq(
        "the checkout link's sessions",
        ck.link_sessions(link.id()),
        vec![ids[0]],
    );
    ck.eq(
        "the checkout link's session",
        ck.load_link(link.id()).and_then(|l| l.session()),
        Some(ids[0]),
    );

    let plink = ck.svc(
        "create_payment_link",
        checkout.create_payment_link(params, None),
    );
    let a = ck.svc("open a", checkout.open_link(plink.id()));
    let b = ck.svc("open b", checkout.open_link(plink.id()));
    ck.that(a.id() != b.id(), "a payment link opens a session per call");
    let hash = TestRequestGenerator::payment_hash(b.payments()[0].id());
    ck.svc(
        "pay b",
        checkout.record_transfer(TransferReport::lightning(
            hash,
            b.payments()[0].target_msats(),
        )),
    );
    clock.advance(Duration::seconds(5));
    let cursor = ck.last_seq();
    let done = ck.svc("deactivate_link", checkout.deactivate_link(plink.id()));
    ck.that(done.is_deactivated(), "the link is deactivated");
    ck.eq(
        "a after deactivation",
        ck.load(a.id()).map(|s| s.status()),
        Some(SessionStatus::Deactivated),
    );
    ck.eq(
        "b after deactivation",
        ck.load(b.id()).map(|s| s.status()),
        Some(SessionStatus::Paid),
    );
    let types: Vec<String> = ck
        .events_since(cursor)
        .iter()
        .map(|e| e.event.event_type.as_str().to_owned())
        .collect();
    ck.eq(
        "events of the deactivation",
        types,
        vec![
            "payment_link.deactivated".to_owned(),
            "payment.cancelled".to_owned(),
            "checkout_session.deactivated".to_owned(),
        ],
    );
}

// ---- webhook delivery --------------------------------------------------------------------

#[cfg(feature = "webhooks")]
pub use delivery::*;

#[cfg(feature = "webhooks")]
mod delivery {
    use std::sync::Mutex;

    use time::{Duration, OffsetDateTime};

    use super::{Check, Ck, dollars, run_checks, t0, usd};
    use crate::clock::ManualClock;
    use crate::event::EventType;
    use crate::outbox::Event;
    use crate::id::{EndpointId, EventId, SessionId};
    use crate::request::TestRequestGenerator;
    use crate::service::Checkout;
    use crate::session::SessionParams;
    use crate::store::Store;
    use crate::transfer::TransferReport;
    use crate::webhook::{
        Attempt, Delivery, DeliveryStatus, DeliveryStore, Dispatcher, Endpoint, SendOutcome,
        WebhookSecret, WebhookSender,
    };

    /// Every delivery check, by name.
    fn delivery_checks<S: Store + DeliveryStore>() -> Vec<(&'static str, Check<S>)> {
        vec![
            ("check_endpoint_round_trip", check_endpoint_round_trip::<S>),
            ("check_delivery_cursor", check_delivery_cursor::<S>),
            (
                "check_schedule_keeps_existing",
                check_schedule_keeps_existing::<S>,
            ),
            (
                "check_pending_order_and_limit",
                check_pending_order_and_limit::<S>,
            ),
            (
                "check_save_and_get_delivery",
                check_save_and_get_delivery::<S>,
            ),
            ("check_deliveries_log", check_deliveries_log::<S>),
            ("check_dispatcher_resumes", check_dispatcher_resumes::<S>),
        ]
    }

    /// Runs every webhook delivery check (the contract of [`DeliveryStore`]), each on a
    /// fresh store from `fresh`, then all of them on one more fresh store. Panics on the
    /// first violation, naming the check.
    pub fn run_delivery<S: Store + DeliveryStore>(fresh: impl FnMut() -> S) {
        run_checks(&delivery_checks::<S>(), fresh);
    }

    fn secret(n: u8) -> WebhookSecret {
        WebhookSecret::from_bytes(&[n; 32]).expect("fixture secret")
    }

    /// A pending delivery of a made-up event.
    fn pending(endpoint: EndpointId, seq: u64, now: OffsetDateTime) -> Delivery {
        Delivery {
            endpoint,
            seq,
            event_id: EventId::generate(),
            session_id: Some(SessionId::generate()),
            status: DeliveryStatus::Pending,
            next_attempt_at: Some(now),
            attempts: Vec::new(),
        }
    }

    /// `d` after a final attempt with `status`.
    fn settled(mut d: Delivery, status: DeliveryStatus, at: OffsetDateTime) -> Delivery {
        d.attempts.push(Attempt {
            at,
            status: Some(if status == DeliveryStatus::Delivered {
                204
            } else {
                410
            }),
            error: None,
        });
        d.status = status;
        d.next_attempt_at = None;
        d
    }

    impl<S: Store + DeliveryStore> Ck<'_, S> {
        #[track_caller]
        fn endpoint(&self, id: EndpointId) -> Vec<Endpoint> {
            let all = self.ok("endpoints", self.store.endpoints());
            all.into_iter().filter(|e| e.id == id).collect()
        }

        #[track_caller]
        fn cursor(&self, id: EndpointId) -> u64 {
            self.ok("cursor", self.store.cursor(id))
        }

        #[track_caller]
        fn schedule(&self, id: EndpointId, cursor: u64, deliveries: &[Delivery]) {
            self.ok("schedule", self.store.schedule(id, cursor, deliveries));
        }

        #[track_caller]
        fn delivery(&self, id: EndpointId, seq: u64) -> Option<Delivery> {
            self.ok("delivery", self.store.delivery(id, seq))
        }

        #[track_caller]
        fn log(&self, id: EndpointId) -> Vec<Delivery> {
            self.ok("deliveries", self.store.deliveries(id))
        }
    }

    /// An endpoint saved is read back whole, signing secret included; saving it again
    /// replaces it (one endpoint per id).
    pub fn check_endpoint_round_trip<S: Store + DeliveryStore>(store: &S) {
        let ck = Ck::new("check_endpoint_round_trip", store);
        let t = t0() + Duration::milliseconds(321);
        let one = Endpoint::new("https://merchant.example/hooks?shop=1&x=é", secret(7), t)
            .expect("fixture endpoint")
            .only([
                EventType::CheckoutSessionPaid,
                EventType::Unknown("vendor.custom".into()),
            ]);
        let two = Endpoint::new("http://localhost:8080/hooks", secret(9), t).expect("endpoint");
        for e in [&one, &two] {
            ck.ok("save_endpoint", store.save_endpoint(e));
        }
        for e in [&one, &two] {
            let got = ck.endpoint(e.id);
            ck.eq("endpoints with the id", got.len(), 1);
            ck.eq(
                "the stored endpoint",
                got[0].to_stored_json(),
                e.to_stored_json(),
            );
            ck.eq(
                "the stored secret",
                got[0].secret.to_whsec_string(),
                e.secret.to_whsec_string(),
            );
            ck.eq("the stored created time", got[0].created, e.created);
        }
        // Replaced: a new URL and secret, then disabled (which also keeps later checks'
        // dispatchers away from it).
        let mut changed = one.clone();
        changed.url = "https://merchant.example/v2/hooks".into();
        changed.secret = secret(8);
        changed.disabled_at = Some(t + Duration::seconds(1));
        ck.ok("save_endpoint (replace)", store.save_endpoint(&changed));
        let got = ck.endpoint(one.id);
        ck.eq("endpoints with the id after a replace", got.len(), 1);
        ck.eq(
            "the replaced endpoint",
            got[0].to_stored_json(),
            changed.to_stored_json(),
        );
        ck.that(!got[0].is_active(), "the replaced endpoint is disabled");
        let mut two = two;
        two.disabled_at = Some(t + Duration::seconds(1));
        ck.ok("save_endpoint (disable)", store.save_endpoint(&two));
    }

    /// A cursor starts at 0, follows `schedule` forward and never moves back; each
    /// endpoint has its own.
    pub fn check_delivery_cursor<S: Store + DeliveryStore>(store: &S) {
        let ck = Ck::new("check_delivery_cursor", store);
        let t = t0();
        let (ep, other) = (EndpointId::generate(), EndpointId::generate());
        ck.eq("the cursor of a new endpoint", ck.cursor(ep), 0);
        ck.schedule(ep, 5, &[]);
        ck.eq("the cursor after schedule(5)", ck.cursor(ep), 5);
        ck.schedule(ep, 3, &[]);
        ck.eq("the cursor after schedule(3)", ck.cursor(ep), 5);
        ck.schedule(ep, 5, &[]);
        ck.eq("the cursor after schedule(5) again", ck.cursor(ep), 5);
        let d10 = pending(ep, 10, t);
        ck.schedule(ep, 12, std::slice::from_ref(&d10));
        ck.eq("the cursor after schedule(12)", ck.cursor(ep), 12);
        // Deliveries scheduled with a lower cursor are stored; the cursor stays.
        let d11 = pending(ep, 11, t);
        ck.schedule(ep, 7, std::slice::from_ref(&d11));
        ck.eq("the cursor after schedule(7)", ck.cursor(ep), 12);
        ck.eq("the deliveries", ck.log(ep), vec![d10, d11]);
        ck.eq("another endpoint's cursor", ck.cursor(other), 0);
        ck.schedule(other, 2, &[]);
        ck.eq("another endpoint's cursor moved", ck.cursor(other), 2);
        ck.eq("the first endpoint's cursor", ck.cursor(ep), 12);
    }

    /// Scheduling again keeps the deliveries already stored (with their attempts) and adds
    /// the new ones.
    pub fn check_schedule_keeps_existing<S: Store + DeliveryStore>(store: &S) {
        let ck = Ck::new("check_schedule_keeps_existing", store);
        let t = t0() + Duration::milliseconds(1);
        let ep = EndpointId::generate();
        let (d1, d2, d3) = (pending(ep, 1, t), pending(ep, 2, t), pending(ep, 3, t));
        ck.schedule(ep, 3, &[d1.clone(), d2.clone(), d3.clone()]);
        let mut d2_tried = d2.clone();
        d2_tried.attempts.push(Attempt {
            at: t + Duration::seconds(1),
            status: Some(500),
            error: None,
        });
        d2_tried.next_attempt_at = Some(t + Duration::seconds(6));
        let d3_done = settled(
            d3.clone(),
            DeliveryStatus::Delivered,
            t + Duration::seconds(1),
        );
        ck.ok("save_delivery", store.save_delivery(&d2_tried));
        ck.ok("save_delivery", store.save_delivery(&d3_done));
        let d4 = pending(ep, 4, t);
        ck.schedule(ep, 4, &[pending(ep, 2, t), d3.clone(), d4.clone()]);
        ck.eq(
            "the log after scheduling again",
            ck.log(ep),
            vec![d1, d2_tried, d3_done, d4],
        );
        ck.eq("the cursor", ck.cursor(ep), 4);
    }

    /// `pending`: only pending deliveries, ordered by (endpoint, seq) across endpoints,
    /// at most `limit`: a shorter limit gives a prefix of a longer one.
    pub fn check_pending_order_and_limit<S: Store + DeliveryStore>(store: &S) {
        let ck = Ck::new("check_pending_order_and_limit", store);
        let t = t0() + Duration::milliseconds(2);
        let (a, b) = (EndpointId::generate(), EndpointId::generate());
        // Scheduled out of order: b first, seqs shuffled.
        let b_all = [pending(b, 9, t), pending(b, 3, t), pending(b, 5, t)];
        ck.schedule(b, 9, &b_all);
        let a_all = [pending(a, 8, t), pending(a, 1, t), pending(a, 4, t)];
        ck.schedule(a, 8, &a_all);
        ck.ok(
            "save_delivery",
            store.save_delivery(&settled(b_all[2].clone(), DeliveryStatus::Failed, t)),
        );
        ck.ok(
            "save_delivery",
            store.save_delivery(&settled(a_all[0].clone(), DeliveryStatus::Delivered, t)),
        );
        let all = ck.ok("pending", store.pending(usize::MAX));
        ck.that(
            all.iter().all(|d| d.status == DeliveryStatus::Pending),
            "pending returns only pending deliveries",
        );
        ck.that(
            all.windows(2)
                .all(|w| (w[0].endpoint, w[0].seq) < (w[1].endpoint, w[1].seq)),
            "pending is ordered by (endpoint, seq)",
        );
        let mut want = vec![
            a_all[1].clone(),
            a_all[2].clone(),
            b_all[1].clone(),
            b_all[0].clone(),
        ];
        if b < a {
            want.rotate_left(2);
        }
        let mine: Vec<Delivery> = all
            .iter()
            .filter(|d| d.endpoint == a || d.endpoint == b)
            .cloned()
            .collect();
        ck.eq("the pending deliveries of the check", mine, want);
        for limit in [0, 1, 2, 3, 5] {
            let page = ck.ok("pending", store.pending(limit));
            ck.eq(
                &format!("pending({limit})"),
                page,
                all.iter().take(limit).cloned().collect::<Vec<_>>(),
            );
        }
    }

    /// `save_delivery` inserts or replaces one delivery, read back exactly by `delivery`
    /// (its attempts with statuses and errors, its next attempt time).
    pub fn check_save_and_get_delivery<S: Store + DeliveryStore>(store: &S) {
        let ck = Ck::new("check_save_and_get_delivery", store);
        let t = t0() + Duration::milliseconds(3);
        let ep = EndpointId::generate();
        ck.eq("an unknown delivery", ck.delivery(ep, 1), None);
        ck.eq("an unknown seq", ck.delivery(ep, u64::MAX), None);
        let mut d = pending(ep, 7, t);
        d.session_id = None;
        ck.ok("save_delivery (insert)", store.save_delivery(&d));
        ck.eq("a delivery saved", ck.delivery(ep, 7), Some(d.clone()));
        d.attempts.push(Attempt {
            at: t + Duration::milliseconds(1_001),
            status: Some(503),
            error: None,
        });
        d.attempts.push(Attempt {
            at: t + Duration::milliseconds(6_789),
            status: None,
            error: Some("connection refused — ☕ \"x\"".into()),
        });
        d.next_attempt_at = Some(t + Duration::milliseconds(306_789));
        ck.ok("save_delivery (retry)", store.save_delivery(&d));
        ck.eq("a delivery retried", ck.delivery(ep, 7), Some(d.clone()));
        let done = settled(d, DeliveryStatus::Delivered, t + Duration::seconds(400));
        ck.ok("save_delivery (delivered)", store.save_delivery(&done));
        ck.eq(
            "a delivery delivered",
            ck.delivery(ep, 7),
            Some(done.clone()),
        );
        ck.eq("the log", ck.log(ep), vec![done]);
        let pending_now = ck.ok("pending", store.pending(usize::MAX));
        ck.that(
            pending_now.iter().all(|d| d.endpoint != ep),
            "a delivered delivery is not pending",
        );
    }

    /// `deliveries`: an endpoint's whole log by seq, whatever the statuses; none of
    /// another endpoint's.
    pub fn check_deliveries_log<S: Store + DeliveryStore>(store: &S) {
        let ck = Ck::new("check_deliveries_log", store);
        let t = t0() + Duration::milliseconds(4);
        let (a, b) = (EndpointId::generate(), EndpointId::generate());
        ck.eq("the log of an unknown endpoint", ck.log(a), vec![]);
        let a3 = pending(a, 3, t);
        let a1 = settled(pending(a, 1, t), DeliveryStatus::Delivered, t);
        let a2 = settled(pending(a, 2, t), DeliveryStatus::Failed, t);
        let b2 = pending(b, 2, t);
        ck.schedule(a, 3, std::slice::from_ref(&a3));
        ck.schedule(b, 2, std::slice::from_ref(&b2));
        ck.ok("save_delivery", store.save_delivery(&a2));
        ck.ok("save_delivery", store.save_delivery(&a1));
        ck.eq("the log of a", ck.log(a), vec![a1, a2, a3]);
        ck.eq("the log of b", ck.log(b), vec![b2]);
    }

    /// Answers 500 to the first attempt of each event, then 200; records every request.
    #[derive(Default)]
    struct FlakySender {
        seen: Mutex<Vec<(String, String, u16)>>,
    }

    impl WebhookSender for FlakySender {
        fn send(&self, url: &str, headers: &[(&'static str, String)], _body: &str) -> SendOutcome {
            let id = headers
                .iter()
                .find(|(name, _)| *name == crate::webhook::HEADER_ID)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let status = if seen.iter().any(|(u, i, _)| u == url && *i == id) {
                200
            } else {
                500
            };
            seen.push((url.to_owned(), id, status));
            SendOutcome::Status(status)
        }
    }

    /// A dispatcher stopped with deliveries being retried, and a new one over the same
    /// store, deliver each event once: scheduled once, retried with the same `webhook-id`,
    /// nothing lost or repeated.
    pub fn check_dispatcher_resumes<S: Store + DeliveryStore>(store: &S) {
        let ck = Ck::new("check_dispatcher_resumes", store);
        // Later than every other check's events: the endpoint gets only this check's.
        let start = t0() + Duration::days(3_650) + Duration::milliseconds(9);
        let clock = ManualClock::new(start);
        let sender = FlakySender::default();
        let url = format!("https://resume.example/{}", EndpointId::generate());
        let ep = Endpoint::new(url.clone(), secret(3), start).expect("endpoint");
        let cursor = ck.last_seq();
        let checkout =
            Checkout::new(store, super::rates(), TestRequestGenerator).with_clock(&clock);
        let first = Dispatcher::new(store, &sender, &clock);
        ck.svc("add_endpoint", first.add_endpoint(&ep));
        let s = ck.svc(
            "create",
            checkout.create(SessionParams::new(dollars(100), usd()), None),
        );
        let report = ck.svc("run_once", first.run_once());
        ck.that(report.scheduled >= 1, "the dispatcher scheduled the events");
        drop(first);
        let hash = TestRequestGenerator::payment_hash(s.payments()[0].id());
        ck.svc(
            "pay",
            checkout.record_transfer(TransferReport::lightning(
                hash,
                s.payments()[0].target_msats(),
            )),
        );
        let second = Dispatcher::new(store, &sender, &clock);
        for _ in 0..30 {
            clock.advance(Duration::minutes(1));
            ck.svc("run_once", second.run_once());
        }
        let outbox: Vec<Event> = ck
            .events_since(cursor)
            .into_iter()
            .filter(|e| e.event.created >= ep.created)
            .map(|e| e.event)
            .collect();
        let log = ck.ok("deliveries", store.deliveries(ep.id));
        ck.eq(
            "the delivered events",
            log.iter().map(|d| d.event_id).collect::<Vec<_>>(),
            outbox.iter().map(|e| e.id).collect::<Vec<_>>(),
        );
        ck.that(
            log.iter()
                .all(|d| d.status == DeliveryStatus::Delivered && d.attempts.len() == 2),
            format!("every event delivered on its second attempt: {log:?}"),
        );
        let seen = sender
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for e in &outbox {
            let tries: Vec<u16> = seen
                .iter()
                .filter(|(u, id, _)| *u == url && *id == e.id.to_string())
                .map(|(_, _, status)| *status)
                .collect();
            ck.eq(&format!("the requests for {}", e.id), tries, vec![500, 200]);
        }
    }
}

// ---- address indexes ---------------------------------------------------------------------

/// Runs every [`AddressIndex`] check, each on a fresh index
/// from `fresh`, then all of them on one more. Panics on the first violation.
pub fn run_address_index<I: AddressIndex>(fresh: impl FnMut() -> I) {
    let all: Vec<(&'static str, Check<I>)> = vec![
        (
            "check_address_index_sequence",
            check_address_index_sequence::<I>,
        ),
        (
            "check_address_index_threads",
            check_address_index_threads::<I>,
        ),
    ];
    run_checks(&all, fresh);
}

/// A descriptor no other check uses.
fn fresh_descriptor() -> String {
    format!(
        "wpkh([d34db33f/84'/1'/0']tpubD6NzVbkrYhZ4X/0/*)#{}",
        EventId::generate()
    )
}

#[track_caller]
fn reserve<I: AddressIndex>(name: &str, index: &I, descriptor: &str) -> u32 {
    index
        .reserve(descriptor)
        .unwrap_or_else(|e| panic!("{name}: reserve: unexpected error: {e:?}"))
}

/// A new descriptor starts at index 0 and each reservation gives the next one; each
/// descriptor counts on its own.
pub fn check_address_index_sequence<I: AddressIndex>(index: &I) {
    let name = "check_address_index_sequence";
    let (a, b) = (fresh_descriptor(), fresh_descriptor());
    let got: Vec<u32> = (0..3).map(|_| reserve(name, index, &a)).collect();
    assert_eq!(got, [0, 1, 2], "{name}: the first reservations");
    assert_eq!(reserve(name, index, &b), 0, "{name}: another descriptor");
    assert_eq!(reserve(name, index, &a), 3, "{name}: the first one again");
    assert_eq!(reserve(name, index, &b), 1, "{name}: the other again");
}

/// 8 threads reserving 100 indexes each of one descriptor get 800 distinct indexes:
/// exactly 0 to 799.
pub fn check_address_index_threads<I: AddressIndex>(index: &I) {
    const THREADS: u32 = 8;
    const EACH: u32 = 100;
    let name = "check_address_index_threads";
    let descriptor = fresh_descriptor();
    let barrier = Barrier::new(THREADS as usize);
    let all: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (barrier, descriptor) = (&barrier, &descriptor);
                scope.spawn(move || {
                    barrier.wait();
                    (0..EACH)
                        .map(|_| reserve(name, index, descriptor))
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a reserving thread panicked"))
            .collect()
    });
    let distinct: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "{name}: an index was reserved twice"
    );
    assert_eq!(
        distinct,
        (0..THREADS * EACH).collect::<BTreeSet<u32>>(),
        "{name}: the indexes reserved"
    );
}
