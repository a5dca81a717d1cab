//! The event objects this store's own commits left in the live rows, kept in memory so
//! that the next commit of the session does not read and unpack them again (ADR 30).
//!
//! A commit that moves a session on from version `v` needs the object the rows keep for
//! `v`: to keep it as a delta, and to skip rewriting the payments it lists unchanged.
//! Read from the file, that is a query per listed payment and a zstd frame per row. The
//! object of a version is written once: a commit only lands on the row it read (the
//! compare-and-swap on the version), so the object this store wrote for version `v` is
//! the one the file holds for `v` for as long as the row is at `v`, whichever process
//! commits next. An entry is therefore used only for the version it was written at, and
//! only after its transaction committed; any other version reads the file.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::commit::KeptObject;
use crate::store::rows::CommitRows;

/// The sessions whose last object is kept. About 6 KB each (the object and the bodies of
/// the payments it lists), so at most about 1.5 MB; beyond it an arbitrary entry makes
/// room, which costs only that session's next commit a read.
const SESSIONS: usize = 256;

/// See the module docs.
#[derive(Default)]
pub(super) struct ObjectCache {
    kept: Mutex<HashMap<String, KeptObject>>,
}

impl ObjectCache {
    /// The object session `id`'s rows keep for `version`, if this store's commit wrote it
    /// and it lists exactly `payments` (the row's `object_payments`). Taken out: the
    /// commit asking moves the session past it.
    pub(super) fn take(
        &self,
        id: &str,
        version: i64,
        payments: Option<&str>,
    ) -> Option<KeptObject> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = kept.remove(id)?;
        let listed = entry
            .payments
            .iter()
            .map(|(id, _)| id.as_str())
            .eq(payments?.split(',').filter(|p| !p.is_empty()));
        (entry.version == version && listed).then_some(entry)
    }

    /// Remembers the objects `commits` (committed) left in their sessions' rows.
    pub(super) fn committed<'a>(&self, commits: impl IntoIterator<Item = &'a CommitRows>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        for rows in commits {
            let id = &rows.session.id;
            match kept_by(rows) {
                Some(object) => {
                    if kept.len() >= SESSIONS
                        && !kept.contains_key(id)
                        && let Some(any) = kept.keys().next().cloned()
                    {
                        kept.remove(&any);
                    }
                    kept.insert(id.clone(), object);
                }
                None => {
                    kept.remove(id);
                }
            }
        }
    }
}

/// The object `rows` leave in their session's row, with the bodies of the payments it
/// lists (every one of them is among the commit's payments: `CommitRows` adds them).
fn kept_by(rows: &CommitRows) -> Option<KeptObject> {
    let live = rows.live.as_ref()?;
    let payments = live
        .payments
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|id| {
            let row = rows.payments.iter().find(|p| p.id == id)?;
            Some((row.id.clone(), row.body.clone()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(KeptObject {
        version: live.version,
        text: live.text.clone(),
        payments,
    })
}
