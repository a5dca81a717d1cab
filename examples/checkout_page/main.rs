//! A hosted checkout page: a tiny shop, a payment page with a QR code, a countdown and live
//! status, served by axum.
//!
//! ```sh
//! cargo run --example checkout_page                 # http://127.0.0.1:3000
//! cargo run --example checkout_page -- --simulate   # with "pay half" / "pay the rest" buttons
//! cargo run --example checkout_page -- --port 0 --sqlite /tmp/checkout.sqlite3
//! ```
//!
//! Flags: `--port <n>` (default 3000; 0 picks a free port), `--simulate` (development-only
//! payment buttons; without it their route answers 404), `--sqlite <path>` (keep sessions in
//! a SQLite file instead of memory), `--ttl <secs>` (quote lifetime, 300 or more; default
//! 600: set 300 to watch a quote expire and be replaced). The first line on stdout is always
//! `listening on http://127.0.0.1:<port>`, so scripts and tests can read the address.
//!
//! Routes:
//!
//! | route                        | what                                                   |
//! |------------------------------|--------------------------------------------------------|
//! | `GET /`                      | the merchant's page with a "Buy" form                  |
//! | `POST /checkout`             | creates a $25.00 session, 303 to its payment page      |
//! | `GET /pay/{id}`              | the hosted payment page (server-rendered HTML)         |
//! | `GET /pay/{id}/status`       | the page's state as JSON; the page polls it every second |
//! | `POST /pay/{id}/simulate`    | with `--simulate` only: records a fake Lightning payment |
//! | `GET /logo.svg`              | the shop's logo (the session's `title_image`)          |
//!
//! **Test mode**: payment requests come from `TestRequestGenerator`, so the QR codes look
//! real but no wallet can pay them; the page says so. A background task sweeps every
//! second (expiring what ran out); the page's next poll fetches the session, which issues
//! the new quote (quotes on demand), and the page picks it up by itself.

mod page;

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::session::{MAX_TTL_SECS, MIN_TTL_SECS};
#[cfg(feature = "sqlite")]
use bitcoin_checkout::store::SqliteStore;
use bitcoin_checkout::store::{MemoryStore, Store};
use bitcoin_checkout::{
    Branding, Checkout, CheckoutSession, Currency, Error, Msats, PaymentMethod, SessionId,
    SessionParams, TargetCurrency, TransferReport,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::page::StatusView;

/// The shop's price: $25.00.
const PRICE_CENTS: i64 = 2500;
/// The fixed demo rate: 1,000 sats per dollar (so $25.00 is 25,000 sats).
const SATS_PER_USD: i64 = 1000;
/// Sessions per sweep; the demo never has more due at once.
const SWEEP_LIMIT: usize = 100;

type Service = Checkout<Box<dyn Store>, FixedRates, TestRequestGenerator>;

struct App {
    checkout: Service,
    /// Whether the development-only payment buttons and their route exist.
    simulate: bool,
    /// `http://127.0.0.1:<port>`: `title_image` must be an absolute http(s) URL.
    base_url: String,
    /// Order numbers for the idempotency keys of the Buy form.
    next_order: AtomicU64,
    /// Distinguishes this run's order numbers from a previous run's in a SQLite file.
    run: u64,
    /// Quote lifetime for new sessions (the library's default when `None`).
    ttl: Option<i64>,
}

type Shared = Arc<App>;

struct Options {
    port: u16,
    simulate: bool,
    sqlite: Option<std::path::PathBuf>,
    ttl: Option<i64>,
}

const USAGE: &str =
    "usage: checkout_page [--port <n>] [--simulate] [--sqlite <path>] [--ttl <secs>]";

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        port: 3000,
        simulate: false,
        sqlite: None,
        ttl: None,
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
    let store = open_store(options.sqlite.as_deref())?;
    let usd = Currency::from_code("USD")?;
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(SATS_PER_USD));

    // Loopback only: this is a demo with a fake payment button, never a public server.
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port))).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    // First line on stdout, flushed by the newline: tests read the port from it.
    println!("listening on {base_url}");
    if options.simulate {
        println!("simulate: development-only payment buttons are ON");
    }

    let app = Arc::new(App {
        checkout: Checkout::new(store, rates, TestRequestGenerator),
        simulate: options.simulate,
        base_url,
        next_order: AtomicU64::new(1),
        run: OffsetDateTime::now_utc().unix_timestamp().unsigned_abs(),
        ttl: options.ttl,
    });
    tokio::spawn(sweep_forever(Arc::clone(&app)));

    let mut router = Router::new()
        .route("/", get(shop))
        .route("/logo.svg", get(logo))
        .route("/checkout", post(create_checkout))
        .route("/pay/{id}", get(pay_page))
        .route("/pay/{id}/status", get(status));
    // Without --simulate the route does not exist at all: every request to it is a 404.
    if options.simulate {
        router = router.route("/pay/{id}/simulate", post(simulate));
    }
    let router = router.with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The store: memory by default, or a SQLite file (feature `sqlite`, on by default).
fn open_store(sqlite: Option<&std::path::Path>) -> Result<Box<dyn Store>, Box<dyn StdError>> {
    match sqlite {
        #[cfg(feature = "sqlite")]
        Some(path) => Ok(Box::new(SqliteStore::open(path)?)),
        #[cfg(not(feature = "sqlite"))]
        Some(_) => Err("--sqlite needs the crate's `sqlite` feature (on by default)".into()),
        None => Ok(Box::new(MemoryStore::new())),
    }
}

/// Expires quotes that ran out and issues new ones, every second. The page polls its
/// status, so it shows the new quote (QR code, sats, countdown) without a reload.
async fn sweep_forever(app: Shared) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let app = Arc::clone(&app);
        match tokio::task::spawn_blocking(move || app.checkout.sweep(SWEEP_LIMIT)).await {
            Ok(Ok(report)) => {
                for (id, e) in report.failed {
                    eprintln!("sweep: could not expire what ran out on {id}: {e}");
                }
            }
            Ok(Err(e)) => eprintln!("sweep failed: {e}"),
            Err(e) => eprintln!("sweep task panicked: {e}"),
        }
    }
}

/// Runs a call to the (synchronous) checkout service on the blocking pool: with
/// `--sqlite` it does file I/O, which must not stall the async workers.
async fn blocking<T: Send + 'static>(
    app: &Shared,
    call: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, Failure> {
    let app = Arc::clone(app);
    tokio::task::spawn_blocking(move || call(&app.checkout))
        .await
        .map_err(|e| Failure::Internal(e.to_string()))?
        .map_err(Failure::from)
}

/// What a handler can fail with, as an HTTP response.
enum Failure {
    NotFound,
    BadRequest(String),
    Conflict(String),
    Internal(String),
}

/// What the core refused (here: the shop's own fixed inputs, or an id from the URL).
impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidId { .. } => Self::NotFound,
            Error::InvalidTransition { .. } => Self::Conflict(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// What the service failed with: unknown sessions and bad idempotency keys are the
/// request's fault, the core's refusals as above, the rest (store, rates) internal.
impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Core(e) => e.into(),
            ServiceError::UnknownSession(_) => Self::NotFound,
            ServiceError::InvalidIdempotencyKey | ServiceError::IdempotencyConflict => {
                Self::BadRequest(e.to_string())
            }
            // A double-clicked Buy button still being created: the retry will replay it.
            ServiceError::IdempotencyKeyInUse => Self::Conflict(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
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
async fn shop(State(app): State<Shared>) -> Result<Html<String>, Failure> {
    let order = format!(
        "order-{}-{}",
        app.run,
        app.next_order.fetch_add(1, Ordering::Relaxed)
    );
    let price = page::money(Decimal::new(PRICE_CENTS, 2), Currency::from_code("USD")?);
    Ok(Html(page::shop(&order, &price)))
}

/// `GET /logo.svg`: served here because `title_image` must be an http(s) URL.
async fn logo() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        page::LOGO_SVG,
    )
}

#[derive(Deserialize)]
struct BuyForm {
    order: String,
}

/// `POST /checkout`: creates the session and sends the customer to its payment page.
async fn create_checkout(
    State(app): State<Shared>,
    Form(form): Form<BuyForm>,
) -> Result<Redirect, Failure> {
    let usd = Currency::from_code("USD")?;
    let mut params = SessionParams::new(Decimal::new(PRICE_CENTS, 2), usd)
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
        .description(format!("Satoshi's Coffee, {}", form.order))
        .branding(Branding {
            title: Some("Satoshi's Coffee".to_owned()),
            title_description: Some("1 kg of single-origin beans, roasted to order".to_owned()),
            title_image: Some(format!("{}/logo.svg", app.base_url)),
        })
        .success_message("Thank you! Your beans are on their way.");
    if let Some(secs) = app.ttl {
        params = params.ttl_secs(secs);
    }
    let session = blocking(&app, move |c| c.create(params, Some(&form.order))).await?;
    // `Redirect::to` is 303 See Other: the browser follows with a GET.
    Ok(Redirect::to(&format!("/pay/{}", session.id())))
}

/// The session as its customer should see it: `Checkout::get` expires what ran out and
/// issues a new quote if the session needs one (quotes on demand). If none can be made
/// (no rate), the page says "getting a new quote" and the next load tries again.
async fn current(app: &Shared, id: &str) -> Result<CheckoutSession, Failure> {
    let id: SessionId = id.parse().map_err(|_| Failure::NotFound)?;
    blocking(app, move |c| c.get(id)).await
}

/// `GET /pay/{id}`: the hosted payment page.
async fn pay_page(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Html<String>, Failure> {
    let session = current(&app, &id).await?;
    let view = StatusView::new(&session, None).map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(Html(page::pay(&session, &view, app.simulate)))
}

#[derive(Deserialize)]
struct StatusQuery {
    /// The quote the page already shows: its QR code is not sent again.
    have: Option<String>,
}

/// `GET /pay/{id}/status`: what the page needs to update itself.
async fn status(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<Response, Failure> {
    let session = current(&app, &id).await?;
    let view = StatusView::new(&session, query.have.as_deref())
        .map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(no_store(Json(view).into_response()))
}

#[derive(Deserialize)]
struct SimulateForm {
    /// `half` of the open quote, or `rest`: all of it.
    part: String,
}

/// `POST /pay/{id}/simulate` (routed only with `--simulate`): pays part of the open quote
/// as if the invoice had been paid over Lightning, and answers with the new status (JSON
/// for the page's script, a redirect back for a plain form post).
async fn simulate(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SimulateForm>,
) -> Result<Response, Failure> {
    let session = current(&app, &id).await?;
    let quote = session.open_payment().ok_or_else(|| {
        Failure::Conflict(format!(
            "no open quote: the session is {}",
            session.status().as_str()
        ))
    })?;
    let full = quote.target_msats().get();
    let msats = match form.part.as_str() {
        "half" => full / 2,
        "rest" => full,
        other => {
            return Err(Failure::BadRequest(format!(
                "part must be half or rest, not {other}"
            )));
        }
    };
    // The payment hash the test generator gave this quote's (unpayable) invoice.
    let report = TransferReport::lightning(
        TestRequestGenerator::payment_hash(quote.id()),
        Msats::new(msats),
    );
    let session = blocking(&app, move |c| c.record_transfer(report)).await?;

    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if !wants_json {
        return Ok(Redirect::to(&format!("/pay/{}", session.id())).into_response());
    }
    let view = StatusView::new(&session, None).map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(no_store(Json(view).into_response()))
}

/// Status answers change every second: no cache may keep them.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
