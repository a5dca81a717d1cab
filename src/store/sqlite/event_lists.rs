//! Which events a session has: a list in its own row instead of an index (migration 16,
//! ADR 32).
//!
//! Until schema 15 the outbox had an index `events_by_session (session_id, seq)`. Every
//! commit that appended an event also wrote a leaf of that index: about 1.4 pages (4 KB
//! each) of WAL per commit, more than the event row itself. Every such commit rewrites
//! the session's row anyway, so the row now lists its events' numbers, a JSON array in
//! `sessions.event_seqs` (about 8 bytes an event; SQLite's `json_each` reads it in the
//! statements that need it). A session with more than [`LISTED`] events in its list
//! files the rest in `session_events_beyond (session_id, seq)`, so that a row never grows
//! past a few hundred bytes for them; the readers take the union of both.
//!
//! A commit appends its events before it writes the session's row, which then lists the
//! numbers SQLite gave them. Events filed under no session (a
//! link's, an endpoint's) are found by the partial index `events_unfiled`, which holds
//! nothing for a session's event and so costs its commits nothing.
//!
//! A prune compacts the lists of the sessions whose events it deleted, so that a list
//! shrinks with its events and has room again.

use rusqlite::{Connection, Transaction, params};

use super::backend;
use crate::id::SessionId;
use crate::store::{Corruption, StoreError};

/// The most event numbers a session's row lists; later ones go to
/// `session_events_beyond`. Sixty-four covers every session that pays in a few transfers
/// (one pays in three commits with six to ten events) at about 500 bytes of row at most.
pub(super) const LISTED: usize = 64;

/// The numbers of session `?1`'s events (`?1` its text id, `?2` its 16 id bytes), as a
/// subquery for `seq IN (…)`.
macro_rules! session_seqs {
    ($text:literal, $bytes:literal) => {
        concat!(
            "(SELECT value FROM json_each((SELECT event_seqs FROM sessions WHERE id = ",
            $text,
            ")) UNION ALL SELECT seq FROM session_events_beyond WHERE session_id = ",
            $bytes,
            ")"
        )
    };
}
pub(super) use session_seqs;

/// Migration 16: the list column, the overflow table, the partial index for unfiled
/// events; [`fill`] then lists every session's events and drops the old index.
pub(super) const MIGRATION: &str = r#"
ALTER TABLE sessions ADD COLUMN event_seqs TEXT;
CREATE TABLE session_events_beyond (
    session_id BLOB    NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX events_unfiled ON events (seq) WHERE session_id IS NULL;
"#;

/// Migration 16's fill: each session's first [`LISTED`] events (by number) in its row,
/// the rest in `session_events_beyond`; then the old index goes. An event filed under a
/// session id that no row has (none the library writes) stays in the outbox, delivered
/// and listed as before, but no longer among any session's events.
pub(super) fn fill(tx: &Transaction<'_>) -> Result<(), StoreError> {
    fill_lists(
        tx,
        LISTED,
        [
            "UPDATE sessions SET event_seqs = (
                 SELECT json_group_array(seq) FROM (
                     SELECT seq FROM events WHERE session_id = unhex(substr(sessions.id, 4))
                     ORDER BY seq LIMIT ?1))",
            "INSERT INTO session_events_beyond (session_id, seq)
             SELECT session_id, seq FROM (
                 SELECT session_id, seq,
                        row_number() OVER (PARTITION BY session_id ORDER BY seq) AS n
                 FROM events WHERE session_id IS NOT NULL)
             WHERE n > ?1",
        ],
        "events_by_session",
    )
}

/// The fill of a migration that lists rows in their session's row instead of an index
/// (16 and 18): the statement that fills the lists and the one that files the rest
/// beyond them, each given `?1`, the most a row lists; then the old `index` goes.
pub(super) fn fill_lists(
    tx: &Transaction<'_>,
    listed: usize,
    statements: [&str; 2],
    index: &str,
) -> Result<(), StoreError> {
    let listed = i64::try_from(listed).unwrap_or(i64::MAX);
    for sql in statements {
        tx.execute(sql, [listed]).map_err(backend)?;
    }
    tx.execute_batch(&format!("DROP INDEX IF EXISTS {index};"))
        .map_err(backend)
}

/// Where a commit files what it adds to one of its session's lists (event numbers here,
/// transfer keys in `transfer_lists`): in the row's list while it has room, else all of
/// it in the list's table beyond the row.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Filed {
    /// The row's new list.
    Listed(String),
    /// The row's list stays as it was; the additions go beyond it.
    Beyond,
}

impl Filed {
    /// The list column the row is written with, `stored` being the list it has now.
    pub(super) fn column<'a>(&'a self, stored: Option<&'a str>) -> Option<&'a str> {
        match self {
            Self::Listed(list) => Some(list),
            Self::Beyond => stored,
        }
    }
}

/// How a commit files the numbers `seqs` of its events next to session `id`'s list
/// `stored`. A list that is not a JSON array of numbers is a corrupt row.
pub(super) fn file(id: &str, stored: Option<&str>, seqs: &[i64]) -> Result<Filed, StoreError> {
    use std::fmt::Write as _;
    let inner = match stored {
        None => "",
        Some(list) => list
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .filter(|l| l.bytes().all(|b| b.is_ascii_digit() || b == b','))
            .ok_or_else(|| {
                Corruption::undecodable(format!("session {id}"), "its event list is not a list")
            })?,
    };
    let count = if inner.is_empty() {
        0
    } else {
        inner.bytes().filter(|&b| b == b',').count() + 1
    };
    if count + seqs.len() > LISTED {
        return Ok(Filed::Beyond);
    }
    let mut list = String::with_capacity(inner.len() + 2 + seqs.len() * 8);
    list.push('[');
    list.push_str(inner);
    for (i, seq) in seqs.iter().enumerate() {
        if i > 0 || !inner.is_empty() {
            list.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(list, "{seq}");
    }
    list.push(']');
    Ok(Filed::Listed(list))
}

/// Files `seqs` of session `id` (its 16 bytes) beyond its row's list.
pub(super) fn file_beyond(tx: &Connection, id: &[u8; 16], seqs: &[i64]) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached("INSERT INTO session_events_beyond (session_id, seq) VALUES (?1, ?2)")
        .map_err(backend)?;
    for seq in seqs {
        stmt.execute(params![&id[..], seq]).map_err(backend)?;
    }
    Ok(())
}

/// [`Store::prune_events`](crate::store::Store::prune_events): deletes up to `limit`
/// events numbered `through` or lower, oldest first, but the newest event (the next
/// number is one more than it, ADR 29) and any event a later one carries its object for
/// (a thin event's carrier is in its own commit: for a session's event, among the numbers
/// its session lists; for an unfiled one, among the unfiled events, `events_unfiled`).
/// Then each session that lost events has its list compacted and the older objects no
/// event left needs dropped. Returns how many events went.
pub(super) fn prune(tx: &Connection, through: i64, limit: i64) -> Result<usize, StoreError> {
    let sessions = tx
        .prepare_cached(concat!(
            "WITH cut AS (SELECT MIN(?1, (SELECT MAX(seq) FROM events) - 1) AS t)
             DELETE FROM events WHERE seq IN (
                 SELECT e.seq FROM events e, cut
                 WHERE e.seq <= cut.t
                     AND (e.session_id IS NOT NULL OR NOT EXISTS (
                         SELECT 1 FROM events l
                         WHERE l.session_id IS NULL AND l.seq > cut.t AND l.carrier = e.id))
                     AND (e.session_id IS NULL OR NOT EXISTS (
                         SELECT 1 FROM events l
                         WHERE l.seq IN ",
            session_seqs!("'cs_' || lower(hex(e.session_id))", "e.session_id"),
            "
                           AND l.seq > cut.t AND l.carrier = e.id))
                 ORDER BY e.seq LIMIT ?2)
             RETURNING session_id"
        ))
        .and_then(|mut stmt| {
            stmt.query_map(params![through, limit], |r| r.get::<_, Option<Vec<u8>>>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(backend)?;
    let pruned = sessions.len();
    let sessions: std::collections::BTreeSet<Vec<u8>> = sessions.into_iter().flatten().collect();
    for session in &sessions {
        let uuid = uuid::Uuid::from_slice(session)
            .map_err(|e| Corruption::undecodable("a pruned event", e))?;
        after_prune(tx, SessionId::from_uuid(uuid))?;
    }
    Ok(pruned)
}

/// [`Store::prune_session_events`](crate::store::Store::prune_session_events): [`prune`]
/// for the events session `id` lists, all of them at once.
pub(super) fn prune_session(
    tx: &Connection,
    id: SessionId,
    through: i64,
) -> Result<usize, StoreError> {
    let (text, bytes) = (id.to_string(), id.as_uuid().into_bytes());
    let pruned = tx
        .prepare_cached(concat!(
            "WITH cut AS (SELECT MIN(?3, (SELECT MAX(seq) FROM events) - 1) AS t),
                  mine AS ",
            session_seqs!("?1", "?2"),
            "
             DELETE FROM events WHERE seq IN (
                 SELECT e.seq FROM events e, cut
                 WHERE e.seq IN mine AND e.session_id = ?2 AND e.seq <= cut.t
                     AND NOT EXISTS (
                         SELECT 1 FROM events l
                         WHERE l.seq IN mine AND l.seq > cut.t AND l.carrier = e.id))"
        ))
        .and_then(|mut stmt| stmt.execute(params![text, &bytes[..], through]))
        .map_err(backend)?;
    after_prune(tx, id)?;
    Ok(pruned)
}

/// What a prune leaves to do for session `id`, which lost events: its list and its rows
/// beyond it keep only the numbers still in the outbox, and the older objects that no
/// event left needs go (an event of version `v` needs the objects of `v` and later: the
/// way back from the live rows passes them).
fn after_prune(tx: &Connection, id: SessionId) -> Result<(), StoreError> {
    let (text, bytes) = (id.to_string(), id.as_uuid().into_bytes());
    tx.prepare_cached(
        "UPDATE sessions SET event_seqs = (
             SELECT json_group_array(j.value) FROM json_each(sessions.event_seqs) j
             WHERE EXISTS (SELECT 1 FROM events WHERE seq = j.value))
         WHERE id = ?1 AND event_seqs IS NOT NULL",
    )
    .and_then(|mut stmt| stmt.execute([&text]))
    .map_err(backend)?;
    tx.prepare_cached(
        "DELETE FROM session_events_beyond AS b WHERE session_id = ?1
             AND NOT EXISTS (SELECT 1 FROM events WHERE seq = b.seq)",
    )
    .and_then(|mut stmt| stmt.execute([&bytes[..]]))
    .map_err(backend)?;
    tx.prepare_cached(concat!(
        "DELETE FROM session_objects WHERE session_id = ?1 AND version < coalesce(
             (SELECT min(object_version) FROM events
              WHERE seq IN ",
        session_seqs!("?1", "?2"),
        " AND session_id = ?2), 9223372036854775807)"
    ))
    .and_then(|mut stmt| stmt.execute(params![text, &bytes[..]]))
    .map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_grows_by_the_numbers_of_each_commit() {
        assert_eq!(
            file("cs_1", None, &[7, 8]).ok(),
            Some(Filed::Listed("[7,8]".into()))
        );
        assert_eq!(
            file("cs_1", Some("[]"), &[9]).ok(),
            Some(Filed::Listed("[9]".into()))
        );
        assert_eq!(
            file("cs_1", Some("[7,8]"), &[12, 13]).ok(),
            Some(Filed::Listed("[7,8,12,13]".into()))
        );
        assert_eq!(
            file("cs_1", Some("[7]"), &[]).ok(),
            Some(Filed::Listed("[7]".into()))
        );
    }

    #[test]
    fn a_full_list_files_the_next_numbers_beyond_it() {
        let full = format!(
            "[{}]",
            (1..=LISTED)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(file("cs_1", Some(&full), &[100]).ok(), Some(Filed::Beyond));
        let almost = format!(
            "[{}]",
            (1..LISTED)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(matches!(
            file("cs_1", Some(&almost), &[100]),
            Ok(Filed::Listed(_))
        ));
        assert_eq!(
            file("cs_1", Some(&almost), &[100, 101]).ok(),
            Some(Filed::Beyond)
        );
    }

    #[test]
    fn a_list_that_is_not_one_is_a_corrupt_row() {
        for bad in ["7,8", "[7,x]", "{\"a\":1}", "[7.5]"] {
            assert!(
                matches!(file("cs_1", Some(bad), &[9]), Err(StoreError::Corrupt(_))),
                "{bad}"
            );
        }
    }
}
