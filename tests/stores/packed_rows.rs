//! Schema 14 packs the live rows (ADR 25): the head of each session and the body of each
//! payment are kept compressed against a dictionary, and read back byte for byte.

use std::sync::Arc;

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::rows::session_rows;
use bitcoin_checkout::store::{ListQuery, SqliteStore, Store};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, Metadata, Msats, SessionParams, SessionStatus,
    SessionUpdate, TargetCurrency, TransferReport,
};
use rust_decimal::Decimal;

/// The live rows as schema 13 kept them, JSON text (for the tests that take a database
/// back to an earlier version): every session's head and payment bodies written out again
/// from the sessions the store reads back, in tables of the old column types.
pub(crate) fn live_rows_as_text(path: &std::path::Path) {
    let store = SqliteStore::open(path).expect("open");
    let mut sessions = Vec::new();
    loop {
        let mut query = ListQuery::new().limit(100);
        if let Some(last) = sessions.last().map(CheckoutSession::id) {
            query = query.starting_after(last);
        }
        let page = store.list(&query).expect("list");
        sessions.extend(page.data);
        if !page.has_more {
            break;
        }
    }
    store.close().expect("close");
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    raw.execute_batch(crate::event_lists::BACK_TO_SCHEMA_15)
        .expect("schema 15");
    raw.execute_batch(
        "CREATE TABLE sessions_text (
             id TEXT NOT NULL PRIMARY KEY, created INTEGER NOT NULL, status TEXT NOT NULL,
             version INTEGER NOT NULL CHECK (version >= 0), wake_at INTEGER,
             head TEXT NOT NULL, link_id TEXT, source_id TEXT, metadata TEXT,
             review INTEGER NOT NULL DEFAULT 0,
             livemode INTEGER NOT NULL DEFAULT 0 CHECK (livemode IN (0, 1)),
             object_payments TEXT
         ) STRICT;
         INSERT INTO sessions_text SELECT id, created, status, version, wake_at, '', link_id,
             source_id, metadata, review, livemode, object_payments FROM sessions;
         CREATE TABLE payments_text (
             session_id TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
             PRIMARY KEY (session_id, id)
         ) STRICT;
         INSERT INTO payments_text SELECT session_id, id, '' FROM payments;",
    )
    .expect("text tables");
    for s in &sessions {
        let rows = session_rows(s).expect("rows");
        let id = s.id().to_string();
        raw.execute(
            "UPDATE sessions_text SET head = ?2 WHERE id = ?1",
            [&id, &rows.session.head],
        )
        .expect("head");
        for p in &rows.payments {
            raw.execute(
                "UPDATE payments_text SET body = ?3 WHERE session_id = ?1 AND id = ?2",
                [&id, &p.id, &p.body],
            )
            .expect("payment");
        }
    }
    let remade: Vec<String> = raw
        .prepare(
            "SELECT sql FROM sqlite_schema
             WHERE tbl_name IN ('sessions', 'payments') AND type IN ('index', 'trigger')
                 AND sql IS NOT NULL",
        )
        .expect("schema")
        .query_map([], |row| row.get(0))
        .expect("schema")
        .collect::<Result<_, _>>()
        .expect("schema");
    raw.execute_batch(
        "DROP TABLE sessions;
         ALTER TABLE sessions_text RENAME TO sessions;
         DROP TABLE payments;
         ALTER TABLE payments_text RENAME TO payments;
         PRAGMA user_version = 13;",
    )
    .expect("swap");
    for sql in remade {
        raw.execute_batch(&sql).expect("index or trigger");
    }
    // Every index and trigger of schema 13 is back.
    let count: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE tbl_name IN ('sessions', 'payments')
                 AND type IN ('index', 'trigger') AND sql IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(count, 10);
}

/// The bytes of the live columns (heads and payment bodies) and whether each is a blob.
fn live_bytes(path: &std::path::Path) -> (i64, bool) {
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    raw.query_row(
        "SELECT (SELECT sum(length(head)) FROM sessions) + (SELECT sum(length(body)) FROM payments),
                (SELECT count(*) FROM sessions WHERE typeof(head) <> 'blob')
                    + (SELECT count(*) FROM payments WHERE typeof(body) <> 'blob') = 0",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("bytes")
}

/// A database of schema 13 (the live rows as JSON text) upgrades with every session and
/// event reading back the same and its live rows less than half the size; the metadata
/// triggers survive the rebuild, and the sessions go on.
#[test]
fn sqlite_live_rows_become_packed_and_read_back_the_same() {
    let dir = crate::common::TempDir::new("packed-rows");
    let path = dir.file("v13.sqlite3");
    let usd = Currency::from_code("USD").expect("usd");
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let checkout =
        |store: Arc<SqliteStore>| Checkout::new(store, rates.clone(), TestRequestGenerator);
    let (unpaid, paid) = {
        let c = checkout(Arc::new(SqliteStore::open(&path).expect("open")));
        let params = SessionParams::new(Decimal::new(2_500, 2), usd)
            .metadata(Metadata::from_pairs([("order", "A1")]).expect("metadata"));
        let unpaid = c.create(params.clone(), None).expect("create");
        let paid = c.create(params, None).expect("create");
        let quote = paid.open_payment().expect("quote").clone();
        c.record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            Msats::new(12_500_000),
        ))
        .expect("pay half");
        (unpaid.id(), paid.id())
    };
    let (before, events) = {
        let store = SqliteStore::open(&path).expect("open");
        let sessions = [unpaid, paid].map(|id| store.load(id).expect("load").expect("stored"));
        let events = store.events_after(None, 100).expect("events");
        store.close().expect("close");
        (sessions, events)
    };
    live_rows_as_text(&path);
    let (text, _) = live_bytes(&path);

    let store = Arc::new(SqliteStore::open(&path).expect("upgrade"));
    assert_eq!(
        store.schema_version(),
        Ok(SqliteStore::latest_schema_version())
    );
    let (packed, all_blobs) = live_bytes(&path);
    assert!(all_blobs);
    {
        // The same indexes and triggers; the payments' key is kept once (WITHOUT ROWID).
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        let named: Vec<(String, bool)> = raw
            .prepare(
                "SELECT name, sql IS NOT NULL FROM sqlite_schema
                 WHERE tbl_name IN ('sessions', 'payments') AND type IN ('index', 'trigger')
                 ORDER BY name",
            )
            .expect("schema")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("schema")
            .collect::<Result<_, _>>()
            .expect("schema");
        let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), 11, "{names:?}");
        assert!(names.contains(&"sessions_metadata_update"), "{names:?}");
        assert!(!names.contains(&"sqlite_autoindex_payments_1"), "{names:?}");
    }
    assert!(packed * 2 < text, "{packed} bytes packed of {text}");
    for s in &before {
        assert_eq!(store.load(s.id()).expect("load").as_ref(), Some(s));
    }
    assert_eq!(store.events_after(None, 100).expect("events"), events);
    let by_order = |value: &str| -> Vec<CheckoutSession> {
        store
            .list(&ListQuery::new().metadata("order", value))
            .expect("list")
            .data
    };
    assert_eq!(by_order("A1").len(), 2);

    // The sessions go on: the metadata trigger follows an update, the payment completes.
    let c = checkout(Arc::clone(&store));
    let update = SessionUpdate::from_json(r#"{"metadata":{"order":"B2"}}"#).expect("update");
    c.update(unpaid, &update).expect("update");
    assert_eq!(
        by_order("B2")
            .iter()
            .map(CheckoutSession::id)
            .collect::<Vec<_>>(),
        [unpaid]
    );
    let quote = c
        .get(paid)
        .expect("get")
        .open_payment()
        .expect("quote")
        .clone();
    let done = c
        .record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            Msats::new(12_500_000),
        ))
        .expect("pay the rest");
    assert_eq!(done.status(), SessionStatus::Paid);
    let reopened = SqliteStore::open(&path).expect("reopen");
    assert_eq!(reopened.load(paid).expect("load"), Some(done));
    assert_eq!(
        session_rows(&reopened.load(unpaid).expect("load").expect("stored"))
            .expect("rows")
            .session
            .metadata
            .as_deref(),
        Some(r#"{"order":"B2"}"#)
    );
}
