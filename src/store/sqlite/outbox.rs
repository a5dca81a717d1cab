//! Reading the outbox back: event rows, with the objects they name by version found in the
//! session's rows and its kept deltas (ADR 22). The rows keep their ids (event, session,
//! carrier, part) as the ids' 16 UUID bytes (ADR 24); [`id_bytes`] and [`id_text`] are the
//! two directions.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

use super::{backend, commit, older_objects};
use crate::id::{EventId, PaymentId, SessionId};
use crate::store::event_rows;
use crate::store::live_object;
use crate::store::{Corruption, StoreError, StoredEvent};

/// Reads outbox rows back (in the caller's read transaction, so that the objects they name
/// are found as of the same moment).
pub(super) fn event_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredEvent>, StoreError> {
    type Bytes = Option<Vec<u8>>;
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let raw = stmt
        .query_map(params, |row| {
            let ids: (Vec<u8>, Bytes, Bytes, Bytes) =
                (row.get(5)?, row.get(6)?, row.get(2)?, row.get(3)?);
            let fetched = event_rows::FetchedEvent {
                seq: row.get(0)?,
                body: row.get(1)?,
                carrier: None,
                part: None,
                carrier_body: row.get(4)?,
                id: String::new(),
                session_id: None,
                created: row.get(7)?,
                object_version: row.get(8)?,
                event_type: row.get(9)?,
                object: None,
            };
            Ok((fetched, ids))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut rows = Vec::with_capacity(raw.len());
    for (mut row, (id, session, carrier, part)) in raw {
        let what = format!("event {}", row.seq);
        let text =
            |prefix, bytes: Option<Vec<u8>>| bytes.map(|b| id_text(prefix, &b, &what)).transpose();
        row.id = id_text(EventId::PREFIX, &id, &what)?;
        row.session_id = text(SessionId::PREFIX, session)?;
        row.carrier = text(EventId::PREFIX, carrier)?;
        row.part = text(PaymentId::PREFIX, part)?;
        rows.push(row);
    }
    // Each object a row names by version, found once for all the rows naming it.
    let mut found: HashMap<(String, i64), Option<Arc<str>>> = HashMap::new();
    for row in &mut rows {
        let (Some(version), Some(session)) = (row.object_version, row.session_id.as_deref()) else {
            continue;
        };
        let key = (session.to_owned(), version);
        let object = match found.get(&key) {
            Some(object) => object.clone(),
            None => {
                let object = object_at(conn, session, version)?.map(Arc::from);
                found.insert(key, object.clone());
                object
            }
        };
        row.object = object;
    }
    rows.iter().map(event_rows::FetchedEvent::decode).collect()
}

/// The 16 UUID bytes an outbox row keeps of the id `text` (`prefix` and 32 hex digits, as
/// the ids print).
pub(super) fn id_bytes(text: &str, prefix: &str) -> Result<[u8; 16], StoreError> {
    text.strip_prefix(prefix)
        .filter(|hex| hex.len() == 32)
        .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
        .map(uuid::Uuid::into_bytes)
        .ok_or_else(|| StoreError::Backend {
            message: format!("not an id of the form {prefix}…: {text}"),
            retryable: false,
        })
}

/// The id an outbox row keeps as `bytes`, printed (`prefix` and 32 hex digits); anything
/// but 16 bytes is a corrupt `row`.
pub(super) fn id_text(prefix: &str, bytes: &[u8], row: &str) -> Result<String, StoreError> {
    uuid::Uuid::from_slice(bytes)
        .map(|u| format!("{prefix}{}", u.simple()))
        .map_err(|e| Corruption::undecodable(row, e).into())
}

/// The event object of session `id` at `version` (ADR 22): the one its rows keep, or an
/// older one rebuilt from them through the kept deltas; `None` if the session is gone.
fn object_at(conn: &Connection, id: &str, version: i64) -> Result<Option<String>, StoreError> {
    let live_version: Option<i64> = conn
        .prepare_cached("SELECT version FROM sessions WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
        .map_err(backend)?;
    let Some(live_version) = live_version else {
        return Ok(None);
    };
    let live = || commit::live_object_of(conn, id, live_version).map(|o| o.map(|kept| kept.text));
    if live_version == version {
        return live();
    }
    let past = older_objects::since(conn, id, &id_bytes(id, SessionId::PREFIX)?, version)?;
    let what = || format!("the object of session {id} at version {version}");
    let (start, deltas) = live_object::walk(version, &past, live_version)
        .map_err(|e| Corruption::undecodable(what(), e))?;
    let start = match start {
        live_object::Start::Whole(text) => text.to_owned(),
        live_object::Start::Live => live()?.ok_or_else(|| {
            Corruption::undecodable(what(), "the session's rows keep no object to start from")
        })?,
    };
    live_object::rebuild(&start, &deltas)
        .map(Some)
        .map_err(|e| Corruption::undecodable(what(), e).into())
}
