//! The PostgreSQL store: the conformance suite, the same behaviour as the in-memory store
//! call for call, what only a server-backed store has (lost connections, concurrent
//! migrations, credentials kept out of messages, closing) and many application servers
//! recording overlapping transfers at once.
//!
//! These tests need a server: `BITCOIN_CHECKOUT_PG` holds its connection string. Run
//! `scripts/test`, or `eval "$(scripts/postgres start)"` and then `cargo test`. Each test
//! works in schemas of its own, dropped when it ends.
#![cfg(all(feature = "postgres", feature = "testkit"))]

use crate::common;

use common::shuffle;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use bitcoin_checkout::clock::{Clock, ManualClock};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::rates::RateSource;
use bitcoin_checkout::request::{PaymentRequestGenerator, TestRequestGenerator};
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::session::{SessionChange, SessionUpdate};
use bitcoin_checkout::store::{
    Commit, IdempotencyRecord, ListQuery, MemoryStore, Page, PostgresStore, RoutingKey, Store,
    StoreError, StoredEvent,
};
use bitcoin_checkout::testkit::{ObservedStore, conformance};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, Event, EventId, EventType, Metadata, MetadataValue, Msats,
    PaymentHash, PaymentId, PaymentRequest, Sats, SessionId, SessionParams, SessionStatus,
    TargetCurrency, TransferKey, TransferReport,
};
use bitcoin_checkout::{OutPoint, Txid};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

// ---- fixtures ----------------------------------------------------------------------------

/// The test server's connection string; these tests fail (never skip) without one.
pub(super) fn pg_url() -> String {
    match std::env::var("BITCOIN_CHECKOUT_PG") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "BITCOIN_CHECKOUT_PG is not set: the PostgreSQL store tests need a server. \
             Run `scripts/test`, or `eval \"$(scripts/postgres start)\"` and then cargo test \
             (or BITCOIN_CHECKOUT_PG=\"$(scripts/postgres url)\" cargo test …)."
        ),
    }
}

static SCHEMA_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Schemas made by one test, dropped (with everything in them) when it ends.
pub(super) struct Schemas {
    names: Mutex<Vec<String>>,
}

impl Schemas {
    pub(super) fn new() -> Self {
        Self {
            names: Mutex::new(Vec::new()),
        }
    }

    /// A new, unused schema name.
    pub(super) fn fresh(&self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "t{}_{}_{}",
            std::process::id(),
            SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        self.names.lock().unwrap().push(name.clone());
        name
    }

    /// A store in a new schema.
    fn store(&self) -> PostgresStore {
        PostgresStore::connect_in_schema(&pg_url(), &self.fresh(), 2)
            .expect("connect to the test server")
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap());
        if names.is_empty() {
            return;
        }
        let sql: String = names
            .iter()
            .map(|n| format!("DROP SCHEMA IF EXISTS \"{n}\" CASCADE;"))
            .collect();
        // Best effort: a leftover schema only costs disk in a throwaway database.
        let _ = admin(&sql);
    }
}

/// Runs SQL on its own connection (for what the store does not expose), returning the
/// first column of each row as text.
pub(super) fn admin(sql: &str) -> Result<Vec<Option<String>>, tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let mut out = Vec::new();
        for msg in client.simple_query(sql).await? {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
                out.push(row.get(0).map(str::to_owned));
            }
        }
        Ok(out)
    })
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("valid time")
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

fn rates() -> FixedRates {
    FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000))
}

fn dollars(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// A 32-byte hash made from a session id and a number (txids of made-up transactions).
fn txid(session: SessionId, n: u8) -> Txid {
    let mut b = [n; 32];
    b[..16].copy_from_slice(session.as_uuid().as_bytes());
    Txid::from_byte_array(b)
}

fn first_hash(session: &CheckoutSession) -> PaymentHash {
    TestRequestGenerator::payment_hash(session.payments()[0].id())
}

fn is_retryable(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Store(s) if s.is_retryable())
}

/// Reads the whole outbox in pages, checking each page continues the last one without gaps.
fn read_outbox(store: &impl Store, page: usize) -> Vec<StoredEvent> {
    let mut all: Vec<StoredEvent> = Vec::new();
    loop {
        let batch = store
            .events_after(all.last().map(|e| e.seq), page)
            .expect("events_after");
        check_continues(all.last().map(|e| e.seq), &batch);
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// A page read after `cursor` must hold `cursor + 1`, `cursor + 2`, … with no gap.
fn check_continues(cursor: Option<u64>, batch: &[StoredEvent]) {
    for (expected, e) in (cursor.unwrap_or(0) + 1..).zip(batch) {
        assert_eq!(
            e.seq,
            expected,
            "outbox page after {cursor:?} skips or repeats a seq: {:?}",
            seqs(batch)
        );
    }
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

// ---- the conformance suite ---------------------------------------------------------------

#[test]
fn postgres_store_conforms() {
    let schemas = Schemas::new();
    let started = Instant::now();
    conformance::run_all(|| schemas.store());
    conformance::run_address_index(|| schemas.store());
    conformance::run_resume_store(|| schemas.store());
    conformance::run_links(|| schemas.store());
    #[cfg(feature = "webhooks")]
    conformance::run_delivery(|| schemas.store());
    eprintln!("conformance suite on PostgreSQL: {:?}", started.elapsed());
}

/// Derived addresses over the PostgreSQL index pass the address-source suite, reopened
/// (a new connection pool on the same schema) at every restart.
#[cfg(feature = "onchain")]
#[test]
fn postgres_derived_addresses_pass_the_address_source_suite() {
    use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses, Network};
    use bitcoin_checkout::testkit::ports::{self, AddressSubject};
    let schemas = Arc::new(Schemas::new());
    let schema = schemas.fresh();
    let subject = {
        let schemas = Arc::clone(&schemas);
        AddressSubject::new(move || {
            let _keep = &schemas;
            let store = PostgresStore::connect_in_schema(&pg_url(), &schema, 2)
                .expect("connect to the test server");
            DerivedAddresses::new(
                AddressDeriver::new(common::TEST_DESCRIPTOR, Network::Regtest).expect("descriptor"),
                store,
            )
        })
    };
    ports::run_address_source(&subject);
}

// ---- the same behaviour as the in-memory store, call for call ----------------------------

/// Applies every call to both stores and insists on the same answer.
struct Mirror<'a> {
    memory: MemoryStore,
    postgres: &'a PostgresStore,
}

impl Mirror<'_> {
    fn same<T: PartialEq + std::fmt::Debug>(&self, what: &str, m: T, p: T) -> T {
        assert_eq!(
            m, p,
            "{what}: the in-memory store (left) and PostgreSQL (right) differ"
        );
        m
    }
}

impl Store for Mirror<'_> {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        self.same("load", self.memory.load(id), self.postgres.load(id))
    }
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.same(
            "commit",
            self.memory.commit(commit),
            self.postgres.commit(commit),
        )
    }
    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
        self.same(
            "find_by_transfer",
            self.memory.find_by_transfer(key),
            self.postgres.find_by_transfer(key),
        )
    }
    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        self.same(
            "find_by_payment_hash",
            self.memory.find_by_payment_hash(hash),
            self.postgres.find_by_payment_hash(hash),
        )
    }
    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        self.same(
            "find_by_address",
            self.memory.find_by_address(address),
            self.postgres.find_by_address(address),
        )
    }
    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.same("list", self.memory.list(query), self.postgres.list(query))
    }
    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        self.same(
            "due",
            self.memory.due(now, limit),
            self.postgres.due(now, limit),
        )
    }
    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.same(
            "events_after",
            self.memory.events_after(after, limit),
            self.postgres.events_after(after, limit),
        )
    }
    fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.same(
            "events_before",
            self.memory.events_before(before, limit),
            self.postgres.events_before(before, limit),
        )
    }
    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.same("event", self.memory.event(id), self.postgres.event(id))
    }
    fn find_by_payment(&self, id: PaymentId) -> Result<Option<SessionId>, StoreError> {
        self.same(
            "find_by_payment",
            self.memory.find_by_payment(id),
            self.postgres.find_by_payment(id),
        )
    }
    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        self.same(
            "session_events",
            self.memory.session_events(id),
            self.postgres.session_events(id),
        )
    }
    fn held_transfers(
        &self,
        id: SessionId,
        limit: usize,
    ) -> Result<Vec<bitcoin_checkout::session::HeldTransfer>, StoreError> {
        self.same(
            "held_transfers",
            self.memory.held_transfers(id, limit),
            self.postgres.held_transfers(id, limit),
        )
    }
    fn prune_idempotency(&self, before: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
        self.same(
            "prune_idempotency",
            self.memory.prune_idempotency(before, limit),
            self.postgres.prune_idempotency(before, limit),
        )
    }
    fn prune_events(&self, through: u64, limit: usize) -> Result<usize, StoreError> {
        self.same(
            "prune_events",
            self.memory.prune_events(through, limit),
            self.postgres.prune_events(through, limit),
        )
    }
    fn prune_session_events(&self, id: SessionId, through: u64) -> Result<usize, StoreError> {
        self.same(
            "prune_session_events",
            self.memory.prune_session_events(id, through),
            self.postgres.prune_session_events(id, through),
        )
    }
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.same(
            "idempotency",
            self.memory.idempotency(key),
            self.postgres.idempotency(key),
        )
    }
    fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.same(
            "claim_idempotency",
            self.memory.claim_idempotency(record),
            self.postgres.claim_idempotency(record),
        )
    }
    fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        self.same(
            "release_idempotency",
            self.memory.release_idempotency(record),
            self.postgres.release_idempotency(record),
        )
    }
}

#[test]
fn behaves_like_the_memory_store() {
    let schemas = Schemas::new();
    let postgres = schemas.store();
    let mirror = Mirror {
        memory: MemoryStore::new(),
        postgres: &postgres,
    };
    // A clock with sub-millisecond digits: stores keep what the core truncates, and the
    // idempotency record's time to the millisecond (as every store does).
    let clock = Arc::new(ManualClock::new(t0() + Duration::nanoseconds(123_456_789)));
    let checkout =
        Checkout::new(&mirror, rates(), TestRequestGenerator).with_clock(Arc::clone(&clock));

    let mut ids = Vec::new();
    for i in 0..7_i64 {
        let params =
            SessionParams::new(dollars(1_000 + i * 100), usd()).description(format!("order {i}"));
        let key = format!("order-{i}");
        let s = checkout.create(params.clone(), Some(&key)).expect("create");
        // The same key again replays the session.
        assert_eq!(
            checkout.create(params, Some(&key)).expect("replay").id(),
            s.id()
        );
        ids.push(s.id());
        // Two sessions within one millisecond, the rest a second apart.
        if i != 2 {
            clock.advance(Duration::seconds(1));
        }
    }
    assert!(matches!(
        checkout.create(SessionParams::new(dollars(1), usd()), Some("order-0")),
        Err(ServiceError::IdempotencyConflict)
    ));

    // Funds: Lightning, on-chain pending then confirmed, a duplicate, an overpayment.
    let s0 = checkout.get(ids[0]).expect("get");
    checkout
        .record_transfer(TransferReport::lightning(
            first_hash(&s0),
            Msats::new(4_000_000),
        ))
        .expect("lightning");
    let addr = TestRequestGenerator::address(ids[0]);
    let chain = |n: u8, conf: u32| {
        TransferReport::onchain(
            OutPoint::new(txid(ids[0], n), 0),
            addr.clone(),
            Sats::new(3_000),
        )
        .confirmations(conf)
    };
    checkout.record_transfer(chain(1, 0)).expect("pending");
    checkout.record_transfer(chain(1, 0)).expect("duplicate");
    checkout.record_transfer(chain(1, 1)).expect("confirmed");
    checkout.record_transfer(chain(2, 1)).expect("paid");
    checkout.record_transfer(chain(3, 1)).expect("overpaid");
    assert_eq!(
        checkout.get(ids[0]).expect("get").status(),
        SessionStatus::Paid
    );

    let s1 = checkout.get(ids[1]).expect("get");
    checkout
        .record_transfer(TransferReport::lightning(
            first_hash(&s1),
            Msats::new(11_000_000),
        ))
        .expect("pay 1");
    checkout
        .update(ids[3], &SessionUpdate::new().description("changed"))
        .expect("update");
    checkout.deactivate(ids[4]).expect("deactivate");

    // Quotes run out: the sweep expires them (through `due`); a fetch re-issues one.
    clock.advance(Duration::hours(2));
    let swept = checkout.sweep(100).expect("sweep");
    assert!(!swept.updated.is_empty(), "nothing was due: {swept:?}");
    let s2 = checkout.get(ids[2]).expect("get");
    checkout
        .record_transfer(TransferReport::lightning(
            first_hash(&s2),
            Msats::new(1_000_000),
        ))
        .expect("paid after expiry");

    // Every read the contract has, compared.
    for id in &ids {
        mirror.load(*id).expect("load");
        mirror.session_events(*id).expect("timeline");
    }
    for status in [
        None,
        Some(SessionStatus::Active),
        Some(SessionStatus::Paid),
        Some(SessionStatus::Deactivated),
    ] {
        for limit in [1, 2, 3, 100] {
            let mut q = ListQuery::new().limit(limit);
            q.status = status;
            loop {
                let page = mirror.list(&q).expect("list");
                let Some(last) = page.data.last() else { break };
                let first = page.data[0].id();
                mirror
                    .list(&{
                        let mut previous = q.clone().ending_before(first);
                        previous.starting_after = None;
                        previous
                    })
                    .expect("previous page");
                if !page.has_more {
                    break;
                }
                q.starting_after = Some(last.id());
            }
        }
        // An unknown cursor: an empty page.
        mirror
            .list(&{
                let mut q = ListQuery::new().starting_after(SessionId::generate());
                q.status = status;
                q
            })
            .expect("unknown cursor");
        mirror
            .list(&{
                let mut q = ListQuery::new().ending_before(SessionId::generate());
                q.status = status;
                q
            })
            .expect("unknown cursor");
    }
    for minutes in [-10_000, 0, 30, 60, 600, 10_000] {
        for limit in [0, 1, 3, 100] {
            mirror
                .due(clock.now() + Duration::minutes(minutes), limit)
                .expect("due");
        }
    }
    let total = mirror.events_after(None, 10_000).expect("all events").len() as u64;
    assert!(total > 20, "only {total} events");
    for after in [
        None,
        Some(0),
        Some(1),
        Some(total / 2),
        Some(total),
        Some(total + 5),
        Some(u64::MAX),
    ] {
        for limit in [0, 1, 7, 1_000] {
            mirror.events_after(after, limit).expect("events_after");
        }
    }
    for key in ["order-0", "order-6", "nope"] {
        mirror.idempotency(key).expect("idempotency");
    }
    mirror.find_by_address(&addr).expect("address");
    mirror.find_by_address("bcrt1qnope").expect("address");
    mirror
        .find_by_transfer(&TransferKey::Onchain(OutPoint::new(txid(ids[0], 2), 0)))
        .expect("transfer");
    mirror.find_by_payment_hash(&first_hash(&s1)).expect("hash");
}

// ---- focused tests -----------------------------------------------------------------------

/// A new session with its first quote (payment `payment`; the test generator's request
/// unless `request` is given), and the insert that stores it.
fn quoted_session(
    payment: PaymentId,
    request: Option<PaymentRequest>,
) -> (CheckoutSession, Commit) {
    let (mut s, mut change) = CheckoutSession::create(
        SessionId::generate(),
        SessionParams::new(dollars(2_500), usd()),
        t0(),
    )
    .expect("core create");
    let rate = rates()
        .rate(usd(), TargetCurrency::Sats, t0())
        .expect("rate");
    let terms = s.next_quote(payment, rate, t0()).expect("terms");
    let request =
        request.unwrap_or_else(|| TestRequestGenerator.generate(&s, &terms).expect("request"));
    change.merge(s.issue_quote(terms, request, t0()).expect("issue"));
    let commit = Commit::new(s.clone(), None, &change, envelopes(&change, &s));
    (s, commit)
}

/// The outbox envelopes of a change's events.
fn envelopes(change: &SessionChange, s: &CheckoutSession) -> Vec<Event> {
    change
        .events()
        .iter()
        .map(|e| Event::for_session(EventId::generate(), e, s))
        .collect()
}

/// A session with its first quote, committed; returns it as stored.
fn committed_session(store: &impl Store) -> CheckoutSession {
    let (s, commit) = quoted_session(PaymentId::generate(), None);
    store.commit(&commit).expect("insert");
    s
}

#[test]
fn transfers_invoices_and_addresses_have_one_owner() {
    let schemas = Schemas::new();
    let postgres = schemas.store();
    let mirror = Mirror {
        memory: MemoryStore::new(),
        postgres: &postgres,
    };
    let (a, insert_a) = quoted_session(PaymentId::generate(), None);
    mirror.commit(&insert_a).expect("insert a");
    let mut paid_a = a.clone();
    let report = TransferReport::lightning(first_hash(&a), Msats::new(1_000_000));
    let change = paid_a
        .record_transfer(report.clone(), t0() + Duration::seconds(1))
        .expect("core record");
    assert_eq!(change.transfers(), [report.key()]);
    mirror
        .commit(&Commit::new(
            paid_a.clone(),
            Some(a.version()),
            &change,
            envelopes(&change, &paid_a),
        ))
        .expect("record on a");

    // Session b reuses a's payment id (so its invoice hash) and a's address: refused, the
    // first claimer keeps the invoice and the address.
    let stolen = PaymentRequest {
        lightning: paid_a.payments()[0].request().lightning.clone(),
        onchain_address: Some(TestRequestGenerator::address(a.id())),
    };
    let (thief, insert_thief) = quoted_session(a.payments()[0].id(), Some(stolen));
    assert_eq!(
        mirror.commit(&insert_thief),
        Err(StoreError::KeyTaken {
            key: RoutingKey::PaymentHash(first_hash(&a)),
            holder: a.id()
        })
    );
    assert_eq!(mirror.load(thief.id()).expect("load"), None);
    assert_eq!(
        mirror.find_by_payment_hash(&first_hash(&a)).expect("hash"),
        Some(a.id())
    );
    assert_eq!(
        mirror
            .find_by_address(&TestRequestGenerator::address(a.id()))
            .expect("address"),
        Some(a.id())
    );
    // (A transfer claimed by a second session is refused the same way: see the
    // conformance check `check_keys_stay_with_their_first_session`.)
    let (b, insert_b) = quoted_session(PaymentId::generate(), None);
    mirror.commit(&insert_b).expect("insert b");
    assert_eq!(mirror.load(b.id()).expect("load"), Some(b.clone()));
    assert_eq!(
        mirror.find_by_transfer(&report.key()).expect("owner"),
        Some(a.id())
    );

    // A new session inserted with a transfer already recorded is indexed too (the insert
    // names all of the new session's payments and transfers: its creation, quote and
    // transfer changes merged).
    let (mut c, insert_c) = quoted_session(PaymentId::generate(), None);
    let report_c = TransferReport::lightning(first_hash(&c), Msats::new(2_000_000));
    let recorded = c
        .record_transfer(report_c.clone(), t0() + Duration::seconds(3))
        .expect("core record");
    let mut events = insert_c.events;
    events.extend(envelopes(&recorded, &c));
    let mut payments = insert_c.payments;
    for id in recorded.payments() {
        if !payments.contains(id) {
            payments.push(*id);
        }
    }
    mirror
        .commit(&Commit {
            session: c.clone(),
            expected_version: None,
            payments,
            transfers: recorded.transfers().to_vec(),
            events,
            held: None,
        })
        .expect("insert c");
    assert_eq!(
        mirror.find_by_transfer(&report_c.key()).expect("owner"),
        Some(c.id())
    );
    mirror.load(c.id()).expect("load c");
    mirror.events_after(None, 100).expect("outbox");
}

#[test]
fn a_conflicting_commit_writes_nothing() {
    let schemas = Schemas::new();
    let store = schemas.store();
    let s = committed_session(&store);
    let outbox_before = read_outbox(&store, 100);

    // A change computed from a stale version: a new transfer, events, a new quote hash.
    let mut changed = s.clone();
    let report = TransferReport::lightning(first_hash(&s), Msats::new(1_000_000));
    let change = changed
        .record_transfer(report.clone(), t0() + Duration::seconds(5))
        .expect("core record");
    let envelopes = envelopes(&change, &changed);
    let stale = Commit::new(
        changed.clone(),
        Some(s.version() + 1),
        &change,
        envelopes.clone(),
    );
    assert_eq!(store.commit(&stale), Err(StoreError::Conflict));
    // Inserting an existing session conflicts too. (Idempotency records are no longer part
    // of a commit: they are claimed with `claim_idempotency` before the session exists.)
    let reinsert = Commit {
        expected_version: None,
        ..stale.clone()
    };
    assert_eq!(store.commit(&reinsert), Err(StoreError::Conflict));
    // Nothing of either was written.
    assert_eq!(store.load(s.id()).expect("load"), Some(s.clone()));
    assert_eq!(store.find_by_transfer(&report.key()).expect("lookup"), None);
    assert_eq!(store.idempotency("k-reinsert").expect("idempotency"), None);
    assert_eq!(read_outbox(&store, 100), outbox_before);

    // The same change from the right version goes through, once.
    let good = Commit {
        expected_version: Some(s.version()),
        ..stale
    };
    store.commit(&good).expect("commit");
    assert_eq!(store.commit(&good), Err(StoreError::Conflict));
    assert_eq!(store.load(s.id()).expect("load"), Some(changed));
    assert_eq!(
        store.find_by_transfer(&report.key()).expect("lookup"),
        Some(s.id())
    );
    let outbox = read_outbox(&store, 2);
    assert_eq!(outbox.len(), outbox_before.len() + envelopes.len());
    let tail: Vec<_> = outbox[outbox_before.len()..]
        .iter()
        .map(|e| e.event.clone())
        .collect();
    assert_eq!(tail, envelopes, "events are stored in commit order");
}

#[test]
fn an_idempotency_key_is_used_once_and_its_time_kept_to_the_millisecond() {
    // Idempotency records are claimed before their session exists
    // (`Store::claim_idempotency`), and every store keeps their time in whole milliseconds.
    let schemas = Schemas::new();
    let store = schemas.store();
    let created = t0() + Duration::nanoseconds(987_654_321);
    let kept = t0() + Duration::milliseconds(987);
    let record_with = |key: &str| IdempotencyRecord {
        key: key.into(),
        request: r#"{"amount":1.00}"#.into(),
        session_id: SessionId::generate(),
        created,
    };
    let first = record_with("key-1");
    assert_eq!(store.claim_idempotency(&first).expect("first"), None);
    let first_kept = IdempotencyRecord {
        created: kept,
        ..first.clone()
    };
    let second = record_with("key-1");
    assert_eq!(
        store.claim_idempotency(&second).expect("second"),
        Some(first_kept.clone()),
        "the key is held by the first claim"
    );
    assert_eq!(
        store.load(second.session_id).expect("load"),
        None,
        "the losing claim wrote no session"
    );
    assert_eq!(store.idempotency("key-1").expect("get"), Some(first_kept));
    let long_key = "é".repeat(255);
    assert_eq!(
        store
            .claim_idempotency(&record_with(&long_key))
            .expect("long key"),
        None
    );
    assert_eq!(
        store
            .idempotency(&long_key)
            .expect("get")
            .map(|r| r.created),
        Some(kept)
    );
}

#[test]
fn lookups_list_and_due() {
    let schemas = Schemas::new();
    let store = schemas.store();
    let clock = Arc::new(ManualClock::new(t0()));
    let checkout =
        Checkout::new(&store, rates(), TestRequestGenerator).with_clock(Arc::clone(&clock));
    let mut sessions = Vec::new();
    for i in 0..5 {
        sessions.push(
            checkout
                .create(SessionParams::new(dollars(100 + i), usd()), None)
                .expect("create"),
        );
        clock.advance(Duration::milliseconds(1));
    }
    for s in &sessions {
        assert_eq!(
            store.find_by_payment_hash(&first_hash(s)).expect("hash"),
            Some(s.id())
        );
        assert_eq!(
            store
                .find_by_address(&TestRequestGenerator::address(s.id()))
                .expect("address"),
            Some(s.id())
        );
    }
    assert_eq!(
        store.find_by_address("bcrt1qunknown").expect("address"),
        None
    );
    let page = store.list(&ListQuery::new().limit(2)).expect("list");
    assert_eq!(
        page.data
            .iter()
            .map(CheckoutSession::id)
            .collect::<Vec<_>>(),
        vec![sessions[4].id(), sessions[3].id()]
    );
    assert!(page.has_more);
    // Quotes expire after the session ttl: then every session is due, oldest first.
    assert_eq!(
        store.due(clock.now(), 10).expect("due"),
        Vec::<SessionId>::new()
    );
    let later = clock.now() + Duration::days(1);
    let due = store.due(later, 3).expect("due");
    assert_eq!(
        due,
        sessions[..3]
            .iter()
            .map(CheckoutSession::id)
            .collect::<Vec<_>>()
    );
}

#[test]
fn calls_work_from_async_code_and_blocking_threads() {
    let schemas = Schemas::new();
    let store = Arc::new(schemas.store());
    let s = committed_session(&store);
    // Inside a current-thread runtime (blocking its only worker, but not panicking).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let loaded = rt
        .block_on(async { store.load(s.id()) })
        .expect("load in async");
    assert_eq!(loaded.map(|l| l.id()), Some(s.id()));
    // On the blocking pool of a multi-thread runtime, as `AsyncCheckout` does.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let found = rt.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..8 {
            let store = Arc::clone(&store);
            let id = s.id();
            handles.push(tokio::task::spawn_blocking(move || store.load(id)));
        }
        let mut n = 0;
        for h in handles {
            n += usize::from(h.await.expect("join").expect("load").is_some());
        }
        n
    });
    assert_eq!(found, 8);
}

#[test]
fn closing_refuses_later_calls() {
    let schemas = Schemas::new();
    let store = schemas.store();
    let s = committed_session(&store);
    store.close();
    assert_eq!(store.load(s.id()), Err(StoreError::Closed));
    assert_eq!(store.events_after(None, 10), Err(StoreError::Closed));
    assert_eq!(store.idempotency("x"), Err(StoreError::Closed));
    assert_eq!(store.migrate(), Err(StoreError::Closed));
    store.close(); // twice is fine
}

#[test]
fn the_password_never_shows() {
    let secret = "hunter2-Sup3rSecret";
    let schemas = Schemas::new();
    // Trust authentication ignores the password: the store connects.
    let store = PostgresStore::connect_in_schema(
        &format!("{} password={secret}", pg_url()),
        &schemas.fresh(),
        1,
    )
    .expect("connect");
    let debug = format!("{store:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(
        debug.contains("127.0.0.1") || debug.contains("host="),
        "{debug}"
    );
    drop(store);
    // Nobody listens on port 1: a retryable error, without the password.
    let err = PostgresStore::connect(&format!(
        "host=127.0.0.1 port=1 user=u password={secret} dbname=d"
    ))
    .expect_err("nothing listens on port 1");
    assert!(err.is_retryable(), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
    // A malformed string: not retryable, and still no password (not even part of it).
    for bad in [
        format!("host=127.0.0.1 password='{secret}"),
        format!("host=127.0.0.1 password={secret} bogus"),
        format!("postgres://u:{secret}@127.0.0.1:notaport/d"),
    ] {
        let err = PostgresStore::connect(&bad).expect_err("malformed");
        assert!(!err.is_retryable(), "{err:?}");
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("Sup3r") && !text.contains("hunter2"),
            "{text}"
        );
    }
    assert!(PostgresStore::connect_in_schema(&pg_url(), "bad-name; DROP", 1).is_err());
}

#[test]
fn lost_connections_are_replaced() {
    let schemas = Schemas::new();
    let schema = schemas.fresh();
    let app = format!("bc_{schema}");
    let store = PostgresStore::connect_in_schema(
        &format!("{} application_name={app}", pg_url()),
        &schema,
        2,
    )
    .expect("connect");
    let clock = Arc::new(ManualClock::new(t0()));
    let checkout =
        Checkout::new(&store, rates(), TestRequestGenerator).with_clock(Arc::clone(&clock));
    let s = checkout
        .create(SessionParams::new(dollars(1_000), usd()), None)
        .expect("create");
    let kill = || {
        let killed = admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
        ))
        .expect("terminate");
        assert!(!killed.is_empty(), "no connection of the store was found");
        // Let the store's connection tasks see the sockets close.
        std::thread::sleep(StdDuration::from_millis(100));
    };
    for round in 0..3 {
        kill();
        // Reads are re-run on a new connection; a call may at worst fail retryably.
        match store.load(s.id()) {
            Ok(found) => assert!(found.is_some()),
            Err(e) => assert!(e.is_retryable(), "round {round}: {e:?}"),
        }
        assert!(store.load(s.id()).expect("load after reconnect").is_some());
        kill();
        // Commits through the service (which retries retryable errors).
        let report = TransferReport::onchain(
            OutPoint::new(txid(s.id(), round), 0),
            TestRequestGenerator::address(s.id()),
            Sats::new(1_000),
        )
        .confirmations(1);
        checkout
            .record_transfer(report)
            .expect("record after reconnect");
    }
    assert_eq!(checkout.get(s.id()).expect("get").transfers().count(), 3);
    let outbox = read_outbox(&store, 3);
    assert_eq!(
        outbox
            .iter()
            .filter(|e| e.event.event_type == EventType::TransferReceived)
            .count(),
        3
    );
}

#[test]
fn servers_starting_together_migrate_once() {
    let schemas = Schemas::new();
    let schema = schemas.fresh();
    let url = pg_url();
    let stores: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| PostgresStore::connect_in_schema(&url, &schema, 1)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for s in &stores {
        assert!(s.is_ok(), "{s:?}");
    }
    let versions = admin(&format!(
        "SELECT version::text FROM \"{schema}\".schema_migrations ORDER BY version"
    ))
    .expect("query");
    // Each migration applied once.
    assert_eq!(
        versions,
        [
            "1", "10", "11", "12", "2", "3", "4", "5", "6", "7", "8", "9"
        ]
        .map(|v| Some(v.to_owned()))
        .to_vec()
    );
    // A database migrated by a newer crate is refused rather than misread.
    admin(&format!(
        "INSERT INTO \"{schema}\".schema_migrations (version, applied_at) VALUES (999, 0)"
    ))
    .expect("insert");
    let err = PostgresStore::connect_in_schema(&url, &schema, 1).expect_err("newer schema");
    assert!(
        !err.is_retryable() && err.to_string().contains("999"),
        "{err}"
    );
}

// ---- many application servers at once -----------------------------------------------------

/// Every transfer of one session in the concurrency tests: one Lightning payment to its
/// first quote and four on-chain outputs, 12,000 sats for a 10,000 sats price.
fn transfers_for(session: &CheckoutSession) -> Vec<TransferReport> {
    let mut out = vec![TransferReport::lightning(
        first_hash(session),
        Msats::new(2_000_000),
    )];
    for n in 0..4u8 {
        out.push(
            TransferReport::onchain(
                OutPoint::new(txid(session.id(), n), u32::from(n)),
                TestRequestGenerator::address(session.id()),
                Sats::new(2_500),
            )
            .confirmations(1),
        );
    }
    out
}

/// Polls the outbox until `done`, checking every reading continues the previous one.
fn watch_outbox(store: &PostgresStore, done: &AtomicBool) -> (usize, u64) {
    let mut cursor = None;
    let mut readings = 0;
    loop {
        let finished = done.load(Ordering::SeqCst);
        loop {
            let batch = store.events_after(cursor, 7).expect("events_after");
            readings += 1;
            check_continues(cursor, &batch);
            match batch.last() {
                Some(last) => cursor = Some(last.seq),
                None => break,
            }
        }
        if finished {
            return (readings, cursor.unwrap_or(0));
        }
        std::thread::sleep(StdDuration::from_millis(2));
    }
}

/// Checks the end state after many writers: each distinct transfer counted once, one
/// `checkout_session.paid` per session, a gap-free outbox.
fn check_end_state(store: &PostgresStore, sessions: &[SessionId]) {
    let outbox = read_outbox(store, 50);
    let mut received: BTreeMap<SessionId, usize> = BTreeMap::new();
    let mut paid: BTreeMap<SessionId, usize> = BTreeMap::new();
    for e in &outbox {
        let Some(id) = e.event.session_id else {
            continue;
        };
        match e.event.event_type {
            EventType::TransferReceived => *received.entry(id).or_default() += 1,
            EventType::CheckoutSessionPaid => *paid.entry(id).or_default() += 1,
            _ => {}
        }
    }
    for id in sessions {
        let s = store.load(*id).expect("load").expect("session exists");
        let expected: BTreeSet<TransferKey> =
            transfers_for(&s).iter().map(TransferReport::key).collect();
        let got: BTreeSet<TransferKey> = s.transfers().map(|t| t.key).collect();
        assert_eq!(got, expected, "{id}: the transfers recorded");
        let msats: u64 = s.transfers().map(|t| t.amount.get()).sum();
        assert_eq!(msats, 12_000_000, "{id}: each transfer counted once");
        assert_eq!(s.status(), SessionStatus::Paid, "{id}");
        assert_eq!(
            received.get(id),
            Some(&5),
            "{id}: one transfer_received per transfer"
        );
        assert_eq!(
            paid.get(id),
            Some(&1),
            "{id}: exactly one checkout_session.paid"
        );
        let timeline = store.session_events(*id).expect("timeline");
        assert!(
            timeline.windows(2).all(|w| w[0].seq < w[1].seq),
            "{id}: timeline in order"
        );
    }
}

#[test]
fn many_servers_record_overlapping_transfers() {
    const WORKERS: u64 = 8;
    const SESSIONS: usize = 8;
    let started = Instant::now();
    let schemas = Schemas::new();
    let schema = schemas.fresh();
    let url = pg_url();
    let setup = PostgresStore::connect_in_schema(&url, &schema, 2).expect("connect");
    let clock = Arc::new(ManualClock::new(t0()));
    let checkout =
        Checkout::new(&setup, rates(), TestRequestGenerator).with_clock(Arc::clone(&clock));
    let sessions: Vec<CheckoutSession> = (0..SESSIONS)
        .map(|_| {
            checkout
                .create(
                    common::uncapped(SessionParams::new(dollars(1_000), usd())),
                    None,
                )
                .expect("create")
        })
        .collect();
    let ids: Vec<SessionId> = sessions.iter().map(CheckoutSession::id).collect();
    let done = AtomicBool::new(false);
    let conflicts = AtomicU32::new(0);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch_outbox(&setup, &done));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (url, schema, sessions, clock, conflicts) =
                    (&url, &schema, &sessions, &clock, &conflicts);
                scope.spawn(move || {
                    // Each worker is an application server: its own store and service.
                    let store = ObservedStore::new(
                        PostgresStore::connect_in_schema(url, schema, 2).expect("connect"),
                    )
                    .on_commit(|_, result| {
                        if *result == Err(StoreError::Conflict) {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    let checkout = Checkout::new(store, rates(), TestRequestGenerator)
                        .with_clock(Arc::clone(clock))
                        .with_max_attempts(1_000);
                    let mut reports: Vec<TransferReport> =
                        sessions.iter().flat_map(transfers_for).collect();
                    shuffle(&mut reports, w + 1);
                    // Some reports twice (webhook redeliveries).
                    let again: Vec<_> = reports.iter().step_by(3).cloned().collect();
                    reports.extend(again);
                    for r in reports {
                        loop {
                            match checkout.record_transfer(r.clone()) {
                                Ok(_) => break,
                                Err(e) if is_retryable(&e) => {}
                                Err(e) => panic!("worker {w}: {e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        // Every worker is joined and the watcher stopped before a worker's panic is passed
        // on (the watcher would otherwise poll forever and the test hang).
        let joined: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        done.store(true, Ordering::SeqCst);
        let (readings, last) = watcher.join().expect("watcher");
        for w in joined {
            w.expect("worker");
        }
        eprintln!("outbox watcher: {readings} readings up to seq {last}");
    });
    check_end_state(&setup, &ids);
    eprintln!(
        "{WORKERS} servers, {SESSIONS} sessions: {:?} ({} commits refused by compare-and-swap)",
        started.elapsed(),
        conflicts.load(Ordering::Relaxed)
    );
}

/// The lookup filters' statements can be answered from their indexes (issue #13: a shop's
/// lookup by order number must not read every session). With sequential scans priced out,
/// the plan of each statement shape `store::list_sql` builds names the index.
#[test]
fn the_lookup_filters_can_use_their_indexes_on_postgres() {
    let schemas = Schemas::new();
    let name = schemas.fresh();
    let store = PostgresStore::connect_in_schema(&pg_url(), &name, 2).expect("connect");
    for (sql, index) in [
        (
            "SELECT s.id FROM session_metadata m CROSS JOIN sessions s \
             WHERE 1 = 1 AND m.key = 'order' AND m.value = '1001' AND s.id = m.session_id \
             ORDER BY s.created DESC, s.id DESC LIMIT 11",
            "session_metadata_pkey",
        ),
        (
            "SELECT s.id FROM sessions s WHERE 1 = 1 AND s.source_id = 'wc_1001' \
             ORDER BY s.created DESC, s.id DESC LIMIT 11",
            "sessions_by_source",
        ),
    ] {
        let plan: Vec<String> = admin(&format!(
            "SET search_path TO \"{name}\"; SET enable_seqscan = off; EXPLAIN {sql}"
        ))
        .expect("explain")
        .into_iter()
        .flatten()
        .collect();
        assert!(plan.iter().any(|l| l.contains(index)), "{sql}: {plan:#?}");
        assert!(
            !plan.iter().any(|l| l.contains("Seq Scan")),
            "{sql}: {plan:#?}"
        );
    }
    store.close();
}

/// Migration 5 fills the lookup columns and the metadata table from sessions stored
/// before it (a database of migration 4 upgraded in place): found by `source_id` and by
/// metadata, a number value by its exact text.
#[test]
fn sessions_stored_before_migrations_5_and_6_are_found_by_the_lookups() {
    let schemas = Schemas::new();
    let name = schemas.fresh();
    let store = PostgresStore::connect_in_schema(&pg_url(), &name, 2).expect("connect");
    let clock = Arc::new(ManualClock::new(t0()));
    let checkout =
        Checkout::new(&store, rates(), TestRequestGenerator).with_clock(Arc::clone(&clock));
    let metadata = Metadata::from_pairs([
        ("order", MetadataValue::from("1001")),
        ("weight", MetadataValue::Number("12.50".into())),
    ])
    .expect("metadata");
    let params = SessionParams::new(dollars(700), usd())
        .source("shop", "wc_1001")
        .metadata(metadata);
    let session = checkout.create(params, None).expect("create");
    // And one overpaid: flagged money, which must be in the review queue after migration 6.
    let over = checkout
        .create(SessionParams::new(dollars(100), usd()), None)
        .expect("create");
    let quote = over.open_payment().expect("a quote");
    let over = checkout
        .record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            Msats::new(quote.target_msats().get() * 2),
        ))
        .expect("overpaid");
    assert!(over.has_unresolved_flags());
    drop(checkout);
    store.close();
    // Back to the schema of migration 4, keeping the sessions.
    admin(&format!(
        "SET search_path TO \"{name}\";
         DROP TABLE session_metadata;
         DROP TRIGGER sessions_metadata_insert ON sessions;
         DROP TRIGGER sessions_metadata_update ON sessions;
         DROP FUNCTION session_metadata_sync();
         ALTER TABLE sessions DROP COLUMN source_id, DROP COLUMN metadata, DROP COLUMN review;
         DROP TABLE resume_points;
         DROP INDEX payments_by_id, events_by_id;
         ALTER TABLE sessions DROP COLUMN livemode;
         ALTER TABLE links DROP COLUMN created, DROP COLUMN kind, DROP COLUMN livemode;
         ALTER TABLE events DROP COLUMN object_version;
         ALTER TABLE events DROP COLUMN carrier, DROP COLUMN part;
         DROP TABLE held_transfers;
         DROP INDEX idempotency_by_created;
         DELETE FROM schema_migrations WHERE version >= 5;"
    ))
    .expect("downgrade");
    let store = PostgresStore::connect_in_schema(&pg_url(), &name, 2).expect("upgrade");
    for query in [
        ListQuery::new().source_id("wc_1001"),
        ListQuery::new().metadata("order", "1001"),
        ListQuery::new().metadata("weight", "12.50"),
    ] {
        let found = store.list(&query).expect("list").data;
        assert_eq!(found, vec![session.clone()], "{query:?}");
    }
    let queue = store
        .list(&ListQuery::new().unresolved_flags())
        .expect("list")
        .data;
    assert_eq!(queue, vec![over], "migration 6 fills the review queue");
    store.close();
}

/// The service against the reference model over PostgreSQL: 256 cases, each on a store in
/// a fresh schema.
#[cfg(feature = "testkit")]
#[test]
fn the_service_over_postgres_behaves_like_the_model() {
    let schemas = Schemas::new();
    bitcoin_checkout::testkit::service::check_store(|| schemas.store(), 256);
}
