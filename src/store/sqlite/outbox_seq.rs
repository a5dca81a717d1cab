//! How the outbox numbers its events: migration 15 (ADR 29).
//!
//! An event's sequence number is its row id in `events`. Until schema 14 the column was
//! `INTEGER PRIMARY KEY AUTOINCREMENT`: SQLite then keeps the highest number ever handed
//! out in `sqlite_sequence` and never hands out a lower one, at the price of updating that
//! row (a page of the WAL) in every commit that appends an event. Without AUTOINCREMENT a
//! new row gets one more than the largest row id in the table, which is the same number
//! as long as the newest event is never deleted: the two prunes
//! ([`prune_events`](crate::store::Store::prune_events) and
//! [`prune_session_events`](crate::store::Store::prune_session_events)) always keep it,
//! and the store deletes events nowhere else. A delivery cursor that passed number `n`
//! therefore never sees a new event numbered `n` or lower.

use rusqlite::Transaction;

use super::backend;
use crate::store::StoreError;

/// Migration 15's fill: moves the outbox into `events_v15` (the migration's table, without
/// AUTOINCREMENT), keeping every row, its number and the two indexes, when the highest
/// number handed out is still in the table (or none was). When it is not (rows deleted by
/// hand, beyond what this library does), a plain row id could hand a number out again, so
/// the new table is dropped and the old one kept: the store works the same on either
/// form, only a little slower on the old one.
pub(super) fn events_without_autoincrement(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let (handed_out, newest): (Option<i64>, Option<i64>) = tx
        .query_row(
            "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'events'),
                    (SELECT max(seq) FROM events)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(backend)?;
    let swap = if handed_out.unwrap_or(0) > newest.unwrap_or(0) {
        "DROP TABLE events_v15;"
    } else {
        // Dropping the old table also drops its `sqlite_sequence` row.
        "INSERT INTO events_v15
             (seq, id, session_id, created, event_type, body, carrier, part, object_version)
         SELECT seq, id, session_id, created, event_type, body, carrier, part, object_version
         FROM events ORDER BY seq;
         DROP TABLE events;
         ALTER TABLE events_v15 RENAME TO events;
         CREATE INDEX events_by_session ON events (session_id, seq);
         CREATE INDEX events_by_id ON events (id, seq);"
    };
    tx.execute_batch(swap).map_err(backend)
}
