//! A hosted checkout: a tiny shop in front of the library's two routers, the hosted
//! payment page (`http::page::PageRouter`) and the Speed-compatible API
//! (`http::api::ApiRouter`, under `/api`), with the runner sweeping expired quotes and
//! delivering webhooks.
//!
//! ```sh
//! cargo run --example checkout_page --features http,runner                 # http://127.0.0.1:3000
//! cargo run --example checkout_page --features http,runner -- --simulate   # "pay half" / "pay the rest"
//! cargo run --example checkout_page --features http,runner -- --port 0 --sqlite /tmp/checkout.sqlite3
//! ```
//!
//! Flags: `--port <n>` (default 3000; 0 picks a free port), `--simulate` (development-only
//! payment buttons; without it their route answers 404), `--sqlite <path>` (keep sessions in
//! a SQLite file instead of memory), `--ttl <secs>` (quote lifetime, 300 or more; default
//! 600: set 300 to watch a quote expire and be replaced), `--success-url <url>` (where a
//! paid page sends the customer; by default the page shows the success message) and
//! `--cancel-url <url>` (the page's cancel link; default the shop), `--api-key <sk_test_…>`
//! (the API's secret test key; by default a new one is made and printed). Those two URLs take an
//! absolute URL or a path on this server, such as `/thanks?order=42`, kept exactly,
//! query included. The first line on stdout is always
//! `listening on http://127.0.0.1:<port>`, so scripts and tests can read the address; the
//! second is `api: http://127.0.0.1:<port>/api key <key>` (a test key, for this loopback demo).
//!
//! Point a Speed client at it: base URL `http://127.0.0.1:<port>/api`, the printed key as
//! the Basic user name, e.g.
//! `curl -u sk_test_…: -d '{"amount":5,"currency":"USD"}' -H 'content-type: application/json' http://127.0.0.1:3000/api/checkout-sessions`.
//!
//! Routes:
//!
//! | route                        | what                                                   |
//! |------------------------------|--------------------------------------------------------|
//! | `GET /`                      | the merchant's page with a "Buy" form                  |
//! | `POST /checkout`             | creates a $25.00 session, 303 to its payment page      |
//! | `GET /pay/{id}`              | the library's hosted payment page                      |
//! | `GET /pay/{id}/status`       | its state as JSON (the page's polling fallback)        |
//! | `GET /pay/{id}/events`       | its live status, server-sent events                    |
//! | `POST /pay/{id}/simulate`    | with `--simulate` only: records a fake Lightning payment |
//! | `GET /thanks`, `/cancelled`  | landing pages for `--success-url` / `--cancel-url`     |
//! | `GET /logo.svg`              | the shop's logo (the session's `title_image`)          |
//! | `/api/…`                     | the Speed-compatible API (`/api/openapi.json` lists it) |
//!
//! **Test mode**: payment requests come from `TestRequestGenerator`, so the QR codes look
//! real but no wallet can pay them. The runner sweeps every second (expiring what ran
//! out); the page's live status then fetches the session, which issues the new quote
//! (quotes on demand), and the page shows it by itself.

mod shop;

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bitcoin_checkout::clock::SystemClock;
use bitcoin_checkout::http::api::{ApiRouter, ApiStore};
use bitcoin_checkout::http::idempotency::Idempotency;
use bitcoin_checkout::http::keys::{ApiKey, KeyKind, KeyRecord, KeyStore, MemoryKeyStore};
use bitcoin_checkout::http::page::PageRouter;
use bitcoin_checkout::http::{HttpConfig, HttpSender, SharedCheckout};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::runner::RunnerBuilder;
use bitcoin_checkout::service::{DynCheckout, ServiceError};
use bitcoin_checkout::session::{MAX_TTL_SECS, MIN_TTL_SECS};
#[cfg(feature = "sqlite")]
use bitcoin_checkout::store::SqliteStore;
use bitcoin_checkout::store::{MemoryStore, Store};
use bitcoin_checkout::webhook::Dispatcher;
use bitcoin_checkout::{
    Branding, Checkout, Currency, Msats, PaymentMethod, SessionId, SessionParams, TargetCurrency,
    TransferReport,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use time::OffsetDateTime;

/// The shop's price: $25.00.
const PRICE_CENTS: i64 = 2500;
/// The fixed demo rate: 1,000 sats per dollar (so $25.00 is 25,000 sats).
const SATS_PER_USD: i64 = 1000;
/// Sessions per sweep; the demo never has more due at once.
const SWEEP_LIMIT: usize = 100;
/// The path segment of the development-only payment route, under the page's path.
const SIMULATE: &str = "simulate";

struct Options {
    port: u16,
    simulate: bool,
    sqlite: Option<PathBuf>,
    ttl: Option<i64>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    api_key: Option<String>,
}

const USAGE: &str = "usage: checkout_page [--port <n>] [--simulate] [--sqlite <path>] \
                     [--ttl <secs>] [--success-url <url>] [--cancel-url <url>] [--api-key <sk_test_…>]";

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        port: 3000,
        simulate: false,
        sqlite: None,
        ttl: None,
        success_url: None,
        cancel_url: None,
        api_key: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                options.port = value
                    .parse()
                    .map_err(|_| format!("--port: not a port number: {value}"))?;
            }
            "--simulate" => options.simulate = true,
            "--sqlite" => options.sqlite = Some(args.next().ok_or("--sqlite needs a path")?.into()),
            "--ttl" => {
                let value = args.next().ok_or("--ttl needs a number of seconds")?;
                let secs = value
                    .parse()
                    .map_err(|_| format!("--ttl: not a number: {value}"))?;
                if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&secs) {
                    return Err(format!(
                        "--ttl must be {MIN_TTL_SECS} to {MAX_TTL_SECS} seconds"
                    ));
                }
                options.ttl = Some(secs);
            }
            "--success-url" => {
                options.success_url = Some(args.next().ok_or("--success-url needs a URL")?);
            }
            "--cancel-url" => {
                options.cancel_url = Some(args.next().ok_or("--cancel-url needs a URL")?);
            }
            "--api-key" => {
                options.api_key = Some(args.next().ok_or("--api-key needs a key")?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let options = parse_args()?;
    match options.sqlite.clone() {
        #[cfg(feature = "sqlite")]
        Some(path) => serve(Arc::new(SqliteStore::open(path)?), options).await,
        #[cfg(not(feature = "sqlite"))]
        Some(_) => Err("--sqlite needs the crate's `sqlite` feature (on by default)".into()),
        None => serve(Arc::new(MemoryStore::new()), options).await,
    }
}

/// The shop's state.
struct App<S> {
    checkout: SharedCheckout<S>,
    config: HttpConfig,
    /// Order numbers for the idempotency keys of the Buy form.
    next_order: AtomicU64,
    /// Distinguishes this run's order numbers from a previous run's in a SQLite file.
    run: u64,
    ttl: Option<i64>,
    success_url: Option<String>,
    cancel_url: String,
}

/// Serves the shop and the payment page over `store` until Ctrl-C.
/// `store` is shared (an `Arc`): the service and the webhook dispatcher both use it.
async fn serve<S: ApiStore + Clone>(store: S, options: Options) -> Result<(), Box<dyn StdError>> {
    let usd = Currency::from_code("USD")?;
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(SATS_PER_USD));
    let checkout: SharedCheckout<S> = Arc::new(Checkout::boxed(store, rates, TestRequestGenerator));

    // Loopback only: this is a demo with a fake payment button, never a public server.
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port))).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    // First line on stdout, flushed by the newline: tests read the port from it.
    println!("listening on {base_url}");
    let keys = MemoryKeyStore::new();
    let key = api_key(&keys, options.api_key.as_deref())?;
    // A test key on a loopback demo: printed so that the operator can call the API.
    println!("api: {base_url}/api key {}", key.expose());
    if options.simulate {
        println!("simulate: development-only payment buttons are ON");
    }
    let config = HttpConfig::new(&base_url)?;
    let absolute = |url: String| {
        if url.starts_with('/') {
            format!("{base_url}{url}")
        } else {
            url
        }
    };

    // The background work: the sweep expires what ran out, and the dispatcher delivers
    // the events to the webhook endpoints made through the API, every second.
    // One registry of counters for the service and the dispatcher, served at /metrics.
    let dispatcher = Dispatcher::new(checkout.store().clone(), HttpSender::default(), SystemClock)
        .with_metrics(Arc::clone(checkout.metrics()));
    // The idempotency records of the API's Idempotency-Key header, in the same store, are
    // pruned once past their window; the service's own keys likewise (`retention`).
    let replays = Idempotency::new(checkout.store().clone(), config.idempotency_window());
    let runner = RunnerBuilder::new()
        .sweep(checkout.clone(), Duration::from_secs(1), SWEEP_LIMIT)
        .dispatcher(dispatcher, Duration::from_secs(1))
        .retention(checkout.clone(), Duration::from_secs(600), 1_000)
        .job("http-idempotency", Duration::from_secs(600), move || {
            replays.prune(OffsetDateTime::now_utc(), 1_000).map(drop)
        })
        .start();

    let app = Arc::new(App {
        checkout: checkout.clone(),
        config: config.clone(),
        next_order: AtomicU64::new(1),
        run: OffsetDateTime::now_utc().unix_timestamp().unsigned_abs(),
        ttl: options.ttl,
        success_url: options.success_url.map(absolute),
        cancel_url: absolute(options.cancel_url.unwrap_or_else(|| "/".to_owned())),
    });

    let shop = Router::new()
        .route("/", get(shop_page))
        .route("/logo.svg", get(logo))
        .route("/metrics", get(metrics::<S>))
        .route("/checkout", post(create_checkout::<S>))
        .route("/thanks", get(thanks))
        .route("/cancelled", get(cancelled))
        .with_state(app.clone());

    let mut page = PageRouter::new(checkout.clone(), config.clone());
    let mut router = shop;
    // Without --simulate neither the buttons nor their route exist: a request is a 404.
    if options.simulate {
        page = page.with_dev_controls(SIMULATE);
        let path = format!("{}/{{id}}/{SIMULATE}", config.page_path());
        router = router.merge(
            Router::new()
                .route(&path, post(simulate::<S>))
                .with_state(app),
        );
    }
    router = router
        .merge(page.router())
        .nest("/api", ApiRouter::new(checkout, keys, config).router());

    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    runner.stop().await;
    Ok(())
}

/// The API's secret test key: `given`, or a new one; saved (hashed) in `keys`.
fn api_key(keys: &MemoryKeyStore, given: Option<&str>) -> Result<ApiKey, Box<dyn StdError>> {
    let key = match given {
        Some(text) => {
            let key = ApiKey::parse(text).map_err(|_| "--api-key: not an API key")?;
            if key.kind() != KeyKind::Secret || key.livemode() {
                return Err("--api-key: give a secret test key (sk_test_…)".into());
            }
            keys.save(&KeyRecord::new(&key, "checkout_page"))?;
            key
        }
        None => {
            let (key, record) = ApiKey::generate(KeyKind::Secret, false, "checkout_page");
            keys.save(&record)?;
            key
        }
    };
    Ok(key)
}

/// Calls the (synchronous) checkout service the way the library's routers do
/// (`http::call`): on the blocking pool with `--sqlite` (file I/O must not stall the async
/// workers), in place on the memory store.
async fn blocking<S: Store + 'static, T: Send + 'static>(
    checkout: &SharedCheckout<S>,
    work: impl FnOnce(&DynCheckout<S>) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, Failure> {
    bitcoin_checkout::http::call(checkout, work)
        .await
        .map_err(Failure::from)
}

/// What a handler can fail with, as an HTTP response.
enum Failure {
    NotFound,
    BadRequest(String),
    Conflict(String),
    Internal(String),
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        match e.kind().http_status() {
            404 => Self::NotFound,
            400 => Self::BadRequest(e.to_string()),
            409 => Self::Conflict(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<bitcoin_checkout::Error> for Failure {
    fn from(e: bitcoin_checkout::Error) -> Self {
        ServiceError::Core(e).into()
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (code, text) = match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::Conflict(m) => (StatusCode::CONFLICT, m),
            Self::Internal(m) => {
                eprintln!("error: {m}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (code, text).into_response()
    }
}

/// `GET /`: the merchant's page. Each rendering carries a fresh order key, so a
/// double-clicked Buy button (or a resubmitted form) replays one session instead of
/// creating two.
async fn shop_page<S: Store + 'static>(State(app): State<Arc<App<S>>>) -> impl IntoResponse {
    let order = format!(
        "order-{}-{}",
        app.run,
        app.next_order.fetch_add(1, Ordering::Relaxed)
    );
    shop::shop(&order, "$25.00")
}

/// `GET /logo.svg`: served here because `title_image` must be an http(s) URL.
async fn logo() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        shop::LOGO_SVG,
    )
}

/// `GET /metrics`: the counters in Prometheus' text format (a loopback demo: a real shop
/// serves them on an internal port).
async fn metrics<S: ApiStore>(State(app): State<Arc<App<S>>>) -> impl IntoResponse {
    let mut text = String::new();
    for (name, value) in app.checkout.metrics().snapshot().iter() {
        text.push_str(&format!("{name} {value}\n"));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// `GET /thanks`: where `--success-url /thanks?…` lands.
async fn thanks(RawQuery(query): RawQuery) -> impl IntoResponse {
    shop::landing("Thank you for your order", query.as_deref())
}

/// `GET /cancelled`: where `--cancel-url /cancelled?…` lands.
async fn cancelled(RawQuery(query): RawQuery) -> impl IntoResponse {
    shop::landing("Order cancelled", query.as_deref())
}

#[derive(Deserialize)]
struct BuyForm {
    order: String,
}

/// `POST /checkout`: creates the session and sends the customer to its payment page.
async fn create_checkout<S: Store + 'static>(
    State(app): State<Arc<App<S>>>,
    Form(form): Form<BuyForm>,
) -> Result<Redirect, Failure> {
    let usd = Currency::from_code("USD")?;
    let mut params = SessionParams::new(Decimal::new(PRICE_CENTS, 2), usd)
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
        .description(format!("Satoshi's Coffee, {}", form.order))
        .branding(Branding {
            title: Some("Satoshi's Coffee".to_owned()),
            title_description: Some("1 kg of single-origin beans, roasted to order".to_owned()),
            title_image: Some(format!("{}/logo.svg", app.config.base_url())),
        })
        .cancel_url(app.cancel_url.clone());
    // One or the other (Speed's rule): a page to go to, or a message on the page.
    params = match &app.success_url {
        Some(url) => params.success_url(url.clone()),
        None => params.success_message("Thank you! Your beans are on their way."),
    };
    if let Some(secs) = app.ttl {
        params = params.ttl_secs(secs);
    }
    let session = blocking(&app.checkout, move |c| c.create(params, Some(&form.order))).await?;
    // `Redirect::to` is 303 See Other: the browser follows with a GET.
    Ok(Redirect::to(&app.config.session_url(session.id())))
}

#[derive(Deserialize)]
struct SimulateForm {
    /// `half` of the open quote, or `rest`: all of it.
    part: String,
}

/// `POST /pay/{id}/simulate` (routed only with `--simulate`): pays part of the open quote
/// as if the invoice had been paid over Lightning. The page's script sends it with
/// `Accept: application/json` and gets 204: the page learns the outcome from its live
/// status, as it would for a real payment. A plain form post is sent back to the page.
async fn simulate<S: Store + 'static>(
    State(app): State<Arc<App<S>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SimulateForm>,
) -> Result<Response, Failure> {
    let id: SessionId = id.parse().map_err(|_| Failure::NotFound)?;
    let half = match form.part.as_str() {
        "half" => true,
        "rest" => false,
        other => {
            return Err(Failure::BadRequest(format!(
                "part must be half or rest, not {other}"
            )));
        }
    };
    // One trip to the blocking pool: the session's open quote, then its payment.
    let paid = blocking(&app.checkout, move |c| {
        let session = c.get(id)?;
        let Some(quote) = session.open_payment() else {
            return Ok(Err(session.status()));
        };
        let full = quote.target_msats().get();
        // The payment hash the test generator gave this quote's (unpayable) invoice.
        let report = TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            Msats::new(if half { full / 2 } else { full }),
        );
        c.record_transfer(report).map(Ok)
    })
    .await?;
    if let Err(status) = paid {
        return Err(Failure::Conflict(format!(
            "no open quote: the session is {}",
            status.as_str()
        )));
    }

    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(Redirect::to(&app.config.session_url(id)).into_response())
    }
}
