//! The Speed-compatible API router.
//!
//! Every route answers JSON; errors are `{"errors":[{"type","message"}]}` (see
//! [`ApiError`]); creates answer 200 as Speed does; nothing answers with a redirect.
//! The routes, their bodies and their answers are in the OpenAPI document served at
//! `GET /openapi.json` (checked against this router by the test suite).

mod auth;
mod error;
mod events;
mod idempotent;
pub(crate) mod input;
mod links;
mod openapi;
mod payments;
mod sessions;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use auth::{ApiVersion, Caller, RateLimit, Unlimited};
pub use error::ApiError;
pub use openapi::OPENAPI_JSON;

use super::idempotency::Idempotency;
use super::keys::KeyStore;
use super::{HttpConfig, SharedCheckout};
use crate::backend::ResumePoint;
use crate::store::{LinkStore, ResumeStore, Store, StoreError};
use crate::webhook::DeliveryStore;

/// What the API needs of a store: sessions, links, webhook endpoints and key-value points
/// (idempotency records). Every store the crate ships is one.
pub trait ApiStore: Store + LinkStore + DeliveryStore + ResumeStore + 'static {}

impl<T: Store + LinkStore + DeliveryStore + ResumeStore + 'static> ApiStore for T {}

/// Builds the API router.
///
/// ```
/// use std::sync::Arc;
/// use bitcoin_checkout::http::api::ApiRouter;
/// use bitcoin_checkout::http::keys::{ApiKey, KeyKind, KeyStore, MemoryKeyStore};
/// use bitcoin_checkout::http::HttpConfig;
/// use bitcoin_checkout::rates::FixedRates;
/// use bitcoin_checkout::request::TestRequestGenerator;
/// use bitcoin_checkout::store::MemoryStore;
/// use bitcoin_checkout::Checkout;
///
/// let checkout = Arc::new(Checkout::boxed(MemoryStore::new(), FixedRates::new(), TestRequestGenerator));
/// let keys = MemoryKeyStore::new();
/// let (key, record) = ApiKey::generate(KeyKind::Secret, false, "shop");
/// keys.save(&record)?;
/// let config = HttpConfig::new("https://pay.example.com")?;
/// let api: axum::Router = ApiRouter::new(checkout, keys, config).router();
/// # let _ = (api, key);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ApiRouter<S> {
    checkout: SharedCheckout<S>,
    keys: Arc<dyn KeyStore>,
    config: HttpConfig,
    limiter: Arc<dyn RateLimit>,
}

impl<S> std::fmt::Debug for ApiRouter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRouter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: ApiStore> ApiRouter<S> {
    /// The API over `checkout`, authenticating with `keys`.
    pub fn new(
        checkout: SharedCheckout<S>,
        keys: impl KeyStore + 'static,
        config: HttpConfig,
    ) -> Self {
        Self {
            checkout,
            keys: Arc::new(keys),
            config,
            limiter: Arc::new(Unlimited),
        }
    }

    /// Asks `limiter` before every call.
    pub fn with_rate_limit(mut self, limiter: impl RateLimit) -> Self {
        self.limiter = Arc::new(limiter);
        self
    }

    /// The router, to mount at the API's base URL (e.g. with `Router::nest("/v1", …)` or
    /// `merge`).
    pub fn router(self) -> Router {
        let state = Arc::new(ApiState {
            idempotency: Idempotency::new(
                StoreOf(Arc::clone(&self.checkout)),
                self.config.idempotency_window(),
            ),
            checkout: self.checkout,
            keys: self.keys,
            limiter: self.limiter,
            config: self.config,
        });
        let limit = state.config.body_limit();
        routes::<S>()
            .fallback(|| async { ApiError::not_found("no such route") })
            .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&state),
                idempotent::layer::<S>,
            ))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(state)
    }
}

/// Every route. The OpenAPI test compares this list with the document.
fn routes<S: ApiStore>() -> Router<Arc<ApiState<S>>> {
    Router::new()
        .route(
            "/checkout-sessions",
            post(sessions::create::<S>).get(sessions::list::<S>),
        )
        .route(
            "/checkout-sessions/{id}",
            get(sessions::retrieve::<S>).post(sessions::update::<S>),
        )
        .route(
            "/checkout-sessions/{id}/deactivate",
            post(sessions::deactivate::<S>),
        )
        .route("/payment-page", post(sessions::payment_page::<S>))
        .route("/payments", post(payments::create::<S>))
        .route("/payments/{id}", get(payments::retrieve::<S>))
        .route(
            "/checkout-links",
            post(links::create_checkout::<S>).get(links::list_checkout::<S>),
        )
        .route("/checkout-links/{id}", get(links::retrieve_checkout::<S>))
        .route(
            "/checkout-links/{id}/deactivate",
            post(links::deactivate_checkout::<S>),
        )
        .route(
            "/payment-links",
            post(links::create_payment::<S>).get(links::list_payment::<S>),
        )
        .route("/payment-links/{id}", get(links::retrieve_payment::<S>))
        .route(
            "/payment-links/{id}/deactivate",
            post(links::deactivate_payment::<S>),
        )
        .route("/events", get(events::list::<S>))
        .route("/events/{id}", get(events::retrieve::<S>))
        .route(
            "/webhooks",
            post(webhooks::create::<S>).get(webhooks::list::<S>),
        )
        .route(
            "/webhooks/verify-secret",
            post(webhooks::verify_secret::<S>),
        )
        .route(
            "/webhooks/{id}",
            get(webhooks::retrieve::<S>)
                .post(webhooks::update::<S>)
                .delete(webhooks::delete::<S>),
        )
        .route("/webhooks/{id}/rotate-secret", post(webhooks::rotate::<S>))
        .route("/openapi.json", get(openapi::serve))
}

/// The routes as (method, path) pairs, for the OpenAPI check.
#[doc(hidden)]
pub fn route_table() -> &'static [(&'static str, &'static str)] {
    &[
        ("post", "/checkout-sessions"),
        ("get", "/checkout-sessions"),
        ("get", "/checkout-sessions/{id}"),
        ("post", "/checkout-sessions/{id}"),
        ("post", "/checkout-sessions/{id}/deactivate"),
        ("post", "/payment-page"),
        ("post", "/payments"),
        ("get", "/payments/{id}"),
        ("post", "/checkout-links"),
        ("get", "/checkout-links"),
        ("get", "/checkout-links/{id}"),
        ("post", "/checkout-links/{id}/deactivate"),
        ("post", "/payment-links"),
        ("get", "/payment-links"),
        ("get", "/payment-links/{id}"),
        ("post", "/payment-links/{id}/deactivate"),
        ("get", "/events"),
        ("get", "/events/{id}"),
        ("post", "/webhooks"),
        ("get", "/webhooks"),
        ("post", "/webhooks/verify-secret"),
        ("get", "/webhooks/{id}"),
        ("post", "/webhooks/{id}"),
        ("delete", "/webhooks/{id}"),
        ("post", "/webhooks/{id}/rotate-secret"),
        ("get", "/openapi.json"),
    ]
}

pub(crate) struct ApiState<S> {
    pub(crate) checkout: SharedCheckout<S>,
    pub(crate) keys: Arc<dyn KeyStore>,
    pub(crate) limiter: Arc<dyn RateLimit>,
    pub(crate) config: HttpConfig,
    pub(crate) idempotency: Idempotency<StoreOf<S>>,
}

/// The checkout's store as the idempotency records' [`ResumeStore`].
pub(crate) struct StoreOf<S>(SharedCheckout<S>);

impl<S: ResumeStore> ResumeStore for StoreOf<S> {
    fn resume_point(&self, name: &str) -> Result<Option<ResumePoint>, StoreError> {
        self.0.store().resume_point(name)
    }

    fn save_resume_point(
        &self,
        name: &str,
        expected: Option<&ResumePoint>,
        new: &ResumePoint,
    ) -> Result<(), StoreError> {
        self.0.store().save_resume_point(name, expected, new)
    }

    fn resume_points(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ResumePoint)>, StoreError> {
        self.0.store().resume_points(prefix, after, limit)
    }

    fn delete_resume_point(&self, name: &str, expected: &ResumePoint) -> Result<(), StoreError> {
        self.0.store().delete_resume_point(name, expected)
    }
}

/// A 200 answer with a JSON text.
pub(crate) fn json(text: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}

/// Adds a field to a JSON object's text (the object the core wrote).
pub(crate) fn with_field(mut object: String, name: &str, value_json: &str) -> String {
    if object.ends_with('}') {
        object.pop();
        if !object.ends_with('{') {
            object.push(',');
        }
        object.push_str(&serde_json::to_string(name).unwrap_or_default());
        object.push(':');
        object.push_str(value_json);
        object.push('}');
    }
    object
}

/// A list answer: `{"object":"list","data":[…],"has_more":…}`.
pub(crate) fn list_json(items: impl IntoIterator<Item = String>, has_more: bool) -> String {
    let data: Vec<String> = items.into_iter().collect();
    format!(
        "{{\"object\":\"list\",\"data\":[{}],\"has_more\":{has_more}}}",
        data.join(",")
    )
}
