//! The page's markup (maud: every interpolated value is escaped), its style and its
//! script. The only unescaped parts are this module's own constants and the QR code SVG
//! the crate draws itself ([`crate::qr::render_svg`]).
//!
//! Links between the page and its own routes are relative to the page's URL
//! (`{id}/status` from `…/pay/{id}`), so the router works nested under any prefix.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use super::view::{StatusView, countdown};
use crate::session::CheckoutSession;

/// What the page links to besides the session's own URLs.
#[derive(Debug, Clone, Copy)]
pub(super) struct PageLinks<'a> {
    /// The last segment of the page's URL (the session id), the base of the relative
    /// links to `/status`, `/events` and the development controls.
    pub id: &'a str,
    /// With development controls: the path segment their form posts to.
    pub dev_controls: Option<&'a str>,
}

/// The hosted payment page, complete without its script (which then keeps it current).
pub(super) fn pay_page(
    session: &CheckoutSession,
    view: &StatusView,
    links: PageLinks<'_>,
) -> Markup {
    let branding = session.branding();
    let title = branding.title.as_deref().unwrap_or("Checkout");
    let active = view.is_active();
    let paid = view.status == "paid";
    let quote = view.quote.as_ref();
    let id = links.id;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("Pay {title}")))
            body data-status-url={ (id) "/status" } data-events-url={ (id) "/events" }
                data-quote-id=(quote.map_or("", |q| q.id.as_str()))
                data-expires-in-ms=(quote.map_or(0, |q| q.expires_in_ms))
                data-status=(view.status) {
                main.card {
                    header.brand {
                        @if let Some(image) = &branding.title_image {
                            img src=(image) alt="";
                        }
                        div {
                            h1 { (title) }
                            @if let Some(line) = &branding.title_description {
                                p { (line) }
                            }
                        }
                    }
                    @if !session.livemode() {
                        p.testmode { "Test mode: do not send real bitcoin" }
                    }
                    section #pay-panel hidden[!active] {
                        dl.lines {
                            dt { "Total" }
                            dd #amount-fiat { (view.amount_display) }
                            dt #paid-label hidden[!view.partially_paid] { "Paid so far" }
                            dd #paid hidden[!view.partially_paid] { (view.amount_paid_display) }
                            dt.due { "Amount due" }
                            dd.due #due { (view.amount_due_display) }
                        }
                        div #quote hidden[quote.is_none()] {
                            div.sats #amount-sats { (quote.map_or("", |q| q.sats_display.as_str())) }
                            div.qr #qr role="img" aria-label="QR code of the payment request" {
                                @if let Some(svg) = quote.and_then(|q| q.qr_svg.as_deref()) {
                                    // The crate's own drawing of our own URI: markup, not text.
                                    (PreEscaped(svg))
                                }
                            }
                            label for="uri" { "Payment request (on-chain or Lightning)" }
                            div.copyrow {
                                input #uri readonly value=(quote.map_or("", |q| q.uri.as_str()));
                                button #copy type="button" { "Copy" }
                            }
                            p.expiry {
                                "Quote expires in "
                                span #countdown {
                                    @match quote {
                                        Some(q) => (countdown(q.expires_in_ms)),
                                        None => "--:--",
                                    }
                                }
                            }
                        }
                        @if let Some(action) = links.dev_controls {
                            form.simulate #simulate method="post" action={ (id) "/" (action) } {
                                p { "Development only: record a fake Lightning payment of this quote." }
                                div {
                                    button #simulate-half type="submit" name="part" value="half" { "Pay half" }
                                    button #simulate-rest type="submit" name="part" value="rest" { "Pay the rest" }
                                }
                            }
                        }
                    }
                    section.success #success hidden[!paid] {
                        (PreEscaped(CHECK_MARK))
                        p #success-message { (view.success_message) }
                        @if let Some(url) = &view.success_url {
                            // Exactly as the session has it, its query included.
                            p { a #success-link href=(url) { "Continue" } }
                        }
                    }
                    p.status #status role="status" { (view.status_text) }
                    @if let Some(url) = session.cancel_url() {
                        p.cancel {
                            a #cancel href=(url) hidden[!active] { "Cancel and return to the shop" }
                        }
                    }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// The page for a session that does not exist (or an id that is not one).
pub(super) fn not_found() -> Markup {
    message_page("Checkout not found", "This payment page does not exist.")
}

/// The page of a link that no longer opens (deactivated or expired).
pub(super) fn link_inactive() -> Markup {
    message_page(
        "Link no longer active",
        "This payment link has been deactivated. Please ask the shop for a new one.",
    )
}

/// The page for a failure of ours: nothing about it is shown.
pub(super) fn unavailable(retry: bool) -> Markup {
    let text = if retry {
        "The payment page is unavailable for a moment. Please reload in a few seconds."
    } else {
        "Something went wrong on our side. Please try again later."
    };
    message_page("Checkout unavailable", text)
}

/// The `<head>` of every page: phone-width viewport, no referrer, the page's own style.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) }
            style { (PreEscaped(STYLE)) }
        }
    }
}

fn message_page(title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main.card {
                    h1 { (title) }
                    p { (text) }
                }
            }
        }
    }
}

/// The page's Content-Security-Policy: its own style and script (by hash) and nothing
/// else inline; images from anywhere on http(s) (the title image); network requests to
/// its own origin only (status and events).
pub(super) fn content_security_policy() -> &'static str {
    static CSP: LazyLock<String> = LazyLock::new(|| {
        let hash = |text: &str| STANDARD.encode(Sha256::digest(text.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; \
             img-src http: https: data:; connect-src 'self'; form-action 'self'; base-uri 'none'",
            hash(STYLE),
            hash(SCRIPT)
        )
    });
    &CSP
}

/// A green circle with a tick.
const CHECK_MARK: &str = r##"<svg viewBox="0 0 64 64" aria-hidden="true"><circle cx="32" cy="32" r="30" fill="#34c759"/><path d="M19 33l9 9 17-19" fill="none" stroke="#fff" stroke-width="6" stroke-linecap="round" stroke-linejoin="round"/></svg>"##;

/// Fluid from a phone's width up to a 420 px card.
const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1d1d1f; --muted: #6e6e73; --line: #e5e5ea; --accent: #f7931a; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; min-height: 100vh; background: #f4f4f6; color: var(--ink);
       font: 16px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       display: flex; justify-content: center; align-items: flex-start; padding: 24px 12px; }
.card { width: 100%; max-width: 420px; background: #fff; border-radius: 16px; padding: 20px;
        box-shadow: 0 1px 3px rgba(0,0,0,.08), 0 8px 24px rgba(0,0,0,.06); }
.brand { display: flex; gap: 14px; align-items: center; }
.brand img { width: 56px; height: 56px; border-radius: 12px; flex: none; object-fit: cover; }
.brand div { min-width: 0; }
h1 { font-size: 20px; margin: 0; overflow-wrap: anywhere; }
.brand p { margin: 2px 0 0; color: var(--muted); font-size: 14px; overflow-wrap: anywhere; }
.testmode { margin: 16px 0 0; padding: 6px 10px; border-radius: 8px; background: #fff4e5;
            color: #8a4b00; font-size: 13px; text-align: center; }
.lines { margin: 18px 0 0; display: grid; grid-template-columns: 1fr auto; row-gap: 4px; }
.lines dt { color: var(--muted); }
.lines dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
.lines .due { font-weight: 600; color: var(--ink); }
.sats { margin: 16px 0 4px; text-align: center; font-size: 28px; font-weight: 700;
        font-variant-numeric: tabular-nums; }
.qr { width: 100%; max-width: 260px; margin: 8px auto; }
.qr svg { display: block; width: 100%; height: auto; }
label { display: block; margin-top: 8px; font-size: 13px; color: var(--muted); }
.copyrow { display: flex; gap: 8px; margin-top: 4px; }
.copyrow input { flex: 1; min-width: 0; padding: 8px 10px; border: 1px solid var(--line);
                 border-radius: 8px; font: 13px ui-monospace, "DejaVu Sans Mono", monospace; color: var(--muted); }
button { font: inherit; cursor: pointer; border-radius: 8px; border: 1px solid var(--line);
         background: #fff; padding: 8px 14px; }
button:disabled { opacity: .5; cursor: progress; }
.expiry { margin: 12px 0 0; text-align: center; color: var(--muted); font-size: 14px; }
#countdown { font-variant-numeric: tabular-nums; color: var(--ink); }
.status { margin: 16px 0 0; text-align: center; font-weight: 600; }
body[data-status="paid"] .status { font-weight: 400; color: var(--muted); font-size: 14px; }
.cancel { margin: 12px 0 0; text-align: center; font-size: 14px; }
.cancel a, .success a { color: var(--muted); }
.simulate { margin-top: 18px; padding: 12px; border: 1px dashed #c7c7cc; border-radius: 10px; }
.simulate p { margin: 0 0 8px; font-size: 13px; color: var(--muted); }
.simulate div { display: flex; gap: 8px; }
.simulate button { flex: 1; }
.success { margin-top: 20px; text-align: center; }
.success svg { width: 64px; height: 64px; }
.success p { font-size: 18px; margin: 8px 0 0; }
"#;

/// The page's script. It listens to `{id}/events` (server-sent events named `status`,
/// each the page's JSON view) and updates the page in place: a new quote, partial
/// payments, success (or the redirect to `success_url`). If the stream fails, it falls
/// back to polling `{id}/status` every second. `body[data-live]` says which it uses
/// (`sse` once an event has arrived, `poll` after a fallback). It also counts down to the
/// quote's expiry from the server's `expires_in_ms`, copies the payment request, and sends
/// the development controls (when present) with `fetch`, so the page is never reloaded.
const SCRIPT: &str = r#"
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const statusUrl = body.dataset.statusUrl;
  const eventsUrl = body.dataset.eventsUrl;
  let quoteId = body.dataset.quoteId || "";
  let deadline = quoteId ? Date.now() + Number(body.dataset.expiresInMs || 0) : 0;
  let finished = body.dataset.status !== "active";
  let source = null;
  let polling = false;
  let events = 0;

  function show(el, on) { if (el) el.hidden = !on; }

  function stop() {
    finished = true;
    if (source) { source.close(); source = null; }
  }

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
        $("qr").innerHTML = q.qr_svg; // the server's QR code of its own URI
        $("uri").value = q.uri;
        quoteId = q.id;
        body.dataset.quoteId = q.id;
      }
      $("amount-sats").textContent = q.sats_display;
      deadline = Date.now() + q.expires_in_ms;
      show($("quote"), true);
    } else {
      deadline = 0;
      show($("quote"), false);
    }
    tick();
    if (s.status === "paid") {
      stop();
      if (s.success_url) { window.location.assign(s.success_url); return; }
      $("success-message").textContent = s.success_message;
      show($("pay-panel"), false);
      show($("success"), true);
      show($("cancel"), false);
    } else if (s.status !== "active") {
      stop();
      show($("pay-panel"), false);
      show($("cancel"), false);
    }
  }

  function live() {
    if (finished) return;
    if (!window.EventSource) { fallback(); return; }
    source = new EventSource(eventsUrl + "?have=" + encodeURIComponent(quoteId));
    source.addEventListener("status", (e) => {
      events += 1;
      body.dataset.live = "sse";
      body.dataset.liveEvents = String(events);
      let s = null;
      try { s = JSON.parse(e.data); } catch (_) { return; }
      apply(s);
    });
    source.addEventListener("error", () => {
      if (finished) return;
      // The stream failed (a proxy that buffers or cuts it, the server restarting).
      if (source) { source.close(); source = null; }
      fallback();
    });
  }

  function fallback() {
    if (polling || finished) return;
    polling = true;
    body.dataset.live = "poll";
    const poll = async () => {
      try {
        const r = await fetch(statusUrl + "?have=" + encodeURIComponent(quoteId), { cache: "no-store" });
        if (r.ok) apply(await r.json());
      } catch (_) { /* offline for a moment: try again next second */ }
      if (!finished) setTimeout(poll, 1000);
    };
    setTimeout(poll, 1000);
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
        // The page learns the outcome from its live status, like a real payment.
        const r = await fetch(simulate.action, {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" },
          body: "part=" + encodeURIComponent(part),
        });
        if (!r.ok) $("status").textContent = "Simulation failed: " + (await r.text());
      } catch (_) {
        $("status").textContent = "Simulation failed: no answer";
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  setInterval(tick, 250);
  tick();
  live();
})();
"#;
