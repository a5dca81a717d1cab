//! `/payments`: Speed's standalone payment, and any payment by id.
//!
//! A standalone payment is a session of its own that lives exactly one quote: it is
//! created with an `expires_at` one second past its quote's end, so it is never quoted
//! again (Speed does not regenerate payments made with `POST /payments`), and the answer
//! is that quote, Speed's payment object. Its funds are counted, flagged and reported like
//! any session's; `checkout_session` in the object names the session behind it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;

use super::auth::Caller;
use super::error::ApiError;
use super::sessions::{body, params_for, short};
use super::{ApiState, ApiStore, json};
use crate::clock::Clock as _;
use crate::http::call;
use crate::http::keys::{Access, Resource};
use crate::id::PaymentId;
use crate::service::ServiceError;

type St<S> = State<Arc<ApiState<S>>>;

/// `POST /payments`.
pub(crate) async fn create<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Resource::Payments, Access::Write)?;
    let fields = body(raw, state.config.body_limit())?;
    let (params, _) = params_for(&caller, fields)?;
    let text = call(&state.checkout, move |c| {
        let ttl = params.effective_ttl();
        // One second past the quote's own end: the quote keeps its full ttl, and the
        // session deactivates right after it instead of quoting again.
        let until = c.clock().now() + time::Duration::seconds(ttl + 1);
        let session = c.create(params.expires_at(until), None)?;
        let payment = session
            .payments()
            .first()
            .map(|p| p.id())
            .and_then(|id| session.payment_json(id));
        // A session is created with its first quote; without one (no rate, the
        // generator down) the create itself failed.
        payment.ok_or(ServiceError::UnknownSession(session.id()))
    })
    .await?;
    Ok(json(text))
}

/// `GET /payments/{id}`: any payment, standalone or a session's quote.
pub(crate) async fn retrieve<S: ApiStore>(
    State(state): St<S>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Resource::Payments, Access::Read)?;
    let missing = || ApiError::not_found(format!("no payment {}", short(&id)));
    let payment: PaymentId = id.parse().map_err(|_| missing())?;
    let live = caller.key.livemode;
    let found = call(&state.checkout, move |c| {
        let Some(session_id) = c.store().find_by_payment(payment)? else {
            return Ok(None);
        };
        // Through the service, so a quote that ran out reads as expired; reading a
        // payment never makes a new quote.
        let session = c.current(session_id)?;
        Ok((session.livemode() == live)
            .then(|| session.payment_json(payment))
            .flatten())
    })
    .await?;
    found.map(json).ok_or_else(missing)
}
