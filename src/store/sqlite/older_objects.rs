//! Where the older event objects of a session are kept: in the commit's first event row
//! (migration 17, ADR 33), or in `session_objects`.
//!
//! A commit that moves a session on from a version whose object its rows kept (ADR 22)
//! must keep that object, as a delta against the new one. Until schema 16 it went to
//! `session_objects (session_id, version)`, a table keyed by session: a leaf of it in
//! every such commit, about 1.3 pages (4 KB each) of write-ahead log. The commit appends
//! its events anyway, on the outbox's last page, so the delta now rides in its first
//! event row (`events.older_version`, `older_base`, `older_body`). A commit without
//! events (none the service makes) still uses the table.
//!
//! A prune deletes events oldest first, and keeps only the carriers that a later event of
//! their own commit needs. The events that need the object of version `v` (those naming
//! `v` or an earlier version) all come before the commit that moved the session past `v`,
//! so that commit's first row goes only once none of them is left: the delta goes with
//! the last event that could need it. Rows kept in `session_objects` are dropped as before
//! (see [`after_prune`](super::event_lists)).

use std::borrow::Cow;

use rusqlite::{Connection, params};

use super::backend;
use super::event_lists::session_seqs;
use crate::store::live_object;
use crate::store::rows::LiveObject;
use crate::store::{Corruption, StoreError};

/// Migration 17: the three columns of an older object in an event row. Nothing to fill:
/// the objects kept in `session_objects` stay there and read as before.
pub(super) const MIGRATION: &str = "
ALTER TABLE events ADD COLUMN older_version INTEGER;
ALTER TABLE events ADD COLUMN older_base INTEGER;
ALTER TABLE events ADD COLUMN older_body TEXT;
";

/// An older object as a commit keeps it: the object of `version`, as a delta against the
/// object of `base` (the commit's own), or whole when `base` is `None`.
pub(super) struct Older<'a> {
    /// The session version the object is of.
    pub(super) version: i64,
    /// The version the delta is against, if it is one.
    pub(super) base: Option<i64>,
    /// The delta, or the whole object.
    pub(super) body: Cow<'a, str>,
}

impl<'a> Older<'a> {
    /// The object `older` of `version`, which the session's rows are about to stop
    /// holding: as a delta against the commit's own object `live` when its rows keep
    /// that one (and the delta gives `older` back), else whole.
    pub(super) fn of(version: i64, older: &'a str, live: Option<&LiveObject>) -> Self {
        match live.and_then(|l| live_object::checked_diff(&l.text, older).map(|d| (l.version, d))) {
            Some((base, delta)) => Self {
                version,
                base: Some(base),
                body: Cow::Owned(delta),
            },
            None => Self {
                version,
                base: None,
                body: Cow::Borrowed(older),
            },
        }
    }
}

/// Keeps `older` of session `id` in `session_objects`: for a commit without an event row
/// to carry it.
pub(super) fn keep_apart(tx: &Connection, id: &str, older: &Older<'_>) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO session_objects (session_id, version, base, body) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut stmt| stmt.execute(params![id, older.version, older.base, older.body.as_ref()]))
    .map_err(backend)?;
    Ok(())
}

/// The older objects of session `id` (`bytes` its 16 id bytes) of `version` and later, as
/// `(version, base, body)` in no order: those kept apart and those its events carry.
pub(super) fn since(
    conn: &Connection,
    id: &str,
    bytes: &[u8; 16],
    version: i64,
) -> Result<Vec<(i64, Option<i64>, String)>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT version, base, body FROM session_objects WHERE session_id = ?1 AND version >= ?3
         UNION ALL
         SELECT older_version, older_base, older_body FROM events
         WHERE seq IN ",
        session_seqs!("?1", "?2"),
        " AND session_id = ?2 AND older_version >= ?3"
    ))
    .and_then(|mut stmt| {
        stmt.query_map(params![id, &bytes[..], version], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?, r.get(2)?))
        })?
        .collect::<Result<Vec<(i64, Option<i64>, Option<String>)>, _>>()
    })
    .map_err(backend)?
    .into_iter()
    .map(|(v, base, body)| match body {
        Some(body) => Ok((v, base, body)),
        None => Err(Corruption::undecodable(
            format!("the object of session {id} at version {v}"),
            "its event row names it but holds no body",
        )
        .into()),
    })
    .collect()
}
