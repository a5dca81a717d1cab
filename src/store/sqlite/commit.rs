//! Writing a commit's rows ([`CommitRows`]) and claiming idempotency keys.

use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::event_lists::{self, Filed};
use super::object_cache::ObjectCache;
use super::older_objects::{self, Older};
use super::outbox::id_bytes;
use super::packed::{self, Kind, pack};
use super::transfer_lists;
use super::{backend, insert_or_conflict};
use crate::id::{EventId, PaymentId, SessionId};
use crate::store::live_object;
use crate::store::rows::{CommitRows, EventRow, IdempotencyRow, SessionRow};
use crate::store::{Corruption, RoutingKey, StoreError, key_taken};

/// Applies a commit's rows inside the caller's open write transaction: the compare-and-swap
/// on the session's version, the payments and transfers it names, the lookup rows and the
/// events. The one code path of [`Store::commit`](crate::store::Store::commit) and of each
/// session commit of a link commit. An error leaves the transaction to be rolled back.
/// `objects` may hold the object of the version the commit moves on from.
pub(super) fn apply(
    tx: &Connection,
    rows: &CommitRows,
    objects: &ObjectCache,
) -> Result<(), StoreError> {
    let s = &rows.session;
    // The row at the version the commit moves on from, and the object it keeps, read
    // before they change. No row at that version: another commit got there first.
    let stored = match rows.expected_version {
        Some(expected) => {
            let row = stored_row(tx, &s.id, expected)?.ok_or(StoreError::Conflict)?;
            Some((expected, row))
        }
        None => None,
    };
    let moved_past = match &stored {
        Some((expected, row)) => {
            match objects.take(&s.id, *expected, row.object_payments.as_deref()) {
                Some(kept) => Some(kept),
                None => kept_object(tx, &s.id, *expected, row)?,
            }
        }
        None => None,
    };
    let live_payments = rows.live.as_ref().map(|l| l.payments.as_str());
    let head = pack(Kind::Head, &s.head)?;
    let stored_seqs = stored
        .as_ref()
        .and_then(|(_, row)| row.event_seqs.as_deref());
    // The object the session moves past, kept by the commit's first event (ADR 33).
    let older = moved_past
        .as_ref()
        .map(|kept| Older::of(kept.version, &kept.text, rows.live.as_ref()));
    // The events first, so that the row can list their numbers (ADR 32).
    let seqs = insert_session_events(tx, &s.id, &rows.events, older.as_ref())?;
    let filed = event_lists::file(&s.id, stored_seqs, &seqs)?;
    let event_seqs = filed.column(stored_seqs);
    // The transfers it adds, listed in the row too (ADR 34).
    let stored_keys = stored
        .as_ref()
        .and_then(|(_, row)| row.transfer_keys.as_deref());
    let new_keys = new_transfers(tx, &s.id, rows)?;
    let keys_filed = if new_keys.is_empty() {
        None
    } else {
        Some(transfer_lists::file(&s.id, stored_keys, &new_keys)?)
    };
    let transfer_keys = keys_filed
        .as_ref()
        .map_or(stored_keys, |f| f.column(stored_keys));
    match &stored {
        None => insert_or_conflict(
            tx.prepare_cached(
                "INSERT INTO sessions
                     (id, created, status, version, wake_at, head, link_id, source_id, metadata,
                      review, livemode, object_payments, event_seqs, transfer_keys)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    s.id,
                    s.created,
                    s.status,
                    s.version,
                    s.wake_at,
                    head,
                    s.link_id,
                    s.source_id,
                    s.metadata,
                    s.review,
                    s.livemode,
                    live_payments,
                    event_seqs,
                    transfer_keys
                ])
            }),
        )?,
        Some((expected, row)) => {
            let columns = NewColumns {
                head: &head,
                live_payments,
                event_seqs,
                transfer_keys,
            };
            update_session(tx, s, *expected, &columns, row)?;
        }
    }
    let mut payment = tx
        .prepare_cached(
            "INSERT INTO payments (session_id, id, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (session_id, id) DO UPDATE SET body = excluded.body",
        )
        .map_err(backend)?;
    let mut hash = tx
        .prepare_cached("INSERT OR IGNORE INTO payment_hashes (hash, session_id) VALUES (?1, ?2)")
        .map_err(backend)?;
    for p in &rows.payments {
        // A listed payment the commit did not change is written again only to keep the
        // object's bytes (ADR 22); stored exactly so already, its row stays as it is.
        if moved_past
            .as_ref()
            .is_some_and(|kept| kept.holds(&p.id, &p.body))
        {
            continue;
        }
        payment
            .execute(params![s.id, p.id, pack(Kind::Payment, &p.body)?])
            .map_err(backend)?;
        // The first session to claim an invoice hash keeps it; a later one is refused.
        if let Some(h) = &p.payment_hash
            && hash.execute(params![h, s.id]).map_err(backend)? == 0
        {
            check_holder(
                tx,
                ("payment_hashes", "hash"),
                RoutingKey::PaymentHash,
                h,
                &s.id,
            )?;
        }
    }
    let mut upsert = tx
        .prepare_cached(
            "INSERT INTO transfers (key, session_id, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET body = excluded.body
             WHERE transfers.session_id = excluded.session_id",
        )
        .map_err(backend)?;
    for t in &rows.transfers {
        let written = upsert
            .execute(params![t.key, s.id, t.body])
            .map_err(backend)?;
        if written == 0 {
            // The same funds cannot count on two sessions.
            check_holder(
                tx,
                ("transfers", "key"),
                RoutingKey::Transfer,
                &t.key,
                &s.id,
            )?;
        }
    }
    if keys_filed == Some(Filed::Beyond) {
        transfer_lists::file_beyond(tx, &s.id, &new_keys)?;
    }
    if let Some(held) = &rows.held {
        // A held transfer is new: its key recorded anywhere refuses it, by another session
        // (KeyTaken) or by this one (a racing report of the same transfer: a conflict, and
        // the retry finds it).
        for table in ["transfers", "held_transfers"] {
            match holder_of(tx, table, &held.key)? {
                Some(h) if h == s.id => return Err(StoreError::Conflict),
                Some(h) => return Err(key_taken(RoutingKey::Transfer, &held.key, &h)),
                None => {}
            }
        }
        tx.prepare_cached(
            "INSERT INTO held_transfers (key, session_id, held_at, body) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut stmt| stmt.execute(params![held.key, s.id, held.held_at, held.body]))
        .map_err(backend)?;
    }
    if let Some(address) = &rows.address {
        let written = tx
            .prepare_cached("INSERT OR IGNORE INTO addresses (address, session_id) VALUES (?1, ?2)")
            .and_then(|mut stmt| stmt.execute(params![address, s.id]))
            .map_err(backend)?;
        if written == 0 {
            check_holder(
                tx,
                ("addresses", "address"),
                RoutingKey::Address,
                address,
                &s.id,
            )?;
        }
    }
    if rows.events.is_empty()
        && let Some(older) = &older
    {
        older_objects::keep_apart(tx, &s.id, older)?;
    }
    if filed == Filed::Beyond {
        event_lists::file_beyond(tx, &id_bytes(&s.id, SessionId::PREFIX)?, &seqs)?;
    }
    Ok(())
}

/// Appends the commit's `events`, each filed under session `id`, whose row lists them,
/// the first one carrying `older`; returns their numbers.
fn insert_session_events(
    tx: &Connection,
    id: &str,
    events: &[EventRow],
    older: Option<&Older<'_>>,
) -> Result<Vec<i64>, StoreError> {
    if let Some(other) = events.iter().find(|e| e.session_id.as_deref() != Some(id)) {
        return Err(StoreError::Backend {
            message: format!(
                "event {} of a commit of session {id} is filed under another session",
                other.id
            ),
            retryable: false,
        });
    }
    events
        .iter()
        .enumerate()
        .map(|(i, e)| insert_event(tx, e, older.filter(|_| i == 0)))
        .collect()
}

/// The keys of the transfers the commit adds to session `id` (none recorded yet), after
/// the checks that refuse it: a transfer held by another session (beyond its cap) or
/// recorded on one cannot count here (the same funds on two sessions).
fn new_transfers<'a>(
    tx: &Connection,
    id: &str,
    rows: &'a CommitRows,
) -> Result<Vec<&'a str>, StoreError> {
    // Both holders in one statement: this runs for every transfer a commit names.
    let mut holders = tx
        .prepare_cached(
            "SELECT (SELECT session_id FROM held_transfers WHERE key = ?1),
                    (SELECT session_id FROM transfers WHERE key = ?1)",
        )
        .map_err(backend)?;
    let mut new = Vec::new();
    for t in &rows.transfers {
        let (held, recorded): (Option<String>, Option<String>) = holders
            .query_row([&t.key], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(backend)?;
        if let Some(h) = held.filter(|h| h != id) {
            return Err(key_taken(RoutingKey::Transfer, &t.key, &h));
        }
        match recorded {
            None if !new.contains(&t.key.as_str()) => new.push(t.key.as_str()),
            None => {}
            Some(h) if h == id => {}
            Some(h) => return Err(key_taken(RoutingKey::Transfer, &t.key, &h)),
        }
    }
    Ok(new)
}

/// A session's event object as its rows keep it (ADR 22), with the stored bodies of the
/// payments it lists.
pub(super) struct KeptObject {
    /// The session version the object is of.
    pub(super) version: i64,
    /// The object.
    pub(super) text: String,
    /// Each listed payment as (id, stored body), in order.
    pub(super) payments: Vec<(String, String)>,
}

impl KeptObject {
    /// Whether payment `id` is stored with exactly `body`, so that writing it again would
    /// change nothing.
    fn holds(&self, id: &str, body: &str) -> bool {
        self.payments.iter().any(|(i, b)| i == id && b == body)
    }
}

/// A session's row at a version, as a commit that moves it on reads it: the columns that
/// have an index or a trigger (to set only those that change), and what its object is
/// made of.
pub(super) struct StoredRow {
    status: String,
    wake_at: Option<i64>,
    link_id: Option<String>,
    metadata: Option<String>,
    review: bool,
    head: Vec<u8>,
    object_payments: Option<String>,
    event_seqs: Option<String>,
    transfer_keys: Option<String>,
}

/// The columns every update of a session row writes, besides its version.
struct NewColumns<'a> {
    head: &'a [u8],
    live_payments: Option<&'a str>,
    event_seqs: Option<&'a str>,
    transfer_keys: Option<&'a str>,
}

fn stored_row(conn: &Connection, id: &str, version: i64) -> Result<Option<StoredRow>, StoreError> {
    conn.prepare_cached(
        "SELECT status, wake_at, link_id, metadata, review, head, object_payments, event_seqs,
                transfer_keys
         FROM sessions WHERE id = ?1 AND version = ?2",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![id, version], |r| {
            Ok(StoredRow {
                status: r.get(0)?,
                wake_at: r.get(1)?,
                link_id: r.get(2)?,
                metadata: r.get(3)?,
                review: r.get(4)?,
                head: r.get(5)?,
                object_payments: r.get(6)?,
                event_seqs: r.get(7)?,
                transfer_keys: r.get(8)?,
            })
        })
        .optional()
    })
    .map_err(backend)
}

/// Moves session row `s` on from version `expected` (`stored`, read in this transaction).
/// Only the indexed or triggering columns that change are named: SQLite rewrites the index
/// entries of every column a `SET` names, and runs its `UPDATE OF` triggers, changed or
/// not. `source_id` and `livemode` are set at creation only (a session's mode never
/// changes); the metadata rows follow the column by trigger (migration 4).
fn update_session(
    tx: &Connection,
    s: &SessionRow,
    expected: i64,
    new: &NewColumns<'_>,
    stored: &StoredRow,
) -> Result<(), StoreError> {
    fn set<'a>(
        sql: &mut String,
        values: &mut Vec<&'a dyn ToSql>,
        column: &str,
        value: &'a dyn ToSql,
    ) {
        use std::fmt::Write as _;
        values.push(value);
        // Writing to a String cannot fail.
        let _ = write!(sql, ", {column} = ?{}", values.len());
    }
    let mut sql = String::from(
        "UPDATE sessions SET version = ?3, head = ?4, object_payments = ?5, event_seqs = ?6,
             transfer_keys = ?7",
    );
    let mut values: Vec<&dyn ToSql> = vec![
        &s.id,
        &expected,
        &s.version,
        &new.head,
        &new.live_payments,
        &new.event_seqs,
        &new.transfer_keys,
    ];
    if stored.status != s.status {
        set(&mut sql, &mut values, "status", &s.status);
    }
    if stored.wake_at != s.wake_at {
        set(&mut sql, &mut values, "wake_at", &s.wake_at);
    }
    if stored.link_id != s.link_id {
        set(&mut sql, &mut values, "link_id", &s.link_id);
    }
    if stored.metadata != s.metadata {
        set(&mut sql, &mut values, "metadata", &s.metadata);
    }
    if stored.review != s.review {
        set(&mut sql, &mut values, "review", &s.review);
    }
    sql.push_str(" WHERE id = ?1 AND version = ?2");
    let updated = tx
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(&*values))
        .map_err(backend)?;
    if updated != 1 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// The object session `id`'s rows keep for `version` (its row head with the payments its
/// `object_payments` names), if the row is at that version and keeps one.
pub(super) fn live_object_of(
    conn: &Connection,
    id: &str,
    version: i64,
) -> Result<Option<KeptObject>, StoreError> {
    match stored_row(conn, id, version)? {
        Some(row) => kept_object(conn, id, version, &row),
        None => Ok(None),
    }
}

/// The object `row` (session `id`'s row at `version`) keeps, if it keeps one.
fn kept_object(
    conn: &Connection,
    id: &str,
    version: i64,
    row: &StoredRow,
) -> Result<Option<KeptObject>, StoreError> {
    let Some(listed) = &row.object_payments else {
        return Ok(None);
    };
    let what = || format!("the object of session {id} at version {version}");
    let head = packed::unpack(Kind::Head, &row.head, &what)?;
    let mut payments = Vec::new();
    let mut body = conn
        .prepare_cached("SELECT body FROM payments WHERE session_id = ?1 AND id = ?2")
        .map_err(backend)?;
    for payment in listed.split(',').filter(|p| !p.is_empty()) {
        let packed: Option<Vec<u8>> = body
            .query_row(params![id, payment], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        let packed = packed.ok_or_else(|| {
            Corruption::undecodable(what(), format!("its payment {payment} is missing"))
        })?;
        let text = packed::unpack(Kind::Payment, &packed, &|| format!("payment {payment}"))?;
        payments.push((payment.to_owned(), text));
    }
    let bodies: Vec<&str> = payments.iter().map(|(_, b)| b.as_str()).collect();
    let text = live_object::splice(&head, &bodies)
        .ok_or_else(|| Corruption::undecodable(what(), "its head has no payment list"))?;
    Ok(Some(KeptObject {
        version,
        text,
        payments,
    }))
}

/// The session holding `key` in `table` (a routing table keyed by `key`), if any.
fn holder_of(tx: &Connection, table: &str, key: &str) -> Result<Option<String>, StoreError> {
    tx.prepare_cached(&format!("SELECT session_id FROM {table} WHERE key = ?1"))
        .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
        .map_err(backend)
}

/// Refuses the commit if the lookup row `key` of `table`, which the commit could not
/// insert, belongs to another session than `session` (`wrap` types the key).
fn check_holder<K>(
    tx: &Connection,
    (table, column): (&str, &str),
    wrap: fn(K) -> RoutingKey,
    key: &str,
    session: &str,
) -> Result<(), StoreError>
where
    K: std::str::FromStr,
    K::Err: std::fmt::Display,
{
    let holder: Option<String> = tx
        .prepare_cached(&format!(
            "SELECT session_id FROM {table} WHERE {column} = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
        .map_err(backend)?;
    match holder {
        Some(h) if h == session => Ok(()),
        Some(h) => Err(key_taken(wrap, key, &h)),
        // The insert was ignored, so a row exists: it vanished under the transaction.
        None => Err(StoreError::Backend {
            message: format!("the {table} row {key} disappeared during a commit"),
            retryable: true,
        }),
    }
}

/// Appends an event to the outbox (the sequence number is the row id, one more than the
/// newest event's, which is never deleted (ADR 29), in commit order: SQLite has one writer
/// at a time), its ids as their UUID bytes (ADR 24), with the `older` object its commit
/// keeps (ADR 33); returns its number.
pub(super) fn insert_event(
    tx: &Connection,
    e: &EventRow,
    older: Option<&Older<'_>>,
) -> Result<i64, StoreError> {
    let bytes = |text: Option<&str>, prefix| text.map(|t| id_bytes(t, prefix)).transpose();
    let id = id_bytes(&e.id, EventId::PREFIX)?;
    let session = bytes(e.session_id.as_deref(), SessionId::PREFIX)?;
    let carrier = bytes(e.carrier.as_deref(), EventId::PREFIX)?;
    let part = bytes(e.part.as_deref(), PaymentId::PREFIX)?;
    let blob = |b: &Option<[u8; 16]>| b.map(|b| b.to_vec());
    tx.prepare_cached(
        "INSERT INTO events
             (id, session_id, created, event_type, body, carrier, part, object_version,
              older_version, older_base, older_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            &id[..],
            blob(&session),
            e.created,
            e.event_type,
            e.body,
            blob(&carrier),
            blob(&part),
            e.object_version,
            older.map(|o| o.version),
            older.and_then(|o| o.base),
            older.map(|o| o.body.as_ref())
        ])
    })
    .map_err(backend)?;
    Ok(tx.last_insert_rowid())
}

/// Inserts an idempotency row unless its key exists; returns the row that holds the key.
pub(super) fn claim_idempotency(
    tx: &Connection,
    row: &IdempotencyRow,
) -> Result<Option<IdempotencyRow>, StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO idempotency (key, request, session_id, created)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![row.key, row.request, row.session_id, row.created])
        })
        .map_err(backend)?;
    if inserted == 1 {
        return Ok(None);
    }
    read_idempotency(tx, &row.key)
}

/// Deletes an idempotency row if it is exactly `row` (key, request and session).
pub(super) fn release_idempotency(tx: &Connection, row: &IdempotencyRow) -> Result<(), StoreError> {
    tx.prepare_cached(
        "DELETE FROM idempotency WHERE key = ?1 AND request = ?2 AND session_id = ?3",
    )
    .and_then(|mut stmt| stmt.execute(params![row.key, row.request, row.session_id]))
    .map_err(backend)?;
    Ok(())
}

/// The idempotency row of a key.
pub(super) fn read_idempotency(
    conn: &Connection,
    key: &str,
) -> Result<Option<IdempotencyRow>, StoreError> {
    conn.prepare_cached("SELECT request, session_id, created FROM idempotency WHERE key = ?1")
        .map_err(backend)?
        .query_row([key], |row| {
            Ok(IdempotencyRow {
                key: key.to_owned(),
                request: row.get(0)?,
                session_id: row.get(1)?,
                created: row.get(2)?,
            })
        })
        .optional()
        .map_err(backend)
}
