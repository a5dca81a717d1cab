//! What the payment page shows, as one value: rendered by the server into the page, and
//! sent as JSON by `GET {page}/{id}/status` and in the `status` events of
//! `GET {page}/{id}/events`. Also the amount formatting and the QR code cache.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::id::PaymentId;
use crate::money::Currency;
use crate::qr;
use crate::request::RequestError;
use crate::request::unified::UnifiedUri;
use crate::session::{CheckoutSession, SessionStatus};

/// Shown when a session has no success message of its own.
pub(crate) const DEFAULT_SUCCESS: &str = "Payment received. Thank you!";

/// The page's state (see the module docs). Its JSON is the `/status` answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusView {
    /// `active`, `paid` or `deactivated`.
    pub status: &'static str,
    /// The status line for people.
    pub status_text: String,
    /// The session's price, as a decimal in its currency (`25.00`).
    pub amount: String,
    /// The session's price, formatted (`$25.00`).
    pub amount_display: String,
    /// Counted so far, as a decimal (`12.50`).
    pub amount_paid: String,
    /// Counted so far, formatted.
    pub amount_paid_display: String,
    /// Still to pay: the open quote's `due`, else the price less what was received.
    pub amount_due: String,
    /// Still to pay, formatted.
    pub amount_due_display: String,
    /// Whether some but not all of the price has arrived.
    pub partially_paid: bool,
    /// The quote to pay now; `None` once the session is paid or closed, or while a new
    /// quote cannot be made.
    pub quote: Option<QuoteView>,
    /// The message shown once paid.
    pub success_message: String,
    /// Where the page sends the customer once paid, exactly as the session has it.
    pub success_url: Option<String>,
}

/// The open quote.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QuoteView {
    /// The quote's (payment's) id.
    pub id: String,
    /// The amount to send, in sats.
    pub sats: u64,
    /// `25,000 sats`.
    pub sats_display: String,
    /// The unified BIP21 URI (on-chain address and Lightning invoice).
    pub uri: String,
    /// The QR code of `uri` (SVG); left out when the page said it already shows this
    /// quote (`?have=<quote id>`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "svg_text")]
    pub qr_svg: Option<Arc<str>>,
    /// RFC 3339.
    pub expires_at: String,
    /// Time left by the server's clock: the page counts down from this rather than from
    /// `expires_at`, so a customer's wrong clock does not matter.
    pub expires_in_ms: i64,
}

/// A shared SVG as a JSON string.
fn svg_text<Z: serde::Serializer>(svg: &Option<Arc<str>>, s: Z) -> Result<Z::Ok, Z::Error> {
    match svg {
        Some(text) => s.serialize_str(text),
        None => s.serialize_none(),
    }
}

impl StatusView {
    /// The view of `session` at `now` (the service's clock); `have` is the quote id the
    /// page already shows (its QR code is then left out), `qr` the cache to draw from.
    pub(crate) fn new(
        session: &CheckoutSession,
        have: Option<&str>,
        now: OffsetDateTime,
        qr: &QrCache,
    ) -> Result<Self, RequestError> {
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
                    _ => Some(qr.svg(p.id(), &uri)?),
                };
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
            amount: decimal(session.amount(), currency),
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

    /// Whether the session is still waiting for money (else the page is final).
    pub(crate) fn is_active(&self) -> bool {
        self.status == SessionStatus::Active.as_str()
    }
}

/// QR codes already drawn, by quote: a quote's URI never changes, so its code is drawn
/// once, not on every page load, poll and event. Bounded: past `cap` quotes the oldest
/// entry goes. An entry is used only for the quote it was drawn for, and only if the URI
/// asked for is the one it was drawn from; anything else is drawn afresh.
#[derive(Debug)]
pub(crate) struct QrCache {
    cap: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// Quote → (the URI drawn, its SVG).
    codes: HashMap<PaymentId, (String, Arc<str>)>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<PaymentId>,
    hits: u64,
    misses: u64,
}

/// Quotes whose QR code is kept by default (an SVG is about 20 KiB).
pub(crate) const QR_CACHE_QUOTES: usize = 256;

impl QrCache {
    /// An empty cache of at most `cap` codes (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The SVG of `uri`, the URI of quote `quote`.
    pub(crate) fn svg(&self, quote: PaymentId, uri: &str) -> Result<Arc<str>, RequestError> {
        {
            let mut inner = self.lock();
            let found = inner
                .codes
                .get(&quote)
                .filter(|(drawn, _)| drawn == uri)
                .map(|(_, svg)| Arc::clone(svg));
            if let Some(svg) = found {
                inner.hits += 1;
                return Ok(svg);
            }
            inner.misses += 1;
        }
        // Drawn outside the lock: a slow drawing never holds up another quote's page.
        let svg: Arc<str> = qr::render_svg(uri)?.into();
        let mut inner = self.lock();
        let replaced = inner
            .codes
            .insert(quote, (uri.to_owned(), Arc::clone(&svg)));
        if replaced.is_none() {
            inner.order.push_back(quote);
        }
        while inner.order.len() > self.cap {
            if let Some(old) = inner.order.pop_front() {
                inner.codes.remove(&old);
            }
        }
        Ok(svg)
    }

    /// (hits, misses) so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.hits, inner.misses)
    }

    /// Codes held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().codes.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding the lock cannot leave the maps inconsistent with each
        // other in a way that matters: at worst an entry is drawn again.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `1234.50`: the currency's own number of decimals, for machines.
pub(crate) fn decimal(amount: Decimal, currency: Currency) -> String {
    let scale = currency.scale() as usize;
    format!("{:.scale$}", amount.round_dp(currency.scale()))
}

/// `$1,234.50`, `€3.00`, `0.001 BTC`: the currency's own number of decimals, for people.
pub(crate) fn money(amount: Decimal, currency: Currency) -> String {
    let text = decimal(amount, currency);
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (whole, frac) = text
        .split_once('.')
        .map_or((text, None), |(w, f)| (w, Some(f)));
    let number = match frac {
        Some(f) => format!("{sign}{}.{f}", group_thousands(whole)),
        None => format!("{sign}{}", group_thousands(whole)),
    };
    match currency.code() {
        "USD" => format!("${number}"),
        "EUR" => format!("€{number}"),
        "GBP" => format!("£{number}"),
        code => format!("{number} {code}"),
    }
}

/// `25000` → `25,000`.
pub(crate) fn group_thousands(digits: &str) -> String {
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
pub(crate) fn countdown(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}
