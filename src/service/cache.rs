//! The sessions this process changed last, so a busy session is not re-read from the store
//! for every report. Bounded; correctness never depends on it (commits compare versions).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::id::SessionId;
use crate::session::CheckoutSession;

pub(super) struct SessionCache {
    map: Mutex<HashMap<SessionId, CheckoutSession>>,
    capacity: usize,
}

impl SessionCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::default(),
            capacity,
        }
    }

    pub(super) fn take(&self, id: SessionId) -> Option<CheckoutSession> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
    }

    /// A copy of the cached session, which stays cached (for reads; a mutation
    /// [`take`](Self::take)s its copy).
    pub(super) fn peek(&self, id: SessionId) -> Option<CheckoutSession> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    pub(super) fn put(&self, session: CheckoutSession) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&session.id()) {
            // Any entry will do: the cache only saves reads.
            if let Some(victim) = map.keys().next().copied() {
                map.remove(&victim);
            }
        }
        // Keep the newest version when two threads race.
        match map.get(&session.id()) {
            Some(held) if held.version() > session.version() => {}
            _ => {
                map.insert(session.id(), session);
            }
        }
    }
}
