//! Live rates against each provider's response format, served by a local HTTP server:
//! exact prices, timeouts, 5xx, 429, malformed bodies, unknown pairs, staleness, the
//! median with its outlier guard, and a quote that records where its rate came from.
#![cfg(feature = "rates-live")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use bitcoin_checkout::rates::live::{FeedError, HttpTicker, RefreshingRates, Ticker};
use bitcoin_checkout::rates::{MedianRates, RateError, RateSource};
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::{Checkout, Decimal, SessionParams, TargetCurrency};
use proptest::prelude::*;
use time::Duration;

use crate::common::{t0, usd};

/// What the server answers on a path.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: StdDuration,
}

fn ok(body: &str) -> Reply {
    Reply {
        status: 200,
        body: body.to_owned(),
        delay: StdDuration::ZERO,
    }
}

/// A tiny HTTP/1.1 server on loopback answering each path with its reply (404 else).
struct Server {
    url: String,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let shared = Arc::clone(&replies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let replies = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    let _ = reader.read_line(&mut request_line);
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("/")
                        .to_owned();
                    let reply = replies
                        .lock()
                        .unwrap()
                        .get(&path)
                        .cloned()
                        .unwrap_or(Reply {
                            status: 404,
                            body: "not found".into(),
                            delay: StdDuration::ZERO,
                        });
                    std::thread::sleep(reply.delay);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                        reply.status,
                        reply.body.len(),
                        reply.body
                    );
                });
            }
        });
        Self { url, replies }
    }

    /// Answers `ticker`'s USD path with `reply`.
    fn set(&self, ticker: Ticker, reply: Reply) {
        let full = ticker.url(&self.url, "USD");
        let path = full.trim_start_matches(&self.url).to_owned();
        self.replies.lock().unwrap().insert(path, reply);
    }

    fn ticker(&self, ticker: Ticker) -> HttpTicker {
        HttpTicker::at(ticker, &self.url, StdDuration::from_millis(500))
    }
}

/// Each provider's response format, as the public APIs answer (trimmed to what matters).
fn sample(ticker: Ticker, price: &str) -> String {
    match ticker {
        Ticker::Coinbase => {
            format!(r#"{{"data":{{"amount":"{price}","base":"BTC","currency":"USD"}}}}"#)
        }
        Ticker::Kraken => format!(
            r#"{{"error":[],"result":{{"XXBTZUSD":{{"a":["{price}","1","1.000"],"b":["{price}","2","2.000"],"c":["{price}","0.00050000"],"v":["1","2"],"p":["{price}","{price}"],"t":[10,20],"l":["1","1"],"h":["1","1"],"o":"{price}"}}}}}}"#
        ),
        Ticker::Bitstamp => format!(
            r#"{{"timestamp":"1764720000","open":"96000","high":"98000","low":"95000","last":"{price}","volume":"1234.5","vwap":"97000","bid":"{price}","ask":"{price}","side":"0","open_24":"96500","percent_change_24":"0.61"}}"#
        ),
        _ => format!(r#"{{"bitcoin":{{"usd":{price}}}}}"#),
    }
}

const TICKERS: [Ticker; 4] = [
    Ticker::Coinbase,
    Ticker::Kraken,
    Ticker::Bitstamp,
    Ticker::CoinGecko,
];

#[test]
fn every_provider_format_parses_exactly() {
    let server = Server::start();
    for ticker in TICKERS {
        // More digits than an f64 keeps: the price must come back exactly.
        server.set(ticker, ok(&sample(ticker, "97123.123456789012345")));
        let price = server.ticker(ticker).fetch("USD").unwrap();
        assert_eq!(
            price,
            Decimal::from_str_exact("97123.123456789012345").unwrap(),
            "{ticker:?}"
        );
    }
}

#[test]
fn a_number_in_exponent_form_is_read_exactly() {
    let body = r#"{"bitcoin":{"usd":9.7123e4}}"#;
    assert_eq!(
        Ticker::CoinGecko.parse(body, "USD").unwrap(),
        Decimal::from(97_123)
    );
}

/// What a failure must be.
type Expect = fn(&FeedError) -> bool;

#[test]
fn failures_are_typed() {
    let server = Server::start();
    let cases: Vec<(Ticker, Reply, Expect)> = vec![
        (
            Ticker::Coinbase,
            Reply {
                status: 503,
                body: "busy".into(),
                delay: StdDuration::ZERO,
            },
            |e| *e == FeedError::Status(503),
        ),
        (
            Ticker::Kraken,
            Reply {
                status: 429,
                body: "slow down".into(),
                delay: StdDuration::ZERO,
            },
            |e| *e == FeedError::RateLimited,
        ),
        (Ticker::Bitstamp, ok("<html>maintenance</html>"), |e| {
            matches!(e, FeedError::Malformed(_))
        }),
        (
            Ticker::CoinGecko,
            Reply {
                status: 200,
                body: sample(Ticker::CoinGecko, "1"),
                delay: StdDuration::from_secs(2),
            },
            |e| *e == FeedError::Timeout,
        ),
    ];
    for (ticker, reply, expected) in cases {
        server.set(ticker, reply);
        let err = server.ticker(ticker).fetch("USD").unwrap_err();
        assert!(expected(&err), "{ticker:?}: {err:?}");
        assert!(
            err.is_retryable() || matches!(err, FeedError::Malformed(_)),
            "{err:?}"
        );
    }
}

#[test]
fn bad_prices_and_unknown_pairs_are_refused() {
    for (ticker, body) in [
        (Ticker::Coinbase, sample(Ticker::Coinbase, "0")),
        (Ticker::Bitstamp, sample(Ticker::Bitstamp, "-5")),
        (Ticker::Coinbase, sample(Ticker::Coinbase, "abc")),
        (Ticker::Bitstamp, r#"{"last":true}"#.to_owned()),
        (Ticker::Kraken, r#"{"error":[],"result":{}}"#.to_owned()),
        (
            Ticker::Coinbase,
            r#"{"data":{"amount":"97000","currency":"EUR"}}"#.to_owned(),
        ),
        (Ticker::CoinGecko, r#"[1,2]"#.to_owned()),
    ] {
        let err = ticker.parse(&body, "USD").unwrap_err();
        assert!(
            matches!(err, FeedError::Malformed(_)),
            "{ticker:?} {body}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
    let kraken = r#"{"error":["EQuery:Unknown asset pair"]}"#;
    assert!(matches!(
        Ticker::Kraken.parse(kraken, "XTS"),
        Err(FeedError::UnknownPair(_))
    ));
    let gecko = r#"{"bitcoin":{"eur":90000}}"#;
    assert!(matches!(
        Ticker::CoinGecko.parse(gecko, "USD"),
        Err(FeedError::UnknownPair(_))
    ));
}

#[test]
fn refreshed_prices_become_rates_until_they_are_stale() {
    let server = Server::start();
    server.set(Ticker::Coinbase, ok(&sample(Ticker::Coinbase, "100000")));
    let rates = RefreshingRates::new(
        server.ticker(Ticker::Coinbase),
        [usd()],
        Duration::minutes(5),
    );
    assert!(matches!(
        rates.rate(usd(), TargetCurrency::Sats, t0()),
        Err(RateError::Unavailable { .. })
    ));

    let fetched = rates.refresh(t0());
    assert_eq!(fetched, vec![(usd(), Ok(Decimal::from(100_000)))]);
    let rate = rates
        .rate(usd(), TargetCurrency::Sats, t0() + Duration::minutes(4))
        .unwrap();
    assert_eq!(rate.rate(), Decimal::from(1_000), "10^8 sats / 100,000 USD");
    assert_eq!((rate.source(), rate.fetched_at()), ("coinbase", t0()));
    let btc = rates.rate(usd(), TargetCurrency::Btc, t0()).unwrap();
    assert_eq!(btc.rate(), Decimal::new(1, 5));

    // The ticker fails: the old price stays, ages, and turns stale; health says why.
    server.set(
        Ticker::Coinbase,
        Reply {
            status: 502,
            body: String::new(),
            delay: StdDuration::ZERO,
        },
    );
    rates.refresh(t0() + Duration::minutes(1));
    assert_eq!(rates.health()[0].last_error, Some(FeedError::Status(502)));
    assert_eq!(
        rates.health()[0].last_price,
        Some((Decimal::from(100_000), t0()))
    );
    let stale = rates
        .rate(usd(), TargetCurrency::Sats, t0() + Duration::minutes(6))
        .unwrap_err();
    assert!(
        matches!(
            stale,
            RateError::Stale {
                age_secs: 360,
                limit_secs: 300,
                ..
            }
        ),
        "{stale:?}"
    );
    assert!(stale.is_retryable());
}

#[test]
fn a_background_refresh_keeps_rates_current_and_stops() {
    let server = Server::start();
    server.set(Ticker::Kraken, ok(&sample(Ticker::Kraken, "95000.5")));
    let rates = Arc::new(RefreshingRates::new(
        server.ticker(Ticker::Kraken),
        [usd()],
        Duration::minutes(5),
    ));
    let handle = rates.spawn(StdDuration::from_millis(20));
    let mut waited = 0;
    while rates.health()[0].last_price.is_none() && waited < 200 {
        std::thread::sleep(StdDuration::from_millis(10));
        waited += 1;
    }
    handle.stop();
    let (price, _) = rates.health()[0].last_price.expect("a price within 2 s");
    assert_eq!(price, Decimal::from_str_exact("95000.5").unwrap());
}

/// Three tickers on the server at the given USD prices, refreshed at t0, under a median
/// with a 2 % guard.
fn median_of(prices: [&str; 3]) -> MedianRates {
    let server = Server::start();
    let tickers = [Ticker::Coinbase, Ticker::Kraken, Ticker::Bitstamp];
    let mut median = MedianRates::new(Decimal::from(2));
    for (ticker, price) in tickers.into_iter().zip(prices) {
        server.set(ticker, ok(&sample(ticker, price)));
        let feed = RefreshingRates::new(server.ticker(ticker), [usd()], Duration::minutes(5));
        feed.refresh(t0());
        median = median.with(feed);
    }
    median
}

#[test]
fn the_median_leaves_out_a_price_far_from_the_others() {
    let median = median_of(["100000", "100000", "160000"]);
    let rate = median.rate(usd(), TargetCurrency::Sats, t0()).unwrap();
    assert_eq!(rate.rate(), Decimal::from(1_000));
    assert_eq!(rate.source(), "median(coinbase,kraken)");
}

#[test]
fn no_majority_is_a_typed_error() {
    let median = median_of(["100000", "130000", "160000"]);
    let err = median.rate(usd(), TargetCurrency::Sats, t0()).unwrap_err();
    assert_eq!(
        err,
        RateError::Disagreement {
            base: "USD",
            target: "SATS",
            sources: 3,
            agreeing: 1,
            needed: 2
        }
    );
}

#[test]
fn a_quote_records_the_rate_and_its_sources() {
    let median = median_of(["100000", "100400", "99800"]);
    let checkout = Checkout::new(MemoryStore::new(), median, TestRequestGenerator)
        .with_clock(bitcoin_checkout::clock::ManualClock::new(t0()));
    let session = checkout
        .create(SessionParams::new(Decimal::from(25), usd()), None)
        .unwrap();
    let rate = session.current_payment().expect("a quote").rate().clone();
    assert_eq!(rate.source(), "median(coinbase,kraken,bitstamp)");
    // The median of 1000, 996.01… and 1002.00…: the middle one.
    assert_eq!(rate.rate(), Decimal::from(1_000));
    assert_eq!(rate.fetched_at(), t0());
}

/// A source answering a fixed rate, or nothing.
struct Answer(Option<Decimal>);

impl RateSource for Answer {
    fn rate(
        &self,
        base: bitcoin_checkout::Currency,
        target: TargetCurrency,
        now: time::OffsetDateTime,
    ) -> Result<bitcoin_checkout::ExchangeRate, RateError> {
        match self.0 {
            Some(r) => Ok(bitcoin_checkout::ExchangeRate::new(
                base, target, r, "answer", now,
            )?),
            None => Err(RateError::Unavailable {
                base: base.code(),
                target: target.code(),
            }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the sources answer, a quote's rate comes from an agreeing majority (within
    /// the guard of their median, and between the agreeing answers) or the pair fails with
    /// a typed error.
    #[test]
    fn a_rate_comes_from_an_agreeing_majority(answers in proptest::collection::vec(proptest::option::of(900u32..1_100), 1..7)) {
        let mut median = MedianRates::new(Decimal::from(2));
        for a in &answers {
            median = median.with(Answer(a.map(Decimal::from)));
        }
        let given: Vec<Decimal> = answers.iter().flatten().map(|a| Decimal::from(*a)).collect();
        let needed = answers.len() / 2 + 1;
        match median.rate(usd(), TargetCurrency::Sats, t0()) {
            Ok(rate) => {
                let r = rate.rate();
                let close: Vec<&Decimal> = given
                    .iter()
                    .filter(|g| ((**g - r).abs() * Decimal::from(100)) <= r * Decimal::from(4))
                    .collect();
                prop_assert!(close.len() >= needed, "{r} from {given:?}");
                let (lo, hi) = (close.iter().min().unwrap(), close.iter().max().unwrap());
                prop_assert!(**lo <= r && r <= **hi);
            }
            Err(RateError::Disagreement { agreeing, needed: n, sources, .. }) => {
                prop_assert_eq!(sources, answers.len());
                prop_assert_eq!(n, needed);
                prop_assert!(agreeing < needed);
            }
            Err(other) => prop_assert!(false, "untyped failure {other:?}"),
        }
    }
}

#[test]
fn live_sources_pass_the_rate_suite() {
    use bitcoin_checkout::testkit::ports::{self, RateSubject};
    fn subject<R: RateSource>(source: R) -> RateSubject<R> {
        RateSubject::new(source, t0(), Duration::minutes(5))
            .knows(usd(), TargetCurrency::Sats, Decimal::from(1_000))
            .knows(usd(), TargetCurrency::Btc, Decimal::new(1, 5))
    }
    ports::run_rate_source(&subject(median_of(["100000", "100400", "99800"])));
    let server = Server::start();
    server.set(Ticker::Bitstamp, ok(&sample(Ticker::Bitstamp, "101000")));
    let single = RefreshingRates::new(
        server.ticker(Ticker::Bitstamp),
        [usd()],
        Duration::minutes(5),
    );
    single.refresh(t0());
    ports::run_rate_source(&subject(single));
}
