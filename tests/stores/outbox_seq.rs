//! Schema 15 numbers the outbox without AUTOINCREMENT (ADR 29): the same numbers, kept
//! across the upgrade, and none handed out twice, also after pruning.

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{SqliteStore, Store};
use bitcoin_checkout::{Checkout, Currency, SessionParams, TargetCurrency};
use rust_decimal::Decimal;

/// Opens the store at `path` and creates `n` sessions (two events each, at least).
fn create_sessions(path: &std::path::Path, n: usize) {
    let usd = Currency::from_code("USD").expect("USD");
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let checkout = Checkout::new(
        SqliteStore::open(path).expect("open"),
        rates,
        TestRequestGenerator,
    );
    for _ in 0..n {
        checkout
            .create(SessionParams::new(Decimal::new(2500, 2), usd), None)
            .expect("create");
    }
}

/// Every event in the outbox as (number, id).
fn numbered(path: &std::path::Path) -> Vec<(u64, String)> {
    let store = SqliteStore::open(path).expect("open");
    let events = store.events_after(None, 10_000).expect("events");
    store.close().expect("close");
    events
        .into_iter()
        .map(|e| (e.seq, e.event.id.to_string()))
        .collect()
}

/// The `CREATE TABLE` of `events`.
fn events_sql(path: &std::path::Path) -> String {
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    raw.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'events'",
        [],
        |r| r.get(0),
    )
    .expect("events table")
}

/// Takes the database back to schema 14: `events` with AUTOINCREMENT again, its highest
/// number handed out recorded as `handed_out`.
fn back_to_schema_14(path: &std::path::Path, handed_out: i64) {
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    raw.execute_batch(crate::event_lists::BACK_TO_SCHEMA_15)
        .expect("schema 15");
    // Schema 15's table with the keyword back: the same columns, checks and order.
    let sql = events_sql(path);
    let columns = sql.find('(').map(|at| &sql[at..]).expect("columns");
    let table = format!(
        "CREATE TABLE events_v14 {}",
        columns.replacen(
            "INTEGER PRIMARY KEY,",
            "INTEGER PRIMARY KEY AUTOINCREMENT,",
            1
        )
    );
    assert!(table.contains("AUTOINCREMENT"), "{table}");
    raw.execute_batch(&format!(
        "{table};
         INSERT INTO events_v14 SELECT * FROM events ORDER BY seq;
         DROP TABLE events;
         ALTER TABLE events_v14 RENAME TO events;
         CREATE INDEX events_by_session ON events (session_id, seq);
         CREATE INDEX events_by_id ON events (id, seq);
         PRAGMA user_version = 14;"
    ))
    .expect("schema 14");
    raw.execute(
        "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'events'",
        [handed_out],
    )
    .expect("high-water mark");
    assert!(events_sql(path).contains("AUTOINCREMENT"));
}

/// A new database in a directory of its own (removed when dropped) with `n` sessions, and
/// its numbered events.
fn with_sessions(
    name: &str,
    n: usize,
) -> (
    crate::common::TempDir,
    std::path::PathBuf,
    Vec<(u64, String)>,
) {
    let dir = crate::common::TempDir::new(name);
    let path = dir.file("checkout.sqlite3");
    create_sessions(&path, n);
    let events = numbered(&path);
    (dir, path, events)
}

fn largest(events: &[(u64, String)]) -> u64 {
    events.iter().map(|(seq, _)| *seq).max().expect("events")
}

#[test]
fn a_database_of_schema_14_keeps_its_event_numbers_and_loses_autoincrement() {
    let (_dir, path, before) = with_sessions("outbox-upgrade", 3);
    let newest = i64::try_from(largest(&before)).expect("fits");
    back_to_schema_14(&path, newest);

    let after = numbered(&path);
    assert_eq!(after, before, "every event keeps its number");
    assert!(!events_sql(&path).contains("AUTOINCREMENT"));
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 18);
    let indexes: Vec<String> = raw
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events'
             ORDER BY name",
        )
        .expect("indexes")
        .query_map([], |r| r.get(0))
        .expect("indexes")
        .collect::<Result<_, _>>()
        .expect("indexes");
    // Migration 15 made both indexes again; migration 16 then left `events_by_session`
    // out for the sessions' own lists (ADR 32).
    assert_eq!(indexes, ["events_by_id", "events_unfiled"]);
    drop(raw);

    create_sessions(&path, 1);
    let later = numbered(&path);
    assert!(later.len() > after.len());
    assert!(
        later[after.len()..]
            .iter()
            .all(|(seq, _)| *seq > largest(&after)),
        "new events are numbered after the old ones: {later:?}"
    );
}

#[test]
fn a_number_handed_out_beyond_the_newest_event_keeps_the_old_table() {
    let (_dir, path, before) = with_sessions("outbox-kept", 2);
    // Events deleted by hand: AUTOINCREMENT remembers a number no row has any more.
    let handed_out = i64::try_from(largest(&before)).expect("fits") + 100;
    back_to_schema_14(&path, handed_out);

    assert_eq!(numbered(&path), before);
    assert!(
        events_sql(&path).contains("AUTOINCREMENT"),
        "a plain row id would hand those numbers out again"
    );
    create_sessions(&path, 1);
    let later = numbered(&path);
    let handed_out = u64::try_from(handed_out).expect("fits");
    assert!(
        later[before.len()..]
            .iter()
            .all(|(seq, _)| *seq > handed_out)
    );
}

#[test]
fn numbers_are_not_handed_out_again_after_pruning_as_much_as_possible() {
    let (_dir, path, before) = with_sessions("outbox-prune", 2);
    let store = SqliteStore::open(&path).expect("open");
    let pruned = store.prune_events(u64::MAX, 10_000).expect("prune");
    assert_eq!(pruned, before.len() - 1, "all but the newest event");
    store.close().expect("close");
    assert_eq!(numbered(&path), before[before.len() - 1..]);

    create_sessions(&path, 1);
    let later = numbered(&path);
    assert!(later.len() > 1);
    assert!(later[1..].iter().all(|(seq, _)| *seq > largest(&before)));
}
