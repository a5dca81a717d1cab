//! The async facade from a tokio application.
#![cfg(feature = "async")]

use crate::common;

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::AsyncCheckout;
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::*;
use common::*;

#[tokio::test(flavor = "current_thread")]
async fn async_checkout_runs_on_a_single_threaded_runtime() {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let checkout = AsyncCheckout::new(Checkout::new(
        MemoryStore::new(),
        rates,
        TestRequestGenerator,
    ));
    let s = checkout
        .create(SessionParams::new(dec("1.00"), usd()), Some("k".into()))
        .await
        .expect("created");
    let quote = s.open_payment().expect("quote").clone();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = checkout.clone();
            let hash = TestRequestGenerator::payment_hash(quote.id());
            tokio::spawn(async move {
                c.record_transfer(TransferReport::lightning(hash, Msats::new(1_000_000)))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("joined").expect("recorded");
    }
    let s = checkout.get(s.id()).await.expect("get");
    assert_eq!(s.status(), SessionStatus::Paid);
    assert_eq!(s.totals().counted, Msats::new(1_000_000));
}
