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
        .create(SessionParams::new(dec("1.00"), usd()), Some("k"))
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

/// Every operation of the blocking service is on the async facade too (issue #13, point
/// 12): links, timeline, refresh, events and sweep, over a real SQLite store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_checkout_has_every_operation_of_checkout() {
    use bitcoin_checkout::link::LinkStatus;
    use bitcoin_checkout::service::SqliteCheckout;
    use bitcoin_checkout::store::{ListQuery, SqliteStore};

    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let store = SqliteStore::open_in_memory().expect("sqlite");
    let blocking: SqliteCheckout = Checkout::boxed(store, rates, TestRequestGenerator);
    let c = AsyncCheckout::new(blocking);
    let params = || SessionParams::new(dec("1.00"), usd());

    let s = c.create(params(), Some("order-1")).await.expect("create");
    assert_eq!(
        c.create(params(), Some("order-1"))
            .await
            .expect("replay")
            .id(),
        s.id()
    );
    let page = c.list(ListQuery::default()).await.expect("list");
    assert_eq!(page.data.len(), 1);
    let timeline = c.timeline(s.id()).await.expect("timeline");
    assert!(!timeline.is_empty());
    assert_eq!(
        c.events_after(None, 100).await.expect("events").len(),
        timeline.len()
    );
    assert!(
        !c.refresh(s.id()).await.expect("refresh"),
        "nothing due yet"
    );
    assert!(c.sweep(10).await.expect("sweep").updated.is_empty());
    let updated = c
        .update(s.id(), SessionUpdate::new().description("renamed"))
        .await
        .expect("update");
    assert_eq!(updated.description(), Some("renamed"));
    // Overpaid: flagged money, resolved, and the review queue empties.
    let quote = updated.open_payment().expect("a quote");
    let over = c
        .record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            Msats::new(quote.target_msats().get() + 5_000),
        ))
        .await
        .expect("overpaid");
    assert_eq!(over.status(), SessionStatus::Paid);
    let queue = || ListQuery::new().unresolved_flags();
    assert_eq!(c.list(queue()).await.expect("queue").data.len(), 1);
    let resolved = c
        .resolve_flag(
            s.id(),
            session::FlagResolution::accepted(FlagKind::Overpaid, Msats::new(5_000)),
        )
        .await
        .expect("resolve");
    assert!(!resolved.has_unresolved_flags());
    assert!(c.list(queue()).await.expect("queue").data.is_empty());
    assert!(matches!(
        c.deactivate(s.id()).await,
        Err(ServiceError::Core(Error::InvalidTransition { .. }))
    ));
    let s = c.create(params(), None).await.expect("create");
    assert_eq!(
        c.deactivate(s.id()).await.expect("deactivate").status(),
        SessionStatus::Deactivated
    );

    let clink = c
        .create_checkout_link(params(), None)
        .await
        .expect("checkout link");
    let plink = c
        .create_payment_link(params(), None)
        .await
        .expect("payment link");
    assert_eq!(c.get_link(clink.id()).await.expect("get link"), clink);
    let one = c
        .open_link(clink.id(), None)
        .await
        .expect("open checkout link");
    assert_eq!(
        c.open_link(clink.id(), Some("k"))
            .await
            .expect("again")
            .id(),
        one.id()
    );
    let first = c
        .open_link(plink.id(), Some("cart-1"))
        .await
        .expect("open payment link");
    assert_eq!(
        c.open_link(plink.id(), Some("cart-1"))
            .await
            .expect("retry")
            .id(),
        first.id()
    );
    let dead = c
        .deactivate_link(plink.id())
        .await
        .expect("deactivate link");
    assert_eq!(dead.status(None), LinkStatus::Deactivated);
    assert_eq!(
        c.get(first.id()).await.expect("get").status(),
        SessionStatus::Deactivated
    );
}

/// On a SQLite file the reads need no trip to the blocking pool (issue #17, point 3):
/// with the pool's one thread held, `get` of a session with a valid quote, a listing,
/// the events and the timeline all answer; a write (a transfer) waits for the pool and
/// runs once it is free.
#[test]
fn reads_on_a_sqlite_file_answer_while_the_blocking_pool_is_busy() {
    use bitcoin_checkout::store::{ListQuery, SqliteStore};
    use std::time::Duration;

    let dir = TempDir::new("async-reads");
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let store = SqliteStore::open(dir.file("shop.db")).expect("sqlite");
    let c = AsyncCheckout::new(Checkout::new(store, rates, TestRequestGenerator));
    assert!(c.blocking().reads_never_block() && !c.blocking().never_blocks());
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = c
            .create(SessionParams::new(dec("1.00"), usd()), None)
            .await
            .expect("create");
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let busy = tokio::task::spawn_blocking(move || held.recv());
        let read = c.get(s.id());
        assert_eq!(in_time("get", read).await, s);
        let page = in_time("list", c.list(ListQuery::default())).await;
        assert_eq!(page.data, vec![s.clone()]);
        assert_eq!(in_time("events", c.events_after(None, 10)).await.len(), 2);
        assert_eq!(in_time("timeline", c.timeline(s.id())).await.len(), 2);

        // A write needs the pool: it has not run while the pool is held.
        let hash = TestRequestGenerator::payment_hash(s.open_payment().expect("quote").id());
        let report = TransferReport::lightning(hash, Msats::new(1_000_000));
        let pay = tokio::time::timeout(
            Duration::from_millis(300),
            c.record_transfer(report.clone()),
        );
        assert!(pay.await.is_err(), "a write ran without the blocking pool");
        hold.send(()).expect("release the pool");
        busy.await.expect("joined").expect("released");
        let paid = c.record_transfer(report).await.expect("recorded");
        assert_eq!(paid.status(), SessionStatus::Paid);
        assert_eq!(
            c.get(s.id()).await.expect("get").status(),
            SessionStatus::Paid
        );
    });
}

/// `f`'s answer within 5 s, or the test fails: it waited for the blocking pool.
async fn in_time<T>(what: &str, f: impl Future<Output = Result<T, ServiceError>>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| panic!("{what} waited for the blocking pool"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Without a reads' connection of its own (in memory) the SQLite store says its reads
/// may block, so they keep going to the blocking pool.
#[test]
fn sqlite_in_memory_reads_may_block() {
    use bitcoin_checkout::store::{SqliteStore, Store};
    let store = SqliteStore::open_in_memory().expect("sqlite");
    assert!(!store.reads_never_block() && !store.never_blocks());
    let dir = TempDir::new("reads-flag");
    let file = SqliteStore::open(dir.file("f.db")).expect("sqlite");
    assert!(file.reads_never_block() && !file.never_blocks());
}
