//! The SQLite schema: the migration list and the upgrade of older databases.

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::backend;
use super::packed::{self, Kind};
use crate::session::CheckoutSession;
use crate::store::rows;
use crate::store::{Corruption, StoreError};

/// A step of a migration run in Rust after its script, in the migration's transaction.
type Fill = fn(&Transaction<'_>) -> Result<(), StoreError>;

/// The schema migrations, in order: migration `i` (its script, then its fill if any) brings
/// `user_version` from `i` to `i + 1`. Never edit a migration once released: databases
/// created with it must upgrade; add one.
pub(super) const MIGRATIONS: &[(&str, Option<Fill>)] = &[
    // 1: sessions, transfers, lookups, the outbox and idempotency records.
    (
        r#"
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
"#,
        None,
    ),
    // 2: links, the link that opened each session, webhook delivery and derivation indexes.
    (
        r#"
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
"#,
        None,
    ),
    // 3: payments as rows of their own; each session's head loses its payments.
    (
        r#"
CREATE TABLE payments (
    session_id TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (session_id, id)
) STRICT;
"#,
        Some(split_payments),
    ),
    // 4: the listing filters: `source_id` with an index, and the metadata of each session
    // as (key, value) rows with an index, kept by triggers from the `metadata` column the
    // store writes (rows::SessionRow::metadata), so a commit that leaves the metadata
    // alone touches no metadata row. Existing sessions are filled from their heads (a
    // number value in them is indexed as SQLite prints it: `12.50` as `12.5`).
    (
        r#"
ALTER TABLE sessions ADD COLUMN source_id TEXT;
ALTER TABLE sessions ADD COLUMN metadata TEXT;
UPDATE sessions SET source_id = json_extract(head, '$.source_id')
    WHERE json_valid(head) AND json_type(head, '$.source_id') = 'text';
CREATE INDEX sessions_by_source ON sessions (source_id, created, id) WHERE source_id IS NOT NULL;

CREATE TABLE session_metadata (
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    session_id TEXT NOT NULL,
    PRIMARY KEY (key, value, session_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX session_metadata_by_session ON session_metadata (session_id);

CREATE TRIGGER sessions_metadata_insert AFTER INSERT ON sessions
WHEN NEW.metadata IS NOT NULL
BEGIN
    INSERT INTO session_metadata (key, value, session_id)
        SELECT key, value, NEW.id FROM json_each(NEW.metadata);
END;
CREATE TRIGGER sessions_metadata_update AFTER UPDATE OF metadata ON sessions
WHEN OLD.metadata IS NOT NEW.metadata
BEGIN
    DELETE FROM session_metadata WHERE session_id = OLD.id;
    INSERT INTO session_metadata (key, value, session_id)
        SELECT key, value, NEW.id FROM json_each(NEW.metadata) WHERE NEW.metadata IS NOT NULL;
END;

UPDATE sessions SET metadata = (
    SELECT json_group_object(key, CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                                  ELSE CAST(value AS TEXT) END)
    FROM json_each(head, '$.metadata')
) WHERE json_valid(head) AND json_type(head, '$.metadata') = 'object'
    AND EXISTS (SELECT 1 FROM json_each(head, '$.metadata'));
"#,
        None,
    ),
    // 5: the review queue (ADR 9): whether a session has unresolved flags, with a partial
    // index of the few that do. Sessions stored before resolutions existed have none, so
    // every flag in their head is unresolved.
    (
        r#"
ALTER TABLE sessions ADD COLUMN review INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET review = 1
    WHERE json_valid(head) AND json_type(head, '$.flags') = 'array'
    AND json_array_length(head, '$.flags') > 0;
CREATE INDEX sessions_in_review ON sessions (created, id) WHERE review = 1;
"#,
        None,
    ),
    // 6: settlement listeners' resume points (ADR 13), one per listener name, opaque text.
    (
        r#"
CREATE TABLE resume_points (
    name  TEXT NOT NULL PRIMARY KEY,
    point TEXT NOT NULL
) STRICT;
"#,
        None,
    ),
    // 7: the reads of the HTTP API: a session by one of its payments' ids and an event by
    // its id (indexes), the listing's mode filter (`sessions.livemode`, filled from the
    // heads; a session's mode never changes) and the link listing (`links.created`, `kind`
    // and `livemode`, filled from the bodies and ids; none of them ever changes).
    (
        r#"
CREATE INDEX payments_by_id ON payments (id, session_id);
CREATE INDEX events_by_id ON events (id, seq);

ALTER TABLE sessions ADD COLUMN livemode INTEGER NOT NULL DEFAULT 0 CHECK (livemode IN (0, 1));
UPDATE sessions SET livemode = 1
    WHERE json_valid(head) AND json_type(head, '$.livemode') = 'true';
CREATE INDEX sessions_by_mode ON sessions (livemode, created, id);

ALTER TABLE links ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
ALTER TABLE links ADD COLUMN kind TEXT NOT NULL DEFAULT 'checkout'
    CHECK (kind IN ('checkout', 'payment'));
ALTER TABLE links ADD COLUMN livemode INTEGER NOT NULL DEFAULT 0 CHECK (livemode IN (0, 1));
UPDATE links SET created = json_extract(body, '$.created')
    WHERE json_valid(body) AND json_type(body, '$.created') = 'integer';
UPDATE links SET kind = 'payment' WHERE substr(id, 1, 6) = 'plink_';
UPDATE links SET livemode = 1
    WHERE json_valid(body) AND json_type(body, '$.params.livemode') = 'true';
CREATE INDEX links_by_created ON links (created, id);
CREATE INDEX links_by_kind ON links (kind, livemode, created, id);
"#,
        None,
    ),
    // 8: thin events (store::event_rows): an event whose object another event of its
    // commit holds names that event (`carrier`) and, for a payment of the carried session,
    // the payment (`part`); its body keeps the envelope only. Older rows have neither.
    (
        r#"
ALTER TABLE events ADD COLUMN carrier TEXT;
ALTER TABLE events ADD COLUMN part TEXT;
"#,
        None,
    ),
    // 9: held transfers (session::limits): transfers beyond a session's cap, kept apart
    // from its rows (never loaded with it). A commit checks both tables, so a transfer key
    // is recorded once, on one session.
    (
        r#"
CREATE TABLE held_transfers (
    key        TEXT    NOT NULL PRIMARY KEY,
    session_id TEXT    NOT NULL,
    held_at    INTEGER NOT NULL,
    body       TEXT    NOT NULL
) STRICT;
CREATE INDEX held_by_session ON held_transfers (session_id, held_at, key);
"#,
        None,
    ),
    // 10: retention: idempotency records are pruned by age (`Store::prune_idempotency`).
    (
        r#"
CREATE INDEX idempotency_by_created ON idempotency (created);
"#,
        None,
    ),
    // 11: the lookup tables keyed by text become `WITHOUT ROWID`: their rows live in their
    // key's b-tree instead of a row table plus an index repeating the key, so recording an
    // invoice hash, an address or a transfer writes one b-tree instead of two (fewer pages
    // per commit, each key stored once). Rebuilt in place; the rows do not change.
    (
        r#"
CREATE TABLE payment_hashes_v11 (
    hash       TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO payment_hashes_v11 (hash, session_id) SELECT hash, session_id FROM payment_hashes;
DROP TABLE payment_hashes;
ALTER TABLE payment_hashes_v11 RENAME TO payment_hashes;

CREATE TABLE addresses_v11 (
    address    TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO addresses_v11 (address, session_id) SELECT address, session_id FROM addresses;
DROP TABLE addresses;
ALTER TABLE addresses_v11 RENAME TO addresses;

CREATE TABLE transfers_v11 (
    key        TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL,
    body       TEXT NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO transfers_v11 (key, session_id, body) SELECT key, session_id, body FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_v11 RENAME TO transfers;
CREATE INDEX transfers_by_session ON transfers (session_id);
"#,
        None,
    ),
    // 12: event objects kept by the session's rows (ADR 22, store::live_object): an event
    // names its object by the session's version (`object_version`); the session row says
    // which payments that version's object lists (`object_payments`, null when its events
    // hold their objects), and an object the session has moved past is kept in
    // `session_objects`, as a delta against the object of version `base` (or whole when
    // `base` is null). Older rows have none of them and read as before.
    (
        r#"
ALTER TABLE events ADD COLUMN object_version INTEGER;
ALTER TABLE sessions ADD COLUMN object_payments TEXT;
CREATE TABLE session_objects (
    session_id TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    base       INTEGER,
    body       TEXT    NOT NULL,
    PRIMARY KEY (session_id, version)
) STRICT, WITHOUT ROWID;
"#,
        None,
    ),
    // 13: the outbox keeps its ids (event, session, carrier, part) as the ids' 16 UUID
    // bytes instead of their 35-36 characters (ADR 24): six rows and two index entries
    // per paid session each repeat two of them. Rebuilt in place (the fill checks every
    // id converts back to its text, then swaps the tables); the sequence numbers and the
    // AUTOINCREMENT high-water mark do not change.
    (
        r#"
CREATE TABLE events_v13 (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             BLOB    NOT NULL CHECK (length(id) = 16),
    session_id     BLOB    CHECK (length(session_id) = 16),
    created        INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    carrier        BLOB    CHECK (length(carrier) = 16),
    part           BLOB    CHECK (length(part) = 16),
    object_version INTEGER
) STRICT;
INSERT INTO events_v13
    (seq, id, session_id, created, event_type, body, carrier, part, object_version)
SELECT seq, unhex(substr(id, 5)), unhex(substr(session_id, 4)), created, event_type, body,
       unhex(substr(carrier, 5)), unhex(substr(part, 4)), object_version
FROM events;
"#,
        Some(swap_in_byte_ids),
    ),
    // 14: the live rows' JSON packed (ADR 25, sqlite::packed): `sessions.head` and
    // `payments.body` become BLOBs holding the JSON compressed against a dictionary per
    // kind of row, and `payments` becomes `WITHOUT ROWID` (its key was stored twice, in
    // the row table and in the index of its primary key). Rebuilt in place by the fill,
    // which packs every row and checks it reads back; every other column, index and
    // trigger is kept as it was.
    (
        r#"
CREATE TABLE sessions_v14 (
    id              TEXT    NOT NULL PRIMARY KEY,
    created         INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 0),
    wake_at         INTEGER,
    head            BLOB    NOT NULL,
    link_id         TEXT,
    source_id       TEXT,
    metadata        TEXT,
    review          INTEGER NOT NULL DEFAULT 0,
    livemode        INTEGER NOT NULL DEFAULT 0 CHECK (livemode IN (0, 1)),
    object_payments TEXT
) STRICT;
CREATE TABLE payments_v14 (
    session_id TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (session_id, id)
) STRICT, WITHOUT ROWID;
"#,
        Some(pack_live_rows),
    ),
    // 15: the outbox's sequence numbers without AUTOINCREMENT (ADR 29): SQLite's default
    // row id (one more than the largest) gives the same numbers as long as the newest
    // event is never deleted, which pruning guarantees, and a commit no longer rewrites
    // `sqlite_sequence` (a page of WAL per commit). The fill moves the rows into the new
    // table only when that holds for the rows already there, else drops it (see
    // `events_without_autoincrement`).
    (
        r#"
CREATE TABLE events_v15 (
    seq            INTEGER PRIMARY KEY,
    id             BLOB    NOT NULL CHECK (length(id) = 16),
    session_id     BLOB    CHECK (length(session_id) = 16),
    created        INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    carrier        BLOB    CHECK (length(carrier) = 16),
    part           BLOB    CHECK (length(part) = 16),
    object_version INTEGER
) STRICT;
"#,
        Some(super::outbox_seq::events_without_autoincrement),
    ),
    // 16: a session's events listed in its own row instead of the index
    // `events_by_session`, which cost every commit a page of WAL (ADR 32,
    // sqlite::event_lists).
    (
        super::event_lists::MIGRATION,
        Some(super::event_lists::fill),
    ),
    // 17: the older object a commit moves past kept in its first event row instead of
    // `session_objects` (ADR 33, sqlite::older_objects).
    (super::older_objects::MIGRATION, None),
    // 18: a session's transfer keys listed in its own row instead of the index
    // `transfers_by_session` (ADR 34, sqlite::transfer_lists).
    (
        super::transfer_lists::MIGRATION,
        Some(super::transfer_lists::fill),
    ),
];

/// Applies the migrations the database lacks, in one write transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let current: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(backend)?;
    let latest = MIGRATIONS.len();
    let current =
        usize::try_from(current).map_err(|_| Corruption::undecodable("schema version", current))?;
    if current > latest {
        return Err(StoreError::Backend {
            message: format!(
                "the database has schema version {current}, newer than this library's {latest}"
            ),
            retryable: false,
        });
    }
    for (index, (script, fill)) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(script).map_err(backend)?;
        if let Some(fill) = fill {
            fill(&tx)?;
        }
        tx.pragma_update(None, "user_version", index + 1)
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

/// Migration 3's fill: every session row's head (which listed all its payments) becomes
/// the head of [`rows::SessionRow`] plus one `payments` row per payment. A row that does
/// not read back is reported as [`StoreError::Corrupt`] (and nothing is migrated).
fn split_payments(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let ids = tx
        .prepare("SELECT id FROM sessions ORDER BY id")
        .map_err(backend)?
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut read_head = tx
        .prepare("SELECT head FROM sessions WHERE id = ?1")
        .map_err(backend)?;
    let mut write_head = tx
        .prepare("UPDATE sessions SET head = ?2 WHERE id = ?1")
        .map_err(backend)?;
    let mut write_payment = tx
        .prepare("INSERT INTO payments (session_id, id, body) VALUES (?1, ?2, ?3)")
        .map_err(backend)?;
    for id in &ids {
        let head: String = read_head
            .query_row([id], |row| row.get(0))
            .map_err(backend)?;
        let row = || format!("session {id}");
        let mut transfers = Vec::new();
        for (key, body) in super::reads::transfer_rows_by_column(tx, id)? {
            transfers.push(
                serde_json::from_str(&body)
                    .map_err(|e| Corruption::undecodable(format!("transfer {key}"), e))?,
            );
        }
        let session = CheckoutSession::from_parts(&head, transfers)
            .map_err(|e| Corruption::undecodable(row(), e))?;
        if session.id().to_string() != *id {
            return Err(Corruption::mismatch(row(), "id", id, session.id().to_string()).into());
        }
        let rows = rows::session_rows(&session)?;
        write_head
            .execute(params![id, rows.session.head])
            .map_err(backend)?;
        for p in rows.payments {
            write_payment
                .execute(params![id, p.id, p.body])
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// Migration 13's fill: every converted id must print back as the text it came from (a
/// malformed one would have become NULL or other bytes: reported as
/// [`StoreError::Corrupt`], and nothing is migrated); then the new table, with the old
/// one's AUTOINCREMENT high-water mark, replaces the old one and gets its indexes.
fn swap_in_byte_ids(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let text = |column: &str, prefix: &str| {
        format!(
            "o.{column} IS NOT CASE WHEN n.{column} IS NOT NULL \
             THEN '{prefix}' || lower(hex(n.{column})) END"
        )
    };
    let check = format!(
        "SELECT min(o.seq) FROM events o LEFT JOIN events_v13 n ON n.seq = o.seq \
         WHERE n.seq IS NULL OR {} OR {} OR {} OR {}",
        text("id", "evt_"),
        text("session_id", "cs_"),
        text("carrier", "evt_"),
        text("part", "pi_")
    );
    let bad: Option<i64> = tx
        .query_row(&check, [], |row| row.get(0))
        .map_err(backend)?;
    if let Some(seq) = bad {
        return Err(Corruption::undecodable(
            format!("event {seq}"),
            "an id that is not a prefixed UUID",
        )
        .into());
    }
    tx.execute_batch(
        "DELETE FROM sqlite_sequence WHERE name = 'events_v13';
         INSERT INTO sqlite_sequence (name, seq)
             SELECT 'events_v13', seq FROM sqlite_sequence WHERE name = 'events';
         DROP TABLE events;
         ALTER TABLE events_v13 RENAME TO events;
         CREATE INDEX events_by_session ON events (session_id, seq);
         CREATE INDEX events_by_id ON events (id, seq);",
    )
    .map_err(backend)
}

/// Migration 14's fill: every session head and payment body is packed into the new tables
/// (and must unpack to the text it came from), then the new tables replace the old ones
/// and get the old ones' indexes and (metadata) triggers back. The metadata rows are kept
/// as they are: the copy runs before the triggers exist on the new table.
fn pack_live_rows(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let packed_back = |kind: Kind, text: &str, row: &dyn Fn() -> String| {
        let packed = packed::pack(kind, text)?;
        if packed::unpack(kind, &packed, row)? != text {
            return Err(StoreError::Backend {
                message: format!("{}: packing did not read back", row()),
                retryable: false,
            });
        }
        Ok(packed)
    };
    let mut heads = tx
        .prepare("SELECT id, head FROM sessions")
        .map_err(backend)?;
    let mut copy_session = tx
        .prepare(
            "INSERT INTO sessions_v14
                 (id, created, status, version, wake_at, head, link_id, source_id, metadata,
                  review, livemode, object_payments)
             SELECT id, created, status, version, wake_at, ?2, link_id, source_id, metadata,
                    review, livemode, object_payments
             FROM sessions WHERE id = ?1",
        )
        .map_err(backend)?;
    let mut rows = heads.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let id: String = row.get(0).map_err(backend)?;
        let head: String = row.get(1).map_err(backend)?;
        let packed = packed_back(Kind::Head, &head, &|| format!("session {id}"))?;
        copy_session.execute(params![id, packed]).map_err(backend)?;
    }
    let mut bodies = tx
        .prepare("SELECT session_id, id, body FROM payments")
        .map_err(backend)?;
    let mut copy_payment = tx
        .prepare("INSERT INTO payments_v14 (session_id, id, body) VALUES (?1, ?2, ?3)")
        .map_err(backend)?;
    let mut rows = bodies.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let session: String = row.get(0).map_err(backend)?;
        let id: String = row.get(1).map_err(backend)?;
        let body: String = row.get(2).map_err(backend)?;
        let packed = packed_back(Kind::Payment, &body, &|| format!("payment {id}"))?;
        copy_payment
            .execute(params![session, id, packed])
            .map_err(backend)?;
    }
    // The two tables' indexes and triggers, made again on the new tables as they were.
    let remade = tx
        .prepare(
            "SELECT sql FROM sqlite_schema
             WHERE tbl_name IN ('sessions', 'payments') AND type IN ('index', 'trigger')
                 AND sql IS NOT NULL",
        )
        .map_err(backend)?
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    tx.execute_batch(
        "DROP TABLE sessions;
         ALTER TABLE sessions_v14 RENAME TO sessions;
         DROP TABLE payments;
         ALTER TABLE payments_v14 RENAME TO payments;",
    )
    .map_err(backend)?;
    remade
        .iter()
        .try_for_each(|sql| tx.execute_batch(sql))
        .map_err(backend)
}
