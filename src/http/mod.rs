//! The HTTP layer (feature `http`): a Speed-compatible API router and the hosted payment
//! page router, each an [`axum::Router`] an application mounts in its own server.
//!
//! * [`ApiRouter`]: checkout sessions, payments, checkout and payment links, events, webhook
//!   endpoints and Speed's `POST /payment-page`, with Speed's conventions (HTTP Basic with the
//!   key as user name, publishable/secret/restricted keys, test and live mode from the key,
//!   `{"errors":[…]}` bodies) and Stripe's `Idempotency-Key` on every POST.
//! * [`PageRouter`](page::PageRouter): the hosted payment page each session's `url` points
//!   at (`{base}/pay/{id}`, and `{base}/pay/{link id}`, which opens the link), with its
//!   JSON status and its live status over server-sent events. It needs no key.
//!
//! The routers call the synchronous service on tokio's blocking pool, or in place when it
//! never blocks ([`call`]); their [`HttpConfig`]'s
//! public base URL makes the sessions' `url`. See docs/http.md.

pub mod api;
pub mod idempotency;
pub mod keys;
pub mod page;
mod sender;

use std::sync::Arc;

pub use api::ApiRouter;
pub use sender::{DEFAULT_SEND_TIMEOUT, HttpSender};

use crate::id::{LinkId, SessionId};
use crate::service::{DynCheckout, ServiceError};

/// The service the routers drive: any store, the other ports boxed (build it with
/// [`Checkout::boxed`](crate::Checkout::boxed)), shared between the routers and the
/// application.
pub type SharedCheckout<S> = Arc<DynCheckout<S>>;

/// Why an [`HttpConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The public base URL is not an absolute http(s) URL without query or fragment.
    #[error("public base URL must be an absolute http(s) URL without query or fragment: {0}")]
    BaseUrl(String),
    /// The idempotency window is shorter than 24 hours.
    #[error("idempotency records must be kept at least 24 hours")]
    IdempotencyWindow,
    /// The body limit is zero.
    #[error("the request body limit must be at least 1 byte")]
    BodyLimit,
}

/// What both routers need to know about where they are served.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Without a trailing slash, e.g. `https://pay.example.com`.
    base_url: String,
    /// Where the page router serves the page, e.g. `/pay` (`/pay/{id}`).
    page_path: String,
    body_limit: usize,
    idempotency_window: time::Duration,
}

/// Default largest request body: 64 KiB (a session with 50 metadata entries of 500
/// characters is about 30 KiB).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

impl HttpConfig {
    /// The routers as served at `public_base_url` (what customers' browsers reach, e.g.
    /// `https://pay.example.com` or `https://shop.example.com/checkout`).
    pub fn new(public_base_url: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::BaseUrl(crate::money::truncate_for_error(public_base_url));
        let url = url::Url::parse(public_base_url).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad());
        }
        Ok(Self {
            base_url: url.as_str().trim_end_matches('/').to_owned(),
            page_path: "/pay".to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
            idempotency_window: time::Duration::hours(24),
        })
    }

    /// The largest request body the API accepts (413 beyond it).
    pub fn with_body_limit(mut self, bytes: usize) -> Result<Self, ConfigError> {
        if bytes == 0 {
            return Err(ConfigError::BodyLimit);
        }
        self.body_limit = bytes;
        Ok(self)
    }

    /// How long an `Idempotency-Key` is remembered (at least 24 hours, the default).
    pub fn with_idempotency_window(mut self, window: time::Duration) -> Result<Self, ConfigError> {
        if window < time::Duration::hours(24) {
            return Err(ConfigError::IdempotencyWindow);
        }
        self.idempotency_window = window;
        Ok(self)
    }

    /// The public base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The path the page router serves pages under (`/pay`).
    pub fn page_path(&self) -> &str {
        &self.page_path
    }

    /// The largest request body accepted.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// How long idempotency records are kept.
    pub fn idempotency_window(&self) -> time::Duration {
        self.idempotency_window
    }

    /// The hosted page of a session: `{base}/pay/{id}`, with no query (Speed's clients
    /// append `?source_type=…` to it).
    pub fn session_url(&self, id: SessionId) -> String {
        format!("{}{}/{id}", self.base_url, self.page_path)
    }

    /// The page of a link, `{base}/pay/{link id}`: opening it opens the link and shows
    /// the session it gives.
    pub fn link_url(&self, id: LinkId) -> String {
        format!("{}{}/{id}", self.base_url, self.page_path)
    }
}

/// Runs `work` in place when `inline` (it cannot block: see
/// [`Store::never_blocks`](crate::store::Store::never_blocks)), else on tokio's blocking
/// pool; `None` if the pool's task failed.
pub(crate) async fn off_executor<T: Send + 'static>(
    inline: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if inline {
        return Some(work());
    }
    tokio::task::spawn_blocking(work).await.ok()
}

/// Calls the synchronous service from async code: on tokio's blocking pool, so a store
/// doing file or network I/O never stalls the async workers, or in place when the service
/// never blocks ([`Checkout::never_blocks`](crate::Checkout::never_blocks): the memory
/// store, fixed rates, offline requests), where the trip to the pool would cost more than
/// the call. The routers use it for every service call; so can an application's own
/// routes beside them.
///
/// In place, the only waits are the service's retries after a conflicting write (the
/// first at once, the next after well under a millisecond).
pub async fn call<S, T>(
    checkout: &SharedCheckout<S>,
    work: impl FnOnce(&DynCheckout<S>) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError>
where
    S: crate::store::Store + 'static,
    T: Send + 'static,
{
    on_executor_if(checkout, checkout.never_blocks(), work).await
}

/// `work` in place when `inline`, else on the blocking pool.
async fn on_executor_if<S, T>(
    checkout: &SharedCheckout<S>,
    inline: bool,
    work: impl FnOnce(&DynCheckout<S>) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError>
where
    S: crate::store::Store + 'static,
    T: Send + 'static,
{
    let checkout = Arc::clone(checkout);
    off_executor(inline, move || work(&checkout))
        .await
        .unwrap_or_else(|| {
            Err(ServiceError::Store(crate::store::StoreError::Backend {
                message: "blocking task failed".to_owned(),
                retryable: false,
            }))
        })
}

/// [`Checkout::get`](crate::Checkout::get) from async code. When the store's reads never
/// block ([`Checkout::reads_never_block`](crate::Checkout::reads_never_block)) and the
/// session needs no write (nothing due, a valid quote), its one read is answered in place;
/// otherwise `get` runs as [`call`] runs it. Most fetches of a page or a session are the
/// first kind, so they cost no trip to the blocking pool.
pub(crate) async fn get<S>(
    checkout: &SharedCheckout<S>,
    id: SessionId,
) -> Result<crate::CheckoutSession, ServiceError>
where
    S: crate::store::Store + 'static,
{
    if let Some(session) = checkout.get_in_place(id)? {
        return Ok(session);
    }
    call(checkout, move |c| c.get(id)).await
}

/// A call that only reads the store (no write, no rate, no payment request): in place when
/// the store's reads never block, else as [`call`] runs it.
pub(crate) async fn read<S, T>(
    checkout: &SharedCheckout<S>,
    work: impl FnOnce(&DynCheckout<S>) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError>
where
    S: crate::store::Store + 'static,
    T: Send + 'static,
{
    on_executor_if(checkout, checkout.reads_never_block(), work).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_checked_and_trimmed() {
        let config = HttpConfig::new("https://pay.example.com/").unwrap();
        let id = SessionId::generate();
        assert_eq!(
            config.session_url(id),
            format!("https://pay.example.com/pay/{id}")
        );
        for bad in [
            "pay.example.com",
            "ftp://x",
            "https://x/?a=1",
            "https://x/#f",
        ] {
            assert!(HttpConfig::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HttpConfig::new("http://x")
                .unwrap()
                .with_idempotency_window(time::Duration::hours(1))
                .unwrap_err(),
            ConfigError::IdempotencyWindow
        );
    }
}
