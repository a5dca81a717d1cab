//! The statements of the PostgreSQL store.

use tokio_postgres::types::ToSql;

use crate::store::event_rows::event_columns;

/// What every session read selects: its row, its payments and its transfers, in one
/// statement (one snapshot, so a transfer never arrives without its payment).
macro_rules! session_columns {
    () => {
        "SELECT s.id, s.version, s.head, \
         ARRAY(SELECT p.body FROM payments p WHERE p.session_id = s.id ORDER BY p.id), \
         ARRAY(SELECT t.key FROM transfers t WHERE t.session_id = s.id ORDER BY t.key), \
         ARRAY(SELECT t.body FROM transfers t WHERE t.session_id = s.id ORDER BY t.key) "
    };
}

pub(super) const SQL_LOAD: &str = concat!(session_columns!(), "FROM sessions s WHERE s.id = $1");
/// The version alone, for `load_if_changed`.
pub(super) const SQL_VERSION: &str = "SELECT version FROM sessions WHERE id = $1";
pub(super) const SQL_FIND_TRANSFER: &str = "SELECT session_id FROM transfer_keys WHERE key = $1";
pub(super) const SQL_FIND_HASH: &str = "SELECT session_id FROM payment_hashes WHERE hash = $1";
pub(super) const SQL_FIND_ADDRESS: &str = "SELECT session_id FROM addresses WHERE address = $1";
/// From the `payments_by_id` index (migration 8); the smaller session id should two hold it.
pub(super) const SQL_FIND_PAYMENT: &str =
    "SELECT session_id FROM payments WHERE id = $1 ORDER BY session_id LIMIT 1";
/// From the `events_by_id` index (migration 8).
pub(super) const SQL_EVENT: &str =
    concat!(event_columns!(), "WHERE e.id = $1 ORDER BY e.seq LIMIT 1");
pub(super) const SQL_DUE: &str =
    "SELECT id FROM sessions WHERE wake_at <= $1 ORDER BY wake_at, id LIMIT $2";
pub(super) const SQL_EVENTS_AFTER: &str =
    concat!(event_columns!(), "WHERE e.seq > $1 ORDER BY e.seq LIMIT $2");
pub(super) const SQL_EVENTS_BEFORE: &str = concat!(
    event_columns!(),
    "WHERE e.seq < $1 ORDER BY e.seq DESC LIMIT $2"
);
pub(super) const SQL_LAST_EVENTS: &str = concat!(event_columns!(), "ORDER BY e.seq DESC LIMIT $1");
pub(super) const SQL_SESSION_EVENTS: &str =
    concat!(event_columns!(), "WHERE e.session_id = $1 ORDER BY e.seq");
pub(super) const SQL_SESSION_EVENTS_AFTER: &str = concat!(
    event_columns!(),
    "WHERE e.session_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3"
);
pub(super) const SQL_RESERVE_INDEX: &str = "INSERT INTO address_index (descriptor, next) VALUES ($1, 1) \
     ON CONFLICT (descriptor) DO UPDATE SET next = address_index.next + 1 RETURNING next - 1";
pub(super) const SQL_RESERVED_INDEX: &str = "SELECT next FROM address_index WHERE descriptor = $1";
pub(super) const SQL_LOAD_LINK: &str = "SELECT version, body FROM links WHERE id = $1";
pub(super) const SQL_LINK_SESSIONS: &str =
    "SELECT id FROM sessions WHERE link_id = $1 ORDER BY created ASC, id ASC";
/// The listing columns (`created`, `kind`, `livemode`) are written with the new row only:
/// none of them ever changes.
pub(super) const SQL_INSERT_LINK: &str = "INSERT INTO links (id, version, body, created, kind, livemode) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
pub(super) const SQL_UPDATE_LINK: &str =
    "UPDATE links SET version = $3, body = $4 WHERE id = $1 AND version = $2";
pub(super) const SQL_IDEMPOTENCY: &str =
    "SELECT key, request, session_id, created FROM idempotency WHERE key = $1";

/// What a listing selects (the session table named `s`).
pub(in crate::store) const SESSION_COLUMNS: &str = session_columns!();

pub(super) const SQL_INSERT_SESSION: &str = "INSERT INTO sessions (id, created, status, version, wake_at, head, link_id, source_id, metadata, review, livemode) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING";
/// `source_id` and `livemode` are set at creation only (a session's mode never changes); the metadata rows follow the `metadata` column by
/// trigger, and only when it changed (migration 5).
pub(super) const SQL_UPDATE_SESSION: &str = "UPDATE sessions SET created = $2, status = $3, version = $4, wake_at = $5, head = $6, \
     link_id = $7, metadata = $9, review = $10 WHERE id = $1 AND version = $8";
pub(super) const SQL_PRUNE_EVENTS: &str = "WITH cut AS (SELECT LEAST($1, (SELECT MAX(seq) FROM events) - 1) AS t) \
     DELETE FROM events WHERE seq IN ( \
     SELECT e.seq FROM events e, cut WHERE e.seq <= cut.t AND NOT EXISTS ( \
       SELECT 1 FROM events l WHERE l.carrier = e.id AND l.seq > cut.t \
         AND (l.session_id = e.session_id OR (l.session_id IS NULL AND e.session_id IS NULL))) \
     ORDER BY e.seq LIMIT $2)";
pub(super) const SQL_PRUNE_SESSION_EVENTS: &str = "WITH cut AS (SELECT LEAST($2, (SELECT MAX(seq) FROM events) - 1) AS t) \
     DELETE FROM events WHERE seq IN ( \
     SELECT e.seq FROM events e, cut WHERE e.session_id = $1 AND e.seq <= cut.t AND NOT EXISTS ( \
       SELECT 1 FROM events l WHERE l.session_id = $1 AND l.seq > cut.t AND l.carrier = e.id))";
pub(super) const SQL_PRUNE_IDEMPOTENCY: &str = "DELETE FROM idempotency WHERE key IN \
     (SELECT key FROM idempotency WHERE created < $1 ORDER BY created LIMIT $2)";
pub(super) const SQL_RELEASE_IDEMPOTENCY: &str =
    "DELETE FROM idempotency WHERE key = $1 AND request = $2 AND session_id = $3";
pub(super) const SQL_CLAIM_IDEMPOTENCY: &str = "INSERT INTO idempotency (key, request, session_id, created) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING";
pub(super) const SQL_UPSERT_TRANSFERS: &str = "INSERT INTO transfers (session_id, key, body) \
     SELECT $1, u.key, u.body FROM unnest($2::text[], $3::text[]) AS u(key, body) \
     ON CONFLICT (session_id, key) DO UPDATE SET body = excluded.body";
pub(super) const SQL_UPSERT_PAYMENTS: &str = "INSERT INTO payments (session_id, id, body) \
     SELECT $1, u.id, u.body FROM unnest($2::text[], $3::text[]) AS u(id, body) \
     ON CONFLICT (session_id, id) DO UPDATE SET body = excluded.body";
// A transfer belongs to one session. Claiming first (waiting for a concurrent claimer to
// finish) and then looking for another owner in a new statement (a new snapshot) makes the
// check hold between processes.
pub(super) const SQL_CLAIM_TRANSFER_KEYS: &str = "INSERT INTO transfer_keys (key, session_id) \
     SELECT u.key, $1 FROM unnest($2::text[]) AS u(key) ON CONFLICT (key) DO NOTHING";
pub(super) const SQL_CLAIM_HELD_KEY: &str =
    "INSERT INTO transfer_keys (key, session_id) VALUES ($2, $1) ON CONFLICT (key) DO NOTHING";
pub(super) const SQL_TRANSFER_HOLDER: &str =
    "SELECT key, session_id FROM transfer_keys WHERE key = $1";
pub(super) const SQL_INSERT_HELD: &str =
    "INSERT INTO held_transfers (key, session_id, held_at, body) VALUES ($2, $1, $3, $4)";
pub(super) const SQL_HELD_TRANSFERS: &str = "SELECT key, body FROM held_transfers \
     WHERE session_id = $1 ORDER BY held_at ASC, key ASC LIMIT $2";
pub(super) const SQL_FOREIGN_TRANSFER_KEY: &str = "SELECT key, session_id FROM transfer_keys WHERE key = ANY($2::text[]) AND session_id <> $1 LIMIT 1";
// The first session to claim an invoice hash or an address keeps it.
pub(super) const SQL_INDEX_HASHES: &str = "INSERT INTO payment_hashes (hash, session_id) \
     SELECT u.hash, $1 FROM unnest($2::text[]) AS u(hash) ON CONFLICT (hash) DO NOTHING";
// Read in a new statement after the inserts (which wait for a concurrent claimer), as for
// transfer keys.
pub(super) const SQL_FOREIGN_HASH: &str = "SELECT hash, session_id FROM payment_hashes \
     WHERE hash = ANY($2::text[]) AND session_id <> $1 LIMIT 1";
pub(super) const SQL_FOREIGN_ADDRESS: &str =
    "SELECT address, session_id FROM addresses WHERE address = $2 AND session_id <> $1";
pub(super) const SQL_INDEX_ADDRESS: &str = "INSERT INTO addresses (address, session_id) VALUES ($2, $1) \
     ON CONFLICT (address) DO NOTHING";
pub(super) const SQL_ADVISORY_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
pub(super) const SQL_INSERT_EVENTS: &str = "INSERT INTO events (seq, id, session_id, created, body, carrier, part) \
     SELECT last.seq + u.n, u.id, $1::text, u.created, u.body, u.carrier, u.part \
     FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) \
          WITH ORDINALITY AS u(id, created, body, carrier, part, n), \
          (SELECT COALESCE(MAX(seq), 0) AS seq FROM events) AS last";

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];
pub(super) const SQL_RESUME_POINT: &str = "SELECT point FROM resume_points WHERE name = $1";
pub(super) const SQL_INSERT_RESUME_POINT: &str =
    "INSERT INTO resume_points (name, point) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
pub(super) const SQL_RESUME_POINTS: &str = "SELECT name, point FROM resume_points \
     WHERE (name > $1 OR ($2 AND name = $1)) AND left(name, length($3)) = $3 ORDER BY name LIMIT $4";
pub(super) const SQL_DELETE_RESUME_POINT: &str =
    "DELETE FROM resume_points WHERE name = $1 AND point = $2";
pub(super) const SQL_UPDATE_RESUME_POINT: &str =
    "UPDATE resume_points SET point = $3 WHERE name = $1 AND point = $2";
