//! The settlement listener against the real LNbits server: sessions paid through it with
//! no call from the test to `record_transfer`, each settlement recorded exactly once across
//! a restart, an outage, racing listeners, unknown hashes, and quotes paid after they
//! expired or their session was deactivated.
#![cfg(all(feature = "lnbits", feature = "sqlite"))]

use std::sync::{Arc, Mutex};

use bitcoin_checkout::backend::LightningBackend;
use bitcoin_checkout::clock::Clock;
use bitcoin_checkout::listener::SettlementListener;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::RequestGenerator;
use bitcoin_checkout::request::lightning::Network;
use bitcoin_checkout::request::lnbits::LnbitsBackend;
use bitcoin_checkout::store::{ResumeStore, SqliteStore};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Decimal, FlagKind, Msats, OffsetDateTime, PaymentMethod,
    SessionParams, SessionStatus, TargetCurrency,
};
use time::Duration;

use super::lnbits::{exclusive, fake_wallet, funded_wallet, order, pay, run, server, wallet};
use crate::common::{TempDir, usd};

/// The real time shifted by an offset the test moves (LNbits keeps the real time).
#[derive(Default)]
struct Shifted(Mutex<Duration>);

impl Clock for Shifted {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.0.lock().unwrap()
    }
}

type Shop = Checkout<SqliteStore, FixedRates, RequestGenerator<LnbitsBackend>, Arc<Shifted>>;

fn backend(inkey: &str) -> LnbitsBackend {
    fake_wallet(LnbitsBackend::new(&server().0, inkey, Network::Bitcoin))
}

fn shop(store: SqliteStore, inkey: &str, clock: Arc<Shifted>) -> Shop {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(
        store,
        rates,
        RequestGenerator::new().lightning(backend(inkey)),
    )
    .with_clock(clock)
}

fn session(checkout: &Shop, dollars: i64) -> CheckoutSession {
    let params = SessionParams::new(Decimal::from(dollars), usd())
        .payment_methods([PaymentMethod::Lightning])
        .ttl_secs(300);
    checkout.create(params, None).unwrap()
}

fn bolt11(s: &CheckoutSession) -> String {
    let payment = s.current_payment().expect("a quote");
    payment.request().lightning.clone().unwrap().payment_request
}

/// A shop on a fresh SQLite file and LNbits wallet, and a funded payer.
struct Setup {
    _dir: TempDir,
    /// The listener's name for the shop's wallet.
    name: String,
    inkey: String,
    payer: String,
    checkout: Shop,
}

fn setup(tag: &str) -> Setup {
    let dir = TempDir::new(tag);
    let (wallet_id, _, inkey) = wallet(tag);
    let checkout = shop(
        SqliteStore::open(dir.file("shop.db")).unwrap(),
        &inkey,
        Arc::default(),
    );
    Setup {
        _dir: dir,
        name: format!("lnbits:{wallet_id}"),
        payer: funded_wallet(100_000),
        inkey,
        checkout,
    }
}

fn transfers(checkout: &Shop, s: &CheckoutSession) -> usize {
    checkout.get(s.id()).unwrap().transfers().count()
}

#[test]
fn sessions_are_paid_through_the_listener_and_each_once_across_a_restart() {
    let _one = exclusive();
    let dir = TempDir::new("lnbits-listener");
    let path = dir.file("shop.db");
    let (wallet_id, _, inkey) = wallet("shop-listener");
    let name = format!("lnbits:{wallet_id}");
    let payer = funded_wallet(1_000_000);
    let clock = Arc::new(Shifted::default());

    let checkout = shop(SqliteStore::open(&path).unwrap(), &inkey, clock.clone());
    let listener = SettlementListener::new(name.clone(), backend(&inkey));
    let sessions: Vec<_> = (1..=6).map(|d| session(&checkout, d)).collect();
    let first = listener.poll(&checkout).unwrap();
    assert!(first.recorded.is_empty(), "{first:?}");

    // Two are paid while the listener runs.
    for s in &sessions[..2] {
        pay(&payer, &bolt11(s));
    }
    let pass = listener.poll(&checkout).unwrap();
    assert_eq!(pass.recorded.len(), 2, "{pass:?}");
    assert!(pass.resume_saved);
    for s in &sessions[..2] {
        assert_eq!(checkout.get(s.id()).unwrap().status(), SessionStatus::Paid);
    }

    // The application stops; four are paid while it is down.
    drop((listener, checkout));
    for s in &sessions[2..] {
        pay(&payer, &bolt11(s));
    }
    let checkout = shop(SqliteStore::open(&path).unwrap(), &inkey, clock);
    assert!(checkout.store().resume_point(&name).unwrap().is_some());
    let listener = SettlementListener::new(name, backend(&inkey));
    let caught_up = listener.poll(&checkout).unwrap();
    assert_eq!(caught_up.recorded.len(), 4, "{caught_up:?}");
    assert_eq!(
        caught_up.already_recorded, 2,
        "the overlap lists them again"
    );
    let again = listener.poll(&checkout).unwrap();
    assert!(again.recorded.is_empty(), "{again:?}");
    for s in &sessions {
        assert_eq!(checkout.get(s.id()).unwrap().status(), SessionStatus::Paid);
        assert_eq!(transfers(&checkout, s), 1, "recorded once");
    }
    eprintln!("listener restart: 6 invoices paid, 4 while it was down, 6 transfers recorded once");
}

#[test]
fn an_outage_of_lnbits_loses_nothing_and_the_listener_catches_up() {
    let _one = exclusive();
    let Setup {
        _dir,
        name,
        inkey,
        payer,
        checkout,
    } = setup("lnbits-listener-outage");
    let listener = SettlementListener::new(name.clone(), backend(&inkey));
    let sessions = [session(&checkout, 3), session(&checkout, 4)];
    for s in &sessions {
        pay(&payer, &bolt11(s));
    }
    run("pause");
    let failed = listener.poll(&checkout);
    run("resume");
    let err = failed.expect_err("LNbits is down");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(checkout.store().resume_point(&name).unwrap(), None);
    for s in &sessions {
        assert_eq!(transfers(&checkout, s), 0);
    }
    let pass = listener.poll(&checkout).unwrap();
    assert_eq!(pass.recorded.len(), 2, "{pass:?}");
    for s in &sessions {
        assert_eq!(checkout.get(s.id()).unwrap().status(), SessionStatus::Paid);
    }
}

#[test]
fn racing_listeners_record_each_settlement_once() {
    let _one = exclusive();
    let Setup {
        _dir,
        name,
        inkey,
        payer,
        checkout,
    } = setup("lnbits-listener-race");
    let sessions: Vec<_> = (1..=4).map(|d| session(&checkout, d)).collect();
    for s in &sessions {
        pay(&payer, &bolt11(s));
    }
    let recorded: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let (checkout, name, inkey) = (&checkout, &name, &inkey);
                scope.spawn(move || {
                    SettlementListener::new(name.clone(), backend(inkey))
                        .poll(checkout)
                        .unwrap()
                        .recorded
                        .len()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(
        recorded, 4,
        "each settlement recorded by exactly one listener"
    );
    for s in &sessions {
        assert_eq!(transfers(&checkout, s), 1);
    }
    assert!(checkout.store().resume_point(&name).unwrap().is_some());
}

#[test]
fn an_unknown_hash_is_reported_and_does_not_stall_the_listener() {
    let _one = exclusive();
    let Setup {
        _dir,
        name,
        inkey,
        payer,
        checkout,
    } = setup("lnbits-listener-unknown");
    // An invoice of the same wallet that no session made (another application's).
    let now = OffsetDateTime::now_utc();
    let stranger = backend(&inkey)
        .create_invoice(&order(
            Msats::new(7_000),
            "not ours",
            now + Duration::minutes(10),
            now,
        ))
        .unwrap();
    let ours = session(&checkout, 2);
    pay(&payer, &stranger.payment_request);
    pay(&payer, &bolt11(&ours));
    let listener = SettlementListener::new(name, backend(&inkey));
    let pass = listener.poll(&checkout).unwrap();
    assert_eq!(pass.recorded.len(), 1, "{pass:?}");
    assert_eq!(pass.unmatched.len(), 1, "{pass:?}");
    assert_eq!(pass.unmatched[0].payment_hash, stranger.payment_hash);
    assert_eq!(pass.unmatched[0].amount, Msats::new(7_000));
    assert!(pass.resume_saved, "the listener moves on");
    assert_eq!(
        checkout.get(ours.id()).unwrap().status(),
        SessionStatus::Paid
    );
}

#[test]
fn quotes_paid_after_they_expired_or_their_session_ended_are_recorded_and_flagged() {
    let _one = exclusive();
    let dir = TempDir::new("lnbits-listener-late");
    let (wallet_id, _, inkey) = wallet("shop-listener-late");
    let payer = funded_wallet(100_000);
    let clock = Arc::new(Shifted::default());
    let checkout = shop(
        SqliteStore::open(dir.file("shop.db")).unwrap(),
        &inkey,
        clock.clone(),
    );
    let expiring = session(&checkout, 5);
    let ending = session(&checkout, 6);
    let (old_quote, ending_quote) = (bolt11(&expiring), bolt11(&ending));
    checkout.deactivate(ending.id()).unwrap();
    // For the service the first quote runs out and is superseded by a new one; LNbits,
    // whose clock is real, still takes the old invoice.
    *clock.0.lock().unwrap() = Duration::seconds(301);
    assert!(checkout.refresh(expiring.id()).unwrap());
    assert_ne!(bolt11(&checkout.get(expiring.id()).unwrap()), old_quote);
    pay(&payer, &old_quote);
    pay(&payer, &ending_quote);
    let listener = SettlementListener::new(format!("lnbits:{wallet_id}"), backend(&inkey));
    let pass = listener.poll(&checkout).unwrap();
    assert_eq!(pass.recorded.len(), 2, "{pass:?}");
    let expired = checkout.get(expiring.id()).unwrap();
    assert_eq!(expired.transfers().count(), 1);
    let kinds: Vec<_> = expired.flags().iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FlagKind::PaidAfterExpiry), "{kinds:?}");
    let ended = checkout.get(ending.id()).unwrap();
    assert_eq!(ended.status(), SessionStatus::Deactivated);
    assert_eq!(ended.transfers().count(), 1);
    let kinds: Vec<_> = ended.flags().iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FlagKind::Late), "{kinds:?}");
}
