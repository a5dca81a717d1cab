//! The runner: jobs on their schedules, health, a graceful stop that waits for the pass in
//! flight, and a shop paid end to end through a runner's listener against real LNbits.
#![cfg(feature = "runner")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bitcoin_checkout::runner::RunnerBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_their_schedule_report_health_and_stop_after_their_pass() {
    let (passes, finished) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (p, f) = (passes.clone(), finished.clone());
    let failures = Arc::new(AtomicU32::new(0));
    let fails = failures.clone();
    let runner = RunnerBuilder::new()
        .job("slow", Duration::from_millis(10), move || {
            p.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            f.fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        })
        .job("failing", Duration::from_millis(10), move || {
            fails.fetch_add(1, Ordering::SeqCst);
            Err("backend down")
        })
        .start();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let health = runner.health();
    assert_eq!(health[0].name, "slow");
    assert!(
        health[0].runs >= 1 && health[0].last_success.is_some(),
        "{health:?}"
    );
    assert_eq!(health[0].failures_in_a_row, 0);
    assert_eq!(health[1].last_error.as_deref(), Some("backend down"));
    assert!(health[1].failures_in_a_row >= 3, "{health:?}");
    assert!(!runner.is_healthy());
    // A stop in the middle of a slow pass waits for it, and no pass starts after.
    while passes.load(Ordering::SeqCst) == finished.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runner.stop().await;
    let done = finished.load(Ordering::SeqCst);
    assert_eq!(
        passes.load(Ordering::SeqCst),
        done,
        "the pass in flight finished"
    );
    let failed = failures.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        done,
        "no pass after the stop"
    );
    assert_eq!(failures.load(Ordering::SeqCst), failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_pass_is_a_failure_and_the_job_goes_on() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let runner = RunnerBuilder::new()
        .job("flaky", Duration::from_millis(5), move || {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first pass");
            }
            Ok::<(), String>(())
        })
        .start();
    while runner.health()[0].runs < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let h = &runner.health()[0];
    assert_eq!(h.failures_in_a_row, 0, "{h:?}");
    assert!(runner.is_healthy());
    runner.stop().await;
}

/// A shop as an application runs it: sessions through the service, the runner's listener
/// and sweep in the background; the customer pays, the session becomes paid with nothing
/// else called; a stop saves the listener's resume point.
#[cfg(all(feature = "lnbits", feature = "sqlite"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The LNbits tests' lock is held for the whole test on purpose (the outage tests stop the
// server); it is only ever contended by other test threads, never by this runtime's tasks.
#[allow(clippy::await_holding_lock)]
async fn a_shop_is_paid_through_the_runner_listener() {
    use bitcoin_checkout::listener::SettlementListener;
    use bitcoin_checkout::rates::FixedRates;
    use bitcoin_checkout::request::RequestGenerator;
    use bitcoin_checkout::request::lightning::Network;
    use bitcoin_checkout::request::lnbits::LnbitsBackend;
    use bitcoin_checkout::store::{ResumeStore, SqliteStore};
    use bitcoin_checkout::{
        Checkout, Decimal, PaymentMethod, SessionParams, SessionStatus, TargetCurrency,
    };

    use super::lnbits::{fake_wallet, funded_wallet, server, wallet};
    use crate::common::{TempDir, usd};

    let _one = super::lnbits::exclusive();
    let dir = TempDir::new("runner-shop");
    let (wallet_id, _, inkey) = wallet("shop-runner");
    let backend = || fake_wallet(LnbitsBackend::new(&server().0, &inkey, Network::Bitcoin));
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    let checkout = Arc::new(Checkout::new(
        SqliteStore::open(dir.file("shop.db")).unwrap(),
        rates,
        RequestGenerator::new().lightning(backend()),
    ));
    let name = format!("lnbits:{wallet_id}");
    let runner = RunnerBuilder::new()
        .sweep(checkout.clone(), Duration::from_secs(1), 100)
        .listener(
            SettlementListener::new(name.clone(), backend()),
            checkout.clone(),
            Duration::from_millis(100),
        )
        .start();
    let c = checkout.clone();
    let session = tokio::task::spawn_blocking(move || {
        let params = SessionParams::new(Decimal::from(12), usd())
            .payment_methods([PaymentMethod::Lightning]);
        c.create(params, None).unwrap()
    })
    .await
    .unwrap();
    let bolt11 = session
        .current_payment()
        .unwrap()
        .request()
        .lightning
        .clone()
        .unwrap()
        .payment_request;
    tokio::task::spawn_blocking(move || super::lnbits::pay(&funded_wallet(100_000), &bolt11))
        .await
        .unwrap();
    let mut status = SessionStatus::Active;
    for _ in 0..100 {
        let (c, id) = (checkout.clone(), session.id());
        status = tokio::task::spawn_blocking(move || c.get(id).unwrap().status())
            .await
            .unwrap();
        if status == SessionStatus::Paid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status,
        SessionStatus::Paid,
        "paid through the runner's listener"
    );
    assert!(runner.is_healthy(), "{:?}", runner.health());
    assert_eq!(runner.health()[1].name, format!("listener:{name}"));
    runner.stop().await;
    assert!(checkout.store().resume_point(&name).unwrap().is_some());
}
