//! The page router over real loopback HTTP (axum on a tokio runtime, `ureq` as the
//! client), and its pure parts.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::view::QrCache;
use super::*;
use crate::id::PaymentId;
use crate::money::{Currency, Msats, TargetCurrency};
use crate::rates::FixedRates;
use crate::request::TestRequestGenerator;
use crate::service::{Checkout, DynCheckout};
use crate::session::{Branding, CheckoutSession, SessionParams};
use crate::store::MemoryStore;
use crate::transfer::TransferReport;

type TestCheckout = DynCheckout<MemoryStore>;

/// A page router serving on 127.0.0.1, with the service behind it.
struct Server {
    base: String,
    checkout: Arc<TestCheckout>,
    // Dropped last: the server's tasks end with it.
    _rt: tokio::runtime::Runtime,
}

fn serve(dev_controls: bool) -> Server {
    let usd = Currency::from_code("USD").unwrap();
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let checkout = Arc::new(Checkout::boxed(
        MemoryStore::new(),
        rates,
        TestRequestGenerator,
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = HttpConfig::new(&base).unwrap();
    let mut page = PageRouter::new(Arc::clone(&checkout), config);
    if dev_controls {
        page = page.with_dev_controls("simulate");
    }
    let router = page.router();
    rt.spawn(async move { axum::serve(listener, router).await });
    Server {
        base,
        checkout,
        _rt: rt,
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent()
}

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: String,
}

fn get(url: &str) -> Answer {
    let mut response = agent().get(url).call().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.body_mut().read_to_string().unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn session(server: &Server, params: SessionParams) -> CheckoutSession {
    server.checkout.create(params, None).unwrap()
}

fn usd(amount: i64) -> SessionParams {
    SessionParams::new(Decimal::new(amount, 2), Currency::from_code("USD").unwrap())
}

/// Pays `msats` of the session's open quote, as its Lightning invoice.
fn pay(server: &Server, s: &CheckoutSession, msats: u64) -> CheckoutSession {
    let quote = server.checkout.get(s.id()).unwrap();
    let quote = quote.open_payment().unwrap();
    let report = TransferReport::lightning(
        TestRequestGenerator::payment_hash(quote.id()),
        Msats::new(msats),
    );
    server.checkout.record_transfer(report).unwrap()
}

#[test]
fn hostile_text_is_escaped() {
    let server = serve(false);
    let s = session(
        &server,
        usd(2500)
            .branding(Branding {
                title: Some("<script>alert(1)</script>".to_owned()),
                title_description: Some("\"><img src=x onerror=alert(2)>".to_owned()),
                title_image: Some("https://shop.example/logo.png?a=1&b=\"2\"".to_owned()),
            })
            .cancel_url("https://shop.example/cancel?order=42&x=1"),
    );
    let answer = get(&format!("{}/pay/{}", server.base, s.id()));
    assert_eq!(answer.status, 200);
    let body = &answer.body;
    assert!(!body.contains("<script>alert(1)"), "{body}");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!body.contains("<img src=x"));
    assert!(body.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
    // One script: the page's own.
    assert_eq!(body.matches("<script").count(), 1);
    // URLs as given, escaped as attributes (the browser reads back `&`).
    assert!(body.contains(r#"href="https://shop.example/cancel?order=42&amp;x=1""#));
    assert!(body.contains("Cancel and return to the shop"));
    assert!(header(&answer, "content-type").starts_with("text/html"));
    assert_eq!(header(&answer, "cache-control"), "no-store");
}

#[test]
fn the_page_shows_amounts_qr_and_countdown_under_its_csp() {
    let server = serve(false);
    let s = session(
        &server,
        usd(2500).branding(Branding {
            title: Some("Satoshi's Coffee".to_owned()),
            title_description: Some("Beans".to_owned()),
            title_image: None,
        }),
    );
    // Speed's clients append their own query.
    let answer = get(&format!(
        "{}/pay/{}?source_type=magento2&x=%ZZ",
        server.base,
        s.id()
    ));
    assert_eq!(answer.status, 200);
    let body = &answer.body;
    assert!(body.contains("Satoshi&#39;s Coffee") || body.contains("Satoshi's Coffee"));
    assert!(body.contains("$25.00"));
    assert!(body.contains("25,000 sats"));
    assert!(body.contains("<svg"), "no inline QR code");
    assert!(body.contains(r#"name="viewport""#));
    assert!(body.contains(r#"data-status-url=""#));
    assert!(body.contains(&format!(r#"data-events-url="{}/events""#, s.id())));
    assert!(body.contains("10:00") || body.contains("09:5"), "countdown");
    assert!(!body.contains("simulate-half") && !body.contains("Pay half"));

    // The CSP allows exactly the page's own script and style.
    let csp = header(&answer, "content-security-policy");
    for (open, close) in [("<script>", "</script>"), ("<style>", "</style>")] {
        let start = body.find(open).unwrap() + open.len();
        let len = body[start..].find(close).unwrap();
        let hash = STANDARD.encode(Sha256::digest(&body.as_bytes()[start..start + len]));
        assert!(
            csp.contains(&format!("'sha256-{hash}'")),
            "{open} not in {csp}"
        );
    }
    assert!(csp.contains("default-src 'none'"));
    assert!(csp.contains("connect-src 'self'"));
}

#[test]
fn dev_controls_only_when_asked() {
    let server = serve(true);
    let s = session(&server, usd(100));
    let body = get(&format!("{}/pay/{}", server.base, s.id())).body;
    assert!(body.contains(&format!(r#"action="{}/simulate""#, s.id())));
    assert!(body.contains("simulate-half") && body.contains("simulate-rest"));
}

#[test]
fn unknown_and_malformed_ids_are_404() {
    let server = serve(false);
    for id in [
        SessionId::generate().to_string(),
        "cs_nope".to_owned(),
        "%3Cscript%3E".to_owned(),
    ] {
        let page = get(&format!("{}/pay/{id}", server.base));
        assert_eq!(page.status, 404, "{id}");
        assert!(header(&page, "content-type").starts_with("text/html"));
        assert!(page.body.contains("Checkout not found"));
        assert!(!page.body.contains("<script"));
        for tail in ["status", "events"] {
            let json = get(&format!("{}/pay/{id}/{tail}", server.base));
            assert_eq!(json.status, 404, "{id}/{tail}");
            let v: Value = serde_json::from_str(&json.body).unwrap();
            assert_eq!(v["error"], "not_found");
        }
    }
}

#[test]
fn links_open_to_their_session_page_with_the_query_kept() {
    let server = serve(false);
    let plink = server.checkout.create_payment_link(usd(100), None).unwrap();
    let clink = server
        .checkout
        .create_checkout_link(usd(100), None)
        .unwrap();
    let open = |id: &str| {
        let answer = get(&format!(
            "{}/pay/{id}?source_type=magento2&x=1",
            server.base
        ));
        assert_eq!(answer.status, 303, "{id}");
        let location = header(&answer, "location").to_owned();
        let (session, query) = location.split_once('?').unwrap();
        assert_eq!(query, "source_type=magento2&x=1");
        session.parse::<SessionId>().unwrap()
    };
    // A payment link: a new session per open; a checkout link: always its one session.
    let (first, second) = (open(&plink.id().to_string()), open(&plink.id().to_string()));
    assert_ne!(first, second);
    let one = open(&clink.id().to_string());
    assert_eq!(open(&clink.id().to_string()), one);
    // The relative location resolves to the session's page, which serves it.
    let page = get(&format!("{}/pay/{one}?source_type=magento2", server.base));
    assert_eq!(page.status, 200);
    // An inactive link says so (410), and opens nothing more.
    server.checkout.deactivate_link(plink.id()).unwrap();
    let before = server.checkout.get_link(plink.id()).unwrap();
    let gone = get(&format!("{}/pay/{}", server.base, plink.id()));
    assert_eq!(gone.status, 410);
    assert!(gone.body.contains("Link no longer active"));
    assert_eq!(server.checkout.get_link(plink.id()).unwrap(), before);
    let unknown = format!(
        "{}/pay/{}",
        server.base,
        LinkId::Payment(crate::id::PaymentLinkId::generate())
    );
    assert_eq!(get(&unknown).status, 404);
}

#[test]
fn status_json_shape_and_have() {
    let server = serve(false);
    let s = session(
        &server,
        usd(2500).success_url("https://shop.example/ok?order=7"),
    );
    let url = format!("{}/pay/{}/status", server.base, s.id());
    let answer = get(&format!("{url}?source_type=magento2"));
    assert_eq!(answer.status, 200);
    assert_eq!(header(&answer, "cache-control"), "no-store");
    let v: Value = serde_json::from_str(&answer.body).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amount",
            "amount_display",
            "amount_due",
            "amount_due_display",
            "amount_paid",
            "amount_paid_display",
            "partially_paid",
            "quote",
            "status",
            "status_text",
            "success_message",
            "success_url"
        ]
    );
    assert_eq!(v["status"], "active");
    assert_eq!(v["amount"], "25.00");
    assert_eq!(v["amount_display"], "$25.00");
    assert_eq!(v["amount_due"], "25.00");
    assert_eq!(v["partially_paid"], false);
    assert_eq!(v["success_url"], "https://shop.example/ok?order=7");
    let q = &v["quote"];
    assert_eq!(q["sats"], 25_000);
    assert_eq!(q["sats_display"], "25,000 sats");
    assert!(q["uri"].as_str().unwrap().starts_with("bitcoin:"));
    assert!(q["qr_svg"].as_str().unwrap().starts_with("<svg"));
    let left = q["expires_in_ms"].as_i64().unwrap();
    assert!((590_000..=600_000).contains(&left), "{left}");
    assert!(q["expires_at"].as_str().unwrap().ends_with('Z'));

    // The page already shows this quote: no QR code again. Repeated and malformed
    // parameters are tolerated (the first `have` counts).
    let id = q["id"].as_str().unwrap();
    let again = get(&format!("{url}?have={id}&have=other&bad=%ZZ&source_type=x"));
    assert_eq!(again.status, 200);
    let v: Value = serde_json::from_str(&again.body).unwrap();
    assert_eq!(v["quote"]["id"], id);
    assert!(v["quote"].get("qr_svg").is_none());
    let other = get(&format!("{url}?have=pay_other"));
    let v: Value = serde_json::from_str(&other.body).unwrap();
    assert!(v["quote"]["qr_svg"].is_string());
}

#[test]
fn partial_then_full_payment_and_the_exact_success_redirect() {
    let server = serve(false);
    let success = "https://shop.example/thanks?order=42&note=a%20b";
    let s = session(&server, usd(2500).success_url(success));
    let url = format!("{}/pay/{}/status", server.base, s.id());
    pay(&server, &s, 12_500_000);
    let v: Value = serde_json::from_str(&get(&url).body).unwrap();
    assert_eq!(v["partially_paid"], true);
    assert_eq!(v["amount_paid_display"], "$12.50");
    assert_eq!(v["amount_due"], "12.50");
    assert_eq!(v["quote"]["sats"], 12_500);
    let page = get(&format!("{}/pay/{}", server.base, s.id())).body;
    assert!(page.contains("Paid so far") && page.contains("$12.50"));

    pay(&server, &s, 12_500_000);
    let v: Value = serde_json::from_str(&get(&url).body).unwrap();
    assert_eq!(v["status"], "paid");
    assert!(v["quote"].is_null());
    let page = get(&format!(
        "{}/pay/{}?source_type=magento2",
        server.base,
        s.id()
    ));
    assert_eq!(page.status, 303);
    assert_eq!(header(&page, "location"), success);
}

#[test]
fn a_paid_page_without_success_url_shows_the_message() {
    let server = serve(false);
    let s = session(&server, usd(100).success_message("<b>Thanks</b> & bye"));
    pay(&server, &s, 1_000_000);
    let page = get(&format!("{}/pay/{}", server.base, s.id()));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("&lt;b&gt;Thanks&lt;/b&gt; &amp; bye"));
    assert!(page.body.contains(r#"data-status="paid""#));
}

/// Reads server-sent events until one named `status`; returns its data as JSON.
fn next_status(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Value {
    let mut name = String::new();
    let mut data = String::new();
    for line in lines {
        let line = line.unwrap();
        if line.is_empty() {
            if name == "status" && !data.is_empty() {
                return serde_json::from_str(&data).unwrap();
            }
            name.clear();
            data.clear();
        } else if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_owned();
        } else if let Some(d) = line.strip_prefix("data: ") {
            data.push_str(d);
        }
    }
    panic!("the stream ended without a status event");
}

#[test]
fn events_stream_the_status_as_it_changes() {
    let server = serve(false);
    let s = session(&server, usd(2500));
    let first_quote = server.checkout.get(s.id()).unwrap();
    let first_quote = first_quote.open_payment().unwrap().id().to_string();
    let mut response = agent()
        .get(&format!(
            "{}/pay/{}/events?have={first_quote}&source_type=magento2",
            server.base,
            s.id()
        ))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/event-stream"));
    assert_eq!(response.headers()["cache-control"], "no-store");
    let mut lines = BufReader::new(response.body_mut().as_reader()).lines();

    // At once: the current view, without the QR code the page has.
    let first = next_status(&mut lines);
    assert_eq!(first["status"], "active");
    assert_eq!(first["quote"]["id"], first_quote.as_str());
    assert!(first["quote"].get("qr_svg").is_none());

    // A partial payment (committed by "another server": straight into the service)
    // reaches the stream through the outbox, with the new quote's QR code.
    pay(&server, &s, 12_500_000);
    let partial = next_status(&mut lines);
    assert_eq!(partial["partially_paid"], true);
    assert_eq!(partial["amount_due"], "12.50");
    assert_ne!(partial["quote"]["id"], first_quote.as_str());
    assert!(
        partial["quote"]["qr_svg"]
            .as_str()
            .unwrap()
            .starts_with("<svg")
    );

    pay(&server, &s, 12_500_000);
    let paid = next_status(&mut lines);
    assert_eq!(paid["status"], "paid");
    // A final status ends the stream.
    assert!(lines.all(|l| l.is_ok_and(|l| !l.starts_with("event: status"))));
}

#[test]
fn qr_cache_serves_each_quote_its_own_code() {
    let cache = QrCache::new(2);
    let (a, b, c) = (
        PaymentId::generate(),
        PaymentId::generate(),
        PaymentId::generate(),
    );
    let svg_a = cache.svg(a, "bitcoin:BCRT1QA?amount=1").unwrap();
    assert_eq!(cache.stats(), (0, 1));
    let again = cache.svg(a, "bitcoin:BCRT1QA?amount=1").unwrap();
    assert!(Arc::ptr_eq(&svg_a, &again), "a hit is the same drawing");
    assert_eq!(cache.stats(), (1, 1));
    // Another quote, even with the same URI, is its own entry.
    let svg_b = cache.svg(b, "bitcoin:BCRT1QB?amount=2").unwrap();
    assert_ne!(svg_a, svg_b);
    assert_eq!(cache.stats(), (1, 2));
    // A quote asked for with another URI than it was drawn from is drawn afresh.
    let redrawn = cache.svg(a, "bitcoin:BCRT1QZ?amount=9").unwrap();
    assert_ne!(redrawn, svg_a);
    assert_eq!(
        redrawn,
        crate::qr::render_svg("bitcoin:BCRT1QZ?amount=9")
            .unwrap()
            .into()
    );
    assert_eq!(cache.stats(), (1, 3));
    // Bounded: a third quote evicts the oldest.
    cache.svg(c, "bitcoin:BCRT1QC?amount=3").unwrap();
    assert_eq!(cache.len(), 2);
}

#[test]
fn formatting() {
    let usd = Currency::from_code("USD").unwrap();
    let jpy = Currency::from_code("JPY").unwrap();
    assert_eq!(
        view::money(Decimal::new(123_456_789, 2), usd),
        "$1,234,567.89"
    );
    assert_eq!(view::money(Decimal::from(1500), jpy), "1,500 JPY");
    assert_eq!(view::countdown(600_000), "10:00");
    assert_eq!(view::countdown(3_723_000), "1:02:03");
    assert_eq!(view::countdown(-5), "00:00");
    assert_eq!(
        query_have(Some("have=pay_1&have=pay_2")),
        Some("pay_1".to_owned())
    );
    assert_eq!(query_have(Some("have=&x=%ZZ")), None);
    assert_eq!(query_have(None), None);
}
