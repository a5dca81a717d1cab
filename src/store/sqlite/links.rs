//! [`LinkStore`] for [`SqliteStore`]: links as JSON rows with a version, and link commits
//! applied in one write transaction together with their sessions' commits.

use rusqlite::{OptionalExtension, params};

use super::reads::sql_value;
use super::{SqliteStore, backend, commit, insert_or_conflict};
use crate::id::SessionId;
use crate::link::{Link, LinkId};
use crate::store::list_sql::{Dialect, link_list_statement};
use crate::store::rows::{self, CommitRows, EventRow, LinkRow};
use crate::store::{LinkCommit, LinkListQuery, LinkPage, LinkStore, StoreError};

impl LinkStore for SqliteStore {
    fn load_link(&self, id: LinkId) -> Result<Option<Link>, StoreError> {
        let id = id.to_string();
        self.with_reader(|conn| {
            let row = conn
                .prepare_cached("SELECT version, body FROM links WHERE id = ?1")
                .map_err(backend)?
                .query_row([&id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .optional()
                .map_err(backend)?;
            row.map(|(version, body)| rows::decode_link(&id, version, &body))
                .transpose()
        })
    }

    /// One `BEGIN IMMEDIATE` transaction: the link's compare-and-swap (an insert when no
    /// version is expected, else an update of the expected version), the link's events
    /// (filed under no session), then every session commit exactly as
    /// [`Store::commit`](crate::store::Store::commit) applies it. Any conflict rolls all of
    /// it back. The listing columns (`created`, `kind`, `livemode`) are written with the
    /// new row: none of them ever changes.
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        let row = LinkRow::new(&commit.link)?;
        let events = EventRow::for_commit(&commit.events, None);
        let sessions = commit
            .sessions
            .iter()
            .map(CommitRows::with_live_object)
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|tx| {
            match commit.expected_version {
                None => insert_or_conflict(
                    tx.prepare_cached(
                        "INSERT INTO links (id, version, body, created, kind, livemode)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            row.id,
                            row.version,
                            row.body,
                            row.created,
                            row.kind,
                            row.livemode
                        ])
                    }),
                )?,
                Some(expected) => {
                    // No stored version exceeds i64::MAX, so such an expectation cannot hold.
                    let Ok(expected) = i64::try_from(expected) else {
                        return Err(StoreError::Conflict);
                    };
                    let updated = tx
                        .prepare_cached(
                            "UPDATE links SET version = ?3, body = ?4
                             WHERE id = ?1 AND version = ?2",
                        )
                        .and_then(|mut stmt| {
                            stmt.execute(params![row.id, expected, row.version, row.body])
                        })
                        .map_err(backend)?;
                    if updated != 1 {
                        return Err(StoreError::Conflict);
                    }
                }
            }
            for event in &events {
                commit::insert_event(tx, event, None)?;
            }
            for rows in &sessions {
                commit::apply(tx, rows, &self.objects)?;
            }
            Ok(())
        })?;
        self.objects.committed(&sessions);
        Ok(())
    }

    fn link_sessions(&self, id: LinkId) -> Result<Vec<SessionId>, StoreError> {
        let id = id.to_string();
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM sessions WHERE link_id = ?1 ORDER BY created ASC, id ASC",
                )
                .map_err(backend)?;
            let ids = stmt
                .query_map([&id], |row| row.get::<_, String>(0))
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            ids.iter().map(|id| rows::decode_session_id(id)).collect()
        })
    }

    fn list_links(&self, query: &LinkListQuery) -> Result<LinkPage, StoreError> {
        let statement = link_list_statement(query, Dialect::Sqlite)?;
        let limit = statement.limit;
        let params = statement.params.iter().map(sql_value);
        self.read(|conn| {
            // An unknown cursor joins no row: an empty page.
            let mut stmt = conn.prepare_cached(statement.sql).map_err(backend)?;
            let found = stmt
                .query_map(rusqlite::params_from_iter(params), |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let has_more = found.len() > limit;
            let mut data = found
                .iter()
                .take(limit)
                .map(|(id, version, body)| rows::decode_link(id, *version, body))
                .collect::<Result<Vec<_>, _>>()?;
            if statement.newer {
                data.reverse();
            }
            Ok(LinkPage { data, has_more })
        })
    }
}
