//! `/checkout-sessions` and Speed's `POST /payment-page` (a session made with a
//! publishable key, as Speed's Magento plugin does).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::auth::{ApiVersion, Caller};
use super::error::ApiError;
use super::input::{self, Fields, Given};
use super::{ApiState, ApiStore, json, list_json, with_field};
use crate::http::keys::{Access, Resource};
use crate::http::{HttpConfig, call};
use crate::id::SessionId;
use crate::service::ServiceError;
use crate::session::{CheckoutSession, SessionParams, SessionStatus};
use crate::store::ListQuery;
use crate::transfer::PaymentMethod;

type St<S> = State<Arc<ApiState<S>>>;

/// A request body, or the reason it could not be read (too large: 413).
pub(crate) fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Fields, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid("could not read the request body")
        }
    })?;
    Fields::parse(&bytes)
}

/// The session as the API answers it: Speed's object with its hosted page's `url`.
pub(crate) fn session_json(config: &HttpConfig, session: &CheckoutSession) -> String {
    let url = serde_json::to_string(&config.session_url(session.id())).unwrap_or_default();
    with_field(session.to_json(), "url", &url)
}

/// A session id from a path; a malformed one is as unknown as a missing one.
pub(crate) fn session_id(text: &str) -> Result<SessionId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no checkout session {}", short(text))))
}

pub(crate) fn short(text: &str) -> String {
    crate::money::truncate_for_error(text)
}

/// Loads a session of the caller's mode through the store (no quoting), or 404.
pub(crate) fn visible<S: ApiStore>(
    checkout: &crate::service::DynCheckout<S>,
    id: SessionId,
    livemode: bool,
) -> Result<CheckoutSession, ServiceError> {
    checkout
        .store()
        .load(id)?
        .filter(|s| s.livemode() == livemode)
        .ok_or(ServiceError::UnknownSession(id))
}

/// Parameters for a new session from a create body, under the caller's API version.
pub(crate) fn params_for(
    caller: &Caller,
    fields: Fields,
) -> Result<(SessionParams, Given), ApiError> {
    let methods_given = fields.has("payment_methods");
    let (mut params, given) = input::session_params(fields, caller.key.livemode)?;
    if caller.version == ApiVersion::V20220415 {
        // That version knows Lightning only.
        if !methods_given {
            params = params.payment_methods([PaymentMethod::Lightning]);
        } else if params.payment_methods.contains(&PaymentMethod::Onchain) {
            return Err(ApiError::invalid(
                "payment_methods: onchain needs speed-version 2022-10-15",
            ));
        }
    }
    if given.integer_source_id {
        params = params.integer_source_id();
    }
    Ok((params, given))
}

/// The service's idempotency key for an HTTP one: scoped to the API key (and so to its
/// mode), of bounded length.
pub(crate) fn service_key(caller: &Caller, headers: &HeaderMap) -> Option<String> {
    let key = headers.get(super::idempotent::HEADER)?.to_str().ok()?;
    let digest: String = Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("api:{}:{digest}", &caller.key.hash.to_hex()[..16]))
}

async fn create_with<S: ApiStore>(
    state: &Arc<ApiState<S>>,
    caller: &Caller,
    headers: &HeaderMap,
    fields: Fields,
) -> Result<Response, ApiError> {
    let (params, _) = params_for(caller, fields)?;
    let key = service_key(caller, headers);
    let session = call(&state.checkout, move |c| c.create(params, key.as_deref())).await?;
    Ok(json(session_json(&state.config, &session)))
}

/// `POST /checkout-sessions`.
pub(crate) async fn create<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Resource::CheckoutSessions, Access::Write)?;
    let fields = body(raw, state.config.body_limit())?;
    create_with(&state, &caller, &headers, fields).await
}

/// `POST /payment-page`: what Speed's plugins call with a publishable key; a checkout
/// session whose `url` the plugin sends the customer to.
pub(crate) async fn payment_page<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Resource::PaymentPage, Access::Write)?;
    let fields = body(raw, state.config.body_limit())?;
    create_with(&state, &caller, &headers, fields).await
}

/// `GET /checkout-sessions/{id}`: fetched through the service, which issues a quote if
/// the session needs one (what a customer looking at it expects).
pub(crate) async fn retrieve<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Resource::CheckoutSessions, Access::Read)?;
    let id = session_id(&id)?;
    let live = caller.key.livemode;
    if let Some(session) = state.checkout.get_in_place(id)? {
        if session.livemode() != live {
            return Err(ServiceError::UnknownSession(id).into());
        }
        return Ok(json(session_json(&state.config, &session)));
    }
    let session = call(&state.checkout, move |c| {
        visible(c, id, live)?;
        c.get(id)
    })
    .await?;
    Ok(json(session_json(&state.config, &session)))
}

/// `POST /checkout-sessions/{id}`: metadata (merged), description, URLs, success
/// message, branding.
pub(crate) async fn update<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Resource::CheckoutSessions, Access::Write)?;
    let id = session_id(&id)?;
    let update = input::session_update(&body(raw, state.config.body_limit())?)?;
    let live = caller.key.livemode;
    let session = call(&state.checkout, move |c| {
        visible(c, id, live)?;
        c.update(id, &update)
    })
    .await?;
    Ok(json(session_json(&state.config, &session)))
}

/// `POST /checkout-sessions/{id}/deactivate`.
pub(crate) async fn deactivate<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Resource::CheckoutSessions, Access::Write)?;
    let id = session_id(&id)?;
    let live = caller.key.livemode;
    let session = call(&state.checkout, move |c| {
        visible(c, id, live)?;
        c.deactivate(id)
    })
    .await?;
    Ok(json(session_json(&state.config, &session)))
}

/// `GET /checkout-sessions`: newest first; `limit`, `starting_after`, `ending_before`,
/// `status`, `source_id`, `metadata[key]=value`, `created[gte]`, `created[lt]` (Unix
/// milliseconds) and `unresolved_flags=true`.
pub(crate) async fn list<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Resource::CheckoutSessions, Access::Read)?;
    let query = list_query(query.as_deref().unwrap_or(""))?.livemode(caller.key.livemode);
    let page = crate::http::read(&state.checkout, move |c| c.list(&query)).await?;
    let items = page.data.iter().map(|s| session_json(&state.config, s));
    Ok(json(list_json(items, page.has_more)))
}

/// Reads a list query string; unknown parameters are refused so a typo is not a filter
/// silently ignored.
fn list_query(text: &str) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::new();
    for (name, value) in url::form_urlencoded::parse(text.as_bytes()) {
        let value = value.into_owned();
        query = match name.as_ref() {
            "limit" => query.limit(parse_limit(&value)?),
            "starting_after" => query.starting_after(cursor(&value)?),
            "ending_before" => query.ending_before(cursor(&value)?),
            "status" => query.status(match value.as_str() {
                "active" => SessionStatus::Active,
                "paid" => SessionStatus::Paid,
                "deactivated" => SessionStatus::Deactivated,
                _ => {
                    return Err(ApiError::invalid(
                        "status must be active, paid or deactivated",
                    ));
                }
            }),
            "source_id" => query.source_id(value),
            "created[gte]" => query.created_gte(millis(&value)?),
            "created[lt]" => query.created_lt(millis(&value)?),
            "unresolved_flags" if value == "true" => query.unresolved_flags(),
            other => match other
                .strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
            {
                Some(key) => query.metadata(key, value),
                None => {
                    return Err(ApiError::invalid(format!(
                        "unknown list parameter {}",
                        short(other)
                    )));
                }
            },
        };
    }
    if query.starting_after.is_some() && query.ending_before.is_some() {
        return Err(ApiError::invalid(
            "starting_after and ending_before cannot be used together",
        ));
    }
    query
        .page_size()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(query)
}

pub(crate) fn parse_limit(value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid("limit must be a whole number from 1 to 100"))
}

fn cursor(value: &str) -> Result<SessionId, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid("a cursor must be a checkout session id"))
}

pub(crate) fn millis(value: &str) -> Result<time::OffsetDateTime, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .and_then(|ms| crate::json::millis::from_millis(ms).ok())
        .ok_or_else(|| ApiError::invalid("a time must be Unix milliseconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_read_speed_and_stripe_style_filters() {
        let id = SessionId::generate();
        let q = list_query(&format!(
            "limit=5&starting_after={id}&status=paid&metadata%5Border%5D=1001&created%5Bgte%5D=1767225600000"
        ))
        .unwrap();
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.starting_after, Some(id));
        assert_eq!(q.metadata, Some(("order".into(), "1001".into())));
        assert!(q.created_gte.is_some());
        for bad in [
            "limit=0",
            "limit=x",
            "status=open",
            "colour=red",
            "starting_after=pi_1",
            "created%5Bgte%5D=yesterday",
        ] {
            assert!(list_query(bad).is_err(), "{bad}");
        }
        let both = format!("starting_after={id}&ending_before={id}");
        assert!(list_query(&both).is_err());
    }
}
