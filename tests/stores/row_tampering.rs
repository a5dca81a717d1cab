//! Rows changed behind a store's back are reported with the same typed corruption error by
//! SQLite and PostgreSQL: both decode through `store::rows` (row id, version, transfer keys).

use bitcoin_checkout::clock::{ManualClock, SeededIds};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{Corruption, PostgresStore, SqliteStore, Store, StoreError};
use bitcoin_checkout::{
    Checkout, Currency, Msats, SessionId, SessionParams, TargetCurrency, TransferReport,
};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

/// A session with one partial Lightning payment, made with fixed ids so both stores hold
/// the same rows.
fn fill<S: Store>(store: S) -> SessionId {
    let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::days(20_500));
    let usd = Currency::from_code("USD").expect("USD");
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let checkout = Checkout::new(store, rates, TestRequestGenerator)
        .with_clock(&clock)
        .with_ids(SeededIds::new(7));
    let s = checkout
        .create(SessionParams::new(Decimal::new(2500, 2), usd), None)
        .expect("create");
    let hash = TestRequestGenerator::payment_hash(s.open_payment().expect("quote").id());
    clock.advance(Duration::seconds(1));
    checkout
        .record_transfer(TransferReport::lightning(hash, Msats::new(1_000_000)))
        .expect("pay");
    s.id()
}

/// The damage done, as SQL both engines run.
fn damages(id: SessionId) -> Vec<(&'static str, String, String)> {
    let other = "cs_00000000000000000000000000000001";
    let columns = "created, status, version, wake_at, head, link_id";
    vec![
        (
            "version",
            format!("UPDATE sessions SET version = version + 1 WHERE id = '{id}'"),
            format!("UPDATE sessions SET version = version - 1 WHERE id = '{id}'"),
        ),
        (
            "key",
            format!(
                "UPDATE transfers SET key = '{}' WHERE session_id = '{id}'",
                "ab".repeat(32)
            ),
            String::new(),
        ),
        (
            "id",
            format!(
                "INSERT INTO sessions (id, {columns}) SELECT '{other}', {columns} FROM sessions WHERE id = '{id}'"
            ),
            String::new(),
        ),
    ]
}

/// What loading gives after each damage (the row named by the damage: the copied id for
/// the `id` damage), undoing it where it can.
fn errors_after(
    store: &dyn Fn(SessionId) -> Result<(), StoreError>,
    run: &dyn Fn(&str),
    id: SessionId,
) -> Vec<StoreError> {
    let other: SessionId = "cs_00000000000000000000000000000001".parse().expect("id");
    let mut out = Vec::new();
    for (field, damage, undo) in damages(id) {
        run(&damage);
        let target = if field == "id" { other } else { id };
        let err = store(target).expect_err(field);
        out.push(err);
        if !undo.is_empty() {
            run(&undo);
        }
    }
    out
}

fn field_of(e: &StoreError) -> Option<&'static str> {
    match e {
        StoreError::Corrupt(Corruption::Mismatch { field, .. }) => Some(field),
        _ => None,
    }
}

#[test]
fn tampered_rows_give_the_same_corruption_on_sqlite_and_postgres() {
    // SQLite.
    let dir = std::env::temp_dir().join(format!("tamper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("t.db");
    let _ = std::fs::remove_file(&path);
    let sqlite = SqliteStore::open(&path).expect("open");
    let id = fill(&sqlite);
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let sqlite_errors = errors_after(
        &|target| sqlite.load(target).map(|_| ()),
        &|sql| raw.execute_batch(sql).expect("tamper sqlite"),
        id,
    );

    // PostgreSQL, in a schema of its own.
    let url = std::env::var("BITCOIN_CHECKOUT_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("BITCOIN_CHECKOUT_PG is not set: run scripts/test"));
    let schema = format!("tamper_{}", SessionId::generate().as_uuid().simple());
    let pg = PostgresStore::connect_in_schema(&url, &schema, 1).expect("connect");
    assert_eq!(fill(&pg), id, "the same ids on both stores");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (client, connection) = rt
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .expect("raw connection");
    rt.spawn(connection);
    rt.block_on(client.batch_execute(&format!("SET search_path TO {schema}")))
        .expect("search path");
    let pg_errors = errors_after(
        &|target| pg.load(target).map(|_| ()),
        &|sql| {
            rt.block_on(client.batch_execute(sql))
                .expect("tamper postgres")
        },
        id,
    );
    pg.close();
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(
        sqlite_errors.iter().map(field_of).collect::<Vec<_>>(),
        vec![Some("version"), Some("key"), Some("id")],
        "{sqlite_errors:?}"
    );
    assert_eq!(pg_errors, sqlite_errors, "the same typed errors");
    for e in &pg_errors {
        assert!(!e.is_retryable());
    }
}

/// Quotes issued in one millisecond (a partial payment and its re-quote, many times over)
/// keep their order when a store rebuilds the session from its rows: the service gives
/// each quote an id that sorts after the newest (`CheckoutSession::next_payment_id`),
/// whatever its id source says, and the core refuses one that does not.
#[test]
fn quotes_of_one_millisecond_keep_their_order_in_the_stores() {
    let dir = std::env::temp_dir().join(format!("one-ms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("q.db");
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open(&path).expect("open");
    let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::days(20_600));
    let usd = Currency::from_code("USD").expect("USD");
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    // Ids from the system's randomness: in one millisecond their order is random.
    let checkout = Checkout::new(&store, rates, TestRequestGenerator)
        .with_clock(&clock)
        .with_session_cache(0);
    for _ in 0..10 {
        let s = checkout
            .create(SessionParams::new(Decimal::new(2500, 2), usd), None)
            .expect("create");
        clock.advance(Duration::minutes(1));
        let mut issued = vec![s.open_payment().expect("quote").id()];
        for _ in 0..4 {
            let current = checkout.get(s.id()).expect("load");
            let open = current.open_payment().expect("an open quote");
            let hash = TestRequestGenerator::payment_hash(open.id());
            let paid = checkout
                .record_transfer(TransferReport::lightning(hash, Msats::new(2_000_000)))
                .expect("partial payment");
            issued.push(paid.open_payment().expect("the re-quote").id());
        }
        let loaded = store.load(s.id()).expect("readable").expect("stored");
        let order: Vec<_> = loaded.payments().iter().map(|p| p.id()).collect();
        assert_eq!(order, issued, "issue order");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
