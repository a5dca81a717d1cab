//! The store conformance suites (sessions, links, webhook delivery, address indexes)
//! against the in-memory implementations and the SQLite store (in memory and
//! file-backed), plus what only the SQLite store has: closing, reopening a file, schema
//! versions and corrupt rows.
#![cfg(feature = "testkit")]

use crate::common;

use bitcoin_checkout::store::{MemoryStore, Store, StoreError};

/// The in-memory store, one `#[test]` per check (the macros a store author uses).
mod memory {
    bitcoin_checkout::store_tests!(bitcoin_checkout::store::MemoryStore::new());
    bitcoin_checkout::link_store_tests!(bitcoin_checkout::store::MemoryStore::new());
    #[cfg(feature = "webhooks")]
    bitcoin_checkout::delivery_store_tests!(bitcoin_checkout::store::MemoryStore::new());
    bitcoin_checkout::address_index_tests!(bitcoin_checkout::request::MemoryAddressIndex::new());
    bitcoin_checkout::resume_store_tests!(bitcoin_checkout::store::MemoryStore::new());
}

#[test]
fn memory_store_close_refuses_later_calls() {
    let store = MemoryStore::new();
    store.close();
    assert_eq!(
        store.load(bitcoin_checkout::SessionId::generate()),
        Err(StoreError::Closed)
    );
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::common::TempDir;

    use bitcoin_checkout::clock::ManualClock;
    use bitcoin_checkout::link::LinkId;
    use bitcoin_checkout::rates::FixedRates;
    use bitcoin_checkout::request::AddressIndex;
    use bitcoin_checkout::request::{RequestError, TestRequestGenerator};
    use bitcoin_checkout::store::{
        Corruption, LinkStore, ListQuery, SqliteStore, Store, StoreError, rows,
    };
    use bitcoin_checkout::testkit::conformance;
    use bitcoin_checkout::{
        Checkout, CheckoutSession, Currency, Metadata, MetadataValue, Msats, SessionId,
        SessionParams, TargetCurrency, TransferReport,
    };
    use rust_decimal::Decimal;
    use time::{Duration, OffsetDateTime};

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time")
    }

    fn usd() -> Currency {
        Currency::from_code("USD").expect("USD")
    }

    /// The head versions 1 and 2 of the schema stored: the session's JSON without its list
    /// of transfers (every payment, totals and flags included), cut textually out of
    /// `to_json()` so that every number keeps its exact form.
    fn v1_head(s: &CheckoutSession) -> String {
        let json = s.to_json();
        let fields: std::collections::BTreeMap<&str, &serde_json::value::RawValue> =
            serde_json::from_str(&json).expect("session json");
        let Some(transfers) = fields.get("transfers") else {
            return json;
        };
        let value = transfers.get();
        let start = value.as_ptr() as usize - json.as_ptr() as usize;
        let prefix = ",\"transfers\":";
        assert!(json[..start].ends_with(prefix), "{json}");
        format!(
            "{}{}",
            &json[..start - prefix.len()],
            &json[start + value.len()..]
        )
    }

    /// The head the store keeps now: [`rows::session_rows`]'s session row head (no payments,
    /// no transfers).
    fn row_head(s: &CheckoutSession) -> String {
        rows::session_rows(s).expect("rows").session.head
    }

    fn checkout<'a>(
        store: &'a SqliteStore,
        clock: &'a ManualClock,
    ) -> Checkout<&'a SqliteStore, FixedRates, TestRequestGenerator, &'a ManualClock> {
        let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
        Checkout::new(store, rates, TestRequestGenerator).with_clock(clock)
    }

    /// SQLite in memory, one `#[test]` per check.
    mod in_memory {
        fn open() -> bitcoin_checkout::store::SqliteStore {
            bitcoin_checkout::store::SqliteStore::open_in_memory().expect("open in memory")
        }
        bitcoin_checkout::store_tests!(open());
        bitcoin_checkout::link_store_tests!(open());
        #[cfg(feature = "webhooks")]
        bitcoin_checkout::delivery_store_tests!(open());
        bitcoin_checkout::address_index_tests!(open());
        bitcoin_checkout::resume_store_tests!(open());
    }

    #[test]
    fn file_sqlite_store_conforms() {
        let dir = TempDir::new("conformance");
        let mut n = 0;
        conformance::run_all(|| {
            n += 1;
            SqliteStore::open(dir.file(&format!("store-{n}.db"))).expect("open file")
        });
    }

    #[test]
    fn file_sqlite_store_links_conform() {
        let dir = TempDir::new("conformance-links");
        let mut n = 0;
        conformance::run_links(|| {
            n += 1;
            SqliteStore::open(dir.file(&format!("links-{n}.db"))).expect("open file")
        });
    }

    /// Resume points in a file, shared by two stores on it (two processes' view): a save
    /// through one is a conflict for the other's stale expectation.
    #[test]
    fn file_sqlite_store_resume_points_conform() {
        use bitcoin_checkout::backend::ResumePoint;
        use bitcoin_checkout::store::ResumeStore;
        let dir = TempDir::new("conformance-resume");
        let mut n = 0;
        conformance::run_resume_store(|| {
            n += 1;
            SqliteStore::open(dir.file(&format!("resume-{n}.db"))).expect("open file")
        });
        let path = dir.file("shared.db");
        let (a, b) = (
            SqliteStore::open(&path).expect("open"),
            SqliteStore::open(&path).expect("open again"),
        );
        let first = ResumePoint::new("1");
        a.save_resume_point("lnbits:w", None, &first).unwrap();
        assert_eq!(b.resume_point("lnbits:w").unwrap(), Some(first.clone()));
        b.save_resume_point("lnbits:w", Some(&first), &ResumePoint::new("2"))
            .unwrap();
        assert_eq!(
            a.save_resume_point("lnbits:w", Some(&first), &ResumePoint::new("3")),
            Err(StoreError::Conflict)
        );
        drop((a, b));
        let reopened = SqliteStore::open(&path).expect("reopen");
        assert_eq!(
            reopened.resume_point("lnbits:w").unwrap(),
            Some(ResumePoint::new("2"))
        );
    }

    #[cfg(feature = "webhooks")]
    #[test]
    fn file_sqlite_store_delivery_conforms() {
        let dir = TempDir::new("conformance-delivery");
        let mut n = 0;
        conformance::run_delivery(|| {
            n += 1;
            SqliteStore::open(dir.file(&format!("delivery-{n}.db"))).expect("open file")
        });
    }

    #[test]
    fn file_sqlite_address_index_conforms() {
        let dir = TempDir::new("conformance-index");
        let mut n = 0;
        conformance::run_address_index(|| {
            n += 1;
            SqliteStore::open(dir.file(&format!("index-{n}.db"))).expect("open file")
        });
    }

    #[test]
    fn file_sqlite_store_conforms_with_synchronous_full() {
        let dir = TempDir::new("conformance-full");
        let store = SqliteStore::open(dir.file("full.db"))
            .and_then(SqliteStore::with_synchronous_full)
            .and_then(|s| s.with_busy_timeout(std::time::Duration::from_secs(10)))
            .expect("open file");
        conformance::check_round_trip(&store);
        conformance::check_service_lifecycle(&store);
    }

    #[test]
    fn a_file_keeps_everything_across_reopening() {
        let dir = TempDir::new("reopen");
        let path = dir.file("reopen.db");
        let clock = ManualClock::new(t0());
        let store = SqliteStore::open(&path).expect("open");
        assert_eq!(
            store.schema_version(),
            Ok(SqliteStore::latest_schema_version())
        );
        let c = checkout(&store, &clock);
        let s = c
            .create(SessionParams::new(Decimal::new(2500, 2), usd()), Some("k1"))
            .expect("create");
        let hash = TestRequestGenerator::payment_hash(s.open_payment().expect("quote").id());
        let s = c
            .record_transfer(TransferReport::lightning(hash, Msats::new(25_000_000)))
            .expect("pay");
        let events = store.events_after(None, 100).expect("events");
        store.close().expect("close");

        let again = SqliteStore::open(&path).expect("reopen");
        assert_eq!(
            again.schema_version(),
            Ok(SqliteStore::latest_schema_version())
        );
        assert_eq!(again.load(s.id()), Ok(Some(s.clone())));
        assert_eq!(again.events_after(None, 100), Ok(events));
        assert_eq!(
            again.idempotency("k1").map(|r| r.map(|r| r.session_id)),
            Ok(Some(s.id()))
        );
        let page = again.list(&ListQuery::default()).expect("list");
        assert_eq!(page.data, vec![s]);
    }

    #[test]
    fn closed_store_refuses_every_call() {
        let store = SqliteStore::open_in_memory().expect("open");
        store.close().expect("close");
        let id = SessionId::generate();
        assert_eq!(store.load(id), Err(StoreError::Closed));
        assert_eq!(store.list(&ListQuery::default()), Err(StoreError::Closed));
        assert_eq!(store.due(t0(), 10), Err(StoreError::Closed));
        assert_eq!(store.events_after(None, 10), Err(StoreError::Closed));
        assert_eq!(store.session_events(id), Err(StoreError::Closed));
        assert_eq!(store.idempotency("k"), Err(StoreError::Closed));
        assert_eq!(store.find_by_address("a"), Err(StoreError::Closed));
        assert_eq!(store.close(), Err(StoreError::Closed));
        assert_eq!(store.schema_version(), Err(StoreError::Closed));
        let link = LinkId::Payment(bitcoin_checkout::PaymentLinkId::generate());
        assert_eq!(store.load_link(link), Err(StoreError::Closed));
        assert_eq!(store.link_sessions(link), Err(StoreError::Closed));
        assert_eq!(
            store.reserve("wpkh(x)"),
            Err(RequestError::Backend {
                message: StoreError::Closed.to_string(),
                retryable: false,
            })
        );
        #[cfg(feature = "webhooks")]
        {
            use bitcoin_checkout::webhook::DeliveryStore;
            let ep = bitcoin_checkout::EndpointId::generate();
            assert!(matches!(store.endpoints(), Err(StoreError::Closed)));
            assert_eq!(store.cursor(ep), Err(StoreError::Closed));
            assert_eq!(store.schedule(ep, 1, &[]), Err(StoreError::Closed));
            assert_eq!(store.pending(10), Err(StoreError::Closed));
            assert_eq!(store.deliveries(ep), Err(StoreError::Closed));
        }
        assert!(!StoreError::Closed.is_retryable());
    }

    /// The schema of version 1, as released: a database created by it must upgrade.
    const SCHEMA_V1: &str = r#"
CREATE TABLE sessions (
    id      TEXT    NOT NULL PRIMARY KEY,
    created INTEGER NOT NULL,
    status  TEXT    NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 0),
    wake_at INTEGER,
    head    TEXT    NOT NULL
) STRICT;
CREATE INDEX sessions_by_created ON sessions (created, id);
CREATE INDEX sessions_by_status ON sessions (status, created, id);
CREATE INDEX sessions_by_wake ON sessions (wake_at, id) WHERE wake_at IS NOT NULL;

CREATE TABLE transfers (
    key        TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL,
    body       TEXT NOT NULL
) STRICT;
CREATE INDEX transfers_by_session ON transfers (session_id);

CREATE TABLE payment_hashes (
    hash       TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL
) STRICT;

CREATE TABLE addresses (
    address    TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL
) STRICT;

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL,
    session_id TEXT,
    created    INTEGER NOT NULL,
    event_type TEXT    NOT NULL,
    body       TEXT    NOT NULL
) STRICT;
CREATE INDEX events_by_session ON events (session_id, seq);

CREATE TABLE idempotency (
    key        TEXT    NOT NULL PRIMARY KEY,
    request    TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    created    INTEGER NOT NULL
) STRICT;
"#;

    fn millis(t: OffsetDateTime) -> i64 {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("ms")
    }

    #[test]
    fn a_version_1_database_upgrades_and_keeps_its_sessions() {
        // Sessions made elsewhere: one opened by a payment link, one without a link.
        let clock = ManualClock::new(t0());
        let scratch = SqliteStore::open_in_memory().expect("open");
        let c = checkout(&scratch, &clock);
        let link = c
            .create_payment_link(SessionParams::new(Decimal::new(500, 2), usd()), None)
            .expect("link");
        let linked = c.open_link(link.id(), None).expect("open");
        let metadata =
            Metadata::from_pairs([("order", MetadataValue::from("1001")), ("units", 3.into())])
                .expect("metadata");
        let plain = c
            .create(
                SessionParams::new(Decimal::new(700, 2), usd())
                    .source("shop", "wc_1001")
                    .metadata(metadata),
                None,
            )
            .expect("create");

        // A database as version 1 of the schema left it, holding both.
        let dir = TempDir::new("upgrade");
        let path = dir.file("v1.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("raw connection");
            conn.execute_batch(SCHEMA_V1).expect("schema v1");
            for s in [&linked, &plain] {
                conn.execute(
                    "INSERT INTO sessions (id, created, status, version, wake_at, head)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![
                        s.id().to_string(),
                        millis(s.created()),
                        s.status().as_str(),
                        i64::try_from(s.version()).expect("version"),
                        s.wake_at().map(millis),
                        v1_head(s)
                    ],
                )
                .expect("insert a v1 row");
            }
            conn.execute_batch("PRAGMA user_version = 1")
                .expect("version");
        }

        let store = SqliteStore::open(&path).expect("upgrade");
        assert_eq!(
            store.schema_version(),
            Ok(SqliteStore::latest_schema_version())
        );
        assert_eq!(SqliteStore::latest_schema_version(), 18);
        assert_eq!(store.load(linked.id()), Ok(Some(linked.clone())));
        assert_eq!(store.load(plain.id()), Ok(Some(plain.clone())));
        // The listing filters find the sessions stored before they existed (migration 4).
        for query in [
            ListQuery::new().source_id("wc_1001"),
            ListQuery::new().metadata("order", "1001"),
            ListQuery::new().metadata("units", "3"),
        ] {
            let found = store.list(&query).expect("list").data;
            assert_eq!(found, vec![plain.clone()], "{query:?}");
        }
        // The new column was filled from the stored sessions.
        assert_eq!(store.link_sessions(link.id()), Ok(vec![linked.id()]));
        // The new tables work.
        assert_eq!(store.reserve("wpkh(x)"), Ok(0));
        let c = checkout(&store, &clock);
        let again = c
            .create_checkout_link(SessionParams::new(Decimal::new(500, 2), usd()), None)
            .expect("link");
        let opened = c.open_link(again.id(), None).expect("open");
        assert_eq!(store.link_sessions(again.id()), Ok(vec![opened.id()]));
        store.close().expect("close");
        // Opening the upgraded file again applies nothing more.
        let reopened = SqliteStore::open(&path).expect("reopen");
        assert_eq!(
            reopened.schema_version(),
            Ok(SqliteStore::latest_schema_version())
        );
        assert_eq!(reopened.reserve("wpkh(x)"), Ok(1));
    }

    /// The schema of version 2 (migration 2, as released), applied over [`SCHEMA_V1`].
    const SCHEMA_V2: &str = r#"
CREATE TABLE links (
    id      TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL CHECK (version >= 0),
    body    TEXT    NOT NULL
) STRICT;

ALTER TABLE sessions ADD COLUMN link_id TEXT;
UPDATE sessions SET link_id = json_extract(head, '$.link')
    WHERE json_valid(head) AND json_type(head, '$.link') = 'text';
CREATE INDEX sessions_by_link ON sessions (link_id, created, id) WHERE link_id IS NOT NULL;

-- `body` is `Endpoint::to_stored_json()`: it CONTAINS THE ENDPOINT'S SIGNING SECRET in
-- clear (`whsec_...`). Protect the database file and its backups like the secret itself.
CREATE TABLE endpoints (
    id   TEXT NOT NULL PRIMARY KEY,
    body TEXT NOT NULL
) STRICT;

CREATE TABLE delivery_cursors (
    endpoint TEXT    NOT NULL PRIMARY KEY,
    cursor   INTEGER NOT NULL CHECK (cursor >= 0)
) STRICT;

CREATE TABLE deliveries (
    endpoint        TEXT    NOT NULL,
    seq             INTEGER NOT NULL CHECK (seq >= 0),
    status          TEXT    NOT NULL,
    next_attempt_at INTEGER,
    body            TEXT    NOT NULL,
    PRIMARY KEY (endpoint, seq)
) STRICT;
CREATE INDEX deliveries_by_status ON deliveries (status, endpoint, seq);

CREATE TABLE address_index (
    descriptor TEXT    NOT NULL PRIMARY KEY,
    next       INTEGER NOT NULL CHECK (next >= 0)
) STRICT;
"#;

    /// A session paid in parts: several quotes (payments), lightning and on-chain transfers.
    fn paid_in_parts(
        c: &Checkout<&SqliteStore, FixedRates, TestRequestGenerator, &ManualClock>,
        clock: &ManualClock,
        amount: i64,
    ) -> SessionId {
        let s = c
            .create(SessionParams::new(Decimal::new(amount, 2), usd()), None)
            .expect("create");
        for part in [3_000_000u64, 2_000_000, 1_000_000] {
            clock.advance(Duration::seconds(1));
            let quote = c.get(s.id()).expect("get");
            let quote = quote.open_payment().expect("an open quote");
            let hash = TestRequestGenerator::payment_hash(quote.id());
            c.record_transfer(TransferReport::lightning(hash, Msats::new(part)))
                .expect("pay a part");
        }
        clock.advance(Duration::seconds(1));
        let txid = bitcoin_checkout::Txid::from_byte_array(
            TestRequestGenerator::payment_hash(bitcoin_checkout::PaymentId::generate()).to_bytes(),
        );
        c.record_transfer(
            TransferReport::onchain(
                bitcoin_checkout::OutPoint::new(txid, 0),
                TestRequestGenerator::address(s.id()),
                bitcoin_checkout::Sats::new(1_000),
            )
            .confirmations(1),
        )
        .expect("pay on chain");
        s.id()
    }

    #[test]
    fn a_version_2_database_upgrades_payments_to_rows_of_their_own() {
        // Sessions made elsewhere: two paid in parts (several payments each), one fresh.
        let clock = ManualClock::new(t0());
        let scratch = SqliteStore::open_in_memory().expect("open");
        let c = checkout(&scratch, &clock);
        let ids = [
            paid_in_parts(&c, &clock, 2500),
            paid_in_parts(&c, &clock, 900),
            c.create(SessionParams::new(Decimal::new(700, 2), usd()), None)
                .expect("create")
                .id(),
        ];
        let sessions: Vec<_> = ids
            .iter()
            .map(|id| scratch.load(*id).expect("load").expect("stored"))
            .collect();
        assert!(
            sessions[0].payments().len() >= 3,
            "{:?}",
            sessions[0].payments().len()
        );
        assert!(sessions[0].transfers().count() >= 4);
        assert!(sessions[1].payments().len() >= 2);

        // A database as versions 1 and 2 of the schema left it, holding them.
        let dir = TempDir::new("upgrade-v2");
        let path = dir.file("v2.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("raw connection");
            conn.execute_batch(SCHEMA_V1).expect("schema v1");
            conn.execute_batch(SCHEMA_V2).expect("schema v2");
            for s in &sessions {
                conn.execute(
                    "INSERT INTO sessions (id, created, status, version, wake_at, head, link_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                    rusqlite::params![
                        s.id().to_string(),
                        millis(s.created()),
                        s.status().as_str(),
                        i64::try_from(s.version()).expect("version"),
                        s.wake_at().map(millis),
                        v1_head(s)
                    ],
                )
                .expect("insert a v2 row");
                for t in s.transfers() {
                    conn.execute(
                        "INSERT INTO transfers (key, session_id, body) VALUES (?1, ?2, ?3)",
                        rusqlite::params![
                            t.key.to_string(),
                            s.id().to_string(),
                            serde_json::to_string(t).expect("transfer json")
                        ],
                    )
                    .expect("insert a v2 transfer");
                }
                for p in s.payments() {
                    if let Some(inv) = &p.request().lightning {
                        conn.execute(
                            "INSERT INTO payment_hashes (hash, session_id) VALUES (?1, ?2)",
                            rusqlite::params![inv.payment_hash.to_string(), s.id().to_string()],
                        )
                        .expect("insert a v2 hash");
                    }
                }
            }
            conn.execute_batch("PRAGMA user_version = 2")
                .expect("version");
        }

        let store = SqliteStore::open(&path).expect("upgrade");
        assert_eq!(
            store.schema_version(),
            Ok(SqliteStore::latest_schema_version())
        );
        for s in &sessions {
            assert_eq!(store.load(s.id()).as_ref(), Ok(&Some(s.clone())));
        }
        let listed = store.list(&ListQuery::default()).expect("list");
        assert_eq!(listed.data.len(), sessions.len());
        for s in &listed.data {
            assert!(sessions.contains(s));
        }
        // Heads no longer list payments; each payment is a row of its own.
        {
            let conn = rusqlite::Connection::open(&path).expect("raw connection");
            let rows: i64 = conn
                .query_row("SELECT count(*) FROM payments", [], |r| r.get(0))
                .expect("count");
            let expected: usize = sessions.iter().map(|s| s.payments().len()).sum();
            assert_eq!(usize::try_from(rows).expect("count"), expected);
            // Each head is packed (migration 14): a blob smaller than its JSON.
            for s in &sessions {
                let (kind, bytes): (String, usize) = conn
                    .query_row(
                        "SELECT typeof(head), length(head) FROM sessions WHERE id = ?1",
                        [s.id().to_string()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .expect("head");
                assert_eq!(kind, "blob");
                assert!(
                    bytes < row_head(s).len() / 2,
                    "{bytes} of {}",
                    row_head(s).len()
                );
            }
        }
        // The upgraded sessions keep changing: pay the fresh one in full, one more part.
        let c = checkout(&store, &clock);
        let fresh = c.get(ids[2]).expect("get");
        let quote = fresh.open_payment().expect("quote");
        clock.advance(Duration::seconds(1));
        c.record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            quote.target_msats(),
        ))
        .expect("pay");
        let paid = store.load(ids[2]).expect("load").expect("stored");
        assert!(paid.transfers().count() == 1);
        store.close().expect("close");
        let reopened = SqliteStore::open(&path).expect("reopen");
        assert_eq!(
            reopened.schema_version(),
            Ok(SqliteStore::latest_schema_version())
        );
        assert_eq!(reopened.load(ids[2]), Ok(Some(paid)));
        assert_eq!(
            reopened.load(ids[0]).as_ref(),
            Ok(&Some(sessions[0].clone()))
        );
    }

    #[test]
    fn an_unreadable_session_row_fails_the_upgrade_as_corrupt() {
        let dir = TempDir::new("upgrade-corrupt");
        let path = dir.file("v2.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("raw connection");
            conn.execute_batch(SCHEMA_V1).expect("schema v1");
            conn.execute_batch(SCHEMA_V2).expect("schema v2");
            conn.execute(
                "INSERT INTO sessions (id, created, status, version, head)
                 VALUES ('cs_broken', 0, 'active', 1, 'not json')",
                [],
            )
            .expect("insert");
            conn.execute_batch("PRAGMA user_version = 2")
                .expect("version");
        }
        let err = SqliteStore::open(&path).expect_err("a corrupt row");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        // Nothing was migrated: the file is still at version 2.
        let conn = rusqlite::Connection::open(&path).expect("raw connection");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, 2);
    }

    /// Changes the file behind the store's back, with a connection of its own.
    fn tamper(path: &std::path::Path, sql: &str) {
        let conn = rusqlite::Connection::open(path).expect("open raw connection");
        conn.execute_batch(sql).expect("tamper");
    }

    #[test]
    fn corrupt_rows_are_reported_not_panicked_on() {
        let dir = TempDir::new("corrupt");
        let path = dir.file("corrupt.db");
        let clock = ManualClock::new(t0());
        let store = SqliteStore::open(&path).expect("open");
        let c = checkout(&store, &clock);
        let s = c
            .create(SessionParams::new(Decimal::new(2500, 2), usd()), Some("k"))
            .expect("create");
        let hash = TestRequestGenerator::payment_hash(s.open_payment().expect("quote").id());
        clock.advance(Duration::seconds(1));
        c.record_transfer(TransferReport::lightning(hash, Msats::new(1_000_000)))
            .expect("pay");

        tamper(&path, "UPDATE transfers SET body = '{\"key\": 12}'");
        assert!(
            matches!(store.load(s.id()), Err(StoreError::Corrupt(_))),
            "{:?}",
            store.load(s.id())
        );
        assert!(matches!(
            store.list(&ListQuery::default()),
            Err(StoreError::Corrupt(_))
        ));
        tamper(&path, "UPDATE sessions SET head = x'0100'");
        assert!(matches!(store.load(s.id()), Err(StoreError::Corrupt(_))));
        tamper(&path, "UPDATE events SET body = '[]' WHERE seq = 1");
        assert!(matches!(
            store.events_after(None, 10),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.session_events(s.id()),
            Err(StoreError::Corrupt(_))
        ));
        tamper(&path, "UPDATE idempotency SET session_id = 'cs_nope'");
        assert!(matches!(
            store.idempotency("k"),
            Err(StoreError::Corrupt(_))
        ));
        tamper(&path, "UPDATE payment_hashes SET session_id = 'x'");
        assert!(matches!(
            store.find_by_payment_hash(&hash),
            Err(StoreError::Corrupt(_))
        ));
        assert!(!StoreError::Corrupt(Corruption::undecodable("row", "reason")).is_retryable());
    }

    #[test]
    fn corrupt_link_and_webhook_rows_are_reported() {
        let dir = TempDir::new("corrupt-links");
        let path = dir.file("corrupt.db");
        let clock = ManualClock::new(t0());
        let store = SqliteStore::open(&path).expect("open");
        let c = checkout(&store, &clock);
        let link = c
            .create_payment_link(SessionParams::new(Decimal::new(500, 2), usd()), None)
            .expect("link");
        tamper(&path, "UPDATE links SET version = 7");
        assert!(matches!(
            store.load_link(link.id()),
            Err(StoreError::Corrupt(_))
        ));
        tamper(&path, "UPDATE links SET body = 'not json'");
        assert!(matches!(
            store.load_link(link.id()),
            Err(StoreError::Corrupt(_))
        ));
        #[cfg(feature = "webhooks")]
        {
            use bitcoin_checkout::webhook::{
                Delivery, DeliveryStatus, DeliveryStore, Endpoint, WebhookSecret,
            };
            let secret = WebhookSecret::from_bytes(&[1; 32]).expect("secret");
            let ep = Endpoint::new("https://merchant.example/hooks", secret, t0()).expect("ep");
            store.save_endpoint(&ep).expect("save");
            let d = Delivery {
                endpoint: ep.id,
                seq: 1,
                event_id: bitcoin_checkout::EventId::generate(),
                session_id: None,
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(t0()),
                attempts: Vec::new(),
            };
            store.schedule(ep.id, 1, &[d]).expect("schedule");
            tamper(&path, "UPDATE endpoints SET body = '{}'");
            assert!(matches!(store.endpoints(), Err(StoreError::Corrupt(_))));
            tamper(&path, "UPDATE deliveries SET seq = 2");
            assert!(matches!(store.pending(10), Err(StoreError::Corrupt(_))));
            tamper(&path, "UPDATE deliveries SET body = '[]'");
            assert!(matches!(
                store.deliveries(ep.id),
                Err(StoreError::Corrupt(_))
            ));
            // The schema refuses a negative cursor outright.
            let conn = rusqlite::Connection::open(&path).expect("raw connection");
            assert!(
                conn.execute_batch("UPDATE delivery_cursors SET cursor = -1")
                    .is_err()
            );
            assert_eq!(store.cursor(ep.id), Ok(1));
        }
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused() {
        let dir = TempDir::new("newer");
        let path = dir.file("newer.db");
        SqliteStore::open(&path)
            .expect("open")
            .close()
            .expect("close");
        tamper(&path, "PRAGMA user_version = 99");
        match SqliteStore::open(&path) {
            Err(StoreError::Backend {
                retryable: false,
                message,
            }) => {
                assert!(message.contains("99"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = TempDir::new("garbage");
        let path = dir.file("garbage.db");
        std::fs::write(&path, vec![0x5a; 8192]).expect("write");
        let err = SqliteStore::open(&path).expect_err("not a database");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn a_transfer_cannot_move_to_another_session() {
        // Two sessions each claiming one on-chain output (a lying chain watcher): the
        // second commit is refused rather than silently moving the transfer.
        let store = SqliteStore::open_in_memory().expect("open");
        let clock = ManualClock::new(t0());
        let c = checkout(&store, &clock);
        let a = c
            .create(SessionParams::new(Decimal::new(2500, 2), usd()), None)
            .expect("a");
        let b = c
            .create(SessionParams::new(Decimal::new(2500, 2), usd()), None)
            .expect("b");
        let txid = bitcoin_checkout::Txid::from_byte_array(
            TestRequestGenerator::payment_hash(bitcoin_checkout::PaymentId::generate()).to_bytes(),
        );
        let to = |id| {
            TransferReport::onchain(
                bitcoin_checkout::OutPoint::new(txid, 0),
                TestRequestGenerator::address(id),
                bitcoin_checkout::Sats::new(1_000),
            )
            .confirmations(1)
        };
        clock.advance(Duration::seconds(1));
        c.record_transfer(to(a.id())).expect("recorded on a");
        // Bypass the service's lookup (which would route the report to a): commit on b.
        let mut session = store.load(b.id()).expect("load").expect("b");
        let before = session.version();
        let change = session
            .record_transfer(to(b.id()), t0() + Duration::seconds(2))
            .expect("core");
        assert_eq!(change.transfers(), [to(b.id()).key()]);
        let commit =
            bitcoin_checkout::store::Commit::new(session, Some(before), &change, Vec::new());
        assert_eq!(
            store.commit(&commit),
            Err(StoreError::KeyTaken {
                key: bitcoin_checkout::store::RoutingKey::Transfer(to(b.id()).key()),
                holder: a.id()
            })
        );
        assert_eq!(
            store.load(b.id()).expect("load").map(|s| s.version()),
            Some(before)
        );
        assert_eq!(store.find_by_transfer(&to(a.id()).key()), Ok(Some(a.id())));
    }
}
