//! `/events`: the outbox, newest first, in the caller's mode.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::auth::Caller;
use super::error::ApiError;
use super::sessions::{parse_limit, short};
use super::{ApiState, ApiStore, json, list_json};
use crate::event::EventType;
use crate::http::keys::{Access, Resource};
use crate::http::read;
use crate::id::EventId;
use crate::store::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, Store, StoreError, StoredEvent};

type St<S> = State<Arc<ApiState<S>>>;

/// `GET /events/{id}`.
pub(crate) async fn retrieve<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Resource::Events, Access::Read)?;
    let missing = || ApiError::not_found(format!("no event {}", short(&id)));
    let event_id: EventId = id.parse().map_err(|_| missing())?;
    let live = caller.key.livemode;
    let found = read(&state.checkout, move |c| Ok(c.store().event(event_id)?))
        .await?
        .filter(|e| e.event.livemode == live);
    found.map(|e| json(e.event.to_json())).ok_or_else(missing)
}

/// Where a listing starts.
enum From {
    Newest,
    /// Older than this sequence number.
    Before(u64),
    /// Newer than this sequence number.
    After(u64),
}

/// `GET /events`: `limit`, `starting_after`, `ending_before` (event ids), `event_type`.
pub(crate) async fn list<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Resource::Events, Access::Read)?;
    let mut limit = DEFAULT_LIST_LIMIT;
    let mut after: Option<EventId> = None;
    let mut before: Option<EventId> = None;
    let mut event_type: Option<EventType> = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let cursor = || {
            value
                .parse::<EventId>()
                .map_err(|_| ApiError::invalid("a cursor must be an event id"))
        };
        match name.as_ref() {
            "limit" => limit = parse_limit(&value)?,
            "starting_after" => after = Some(cursor()?),
            "ending_before" => before = Some(cursor()?),
            "event_type" => {
                event_type = Some(
                    serde_json::from_value(serde_json::Value::String(value.clone().into_owned()))
                        .map_err(|_| ApiError::invalid("unknown event_type"))?,
                );
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown list parameter {}",
                    short(other)
                )));
            }
        }
    }
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit must be a whole number from 1 to 100",
        ));
    }
    if after.is_some() && before.is_some() {
        return Err(ApiError::invalid(
            "starting_after and ending_before cannot be used together",
        ));
    }
    let live = caller.key.livemode;
    let (events, has_more) = read(&state.checkout, move |c| {
        let store = c.store();
        let from = match (after, before) {
            (Some(id), _) => match store.event(id)? {
                Some(e) => From::Before(e.seq),
                None => return Ok((Vec::new(), false)),
            },
            (_, Some(id)) => match store.event(id)? {
                Some(e) => From::After(e.seq),
                None => return Ok((Vec::new(), false)),
            },
            _ => From::Newest,
        };
        let wanted = |e: &StoredEvent| {
            e.event.livemode == live && event_type.as_ref().is_none_or(|t| *t == e.event.event_type)
        };
        Ok(page(store, from, limit, wanted)?)
    })
    .await?;
    Ok(json(list_json(
        events.iter().map(|e| e.event.to_json()),
        has_more,
    )))
}

/// Up to `limit` wanted events from `from`, newest first, and whether more lie beyond.
/// The outbox holds both modes, so it is read in batches until the page is full.
fn page<S: Store + ?Sized>(
    store: &S,
    from: From,
    limit: usize,
    wanted: impl Fn(&StoredEvent) -> bool,
) -> Result<(Vec<StoredEvent>, bool), StoreError> {
    let batch = (limit + 1) * 4;
    let mut found = Vec::new();
    match from {
        From::Newest | From::Before(_) => {
            let mut cursor = match from {
                From::Before(seq) => Some(seq),
                _ => None,
            };
            loop {
                let events = store.events_before(cursor, batch)?;
                let done = events.len() < batch;
                cursor = events.last().map(|e| e.seq);
                found.extend(events.into_iter().filter(&wanted));
                if found.len() > limit || done {
                    break;
                }
            }
        }
        From::After(seq) => {
            // Newer than the cursor: read forward, keep the `limit` just above it.
            let mut cursor = Some(seq);
            loop {
                let events = store.events_after(cursor, batch)?;
                let done = events.len() < batch;
                cursor = events.last().map(|e| e.seq);
                found.extend(events.into_iter().filter(&wanted));
                if found.len() > limit || done {
                    break;
                }
            }
            found.truncate(limit + 1);
            found.reverse();
            let has_more = found.len() > limit;
            if has_more {
                found.remove(0);
            }
            return Ok((found, has_more));
        }
    }
    let has_more = found.len() > limit;
    found.truncate(limit);
    Ok((found, has_more))
}
