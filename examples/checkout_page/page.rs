//! The HTML of the example: the shop, the payment page and its script, and the JSON view
//! the script polls. Server-rendered strings; every text that comes from a session goes
//! through [`esc`].

use std::fmt::Write as _;

use bitcoin_checkout::request::RequestError;
use bitcoin_checkout::request::unified::UnifiedUri;
use bitcoin_checkout::{CheckoutSession, Currency, SessionStatus, qr};
use rust_decimal::Decimal;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Shown when a session has no success message of its own.
const DEFAULT_SUCCESS: &str = "Payment received. Thank you!";

/// What the payment page shows, as rendered on the server and as sent to its script by
/// `GET /pay/{id}/status` (every second) and `POST /pay/{id}/simulate`.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// `active`, `paid` or `deactivated`.
    pub status: &'static str,
    /// The status line for people.
    pub status_text: String,
    /// The session's price, formatted (`$25.00`).
    pub amount_display: String,
    /// Counted so far, as a decimal (`12.50`) and formatted.
    pub amount_paid: String,
    pub amount_paid_display: String,
    /// Still to pay: the open quote's `due`, else the price less what was received.
    pub amount_due: String,
    pub amount_due_display: String,
    /// Whether some but not all of the price has arrived.
    pub partially_paid: bool,
    /// The quote to pay now; `None` once the session is paid or closed, or while a new
    /// quote is on its way.
    pub quote: Option<QuoteView>,
    pub success_message: String,
    /// Where to send the customer once paid, instead of showing the message.
    pub success_url: Option<String>,
}

/// The open quote.
#[derive(Debug, Serialize)]
pub struct QuoteView {
    pub id: String,
    pub sats: u64,
    pub sats_display: String,
    /// The unified BIP21 URI (on-chain address and Lightning invoice).
    pub uri: String,
    /// The QR code of `uri`; left out when the page said it already shows this quote.
    pub qr_svg: Option<String>,
    /// RFC 3339.
    pub expires_at: String,
    /// Time left at the server: the page counts down from this rather than from
    /// `expires_at`, so a customer's wrong clock does not matter.
    pub expires_in_ms: i64,
}

impl StatusView {
    /// The view of `session`; `have` is the quote id the page already shows.
    pub fn new(session: &CheckoutSession, have: Option<&str>) -> Result<Self, RequestError> {
        let currency = session.currency();
        let totals = session.totals();
        let status = session.status();
        let open = match status {
            SessionStatus::Active => session.open_payment(),
            _ => None,
        };
        let due = match (status, open) {
            (SessionStatus::Paid, _) => Decimal::ZERO,
            (_, Some(quote)) => quote.due(),
            _ => (session.amount() - totals.amount_received).max(Decimal::ZERO),
        };
        let quote = match open {
            Some(p) => {
                let uri = UnifiedUri::from_request(p.request(), p.target_msats())?.to_uri()?;
                let id = p.id().to_string();
                let qr_svg = match have {
                    Some(h) if h == id => None,
                    _ => Some(qr::render_svg(&uri)?),
                };
                let now = OffsetDateTime::now_utc();
                let left = (p.expires_at() - now).whole_milliseconds().max(0);
                Some(QuoteView {
                    id,
                    sats: p.target().get(),
                    sats_display: format!(
                        "{} sats",
                        group_thousands(&p.target().get().to_string())
                    ),
                    uri,
                    qr_svg,
                    expires_at: p.expires_at().format(&Rfc3339).unwrap_or_default(),
                    expires_in_ms: i64::try_from(left).unwrap_or(i64::MAX),
                })
            }
            None => None,
        };
        let partially_paid = status == SessionStatus::Active && totals.amount_paid > Decimal::ZERO;
        let status_text = match status {
            SessionStatus::Paid => format!("Paid in full: {}", money(totals.amount_paid, currency)),
            SessionStatus::Deactivated => "This checkout is closed.".to_owned(),
            _ if totals.pending.get() > 0 => "Payment seen, waiting for confirmation".to_owned(),
            _ if quote.is_none() => "Getting a new quote…".to_owned(),
            _ if partially_paid => format!(
                "Partially paid: {} received, {} to go",
                money(totals.amount_paid, currency),
                money(due, currency)
            ),
            _ => "Waiting for payment".to_owned(),
        };
        Ok(Self {
            status: status.as_str(),
            status_text,
            amount_display: money(session.amount(), currency),
            amount_paid: decimal(totals.amount_paid, currency),
            amount_paid_display: money(totals.amount_paid, currency),
            amount_due: decimal(due, currency),
            amount_due_display: money(due, currency),
            partially_paid,
            quote,
            success_message: session
                .success_message()
                .unwrap_or(DEFAULT_SUCCESS)
                .to_owned(),
            success_url: session.success_url().map(str::to_owned),
        })
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234.50`: the currency's own number of decimals, for machines.
fn decimal(amount: Decimal, currency: Currency) -> String {
    let scale = currency.scale() as usize;
    format!("{:.scale$}", amount.round_dp(currency.scale()))
}

/// `$1,234.50`, `€3.00`, `0.001 BTC`: the currency's own number of decimals, for people.
pub fn money(amount: Decimal, currency: Currency) -> String {
    let text = decimal(amount, currency);
    let (whole, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let number = match frac {
        Some(f) => format!("{}.{f}", group_thousands(whole)),
        None => group_thousands(whole),
    };
    match currency.code() {
        "USD" => format!("${number}"),
        "EUR" => format!("€{number}"),
        "GBP" => format!("£{number}"),
        code => format!("{number} {code}"),
    }
}

/// `25000` → `25,000`.
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `mm:ss` (or `h:mm:ss`) left, as first rendered; the script takes over from there.
fn countdown(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// The shop's logo, served at `/logo.svg`: a cup on bitcoin orange.
pub const LOGO_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">
<rect width="64" height="64" rx="14" fill="#f7931a"/>
<path d="M23 12c-2 3 2 5 0 8M30 12c-2 3 2 5 0 8M37 12c-2 3 2 5 0 8" fill="none" stroke="#fff" stroke-width="2.5" stroke-linecap="round"/>
<path d="M15 25h28v10a12 12 0 0 1-12 12h-4a12 12 0 0 1-12-12z" fill="#fff"/>
<path d="M43 28h2.5a5.5 5.5 0 0 1 0 11H41" fill="none" stroke="#fff" stroke-width="3"/>
<rect x="13" y="50" width="34" height="3" rx="1.5" fill="#fff"/>
</svg>
"##;

const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1d1d1f; --muted: #6e6e73; --line: #e5e5ea; --accent: #f7931a; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; min-height: 100vh; background: #f4f4f6; color: var(--ink);
       font: 16px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       display: flex; justify-content: center; align-items: flex-start; padding: 32px 16px; }
.card { width: 100%; max-width: 420px; background: #fff; border-radius: 16px; padding: 24px;
        box-shadow: 0 1px 3px rgba(0,0,0,.08), 0 8px 24px rgba(0,0,0,.06); }
.brand { display: flex; gap: 14px; align-items: center; }
.brand img { width: 56px; height: 56px; border-radius: 12px; flex: none; }
.brand h1 { font-size: 20px; margin: 0; }
.brand p { margin: 2px 0 0; color: var(--muted); font-size: 14px; }
.testmode { margin: 16px 0 0; padding: 6px 10px; border-radius: 8px; background: #fff4e5;
            color: #8a4b00; font-size: 13px; text-align: center; }
.lines { margin: 18px 0 0; display: grid; grid-template-columns: 1fr auto; row-gap: 4px; }
.lines dt { color: var(--muted); }
.lines dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
.lines .due { font-weight: 600; color: var(--ink); }
.sats { margin: 16px 0 4px; text-align: center; font-size: 28px; font-weight: 700;
        font-variant-numeric: tabular-nums; }
.qr { width: 240px; margin: 8px auto; }
.qr svg { display: block; width: 100%; height: auto; }
label { display: block; margin-top: 8px; font-size: 13px; color: var(--muted); }
.copyrow { display: flex; gap: 8px; margin-top: 4px; }
.copyrow input { flex: 1; min-width: 0; padding: 8px 10px; border: 1px solid var(--line);
                 border-radius: 8px; font: 13px ui-monospace, "DejaVu Sans Mono", monospace; color: var(--muted); }
button { font: inherit; cursor: pointer; border-radius: 8px; border: 1px solid var(--line);
         background: #fff; padding: 8px 14px; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; font-weight: 600; }
button:disabled { opacity: .5; cursor: progress; }
.expiry { margin: 12px 0 0; text-align: center; color: var(--muted); font-size: 14px; }
#countdown { font-variant-numeric: tabular-nums; color: var(--ink); }
.status { margin: 16px 0 0; text-align: center; font-weight: 600; }
body[data-status="paid"] .status { font-weight: 400; color: var(--muted); font-size: 14px; }
.simulate { margin-top: 18px; padding: 12px; border: 1px dashed #c7c7cc; border-radius: 10px; }
.simulate p { margin: 0 0 8px; font-size: 13px; color: var(--muted); }
.simulate div { display: flex; gap: 8px; }
.simulate button { flex: 1; }
.success { margin-top: 20px; text-align: center; }
.success svg { width: 64px; height: 64px; }
.success p { font-size: 18px; margin: 8px 0 0; }
.product { margin: 20px 0; display: flex; justify-content: space-between; align-items: baseline; }
.product strong { font-size: 22px; }
form.buy button { width: 100%; padding: 12px; }
"#;

/// The merchant's page: one product and a Buy button.
pub fn shop(order: &str, price: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Satoshi's Coffee</title>
<style>{STYLE}</style>
</head>
<body>
<main class="card">
  <header class="brand">
    <img src="/logo.svg" alt="">
    <div><h1>Satoshi&#39;s Coffee</h1><p>Roasted to order, paid in bitcoin</p></div>
  </header>
  <div class="product"><span>1 kg of single-origin beans</span><strong id="price">{price}</strong></div>
  <form class="buy" method="post" action="/checkout">
    <input type="hidden" name="order" value="{order}">
    <button id="buy" class="primary" type="submit">Buy with bitcoin</button>
  </form>
  <p class="testmode">Test mode: payment requests are not payable</p>
</main>
</body>
</html>
"#,
        price = esc(price),
        order = esc(order),
    )
}

/// The hosted payment page, complete without its script (which then keeps it current).
pub fn pay(session: &CheckoutSession, view: &StatusView, simulate: bool) -> String {
    let id = session.id().to_string();
    let branding = session.branding();
    let title = branding.title.as_deref().unwrap_or("Checkout");
    let active = view.status == "active";
    let paid = view.status == "paid";

    let mut brand = String::new();
    if let Some(image) = &branding.title_image {
        let _ = write!(brand, r#"<img src="{}" alt="">"#, esc(image));
    }
    let _ = write!(brand, "<div><h1>{}</h1>", esc(title));
    if let Some(line) = &branding.title_description {
        let _ = write!(brand, "<p>{}</p>", esc(line));
    }
    brand.push_str("</div>");

    let (quote_id, sats, uri, svg, left) = match &view.quote {
        Some(q) => (
            q.id.as_str(),
            q.sats_display.as_str(),
            q.uri.as_str(),
            q.qr_svg.as_deref().unwrap_or(""),
            q.expires_in_ms,
        ),
        None => ("", "", "", "", 0),
    };
    // Only with --simulate: without it neither the buttons nor their route exist.
    let simulate_html = if simulate {
        format!(
            r#"<form class="simulate" id="simulate" method="post" action="/pay/{id}/simulate">
      <p>Development only: record a fake Lightning payment of this quote.</p>
      <div>
        <button id="simulate-half" type="submit" name="part" value="half">Pay half</button>
        <button id="simulate-rest" type="submit" name="part" value="rest">Pay the rest</button>
      </div>
    </form>"#,
            id = esc(&id)
        )
    } else {
        String::new()
    };
    let hidden = |show: bool| if show { "" } else { " hidden" };

    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pay {title}</title>
<style>{STYLE}</style>
</head>
<body data-status-url="/pay/{id}/status" data-quote-id="{quote_id}" data-expires-in-ms="{left}" data-status="{status}">
<main class="card">
  <header class="brand">{brand}</header>
  <p class="testmode">Test mode: payment requests are not payable</p>
  <section id="pay-panel"{pay_hidden}>
    <dl class="lines">
      <dt>Total</dt><dd id="amount-fiat">{amount}</dd>
      <dt id="paid-label"{paid_hidden}>Paid so far</dt><dd id="paid"{paid_hidden}>{paid_amount}</dd>
      <dt class="due">Amount due</dt><dd class="due" id="due">{due}</dd>
    </dl>
    <div class="sats" id="amount-sats">{sats}</div>
    <div class="qr" id="qr" aria-label="QR code of the payment request">{svg}</div>
    <label for="uri">Payment request (on-chain or Lightning)</label>
    <div class="copyrow"><input id="uri" readonly value="{uri}"><button id="copy" type="button">Copy</button></div>
    <p class="expiry">Quote expires in <span id="countdown">{countdown}</span></p>
    {simulate_html}
  </section>
  <section class="success" id="success"{success_hidden}>
    <svg viewBox="0 0 64 64" aria-hidden="true"><circle cx="32" cy="32" r="30" fill="#34c759"/><path d="M19 33l9 9 17-19" fill="none" stroke="#fff" stroke-width="6" stroke-linecap="round" stroke-linejoin="round"/></svg>
    <p id="success-message">{message}</p>
  </section>
  <p class="status" id="status" role="status">{status_text}</p>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"##,
        title = esc(title),
        id = esc(&id),
        quote_id = esc(quote_id),
        status = esc(view.status),
        pay_hidden = hidden(active),
        amount = esc(&view.amount_display),
        paid_hidden = hidden(view.partially_paid),
        paid_amount = esc(&view.amount_paid_display),
        due = esc(&view.amount_due_display),
        sats = esc(sats),
        // The SVG is the qrcode crate's output for our own URI: markup, not user text.
        svg = svg,
        uri = esc(uri),
        countdown = if view.quote.is_some() {
            countdown(left)
        } else {
            "--:--".to_owned()
        },
        status_text = esc(&view.status_text),
        success_hidden = hidden(paid),
        message = esc(&view.success_message),
    )
}

/// The page's script: polls the status every second and updates the page in place (new
/// quote, partial payments, success), counts down to the quote's expiry, copies the URI,
/// and sends the simulate buttons with `fetch` so the page is never reloaded.
const SCRIPT: &str = r#"
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const statusUrl = body.dataset.statusUrl;
  let quoteId = body.dataset.quoteId || "";
  let deadline = quoteId ? Date.now() + Number(body.dataset.expiresInMs || 0) : 0;
  let finished = body.dataset.status !== "active";

  function show(el, on) { el.hidden = !on; }

  function apply(s) {
    body.dataset.status = s.status;
    $("amount-fiat").textContent = s.amount_display;
    $("paid").textContent = s.amount_paid_display;
    show($("paid"), s.partially_paid);
    show($("paid-label"), s.partially_paid);
    $("due").textContent = s.amount_due_display;
    $("status").textContent = s.status_text;
    const q = s.quote;
    if (q) {
      if (q.id !== quoteId && q.qr_svg) {
        $("qr").innerHTML = q.qr_svg; // our server's QR code of our own URI
        $("uri").value = q.uri;
        quoteId = q.id;
        body.dataset.quoteId = q.id;
      }
      $("amount-sats").textContent = q.sats_display;
      deadline = Date.now() + q.expires_in_ms;
    } else {
      deadline = 0;
    }
    tick();
    if (s.status === "paid") {
      finished = true;
      if (s.success_url) { window.location.assign(s.success_url); return; }
      $("success-message").textContent = s.success_message;
      show($("pay-panel"), false);
      show($("success"), true);
    } else if (s.status !== "active") {
      finished = true;
      show($("pay-panel"), false);
    }
  }

  async function poll() {
    try {
      const r = await fetch(statusUrl + "?have=" + encodeURIComponent(quoteId), { cache: "no-store" });
      if (r.ok) apply(await r.json());
    } catch (_) { /* offline for a moment: try again next second */ }
    if (!finished) setTimeout(poll, 1000);
  }

  function tick() {
    const el = $("countdown");
    if (!deadline) { el.textContent = "--:--"; return; }
    const left = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
    if (left === 0) { el.textContent = "expired, getting a new quote…"; return; }
    const h = Math.floor(left / 3600), m = Math.floor(left / 60) % 60, sec = left % 60;
    const mm = String(m).padStart(2, "0"), ss = String(sec).padStart(2, "0");
    el.textContent = h ? h + ":" + mm + ":" + ss : mm + ":" + ss;
  }

  $("copy").addEventListener("click", async () => {
    const field = $("uri"), button = $("copy");
    let ok = false;
    try {
      await navigator.clipboard.writeText(field.value);
      ok = true;
    } catch (_) {
      // No clipboard API (insecure context, no permission): the old way.
      field.focus();
      field.select();
      try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    }
    button.textContent = ok ? "Copied" : "Press Ctrl+C";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });

  const simulate = $("simulate");
  if (simulate) {
    simulate.addEventListener("submit", async (event) => {
      event.preventDefault();
      const part = event.submitter ? event.submitter.value : "half";
      const buttons = simulate.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        const r = await fetch(simulate.action, {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" },
          body: "part=" + encodeURIComponent(part),
        });
        if (r.ok) apply(await r.json());
        else $("status").textContent = "Simulation failed: " + (await r.text());
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  setInterval(tick, 250);
  tick();
  if (!finished) setTimeout(poll, 1000);
})();
"#;
