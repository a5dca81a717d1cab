//! The hosted payment page (the library's `http::page::PageRouter`, served by
//! `examples/checkout_page`) in a real browser: headless Chromium driven over W3C
//! WebDriver (chromedriver), with a tiny client over `ureq`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages `chromium` and
//! `chromium-driver`); when they are missing the tests FAIL and say to run
//! `scripts/browser-deps`. They never skip.
//!
//! The example is built with the features `http` and `runner` (its required features)
//! plus those of this test binary, whichever they are.
//!
//! Each test starts the example on a free port (`--port 0`, reading the address from its
//! first stdout line), a chromedriver on another free port, and one browser session. On a
//! failure the page's screenshot and source are saved as `target/browser-test/<test>.png`
//! and `.html`; passing runs leave screenshots of the unpaid, partly paid and paid page
//! there too. Servers, drivers and browsers are stopped when their guards drop.

// Tests assert by unwrapping, expecting and panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/webdriver.rs"]
mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use webdriver::{ChildGuard, Driver, Session};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The example's success message (it HTML-escapes it; the browser shows the text).
const SUCCESS_MESSAGE: &str = "Thank you! Your beans are on their way.";
/// Browser window: about a tablet's width, tall enough for the whole payment card.
const WINDOW: (u32, u32) = (800, 1200);
/// Longest wait for anything the page should do "within a few seconds".
const WAIT: Duration = Duration::from_secs(8);
/// Time for everything a test does in the browser (a passing run needs about 6 s).
const BUDGET: Duration = Duration::from_secs(45);

/// Fails the current check with a message.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

#[test]
fn pays_in_two_parts_without_a_reload() {
    drive(
        "pays_in_two_parts_without_a_reload",
        "pays_in_two_parts",
        &["--simulate"],
        pay_in_two_parts,
    );
}

/// Where the example sends the customer once paid, and its cancel link: paths on the
/// example itself, each with a query that must arrive intact.
const SUCCESS_PATH: &str = "/thanks?order=42&note=a%20b";
const CANCEL_PATH: &str = "/cancelled?order=42&reason=changed%20mind";

#[test]
fn success_and_cancel_keep_their_query() {
    drive(
        "success_and_cancel_keep_their_query",
        "redirects",
        &[
            "--simulate",
            "--success-url",
            SUCCESS_PATH,
            "--cancel-url",
            CANCEL_PATH,
        ],
        success_and_cancel,
    );
}

#[test]
fn no_simulate_controls_without_the_flag() {
    drive(
        "no_simulate_controls_without_the_flag",
        "no_simulate",
        &[],
        no_simulate_controls,
    );
}

/// What a test does in the browser, given the server's base URL and the output folder.
type Scenario = fn(&Session, &str, &Path) -> Result<(), String>;

/// Starts the example with `flags` and a browser (logs named after `log`), runs
/// `scenario`, and fails test `name` with a screenshot if it fails.
fn drive(name: &str, log: &str, flags: &[&str], scenario: Scenario) {
    let env = Env::get();
    // Timed from here: the example build above is cargo's business, not the browser's.
    let started = Instant::now();
    let server = Server::start(env, log, flags);
    let driver = Driver::start(
        Path::new(CHROMEDRIVER),
        &env.out.join(format!("{log}-chromedriver.log")),
        BUDGET,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let session = driver
        .session(Path::new(CHROMIUM), WINDOW)
        .unwrap_or_else(|e| panic!("{e}"));
    let result = scenario(&session, &server.base, &env.out);
    finish(&session, env, name, result);
    eprintln!("{name}: {:.1?}", started.elapsed());
}

/// Buy, pay half, pay the rest: the page follows each step by itself.
fn pay_in_two_parts(s: &Session, base: &str, out: &Path) -> Result<(), String> {
    // The shop, then the payment page of a new session.
    s.goto(&format!("{base}/"))?;
    ensure!(
        body_text(s)?.contains("Test mode: payment requests are not payable"),
        "the shop does not say it is in test mode"
    );
    save(out, "shop.png", &s.screenshot()?)?;
    s.click(&s.find("#buy")?)?;
    let pay_url = wait_for_pay_page(s, base)?;
    // As Speed's clients open it: with a query of their own, which the page ignores.
    let pay_url = format!("{pay_url}?source_type=magento2");
    s.goto(&pay_url)?;

    // Unpaid: branding, amounts, QR code of the URI, countdown.
    ensure!(
        text(s, "h1")? == "Satoshi's Coffee",
        "title: {:?}",
        text(s, "h1")?
    );
    let logo = s.execute(
        "const i = document.querySelector('.brand img'); return i ? i.complete && i.naturalWidth : 0;",
        &[],
    )?;
    ensure!(
        logo.as_u64().unwrap_or(0) > 0,
        "the title image did not load: {logo}"
    );
    wait_for("the QR code", WAIT, || qr_svg(s))?;
    let uri = uri_field(s)?;
    ensure!(
        uri.starts_with("bitcoin:BCRT1QTEST")
            && uri.contains("amount=0.00025&")
            && uri.contains("lightning=LNTEST25000000N1"),
        "unexpected URI for 25,000 sats: {uri}"
    );
    let decoded = decode_page_qr(s)?;
    ensure!(
        decoded == uri,
        "the QR code says {decoded:?}, the field {uri:?}"
    );
    let fiat = text(s, "#amount-fiat")?;
    ensure!(fiat.contains("25.00"), "#amount-fiat: {fiat:?}");
    let sats = text(s, "#amount-sats")?;
    ensure!(digits(&sats) == "25000", "#amount-sats: {sats:?}");
    let due = text(s, "#due")?;
    ensure!(due.contains("25.00"), "#due: {due:?}");
    ensure!(
        text(s, "#status")? == "Waiting for payment",
        "#status: {:?}",
        text(s, "#status")?
    );
    ensure!(
        !s.is_displayed(&s.find("#success")?)?,
        "#success is shown before any payment"
    );
    let first = countdown_secs(&text(s, "#countdown")?)?;
    ensure!(
        (540..=600).contains(&first),
        "countdown {first} s: the quote lasts 10 minutes"
    );

    // A marker in this document: still there later means the page was never reloaded.
    s.execute("window.__sameDocument = 'yes'; return true;", &[])?;
    // Live: the page's event stream delivered its first status.
    let before = wait_for_sse(s, 1)?;

    s.click(&s.find("#copy")?)?;
    wait_for("the copy button to confirm", WAIT, || {
        let label = text(s, "#copy")?;
        if label == "Copied" {
            Ok(())
        } else {
            Err(format!("label {label:?}"))
        }
    })?;
    save(out, "unpaid.png", &s.screenshot()?)?;
    wait_for("the countdown to tick", WAIT, || {
        let now = countdown_secs(&text(s, "#countdown")?)?;
        if now < first {
            Ok(())
        } else {
            Err(format!("still {now} s"))
        }
    })?;

    // Half: a new quote for the remaining $12.50, shown without a reload.
    s.click(&s.find("#simulate-half")?)?;
    let new_uri = wait_for("the partial payment to show", WAIT, || {
        let (due, sats, paid, uri) = (
            text(s, "#due")?,
            text(s, "#amount-sats")?,
            text(s, "#paid")?,
            uri_field(s)?,
        );
        if due.contains("12.50")
            && digits(&sats) == "12500"
            && paid.contains("12.50")
            && uri.contains("amount=0.000125&")
        {
            Ok(uri)
        } else {
            Err(format!(
                "due {due:?}, sats {sats:?}, paid {paid:?}, uri {uri}"
            ))
        }
    })?;
    ensure!(
        new_uri != uri,
        "the quote did not change after a partial payment"
    );
    ensure!(
        new_uri.contains("lightning=LNTEST12500000N1"),
        "the new invoice is not for 12,500 sats: {new_uri}"
    );
    qr_svg(s)?;
    let decoded = decode_page_qr(s)?;
    ensure!(
        decoded == new_uri,
        "the QR code still shows {decoded:?}, the field {new_uri:?}"
    );
    ensure!(
        text(s, "#amount-fiat")?.contains("25.00"),
        "the total changed"
    );
    ensure!(same_document(s)?, "the page was reloaded");
    let after = wait_for_sse(s, before + 1)?;
    ensure!(
        after > before,
        "the partial payment did not arrive as an event"
    );
    save(out, "partial.png", &s.screenshot()?)?;

    // The rest: the success message, still without a reload.
    s.click(&s.find("#simulate-rest")?)?;
    wait_for("the success message", WAIT, || {
        let success = s.find("#success")?;
        let shown = s.is_displayed(&success)?;
        let message = s.text(&success)?;
        if shown && message.contains(SUCCESS_MESSAGE) {
            Ok(())
        } else {
            Err(format!("#success shown: {shown}, text {message:?}"))
        }
    })?;
    ensure!(
        !s.is_displayed(&s.find("#pay-panel")?)?,
        "the QR code is still shown after payment"
    );
    let status = text(s, "#status")?;
    ensure!(status.starts_with("Paid"), "#status: {status:?}");
    ensure!(same_document(s)?, "the page was reloaded");
    wait_for_sse(s, after + 1)?;
    ensure!(
        s.find_all("#cancel")?
            .iter()
            .all(|c| !s.is_displayed(c).unwrap_or(true)),
        "the cancel link is shown on a paid page"
    );
    save(out, "paid.png", &s.screenshot()?)?;

    // And the paid page as the server renders it.
    s.goto(&pay_url)?;
    ensure!(
        text(s, "#success")?.contains(SUCCESS_MESSAGE),
        "a reloaded paid page does not show the success message"
    );

    // The example serves the service's counters: this run made one session and paid it
    // in two transfers.
    let metrics = ureq::get(&format!("{base}/metrics"))
        .call()
        .map_err(|e| format!("GET /metrics: {e}"))?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    for line in [
        "bitcoin_checkout_sessions_created_total 1",
        "bitcoin_checkout_sessions_paid_total 1",
        "bitcoin_checkout_transfers_recorded_total 2",
    ] {
        ensure!(
            metrics.lines().any(|l| l == line),
            "/metrics lacks {line:?}:\n{metrics}"
        );
    }
    Ok(())
}

/// Paid: the page sends the customer to `success_url` exactly (its query kept), live and
/// on a reload; the cancel link goes to `cancel_url` exactly.
fn success_and_cancel(s: &Session, base: &str, out: &Path) -> Result<(), String> {
    let success = format!("{base}{SUCCESS_PATH}");
    let cancel = format!("{base}{CANCEL_PATH}");

    s.goto(&format!("{base}/"))?;
    s.click(&s.find("#buy")?)?;
    let pay_url = wait_for_pay_page(s, base)?;
    wait_for("the QR code", WAIT, || qr_svg(s))?;
    let href = s.property(&s.find("#cancel")?, "href")?;
    ensure!(href == cancel.as_str(), "cancel link {href}, not {cancel}");
    ensure!(
        s.is_displayed(&s.find("#cancel")?)?,
        "the cancel link is hidden on an active page"
    );
    wait_for_sse(s, 1)?;
    save(out, "redirect-unpaid.png", &s.screenshot()?)?;

    // Paid in one go: the live page goes to the success URL by itself.
    s.click(&s.find("#simulate-rest")?)?;
    wait_for("the success redirect", WAIT, || {
        let url = s.current_url()?;
        if url == success {
            Ok(())
        } else {
            Err(format!("at {url}"))
        }
    })?;
    let query = text(s, "#query")?;
    ensure!(
        query == "order=42&note=a%20b",
        "the thanks page saw the query {query:?}"
    );
    // A paid page opened again goes there too (the server redirects).
    s.goto(&format!("{pay_url}?source_type=magento2"))?;
    let url = s.current_url()?;
    ensure!(url == success, "a paid page reopened lands on {url}");

    // Another order, cancelled.
    s.goto(&format!("{base}/"))?;
    s.click(&s.find("#buy")?)?;
    wait_for_pay_page(s, base)?;
    wait_for("the QR code", WAIT, || qr_svg(s))?;
    s.click(&s.find("#cancel")?)?;
    wait_for("the cancel page", WAIT, || {
        let url = s.current_url()?;
        if url == cancel {
            Ok(())
        } else {
            Err(format!("at {url}"))
        }
    })?;
    let query = text(s, "#query")?;
    ensure!(
        query == "order=42&reason=changed%20mind",
        "the cancel page saw the query {query:?}"
    );
    Ok(())
}

/// Without `--simulate` the buttons are absent and their route is 404.
fn no_simulate_controls(s: &Session, base: &str, out: &Path) -> Result<(), String> {
    s.goto(&format!("{base}/"))?;
    s.click(&s.find("#buy")?)?;
    let pay_url = wait_for_pay_page(s, base)?;
    wait_for("the QR code", WAIT, || qr_svg(s))?;
    let controls = s.find_all("#simulate, #simulate-half, #simulate-rest")?;
    ensure!(
        controls.is_empty(),
        "{} simulate control(s) on the page",
        controls.len()
    );
    let source = s.source()?;
    ensure!(
        !source.contains("simulate-half") && !source.contains("Pay half"),
        "the page source has the simulate buttons"
    );
    save(out, "no-simulate.png", &s.screenshot()?)?;

    // On a phone's width (390 CSS px): one column, nothing wider than the screen, the QR
    // code still large enough to scan.
    s.set_window_size(390, 844)?;
    let fit = wait_for("the page to fit a phone's width", WAIT, || {
        let v = s.execute(
            "const qr = document.querySelector('#qr svg').getBoundingClientRect(); \
             return { inner: window.innerWidth, scroll: document.documentElement.scrollWidth, \
                      qr: qr.width, left: qr.left, right: qr.right };",
            &[],
        )?;
        let inner = v["inner"].as_f64().unwrap_or(f64::NAN);
        let narrow = inner <= 420.0;
        ensure!(narrow, "the window is still {inner} px wide");
        Ok(v)
    })?;
    let n = |k: &str| fit[k].as_f64().unwrap_or(f64::NAN);
    let (inner, scroll) = (n("inner"), n("scroll"));
    let no_sideways_scroll = scroll <= inner;
    ensure!(
        no_sideways_scroll,
        "the page scrolls sideways on a phone: {scroll} px wide in a {inner} px window"
    );
    let qr_fits = n("qr") >= 200.0 && n("left") >= 0.0 && n("right") <= inner;
    ensure!(qr_fits, "the QR code on a phone: {fit}");
    save(out, "phone.png", &s.screenshot()?)?;

    let agent = webdriver::agent(Duration::from_secs(10));
    let response = agent
        .post(&format!("{pay_url}/simulate"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .send("part=rest")
        .map_err(|e| format!("POST simulate: {e}"))?;
    ensure!(
        response.status() == 404,
        "POST /pay/…/simulate: {} instead of 404",
        response.status()
    );
    let mut response = agent
        .get(&format!("{pay_url}/status"))
        .call()
        .map_err(|e| format!("GET status: {e}"))?;
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let status: Value =
        serde_json::from_str(&body).map_err(|e| format!("status is not JSON: {e}: {body}"))?;
    ensure!(
        status["status"] == "active" && status["amount_paid"] == "0.00",
        "the session changed: {status}"
    );
    Ok(())
}

// ---- the environment ----------------------------------------------------------------------

/// What every test needs: the browser, the example binary, the output directory.
struct Env {
    example: PathBuf,
    out: PathBuf,
}

impl Env {
    /// Checked once per test process (the tests run in parallel threads).
    fn get() -> &'static Env {
        static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
        match ENV.get_or_init(Env::prepare) {
            Ok(env) => env,
            Err(e) => panic!("{e}"),
        }
    }

    fn prepare() -> Result<Env, String> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).is_file() {
                return Err(format!(
                    "{bin} is missing: the browser test needs Chromium and chromedriver; \
                     run `scripts/browser-deps` (as root; it installs the Debian packages \
                     chromium and chromium-driver) and run the tests again"
                ));
            }
        }
        // The test binary is target/<profile>/deps/browser-<hash>; the example is
        // target/<profile>/examples/checkout_page.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
        let target_dir = profile_dir.parent().unwrap_or(profile_dir);
        let example = profile_dir
            .join("examples")
            .join(format!("checkout_page{}", std::env::consts::EXE_SUFFIX));
        let build = Instant::now();
        build_example(profile_dir, target_dir);
        eprintln!(
            "browser test: example checked/built in {:.1?}",
            build.elapsed()
        );
        if !example.is_file() {
            return Err(format!(
                "the example binary {} is missing; build it with \
                 `cargo build --example checkout_page` (plain `cargo test` builds it too)",
                example.display()
            ));
        }
        let out = target_dir.join("browser-test");
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(Env { example, out })
    }
}

/// `cargo test` builds the examples, but `cargo test --test browser` does not: build the
/// example with this test binary's profile and features, so it is never missing or older
/// than the code under test. When `cargo test` already built it, this is a no-op of a few
/// hundred milliseconds. A failed build is reported by `prepare` (binary missing) or shows
/// as a stale binary's behaviour, with cargo's errors on stderr.
fn build_example(profile_dir: &Path, target_dir: &Path) {
    let features: Vec<&str> = [
        // The example's required features, always.
        ("http", true),
        ("runner", true),
        ("sqlite", cfg!(feature = "sqlite")),
        ("async", cfg!(feature = "async")),
        ("postgres", cfg!(feature = "postgres")),
        ("webhooks", cfg!(feature = "webhooks")),
        ("lightning", cfg!(feature = "lightning")),
        ("onchain", cfg!(feature = "onchain")),
        ("qr-png", cfg!(feature = "qr-png")),
        ("testkit", cfg!(feature = "testkit")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--quiet",
            "--example",
            "checkout_page",
            "--no-default-features",
        ])
        .arg(format!("--features={}", features.join(",")))
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cargo.arg(format!("--profile={profile}"));
        }
    }
    match cargo.status() {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("building the checkout_page example failed ({status})"),
        Err(e) => eprintln!("cannot run cargo to build the checkout_page example: {e}"),
    }
}

/// A running `checkout_page` example.
struct Server {
    base: String,
    _process: ChildGuard,
}

impl Server {
    fn start(env: &Env, name: &str, flags: &[&str]) -> Server {
        let log = env.out.join(format!("{name}-server.log"));
        let log_file =
            std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut process = ChildGuard::spawn(
            Command::new(&env.example)
                .args(["--port", "0"])
                .args(flags)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log_file),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let line = webdriver::first_stdout_line(process.child(), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("checkout_page did not start ({e}); see {}", log.display()));
        let base = line
            .strip_prefix("listening on ")
            .filter(|b| b.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("unexpected first line from checkout_page: {line:?}"))
            .to_owned();
        Server {
            base,
            _process: process,
        }
    }
}

/// Panics with `result`'s error after saving the page's screenshot and source.
fn finish(s: &Session, env: &Env, name: &str, result: Result<(), String>) {
    let Err(error) = result else { return };
    s.grace(Duration::from_secs(10));
    let mut saved = Vec::new();
    match s
        .screenshot()
        .and_then(|png| save(&env.out, &format!("{name}.png"), &png))
    {
        Ok(path) => saved.push(path.display().to_string()),
        Err(e) => saved.push(format!("(no screenshot: {e})")),
    }
    match s
        .source()
        .and_then(|html| save(&env.out, &format!("{name}.html"), html.as_bytes()))
    {
        Ok(path) => saved.push(path.display().to_string()),
        Err(e) => saved.push(format!("(no page source: {e})")),
    }
    let url = s
        .current_url()
        .unwrap_or_else(|e| format!("(unknown: {e})"));
    panic!(
        "{name}: {error}\n  page: {url}\n  saved: {}",
        saved.join(", ")
    );
}

fn save(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

// ---- page helpers -------------------------------------------------------------------------

/// Retries `check` every 100 ms until it succeeds or `timeout` passes; the error then says
/// what was awaited and what was last seen.
fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}; last: {last}"
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn text(s: &Session, css: &str) -> Result<String, String> {
    s.text(&s.find(css)?)
}

fn body_text(s: &Session) -> Result<String, String> {
    text(s, "body")
}

fn uri_field(s: &Session) -> Result<String, String> {
    let value = s.property(&s.find("#uri")?, "value")?;
    Ok(value.as_str().unwrap_or_default().to_owned())
}

/// The QR code's SVG markup, if it is there and drawn at a readable size.
fn qr_svg(s: &Session) -> Result<String, String> {
    let found = s.execute(
        "const svg = document.querySelector('#qr svg'); if (!svg) return null; \
         const r = svg.getBoundingClientRect(); \
         return { html: svg.outerHTML, width: r.width, height: r.height };",
        &[],
    )?;
    let html = found["html"].as_str().ok_or("no <svg> in #qr")?;
    let (w, h) = (
        found["width"].as_f64().unwrap_or(0.0),
        found["height"].as_f64().unwrap_or(0.0),
    );
    ensure!(
        html.contains("<path") && html.len() > 1000,
        "the QR svg is empty: {html}"
    );
    ensure!(w >= 150.0 && h >= 150.0, "the QR code is drawn {w}×{h} px");
    Ok(html.to_owned())
}

/// Waits for the payment page a Buy click leads to; returns its URL.
fn wait_for_pay_page(s: &Session, base: &str) -> Result<String, String> {
    wait_for("the payment page /pay/cs_…", WAIT, || {
        let url = s.current_url()?;
        if is_pay_url(&url, base) {
            Ok(url)
        } else {
            Err(format!("still at {url}"))
        }
    })
}

/// Waits until the page has had at least `count` status events over its event stream
/// (`body[data-live="sse"]`, never the polling fallback); returns how many it had.
fn wait_for_sse(s: &Session, count: u64) -> Result<u64, String> {
    wait_for("status events over SSE", WAIT, || {
        let live = s.execute(
            "return [document.body.dataset.live || '', document.body.dataset.liveEvents || '0'];",
            &[],
        )?;
        let mode = live[0].as_str().unwrap_or_default();
        let events: u64 = live[1].as_str().unwrap_or("0").parse().unwrap_or(0);
        ensure!(mode != "poll", "the page fell back to polling");
        if mode == "sse" && events >= count {
            Ok(events)
        } else {
            Err(format!("data-live {mode:?}, {events} event(s)"))
        }
    })
}

fn same_document(s: &Session) -> Result<bool, String> {
    Ok(s.execute("return window.__sameDocument === 'yes';", &[])? == Value::Bool(true))
}

fn is_pay_url(url: &str, base: &str) -> bool {
    url.strip_prefix(base)
        .and_then(|p| p.strip_prefix("/pay/cs_"))
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// `09:58` → 598.
fn countdown_secs(text: &str) -> Result<u64, String> {
    let parse = |p: &str| {
        p.parse::<u64>()
            .map_err(|_| format!("countdown {text:?} is not mm:ss"))
    };
    match text.split(':').collect::<Vec<_>>().as_slice() {
        [m, s] => Ok(parse(m)? * 60 + parse(s)?),
        [h, m, s] => Ok(parse(h)? * 3600 + parse(m)? * 60 + parse(s)?),
        _ => Err(format!("countdown {text:?} is not mm:ss")),
    }
}

/// The QR code the page shows, as the browser draws it: Chromium rasterizes the page's
/// inline SVG onto a canvas (4 pixels a module) and rqrr decodes those pixels. Nothing
/// here reads the SVG's path itself.
fn decode_page_qr(s: &Session) -> Result<String, String> {
    const PX: u32 = 4;
    let drawn = s
        .execute_async(
            "const [px, done] = arguments; \
             const svg = document.querySelector('#qr svg'); \
             if (!svg) { done({ error: 'no QR code on the page' }); return; } \
             const side = svg.viewBox.baseVal.width, n = side * px; \
             const img = new Image(); \
             img.onload = () => { \
               const c = document.createElement('canvas'); c.width = n; c.height = n; \
               const g = c.getContext('2d'); g.fillStyle = '#fff'; g.fillRect(0, 0, n, n); \
               g.drawImage(img, 0, 0, n, n); \
               const d = g.getImageData(0, 0, n, n).data; let bits = ''; \
               for (let i = 0; i < n * n; i++) bits += d[4 * i] < 128 ? '1' : '0'; \
               done({ n, bits }); }; \
             img.onerror = () => done({ error: 'the SVG does not load as an image' }); \
             img.src = 'data:image/svg+xml;base64,' + \
               btoa(new XMLSerializer().serializeToString(svg));",
            &[serde_json::json!(PX)],
        )
        .map_err(|e| e.to_string())?;
    if let Some(error) = drawn.get("error").and_then(|e| e.as_str()) {
        return Err(error.to_owned());
    }
    let n = drawn
        .get("n")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or("no size from the canvas")?;
    let bits = drawn
        .get("bits")
        .and_then(|b| b.as_str())
        .ok_or("no pixels from the canvas")?
        .as_bytes();
    if bits.len() != n * n {
        return Err(format!("{} pixels for a {n}×{n} canvas", bits.len()));
    }
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(n, n, |x, y| {
        if bits[y * n + x] == b'1' { 0 } else { 255 }
    });
    let grids = image.detect_grids();
    let grid = grids
        .first()
        .ok_or("rqrr found no QR code in the drawn SVG")?;
    grid.decode()
        .map(|(_, text)| text)
        .map_err(|e| format!("the QR code does not decode: {e:?}"))
}
