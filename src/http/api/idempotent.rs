//! The `Idempotency-Key` middleware: claims the key before the route runs, keeps its
//! answer, and replays it to retries (see [`crate::http::idempotency`]).

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::presented_key;
use super::error::ApiError;
use super::{ApiState, ApiStore};
use crate::http::idempotency::{Begin, Idempotency, MAX_KEY_CHARS, is_kept};

/// The header Stripe's clients send.
pub(crate) const HEADER: &str = "idempotency-key";

/// Largest answer kept for replay; the API's answers are far smaller.
const MAX_KEPT_ANSWER: usize = 4 * 1024 * 1024;

pub(crate) async fn layer<S: ApiStore>(
    State(state): State<Arc<ApiState<S>>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    // Every POST body is read whole before the route runs, also when the route refuses
    // the request before looking at it (a bad key): the client then gets its 401 rather
    // than a connection closed under a body it is still sending.
    let (parts, body) = request.into_parts();
    let limit = state.config.body_limit();
    let Ok(body) = to_bytes(body, limit).await else {
        return ApiError::too_large(limit).into_response();
    };
    let request = Request::from_parts(parts, Body::from(body));
    let Some(key) = request.headers().get(HEADER).cloned() else {
        return next.run(request).await;
    };
    match run(&state, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run<S: ApiStore>(
    state: &Arc<ApiState<S>>,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"
            ))
            .into_response()
        })?
        .to_owned();
    // Keys are scoped to the API key; a request without a valid one is refused by the
    // route itself, and nothing is kept for it.
    let Ok(api_key) = presented_key(request.headers()) else {
        return Ok(next.run(request).await);
    };
    let scope = api_key.hash().to_hex();
    let (parts, body) = request.into_parts();
    let limit = state.config.body_limit();
    let body = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit).into_response())?;
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let fingerprint = Idempotency::<super::StoreOf<S>>::fingerprint("POST", path, &body);
    let now = state.checkout.clock().now();
    let begin = {
        let state = Arc::clone(state);
        let key = key.clone();
        let inline = state.checkout.store().never_blocks();
        crate::http::off_executor(inline, move || {
            state.idempotency.begin(&scope, &key, &fingerprint, now)
        })
        .await
        .ok_or_else(|| ApiError::internal(false).into_response())?
        .map_err(|e| ApiError::internal(e.is_retryable()).into_response())?
    };
    let claim = match begin {
        Begin::Run(claim) => claim,
        Begin::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = super::json(body);
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        Begin::Mismatch => return Err(ApiError::idempotency_mismatch().into_response()),
        Begin::InProgress => {
            return Err(ApiError::conflict(
                "a request with this Idempotency-Key is in progress; retry later",
            )
            .into_response());
        }
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, MAX_KEPT_ANSWER)
        .await
        .map_err(|_| ApiError::internal(false).into_response())?;
    let state = Arc::clone(state);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let kept = is_kept(status.as_u16());
    // A failure to keep the answer does not change the answer: the retry then runs
    // again, which the routes make safe (creates carry the key into the service).
    let inline = state.checkout.store().never_blocks();
    let _ = crate::http::off_executor(inline, move || {
        if kept {
            state.idempotency.finish(claim, status.as_u16(), text)
        } else {
            state.idempotency.release(claim)
        }
    })
    .await;
    let mut response = Response::from_parts(parts, Body::from(bytes));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(response)
}
