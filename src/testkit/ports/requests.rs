//! The payment-request generator suite: the contract of
//! [`PaymentRequestGenerator`], checked through the core's own quote flow.
//!
//! Each check creates sessions with the core, computes their quotes' terms at a fixed rate
//! (1,000 sats per USD), asks the generator, and issues the quote with what it returned,
//! so a request the core would refuse fails the check that made it, with the core's reason.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use super::{fail, on_threads};
use crate::id::{PaymentId, SessionId};
use crate::money::{Currency, ExchangeRate, TargetCurrency};
use crate::payment::PaymentRequest;
use crate::request::PaymentRequestGenerator;
use crate::session::{CheckoutSession, QuoteTerms, SessionParams};
use crate::transfer::PaymentMethod;

/// Sessions per uniqueness check, and per thread in the threaded one.
const SESSIONS: usize = 64;
const THREADS: usize = 4;

/// A generator under test and the payment methods it serves (both by default).
#[derive(Debug)]
pub struct GeneratorSubject<G> {
    generator: G,
    lightning: bool,
    onchain: bool,
    now: OffsetDateTime,
}

impl<G: PaymentRequestGenerator> GeneratorSubject<G> {
    /// `generator`, serving Lightning and on-chain, asked at the current time.
    pub fn new(generator: G) -> Self {
        Self {
            generator,
            lightning: true,
            onchain: true,
            now: OffsetDateTime::now_utc(),
        }
    }

    /// Whether the generator serves Lightning (makes invoices).
    pub fn lightning(mut self, serves: bool) -> Self {
        self.lightning = serves;
        self
    }

    /// Whether the generator serves on-chain (hands out addresses).
    pub fn onchain(mut self, serves: bool) -> Self {
        self.onchain = serves;
        self
    }

    /// The time the checks quote at (now by default; a generator signing invoices with
    /// the system clock needs a time near it).
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.now = now;
        self
    }

    /// The method sets the checks use: each served method alone, then both.
    fn method_sets(&self) -> Vec<Vec<PaymentMethod>> {
        let mut sets = Vec::new();
        if self.lightning {
            sets.push(vec![PaymentMethod::Lightning]);
        }
        if self.onchain {
            sets.push(vec![PaymentMethod::Onchain]);
        }
        if self.lightning && self.onchain {
            sets.push(vec![PaymentMethod::Lightning, PaymentMethod::Onchain]);
        }
        sets
    }

    fn methods(&self, name: &str) -> Vec<PaymentMethod> {
        self.method_sets()
            .pop()
            .unwrap_or_else(|| fail(name, "the subject serves no payment method"))
    }

    /// A new session for `cents` USD accepting `methods`, with a quote ttl of 10 minutes.
    fn session(&self, name: &str, cents: i64, methods: &[PaymentMethod]) -> CheckoutSession {
        let params = SessionParams::new(Decimal::new(cents, 2), usd())
            .payment_methods(methods.iter().copied())
            .ttl_secs(600);
        match CheckoutSession::create(SessionId::generate(), params, self.now) {
            Ok((session, _)) => session,
            Err(e) => fail(
                name,
                format_args!("the core refused a fixture session: {e}"),
            ),
        }
    }

    /// The terms of `session`'s next quote at `now`.
    fn terms(&self, name: &str, session: &CheckoutSession, now: OffsetDateTime) -> QuoteTerms {
        let rate = ExchangeRate::new(
            usd(),
            TargetCurrency::Sats,
            Decimal::from(1_000),
            "suite",
            now,
        )
        .unwrap_or_else(|e| fail(name, format_args!("fixture rate: {e}")));
        let id = session.next_payment_id(PaymentId::generate());
        session.next_quote(id, rate, now).unwrap_or_else(|e| {
            fail(
                name,
                format_args!("the core refused the fixture quote: {e}"),
            )
        })
    }

    /// Asks the generator; a failure fails the check.
    fn generate(
        &self,
        name: &str,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> PaymentRequest {
        self.generator.generate(session, terms).unwrap_or_else(|e| {
            fail(
                name,
                format_args!("generate for {} failed: {e}", session.id()),
            )
        })
    }

    /// Quotes `session` at `now` and issues the quote with the generator's request; the
    /// core's refusal fails the check with its reason.
    fn quote(
        &self,
        name: &str,
        session: &mut CheckoutSession,
        now: OffsetDateTime,
    ) -> PaymentRequest {
        let terms = self.terms(name, session, now);
        let request = self.generate(name, session, &terms);
        if let Err(e) = session.issue_quote(terms, request.clone(), now) {
            fail(
                name,
                format_args!("the core refused the generator's request: {e}"),
            );
        }
        request
    }
}

fn usd() -> Currency {
    Currency::Fiat(iso_currency::Currency::USD)
}

/// Every invoice asks exactly the quote's amount, read from its own string (BOLT11 decoded
/// with the `lightning` feature), for amounts from one cent to ten thousand dollars.
pub fn check_request_exact_amount<G: PaymentRequestGenerator>(subject: &GeneratorSubject<G>) {
    let name = "check_request_exact_amount";
    if !subject.lightning {
        return on_chain_only(subject, name);
    }
    for cents in [1, 99, 1_234, 50_001, 1_000_000] {
        let session = subject.session(name, cents, &[PaymentMethod::Lightning]);
        let terms = subject.terms(name, &session, subject.now);
        let request = subject.generate(name, &session, &terms);
        let Some(invoice) = request.lightning else {
            fail(name, "a Lightning session got no invoice");
        };
        if let Err(e) = invoice.check_for_quote(terms.target_msats(), terms.expires_at()) {
            fail(
                name,
                format_args!(
                    "the invoice for a quote of {} msats: {e}",
                    terms.target_msats().get()
                ),
            );
        }
    }
}

/// An on-chain-only subject has no invoice amounts to check; its requests must still carry
/// no invoice.
fn on_chain_only<G: PaymentRequestGenerator>(subject: &GeneratorSubject<G>, name: &str) {
    let session = subject.session(name, 1_234, &[PaymentMethod::Onchain]);
    let terms = subject.terms(name, &session, subject.now);
    if subject.generate(name, &session, &terms).lightning.is_some() {
        fail(name, "an on-chain-only session got an invoice");
    }
}

/// Every invoice expires no later than its quote, also for a quote cut short by its
/// session's own expiry.
pub fn check_request_expires_with_the_quote<G: PaymentRequestGenerator>(
    subject: &GeneratorSubject<G>,
) {
    let name = "check_request_expires_with_the_quote";
    if !subject.lightning {
        return on_chain_only(subject, name);
    }
    let short = SessionParams::new(Decimal::new(500, 2), usd())
        .payment_methods([PaymentMethod::Lightning])
        .ttl_secs(900)
        .expires_at(subject.now + Duration::seconds(360));
    let cut_short = CheckoutSession::create(SessionId::generate(), short, subject.now)
        .map(|(s, _)| s)
        .unwrap_or_else(|e| fail(name, format_args!("fixture session: {e}")));
    let plain = subject.session(name, 500, &[PaymentMethod::Lightning]);
    for session in [plain, cut_short] {
        let terms = subject.terms(name, &session, subject.now);
        let request = subject.generate(name, &session, &terms);
        let Some(invoice) = request.lightning else {
            fail(name, "a Lightning session got no invoice");
        };
        if invoice.expires_at > terms.expires_at() {
            fail(
                name,
                format_args!(
                    "the invoice expires at {}, after its quote ({})",
                    invoice.expires_at,
                    terms.expires_at()
                ),
            );
        }
    }
}

/// Every request carries exactly the parts its session accepts (an invoice iff Lightning,
/// an address iff on-chain), and the core issues the quote with it.
pub fn check_request_is_complete<G: PaymentRequestGenerator>(subject: &GeneratorSubject<G>) {
    let name = "check_request_is_complete";
    for methods in subject.method_sets() {
        let mut session = subject.session(name, 2_500, &methods);
        let request = subject.quote(name, &mut session, subject.now);
        let wants_invoice = methods.contains(&PaymentMethod::Lightning);
        let wants_address = methods.contains(&PaymentMethod::Onchain);
        if request.lightning.is_some() != wants_invoice
            || request.onchain_address.is_some() != wants_address
        {
            fail(
                name,
                format_args!(
                    "a session accepting {methods:?} got invoice: {}, address: {}",
                    request.lightning.is_some(),
                    request.onchain_address.is_some()
                ),
            );
        }
    }
}

/// The invoices of many sessions have distinct payment hashes and strings.
pub fn check_request_hashes_unique_across_sessions<G: PaymentRequestGenerator>(
    subject: &GeneratorSubject<G>,
) {
    let name = "check_request_hashes_unique_across_sessions";
    if !subject.lightning {
        return on_chain_only(subject, name);
    }
    let requests: Vec<PaymentRequest> = (0..SESSIONS)
        .map(|_| {
            let session = subject.session(name, 1_000, &[PaymentMethod::Lightning]);
            let terms = subject.terms(name, &session, subject.now);
            subject.generate(name, &session, &terms)
        })
        .collect();
    distinct_invoices(name, &requests);
}

/// The invoices made for sessions on several threads at once have distinct payment hashes.
pub fn check_request_hashes_unique_across_threads<G: PaymentRequestGenerator>(
    subject: &GeneratorSubject<G>,
) {
    let name = "check_request_hashes_unique_across_threads";
    if !subject.lightning {
        return on_chain_only(subject, name);
    }
    let sessions: Vec<Vec<(CheckoutSession, QuoteTerms)>> = (0..THREADS)
        .map(|_| {
            (0..SESSIONS / THREADS)
                .map(|_| {
                    let s = subject.session(name, 1_000, &[PaymentMethod::Lightning]);
                    let terms = subject.terms(name, &s, subject.now);
                    (s, terms)
                })
                .collect()
        })
        .collect();
    let requests: Vec<PaymentRequest> = on_threads(THREADS, |i| {
        sessions[i]
            .iter()
            .map(|(s, terms)| subject.generate(name, s, terms))
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    distinct_invoices(name, &requests);
}

fn distinct_invoices(name: &str, requests: &[PaymentRequest]) {
    let mut hashes = BTreeSet::new();
    let mut strings = BTreeSet::new();
    for (i, invoice) in requests
        .iter()
        .filter_map(|r| r.lightning.as_ref())
        .enumerate()
    {
        if !hashes.insert(invoice.payment_hash) {
            fail(
                name,
                format_args!(
                    "invoice {i} repeats payment hash {}: a payment to it would be credited to the first session",
                    invoice.payment_hash
                ),
            );
        }
        if !strings.insert(invoice.payment_request.clone()) {
            fail(
                name,
                format_args!("invoice {i} repeats an earlier invoice string"),
            );
        }
    }
}

/// A session keeps its address: its second quote, after the first ran out, carries the
/// address the first gave it.
pub fn check_request_address_kept_on_requote<G: PaymentRequestGenerator>(
    subject: &GeneratorSubject<G>,
) {
    let name = "check_request_address_kept_on_requote";
    if !subject.onchain {
        return lightning_only(subject, name);
    }
    let mut session = subject.session(name, 1_500, &subject.methods(name));
    let first = subject.quote(name, &mut session, subject.now);
    let later = subject.now + Duration::seconds(601);
    if let Err(e) = session.expire_quotes(later) {
        fail(name, format_args!("the core did not expire the quote: {e}"));
    }
    let second = subject.quote(name, &mut session, later);
    if first.onchain_address != second.onchain_address {
        fail(
            name,
            format_args!(
                "the re-quote's address {:?} differs from the session's {:?}",
                second.onchain_address, first.onchain_address
            ),
        );
    }
}

/// The addresses of many sessions are distinct.
pub fn check_request_addresses_unique<G: PaymentRequestGenerator>(subject: &GeneratorSubject<G>) {
    let name = "check_request_addresses_unique";
    if !subject.onchain {
        return lightning_only(subject, name);
    }
    let mut seen = BTreeSet::new();
    for i in 0..SESSIONS {
        let mut session = subject.session(name, 1_000, &[PaymentMethod::Onchain]);
        let request = subject.quote(name, &mut session, subject.now);
        let Some(address) = request.onchain_address else {
            fail(name, "an on-chain session got no address");
        };
        if !seen.insert(address.clone()) {
            fail(
                name,
                format_args!("session {i} got address {address}, already another session's"),
            );
        }
    }
}

/// A Lightning-only subject has no addresses to check; its requests must carry none.
fn lightning_only<G: PaymentRequestGenerator>(subject: &GeneratorSubject<G>, name: &str) {
    let session = subject.session(name, 1_234, &[PaymentMethod::Lightning]);
    let terms = subject.terms(name, &session, subject.now);
    if subject
        .generate(name, &session, &terms)
        .onchain_address
        .is_some()
    {
        fail(name, "a Lightning-only session got an address");
    }
}

/// Runs every check of the generator suite on `subject`.
pub fn run_request_generator<G: PaymentRequestGenerator>(subject: &GeneratorSubject<G>) {
    check_request_exact_amount(subject);
    check_request_expires_with_the_quote(subject);
    check_request_is_complete(subject);
    check_request_hashes_unique_across_sessions(subject);
    check_request_hashes_unique_across_threads(subject);
    check_request_address_kept_on_requote(subject);
    check_request_addresses_unique(subject);
}
