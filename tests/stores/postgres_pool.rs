//! The PostgreSQL store's pool and timeouts: stuck work fails retryably after the statement
//! timeout (a held outbox lock, a locked table) instead of hanging a thread; a call finding
//! every connection busy fails retryably after the pool timeout; connections killed on the
//! server are replaced, over TLS too; the pool's status.
//!
//! Needs `BITCOIN_CHECKOUT_PG` and `BITCOIN_CHECKOUT_PG_TLS` (see `postgres_tls`).
#![cfg(all(feature = "postgres", feature = "testkit"))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{PostgresStore, Store, StoreError};
use bitcoin_checkout::{Checkout, Currency, SessionParams, TargetCurrency};
use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::postgres_store::{Schemas, admin, pg_url};

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

fn rates() -> FixedRates {
    FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000))
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time"),
    ))
}

/// A connection of the test's own that holds locks (in a transaction or a session) while
/// the store works.
struct Holder {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Holder {
    fn open() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
        });
        Self { rt, client }
    }

    fn run(&self, sql: &str) {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// The outbox lock's key for a store in `schema` (`LOCK_OUTBOX` and the schema's FNV-1a
/// hash, as the store computes it).
fn outbox_lock_key(schema: &str) -> i64 {
    let hash = schema.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i64::from_be_bytes(((0x6263_6f62_u64 << 32) | u64::from(hash)).to_be_bytes())
}

fn assert_timed_out(e: &StoreError, what: &str) {
    assert!(e.is_retryable(), "{what}: {e:?}");
    assert!(
        e.to_string().contains("57014"),
        "{what}: not the statement timeout: {e}"
    );
}

#[test]
fn stuck_work_fails_retryably_after_the_statement_timeout() {
    let schemas = Schemas::new();
    let schema = schemas.fresh();
    let store = PostgresStore::builder(pg_url())
        .schema(schema.clone())
        .pool_size(2)
        .statement_timeout(Some(Duration::from_millis(300)))
        .connect()
        .expect("connect");
    let checkout = Checkout::new(&store, rates(), TestRequestGenerator)
        .with_clock(clock())
        .with_max_attempts(1);
    let session = checkout
        .create(SessionParams::new(Decimal::new(1_000, 2), usd()), None)
        .expect("create");

    // A server stuck while holding the outbox lock (it assigns the events' sequence): other
    // commits wait for it, then give up retryably instead of hanging.
    let holder = Holder::open();
    holder.run(&format!(
        "SELECT pg_advisory_lock({})",
        outbox_lock_key(&schema)
    ));
    let started = Instant::now();
    let err = checkout
        .create(SessionParams::new(Decimal::new(1_000, 2), usd()), None)
        .expect_err("the outbox lock is held");
    let waited = started.elapsed();
    let ServiceError::Store(e) = &err else {
        panic!("not a store error: {err:?}");
    };
    assert_timed_out(e, "a commit behind the outbox lock");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    // The lock, the events and the COMMIT go together: the failed lock rolled it all back.
    let count = |table: &str| {
        admin(&format!("SELECT count(*)::text FROM \"{schema}\".{table}")).expect("count")[0]
            .clone()
            .expect("a count")
    };
    assert_eq!(
        count("sessions"),
        "1",
        "the timed-out commit wrote its session"
    );
    let events = count("events");
    holder.run("SELECT pg_advisory_unlock_all()");
    checkout
        .create(SessionParams::new(Decimal::new(1_000, 2), usd()), None)
        .expect("create once the lock is free");
    assert_eq!(count("sessions"), "2");
    assert!(count("events").parse::<u32>().expect("n") > events.parse().expect("n"));

    // A table locked by another transaction: a read times out too, retryably, and the
    // connection it ran on stays usable.
    holder.run(&format!(
        "BEGIN; LOCK TABLE \"{schema}\".sessions IN ACCESS EXCLUSIVE MODE"
    ));
    let err = store.load(session.id()).expect_err("the table is locked");
    assert_timed_out(&err, "a read of a locked table");
    holder.run("ROLLBACK");
    assert!(store.load(session.id()).expect("load").is_some());
    let status = store.pool_status();
    assert!(status.size >= 1 && status.size <= 2, "{status:?}");
}

#[test]
fn a_call_finding_every_connection_busy_fails_after_the_pool_timeout() {
    let schemas = Schemas::new();
    let schema = schemas.fresh();
    let store = PostgresStore::builder(pg_url())
        .schema(schema.clone())
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200))
        .statement_timeout(Some(Duration::from_secs(20)))
        .connect()
        .expect("connect");
    let checkout = Checkout::new(&store, rates(), TestRequestGenerator).with_clock(clock());
    let session = checkout
        .create(SessionParams::new(Decimal::new(1_000, 2), usd()), None)
        .expect("create");
    let status = store.pool_status();
    assert_eq!((status.max_size, status.size, status.available), (1, 1, 1));

    let holder = Holder::open();
    holder.run(&format!(
        "BEGIN; LOCK TABLE \"{schema}\".sessions IN ACCESS EXCLUSIVE MODE"
    ));
    std::thread::scope(|s| {
        // This call takes the only connection and waits for the lock.
        let stuck = s.spawn(|| store.load(session.id()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.pool_status().available > 0 {
            assert!(Instant::now() < deadline, "the first call never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        let started = Instant::now();
        let err = store
            .events_after(None, 10)
            .expect_err("no connection is free");
        let waited = started.elapsed();
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            err.to_string().contains("no connection became free"),
            "{err}"
        );
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
            "waited {waited:?}"
        );
        holder.run("ROLLBACK");
        let found = stuck.join().expect("thread").expect("the stuck load ends");
        assert!(found.is_some());
    });
    // The one connection is back in the pool.
    store.events_after(None, 10).expect("read");
    let status = store.pool_status();
    assert_eq!((status.size, status.available, status.waiting), (1, 1, 0));
    store.close();
    assert_eq!(store.pool_status().max_size, 0, "closed");
}

#[test]
fn killed_connections_are_replaced_over_tls() {
    let schemas = Schemas::new();
    let app = format!("bc_kill_{}", schemas.fresh());
    let tls = std::env::var("BITCOIN_CHECKOUT_PG_TLS")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("BITCOIN_CHECKOUT_PG_TLS is not set: run scripts/test"));
    let store = PostgresStore::builder(format!("{tls}&application_name={app}"))
        .schema(schemas.fresh())
        .pool_size(2)
        .connect()
        .expect("connect");
    let checkout = Checkout::new(&store, rates(), TestRequestGenerator).with_clock(clock());
    let session = checkout
        .create(SessionParams::new(Decimal::new(1_000, 2), usd()), None)
        .expect("create");
    for round in 0..3 {
        let killed = admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
        ))
        .expect("terminate");
        assert!(!killed.is_empty(), "round {round}: no connection found");
        std::thread::sleep(Duration::from_millis(50));
        // A read is re-run on a new connection; at worst it fails retryably once.
        match store.load(session.id()) {
            Ok(found) => assert!(found.is_some()),
            Err(e) => assert!(e.is_retryable(), "round {round}: {e:?}"),
        }
        assert!(store.load(session.id()).expect("load").is_some());
        let status = store.pool_status();
        assert!(status.size <= 2, "round {round}: {status:?}");
    }
}
