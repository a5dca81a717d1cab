//! Schema 16 lists a session's events in its own row instead of the index
//! `events_by_session` (ADR 32): past 64 numbers the rest go to `session_events_beyond`,
//! a prune shrinks both, and a database of schema 15 upgrades with every session's events
//! reading back the same. Schema 17 keeps the older object a commit moves past in its
//! first event row (ADR 33), or apart when the commit has no event.

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{Commit, SqliteStore, Store};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, SessionId, SessionParams, SessionUpdate, TargetCurrency,
};
use rust_decimal::Decimal;

/// Takes a database of schema 18 back to schema 15: no transfer lists, their index back
/// (ADR 34), the older objects in `session_objects` again (ADR 33), no event lists, their
/// index back (ADR 32).
pub(crate) const BACK_TO_SCHEMA_15: &str = "
    ALTER TABLE sessions DROP COLUMN transfer_keys;
    DROP TABLE session_transfers_beyond;
    CREATE INDEX transfers_by_session ON transfers (session_id);
    INSERT INTO session_objects (session_id, version, base, body)
        SELECT 'cs_' || lower(hex(session_id)), older_version, older_base, older_body
        FROM events WHERE older_version IS NOT NULL;
    ALTER TABLE events DROP COLUMN older_version;
    ALTER TABLE events DROP COLUMN older_base;
    ALTER TABLE events DROP COLUMN older_body;
    DROP INDEX events_unfiled;
    DROP TABLE session_events_beyond;
    ALTER TABLE sessions DROP COLUMN event_seqs;
    CREATE INDEX events_by_session ON events (session_id, seq);
    PRAGMA user_version = 15;";

/// The number of event numbers a session's row lists before the rest go beyond it.
const LISTED: usize = 64;

/// The service of these tests: USD at 1,000 sats, on a SQLite file.
pub(crate) type Service = Checkout<SqliteStore, FixedRates, TestRequestGenerator>;

/// A [`Service`] on the file at `path`.
pub(crate) fn service(path: &std::path::Path) -> Service {
    let usd = Currency::from_code("USD").expect("USD");
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(
        SqliteStore::open(path).expect("open"),
        rates,
        TestRequestGenerator,
    )
}

fn create(c: &Service) -> CheckoutSession {
    let usd = Currency::from_code("USD").expect("USD");
    c.create(SessionParams::new(Decimal::new(2500, 2), usd), None)
        .expect("create")
}

/// `n` updates of session `id`, an event each.
fn update(c: &Service, id: SessionId, n: usize, tag: &str) {
    for i in 0..n {
        c.update(id, &SessionUpdate::new().description(format!("{tag} {i}")))
            .expect("update");
    }
}

/// Session `id`'s events as (number, JSON), from the session's timeline.
fn timeline(store: &SqliteStore, id: SessionId) -> Vec<(u64, String)> {
    let events = store.session_events(id).expect("session events");
    events.iter().map(|e| (e.seq, e.event.to_json())).collect()
}

/// Session `id`'s events as (number, JSON), picked out of the whole outbox.
fn in_outbox(store: &SqliteStore, id: SessionId) -> Vec<(u64, String)> {
    let events = store.events_after(None, 100_000).expect("events");
    events
        .iter()
        .filter(|e| e.event.session_id == Some(id))
        .map(|e| (e.seq, e.event.to_json()))
        .collect()
}

/// How many numbers session `id`'s row lists, and how many are filed beyond it.
fn filed(path: &std::path::Path, id: SessionId) -> (usize, usize) {
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    let listed: i64 = raw
        .query_row(
            "SELECT coalesce(json_array_length(event_seqs), 0) FROM sessions WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .expect("list");
    let beyond: i64 = raw
        .query_row(
            "SELECT count(*) FROM session_events_beyond WHERE session_id = ?1",
            [&id.as_uuid().into_bytes()[..]],
            |r| r.get(0),
        )
        .expect("beyond");
    let count = |n: i64| usize::try_from(n).expect("count");
    (count(listed), count(beyond))
}

/// A service on a fresh file with two sessions: one ten events past its list, then one
/// with `n` updates.
struct Two {
    _dir: crate::common::TempDir,
    path: std::path::PathBuf,
    c: Service,
    busy: CheckoutSession,
    other: CheckoutSession,
}

fn two_sessions(name: &str, n: usize) -> Two {
    let dir = crate::common::TempDir::new(name);
    let path = dir.file("lists.sqlite3");
    let c = service(&path);
    let busy = create(&c);
    let other = create(&c);
    update(&c, busy.id(), LISTED + 10, "busy");
    update(&c, other.id(), n, "other");
    Two {
        _dir: dir,
        path,
        c,
        busy,
        other,
    }
}

#[test]
fn a_session_lists_its_events_and_files_the_rest_beyond_its_row() {
    let Two {
        _dir,
        path,
        c,
        busy,
        other: small,
    } = two_sessions("event-lists", 2);

    for s in [&small, &busy] {
        let timeline = timeline(c.store(), s.id());
        assert!(!timeline.is_empty());
        assert_eq!(timeline, in_outbox(c.store(), s.id()), "exactly its events");
        let (listed, beyond) = filed(&path, s.id());
        assert_eq!(listed + beyond, timeline.len(), "each event filed once");
        assert!(listed <= LISTED);
    }
    assert!(filed(&path, busy.id()).1 > 0, "the busy session spilled");
    assert_eq!(filed(&path, small.id()).1, 0);

    // A page from the middle, across the list and the rows beyond it.
    let all = timeline(c.store(), busy.id());
    let page = c
        .store()
        .session_events_after(busy.id(), Some(all[LISTED - 3].0), 5)
        .expect("page");
    let page: Vec<(u64, String)> = page.iter().map(|e| (e.seq, e.event.to_json())).collect();
    assert_eq!(page, all[LISTED - 2..LISTED + 3]);
}

#[test]
fn a_prune_shrinks_the_lists_and_they_have_room_again() {
    let Two {
        _dir,
        path,
        c,
        busy,
        other,
    } = two_sessions("event-lists-prune", 3);
    let all = timeline(c.store(), busy.id());
    let others = timeline(c.store(), other.id());
    assert!(filed(&path, busy.id()).1 > 0);

    // One session's events through the middle of its rows beyond the list.
    let through = all[LISTED + 4].0;
    let pruned = c
        .store()
        .prune_session_events(busy.id(), through)
        .expect("prune");
    let kept = timeline(c.store(), busy.id());
    assert_eq!(pruned + kept.len(), all.len());
    let later: Vec<(u64, String)> = all.iter().filter(|e| e.0 > through).cloned().collect();
    assert_eq!(kept, later, "the later ones stay, unchanged");
    assert_eq!(kept, in_outbox(c.store(), busy.id()));
    let (listed, beyond) = filed(&path, busy.id());
    assert_eq!(
        listed + beyond,
        kept.len(),
        "no number of a pruned event is left"
    );
    assert_eq!(
        timeline(c.store(), other.id()),
        others,
        "others keep theirs"
    );

    // The list has room again: the next events are listed, and read in order.
    update(&c, busy.id(), 3, "after");
    let (listed_after, beyond_after) = filed(&path, busy.id());
    assert_eq!((listed_after, beyond_after), (listed + 3, beyond));
    let now = timeline(c.store(), busy.id());
    assert_eq!(now, in_outbox(c.store(), busy.id()));
    assert!(now.windows(2).all(|w| w[0].0 < w[1].0));

    // The whole outbox through the newest but one: every list empties but the newest.
    let newest = c.store().events_after(None, 100_000).expect("events");
    let newest = newest.last().expect("events").seq;
    c.store().prune_events(newest, 10_000).expect("prune all");
    let (l1, b1) = filed(&path, busy.id());
    let (l2, b2) = filed(&path, other.id());
    assert_eq!(l1 + b1 + l2 + b2, 1, "only the newest event is left");
    assert_eq!(timeline(c.store(), busy.id()).len(), l1 + b1);
}

#[test]
fn a_database_of_schema_15_lists_every_sessions_events() {
    let dir = crate::common::TempDir::new("event-lists-upgrade");
    let path = dir.file("v15.sqlite3");
    let (small, busy) = {
        let c = service(&path);
        let small = create(&c);
        let busy = create(&c);
        update(&c, busy.id(), LISTED + 6, "busy");
        update(&c, small.id(), 1, "small");
        (small.id(), busy.id())
    };
    let before: Vec<Vec<(u64, String)>> = {
        let store = SqliteStore::open(&path).expect("open");
        let b = vec![timeline(&store, small), timeline(&store, busy)];
        store.close().expect("close");
        b
    };
    {
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        raw.execute_batch(BACK_TO_SCHEMA_15).expect("schema 15");
    }

    let store = SqliteStore::open(&path).expect("upgrade");
    assert_eq!(
        store.schema_version(),
        Ok(SqliteStore::latest_schema_version())
    );
    assert_eq!(
        vec![timeline(&store, small), timeline(&store, busy)],
        before,
        "every session's events read back the same"
    );
    store.close().expect("close");
    assert_eq!(filed(&path, small), (before[0].len(), 0));
    assert_eq!(filed(&path, busy), (LISTED, before[1].len() - LISTED));
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let old_index: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'events_by_session'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    assert_eq!(old_index, 0, "the index is gone");
    drop(raw);

    // The upgraded lists go on from where they were.
    let c = service(&path);
    update(&c, small, 2, "later");
    update(&c, busy, 2, "later");
    for id in [small, busy] {
        assert_eq!(timeline(c.store(), id), in_outbox(c.store(), id));
    }
    assert_eq!(filed(&path, small), (before[0].len() + 2, 0));
    assert_eq!(filed(&path, busy), (LISTED, before[1].len() - LISTED + 2));
}

/// How many older objects are kept apart (`session_objects`) and by event rows.
fn older_objects(path: &std::path::Path) -> (i64, i64) {
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    raw.query_row(
        "SELECT (SELECT count(*) FROM session_objects),
                (SELECT count(*) FROM events WHERE older_version IS NOT NULL)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("older objects")
}

#[test]
fn a_commit_keeps_the_object_it_moves_past_in_its_first_event_or_apart() {
    let dir = crate::common::TempDir::new("older-objects");
    let path = dir.file("older.sqlite3");
    let c = service(&path);
    let s = create(&c);
    update(&c, s.id(), 2, "noted");
    // Two commits moved past an object; each first event keeps it.
    assert_eq!(older_objects(&path), (0, 2));
    let before = timeline(c.store(), s.id());

    // A commit without events (none the service makes) keeps it apart.
    let mut session = c.store().load(s.id()).expect("load").expect("session");
    let version = session.version();
    let change = session
        .update(
            &SessionUpdate::new().description("quiet"),
            time::OffsetDateTime::now_utc(),
        )
        .expect("core update");
    let quiet = Commit::new(session, Some(version), &change, Vec::new());
    c.store().commit(&quiet).expect("commit without events");
    assert_eq!(older_objects(&path), (1, 2));
    // The events of the version it moved past now read their object through it.
    assert_eq!(timeline(c.store(), s.id()), before);

    // Its rows keep no object (no event names one), so the next commit has none to keep.
    update(&c, s.id(), 1, "loud");
    assert_eq!(older_objects(&path), (1, 2));
    update(&c, s.id(), 1, "louder");
    assert_eq!(older_objects(&path), (1, 3));
    let after = timeline(c.store(), s.id());
    assert_eq!(
        after[..before.len()],
        before[..],
        "the older events read the same"
    );
    assert_eq!(after, in_outbox(c.store(), s.id()));
}
