//! [`LinkStore`] for [`MemoryStore`]: links by id, their listing order, and link commits
//! applied with their sessions' commits under one lock.

use std::ops::Bound;

use time::OffsetDateTime;

use super::MemoryStore;
use crate::id::SessionId;
use crate::link::{Link, LinkId};
use crate::store::{LinkCommit, LinkListQuery, LinkPage, LinkStore, StoreError};

impl LinkStore for MemoryStore {
    fn load_link(&self, id: LinkId) -> Result<Option<Link>, StoreError> {
        Ok(self.lock()?.links.get(&id).cloned())
    }

    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let stored = inner.links.get(&commit.link.id()).map(Link::version);
        if stored != commit.expected_version {
            return Err(StoreError::Conflict);
        }
        for c in &commit.sessions {
            inner.settle(c.session.id())?;
            inner.check(c)?;
        }
        if commit.expected_version.is_none() {
            // A link's creation time never changes: its place in the listing is set once.
            inner
                .links_by_created
                .insert((commit.link.created(), commit.link.id()));
        }
        inner.links.insert(commit.link.id(), commit.link.clone());
        for e in &commit.events {
            inner.push_whole(e);
        }
        for c in &commit.sessions {
            inner.apply(c);
        }
        Ok(())
    }

    fn link_sessions(&self, id: LinkId) -> Result<Vec<SessionId>, StoreError> {
        let inner = self.lock()?;
        let mut ids: Vec<(OffsetDateTime, SessionId)> = inner
            .by_link
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|slot| inner.slots.get(*slot as usize))
            .map(|s| (s.created, s.id))
            .collect();
        ids.sort();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    fn list_links(&self, query: &LinkListQuery) -> Result<LinkPage, StoreError> {
        let limit = query.page_size()?;
        let inner = self.lock()?;
        let empty = LinkPage {
            data: Vec::new(),
            has_more: false,
        };
        let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
        let newer = query.ending_before.is_some();
        if let Some(id) = query.ending_before.or(query.starting_after) {
            let Some(cursor) = inner.links.get(&id) else {
                return Ok(empty);
            };
            let at = Bound::Excluded((cursor.created(), id));
            if newer {
                lower = at;
            } else {
                upper = at;
            }
        }
        let range = inner
            .links_by_created
            .range::<(OffsetDateTime, LinkId), _>((lower, upper));
        let mut matching = |key: &(OffsetDateTime, LinkId)| {
            inner
                .links
                .get(&key.1)
                .filter(|link| query.matches(link))
                .cloned()
        };
        let mut data = Vec::new();
        let has_more = if newer {
            // The page just newer than the cursor: walk upwards, then newest first.
            let mut up = range.filter_map(&mut matching);
            data.extend(up.by_ref().take(limit));
            data.reverse();
            up.next().is_some()
        } else {
            let mut down = range.rev().filter_map(&mut matching);
            data.extend(down.by_ref().take(limit));
            down.next().is_some()
        };
        Ok(LinkPage { data, has_more })
    }
}
