//! A checkout session driven by a fuzz-chosen sequence of commands: quotes at any rate,
//! Lightning payments to a quote's invoice, on-chain payments with confirmations, RBF and
//! reversals, re-reports and duplicates, time passing (past quote expiries too), updates,
//! deactivation, and deliberately bad commands (unknown invoices and addresses, mismatched
//! amounts, defective payment requests, a clock that went backwards, zero amounts).
//!
//! After every step:
//! * a refused command, or one that returned no events, left the session equal to its clone
//!   from before the step; one that returned events bumped the version by one and set
//!   `modified` (and every event's time) to the command's time, truncated to milliseconds;
//! * a terminal status (paid, deactivated) never changes, nor its time;
//! * `totals().counted + totals().pending` is the sum of the non-reversed transfers that
//!   arrived `Expected` or `AfterQuoteExpiry`, and `counted` is those confirmed enough under
//!   the session's policy (recomputed here from the transfers);
//! * the late, paid-after-expiry and refund-due flags are what the transfers say;
//! * the session became paid only when its counted credit (`floor(due × counted / target)`
//!   per quote, in minor units) reached `amount − floor(amount × tolerance / 100)`, and an
//!   active session is below that threshold;
//! * at most one quote is open, none once the session is terminal;
//! * the events so far add up (one `paid` iff paid, one `deactivated` iff deactivated, one
//!   `payment.created` per quote, one `transfer_received` per transfer);
//! * the session survives its JSON forms (`to_json`/`from_json`, and the stores' rows of
//!   `store::rows`: `decode_session` of `session_rows`, given in reverse order), and the
//!   events' webhook JSON parses back;
//! * each command's `SessionChange` names exactly what it touched: a store that wrote only
//!   the session row and the payment and transfer rows the changes named, change after
//!   change, decodes the session as it is now.
#![no_main]

use arbitrary::Arbitrary;
use bitcoin_checkout::{OutPoint, Txid};
use bitcoin_checkout::money::{ExchangeRate, MAX_MONEY_SATS, MSATS_PER_SAT, Msats, Sats};
use bitcoin_checkout::request::Hash32;
use bitcoin_checkout::session::SessionChange;
use bitcoin_checkout::store::rows::{decode_session, session_rows};
use bitcoin_checkout::{
    Arrival, CheckoutSession, ConfirmationPolicy, Currency, Error, Event, EventType, FlagKind,
    LightningInvoice, Metadata, MetadataPatch, PaymentHash, PaymentId, PaymentMethod,
    PaymentRequest, PaymentStatus, SessionEvent, SessionId, SessionParams, SessionState,
    SessionStatus, SessionUpdate, TargetCurrency, Transfer, TransferKey, TransferReport,
};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

const ADDRESS: &str = "bcrt1qtestaddress0000000000000000000000000";
const WRONG_ADDRESS: &str = "bcrt1qwrongaddress000000000000000000000000";
const START: i64 = 1_767_225_600;

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct Input {
    spec: Spec,
    commands: Vec<Command>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum CurrencyChoice {
    Usd,
    Eur,
    Jpy,
    Kwd,
    Btc,
    Sats,
}

#[derive(Arbitrary, Debug)]
enum Ttl {
    Default,
    Short(u16),
    Any(u32),
}

#[derive(Arbitrary, Debug)]
struct Spec {
    currency: CurrencyChoice,
    amount_minor: u32,
    amount_exp: u8,
    target_btc: bool,
    tolerance_hundredths: u16,
    confirmations: u8,
    methods: u8,
    ttl: Ttl,
}

/// An amount relative to a quote's target.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Amount {
    Exact,
    /// `target × n / 256` (at least one unit).
    Part(u8),
    Over(u32),
    OneLess,
    Tiny,
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Defect {
    InvoiceOutlivesQuote,
    MissingInvoice,
    MissingAddress,
    WrongAddress,
    EmptyAddress,
    ReusedHash,
    ReusedPaymentId,
    IssuedBeforeTerms,
    RateForOtherPair,
}

#[derive(Arbitrary, Debug, Clone)]
enum Text {
    Short,
    Long,
    Control,
    Any(String),
}

#[derive(Arbitrary, Debug, Clone)]
enum Url {
    Valid,
    NotWeb,
    Any(String),
}

#[derive(Arbitrary, Debug, Clone)]
enum MetaValue {
    Text(Text),
    Number(i64),
    Bool(bool),
}

#[derive(Arbitrary, Debug, Clone)]
enum MetaKey {
    Order,
    Numbered(u8),
    Any(String),
}

#[derive(Arbitrary, Debug, Clone)]
struct UpdateSpec {
    description: Option<Option<Text>>,
    metadata: Vec<(MetaKey, Option<MetaValue>)>,
    clear_metadata: bool,
    success_url: Option<Option<Url>>,
    success_message: Option<Option<Text>>,
    cancel_url: Option<Option<Url>>,
    title: Option<Option<Text>>,
    title_description: Option<Option<Text>>,
    title_image: Option<Option<Url>>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ClockCommand {
    Record,
    Deactivate,
    Update,
    Expire,
    Quote,
}

#[derive(Arbitrary, Debug, Clone)]
enum Command {
    IssueQuote {
        mantissa: u32,
        scale: u8,
    },
    IssueBadQuote {
        mantissa: u32,
        scale: u8,
        defect: Defect,
    },
    PayLightning {
        quote: u8,
        amount: Amount,
    },
    PayUnknownInvoice {
        msats: u32,
    },
    PayOnchain {
        amount: Amount,
        confirmations: u8,
        rbf: bool,
        vout: u8,
        reversed: bool,
    },
    PayWrongAddress {
        sats: u32,
    },
    Rereport {
        transfer: u8,
        more: u8,
        rbf: bool,
    },
    Reverse {
        transfer: u8,
    },
    Duplicate {
        report: u8,
    },
    MismatchedAmount {
        transfer: u8,
        extra: u32,
    },
    KnownToWrongAddress {
        transfer: u8,
    },
    ZeroAmount,
    AdvanceTime {
        millis: u32,
        nanos: u32,
    },
    Wait {
        hours: u16,
    },
    ToQuoteExpiry {
        offset: i8,
    },
    Expire,
    Update(UpdateSpec),
    Deactivate,
    ClockBackwards {
        command: ClockCommand,
        millis: u16,
    },
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn hex_id<T: std::str::FromStr>(prefix: &str, n: u64) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("{prefix}{n:032x}").parse().expect("a valid id")
}

fn payment_id(n: u32) -> PaymentId {
    hex_id("pi_", u64::from(n))
}

fn invoice_hash(n: u32) -> PaymentHash {
    let mut b = [0u8; 32];
    b[28..].copy_from_slice(&n.to_be_bytes());
    Hash32::from_bytes(b)
}

fn txid(n: u32) -> Txid {
    let mut b = [0xabu8; 32];
    b[28..].copy_from_slice(&n.to_be_bytes());
    Txid::from_byte_array(b)
}

fn currency(c: CurrencyChoice) -> Currency {
    let code = match c {
        CurrencyChoice::Usd => "USD",
        CurrencyChoice::Eur => "EUR",
        CurrencyChoice::Jpy => "JPY",
        CurrencyChoice::Kwd => "KWD",
        CurrencyChoice::Btc => "BTC",
        CurrencyChoice::Sats => "SATS",
    };
    Currency::from_code(code).expect("a supported currency")
}

fn text(t: &Text) -> String {
    match t {
        Text::Short => "Order #1001".into(),
        Text::Long => "x".repeat(1001),
        Text::Control => "bell\u{7}".into(),
        Text::Any(s) => s.clone(),
    }
}

fn url(u: &Url) -> String {
    match u {
        Url::Valid => "https://shop.example/done?order=1001".into(),
        Url::NotWeb => "javascript:alert(1)".into(),
        Url::Any(s) => s.clone(),
    }
}

fn update_of(spec: &UpdateSpec) -> SessionUpdate {
    let mut u = SessionUpdate::new();
    macro_rules! field {
        ($value:expr, $set:ident, $clear:ident, $conv:expr) => {
            match &$value {
                None => {}
                Some(None) => u = u.$clear(),
                Some(Some(v)) => u = u.$set($conv(v)),
            }
        };
    }
    field!(spec.description, description, clear_description, text);
    field!(spec.success_url, success_url, clear_success_url, url);
    field!(
        spec.success_message,
        success_message,
        clear_success_message,
        text
    );
    field!(spec.cancel_url, cancel_url, clear_cancel_url, url);
    field!(spec.title, title, clear_title, text);
    field!(
        spec.title_description,
        title_description,
        clear_title_description,
        text
    );
    field!(spec.title_image, title_image, clear_title_image, url);
    if spec.clear_metadata {
        u = u.clear_metadata();
    }
    let mut patch = MetadataPatch::new();
    for (key, value) in &spec.metadata {
        let key = match key {
            MetaKey::Order => "order".to_owned(),
            MetaKey::Numbered(n) => format!("k{n}"),
            MetaKey::Any(s) => s.clone(),
        };
        patch = match value {
            None => patch.remove(key),
            Some(MetaValue::Text(t)) => patch.set(key, text(t)),
            Some(MetaValue::Number(n)) => patch.set(key, *n),
            Some(MetaValue::Bool(b)) => patch.set(key, *b),
        };
    }
    if !patch.is_empty() {
        u = u.metadata(patch);
    }
    u
}

/// `target` scaled by `amount`, in the target's unit; never zero unless `Raw(0)`.
fn scaled(target: u64, amount: Amount, unit_max: u64) -> u64 {
    let v = match amount {
        Amount::Exact => target,
        Amount::Part(n) => (u128::from(target) * u128::from(n) / 256).max(1) as u64,
        Amount::Over(extra) => target.saturating_add(u64::from(extra).max(1)),
        Amount::OneLess => target.saturating_sub(1).max(1),
        Amount::Tiny => 1,
        Amount::Raw(raw) => return raw,
    };
    v.min(unit_max)
}

/// One accepted report, to replay or extend.
#[derive(Debug, Clone)]
struct ReportSpec {
    key: TransferKey,
    amount: Msats,
    address: Option<String>,
    confirmations: u32,
    rbf: bool,
    reversed: bool,
}

impl ReportSpec {
    fn build(&self) -> TransferReport {
        let r = match self.key {
            TransferKey::Lightning(hash) => TransferReport::lightning(hash, self.amount),
            TransferKey::Onchain(OutPoint { txid, vout }) => TransferReport::onchain(OutPoint::new(txid, vout), self.address.clone().unwrap_or_default(), Sats::new(self.amount.get() / MSATS_PER_SAT)).confirmations(self.confirmations),
        };
        let r = r.signals_rbf(self.rbf);
        if self.reversed { r.reversed() } else { r }
    }
}

/// A store's rows of the session, by key: payment id → body, transfer key → body.
#[derive(Debug, Default)]
struct Stored {
    payments: BTreeMap<PaymentId, String>,
    transfers: BTreeMap<String, String>,
}

impl Stored {
    /// Writes the rows `change` names, as they are in `session`.
    fn write(&mut self, session: &CheckoutSession, change: &SessionChange, at: &str) {
        let rows =
            session_rows(session).unwrap_or_else(|e| panic!("session_rows fails: {e} ({at})"));
        for id in change.payments() {
            let text = id.to_string();
            let row = rows
                .payments
                .iter()
                .find(|p| p.id == text)
                .unwrap_or_else(|| {
                    panic!("the change names payment {id}, not in the session ({at})")
                });
            self.payments.insert(*id, row.body.clone());
        }
        for key in change.transfers() {
            let text = key.to_string();
            let row = rows
                .transfers
                .iter()
                .find(|t| t.key == text)
                .unwrap_or_else(|| {
                    panic!("the change names transfer {key}, not in the session ({at})")
                });
            self.transfers.insert(text, row.body.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

struct Run {
    session: CheckoutSession,
    /// What a store holds that wrote, for every change, the session row and only the
    /// payment and transfer rows the change named.
    stored: Stored,
    now: OffsetDateTime,
    /// Quote numbers issued so far (the next is `quotes + 1`).
    quotes: u32,
    txids: u32,
    reports: Vec<ReportSpec>,
    events: Vec<SessionEvent>,
    threshold_minor: u128,
    scale: u32,
    policy: ConfirmationPolicy,
}

fuzz_target!(|input: Input| {
    let Some(mut run) = Run::start(&input.spec) else {
        return;
    };
    for (step, command) in input.commands.iter().take(64).enumerate() {
        run.step(step, command);
    }
    if std::env::var_os("FUZZ_TRACE").is_some() {
        // Where a run ended, to see what the corpus reaches (`FUZZ_TRACE=1 <binary> <dir>`).
        let s = &run.session;
        eprintln!(
            "TRACE status={} payments={} transfers={} flags={:?} version={}",
            s.status().as_str(),
            s.payments().len(),
            s.transfers().count(),
            s.flags().iter().map(|f| f.kind).collect::<Vec<_>>(),
            s.version()
        );
    }
});

impl Run {
    fn start(spec: &Spec) -> Option<Self> {
        let currency = currency(spec.currency);
        let scale = currency.scale();
        let amount_minor = u64::from(spec.amount_minor) * 10u64.pow(u32::from(spec.amount_exp % 7));
        let amount = Decimal::from_i128_with_scale(i128::from(amount_minor), scale);
        let tolerance = u32::from(spec.tolerance_hundredths % 10_000);
        let policy = ConfirmationPolicy::from_confirmations(
            [0, 1, 2, 6][usize::from(spec.confirmations % 4)],
        )
        .expect("a valid policy");
        let methods: Vec<PaymentMethod> = match spec.methods % 3 {
            0 => vec![PaymentMethod::Lightning],
            1 => vec![PaymentMethod::Onchain],
            _ => vec![PaymentMethod::Lightning, PaymentMethod::Onchain],
        };
        let mut params = SessionParams::new(amount, currency)
            .target_currency(if spec.target_btc {
                TargetCurrency::Btc
            } else {
                TargetCurrency::Sats
            })
            .payment_methods(methods)
            .tolerance(Decimal::new(i64::from(tolerance), 2))
            .confirmations(policy)
            .description("initial")
            .metadata(Metadata::from_pairs([("order", "1001")]).expect("valid metadata"));
        params = match spec.ttl {
            Ttl::Default => params,
            Ttl::Short(s) => params.ttl_secs(300 + i64::from(s % 901)),
            Ttl::Any(s) => params.ttl_secs(i64::from(s)),
        };
        let now = OffsetDateTime::from_unix_timestamp(START).expect("a valid time");
        let id: SessionId = hex_id("cs_", 7);
        let (session, change) = CheckoutSession::create(id, params, now).ok()?;
        let mut stored = Stored::default();
        stored.write(&session, &change, "create");
        let events = change.into_events();
        let amount_minor = u128::from(amount_minor);
        let threshold_minor = amount_minor - amount_minor * u128::from(tolerance) / 10_000;
        let run = Self {
            session,
            stored,
            now,
            quotes: 0,
            txids: 0,
            reports: Vec::new(),
            events,
            threshold_minor,
            scale,
            policy,
        };
        run.check_state("create");
        Some(run)
    }

    fn rate(&self, mantissa: u32, scale: u8) -> Option<ExchangeRate> {
        let rate = Decimal::new(i64::from(mantissa), u32::from(scale % 13));
        ExchangeRate::new(
            self.session.currency(),
            self.session.target_currency(),
            rate,
            "fuzz",
            self.now,
        )
        .ok()
    }

    fn request_for(&self, expires_at: OffsetDateTime, target_msats: u64, n: u32) -> PaymentRequest {
        PaymentRequest {
            lightning: self
                .session
                .accepts(PaymentMethod::Lightning)
                .then(|| LightningInvoice {
                    payment_request: format!("lntest{target_msats}n1fake{n}"),
                    payment_hash: invoice_hash(n),
                    expires_at,
                }),
            onchain_address: self
                .session
                .accepts(PaymentMethod::Onchain)
                .then(|| ADDRESS.to_owned()),
        }
    }

    /// The quote an on-chain transfer first seen now goes to: the open one, else the latest.
    fn onchain_quote_target(&self) -> Option<u64> {
        let payments = self.session.payments();
        payments
            .iter()
            .find(|p| p.status() == PaymentStatus::Unpaid)
            .or(payments.last())
            .map(|p| p.target().get())
    }

    fn step(&mut self, step: usize, command: &Command) {
        let before = self.session.clone();
        let mut must_fail = false;
        let result: Result<SessionChange, Error> = match command {
            Command::IssueQuote { mantissa, scale } => {
                let Some(rate) = self.rate(*mantissa, *scale) else {
                    return;
                };
                let n = self.quotes + 1;
                match self.session.next_quote(payment_id(n), rate, self.now) {
                    Ok(terms) => {
                        assert_eq!(self.session, before, "next_quote changed the session");
                        let request =
                            self.request_for(terms.expires_at(), terms.target_msats().get(), n);
                        self.session.issue_quote(terms, request, self.now)
                    }
                    Err(e) => Err(e),
                }
            }
            Command::IssueBadQuote {
                mantissa,
                scale,
                defect,
            } => {
                let n = self.quotes + 1;
                let rate = if let Defect::RateForOtherPair = defect {
                    let other = if self.session.currency() == Currency::Sats {
                        "USD"
                    } else {
                        "SATS"
                    };
                    let Ok(rate) = ExchangeRate::new(
                        Currency::from_code(other).expect("supported"),
                        self.session.target_currency(),
                        Decimal::new(i64::from(*mantissa).max(1), u32::from(*scale % 13)),
                        "fuzz",
                        self.now,
                    ) else {
                        return;
                    };
                    must_fail = true;
                    rate
                } else {
                    let Some(rate) = self.rate(*mantissa, *scale) else {
                        return;
                    };
                    rate
                };
                let issue_at = self.now;
                let terms_at = if let Defect::IssuedBeforeTerms = defect {
                    must_fail = true;
                    self.now + Duration::milliseconds(1)
                } else {
                    self.now
                };
                match self.session.next_quote(payment_id(n), rate, terms_at) {
                    Ok(terms) => {
                        let mut id_n = n;
                        let mut request =
                            self.request_for(terms.expires_at(), terms.target_msats().get(), n);
                        let ln = self.session.accepts(PaymentMethod::Lightning);
                        let onchain = self.session.accepts(PaymentMethod::Onchain);
                        match defect {
                            Defect::InvoiceOutlivesQuote if ln => {
                                if let Some(inv) = request.lightning.as_mut() {
                                    inv.expires_at = terms.expires_at() + Duration::milliseconds(1);
                                }
                                must_fail = true;
                            }
                            Defect::MissingInvoice if ln => {
                                request.lightning = None;
                                must_fail = true;
                            }
                            Defect::MissingAddress if onchain => {
                                request.onchain_address = None;
                                must_fail = true;
                            }
                            Defect::WrongAddress
                                if onchain && self.session.onchain_address().is_some() =>
                            {
                                request.onchain_address = Some(WRONG_ADDRESS.into());
                                must_fail = true;
                            }
                            Defect::EmptyAddress if onchain => {
                                request.onchain_address = Some(String::new());
                                must_fail = true;
                            }
                            Defect::ReusedHash if ln && self.quotes > 0 => {
                                if let Some(inv) = request.lightning.as_mut() {
                                    inv.payment_hash = invoice_hash(1);
                                }
                                must_fail = true;
                            }
                            Defect::ReusedPaymentId if self.quotes > 0 => {
                                id_n = 1;
                                must_fail = true;
                            }
                            _ => {}
                        }
                        let terms = if id_n == n {
                            terms
                        } else {
                            match self.session.next_quote(
                                payment_id(id_n),
                                terms.rate().clone(),
                                terms_at,
                            ) {
                                Ok(t) => t,
                                Err(e) => panic!("next_quote fails with another id only: {e}"),
                            }
                        };
                        self.session.issue_quote(terms, request, issue_at)
                    }
                    Err(e) => Err(e),
                }
            }
            Command::PayLightning { quote, amount } => {
                let payments = self.session.payments();
                let chosen = usize::from(*quote) % (payments.len() + 1);
                let invoice = payments.get(chosen).or(payments.last()).map(|p| {
                    (
                        p.request().lightning.as_ref().map(|l| l.payment_hash),
                        p.target_msats().get(),
                    )
                });
                match invoice {
                    // No quote yet: nothing to pay.
                    None => {
                        must_fail = true;
                        let r = TransferReport::lightning(invoice_hash(1), Msats::new(1000));
                        self.session.record_transfer(r, self.now)
                    }
                    // On-chain only.
                    Some((None, _)) => return,
                    Some((Some(hash), target)) => {
                        let msats = scaled(target, *amount, MAX_MONEY_SATS * MSATS_PER_SAT);
                        if msats == 0 || msats > MAX_MONEY_SATS * MSATS_PER_SAT {
                            must_fail = true;
                        }
                        self.record(ReportSpec {
                            key: TransferKey::Lightning(hash),
                            amount: Msats::new(msats),
                            address: None,
                            confirmations: 0,
                            rbf: false,
                            reversed: false,
                        })
                    }
                }
            }
            Command::PayUnknownInvoice { msats } => {
                must_fail = true;
                let r = TransferReport::lightning(
                    invoice_hash(0xdead_0000 | u32::from(*msats as u16)),
                    Msats::new(u64::from(*msats).max(1)),
                );
                self.session.record_transfer(r, self.now)
            }
            Command::PayOnchain {
                amount,
                confirmations,
                rbf,
                vout,
                reversed,
            } => {
                self.txids += 1;
                let key = TransferKey::Onchain(OutPoint::new(txid(self.txids), u32::from(*vout)));
                match self.onchain_quote_target() {
                    // No quote yet, so no address to pay.
                    None => {
                        must_fail = true;
                        let r = TransferReport::onchain(OutPoint::new(txid(self.txids), 0), ADDRESS, Sats::new(1000)).confirmations(1);
                        self.session.record_transfer(r, self.now)
                    }
                    Some(target) => {
                        let sats = scaled(target, *amount, MAX_MONEY_SATS).min(MAX_MONEY_SATS);
                        if sats == 0 {
                            must_fail = true;
                        }
                        self.record(ReportSpec {
                            key,
                            amount: Sats::new(sats).to_msats(),
                            address: Some(ADDRESS.into()),
                            confirmations: u32::from(*confirmations % 8),
                            rbf: *rbf,
                            reversed: *reversed,
                        })
                    }
                }
            }
            Command::PayWrongAddress { sats } => {
                must_fail = true;
                self.txids += 1;
                let r = TransferReport::onchain(OutPoint::new(txid(self.txids), 0), WRONG_ADDRESS, Sats::new(u64::from(*sats).max(1))).confirmations(6);
                self.session.record_transfer(r, self.now)
            }
            Command::Rereport {
                transfer,
                more,
                rbf,
            } => {
                let Some(mut r) = self.pick(*transfer) else {
                    return;
                };
                r.confirmations = r.confirmations.saturating_add(u32::from(*more % 8));
                r.rbf |= *rbf;
                self.record(r)
            }
            Command::Reverse { transfer } => {
                let Some(mut r) = self.pick(*transfer) else {
                    return;
                };
                r.reversed = true;
                self.record(r)
            }
            Command::Duplicate { report } => {
                let Some(r) = self.pick(*report) else { return };
                let result = self.session.record_transfer(r.build(), self.now);
                if let Ok(change) = &result {
                    assert!(
                        change.events().is_empty(),
                        "a duplicate report made events: {change:?}"
                    );
                }
                result
            }
            Command::MismatchedAmount { transfer, extra } => {
                let Some(mut r) = self.pick(*transfer) else {
                    return;
                };
                let unit = if matches!(r.key, TransferKey::Lightning(_)) {
                    1
                } else {
                    MSATS_PER_SAT
                };
                r.amount = Msats::new(r.amount.get() + u64::from(*extra).max(1) * unit);
                must_fail = true;
                self.session.record_transfer(r.build(), self.now)
            }
            Command::KnownToWrongAddress { transfer } => {
                let Some(mut r) = self.pick(*transfer) else {
                    return;
                };
                if r.address.is_none() {
                    return;
                }
                r.address = Some(WRONG_ADDRESS.into());
                must_fail = true;
                self.session.record_transfer(r.build(), self.now)
            }
            Command::ZeroAmount => {
                must_fail = true;
                let hash = self
                    .session
                    .payments()
                    .last()
                    .and_then(|p| p.request().lightning.as_ref().map(|l| l.payment_hash))
                    .unwrap_or_else(|| invoice_hash(1));
                self.session
                    .record_transfer(TransferReport::lightning(hash, Msats::ZERO), self.now)
            }
            Command::AdvanceTime { millis, nanos } => {
                self.now += Duration::milliseconds(i64::from(*millis % 2_000_000))
                    + Duration::nanoseconds(i64::from(*nanos % 1_000_000));
                return;
            }
            Command::Wait { hours } => {
                self.now += Duration::hours(i64::from(*hours % 10_000));
                return;
            }
            Command::ToQuoteExpiry { offset } => {
                let Some(open) = self.session.open_payment() else {
                    return;
                };
                let to = open.expires_at() + Duration::milliseconds(i64::from(offset % 2));
                if to > self.now {
                    self.now = to;
                }
                return;
            }
            Command::Expire => self.session.expire_quotes(self.now),
            Command::Update(spec) => self.session.update(&update_of(spec), self.now),
            Command::Deactivate => {
                if self.session.status() != SessionStatus::Active {
                    must_fail = true;
                }
                self.session.deactivate(self.now)
            }
            Command::ClockBackwards { command, millis } => {
                must_fail = true;
                let then = self.session.modified() - Duration::milliseconds(1 + i64::from(*millis));
                let result = match command {
                    ClockCommand::Record => {
                        let hash = self
                            .session
                            .payments()
                            .last()
                            .and_then(|p| p.request().lightning.as_ref().map(|l| l.payment_hash))
                            .unwrap_or_else(|| invoice_hash(1));
                        self.session.record_transfer(
                            TransferReport::lightning(hash, Msats::new(1000)),
                            then,
                        )
                    }
                    ClockCommand::Deactivate => self.session.deactivate(then),
                    ClockCommand::Update => self
                        .session
                        .update(&SessionUpdate::new().description("later"), then),
                    ClockCommand::Expire => self.session.expire_quotes(then),
                    ClockCommand::Quote => {
                        let Some(rate) = self.rate(1000, 0) else {
                            return;
                        };
                        self.session
                            .next_quote(payment_id(self.quotes + 1), rate, then)
                            .map(|_| SessionChange::default())
                    }
                };
                assert!(
                    matches!(result, Err(Error::ClockWentBackwards { .. })),
                    "a command before the last change gives {result:?}"
                );
                result
            }
        };
        self.finish(step, command, before, result, must_fail);
    }

    fn pick(&self, i: u8) -> Option<ReportSpec> {
        if self.reports.is_empty() {
            return None;
        }
        Some(self.reports[usize::from(i) % self.reports.len()].clone())
    }

    fn record(&mut self, report: ReportSpec) -> Result<SessionChange, Error> {
        let result = self.session.record_transfer(report.build(), self.now);
        if result.is_ok() {
            self.reports.push(report);
        }
        result
    }

    fn finish(
        &mut self,
        step: usize,
        command: &Command,
        before: CheckoutSession,
        result: Result<SessionChange, Error>,
        must_fail: bool,
    ) {
        let at = format!("step {step}: {command:?} -> {result:?}");
        let now_ms = truncate(self.now);
        match &result {
            Err(_) => assert_eq!(
                self.session, before,
                "a refused command changed the session ({at})"
            ),
            Ok(change) if change.events().is_empty() => {
                assert_eq!(
                    self.session, before,
                    "a command without events changed the session ({at})"
                );
                assert!(
                    change.is_empty(),
                    "a command without events names rows it touched ({at})"
                );
            }
            Ok(change) => {
                let events = change.events();
                assert!(!must_fail, "a bad command was accepted ({at})");
                assert_eq!(
                    self.session.version(),
                    before.version() + 1,
                    "version ({at})"
                );
                assert_eq!(self.session.modified(), now_ms, "modified ({at})");
                for e in events {
                    assert_eq!(e.at, now_ms, "event time ({at})");
                }
                if events
                    .iter()
                    .any(|e| e.event_type == EventType::PaymentCreated)
                {
                    self.quotes += 1;
                }
                let mut n = 0u64;
                for event in Event::all_for_session(events, &self.session, || {
                    n += 1;
                    hex_id("evt_", n)
                }) {
                    let json = event.to_json();
                    let back = Event::from_json(&json)
                        .unwrap_or_else(|e| panic!("event JSON refused: {e} ({at})"));
                    assert_eq!(back, event, "event round trip ({at})");
                }
                self.events.extend(events.iter().cloned());
                self.stored.write(&self.session, change, &at);
            }
        }
        if must_fail {
            assert!(result.is_err(), "a bad command was accepted ({at})");
        }
        // Terminal statuses never change back, nor their time.
        if before.state() != SessionState::Active {
            assert_eq!(
                self.session.state(),
                before.state(),
                "a terminal state changed ({at})"
            );
        }
        // Became paid: the counted credit reached the threshold.
        if before.status() == SessionStatus::Active && self.session.status() == SessionStatus::Paid
        {
            let credit = self.counted_credit();
            assert!(
                credit >= self.threshold_minor,
                "paid with a credit of {credit} below the threshold {} ({at})",
                self.threshold_minor
            );
        }
        self.check_state(&at);
    }

    /// Σ floor(due × counted / target) over the quotes, in minor units.
    fn counted_credit(&self) -> u128 {
        let policy = self.policy;
        self.session
            .payments()
            .iter()
            .map(|p| {
                let counted: u128 = self
                    .session
                    .transfers()
                    .filter(|t| t.payment_id == p.id() && credited(t) && confirmed(t, policy))
                    .map(|t| u128::from(t.amount.get()))
                    .sum();
                let mut due = p.due();
                due.rescale(self.scale);
                let due = u128::try_from(due.mantissa()).expect("a positive due");
                let target = u128::from(p.target_msats().get());
                assert!(target > 0, "a quote with a zero target");
                due * counted / target
            })
            .sum()
    }

    fn check_state(&self, at: &str) {
        let s = &self.session;
        let totals = s.totals();
        let policy = self.policy;
        let sum = |f: &dyn Fn(&Transfer) -> bool| -> u128 {
            s.transfers()
                .filter(|t| f(t))
                .map(|t| u128::from(t.amount.get()))
                .sum()
        };

        // Totals, recomputed from the transfers.
        let counted = sum(&|t| credited(t) && confirmed(t, policy));
        let pending = sum(&|t| credited(t) && !confirmed(t, policy));
        assert_eq!(
            u128::from(totals.counted.get()),
            counted,
            "totals.counted ({at})"
        );
        assert_eq!(
            u128::from(totals.pending.get()),
            pending,
            "totals.pending ({at})"
        );
        assert_eq!(
            u128::from(totals.counted.get()) + u128::from(totals.pending.get()),
            sum(&|t| credited(t)),
            "counted + pending = non-reversed Expected/AfterQuoteExpiry transfers ({at})"
        );

        // Flags.
        let flagged = |kind| u128::from(s.flagged(kind).get());
        assert_eq!(
            flagged(FlagKind::Late),
            sum(&|t| !t.reversed && t.arrival == Arrival::AfterDeactivated),
            "late flag ({at})"
        );
        assert_eq!(
            flagged(FlagKind::PaidAfterExpiry),
            sum(&|t| !t.reversed && t.arrival == Arrival::AfterQuoteExpiry),
            "paid-after-expiry flag ({at})"
        );
        let refund = if s.status() == SessionStatus::Deactivated {
            counted + pending
        } else {
            0
        };
        assert_eq!(
            flagged(FlagKind::RefundDue),
            refund,
            "refund-due flag ({at})"
        );
        assert!(
            flagged(FlagKind::Overpaid) >= sum(&|t| !t.reversed && t.arrival == Arrival::AfterPaid),
            "overpaid flag ({at})"
        );

        // Paid iff the threshold was reached while active.
        if s.status() == SessionStatus::Active {
            let credit = self.counted_credit();
            assert!(
                credit < self.threshold_minor,
                "active with a counted credit of {credit} >= threshold {} ({at})",
                self.threshold_minor
            );
        }
        if let SessionState::Paid { paid_at } = s.state() {
            assert!(paid_at <= s.modified(), "paid after the last change ({at})");
        }

        // Quotes.
        let open = s
            .payments()
            .iter()
            .filter(|p| p.status() == PaymentStatus::Unpaid)
            .count();
        assert!(open <= 1, "{open} open quotes ({at})");
        if s.status() != SessionStatus::Active {
            assert_eq!(open, 0, "an open quote on a terminal session ({at})");
        }

        // Events add up.
        let count = |t: EventType| self.events.iter().filter(|e| e.event_type == t).count();
        assert_eq!(
            count(EventType::CheckoutSessionCreated),
            1,
            "created events ({at})"
        );
        assert_eq!(
            count(EventType::CheckoutSessionPaid),
            usize::from(s.status() == SessionStatus::Paid),
            "paid events ({at})"
        );
        assert_eq!(
            count(EventType::CheckoutSessionDeactivated),
            usize::from(s.status() == SessionStatus::Deactivated),
            "deactivated events ({at})"
        );
        assert_eq!(
            count(EventType::PaymentCreated),
            s.payments().len(),
            "payment.created events ({at})"
        );
        assert_eq!(
            count(EventType::TransferReceived),
            s.transfers().count(),
            "transfer_received events ({at})"
        );

        // JSON forms.
        let json = s.to_json();
        let back = CheckoutSession::from_json(&json)
            .unwrap_or_else(|e| panic!("from_json(to_json) fails: {e} ({at})\n{json}"));
        assert_eq!(&back, s, "from_json(to_json(s)) != s ({at})\n{json}");
        assert_eq!(back.to_json(), json, "to_json not stable ({at})");
        // The stores' rows of the whole session, in reverse order.
        let rows = session_rows(s).unwrap_or_else(|e| panic!("session_rows fails: {e} ({at})"));
        let head = &rows.session;
        let rebuilt = decode_session(
            &head.id,
            head.version,
            &head.head,
            rows.payments.iter().rev().map(|p| p.body.as_str()),
            rows.transfers
                .iter()
                .rev()
                .map(|t| (t.key.as_str(), t.body.as_str())),
        )
        .unwrap_or_else(|e| panic!("decode_session(session_rows(s)) fails: {e} ({at})"));
        assert_eq!(&rebuilt, s, "decode_session(session_rows(s)) != s ({at})");
        // The rows written change by change: exactly the ones each change named.
        let written = decode_session(
            &head.id,
            head.version,
            &head.head,
            self.stored.payments.values().map(String::as_str),
            self.stored
                .transfers
                .iter()
                .map(|(k, b)| (k.as_str(), b.as_str())),
        )
        .unwrap_or_else(|e| panic!("the rows the changes named do not decode: {e} ({at})"));
        assert_eq!(
            &written, s,
            "the rows the changes named are not the session ({at})"
        );
    }
}

fn credited(t: &Transfer) -> bool {
    !t.reversed && matches!(t.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry)
}

/// Confirmed enough under `policy` (or counted before), from the policy's documentation.
fn confirmed(t: &Transfer, policy: ConfirmationPolicy) -> bool {
    t.counted_at.is_some()
        || match t.key {
            TransferKey::Lightning(_) => true,
            TransferKey::Onchain { .. } => {
                let need = policy.confirmations();
                t.confirmations >= if t.rbf { need.max(1) } else { need }
            }
        }
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
        .expect("a valid nanosecond")
}
