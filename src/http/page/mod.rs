//! The hosted payment page router: the page each session's `url`
//! ([`HttpConfig::session_url`]) points at, with its JSON status and its live events.
//!
//! | route                          | what                                                  |
//! |--------------------------------|-------------------------------------------------------|
//! | `GET {page}/{id}`              | the payment page, server-rendered HTML (404 page for an unknown id; 303 to `success_url` once paid) |
//! | `GET {page}/{link id}`         | opens a checkout or payment link (`clink_…`, `plink_…`), 303 to its session's page, query kept; 410 once the link is inactive |
//! | `GET {page}/{id}/status`       | the page's state as JSON (`?have=<quote id>` leaves out that quote's QR code); the polling fallback |
//! | `GET {page}/{id}/events`       | server-sent events: `status`, the same JSON, whenever the session changes |
//!
//! `{page}` is [`HttpConfig::page_path`] (`/pay`). The page tolerates any query on its URL
//! (Speed's clients open `…/pay/cs_…?source_type=magento2`); its links to its own routes
//! are relative, so the router can be nested under a prefix.
//!
//! The page shows the session's branding (title, description, image), the price in its
//! currency and the quote in sats, the QR code and the text of the payment request (with
//! a copy button), a countdown to the quote's expiry by the server's clock, what is still
//! due after a partial payment, and a link to `cancel_url` while the session is active.
//! Once paid it shows the success message, or sends the customer to `success_url`,
//! exactly as the session has it (its own query kept). It loads the session through
//! [`Checkout::get`](crate::Checkout::get), which issues a new quote when the last one ran
//! out (ADR 8). The browser gets no key and calls no API: only this router's routes.
//!
//! Every page is escaped markup (maud) under a strict Content-Security-Policy (the page's
//! own style and script by hash, requests to its own origin only). The script updates the
//! page from the live events and falls back to polling `/status` every second if they
//! fail; `body[data-live]` says which (`sse` or `poll`). See docs/http.md.

mod live;
mod template;
#[cfg(test)]
mod tests;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use super::{HttpConfig, SharedCheckout, call, get as get_session};
use crate::clock::Clock as _;
use crate::id::{LinkId, SessionId};
use crate::service::ErrorKind;
use crate::session::SessionStatus;
use crate::store::LinkStore;
use template::PageLinks;
use view::{QR_CACHE_QUOTES, QrCache, StatusView};

/// The hosted payment page as an [`axum::Router`] to mount in the application's server.
///
/// ```
/// use std::sync::Arc;
/// use bitcoin_checkout::http::HttpConfig;
/// use bitcoin_checkout::http::page::PageRouter;
/// use bitcoin_checkout::rates::FixedRates;
/// use bitcoin_checkout::request::TestRequestGenerator;
/// use bitcoin_checkout::store::MemoryStore;
/// use bitcoin_checkout::Checkout;
///
/// let checkout = Arc::new(Checkout::boxed(MemoryStore::new(), FixedRates::new(), TestRequestGenerator));
/// let config = HttpConfig::new("https://pay.example.com")?;
/// // Serves GET /pay/{id}, /pay/{id}/status and /pay/{id}/events.
/// let page: axum::Router = PageRouter::new(checkout, config).router();
/// # let _ = page;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PageRouter<S> {
    checkout: SharedCheckout<S>,
    config: HttpConfig,
    dev_controls: Option<String>,
}

impl<S> std::fmt::Debug for PageRouter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageRouter")
            .field("config", &self.config)
            .field("dev_controls", &self.dev_controls)
            .finish_non_exhaustive()
    }
}

impl<S: LinkStore + 'static> PageRouter<S> {
    /// The page of the sessions of `checkout`, served under `config`'s page path.
    pub fn new(checkout: SharedCheckout<S>, config: HttpConfig) -> Self {
        Self {
            checkout,
            config,
            dev_controls: None,
        }
    }

    /// **Development only.** Shows "Pay half" and "Pay the rest" buttons on active pages,
    /// in a form posting `part=half` or `part=rest` (with `Accept: application/json`) to
    /// `{page}/{id}/{segment}`; the page then follows the outcome from its live status.
    /// This router does not serve that route: the application does (recording a fake
    /// payment, e.g. with the test request generator's payment hash), and only in
    /// development. Never call this in production: without it no such button exists.
    pub fn with_dev_controls(mut self, segment: impl Into<String>) -> Self {
        self.dev_controls = Some(segment.into());
        self
    }

    /// The router: `GET {page}/{id}`, `{page}/{id}/status` and `{page}/{id}/events`.
    ///
    /// The live events' poller starts with the first stream, on the runtime serving it,
    /// and stops once the router and its streams are dropped.
    pub fn router(self) -> Router {
        let base = self.config.page_path().trim_end_matches('/').to_owned();
        let shared = Arc::new(Shared {
            checkout: self.checkout,
            dev_controls: self.dev_controls,
            qr: QrCache::new(QR_CACHE_QUOTES),
            live: live::Live::new(),
        });
        Router::new()
            .route(&format!("{base}/{{id}}"), get(page::<S>))
            .route(&format!("{base}/{{id}}/status"), get(status::<S>))
            .route(&format!("{base}/{{id}}/events"), get(live::events::<S>))
            .with_state(shared)
    }
}

/// What the handlers share.
struct Shared<S> {
    checkout: SharedCheckout<S>,
    dev_controls: Option<String>,
    qr: QrCache,
    live: live::Live,
}

/// `GET {page}/{id}`: the payment page (any query ignored).
async fn page<S: LinkStore + 'static>(
    State(shared): State<Arc<Shared<S>>>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Ok(link) = raw.parse::<LinkId>() {
        return open_link(&shared, link, query).await;
    }
    let Ok(id) = raw.parse::<SessionId>() else {
        return error_page(ErrorKind::NotFound);
    };
    let session = match get_session(&shared.checkout, id).await {
        Ok(session) => session,
        Err(e) => return error_page(e.kind()),
    };
    // Paid: straight on to the merchant's page, when it has one (a reload of the page,
    // or a late visit; the live page navigates there by itself).
    if session.status() == SessionStatus::Paid
        && let Some(location) = session
            .success_url()
            .and_then(|url| HeaderValue::from_str(url).ok())
    {
        let mut response = StatusCode::SEE_OTHER.into_response();
        response.headers_mut().insert(header::LOCATION, location);
        return no_store(response);
    }
    let now = shared.checkout.clock().now();
    let view = match StatusView::new(&session, None, now, &shared.qr) {
        Ok(view) => view,
        Err(_) => return error_page(ErrorKind::Internal),
    };
    let id = session.id().to_string();
    let links = PageLinks {
        id: &id,
        dev_controls: shared.dev_controls.as_deref(),
    };
    html_response(StatusCode::OK, template::pay_page(&session, &view, links))
}

/// `GET {page}/{link id}`: opens the link and sends the customer to its session's page,
/// with the query the link was opened with (`?source_type=…` reaches the page). A checkout
/// link always gives its one session; a payment link gives a new session per open, as
/// Speed's do. The `Location` is relative (`cs_…`), so the router can be nested.
async fn open_link<S: LinkStore + 'static>(
    shared: &Shared<S>,
    link: LinkId,
    query: Option<String>,
) -> Response {
    let session = match call(&shared.checkout, move |c| c.open_link(link, None)).await {
        Ok(session) => session,
        // A deactivated or expired link: gone for good, said plainly.
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return html_response(StatusCode::GONE, template::link_inactive());
        }
        Err(e) => return error_page(e.kind()),
    };
    let mut location = session.id().to_string();
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        location.push('?');
        location.push_str(&query);
    }
    // A query that came in on the request line is always a valid header value.
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            no_store(response)
        }
        Err(_) => error_page(ErrorKind::Internal),
    }
}

/// `GET {page}/{id}/status`: the page's state as JSON.
async fn status<S: LinkStore + 'static>(
    State(shared): State<Arc<Shared<S>>>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Ok(id) = raw.parse::<SessionId>() else {
        return error_json(ErrorKind::NotFound);
    };
    let session = match get_session(&shared.checkout, id).await {
        Ok(session) => session,
        Err(e) => return error_json(e.kind()),
    };
    let have = query_have(query.as_deref());
    let now = shared.checkout.clock().now();
    match StatusView::new(&session, have.as_deref(), now, &shared.qr) {
        Ok(view) => no_store(Json(view).into_response()),
        Err(_) => error_json(ErrorKind::Internal),
    }
}

/// The `have` parameter of a query (the first one), whatever else it holds: a malformed
/// or repeated parameter never fails the request.
fn query_have(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "have")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// The HTTP status of a failure: unknown sessions 404, backends down 503, the rest 500.
fn failure_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound | ErrorKind::InvalidInput => StatusCode::NOT_FOUND,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A failure as a page (saying nothing of what failed).
fn error_page(kind: ErrorKind) -> Response {
    let status = failure_status(kind);
    let markup = match status {
        StatusCode::NOT_FOUND => template::not_found(),
        StatusCode::SERVICE_UNAVAILABLE => template::unavailable(true),
        _ => template::unavailable(false),
    };
    html_response(status, markup)
}

/// A failure as JSON: `{"error": "not_found" | "unavailable" | "internal"}`.
fn error_json(kind: ErrorKind) -> Response {
    let status = failure_status(kind);
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal",
    };
    no_store((status, Json(serde_json::json!({ "error": code }))).into_response())
}

/// A page with its headers: never cached (it changes), its CSP, no MIME sniffing, no
/// referrer (the page's URL names the session).
fn html_response(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(template::content_security_policy()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    no_store(response)
}

/// Status answers change every second: no cache may keep them.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
