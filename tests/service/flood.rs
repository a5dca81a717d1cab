//! A flood of dust payments to one session: every transfer is recorded once (beyond the
//! cap, held apart and flagged), reports repeated or racing count nothing twice, and the
//! session keeps only its capped transfers (what it costs to load; the figures are in
//! `benches/flood.rs`).

use std::sync::Arc;

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::session::{DEFAULT_MAX_TRANSFERS, FlagKind};
use bitcoin_checkout::store::{MemoryStore, SqliteStore, Store};
use bitcoin_checkout::*;

use crate::common::*;

fn shop<S: Store>(store: S) -> Checkout<S, FixedRates, TestRequestGenerator> {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    Checkout::new(store, rates, TestRequestGenerator)
}

fn session<S: Store>(checkout: &Checkout<S, FixedRates, TestRequestGenerator>) -> CheckoutSession {
    let params = SessionParams::new(dec("500.00"), usd())
        .payment_methods([PaymentMethod::Onchain])
        .confirmations(ConfirmationPolicy::from_confirmations(0).unwrap());
    checkout.create(params, None).unwrap()
}

fn dust(s: &CheckoutSession, n: u32) -> TransferReport {
    let address = s.onchain_address().unwrap().to_owned();
    TransferReport::onchain(OutPoint::new(txid(n), n % 3), address, Sats::new(546))
}

/// Floods `s` with `n` dust transfers, each reported twice (the second time after the
/// whole flood, as a slow rail would repeat it), and checks what was recorded.
fn flood_and_check<S: Store>(checkout: &Checkout<S, FixedRates, TestRequestGenerator>, n: u32) {
    let s = session(checkout);
    for i in 0..n {
        checkout.record_transfer(dust(&s, i)).unwrap();
    }
    let before = checkout.store().load(s.id()).unwrap().unwrap();
    for i in 0..n {
        checkout.record_transfer(dust(&s, i)).unwrap();
    }
    let after = checkout.store().load(s.id()).unwrap().unwrap();
    assert_eq!(
        after.version(),
        before.version(),
        "repeated reports change nothing"
    );
    let kept = DEFAULT_MAX_TRANSFERS as usize;
    assert_eq!(after.transfers().count(), kept);
    let held = u64::from(n) - kept as u64;
    assert_eq!(after.held_transfers().count, held);
    assert_eq!(
        after.held_transfers().amount,
        Msats::new(held * 546_000),
        "every held transfer summed once"
    );
    assert_eq!(after.flagged(FlagKind::Held), Msats::new(held * 546_000));
    assert_eq!(
        after.totals().counted,
        Msats::new(kept as u64 * 546_000),
        "held money never counts"
    );
    let listed = checkout.store().held_transfers(s.id(), usize::MAX).unwrap();
    assert_eq!(listed.len() as u64, held);
    let first_held = dust(&s, u32::try_from(kept).unwrap()).key();
    assert_eq!(listed[0].key, first_held, "oldest first");
    // One flag event for the whole flood, not one per dust payment.
    let timeline = checkout.timeline(s.id()).unwrap();
    let held_events = timeline
        .iter()
        .filter(|e| e.event.event_type == EventType::TransfersHeld)
        .count();
    assert_eq!(held_events, 1);
    let m = checkout.metrics().snapshot();
    assert_eq!(m.transfers_recorded, kept as u64);
}

#[test]
fn ten_thousand_dust_transfers_on_the_memory_store_are_each_recorded_once() {
    flood_and_check(&shop(MemoryStore::new()), 10_000);
}

#[test]
fn two_thousand_dust_transfers_on_sqlite_are_each_recorded_once() {
    let dir = TempDir::new("flood");
    flood_and_check(
        &shop(SqliteStore::open(dir.file("flood.db")).unwrap()),
        2_000,
    );
}

#[test]
fn racing_reports_of_held_transfers_count_once() {
    let store = Arc::new(MemoryStore::new());
    let a = shop(Arc::clone(&store));
    let s = session(&a);
    for i in 0..DEFAULT_MAX_TRANSFERS {
        a.record_transfer(dust(&s, i)).unwrap();
    }
    // Four servers (no shared cache) report the same 50 held transfers at once.
    let servers: Vec<_> = (0..4).map(|_| shop(Arc::clone(&store))).collect();
    std::thread::scope(|scope| {
        for server in &servers {
            let s = &s;
            scope.spawn(move || {
                for i in DEFAULT_MAX_TRANSFERS..DEFAULT_MAX_TRANSFERS + 50 {
                    server.record_transfer(dust(s, i)).unwrap();
                }
            });
        }
    });
    let after = store.load(s.id()).unwrap().unwrap();
    assert_eq!(after.held_transfers().count, 50);
    assert_eq!(store.held_transfers(s.id(), 100).unwrap().len(), 50);
}

#[test]
fn a_finished_session_is_archived_and_late_funds_still_find_it() {
    use bitcoin_checkout::service::ServiceError;

    let checkout = shop(MemoryStore::new());
    let s = session(&checkout);
    assert!(matches!(
        checkout.archive(s.id(), u64::MAX),
        Err(ServiceError::NotArchivable {
            reason: "active",
            ..
        })
    ));
    let paid = checkout.record_transfer(TransferReport::onchain(
        OutPoint::new(txid(1), 0),
        s.onchain_address().unwrap(),
        Sats::new(500_000),
    ));
    assert_eq!(paid.unwrap().status(), SessionStatus::Paid);
    // Another session after it, so this one's events are not the newest.
    session(&checkout);
    let timeline = checkout.timeline(s.id()).unwrap();
    let archive = checkout.archive(s.id(), u64::MAX).unwrap();
    assert_eq!(archive.events, timeline);
    assert_eq!(archive.pruned, timeline.len());
    assert!(archive.to_json().contains(&s.id().to_string()));
    assert!(checkout.timeline(s.id()).unwrap().is_empty());
    // Late funds: routed by the address, recorded and flagged on the kept session.
    let late = checkout
        .record_transfer(TransferReport::onchain(
            OutPoint::new(txid(2), 0),
            s.onchain_address().unwrap(),
            Sats::new(1_000),
        ))
        .unwrap();
    assert!(late.has_unresolved_flags());
    assert!(matches!(
        checkout.archive(s.id(), u64::MAX),
        Err(ServiceError::NotArchivable {
            reason: "unresolved flags",
            ..
        })
    ));
}
