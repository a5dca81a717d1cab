//! Checks of single sessions: loading, round trips, version and insert conflicts,
//! idempotency, lookups and transfer updates.

use std::sync::Barrier;

use rust_decimal::Decimal;
use time::Duration;

use super::fixtures::{Ck, Draft, dollars, fresh_hash, fresh_txid, t0, usd};
use crate::chain::OutPoint;
use crate::id::{EventId, SessionId};
use crate::metadata::{Metadata, MetadataValue};
use crate::money::{Currency, Msats, Sats, TargetCurrency};
use crate::outbox::Event;
use crate::request::{Hash32, TestRequestGenerator};
use crate::session::{Branding, CheckoutSession, SessionParams, SessionStatus, SessionUpdate};
use crate::store::{Commit, IdempotencyRecord, Store};
use crate::transfer::{ConfirmationPolicy, PaymentMethod, TransferKey, TransferReport};

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
    let pending = TransferReport::onchain(
        OutPoint::new(fresh_txid(), 0),
        d.address(),
        Sats::new(3_000),
    );
    d.record(pending.signals_rbf(true), t1);
    let reversed = TransferReport::onchain(
        OutPoint::new(fresh_txid(), 1),
        d.address(),
        Sats::new(4_000),
    )
    .confirmations(2);
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
    let part = TransferReport::onchain(
        OutPoint::new(fresh_txid(), 0),
        gone.address(),
        Sats::new(10_000),
    )
    .confirmations(1);
    gone.record(part, t + Duration::seconds(1));
    gone.deactivate(t + Duration::seconds(2));
    let late = TransferReport::onchain(
        OutPoint::new(fresh_txid(), 3),
        gone.address(),
        Sats::new(1_000),
    )
    .confirmations(6);
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
    let report = TransferReport::onchain(
        OutPoint::new(fresh_txid(), 0),
        stale.address(),
        Sats::new(2_000),
    )
    .confirmations(1);
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
/// whatever it asks for; keys are compared exactly (case, Unicode). `release_idempotency`
/// removes the exact record held and nothing else.
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
    ck.eq("events after claims", ck.events_since(cursor).len(), 0);
    ck.eq(
        "idempotency of a key differing in case",
        ck.ok("idempotency", store.idempotency(&key.to_uppercase())),
        None,
    );
    // Sub-millisecond parts are not kept: every store keeps milliseconds.
    let fine = IdempotencyRecord {
        key: format!("{key}-ns"),
        created: t + Duration::nanoseconds(123_456),
        ..record.clone()
    };
    ck.eq(
        "claim of a record with a sub-millisecond time",
        ck.ok("claim_idempotency", store.claim_idempotency(&fine)),
        None,
    );
    ck.eq(
        "its time read back in whole milliseconds",
        ck.ok("idempotency", store.idempotency(&fine.key))
            .map(|r| r.created),
        Some(t),
    );

    // Releasing: only the exact record held is removed.
    let stranger = IdempotencyRecord {
        session_id: SessionId::generate(),
        ..record.clone()
    };
    ck.ok(
        "release_idempotency of another claim",
        store.release_idempotency(&stranger),
    );
    ck.eq(
        "the record after releasing another claim",
        ck.ok("idempotency", store.idempotency(&key)),
        Some(record.clone()),
    );
    ck.ok("release_idempotency", store.release_idempotency(&record));
    ck.eq(
        "the record after its release",
        ck.ok("idempotency", store.idempotency(&key)),
        None,
    );
    ck.eq(
        "a new claim of a released key",
        ck.ok("claim_idempotency", store.claim_idempotency(&duplicate)),
        None,
    );
    ck.eq(
        "the new record",
        ck.ok("idempotency", store.idempotency(&key)),
        Some(duplicate),
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
    let winners: Vec<usize> = (0..records.len())
        .filter(|&i| results[i].is_none())
        .collect();
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
    let onchain = TransferReport::onchain(
        OutPoint::new(fresh_txid(), 5),
        a.address(),
        Sats::new(1_000),
    );
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
    let for_b = TransferReport::onchain(
        OutPoint::new(fresh_txid(), 0),
        b.address(),
        Sats::new(1_000),
    )
    .confirmations(1);
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
    let txid = fresh_txid();
    let address = d.address();
    let report = |confirmations| {
        TransferReport::onchain(OutPoint::new(txid, 0), address.clone(), sats)
            .confirmations(confirmations)
    };
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
    ck.eq(
        "fixture: changed transfers",
        d.change.transfers().to_vec(),
        vec![key],
    );
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
