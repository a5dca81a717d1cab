//! LNbits as the Lightning backend (feature `lnbits`): a [`LightningBackend`] over its
//! REST API with a wallet's invoice key.
//!
//! [LNbits](https://lnbits.com) is a Lightning wallet and accounts server on top of a node
//! (LND, Core Lightning, and others), which BTCPay Server also supports as a funding source.
//! [`LnbitsBackend`] maps the port's four calls as follows:
//!
//! * **create**: `POST /api/v1/payments {out: false, amount, memo | description_hash,
//!   expiry}`, once (never retried: a timed-out call may have made an invoice, which then
//!   simply expires unused). The BOLT11 it returns is decoded and handed out only if it asks
//!   exactly the order's amount, is for the configured network, names the payment hash
//!   LNbits stated and expires no later than the order. The expiry asked is the order's
//!   remaining time less a margin (5 s by default) for the server's clock.
//! * **lookup**: `GET /api/v1/payments/{hash}` (404: unknown).
//! * **cancel**: LNbits cancels only hold invoices, with the admin key, so an ordinary
//!   invoice answers [`Cancellation::Unsupported`] (or `AlreadySettled` once paid).
//! * **settlements**: the paid incoming payments, newest first by `updated_at`, walked back
//!   to the resume point less an overlap ([`LnbitsBackend::settled_since`]); the resume
//!   point is the newest `updated_at` seen. See `docs/adr/0013-lightning-backend-port.md`.
//!
//! It is also an [`InvoiceSource`] itself, so `RequestGenerator::new().lightning(lnbits)`
//! works without the [`BackendInvoices`](crate::backend::BackendInvoices) wrapper.
//!
//! Every failure is a [`RequestError::Backend`] whose `retryable` says whether asking again
//! may help (connection refused, timeouts and 5xx: yes; 4xx and malformed answers: no). The
//! key is never in an error, a log or `Debug` output.

use std::time::Duration as StdDuration;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::lightning::{Network, parse_invoice, parse_invoice_without_features};
use super::{InvoiceSource, LightningInvoice, PaymentHash, RequestError};
use crate::backend::{
    Cancellation, InvoiceDescription, InvoiceOrder, InvoiceState, LightningBackend, ResumePoint,
    Settlement, SettlementBatch,
};
use crate::money::{MSATS_PER_SAT, Msats};
use crate::session::{CheckoutSession, QuoteTerms};

/// One paid incoming invoice of the wallet, as LNbits lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LnbitsSettlement {
    /// The invoice's payment hash.
    pub payment_hash: PaymentHash,
    /// What it credited the wallet, in msats.
    pub amount: Msats,
    /// When LNbits last changed the payment (its `updated_at`: when it was settled, or a
    /// later edit such as a label).
    pub updated_at: OffsetDateTime,
}

/// The wallet's settlements changed since a resume point, oldest change first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LnbitsSettlements {
    /// Every settled incoming payment changed at or after the resume point less the
    /// overlap, oldest first; one already seen may come again (count them by hash).
    pub settlements: Vec<LnbitsSettlement>,
    /// The resume point for the next call: the newest `updated_at` seen, or the one given
    /// when nothing newer was found. Save it only once the settlements are recorded.
    pub resume_at: Option<OffsetDateTime>,
}

/// Payments read per page of LNbits' list.
const PAGE: usize = 100;

/// Creates each quote's invoice in an LNbits wallet.
#[derive(Clone)]
pub struct LnbitsBackend {
    base_url: String,
    invoice_key: String,
    network: Network,
    margin_secs: i64,
    require_features: bool,
    overlap: time::Duration,
    agent: ureq::Agent,
}

impl std::fmt::Debug for LnbitsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnbitsBackend")
            .field("base_url", &self.base_url)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl LnbitsBackend {
    /// Invoices of the wallet whose invoice key is `invoice_key`, on the LNbits server at
    /// `base_url`, for `network` (LNbits' FakeWallet signs mainnet invoices), each call
    /// limited to 10 s.
    pub fn new(base_url: &str, invoice_key: impl Into<String>, network: Network) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(StdDuration::from_secs(10)))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            invoice_key: invoice_key.into(),
            network,
            margin_secs: 5,
            require_features: true,
            overlap: time::Duration::seconds(60),
            agent,
        }
    }

    /// Seconds the invoice's expiry is kept before the quote's (for the server's clock).
    pub fn expiry_margin_secs(mut self, secs: u16) -> Self {
        self.margin_secs = i64::from(secs);
        self
    }

    /// Takes invoices without a BOLT11 feature field, as LNbits' FakeWallet test backend
    /// writes them (see [`parse_invoice_without_features`]). Real funding sources (LND,
    /// Core Lightning, …) set the field; leave this off for them.
    pub fn allow_invoices_without_features(mut self) -> Self {
        self.require_features = false;
        self
    }

    /// Seconds of history each [`settlements_after`](LightningBackend::settlements_after)
    /// reads again before its resume point (60 by default; see [`Self::settled_since`]).
    pub fn settlement_overlap_secs(mut self, secs: u32) -> Self {
        self.overlap = time::Duration::seconds(i64::from(secs));
        self
    }

    /// Creates the invoice of `order` (whole sats: LNbits takes sats), expiring before the
    /// order does; checks the BOLT11 LNbits returns against the order.
    fn create(&self, order: &InvoiceOrder) -> Result<LightningInvoice, RequestError> {
        let amount = order.amount;
        if !amount.get().is_multiple_of(MSATS_PER_SAT) || amount.get() == 0 {
            return Err(RequestError::InvalidAmount {
                got: format!("{} msat (LNbits invoices are whole sats)", amount.get()),
            });
        }
        let expiry = (order.expires_at - order.now).whole_seconds() - self.margin_secs;
        if expiry < 1 {
            return Err(backend("the quote expires before an invoice could", false));
        }
        let mut body = serde_json::json!({
            "out": false,
            "amount": amount.get() / MSATS_PER_SAT,
            "expiry": expiry,
        });
        match &order.description {
            InvoiceDescription::Text(memo) => body["memo"] = Value::from(memo.as_str()),
            InvoiceDescription::Hash(hash) => {
                body["description_hash"] = Value::from(hash.to_string())
            }
        }
        let answer = self.call(
            self.agent
                .post(&format!("{}/api/v1/payments", self.base_url))
                .header("X-Api-Key", &self.invoice_key)
                .send_json(body),
        )?;
        let bolt11 = answer
            .get("bolt11")
            .or_else(|| answer.get("payment_request"))
            .and_then(Value::as_str)
            .ok_or_else(|| backend("LNbits answered without a bolt11", false))?;
        let parsed = if self.require_features {
            parse_invoice(bolt11)?
        } else {
            parse_invoice_without_features(bolt11)?
        };
        let stated = answer.get("payment_hash").and_then(Value::as_str);
        if stated != Some(parsed.payment_hash.to_string().as_str()) {
            return Err(backend(
                "LNbits stated another payment hash than its invoice's",
                false,
            ));
        }
        parsed.for_quote(self.network, amount, order.expires_at)
    }

    /// The state of the wallet's invoice with `hash` (`None` if LNbits does not know it).
    fn lookup(&self, hash: &PaymentHash) -> Result<Option<InvoiceState>, RequestError> {
        let response = self
            .agent
            .get(&format!("{}/api/v1/payments/{hash}", self.base_url))
            .header("X-Api-Key", &self.invoice_key)
            .call();
        if let Ok(r) = &response
            && r.status().as_u16() == 404
        {
            return Ok(None);
        }
        let answer = self.call(response)?;
        let paid = answer
            .get("paid")
            .and_then(Value::as_bool)
            .ok_or_else(|| backend("LNbits answered without `paid`", false))?;
        if !paid {
            // LNbits marks an invoice that can no longer be paid as failed.
            let failed = answer.get("status").and_then(Value::as_str) == Some("failed");
            return Ok(Some(if failed {
                InvoiceState::Closed
            } else {
                InvoiceState::Open
            }));
        }
        let details = answer.get("details").unwrap_or(&Value::Null);
        // Amounts are integers of msats; a number that is not one is refused, never rounded.
        let amount = details
            .get("amount")
            .and_then(Value::as_i64)
            .and_then(|a| u64::try_from(a).ok())
            .ok_or_else(|| backend("LNbits answered without a positive msat amount", false))?;
        Ok(Some(InvoiceState::Settled {
            amount: Msats::new(amount),
        }))
    }

    /// Every settled incoming payment of the wallet that LNbits changed at or after
    /// `resume_at - overlap` (all of them when `resume_at` is `None`), oldest first.
    ///
    /// LNbits lists payments sorted by `updated_at` but cannot filter by it, so this walks
    /// the list newest first, a page of 100 at a time, until it passes the resume point
    /// less `overlap`. The overlap covers payments whose change committed after a newer
    /// one was already visible (and clocks of whole seconds); what it brings again is
    /// recognised by its payment hash. A payment changed during the walk moves to the top
    /// of the list, past where the walk reads: it is found by the next call, since its new
    /// `updated_at` is after the resume point this call returns. Outgoing payments (negative
    /// amounts) are left out.
    pub fn settled_since(
        &self,
        resume_at: Option<OffsetDateTime>,
        overlap: time::Duration,
    ) -> Result<LnbitsSettlements, RequestError> {
        let floor = resume_at.map(|at| at - overlap);
        let mut newest = resume_at;
        let mut found = Vec::new();
        let mut offset = 0usize;
        loop {
            let answer = self.call(
                self.agent
                    .get(&format!("{}/api/v1/payments/paginated", self.base_url))
                    .query("status", "success")
                    .query("sortby", "updated_at")
                    .query("direction", "desc")
                    .query("limit", PAGE.to_string())
                    .query("offset", offset.to_string())
                    .header("X-Api-Key", &self.invoice_key)
                    .call(),
            )?;
            let rows = answer
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| backend("LNbits listed payments without `data`", false))?;
            let mut passed_floor = false;
            for row in rows {
                let settlement = settlement(row)?;
                if floor.is_some_and(|f| settlement.updated_at < f) {
                    passed_floor = true;
                    break;
                }
                newest = newest.max(Some(settlement.updated_at));
                if settlement.amount.get() > 0 {
                    found.push(settlement);
                }
            }
            if passed_floor || rows.len() < PAGE {
                break;
            }
            offset += rows.len();
        }
        found.reverse();
        Ok(LnbitsSettlements {
            settlements: found,
            resume_at: newest,
        })
    }

    /// The JSON body of a 200 answer, or the typed error.
    fn call(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, RequestError> {
        let mut response =
            response.map_err(|e| backend(&format!("LNbits unreachable: {e}"), true))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| backend(&format!("reading LNbits' answer: {e}"), true))?;
        match status {
            200 | 201 => serde_json::from_str(&text)
                .map_err(|_| backend("LNbits answered something that is not JSON", false)),
            429 | 500..=599 => Err(backend(&format!("LNbits answered HTTP {status}"), true)),
            _ => Err(backend(
                &format!("LNbits refused the call: HTTP {status}"),
                false,
            )),
        }
    }
}

/// One row of LNbits' payment list. Amounts are integers of msats (negative for outgoing
/// payments, which give 0 here); a number that is not an integer is refused, never rounded.
fn settlement(row: &Value) -> Result<LnbitsSettlement, RequestError> {
    let payment_hash = row
        .get("payment_hash")
        .and_then(Value::as_str)
        .and_then(|h| h.parse::<PaymentHash>().ok())
        .ok_or_else(|| {
            backend(
                "LNbits listed a payment without a valid payment hash",
                false,
            )
        })?;
    let amount = row
        .get("amount")
        .and_then(Value::as_i64)
        .ok_or_else(|| backend("LNbits listed a payment without an integer amount", false))?;
    let updated_at = row
        .get("updated_at")
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .ok_or_else(|| {
            backend(
                "LNbits listed a payment without an RFC 3339 updated_at",
                false,
            )
        })?;
    Ok(LnbitsSettlement {
        payment_hash,
        amount: Msats::new(u64::try_from(amount).unwrap_or(0)),
        updated_at,
    })
}

fn backend(message: &str, retryable: bool) -> RequestError {
    RequestError::Backend {
        message: message.to_owned(),
        retryable,
    }
}

impl InvoiceSource for LnbitsBackend {
    fn invoice(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<LightningInvoice, RequestError> {
        self.create(&InvoiceOrder::for_quote(session, terms))
    }
}

impl LightningBackend for LnbitsBackend {
    fn create_invoice(&self, order: &InvoiceOrder) -> Result<LightningInvoice, RequestError> {
        self.create(order)
    }

    fn lookup_invoice(&self, hash: &PaymentHash) -> Result<Option<InvoiceState>, RequestError> {
        self.lookup(hash)
    }

    /// LNbits cancels only hold invoices, and only with the admin key; an ordinary invoice
    /// stays payable until it expires: this only looks the invoice up and says so.
    fn cancel_invoice(&self, hash: &PaymentHash) -> Result<Cancellation, RequestError> {
        Ok(match self.lookup(hash)? {
            Some(InvoiceState::Settled { .. }) => Cancellation::AlreadySettled,
            Some(InvoiceState::Closed) => Cancellation::Cancelled,
            _ => Cancellation::Unsupported,
        })
    }

    /// The resume point is the newest `updated_at` seen, in RFC 3339.
    fn settlements_after(
        &self,
        resume: Option<&ResumePoint>,
    ) -> Result<SettlementBatch, RequestError> {
        let resume_at = resume
            .map(|r| {
                OffsetDateTime::parse(r.as_str(), &Rfc3339)
                    .map_err(|_| backend("the saved LNbits resume point is not RFC 3339", false))
            })
            .transpose()?;
        let listed = self.settled_since(resume_at, self.overlap)?;
        let resume_point = listed
            .resume_at
            .map(|at| {
                at.format(&Rfc3339)
                    .map(ResumePoint::new)
                    .map_err(|_| backend("an LNbits date cannot be written as RFC 3339", false))
            })
            .transpose()?;
        Ok(SettlementBatch {
            settlements: listed
                .settlements
                .iter()
                .map(|s| Settlement::new(s.payment_hash, s.amount))
                .collect(),
            resume_point,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(amount: &str, updated_at: &str) -> Value {
        let hash = "ab".repeat(32);
        serde_json::from_str(&format!(
            r#"{{"payment_hash":"{hash}","amount":{amount},"updated_at":"{updated_at}"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn list_rows_are_read_exactly_or_refused() {
        let ok = settlement(&row("100000", "2026-12-03T11:18:46.865941+00:00")).unwrap();
        assert_eq!(ok.amount, Msats::new(100_000));
        assert_eq!(ok.updated_at.microsecond(), 865_941);
        // An outgoing payment credits nothing.
        let out = settlement(&row("-100000", "2026-12-03T11:18:46+00:00")).unwrap();
        assert_eq!(out.amount, Msats::new(0));
        // A fractional amount is refused, not rounded; so is a date that is not RFC 3339.
        for bad in [
            row("1000.5", "2026-12-03T11:18:46+00:00"),
            row("1e3", "2026-12-03T11:18:46+00:00"),
            row("1000", "2026-12-03 11:18:46"),
            serde_json::json!({"amount": 1000, "updated_at": "2026-12-03T11:18:46+00:00"}),
        ] {
            match settlement(&bad) {
                Err(RequestError::Backend { retryable, .. }) => assert!(!retryable),
                other => panic!("{bad}: want a backend error, got {other:?}"),
            }
        }
    }
}
