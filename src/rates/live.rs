//! Live exchange rates (feature `rates-live`): exchanges' public BTC tickers, fetched over
//! HTTPS in the background and served from a cache with a maximum age.
//!
//! * [`Ticker`] knows one provider's URL and response format and parses its price exactly
//!   (prices are read from the JSON text into a [`Decimal`], never through binary floating point);
//! * [`HttpTicker`] fetches it with a timeout and turns every failure into a typed
//!   [`FeedError`] (timeout, HTTP status, 429, malformed body, transport);
//! * [`RefreshingRates`] keeps the latest price per currency, refreshed by a background
//!   thread ([`RefreshingRates::spawn`]) or by hand ([`RefreshingRates::refresh`]), and
//!   answers [`RateSource::rate`] from it: a price older than the maximum age is
//!   [`RateError::Stale`], a currency never fetched [`RateError::Unavailable`]; never a
//!   default.
//!
//! Combine several with [`MedianRates`](super::MedianRates) (majority and outlier guard)
//! and [`FallbackRates`](super::FallbackRates):
//!
//! ```no_run
//! use std::sync::Arc;
//! use bitcoin_checkout::rates::live::{HttpTicker, RefreshingRates, Ticker};
//! use bitcoin_checkout::rates::MedianRates;
//! use bitcoin_checkout::{Currency, Decimal, Duration};
//!
//! let usd = Currency::from_code("USD")?;
//! let feeds: Vec<Arc<RefreshingRates>> = [Ticker::Coinbase, Ticker::Kraken, Ticker::Bitstamp]
//!     .into_iter()
//!     .map(|t| Arc::new(RefreshingRates::new(HttpTicker::new(t), [usd], Duration::minutes(5))))
//!     .collect();
//! // Each refreshes every 30 s until its handle is dropped.
//! let _running: Vec<_> = feeds.iter().map(|f| f.spawn(std::time::Duration::from_secs(30))).collect();
//! let rates = feeds.into_iter().fold(MedianRates::new(Decimal::from(2)), |m, f| m.with(f));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A price is fiat per bitcoin; the rate a quote needs is its inverse (sats or BTC per
//! unit of fiat), computed by decimal division to 28 significant digits, far below a
//! millisatoshi at any price.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;
use serde_json::value::RawValue;
use time::{Duration, OffsetDateTime};

use super::{RateError, RateSource};
use crate::money::{Currency, ExchangeRate, SATS_PER_BTC, TargetCurrency};

/// A public ticker whose response format the crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ticker {
    /// Coinbase spot price: `GET /v2/prices/BTC-USD/spot` → `{"data":{"amount":"…"}}`.
    Coinbase,
    /// Kraken: `GET /0/public/Ticker?pair=XBTUSD` → `{"error":[],"result":{"XXBTZUSD":{"c":["…",…]}}}`
    /// (the last trade price).
    Kraken,
    /// Bitstamp: `GET /api/v2/ticker/btcusd/` → `{"last":"…",…}`.
    Bitstamp,
    /// CoinGecko: `GET /api/v3/simple/price?ids=bitcoin&vs_currencies=usd` →
    /// `{"bitcoin":{"usd":…}}` (a JSON number, read from its text).
    CoinGecko,
}

impl Ticker {
    /// The provider's name, as it appears in a rate's source.
    pub fn name(self) -> &'static str {
        match self {
            Self::Coinbase => "coinbase",
            Self::Kraken => "kraken",
            Self::Bitstamp => "bitstamp",
            Self::CoinGecko => "coingecko",
        }
    }

    /// The provider's public API root.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::Coinbase => "https://api.coinbase.com",
            Self::Kraken => "https://api.kraken.com",
            Self::Bitstamp => "https://www.bitstamp.net",
            Self::CoinGecko => "https://api.coingecko.com",
        }
    }

    /// The ticker's URL under `base_url` for the BTC price in `fiat` (an ISO code).
    pub fn url(self, base_url: &str, fiat: &str) -> String {
        let root = base_url.trim_end_matches('/');
        match self {
            Self::Coinbase => format!("{root}/v2/prices/BTC-{}/spot", fiat.to_uppercase()),
            Self::Kraken => format!("{root}/0/public/Ticker?pair=XBT{}", fiat.to_uppercase()),
            Self::Bitstamp => format!("{root}/api/v2/ticker/btc{}/", fiat.to_lowercase()),
            Self::CoinGecko => format!(
                "{root}/api/v3/simple/price?ids=bitcoin&vs_currencies={}",
                fiat.to_lowercase()
            ),
        }
    }

    /// Reads the BTC price in `fiat` from a response body, exactly.
    pub fn parse(self, body: &str, fiat: &str) -> Result<Decimal, FeedError> {
        let malformed = |why: &str| FeedError::Malformed(format!("{}: {why}", self.name()));
        let doc: HashMap<String, Box<RawValue>> = serde_json::from_str(body)
            .map_err(|e| malformed(&format!("not a JSON object: {e}")))?;
        let field = |raw: Option<&Box<RawValue>>,
                     what: &str|
         -> Result<HashMap<String, Box<RawValue>>, FeedError> {
            let raw = raw.ok_or_else(|| malformed(&format!("no `{what}`")))?;
            serde_json::from_str(raw.get())
                .map_err(|_| malformed(&format!("`{what}` is not an object")))
        };
        let price = match self {
            Self::Coinbase => {
                let data = field(doc.get("data"), "data")?;
                let currency = data
                    .get("currency")
                    .map(|c| c.get().trim_matches('"').to_owned());
                if currency
                    .as_deref()
                    .is_some_and(|c| !c.eq_ignore_ascii_case(fiat))
                {
                    return Err(malformed(&format!("a price in {currency:?}, not {fiat}")));
                }
                data.get("amount")
                    .ok_or_else(|| malformed("no `data.amount`"))?
                    .get()
                    .to_owned()
            }
            Self::Kraken => {
                if let Some(errors) = doc.get("error") {
                    let list: Vec<String> = serde_json::from_str(errors.get()).unwrap_or_default();
                    if list.iter().any(|e| e.contains("Unknown asset pair")) {
                        return Err(FeedError::UnknownPair(format!(
                            "kraken: {}",
                            list.join("; ")
                        )));
                    }
                    if !list.is_empty() {
                        return Err(malformed(&list.join("; ")));
                    }
                }
                let result = field(doc.get("result"), "result")?;
                // One pair was asked; Kraken names it its own way (XXBTZUSD, XBTCHF, …).
                let (_, pair) = match result.iter().next() {
                    Some(entry) if result.len() == 1 => entry,
                    _ => return Err(malformed("`result` does not hold exactly one pair")),
                };
                let ticker: HashMap<String, Box<RawValue>> = serde_json::from_str(pair.get())
                    .map_err(|_| malformed("the pair's ticker is not an object"))?;
                let last: Vec<Box<RawValue>> = ticker
                    .get("c")
                    .and_then(|c| serde_json::from_str(c.get()).ok())
                    .unwrap_or_default();
                last.first()
                    .ok_or_else(|| malformed("no last trade price `c[0]`"))?
                    .get()
                    .to_owned()
            }
            Self::Bitstamp => doc
                .get("last")
                .ok_or_else(|| malformed("no `last`"))?
                .get()
                .to_owned(),
            Self::CoinGecko => {
                let bitcoin = field(doc.get("bitcoin"), "bitcoin")?;
                match bitcoin.get(&fiat.to_lowercase()) {
                    Some(p) => p.get().to_owned(),
                    None => {
                        return Err(FeedError::UnknownPair(format!(
                            "coingecko: no {fiat} price"
                        )));
                    }
                }
            }
        };
        exact_price(&price).map_err(|why| malformed(&why))
    }
}

/// A price from its JSON text (a string or a number), exactly; positive only.
fn exact_price(text: &str) -> Result<Decimal, String> {
    let inner = text.trim().trim_matches('"').trim();
    let value = if inner.contains(['e', 'E']) {
        Decimal::from_scientific(inner)
    } else {
        Decimal::from_str_exact(inner)
    }
    // `true`, `null`, objects and arrays are no decimal text: refused here.
    .map_err(|e| format!("price {text} is not an exact decimal: {e}"))?;
    if value <= Decimal::ZERO {
        return Err(format!("price {text} is not positive"));
    }
    Ok(value)
}

/// Why a ticker gave no price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// No answer within the timeout.
    #[error("the ticker did not answer in time")]
    Timeout,
    /// Asked too often (HTTP 429).
    #[error("the ticker refused: too many requests (429)")]
    RateLimited,
    /// Another HTTP status than 200.
    #[error("the ticker answered HTTP {0}")]
    Status(u16),
    /// The body is not the ticker's format (or not JSON, or no positive price).
    #[error("the ticker's answer is malformed: {0}")]
    Malformed(String),
    /// The ticker does not quote this currency.
    #[error("the ticker does not know the pair: {0}")]
    UnknownPair(String),
    /// The connection failed (DNS, refused, TLS, reset).
    #[error("the ticker could not be reached: {0}")]
    Transport(String),
}

impl FeedError {
    /// Whether a later fetch may succeed (everything but a format or pair the ticker does
    /// not have).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Malformed(_) | Self::UnknownPair(_))
    }
}

/// Fetches one [`Ticker`] over HTTP(S) with a timeout (5 s by default).
#[derive(Debug, Clone)]
pub struct HttpTicker {
    ticker: Ticker,
    base_url: String,
    agent: ureq::Agent,
}

impl HttpTicker {
    /// The ticker at its public URL.
    pub fn new(ticker: Ticker) -> Self {
        Self::at(
            ticker,
            ticker.default_base_url(),
            std::time::Duration::from_secs(5),
        )
    }

    /// The ticker's format served under `base_url` (a mirror, a proxy, a test server),
    /// each call limited to `timeout` in all.
    pub fn at(ticker: Ticker, base_url: &str, timeout: std::time::Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("bitcoin-checkout/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            ticker,
            base_url: base_url.to_owned(),
            agent,
        }
    }

    /// Which ticker this is.
    pub fn ticker(&self) -> Ticker {
        self.ticker
    }

    /// The BTC price in `fiat` now: one HTTP request, never retried here (the refreshing
    /// source asks again on its next round).
    pub fn fetch(&self, fiat: &str) -> Result<Decimal, FeedError> {
        let url = self.ticker.url(&self.base_url, fiat);
        let mut response = self.agent.get(&url).call().map_err(transport)?;
        match response.status().as_u16() {
            200 => {}
            429 => return Err(FeedError::RateLimited),
            code => return Err(FeedError::Status(code)),
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(transport)?;
        self.ticker.parse(&body, fiat)
    }
}

fn transport(e: ureq::Error) -> FeedError {
    match e {
        ureq::Error::Timeout(_) => FeedError::Timeout,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => FeedError::Timeout,
        other => FeedError::Transport(other.to_string()),
    }
}

/// The latest fetch of one currency.
#[derive(Debug, Clone)]
struct Latest {
    price: Option<(Decimal, OffsetDateTime)>,
    error: Option<FeedError>,
}

/// One ticker's prices for a set of fiat currencies, kept fresh, served as rates.
#[derive(Debug)]
pub struct RefreshingRates {
    feed: HttpTicker,
    currencies: Vec<Currency>,
    max_age: Duration,
    latest: Mutex<HashMap<Currency, Latest>>,
}

/// What a [`RefreshingRates`] last saw for a currency (for health checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedHealth {
    /// The currency.
    pub currency: Currency,
    /// The last price fetched and when, if any.
    pub last_price: Option<(Decimal, OffsetDateTime)>,
    /// The error of the last fetch, if it failed.
    pub last_error: Option<FeedError>,
}

impl RefreshingRates {
    /// Prices of `feed` for `currencies` (fiat), valid for `max_age` after each fetch.
    pub fn new(
        feed: HttpTicker,
        currencies: impl IntoIterator<Item = Currency>,
        max_age: Duration,
    ) -> Self {
        Self {
            feed,
            currencies: currencies.into_iter().filter(|c| c.is_fiat()).collect(),
            max_age,
            latest: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches every currency once, dating the prices `now`; returns what each fetch gave.
    /// A failed fetch keeps the previous price (which ages until it is stale).
    pub fn refresh(&self, now: OffsetDateTime) -> Vec<(Currency, Result<Decimal, FeedError>)> {
        let results: Vec<_> = self
            .currencies
            .iter()
            .map(|c| (*c, self.feed.fetch(c.code())))
            .collect();
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        for (currency, result) in &results {
            let entry = latest.entry(*currency).or_insert(Latest {
                price: None,
                error: None,
            });
            match result {
                Ok(price) => {
                    entry.price = Some((*price, now));
                    entry.error = None;
                }
                Err(e) => entry.error = Some(e.clone()),
            }
        }
        results
    }

    /// What the last fetch of each currency gave.
    pub fn health(&self) -> Vec<FeedHealth> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        self.currencies
            .iter()
            .map(|c| {
                let l = latest.get(c);
                FeedHealth {
                    currency: *c,
                    last_price: l.and_then(|l| l.price),
                    last_error: l.and_then(|l| l.error.clone()),
                }
            })
            .collect()
    }

    /// Refreshes now and then every `interval` on a background thread, with the system
    /// clock, until the returned handle is stopped or dropped.
    pub fn spawn(self: &Arc<Self>, interval: std::time::Duration) -> RefreshHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let (source, flag) = (Arc::clone(self), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Acquire) {
                source.refresh(OffsetDateTime::now_utc());
                // Sleep in short steps so a stop is quick.
                let mut slept = std::time::Duration::ZERO;
                while slept < interval && !flag.load(Ordering::Acquire) {
                    let step = (interval - slept).min(std::time::Duration::from_millis(50));
                    std::thread::sleep(step);
                    slept += step;
                }
            }
        });
        RefreshHandle {
            stop,
            thread: Some(thread),
        }
    }
}

impl RateSource for RefreshingRates {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        let unavailable = RateError::Unavailable {
            base: base.code(),
            target: target.code(),
        };
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let Some((price, fetched_at)) = latest.get(&base).and_then(|l| l.price) else {
            return Err(unavailable);
        };
        drop(latest);
        let age = now - fetched_at;
        if age > self.max_age {
            return Err(RateError::Stale {
                source_name: self.feed.ticker().name().to_owned(),
                age_secs: age.whole_seconds(),
                limit_secs: self.max_age.whole_seconds(),
            });
        }
        let per_fiat = match target {
            TargetCurrency::Sats => Decimal::from(SATS_PER_BTC).checked_div(price),
            TargetCurrency::Btc => Decimal::ONE.checked_div(price),
        }
        .ok_or(crate::error::Error::InvalidRate)?;
        Ok(ExchangeRate::new(
            base,
            target,
            per_fiat,
            self.feed.ticker().name(),
            fetched_at.min(now),
        )?)
    }
}

/// Stops a [`RefreshingRates::spawn`] thread when stopped or dropped.
#[derive(Debug)]
pub struct RefreshHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RefreshHandle {
    /// Stops refreshing and waits for a fetch in flight to finish.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RefreshHandle {
    fn drop(&mut self) {
        self.halt();
    }
}
