//! Which transfers a session has: their keys listed in its own row instead of the index
//! `transfers_by_session` (migration 18, ADR 34).
//!
//! A transfer row is keyed by its transfer key, which routes a report to its session and
//! refuses the same funds on a second one. A session's load also needs its transfers, so
//! until schema 17 the table had an index by session: a leaf of it in every commit that
//! records a new transfer, about a page (4 KB) of write-ahead log. The session's row, which
//! that commit rewrites anyway, now lists the keys (`sessions.transfer_keys`, a JSON array
//! of strings), as it lists its events (ADR 32). Past [`LISTED`] keys the rest go to
//! `session_transfers_beyond (session_id, key)`, so that the row of a session paid in
//! hundreds of transfers stays small; the readers take the union of both. Transfers are
//! facts: none is ever deleted, so a list only grows.

use rusqlite::{Connection, Transaction, params};

use super::backend;
use super::event_lists::{Filed, fill_lists};
use crate::store::{Corruption, StoreError};

/// The most transfer keys a session's row lists (about 70 bytes each); later ones go to
/// `session_transfers_beyond`. It is the default transfer cap
/// ([`DEFAULT_MAX_TRANSFERS`](crate::session::DEFAULT_MAX_TRANSFERS)): past it
/// a session holds new transfers apart, so only a session with a higher cap files any
/// beyond its row.
pub(super) const LISTED: usize = 20;

/// Migration 18: the list column and the overflow table; [`fill`] then lists every
/// session's transfers and drops the old index.
pub(super) const MIGRATION: &str = "
ALTER TABLE sessions ADD COLUMN transfer_keys TEXT;
CREATE TABLE session_transfers_beyond (
    session_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    PRIMARY KEY (session_id, key)
) STRICT, WITHOUT ROWID;
";

/// Migration 18's fill: each session's first [`LISTED`] transfer keys (in key order) in its
/// row, the rest in `session_transfers_beyond`; then the old index goes.
pub(super) fn fill(tx: &Transaction<'_>) -> Result<(), StoreError> {
    fill_lists(
        tx,
        LISTED,
        [
            "UPDATE sessions SET transfer_keys = (
                 SELECT json_group_array(key) FROM (
                     SELECT key FROM transfers WHERE session_id = sessions.id
                     ORDER BY key LIMIT ?1))",
            "INSERT INTO session_transfers_beyond (session_id, key)
             SELECT session_id, key FROM (
                 SELECT session_id, key,
                        row_number() OVER (PARTITION BY session_id ORDER BY key) AS n
                 FROM transfers)
             WHERE n > ?1",
        ],
        "transfers_by_session",
    )
}

/// How a commit files the keys `new` of the transfers it adds next to session `id`'s list
/// `stored`: the list with them while it has room, else all of them beyond it. A list
/// that is not a JSON array of strings is a corrupt row.
pub(super) fn file(id: &str, stored: Option<&str>, new: &[&str]) -> Result<Filed, StoreError> {
    let corrupt = |e: serde_json::Error| {
        StoreError::from(Corruption::undecodable(
            format!("session {id}"),
            format!("its transfer list: {e}"),
        ))
    };
    let mut keys: Vec<String> = match stored {
        None => Vec::new(),
        Some(list) => serde_json::from_str(list).map_err(corrupt)?,
    };
    if keys.len() + new.len() > LISTED {
        return Ok(Filed::Beyond);
    }
    keys.extend(new.iter().map(|k| (*k).to_owned()));
    serde_json::to_string(&keys)
        .map(Filed::Listed)
        .map_err(corrupt)
}

/// Files the keys `new` of session `id` beyond its row's list.
pub(super) fn file_beyond(tx: &Connection, id: &str, new: &[&str]) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached("INSERT INTO session_transfers_beyond (session_id, key) VALUES (?1, ?2)")
        .map_err(backend)?;
    for key in new {
        stmt.execute(params![id, key]).map_err(backend)?;
    }
    Ok(())
}

/// The `(key, body)` transfer rows of session `id`, from its list and the keys beyond it.
///
/// A listed key without its row means the rows were damaged (a key changed by hand, say).
/// The session's rows are then read by their `session_id` column instead, a walk through
/// the table that only this case pays for, so that the damage is reported as it is found
/// without the list (the row whose key does not match its transfer): the same error as on
/// PostgreSQL, which keeps its index.
pub(super) fn rows(conn: &Connection, id: &str) -> Result<Vec<(String, String)>, StoreError> {
    let listed = conn
        .prepare_cached(
            "SELECT k.key, t.body FROM (
                 SELECT value AS key FROM json_each(
                     (SELECT transfer_keys FROM sessions WHERE id = ?1))
                 UNION ALL SELECT key FROM session_transfers_beyond WHERE session_id = ?1) k
             LEFT JOIN transfers t ON t.key = k.key AND t.session_id = ?1",
        )
        .map_err(backend)?
        .query_map([id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    if listed.iter().all(|(_, body)| body.is_some()) {
        return Ok(listed
            .into_iter()
            .filter_map(|(key, body)| body.map(|b| (key, b)))
            .collect());
    }
    let keys: Vec<&str> = listed.iter().map(|(key, _)| key.as_str()).collect();
    damaged(conn, id, &keys)
}

/// The rows of session `id` by their `session_id` column, after one of its listed
/// transfer `keys` was not found: those rows if one of them is not listed (its key was
/// changed: the decoder reports the row whose key does not match its transfer), else the
/// missing row as corrupt.
fn damaged(
    conn: &Connection,
    id: &str,
    keys: &[&str],
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = super::reads::transfer_rows_by_column(conn, id)?;
    if rows.iter().any(|(key, _)| !keys.contains(&key.as_str())) {
        return Ok(rows);
    }
    let missing = keys
        .iter()
        .find(|key| !rows.iter().any(|(k, _)| k == *key))
        .copied()
        .unwrap_or_default();
    Err(Corruption::undecodable(
        format!("session {id}"),
        format!("its transfer {missing} is missing"),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_grows_by_the_keys_of_each_commit_until_it_is_full() {
        assert_eq!(
            file("cs_1", None, &["ln:a"]).ok(),
            Some(Filed::Listed(r#"["ln:a"]"#.into()))
        );
        assert_eq!(
            file("cs_1", Some(r#"["ln:a"]"#), &["tx:b", "tx:c"]).ok(),
            Some(Filed::Listed(r#"["ln:a","tx:b","tx:c"]"#.into()))
        );
        let full: Vec<String> = (0..LISTED).map(|n| format!("tx:{n}")).collect();
        let full = serde_json::to_string(&full).unwrap_or_default();
        assert_eq!(
            file("cs_1", Some(&full), &["tx:x"]).ok(),
            Some(Filed::Beyond)
        );
    }

    #[test]
    fn a_list_that_is_not_one_is_a_corrupt_row() {
        for bad in ["ln:a", "[1,2]", "{\"a\":1}", "[\"ln:a\""] {
            assert!(
                matches!(file("cs_1", Some(bad), &["x"]), Err(StoreError::Corrupt(_))),
                "{bad}"
            );
        }
    }
}
