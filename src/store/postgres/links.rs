//! [`LinkStore`] for [`PostgresStore`]: links as JSON rows with a version and the listing
//! columns, and link commits applied in one transaction with their sessions' commits.

use super::commit::LinkCommitRows;
use super::ops::{Op, Out};
use super::{PostgresStore, unexpected};
use crate::id::{LinkId, SessionId};
use crate::link::Link;
#[cfg(doc)]
use crate::store::Store;
use crate::store::list_sql::{Dialect, link_list_statement};
use crate::store::rows;
use crate::store::{LinkCommit, LinkListQuery, LinkPage, LinkStore, StoreError};

impl LinkStore for PostgresStore {
    fn load_link(&self, id: LinkId) -> Result<Option<Link>, StoreError> {
        let id = id.to_string();
        let Out::Link(row) = self.call(Op::LoadLink(id.clone()))? else {
            return Err(unexpected());
        };
        row.map(|(version, body)| rows::decode_link(&id, version, &body))
            .transpose()
    }

    /// One READ COMMITTED transaction: the link's compare-and-swap (an insert when no
    /// version is expected, else an update of the expected version), every session commit
    /// exactly as [`Store::commit`] applies it, the link's events (filed under no session)
    /// and the sessions' events, numbered under the same outbox lock as every commit. Any
    /// conflict rolls all of it back.
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        let rows = LinkCommitRows::new(commit)?;
        match self.call(Op::CommitLink(Box::new(rows)))? {
            Out::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn link_sessions(&self, id: LinkId) -> Result<Vec<SessionId>, StoreError> {
        match self.call(Op::LinkSessions(id.to_string()))? {
            Out::Ids(ids) => ids.iter().map(|s| rows::decode_session_id(s)).collect(),
            _ => Err(unexpected()),
        }
    }

    fn list_links(&self, query: &LinkListQuery) -> Result<LinkPage, StoreError> {
        let statement = link_list_statement(query, Dialect::Postgres)?;
        let (limit, newer) = (statement.limit, statement.newer);
        let op = Op::ListLinks {
            sql: statement.sql,
            params: statement.params,
        };
        let Out::Links(found) = self.call(op)? else {
            return Err(unexpected());
        };
        // An unknown cursor joins no row: an empty page.
        let has_more = found.len() > limit;
        let mut data = found
            .iter()
            .take(limit)
            .map(|(id, version, body)| rows::decode_link(id, *version, body))
            .collect::<Result<Vec<_>, _>>()?;
        if newer {
            // Fetched oldest first (the page just newer than the cursor): newest first.
            data.reverse();
        }
        Ok(LinkPage { data, has_more })
    }
}
