//! `/checkout-links` and `/payment-links`: create, retrieve, deactivate, list.
//!
//! A link's `url` is its page, `{base}/pay/{link id}`: opening it opens the link (a
//! checkout link's one session, or a new session of a payment link) and shows that
//! session's page.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::auth::Caller;
use super::error::ApiError;
use super::sessions::{body, millis, params_for, parse_limit, short};
use super::{ApiState, ApiStore, json, list_json, with_field};
use crate::http::keys::{Access, Resource};
use crate::http::{HttpConfig, call};
use crate::id::LinkId;
use crate::link::Link;
use crate::service::{DynCheckout, ServiceError};
use crate::store::{LinkKind, LinkListQuery};

type St<S> = State<Arc<ApiState<S>>>;

/// The link as the API answers it, with its `url` and its session's status.
fn link_json<S: ApiStore>(
    checkout: &DynCheckout<S>,
    config: &HttpConfig,
    link: &Link,
) -> Result<String, ServiceError> {
    let status = match link.session() {
        Some(id) => checkout.store().load(id)?.map(|s| s.status()),
        None => None,
    };
    let url = serde_json::to_string(&config.link_url(link.id())).unwrap_or_default();
    Ok(with_field(link.to_json(status), "url", &url))
}

fn link_id(text: &str, kind: LinkKind) -> Result<LinkId, ApiError> {
    let missing = || ApiError::not_found(format!("no link {}", short(text)));
    let id: LinkId = text.parse().map_err(|_| missing())?;
    match (kind, id) {
        (LinkKind::Checkout, LinkId::Checkout(_)) | (LinkKind::Payment, LinkId::Payment(_)) => {
            Ok(id)
        }
        _ => Err(missing()),
    }
}

fn visible<S: ApiStore>(
    checkout: &DynCheckout<S>,
    id: LinkId,
    livemode: bool,
) -> Result<Link, ServiceError> {
    checkout
        .get_link(id)
        .ok()
        .filter(|l| l.params().livemode == livemode)
        .ok_or(ServiceError::UnknownLink(id))
}

async fn create<S: ApiStore>(
    state: Arc<ApiState<S>>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
    kind: LinkKind,
) -> Result<Response, ApiError> {
    caller.require(Resource::Links, Access::Write)?;
    let fields = body(raw, state.config.body_limit())?;
    // The link's own expiry (Unix milliseconds), not its sessions'.
    let expires_at = match fields.raw("expires_at") {
        None | Some("null") => None,
        Some(raw) => Some(millis(raw)?),
    };
    let (params, _) = params_for(&caller, fields)?;
    let config = state.config.clone();
    let text = call(&state.checkout, move |c| {
        let link = match kind {
            LinkKind::Checkout => c.create_checkout_link(params, expires_at)?,
            _ => c.create_payment_link(params, expires_at)?,
        };
        link_json(c, &config, &link)
    })
    .await?;
    Ok(json(text))
}

async fn retrieve<S: ApiStore>(
    state: Arc<ApiState<S>>,
    caller: Caller,
    id: String,
    kind: LinkKind,
) -> Result<Response, ApiError> {
    caller.require(Resource::Links, Access::Read)?;
    let id = link_id(&id, kind)?;
    let live = caller.key.livemode;
    let config = state.config.clone();
    let text = call(&state.checkout, move |c| {
        link_json(c, &config, &visible(c, id, live)?)
    })
    .await?;
    Ok(json(text))
}

async fn deactivate<S: ApiStore>(
    state: Arc<ApiState<S>>,
    caller: Caller,
    id: String,
    kind: LinkKind,
) -> Result<Response, ApiError> {
    caller.require(Resource::Links, Access::Write)?;
    let id = link_id(&id, kind)?;
    let live = caller.key.livemode;
    let config = state.config.clone();
    let text = call(&state.checkout, move |c| {
        visible(c, id, live)?;
        let link = c.deactivate_link(id)?;
        link_json(c, &config, &link)
    })
    .await?;
    Ok(json(text))
}

async fn list<S: ApiStore>(
    state: Arc<ApiState<S>>,
    caller: Caller,
    query: Option<String>,
    kind: LinkKind,
) -> Result<Response, ApiError> {
    caller.require(Resource::Links, Access::Read)?;
    let mut q = LinkListQuery::new()
        .kind(kind)
        .livemode(caller.key.livemode);
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        q = match name.as_ref() {
            "limit" => q.limit(parse_limit(&value)?),
            "starting_after" => q.starting_after(link_id(&value, kind).map_err(bad_cursor)?),
            "ending_before" => q.ending_before(link_id(&value, kind).map_err(bad_cursor)?),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown list parameter {}",
                    short(other)
                )));
            }
        };
    }
    if q.starting_after.is_some() && q.ending_before.is_some() {
        return Err(ApiError::invalid(
            "starting_after and ending_before cannot be used together",
        ));
    }
    let config = state.config.clone();
    let text = call(&state.checkout, move |c| {
        let page = c.store().list_links(&q)?;
        let items = page
            .data
            .iter()
            .map(|l| link_json(c, &config, l))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(list_json(items, page.has_more))
    })
    .await?;
    Ok(json(text))
}

fn bad_cursor(_: ApiError) -> ApiError {
    ApiError::invalid("a cursor must be a link id of this kind")
}

macro_rules! link_routes {
    ($kind:expr => $create:ident, $retrieve:ident, $deactivate:ident, $list:ident) => {
        pub(crate) async fn $create<S: ApiStore>(
            State(state): St<S>,
            caller: Caller,
            raw: Result<Bytes, BytesRejection>,
        ) -> Result<Response, ApiError> {
            create(state, caller, raw, $kind).await
        }

        pub(crate) async fn $retrieve<S: ApiStore>(
            State(state): St<S>,
            caller: Caller,
            Path(id): Path<String>,
        ) -> Result<Response, ApiError> {
            retrieve(state, caller, id, $kind).await
        }

        pub(crate) async fn $deactivate<S: ApiStore>(
            State(state): St<S>,
            caller: Caller,
            Path(id): Path<String>,
        ) -> Result<Response, ApiError> {
            deactivate(state, caller, id, $kind).await
        }

        pub(crate) async fn $list<S: ApiStore>(
            State(state): St<S>,
            caller: Caller,
            RawQuery(query): RawQuery,
        ) -> Result<Response, ApiError> {
            list(state, caller, query, $kind).await
        }
    };
}

link_routes!(LinkKind::Checkout => create_checkout, retrieve_checkout, deactivate_checkout, list_checkout);
link_routes!(LinkKind::Payment => create_payment, retrieve_payment, deactivate_payment, list_payment);
