//! `/webhooks`: endpoints made through the API (in the key's mode, with `wsec_` secrets),
//! and Speed's `POST /webhooks/verify-secret`.
//!
//! An endpoint signs Speed's way by default (`"signatures": "single"`: one `v1,`
//! signature, which Speed's clients verify); `"rotating"` gives Standard Webhooks
//! behaviour, where after a rotation the previous secret also signs until it retires.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::ApiError;
use super::input::Fields;
use super::sessions::{body, short};
use super::{ApiState, ApiStore, json, list_json};
use crate::clock::Clock as _;
use crate::event::EventType;
use crate::http::call;
use crate::http::keys::{Access, Resource};
use crate::id::EndpointId;
use crate::service::{DynCheckout, ServiceError};
use crate::webhook::{DeliveryStore, Endpoint, SignatureScheme, WebhookSecret};

type St<S> = State<Arc<ApiState<S>>>;

/// How long a rotated-out secret still signs, under [`SignatureScheme::Rotating`].
pub const PREVIOUS_SECRET_LIFETIME: time::Duration = time::Duration::hours(24);

fn endpoint_json(endpoint: &Endpoint, with_secret: bool) -> String {
    endpoint.api_json(with_secret)
}

/// A fresh secret: 32 bytes hashed from three v4 UUIDs (366 random bits).
fn new_secret() -> Result<WebhookSecret, ServiceError> {
    let mut hash = Sha256::new();
    for _ in 0..3 {
        hash.update(uuid::Uuid::new_v4().as_bytes());
    }
    WebhookSecret::from_bytes(&hash.finalize()).map_err(|e| {
        ServiceError::Store(crate::store::StoreError::Backend {
            message: e.to_string(),
            retryable: false,
        })
    })
}

/// The caller's endpoints (not deleted), newest first.
fn mine<S: ApiStore>(c: &DynCheckout<S>, live: bool) -> Result<Vec<Endpoint>, ServiceError> {
    let mut endpoints: Vec<Endpoint> = DeliveryStore::endpoints(c.store())?
        .into_iter()
        .filter(|e| e.deleted_at.is_none() && e.livemode == Some(live))
        .collect();
    endpoints.sort_by_key(|e| std::cmp::Reverse((e.created, e.id)));
    Ok(endpoints)
}

fn one<S: ApiStore>(
    c: &DynCheckout<S>,
    id: EndpointId,
    live: bool,
) -> Result<Option<Endpoint>, ServiceError> {
    Ok(mine(c, live)?.into_iter().find(|e| e.id == id))
}

fn endpoint_id(text: &str) -> Result<EndpointId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no webhook endpoint {}", short(text))))
}

fn events(fields: &Fields) -> Result<Option<Vec<EventType>>, ApiError> {
    match fields.raw("enabled_events") {
        None | Some("null") => Ok(None),
        Some(raw) => serde_json::from_str(raw)
            .map(Some)
            .map_err(|_| ApiError::invalid("enabled_events must be a list of event types")),
    }
}

fn scheme(fields: &Fields) -> Result<Option<SignatureScheme>, ApiError> {
    match fields.string("signatures")?.as_deref() {
        None => Ok(None),
        Some("single") => Ok(Some(SignatureScheme::Single)),
        Some("rotating") => Ok(Some(SignatureScheme::Rotating)),
        Some(_) => Err(ApiError::invalid("signatures must be single or rotating")),
    }
}

/// `POST /webhooks`: `url`, `enabled_events` (all when absent), `description`,
/// `signatures`.
pub(crate) async fn create<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Resource::Webhooks, Access::Write)?;
    let fields = body(raw, state.config.body_limit())?;
    let url = fields
        .string("url")?
        .ok_or_else(|| ApiError::invalid("url is required"))?;
    let enabled = events(&fields)?.unwrap_or_default();
    let description = fields.string("description")?;
    let signatures = scheme(&fields)?.unwrap_or_default();
    let live = caller.key.livemode;
    let endpoint = call(&state.checkout, move |c| {
        let mut endpoint = Endpoint::new(url, new_secret()?, c.clock().now())?.only(enabled);
        endpoint.livemode = Some(live);
        endpoint.description = description;
        endpoint.signatures = signatures;
        c.store().save_endpoint(&endpoint)?;
        Ok(endpoint)
    })
    .await?;
    Ok(json(endpoint_json(&endpoint, true)))
}

/// `GET /webhooks`: every endpoint of the caller's mode, newest first, without secrets.
pub(crate) async fn list<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Resource::Webhooks, Access::Read)?;
    let live = caller.key.livemode;
    let endpoints = call(&state.checkout, move |c| mine(c, live)).await?;
    Ok(json(list_json(
        endpoints.iter().map(|e| endpoint_json(e, false)),
        false,
    )))
}

/// `GET /webhooks/{id}`, with its secret (as Speed answers it).
pub(crate) async fn retrieve<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // The answer holds the signing secret: reading it takes write access.
    caller.require(Resource::Webhooks, Access::Write)?;
    let id = endpoint_id(&id)?;
    let live = caller.key.livemode;
    let found = call(&state.checkout, move |c| one(c, id, live)).await?;
    found
        .map(|e| json(endpoint_json(&e, true)))
        .ok_or_else(|| ApiError::not_found(format!("no webhook endpoint {id}")))
}

/// Changes an endpoint of the caller's, saved; 404 if there is none.
async fn change<S: ApiStore>(
    state: &Arc<ApiState<S>>,
    caller: &Caller,
    id: &str,
    edit: impl FnOnce(&mut Endpoint, time::OffsetDateTime) -> Result<(), ServiceError> + Send + 'static,
) -> Result<Endpoint, ApiError> {
    caller.require(Resource::Webhooks, Access::Write)?;
    let id = endpoint_id(id)?;
    let live = caller.key.livemode;
    let found = call(&state.checkout, move |c| {
        let Some(mut endpoint) = one(c, id, live)? else {
            return Ok(None);
        };
        edit(&mut endpoint, c.clock().now())?;
        c.store().save_endpoint(&endpoint)?;
        Ok(Some(endpoint))
    })
    .await?;
    found.ok_or_else(|| ApiError::not_found(format!("no webhook endpoint {id}")))
}

/// `POST /webhooks/{id}`: `url`, `enabled_events`, `description`, `signatures`,
/// `status` (`active` or `deactivated`).
pub(crate) async fn update<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = body(raw, state.config.body_limit())?;
    let url = fields.string("url")?;
    if let Some(url) = &url {
        crate::session::check_url("url", Some(url))?;
    }
    let enabled = events(&fields)?;
    let description = fields
        .has("description")
        .then(|| fields.string("description"));
    let description = description.transpose()?;
    let signatures = scheme(&fields)?;
    let status = match fields.string("status")?.as_deref() {
        None => None,
        Some("active") => Some(true),
        Some("deactivated") => Some(false),
        Some(_) => return Err(ApiError::invalid("status must be active or deactivated")),
    };
    let clear_description = fields.raw("description") == Some("null");
    let endpoint = change(&state, &caller, &id, move |e, now| {
        if let Some(url) = url {
            e.url = url;
        }
        if let Some(enabled) = enabled {
            e.enabled_events = enabled;
        }
        if let Some(text) = description {
            e.description = text;
        } else if clear_description {
            e.description = None;
        }
        if let Some(scheme) = signatures {
            e.signatures = scheme;
        }
        match status {
            Some(true) => e.disabled_at = None,
            Some(false) if e.disabled_at.is_none() => e.disabled_at = Some(now),
            _ => {}
        }
        Ok(())
    })
    .await?;
    Ok(json(endpoint_json(&endpoint, false)))
}

/// `DELETE /webhooks/{id}`: it receives nothing more; its delivery log is kept.
pub(crate) async fn delete<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let endpoint = change(&state, &caller, &id, |e, now| {
        e.deleted_at = Some(now);
        Ok(())
    })
    .await?;
    Ok(json(format!(
        "{{\"id\":\"{}\",\"object\":\"webhook.endpoint\",\"deleted\":true}}",
        endpoint.id
    )))
}

/// `POST /webhooks/{id}/rotate-secret`: a new secret; under `rotating` signatures the
/// old one also signs for [`PREVIOUS_SECRET_LIFETIME`].
pub(crate) async fn rotate<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let endpoint = change(&state, &caller, &id, |e, now| {
        let old = std::mem::replace(&mut e.secret, new_secret()?);
        e.previous_secret = Some((old, now + PREVIOUS_SECRET_LIFETIME));
        Ok(())
    })
    .await?;
    Ok(json(endpoint_json(&endpoint, true)))
}

/// `POST /webhooks/verify-secret`: `{url, secret}` → whether an endpoint of the caller's
/// mode has that URL and secret, and its status. Speed's Magento plugin calls it with a
/// publishable key when the merchant saves the plugin's settings.
pub(crate) async fn verify_secret<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Resource::VerifySecret, Access::Write)?;
    let fields = body(raw, state.config.body_limit())?;
    let url = fields
        .string("url")?
        .ok_or_else(|| ApiError::invalid("url is required"))?;
    let secret = fields
        .string("secret")?
        .ok_or_else(|| ApiError::invalid("secret is required"))?;
    let secret = WebhookSecret::parse(&secret)
        .map_err(|_| ApiError::invalid("secret must be a wsec_ or whsec_ secret"))?;
    let live = caller.key.livemode;
    let found = call(&state.checkout, move |c| {
        Ok(mine(c, live)?
            .into_iter()
            .find(|e| e.url == url && e.secret.same_key(&secret)))
    })
    .await?;
    Ok(json(match found {
        Some(e) => format!(
            "{{\"exists\":true,\"status\":\"{}\",\"id\":\"{}\"}}",
            if e.is_active() {
                "active"
            } else {
                "deactivated"
            },
            e.id
        ),
        None => "{\"exists\":false,\"status\":null}".to_owned(),
    }))
}
