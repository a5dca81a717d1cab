//! Thin events on the SQL stores: SQLite's events keep no object (the session's rows keep
//! the latest, deltas the older ones, ADR 22), PostgreSQL's share one per commit, and on
//! both every event reads back exactly as it was committed (the webhook payload is the same
//! JSON, byte for byte); anything missing or damaged on the way is reported as corrupt.

use std::sync::{Arc, Mutex};

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{PostgresStore, SqliteStore, Store, StoreError};
use bitcoin_checkout::testkit::ObservedStore;
use bitcoin_checkout::{
    Checkout, Currency, Event, Msats, SessionId, SessionParams, SessionUpdate, TargetCurrency,
    TransferReport,
};
use rust_decimal::Decimal;

/// Creates a session on `store`, pays half of it and then the rest; returns its id and the
/// JSON of every event its commits carried, in order.
fn lifecycle<S: Store>(store: S) -> (SessionId, Vec<String>) {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let c = recording(store, &seen);
    let usd = Currency::from_code("USD").unwrap();
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

/// A service on `store` (USD at 1,000 sats) that adds the events of each commit that
/// lands to `seen`.
fn recording<S: Store>(
    store: S,
    seen: &Arc<Mutex<Vec<Event>>>,
) -> Checkout<impl Store, FixedRates, TestRequestGenerator> {
    let log = Arc::clone(seen);
    let observed = ObservedStore::new(store).on_commit(move |commit, result| {
        if result.is_ok() {
            log.lock().unwrap().extend(commit.events.iter().cloned());
        }
    });
    let usd = Currency::from_code("USD").unwrap();
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(observed, rates, TestRequestGenerator)
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
fn sqlite_events_keep_no_object_and_read_back_whole() {
    let dir = crate::common::TempDir::new("thin");
    let path = dir.file("thin.sqlite3");
    let (id, committed) = lifecycle(SqliteStore::open(&path).unwrap());
    let store = SqliteStore::open(&path).unwrap();
    assert_reads_back(&store, id, &committed);

    // No event row holds an object: each names its session's version (ADR 22) and keeps
    // only what its columns do not say (the type and the mode).
    let raw = rusqlite::Connection::open(&path).unwrap();
    let (rows, named, longest): (i64, i64, i64) = raw
        .query_row(
            "SELECT count(*), count(object_version), max(length(body)) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(rows as usize, committed.len());
    assert_eq!(named, rows, "every event names its object by version");
    assert!(longest <= 20, "an event body of {longest} bytes");

    // The two versions the session moved past (create, half paid) are kept as deltas
    // against the next one, far smaller than the objects themselves, each by the first
    // event of the commit that moved past it (ADR 33).
    let apart: i64 = raw
        .query_row("SELECT count(*) FROM session_objects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(apart, 0, "commits with events keep nothing apart");
    let kept: Vec<(i64, Option<i64>, i64)> = raw
        .prepare(
            "SELECT older_version, older_base, length(older_body) FROM events
             WHERE older_version IS NOT NULL ORDER BY older_version",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let object = store.load(id).unwrap().unwrap().event_json().len() as i64;
    assert_eq!(kept.len(), 2, "{kept:?}");
    for (version, base, length) in &kept {
        assert!(base.is_some_and(|b| b > *version), "{kept:?}");
        assert!(
            length * 3 < object,
            "a delta of {length} bytes for {object}"
        );
    }

    // Rows of earlier versions read as before: a whole event, and a thin row naming its
    // carrier (the first event of its commit, made whole).
    let first: Vec<(i64, Vec<u8>)> = raw
        .prepare("SELECT seq, id FROM events ORDER BY seq LIMIT 2")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    raw.execute(
        "UPDATE events SET body = ?1, object_version = NULL WHERE seq = ?2",
        rusqlite::params![committed[0], first[0].0],
    )
    .unwrap();
    // The second event of the create commit is its payment's: a part of the carrier's.
    let second: serde_json::Value = serde_json::from_str(&committed[1]).unwrap();
    let part = match second["data"]["object"]["object"].as_str() {
        Some("payment") => second["data"]["object"]["id"].as_str().map(str::to_owned),
        _ => None,
    };
    // Its body as earlier versions wrote it, repeating the type.
    let typed = format!(
        r#"{{"event_type":{},"livemode":false}}"#,
        second["event_type"]
    );
    raw.execute(
        "UPDATE events SET carrier = ?1, part = unhex(substr(?2, 4)), object_version = NULL,
             body = ?3
         WHERE seq = ?4",
        rusqlite::params![first[0].1, part, typed, first[1].0],
    )
    .unwrap();
    assert_reads_back(&store, id, &committed);

    // Damage on the way back is corrupt, never a wrong payload: a delta that does not
    // apply, a kept object missing, a listed payment missing.
    raw.execute(
        "UPDATE events SET older_body = '=99;' WHERE older_version = ?1",
        [kept[1].0],
    )
    .unwrap();
    assert!(matches!(
        store.session_events(id),
        Err(StoreError::Corrupt(_))
    ));
    raw.execute(
        "UPDATE events SET older_version = NULL, older_base = NULL, older_body = NULL
         WHERE older_version = ?1",
        [kept[1].0],
    )
    .unwrap();
    assert!(matches!(
        store.events_after(None, 100),
        Err(StoreError::Corrupt(_))
    ));
    raw.execute("UPDATE sessions SET object_payments = 'pi_gone'", [])
        .unwrap();
    let last = store.events_before(None, 1);
    assert!(matches!(last, Err(StoreError::Corrupt(_))), "{last:?}");
}

/// The outbox as schema 12 kept it, ids as text (for the tests that take a database
/// back to an earlier version): the blob ids of schema 13 (ADR 24) printed again.
pub(crate) const EVENTS_WITH_TEXT_IDS: &str = "
CREATE TABLE events_text (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, session_id TEXT,
    created INTEGER NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL,
    carrier TEXT, part TEXT, object_version INTEGER
) STRICT;
INSERT INTO events_text SELECT seq, 'evt_' || lower(hex(id)),
    CASE WHEN session_id IS NOT NULL THEN 'cs_' || lower(hex(session_id)) END,
    created, event_type, body,
    CASE WHEN carrier IS NOT NULL THEN 'evt_' || lower(hex(carrier)) END,
    CASE WHEN part IS NOT NULL THEN 'pi_' || lower(hex(part)) END,
    object_version
FROM events;
DROP TABLE events;
ALTER TABLE events_text RENAME TO events;
CREATE INDEX events_by_session ON events (session_id, seq);
CREATE INDEX events_by_id ON events (id, seq);
";

/// Schema 13 keeps the outbox's ids as 16 bytes (ADR 24): a database of schema 12 (text
/// ids, with thin rows naming a carrier and a part) upgrades with every event reading
/// back the same, the sequence going on from where it was, and the rows far smaller; an
/// id that is not a prefixed UUID stops the upgrade and leaves the database as it was.
#[test]
fn sqlite_outbox_ids_become_bytes_and_read_back_the_same() {
    let dir = crate::common::TempDir::new("byte-ids");
    let path = dir.file("v12.sqlite3");
    let (id, committed) = lifecycle(SqliteStore::open(&path).unwrap());
    crate::packed_rows::live_rows_as_text(&path);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let id_bytes = |raw: &rusqlite::Connection| -> i64 {
        raw.query_row(
            "SELECT sum(length(id) + length(session_id)) FROM events",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let small = id_bytes(&raw);
    // Back to schema 12, with the first event whole and the second (its payment's) a thin
    // row naming it as carrier and the payment as part, as schema 8 wrote them.
    raw.execute_batch(EVENTS_WITH_TEXT_IDS).unwrap();
    let second: serde_json::Value = serde_json::from_str(&committed[1]).unwrap();
    assert_eq!(second["data"]["object"]["object"], "payment");
    raw.execute(
        "UPDATE events SET body = ?1, object_version = NULL WHERE seq = 1",
        [&committed[0]],
    )
    .unwrap();
    raw.execute(
        "UPDATE events SET carrier = (SELECT id FROM events WHERE seq = 1), part = ?1,
             object_version = NULL
         WHERE seq = 2",
        [second["data"]["object"]["id"].as_str().unwrap()],
    )
    .unwrap();
    raw.execute_batch("PRAGMA user_version = 12;").unwrap();
    let (carrier, part): (String, String) = raw
        .query_row("SELECT carrier, part FROM events WHERE seq = 2", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(id_bytes(&raw) > 2 * small, "text ids take 35-36 bytes each");
    let last: i64 = raw
        .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))
        .unwrap();
    // A damaged id: the upgrade refuses it and changes nothing.
    raw.execute(
        "UPDATE events SET session_id = 'cs_nothex' WHERE seq = 3",
        [],
    )
    .unwrap();
    let refused = SqliteStore::open(&path);
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 12);
    raw.execute(
        "UPDATE events SET session_id = (SELECT session_id FROM events WHERE seq = 1)
         WHERE seq = 3",
        [],
    )
    .unwrap();

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version(),
        Ok(SqliteStore::latest_schema_version())
    );
    assert_eq!(id_bytes(&raw), small);
    let (carrier_now, part_now): (Vec<u8>, Vec<u8>) = raw
        .query_row("SELECT carrier, part FROM events WHERE seq = 2", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(format!("evt_{}", hex(&carrier_now)), carrier);
    assert_eq!(format!("pi_{}", hex(&part_now)), part);
    // Every event reads back as committed, the thin row's object from its carrier.
    assert_reads_back(&store, id, &committed);
    // The next event continues the sequence.
    drop(store);
    let (_, more) = lifecycle(SqliteStore::open(&path).unwrap());
    let store = SqliteStore::open(&path).unwrap();
    let after = store.events_after(Some(last as u64), 100).unwrap();
    assert_eq!(after.len(), more.len());
    assert!(after.iter().all(|e| e.seq > last as u64));
}

#[test]
fn sqlite_pruning_events_drops_the_objects_only_they_needed() {
    let dir = crate::common::TempDir::new("thin-prune");
    let path = dir.file("prune.sqlite3");
    let (id, committed) = lifecycle(SqliteStore::open(&path).unwrap());
    let store = SqliteStore::open(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    // The older objects, as the events that carry them keep them (ADR 33).
    let kept = |raw: &rusqlite::Connection| -> Vec<i64> {
        raw.prepare("SELECT older_version FROM events WHERE older_version IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let both = kept(&raw);
    assert_eq!(both.len(), 2, "{both:?}");
    // The events of the first commit go. The object of its version is no longer needed,
    // but it goes with the event that carries it, the first of the next commit.
    let events = store.session_events(id).unwrap();
    let first_commit = events
        .iter()
        .take_while(|e| e.event.created == events[0].event.created)
        .count();
    let through = events[first_commit - 1].seq;
    assert_eq!(store.prune_session_events(id, through), Ok(first_commit));
    assert_eq!(kept(&raw), both);
    let left: Vec<String> = store
        .session_events(id)
        .unwrap()
        .iter()
        .map(|e| e.event.to_json())
        .collect();
    assert_eq!(left, committed[first_commit..]);
    // Every event but the newest (the outbox keeps its last sequence number).
    let newest = store.events_before(None, 1).unwrap()[0].seq;
    store.prune_events(newest, 100).unwrap();
    assert!(
        kept(&raw).is_empty(),
        "the newest event's object is the live one"
    );
    assert_eq!(
        store.session_events(id).unwrap()[0].event.to_json(),
        *committed.last().unwrap()
    );
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

/// Two stores on one file take turns committing the same session: each keeps in memory the
/// object its own last commit left (ADR 30), which the other's commits then move past. The
/// store whose turn comes back must notice and read the file: had it used its own older
/// object, the deltas it keeps would rebuild wrong payloads for the events in between.
#[test]
fn sqlite_stores_sharing_a_file_keep_each_others_objects_exact() {
    let dir = crate::common::TempDir::new("thin-turns");
    let path = dir.file("turns.sqlite3");
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let a = recording(SqliteStore::open(&path).unwrap(), &seen);
    let b = recording(SqliteStore::open(&path).unwrap(), &seen);
    let usd = Currency::from_code("USD").unwrap();
    let s = a
        .create(SessionParams::new(Decimal::new(2_500, 2), usd), None)
        .unwrap();
    // Between two payments, b changes only the description: the payments the object
    // lists stay the same, so only the version tells a's object from the file's.
    a.update(s.id(), &SessionUpdate::new().description("first"))
        .unwrap();
    b.update(s.id(), &SessionUpdate::new().description("second"))
        .unwrap();
    // a, b, a, then a again (its own object, now current), then b (behind by two).
    let turns = [&a, &b, &a, &a, &b];
    for (i, c) in turns.into_iter().enumerate() {
        let quote = c.get(s.id()).unwrap().open_payment().unwrap().clone();
        let msats = if i + 1 == turns.len() {
            quote.target_msats()
        } else {
            Msats::new(2_000_000)
        };
        c.record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            msats,
        ))
        .unwrap();
    }
    let committed: Vec<String> = seen.lock().unwrap().iter().map(Event::to_json).collect();
    assert!(committed.len() > 12, "{} events", committed.len());
    assert_reads_back(&SqliteStore::open(&path).unwrap(), s.id(), &committed);
}
