//! Reading sessions, lookups, listings and the outbox back, through the row mapping.

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::event_lists::{self, session_seqs};
use super::outbox::event_rows;
use super::packed::{Kind, unpack};
use super::{SqliteStore, backend, commit, limit_i64};
use crate::hash::PaymentHash;
use crate::id::{EventId, PaymentId, SessionId};
use crate::json::millis::to_millis;
use crate::session::CheckoutSession;
use crate::store::event_rows::event_columns;
use crate::store::list_sql::{Dialect, ListParam, list_statement};
use crate::store::rows::{self, CommitRows, IdempotencyRow};
use crate::store::{
    Commit, IdempotencyRecord, ListQuery, Page, Reload, Store, StoreError, StoredEvent,
    reload_by_version,
};
use crate::transfer::TransferKey;

/// The `(key, body)` transfer rows of a session by their `session_id` column: for
/// migration 3, which runs before the rows are listed (ADR 34) and while the column has
/// its index.
pub(super) fn transfer_rows_by_column(
    conn: &Connection,
    id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    conn.prepare_cached("SELECT key, body FROM transfers WHERE session_id = ?1")
        .map_err(backend)?
        .query_map([id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)
}

/// Rebuilds a session from its row (its packed head), its payment rows and its transfer
/// rows (in the caller's snapshot).
fn assemble(
    conn: &Connection,
    id: &str,
    head: &[u8],
    version: i64,
) -> Result<CheckoutSession, StoreError> {
    let head = unpack(Kind::Head, head, &|| format!("session {id}"))?;
    let payments = conn
        .prepare_cached("SELECT id, body FROM payments WHERE session_id = ?1")
        .map_err(backend)?
        .query_map([id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(backend)?
        .map(|row| {
            let (payment, body) = row.map_err(backend)?;
            unpack(Kind::Payment, &body, &|| format!("payment {payment}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let transfers = super::transfer_lists::rows(conn, id)?;
    rows::decode_session(
        id,
        version,
        &head,
        payments.iter().map(String::as_str),
        transfers.iter().map(|(k, b)| (k.as_str(), b.as_str())),
    )
}

fn load_in(conn: &Connection, id: &str) -> Result<Option<CheckoutSession>, StoreError> {
    let row = conn
        .prepare_cached("SELECT head, version FROM sessions WHERE id = ?1")
        .map_err(backend)?
        .query_row([id], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
        })
        .optional()
        .map_err(backend)?;
    match row {
        Some((head, version)) => assemble(conn, id, &head, version).map(Some),
        None => Ok(None),
    }
}

/// A listing parameter as SQLite binds it.
pub(super) fn sql_value(p: &ListParam) -> rusqlite::types::Value {
    match p {
        ListParam::Int(i) => rusqlite::types::Value::Integer(*i),
        ListParam::Text(t) => rusqlite::types::Value::Text(t.clone()),
        ListParam::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
    }
}

/// The statement of [`Store::find_by_payment`]: from the `payments_by_id` index.
const SQL_FIND_PAYMENT: &str =
    "SELECT session_id FROM payments WHERE id = ?1 ORDER BY session_id LIMIT 1";
/// The statement of [`Store::event`]: from the `events_by_id` index.
const SQL_EVENT: &str = concat!(
    event_columns!("e.event_type"),
    "WHERE e.id = ?1 ORDER BY e.seq LIMIT 1"
);

/// The statement of [`Store::session_events`] (`?1` the session's id, `?2` its bytes):
/// the numbers its row lists and those beyond it (ADR 32), each found by its number.
const SQL_SESSION_EVENTS: &str = concat!(
    event_columns!("e.event_type"),
    "WHERE e.seq IN ",
    session_seqs!("?1", "?2"),
    " AND e.session_id = ?2 ORDER BY e.seq ASC"
);
/// The statement of [`Store::session_events_after`]: [`SQL_SESSION_EVENTS`] after `?3`,
/// at most `?4`.
const SQL_SESSION_EVENTS_AFTER: &str = concat!(
    event_columns!("e.event_type"),
    "WHERE e.seq IN ",
    session_seqs!("?1", "?2"),
    " AND e.session_id = ?2 AND e.seq > ?3 ORDER BY e.seq ASC LIMIT ?4"
);

fn find_session(conn: &Connection, sql: &str, key: &str) -> Result<Option<SessionId>, StoreError> {
    let found = conn
        .prepare_cached(sql)
        .map_err(backend)?
        .query_row([key], |row| row.get::<_, String>(0))
        .optional()
        .map_err(backend)?;
    found.as_deref().map(rows::decode_session_id).transpose()
}

impl Store for SqliteStore {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        let id = id.to_string();
        self.read(|conn| load_in(conn, &id))
    }

    fn load_if_changed(&self, id: SessionId, version: u64) -> Result<Reload, StoreError> {
        let id = id.to_string();
        // One statement reads one snapshot: no transaction needed for the version alone.
        let stored: Option<i64> = self.with_reader(|conn| {
            conn.prepare_cached("SELECT version FROM sessions WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([&id], |row| row.get(0)).optional())
                .map_err(backend)
        })?;
        reload_by_version(stored, version, || self.read(|conn| load_in(conn, &id)))
    }

    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let rows = CommitRows::with_live_object(commit)?;
        self.write(|tx| commit::apply(tx, &rows, &self.objects))?;
        self.objects.committed([&rows]);
        Ok(())
    }

    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
        let key = key.to_string();
        self.with_reader(|conn| {
            find_session(
                conn,
                "SELECT session_id FROM transfers WHERE key = ?1
                 UNION ALL SELECT session_id FROM held_transfers WHERE key = ?1 LIMIT 1",
                &key,
            )
        })
    }

    fn held_transfers(
        &self,
        id: SessionId,
        limit: usize,
    ) -> Result<Vec<crate::session::HeldTransfer>, StoreError> {
        let id = id.to_string();
        let limit = limit_i64(limit);
        self.with_reader(|conn| {
            let bodies = conn
                .prepare_cached(
                    "SELECT key, body FROM held_transfers WHERE session_id = ?1
                     ORDER BY held_at ASC, key ASC LIMIT ?2",
                )
                .map_err(backend)?
                .query_map(params![id, limit], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            bodies
                .iter()
                .map(|(key, body)| rows::held_from_row(key, body))
                .collect()
        })
    }

    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        let hash = hash.to_string();
        self.with_reader(|conn| {
            find_session(
                conn,
                "SELECT session_id FROM payment_hashes WHERE hash = ?1",
                &hash,
            )
        })
    }

    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        self.with_reader(|conn| {
            find_session(
                conn,
                "SELECT session_id FROM addresses WHERE address = ?1",
                address,
            )
        })
    }

    fn find_by_payment(&self, id: PaymentId) -> Result<Option<SessionId>, StoreError> {
        let id = id.to_string();
        self.with_reader(|conn| find_session(conn, SQL_FIND_PAYMENT, &id))
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let statement = list_statement(query, Dialect::Sqlite)?;
        let limit = statement.limit;
        let params = statement.params.iter().map(sql_value);
        self.read(|conn| {
            // An unknown cursor joins no row: an empty page.
            let mut stmt = conn.prepare_cached(statement.sql).map_err(backend)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params), |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let has_more = rows.len() > limit;
            let mut data = rows
                .iter()
                .take(limit)
                .map(|(id, head, version)| assemble(conn, id, head, *version))
                .collect::<Result<Vec<_>, _>>()?;
            if statement.newer {
                data.reverse();
            }
            Ok(Page { data, has_more })
        })
    }

    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        // Stored sessions carry millisecond times, so comparing in whole milliseconds is
        // exact: wake_at (ms) <= now iff wake_at <= floor(now).
        let now = to_millis(now);
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM sessions WHERE wake_at IS NOT NULL AND wake_at <= ?1
                     ORDER BY wake_at ASC, id ASC LIMIT ?2",
                )
                .map_err(backend)?;
            let ids = stmt
                .query_map(params![now, limit_i64(limit)], |row| {
                    row.get::<_, String>(0)
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            ids.iter().map(|id| rows::decode_session_id(id)).collect()
        })
    }

    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // Sequence numbers are positive and fit in i64: a cursor beyond that has nothing after it.
        let Ok(after) = i64::try_from(after.unwrap_or(0)) else {
            return Ok(Vec::new());
        };
        self.read(|conn| {
            event_rows(
                conn,
                concat!(
                    event_columns!("e.event_type"),
                    "WHERE e.seq > ?1 ORDER BY e.seq ASC LIMIT ?2"
                ),
                params![after, limit_i64(limit)],
            )
        })
    }

    fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // A bound beyond i64 is above every sequence number: no bound.
        let before = before.and_then(|b| i64::try_from(b).ok());
        let limit = limit_i64(limit);
        self.read(|conn| match before {
            Some(before) => event_rows(
                conn,
                concat!(
                    event_columns!("e.event_type"),
                    "WHERE e.seq < ?1 ORDER BY e.seq DESC LIMIT ?2"
                ),
                params![before, limit],
            ),
            None => event_rows(
                conn,
                concat!(
                    event_columns!("e.event_type"),
                    "ORDER BY e.seq DESC LIMIT ?1"
                ),
                params![limit],
            ),
        })
    }

    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let id = id.as_uuid().into_bytes();
        self.read(|conn| Ok(event_rows(conn, SQL_EVENT, [&id[..]])?.pop()))
    }

    /// From the session's list of its events (ADR 32).
    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        let (text, bytes) = (id.to_string(), id.as_uuid().into_bytes());
        self.read(|conn| event_rows(conn, SQL_SESSION_EVENTS, params![text, &bytes[..]]))
    }

    fn session_events_after(
        &self,
        id: SessionId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (text, bytes) = (id.to_string(), id.as_uuid().into_bytes());
        let after = i64::try_from(after.unwrap_or(0)).unwrap_or(i64::MAX);
        let limit = limit_i64(limit);
        self.read(|conn| {
            event_rows(
                conn,
                SQL_SESSION_EVENTS_AFTER,
                params![text, &bytes[..], after, limit],
            )
        })
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.with_reader(|conn| commit::read_idempotency(conn, key))?
            .map(IdempotencyRow::decode)
            .transpose()
    }

    fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = IdempotencyRow::new(record);
        self.write(|tx| commit::claim_idempotency(tx, &row))?
            .map(IdempotencyRow::decode)
            .transpose()
    }

    fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        let row = IdempotencyRow::new(record);
        self.write(|tx| commit::release_idempotency(tx, &row))
    }

    fn prune_events(&self, through: u64, limit: usize) -> Result<usize, StoreError> {
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        self.write(|tx| event_lists::prune(tx, through, limit_i64(limit)))
    }

    fn prune_session_events(&self, id: SessionId, through: u64) -> Result<usize, StoreError> {
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        self.write(|tx| event_lists::prune_session(tx, id, through))
    }

    fn prune_idempotency(&self, before: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
        let (before, limit) = (to_millis(before), limit_i64(limit));
        self.write(|tx| {
            tx.prepare_cached(
                "DELETE FROM idempotency WHERE key IN
                     (SELECT key FROM idempotency WHERE created < ?1 ORDER BY created LIMIT ?2)",
            )
            .and_then(|mut stmt| stmt.execute(params![before, limit]))
            .map_err(backend)
        })
    }

    /// On a file in WAL mode the reads have a connection of their own, which no write
    /// holds and whose snapshots no writer waits for.
    fn reads_never_block(&self) -> bool {
        self.reader.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::list_sql::ListStatement;

    /// What SQLite plans for a listing statement, one detail line per step.
    fn plan(store: &SqliteStore, statement: &ListStatement) -> Vec<String> {
        plan_of(store, statement.sql, &statement.params)
    }

    /// What SQLite plans for `sql` with `params`, one detail line per step.
    fn plan_of(store: &SqliteStore, sql: &str, params: &[ListParam]) -> Vec<String> {
        store
            .read(|conn| {
                let mut stmt = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .map_err(backend)?;
                let params = params.iter().map(sql_value);
                stmt.query_map(rusqlite::params_from_iter(params), |row| {
                    row.get::<_, String>(3)
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)
            })
            .expect("plan")
    }

    /// The reads of the HTTP API start from their indexes (migration 7), never a scan:
    /// a session by payment id, an event by id, the mode filter, the link listing.
    #[test]
    fn the_api_reads_are_answered_from_their_indexes() {
        use crate::store::LinkKind;
        use crate::store::LinkListQuery;
        use crate::store::list_sql::link_list_statement;
        let store = SqliteStore::open_in_memory().expect("open");
        let text = |t: &str| vec![ListParam::Text(t.to_owned())];
        let cursor = crate::link::LinkId::Payment(crate::id::PaymentLinkId::generate());
        let mut cases = vec![
            (SQL_FIND_PAYMENT, text("pi_1"), "payments_by_id"),
            (SQL_EVENT, text("evt_1"), "events_by_id"),
        ];
        let statements = [
            (
                list_statement(&ListQuery::new().livemode(true), Dialect::Sqlite),
                "sessions_by_mode",
            ),
            (
                link_list_statement(&LinkListQuery::new(), Dialect::Sqlite),
                "links_by_created",
            ),
            (
                link_list_statement(
                    &LinkListQuery::new().starting_after(cursor),
                    Dialect::Sqlite,
                ),
                "links_by_created",
            ),
            (
                link_list_statement(
                    &LinkListQuery::new().kind(LinkKind::Payment).livemode(false),
                    Dialect::Sqlite,
                ),
                "links_by_kind",
            ),
        ];
        for (statement, index) in &statements {
            let statement = statement.as_ref().expect("statement");
            cases.push((statement.sql, statement.params.clone(), index));
        }
        for (sql, params, index) in cases {
            let plan = plan_of(&store, sql, &params);
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{sql}: {plan:?}"
            );
            // A walk down an index in listing order is fine; a table scan or a sort is not.
            assert!(
                !plan
                    .iter()
                    .any(|step| (step.starts_with("SCAN") && !step.contains("USING"))
                        || step.contains("TEMP B-TREE")),
                "{sql} scans or sorts: {plan:?}"
            );
        }
    }

    /// A session's events are found by their numbers, from its row's list and the rows
    /// beyond it, never by a walk through the outbox (ADR 32).
    #[test]
    fn a_sessions_events_are_found_by_their_numbers() {
        let store = SqliteStore::open_in_memory().expect("open");
        let session = || ListParam::Text(SessionId::generate().to_string());
        for (sql, params) in [
            (SQL_SESSION_EVENTS, vec![session(), session()]),
            (
                SQL_SESSION_EVENTS_AFTER,
                vec![session(), session(), ListParam::Int(0), ListParam::Int(10)],
            ),
        ] {
            let plan = plan_of(&store, sql, &params);
            assert!(
                plan.iter()
                    .any(|step| step.starts_with("SEARCH e USING INTEGER PRIMARY KEY")),
                "{plan:?}"
            );
            assert!(
                plan.iter()
                    .any(|step| step.contains("session_events_beyond USING PRIMARY KEY")),
                "{plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN e")),
                "{sql} walks the outbox: {plan:?}"
            );
        }
    }

    /// The `source_id` and metadata filters start from their index, never a scan of the
    /// sessions (issue #13: a shop's lookup by order number must not read every session).
    #[test]
    fn the_lookup_filters_are_answered_from_their_indexes() {
        let store = SqliteStore::open_in_memory().expect("open");
        for (query, index) in [
            (ListQuery::new().source_id("wc_1001"), "sessions_by_source"),
            (
                ListQuery::new().metadata("order", "1001"),
                "SEARCH m USING PRIMARY KEY",
            ),
            (
                ListQuery::new()
                    .metadata("order", "1001")
                    .status(crate::SessionStatus::Paid)
                    .starting_after(SessionId::generate()),
                "SEARCH m USING PRIMARY KEY",
            ),
            (
                ListQuery::new()
                    .source_id("wc_1001")
                    .status(crate::SessionStatus::Paid)
                    .created_gte(OffsetDateTime::UNIX_EPOCH),
                "sessions_by_source",
            ),
        ] {
            let statement = list_statement(&query, Dialect::Sqlite).expect("statement");
            let plan = plan(&store, &statement);
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{query:?}: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|step| step.starts_with("SCAN s") || step.starts_with("SCAN m")),
                "{query:?} scans: {plan:?}"
            );
        }
    }
}
