//! The PostgreSQL schema: the migration list and the migration run.

use super::pool::{Conn, Failure, Shared};
use super::sql::SQL_ADVISORY_LOCK;
use super::{LOCK_MIGRATE, fatal, lock_key, quote_ident};

/// The schema migrations, in order. Never edit a released one: append a new version.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    created BIGINT NOT NULL,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    wake_at BIGINT,
    head TEXT NOT NULL
);
CREATE INDEX sessions_by_created ON sessions (created, id);
CREATE INDEX sessions_by_status ON sessions (status, created, id);
CREATE INDEX sessions_by_wake_at ON sessions (wake_at, id) WHERE wake_at IS NOT NULL;
CREATE TABLE payments (
    session_id TEXT COLLATE "C" NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, id)
);
CREATE TABLE transfers (
    session_id TEXT COLLATE "C" NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, key)
);
CREATE TABLE transfer_keys (
    key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
);
CREATE TABLE payment_hashes (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
);
CREATE TABLE addresses (
    address TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
);
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_by_session ON events (session_id, seq);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created BIGINT NOT NULL,
    created_nanos INTEGER NOT NULL
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE address_index (
    descriptor TEXT PRIMARY KEY,
    next BIGINT NOT NULL CHECK (next >= 0)
);
"#,
    ),
    (
        3,
        r#"
CREATE TABLE links (
    id TEXT COLLATE "C" PRIMARY KEY,
    version BIGINT NOT NULL CHECK (version >= 0),
    body TEXT NOT NULL
);
ALTER TABLE sessions ADD COLUMN link_id TEXT COLLATE "C" NULL;
UPDATE sessions SET link_id = head::json ->> 'link'
    WHERE json_typeof(head::json -> 'link') = 'string';
CREATE INDEX sessions_by_link ON sessions (link_id, created, id) WHERE link_id IS NOT NULL;
-- Link events are filed under no session.
ALTER TABLE events ALTER COLUMN session_id DROP NOT NULL;
-- `body` is `Endpoint::to_stored_json()`: it CONTAINS THE ENDPOINT'S SIGNING SECRET in
-- clear (`whsec_...`). Protect the database and its backups like the secret itself.
CREATE TABLE endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE delivery_cursors (
    endpoint TEXT COLLATE "C" PRIMARY KEY,
    cursor BIGINT NOT NULL CHECK (cursor >= 0)
);
CREATE TABLE deliveries (
    endpoint TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL CHECK (seq >= 0),
    status TEXT NOT NULL,
    next_attempt_at BIGINT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (endpoint, seq)
);
CREATE INDEX deliveries_by_status ON deliveries (status, endpoint, seq);
"#,
    ),
    (
        4,
        r#"
ALTER TABLE idempotency DROP COLUMN created_nanos;
"#,
    ),
    // The listing filters: `source_id` with an index, and each session's metadata as
    // (key, value) rows with an index, kept by triggers from the `metadata` column the
    // store writes (rows::SessionRow::metadata), so a commit that leaves the metadata alone
    // touches no metadata row. Existing sessions are filled from their heads.
    (
        5,
        r#"
ALTER TABLE sessions ADD COLUMN source_id TEXT NULL, ADD COLUMN metadata TEXT NULL;
UPDATE sessions SET source_id = head::json ->> 'source_id'
    WHERE json_typeof(head::json -> 'source_id') = 'string';
CREATE INDEX sessions_by_source ON sessions (source_id, created, id) WHERE source_id IS NOT NULL;
CREATE TABLE session_metadata (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (key, value, session_id)
);
CREATE INDEX session_metadata_by_session ON session_metadata (session_id);
CREATE FUNCTION session_metadata_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM session_metadata WHERE session_id = OLD.id;
    END IF;
    IF NEW.metadata IS NOT NULL THEN
        INSERT INTO session_metadata (key, value, session_id)
            SELECT e.key, e.value, NEW.id FROM jsonb_each_text(NEW.metadata::jsonb) e;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER sessions_metadata_insert AFTER INSERT ON sessions
    FOR EACH ROW WHEN (NEW.metadata IS NOT NULL) EXECUTE FUNCTION session_metadata_sync();
CREATE TRIGGER sessions_metadata_update AFTER UPDATE OF metadata ON sessions
    FOR EACH ROW WHEN (OLD.metadata IS DISTINCT FROM NEW.metadata)
    EXECUTE FUNCTION session_metadata_sync();
UPDATE sessions SET metadata = (
    SELECT jsonb_object_agg(e.key, CASE json_typeof(e.value)
                                       WHEN 'string' THEN e.value #>> '{}'
                                       ELSE e.value::text END)::text
    FROM json_each(head::json -> 'metadata') e
) WHERE json_typeof(head::json -> 'metadata') = 'object';
"#,
    ),
    // The review queue (ADR 9): whether a session has unresolved flags, with a partial
    // index of the few that do. Sessions stored before resolutions existed have none, so
    // every flag in their head is unresolved.
    (
        6,
        r#"
ALTER TABLE sessions ADD COLUMN review BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE sessions SET review = TRUE
    WHERE json_typeof(head::json -> 'flags') = 'array'
    AND json_array_length(head::json -> 'flags') > 0;
CREATE INDEX sessions_in_review ON sessions (created, id) WHERE review;
"#,
    ),
    // Settlement listeners' resume points (ADR 13), one per listener name, opaque text.
    (
        7,
        r#"
CREATE TABLE resume_points (
    name TEXT COLLATE "C" PRIMARY KEY,
    point TEXT NOT NULL
);
"#,
    ),
    // The reads of the HTTP API: a session by one of its payments' ids and an event by its
    // id (indexes), the listing's mode filter (`sessions.livemode`, filled from the heads;
    // a session's mode never changes) and the link listing (`links.created`, `kind` and
    // `livemode`, filled from the bodies and ids; none of them ever changes).
    (
        8,
        r#"
CREATE INDEX payments_by_id ON payments (id, session_id);
CREATE INDEX events_by_id ON events (id, seq);
ALTER TABLE sessions ADD COLUMN livemode BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE sessions SET livemode = TRUE WHERE head::json ->> 'livemode' = 'true';
CREATE INDEX sessions_by_mode ON sessions (livemode, created, id);
ALTER TABLE links ADD COLUMN created BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'checkout' CHECK (kind IN ('checkout', 'payment')),
    ADD COLUMN livemode BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE links SET created = (body::json ->> 'created')::bigint
    WHERE json_typeof(body::json -> 'created') = 'number';
UPDATE links SET kind = 'payment' WHERE left(id, 6) = 'plink_';
UPDATE links SET livemode = TRUE WHERE body::json -> 'params' ->> 'livemode' = 'true';
CREATE INDEX links_by_created ON links (created, id);
CREATE INDEX links_by_kind ON links (kind, livemode, created, id);
"#,
    ),
    // Thin events (store::event_rows): an event whose object another event of its commit
    // holds names that event (`carrier`) and, for a payment of the carried session, the
    // payment (`part`); its body keeps the envelope only. Older rows have neither.
    (
        9,
        r#"
ALTER TABLE events ADD COLUMN carrier TEXT NULL, ADD COLUMN part TEXT NULL;
"#,
    ),
    // Held transfers (session::limits): transfers beyond a session's cap, kept apart from
    // its rows (never loaded with it); their keys are claimed in transfer_keys like any
    // transfer's, so each is recorded once.
    (
        10,
        r#"
CREATE TABLE held_transfers (
    key        TEXT   NOT NULL PRIMARY KEY,
    session_id TEXT   NOT NULL,
    held_at    BIGINT NOT NULL,
    body       TEXT   NOT NULL
);
CREATE INDEX held_by_session ON held_transfers (session_id, held_at, key);
"#,
    ),
    // Retention: idempotency records are pruned by age (`Store::prune_idempotency`).
    (
        11,
        r#"
CREATE INDEX idempotency_by_created ON idempotency (created);
"#,
    ),
    // Event objects kept by the session's rows (ADR 22): the column the event reads of
    // both SQL stores select. This store does not keep objects so yet: it is always null.
    (
        12,
        r#"
ALTER TABLE events ADD COLUMN object_version BIGINT NULL;
"#,
    ),
];

impl Conn {
    pub(super) async fn migrate(&mut self, ctx: &Shared) -> Result<(), Failure> {
        let pg = |e| Failure::Pg(e, false);
        let key = lock_key(LOCK_MIGRATE, ctx.lock_suffix);
        let tx = self
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(pg)?;
        // A migration may rewrite large tables (migration 8 fills columns from every head),
        // and servers starting together wait for the lock below while one migrates: the
        // store's statement timeout is for calls, not for this.
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .await
            .map_err(pg)?;
        // Servers starting together wait here, then find the work done.
        tx.execute(SQL_ADVISORY_LOCK, &[&key]).await.map_err(pg)?;
        // `SET search_path` names the schema before it exists; create it under the lock.
        if let Some(schema) = &ctx.schema {
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(schema)
            ))
            .await
            .map_err(pg)?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(pg)?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if current > newest {
            return Err(Failure::Store(fatal(format!(
                "the database schema is at version {current}, newer than this crate's {newest}: upgrade the crate"
            ))));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).await.map_err(pg)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) \
                 VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
                &[version],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(|e| Failure::Pg(e, true))?;
        // Statements prepared before the tables changed would be stale, on any connection.
        ctx.forget_statements();
        Ok(())
    }
}
