//! Thin events on the SQL stores: the events of one commit keep one copy of their object,
//! and every event reads back exactly as it was committed (the webhook payload is the same
//! JSON, byte for byte); a thin row whose carrier is gone is reported as corrupt.

use std::sync::{Arc, Mutex};

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{PostgresStore, SqliteStore, Store, StoreError};
use bitcoin_checkout::testkit::ObservedStore;
use bitcoin_checkout::{
    Checkout, Currency, Event, Msats, SessionId, SessionParams, TargetCurrency, TransferReport,
};
use rust_decimal::Decimal;

/// Creates a session on `store`, pays half of it and then the rest; returns its id and the
/// JSON of every event its commits carried, in order.
fn lifecycle<S: Store>(store: S) -> (SessionId, Vec<String>) {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let log = Arc::clone(&seen);
    let observed = ObservedStore::new(store).on_commit(move |commit, result| {
        if result.is_ok() {
            log.lock().unwrap().extend(commit.events.iter().cloned());
        }
    });
    let usd = Currency::from_code("USD").unwrap();
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let c = Checkout::new(observed, rates, TestRequestGenerator);
    let s = c
        .create(SessionParams::new(Decimal::new(2_500, 2), usd), None)
        .unwrap();
    for part in [Some(12_500_000), None] {
        let quote = c.get(s.id()).unwrap().open_payment().unwrap().clone();
        let msats = part.map_or(quote.target_msats(), Msats::new);
        c.record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            msats,
        ))
        .unwrap();
    }
    let events = seen.lock().unwrap().iter().map(Event::to_json).collect();
    (s.id(), events)
}

/// Every read path gives back the committed events: by session, by the outbox cursor,
/// newest first and one by one.
fn assert_reads_back<S: Store>(store: &S, id: SessionId, committed: &[String]) {
    let json = |events: &[bitcoin_checkout::store::StoredEvent]| -> Vec<String> {
        events.iter().map(|e| e.event.to_json()).collect()
    };
    assert_eq!(json(&store.session_events(id).unwrap()), committed);
    let all = store.events_after(None, 100).unwrap();
    assert_eq!(json(&all), committed);
    let mut newest = store.events_before(None, 100).unwrap();
    newest.reverse();
    assert_eq!(newest, all);
    for e in &all {
        assert_eq!(store.event(e.event.id).unwrap().as_ref(), Some(e));
    }
}

#[test]
fn sqlite_events_share_their_objects_and_read_back_whole() {
    let dir = std::env::temp_dir().join(format!("thin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("thin.sqlite3");
    let _ = std::fs::remove_file(&path);
    let (id, committed) = lifecycle(SqliteStore::open(&path).unwrap());
    let store = SqliteStore::open(&path).unwrap();
    assert_reads_back(&store, id, &committed);

    let raw = rusqlite::Connection::open(&path).unwrap();
    let (rows, thin, stored): (i64, i64, i64) = raw
        .query_row(
            "SELECT count(*), count(carrier), sum(length(body)) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let whole: usize = committed.iter().map(String::len).sum();
    // Three commits (create, half, rest): one carrier each, the other events thin.
    assert_eq!(rows as usize, committed.len());
    assert_eq!(rows - thin, 3, "one object per commit");
    assert!(
        (stored as usize) * 2 < whole,
        "{stored} bytes stored for {whole} bytes of events"
    );

    // A thin row keeps only what its columns do not say (the type and the mode).
    let longest_thin: i64 = raw
        .query_row(
            "SELECT max(length(body)) FROM events WHERE carrier IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(longest_thin < 64, "a thin body of {longest_thin} bytes");

    // A thin row written by an earlier version (its whole envelope, with a null object)
    // reads back the same.
    let (seq, event_id): (i64, String) = raw
        .query_row(
            "SELECT seq, id FROM events WHERE carrier IS NOT NULL ORDER BY seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let position = committed
        .iter()
        .position(|e| e.contains(&event_id))
        .unwrap();
    let mut envelope: serde_json::Value = serde_json::from_str(&committed[position]).unwrap();
    envelope["data"]["object"] = serde_json::Value::Null;
    raw.execute(
        "UPDATE events SET body = ?1 WHERE seq = ?2",
        rusqlite::params![envelope.to_string(), seq],
    )
    .unwrap();
    assert_reads_back(&store, id, &committed);

    // A thin row whose columns do not decode: corrupt, not a guess.
    let compact: String = raw
        .query_row(
            "SELECT body FROM events WHERE carrier IS NOT NULL AND seq > ?1 ORDER BY seq LIMIT 1",
            [seq],
            |r| r.get(0),
        )
        .unwrap();
    assert!(compact.starts_with(r#"{"event_type":"#), "{compact}");
    raw.execute(
        "UPDATE events SET session_id = 'not-a-session' WHERE carrier IS NOT NULL AND seq > ?1",
        [seq],
    )
    .unwrap();
    assert!(matches!(
        store.events_after(None, 100),
        Err(StoreError::Corrupt(_))
    ));

    // A thin row whose carrier is gone: corrupt, not a wrong payload.
    raw.execute(
        "DELETE FROM events WHERE carrier IS NULL AND seq = (SELECT min(seq) FROM events)",
        [],
    )
    .unwrap();
    assert!(matches!(
        store.session_events(id),
        Err(StoreError::Corrupt(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_events_share_their_objects_and_read_back_whole() {
    let url = std::env::var("BITCOIN_CHECKOUT_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("BITCOIN_CHECKOUT_PG is not set: run scripts/test"));
    let schema = format!("thin_{}", SessionId::generate().as_uuid().simple());
    let store = PostgresStore::connect_in_schema(&url, &schema, 1).unwrap();
    let (id, committed) = lifecycle(&store);
    assert_reads_back(&store, id, &committed);
}
