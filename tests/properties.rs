//! Property tests over random sessions and random command sequences.
//!
//! `random_command_sequences` drives a real [`CheckoutSession`] and a reference model written
//! from the specification (integer math only, no code shared with `src/`) side by side and,
//! after every step, checks that they agree (statuses, quotes, transfers, totals, flags,
//! events, errors) and that the listed properties hold: totals recomputed from
//! `transfers()`, idempotent replays, terminal statuses, paid iff the threshold was reached,
//! the rounding rules, event bookkeeping, errors leave the session unchanged, and JSON
//! round-trips.
//!
//! The other properties are targeted: reordering of reports to one quote, the exact
//! payment / threshold boundary, and partial payments followed by an exact payment.
//!
//! The number of cases can be raised with `PROPTEST_CASES=…` for a deeper run.

mod common;

use std::collections::{BTreeMap, HashMap};

use bitcoin_checkout::*;
use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        // Do not write regression files next to the tests (the file list is fixed).
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ms(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1_000_000
}

/// A base-currency amount from minor units (USD: 2 decimals).
fn usd_minor(minor: u128) -> Decimal {
    Decimal::from_i128_with_scale(i128::try_from(minor).unwrap(), 2)
}

/// Minor units of a USD decimal.
fn minor_of(d: Decimal) -> u128 {
    let mut d = d;
    d.rescale(2);
    u128::try_from(d.mantissa()).unwrap()
}

/// A rate given in 1/10_000 sats per USD.
fn rate_dec(rate_e4: u64) -> Decimal {
    Decimal::new(i64::try_from(rate_e4).unwrap(), 4)
}

fn sats_rate(rate_e4: u64, now: OffsetDateTime) -> ExchangeRate {
    ExchangeRate::new(usd(), TargetCurrency::Sats, rate_dec(rate_e4), "fixed", now).unwrap()
}

fn ev(event_type: EventType, at: OffsetDateTime) -> SessionEvent {
    SessionEvent {
        event_type,
        at,
        payment_id: None,
        transfer: None,
        amount: None,
    }
}

fn ev_p(event_type: EventType, at: OffsetDateTime, p: PaymentId) -> SessionEvent {
    SessionEvent {
        payment_id: Some(p),
        ..ev(event_type, at)
    }
}

fn ev_t(
    event_type: EventType,
    at: OffsetDateTime,
    p: PaymentId,
    key: TransferKey,
    amount: u64,
) -> SessionEvent {
    SessionEvent {
        payment_id: Some(p),
        transfer: Some(key),
        amount: Some(Msats::new(amount)),
        ..ev(event_type, at)
    }
}

/// Set to `false` once the ledger equality bug is fixed, to make the round-trip check strict.
const KNOWN_BUG_LEDGER_EQ: bool = false;

const URL: &str = "https://shop.example/thanks";
const MESSAGE: &str = "Thank you!";
const WRONG_ADDRESS: &str = "bcrt1qwrongaddress000000000000000000000000";

// ---------------------------------------------------------------------------------------
// Session setup
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Setup {
    /// Price in cents: 0.01 ..= 100000.00 USD.
    amount_minor: u64,
    /// Tolerance in hundredths of a percent: [0, 100) with up to 2 decimals.
    tol_h: u64,
    /// 0, 1, 2 or 6.
    policy: u32,
    ln: bool,
    oc: bool,
    ttl: i64,
    /// First rate, in 1/10_000 sats per USD.
    rate_e4: u64,
}

impl Setup {
    fn params(&self) -> SessionParams {
        let mut methods = Vec::new();
        if self.ln {
            methods.push(PaymentMethod::Lightning);
        }
        if self.oc {
            methods.push(PaymentMethod::Onchain);
        }
        SessionParams::new(
            Decimal::new(i64::try_from(self.amount_minor).unwrap(), 2),
            usd(),
        )
        .payment_methods(methods)
        .tolerance(Decimal::new(i64::try_from(self.tol_h).unwrap(), 2))
        .confirmations(ConfirmationPolicy::from_confirmations(self.policy).unwrap())
        .ttl_secs(self.ttl)
        .description("initial")
        .metadata(Metadata::from_pairs([("order", "1001")]).unwrap())
    }
}

fn amount_minor_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        1u64..=100,
        100u64..=100_000,
        100_000u64..=10_000_000,
        Just(10_000_000u64),
    ]
}

fn tolerance_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 1 => Just(100u64), 3 => 0u64..10_000, 1 => Just(9_999u64)]
}

fn rate_strategy() -> impl Strategy<Value = u64> {
    // 1 ..= 100000 sats per USD, up to 4 decimals.
    prop_oneof![10_000u64..=1_000_000, 1_000_000u64..=1_000_000_000]
}

fn setup_strategy() -> impl Strategy<Value = Setup> {
    (
        amount_minor_strategy(),
        tolerance_strategy(),
        prop::sample::select(vec![0u32, 1, 2, 6]),
        prop_oneof![1 => Just((true, false)), 1 => Just((false, true)), 2 => Just((true, true))],
        300i64..=1200,
        rate_strategy(),
    )
        .prop_map(
            |(amount_minor, tol_h, policy, (ln, oc), ttl, rate_e4)| Setup {
                amount_minor,
                tol_h,
                policy,
                ln,
                oc,
                ttl,
                rate_e4,
            },
        )
}

// ---------------------------------------------------------------------------------------
// Transfer reports
// ---------------------------------------------------------------------------------------

/// A transfer report, kept so it can be replayed or varied.
#[derive(Debug, Clone, PartialEq)]
enum Spec {
    Ln {
        hash: PaymentHash,
        msat: u64,
        reversed: bool,
    },
    Oc {
        tx: u32,
        vout: u32,
        address: String,
        sats: u64,
        conf: u32,
        rbf: bool,
        reversed: bool,
    },
}

impl Spec {
    fn build(&self) -> TransferReport {
        match self {
            Spec::Ln {
                hash,
                msat,
                reversed,
            } => {
                let r = TransferReport::lightning(*hash, Msats::new(*msat));
                if *reversed { r.reversed() } else { r }
            }
            Spec::Oc {
                tx,
                vout,
                address,
                sats,
                conf,
                rbf,
                reversed,
            } => {
                let r = TransferReport::onchain(
                    txid(*tx),
                    *vout,
                    address.clone(),
                    Sats::new(*sats),
                    *conf,
                )
                .signals_rbf(*rbf);
                if *reversed { r.reversed() } else { r }
            }
        }
    }

    fn key(&self) -> TransferKey {
        match self {
            Spec::Ln { hash, .. } => TransferKey::Lightning(*hash),
            Spec::Oc { tx, vout, .. } => TransferKey::Onchain {
                txid: txid(*tx),
                vout: *vout,
            },
        }
    }

    fn msat(&self) -> u64 {
        match self {
            Spec::Ln { msat, .. } => *msat,
            Spec::Oc { sats, .. } => sats * 1000,
        }
    }

    fn address(&self) -> Option<&str> {
        match self {
            Spec::Ln { .. } => None,
            Spec::Oc { address, .. } => Some(address),
        }
    }

    fn conf(&self) -> u32 {
        match self {
            Spec::Ln { .. } => 0,
            Spec::Oc { conf, .. } => *conf,
        }
    }

    fn rbf(&self) -> bool {
        matches!(self, Spec::Oc { rbf: true, .. })
    }

    fn reversed(&self) -> bool {
        match self {
            Spec::Ln { reversed, .. } | Spec::Oc { reversed, .. } => *reversed,
        }
    }

    fn onchain(&self) -> bool {
        matches!(self, Spec::Oc { .. })
    }
}

// ---------------------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Upd {
    Desc(u8),
    ClearDesc,
    MetaSet(u8, u8),
    MetaRemove(u8),
    MetaTooMany,
    Url,
    Msg,
    UrlClearingMsg,
    MsgClearingUrl,
    Both,
    ClearBoth,
    Noop,
    Immutable,
}

fn meta_value(v: u8) -> MetadataValue {
    match v % 3 {
        0 => MetadataValue::from(format!("v{v}")),
        1 => MetadataValue::from(i64::from(v)),
        _ => MetadataValue::from(v.is_multiple_of(2)),
    }
}

impl Upd {
    fn build(&self) -> SessionUpdate {
        let u = SessionUpdate::new();
        match self {
            Upd::Desc(n) => u.description(format!("desc {}", n % 4)),
            Upd::ClearDesc => u.clear_description(),
            Upd::MetaSet(k, v) => {
                u.metadata(MetadataPatch::new().set(format!("key{}", k % 8), meta_value(*v)))
            }
            Upd::MetaRemove(k) => u.metadata(MetadataPatch::new().remove(format!("key{}", k % 8))),
            Upd::MetaTooMany => {
                let patch =
                    (0..51).fold(MetadataPatch::new(), |p, i| p.set(format!("bulk{i}"), "x"));
                u.metadata(patch)
            }
            Upd::Url => u.success_url(URL),
            Upd::Msg => u.success_message(MESSAGE),
            Upd::UrlClearingMsg => u.clear_success_message().success_url(URL),
            Upd::MsgClearingUrl => u.clear_success_url().success_message(MESSAGE),
            Upd::Both => u.success_url(URL).success_message(MESSAGE),
            Upd::ClearBoth => u.clear_success_url().clear_success_message(),
            Upd::Noop => u,
            Upd::Immutable => serde_json::from_str::<SessionUpdate>(r#"{"amount": 5}"#).unwrap(),
        }
    }

    /// The details after the update, per the documented rules.
    fn apply(&self, d: &Details) -> Result<Details, Error> {
        let mut n = d.clone();
        match self {
            Upd::Immutable => return Err(Error::ImmutableField("amount")),
            Upd::Desc(k) => n.description = Some(format!("desc {}", k % 4)),
            Upd::ClearDesc => n.description = None,
            Upd::MetaSet(k, v) => {
                n.metadata.insert(format!("key{}", k % 8), meta_value(*v));
            }
            Upd::MetaRemove(k) => {
                n.metadata.remove(&format!("key{}", k % 8));
            }
            Upd::MetaTooMany => return Err(Error::InvalidMetadata("more than 50 keys")),
            Upd::Url => n.success_url = Some(URL.into()),
            Upd::Msg => n.success_message = Some(MESSAGE.into()),
            Upd::UrlClearingMsg => {
                n.success_message = None;
                n.success_url = Some(URL.into());
            }
            Upd::MsgClearingUrl => {
                n.success_url = None;
                n.success_message = Some(MESSAGE.into());
            }
            Upd::Both => {
                n.success_url = Some(URL.into());
                n.success_message = Some(MESSAGE.into());
            }
            Upd::ClearBoth => {
                n.success_url = None;
                n.success_message = None;
            }
            Upd::Noop => {}
        }
        if n.success_url.is_some() && n.success_message.is_some() {
            return Err(Error::SuccessUrlAndMessage);
        }
        Ok(n)
    }
}

fn upd_strategy() -> impl Strategy<Value = Upd> {
    prop_oneof![
        any::<u8>().prop_map(Upd::Desc),
        Just(Upd::ClearDesc),
        (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Upd::MetaSet(k, v)),
        any::<u8>().prop_map(Upd::MetaRemove),
        Just(Upd::MetaTooMany),
        Just(Upd::Url),
        Just(Upd::Msg),
        Just(Upd::UrlClearingMsg),
        Just(Upd::MsgClearingUrl),
        Just(Upd::Both),
        Just(Upd::ClearBoth),
        Just(Upd::Noop),
        Just(Upd::Immutable),
    ]
}

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Details {
    description: Option<String>,
    metadata: BTreeMap<String, MetadataValue>,
    success_url: Option<String>,
    success_message: Option<String>,
}

#[derive(Debug, Clone)]
struct MPayment {
    id: PaymentId,
    due_minor: u128,
    target_sats: u64,
    rate_e4: u64,
    expires_at: OffsetDateTime,
    state: PaymentState,
    hash: Option<PaymentHash>,
}

impl MPayment {
    fn target_msat(&self) -> u128 {
        u128::from(self.target_sats) * 1000
    }

    fn unpaid(&self) -> bool {
        matches!(self.state, PaymentState::Unpaid)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct MTransfer {
    payment: usize,
    amount: u64,
    arrival: Arrival,
    conf: u32,
    rbf: bool,
    reversed: bool,
    onchain: bool,
    first_seen: OffsetDateTime,
    counted_at: Option<OffsetDateTime>,
}

impl MTransfer {
    fn credited(&self) -> bool {
        !self.reversed && matches!(self.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry)
    }
}

#[derive(Debug, Clone)]
struct Model {
    amount_minor: u128,
    tol_h: u128,
    policy: u32,
    ln: bool,
    oc: bool,
    ttl: i64,
    state: SessionState,
    payments: Vec<MPayment>,
    transfers: BTreeMap<TransferKey, MTransfer>,
    address: Option<String>,
    modified: OffsetDateTime,
    version: u64,
    details: Details,
}

impl Model {
    fn new(setup: &Setup, now: OffsetDateTime) -> Self {
        Model {
            amount_minor: u128::from(setup.amount_minor),
            tol_h: u128::from(setup.tol_h),
            policy: setup.policy,
            ln: setup.ln,
            oc: setup.oc,
            ttl: setup.ttl,
            state: SessionState::Active,
            payments: Vec::new(),
            transfers: BTreeMap::new(),
            address: None,
            modified: now,
            version: 0,
            details: Details {
                description: Some("initial".into()),
                metadata: [("order".to_string(), MetadataValue::from("1001"))].into(),
                success_url: None,
                success_message: None,
            },
        }
    }

    fn active(&self) -> bool {
        matches!(self.state, SessionState::Active)
    }

    fn status(&self) -> &'static str {
        match self.state {
            SessionState::Active => "active",
            SessionState::Paid { .. } => "paid",
            _ => "deactivated",
        }
    }

    /// Rule 3: `amount − floor(amount × tolerance / 100)`.
    fn threshold(&self) -> u128 {
        self.amount_minor - self.amount_minor * self.tol_h / 10_000
    }

    fn required(&self, rbf: bool) -> u32 {
        if rbf { self.policy.max(1) } else { self.policy }
    }

    /// Counted money keeps counting until it is reversed.
    fn meets(&self, t: &MTransfer) -> bool {
        !t.reversed
            && (t.counted_at.is_some() || !t.onchain || t.conf >= self.required(t.rbf))
    }

    /// Rule 2: `floor(due × received / target)`.
    fn credit(p: &MPayment, msat: u128) -> u128 {
        p.due_minor * msat / p.target_msat()
    }

    /// Per payment: (received, counted) msats of credited transfers.
    fn sums(&self) -> Vec<(u128, u128)> {
        let mut sums = vec![(0u128, 0u128); self.payments.len()];
        for t in self.transfers.values().filter(|t| t.credited()) {
            sums[t.payment].0 += u128::from(t.amount);
            if self.meets(t) {
                sums[t.payment].1 += u128::from(t.amount);
            }
        }
        sums
    }

    /// (received, counted) credit in minor units.
    fn credits(&self) -> (u128, u128) {
        let sums = self.sums();
        self.payments
            .iter()
            .zip(&sums)
            .fold((0, 0), |(r, c), (p, s)| {
                (r + Self::credit(p, s.0), c + Self::credit(p, s.1))
            })
    }

    fn open(&self, now: OffsetDateTime) -> Option<usize> {
        self.payments
            .iter()
            .position(|p| p.unpaid() && now < p.expires_at)
    }

    fn needs_quote(&self, now: OffsetDateTime) -> bool {
        self.active() && self.open(now).is_none() && self.credits().0 < self.threshold()
    }

    /// Msats past the full amount: quotes walked in order, each credited until the amount
    /// is reached; what a quote received beyond that point is excess.
    fn excess(&self) -> u128 {
        let sums = self.sums();
        let mut credited = 0u128;
        let mut excess = 0u128;
        for (p, s) in self.payments.iter().zip(&sums) {
            let need = self.amount_minor.saturating_sub(credited);
            let needed = (need * p.target_msat()).div_ceil(p.due_minor);
            excess += s.0.saturating_sub(needed);
            credited += Self::credit(p, s.0);
        }
        excess
    }

    fn flags(&self) -> BTreeMap<FlagKind, u128> {
        let mut f: BTreeMap<FlagKind, u128> = BTreeMap::new();
        for t in self.transfers.values() {
            let kind = if t.reversed {
                if t.counted_at.is_none() {
                    continue;
                }
                FlagKind::Reversed
            } else {
                match t.arrival {
                    Arrival::AfterPaid => FlagKind::Overpaid,
                    Arrival::AfterDeactivated => FlagKind::Late,
                    Arrival::AfterQuoteExpiry => FlagKind::PaidAfterExpiry,
                    _ => continue,
                }
            };
            *f.entry(kind).or_default() += u128::from(t.amount);
        }
        let excess = self.excess();
        if excess > 0 {
            *f.entry(FlagKind::Overpaid).or_default() += excess;
        }
        if matches!(self.state, SessionState::Deactivated { .. }) {
            let kept: u128 = self
                .transfers
                .values()
                .filter(|t| t.credited())
                .map(|t| u128::from(t.amount))
                .sum();
            if kept > 0 {
                f.insert(FlagKind::RefundDue, kept);
            }
        }
        f
    }

    fn flag(&self, kind: FlagKind) -> u128 {
        self.flags().get(&kind).copied().unwrap_or(0)
    }

    fn clock(&self, now: OffsetDateTime) -> Result<(), Error> {
        if now < self.modified {
            return Err(Error::ClockWentBackwards {
                now_ms: ms(now),
                last_ms: ms(self.modified),
            });
        }
        Ok(())
    }

    fn touch(&mut self, now: OffsetDateTime) {
        self.modified = now;
        self.version += 1;
    }

    fn expire(&mut self, now: OffsetDateTime) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        for p in self
            .payments
            .iter_mut()
            .filter(|p| p.unpaid() && now >= p.expires_at)
        {
            p.state = PaymentState::Expired {
                expired_at: p.expires_at,
            };
            events.push(ev_p(EventType::PaymentExpired, now, p.id));
        }
        events
    }

    /// (due in minor units, target sats) of the next quote.
    fn next_quote(&self, now: OffsetDateTime, rate_e4: u64) -> Result<(u128, u64), Error> {
        self.clock(now)?;
        if !self.active() {
            return Err(Error::InvalidTransition {
                action: "quote",
                status: self.status(),
            });
        }
        if let Some(i) = self.open(now) {
            return Err(Error::QuoteAlreadyOpen(self.payments[i].id));
        }
        let received = self.credits().0;
        if received >= self.threshold() {
            return Err(Error::InvalidTransition {
                action: "quote a fully received",
                status: "active",
            });
        }
        let due = self.amount_minor - received;
        // Rule 1: ceil(due × rate) with due = due/100 and rate = rate_e4/10^4.
        let target = (due * u128::from(rate_e4)).div_ceil(1_000_000);
        Ok((due, u64::try_from(target).unwrap()))
    }

    fn issue(
        &mut self,
        now: OffsetDateTime,
        id: PaymentId,
        n: u32,
        (due, target): (u128, u64),
        rate_e4: u64,
    ) -> Vec<SessionEvent> {
        let mut events = self.expire(now);
        if self.oc && self.address.is_none() {
            self.address = Some(ADDRESS.into());
        }
        self.payments.push(MPayment {
            id,
            due_minor: due,
            target_sats: target,
            rate_e4,
            expires_at: now + Duration::seconds(self.ttl),
            state: PaymentState::Unpaid,
            hash: self.ln.then(|| hash(n)),
        });
        events.push(ev_p(EventType::PaymentCreated, now, id));
        self.touch(now);
        events
    }

    fn snapshot(&self) -> [u128; 3] {
        [
            self.flag(FlagKind::Overpaid),
            self.flag(FlagKind::Late),
            self.flag(FlagKind::PaidAfterExpiry),
        ]
    }

    fn settle(&mut self, before: [u128; 3], now: OffsetDateTime) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        if self.active() && self.credits().1 >= self.threshold() {
            self.state = SessionState::Paid { paid_at: now };
            events.push(ev(EventType::CheckoutSessionPaid, now));
            for i in 0..self.payments.len() {
                if self.payments[i].unpaid() {
                    self.payments[i].state = PaymentState::Expired { expired_at: now };
                    let id = self.payments[i].id;
                    let mut e = ev(EventType::PaymentExpired, now);
                    e.payment_id = Some(id);
                    events.push(e);
                }
            }
        }
        let after = self.snapshot();
        let kinds = [
            EventType::Overpaid,
            EventType::LatePayment,
            EventType::PaidAfterExpiry,
        ];
        for ((kind, b), a) in kinds.into_iter().zip(before).zip(after) {
            if a > b {
                let mut e = ev(kind, now);
                e.amount = Some(Msats::new(u64::try_from(a - b).unwrap()));
                events.push(e);
            }
        }
        events
    }

    fn record(&mut self, spec: &Spec, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        self.clock(now)?;
        let key = spec.key();
        let amount = spec.msat();
        if amount == 0 {
            return Err(Error::AmountNotPositive);
        }
        if let Some(known) = self.transfers.get(&key).cloned() {
            if known.amount != amount {
                return Err(Error::TransferAmountMismatch {
                    first: known.amount,
                    again: amount,
                });
            }
            if let Some(a) = spec.address()
                && self.address.as_deref() != Some(a)
            {
                return Err(Error::UnknownPaymentRequest);
            }
            if known.reversed {
                return Ok(Vec::new());
            }
            let mut next = known.clone();
            next.conf = next.conf.max(spec.conf());
            next.rbf |= spec.rbf();
            next.reversed |= spec.reversed();
            if next.counted_at.is_none() && self.meets(&next) {
                next.counted_at = Some(now);
            }
            if next == known {
                return Ok(Vec::new());
            }
            let before = self.snapshot();
            let mut events = self.expire(now);
            let pid = self.payments[known.payment].id;
            if next.counted_at.is_some() && known.counted_at.is_none() {
                events.push(ev_t(EventType::TransferConfirmed, now, pid, key, amount));
            }
            if next.reversed && !known.reversed {
                events.push(ev_t(EventType::TransferReversed, now, pid, key, amount));
            }
            if events.is_empty() {
                events.push(ev_t(EventType::TransferUpdated, now, pid, key, amount));
            }
            self.transfers.insert(key, next);
            events.extend(self.settle(before, now));
            self.touch(now);
            return Ok(events);
        }
        // A new transfer: its invoice or address must belong to this session.
        match spec {
            Spec::Ln { hash, .. } => {
                if !self.ln {
                    return Err(Error::MethodNotEnabled("lightning"));
                }
                if !self.payments.iter().any(|p| p.hash == Some(*hash)) {
                    return Err(Error::UnknownPaymentRequest);
                }
            }
            Spec::Oc { address, .. } => {
                if !self.oc {
                    return Err(Error::MethodNotEnabled("onchain"));
                }
                if self.payments.is_empty() || self.address.as_deref() != Some(address.as_str()) {
                    return Err(Error::UnknownPaymentRequest);
                }
            }
        }
        let before = self.snapshot();
        let mut events = self.expire(now);
        let index = match spec {
            Spec::Ln { hash, .. } => self
                .payments
                .iter()
                .position(|p| p.hash == Some(*hash))
                .unwrap(),
            Spec::Oc { .. } => self
                .payments
                .iter()
                .position(|p| p.unpaid())
                .unwrap_or(self.payments.len() - 1),
        };
        let arrival = match self.state {
            SessionState::Paid { .. } => Arrival::AfterPaid,
            SessionState::Deactivated { .. } => Arrival::AfterDeactivated,
            _ => match self.payments[index].state {
                PaymentState::Unpaid => Arrival::Expected,
                // A partly paid quote's rate lock still ends at its expiry.
                PaymentState::Paid { .. } if now < self.payments[index].expires_at => {
                    Arrival::Expected
                }
                _ => Arrival::AfterQuoteExpiry,
            },
        };
        let mut t = MTransfer {
            payment: index,
            amount,
            arrival,
            conf: spec.conf(),
            rbf: spec.rbf(),
            reversed: spec.reversed(),
            onchain: spec.onchain(),
            first_seen: now,
            counted_at: None,
        };
        if self.meets(&t) {
            t.counted_at = Some(now);
        }
        let pid = self.payments[index].id;
        events.push(ev_t(EventType::TransferReceived, now, pid, key, amount));
        if spec.reversed() {
            events.push(ev_t(EventType::TransferReversed, now, pid, key, amount));
        }
        self.transfers.insert(key, t);
        if self.payments[index].unpaid() && !spec.reversed() {
            self.payments[index].state = PaymentState::Paid { paid_at: now };
            events.push(ev_p(EventType::PaymentPaid, now, pid));
            events.push(ev_p(EventType::CheckoutSessionPaymentPaid, now, pid));
        }
        events.extend(self.settle(before, now));
        self.touch(now);
        Ok(events)
    }

    fn expire_quotes(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        self.clock(now)?;
        let events = self.expire(now);
        if !events.is_empty() {
            self.touch(now);
        }
        Ok(events)
    }

    fn deactivate(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        self.clock(now)?;
        if !self.active() {
            return Err(Error::InvalidTransition {
                action: "deactivate",
                status: self.status(),
            });
        }
        let mut events = self.expire(now);
        for p in self.payments.iter_mut().filter(|p| p.unpaid()) {
            p.state = PaymentState::Cancelled { cancelled_at: now };
            events.push(ev_p(EventType::PaymentCancelled, now, p.id));
        }
        self.state = SessionState::Deactivated {
            deactivated_at: now,
        };
        events.push(ev(EventType::CheckoutSessionDeactivated, now));
        self.touch(now);
        Ok(events)
    }

    fn update(&mut self, u: &Upd, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        self.clock(now)?;
        let next = u.apply(&self.details)?;
        if next == self.details {
            return Ok(Vec::new());
        }
        let mut events = self.expire(now);
        self.details = next;
        events.push(ev(EventType::CheckoutSessionUpdated, now));
        self.touch(now);
        Ok(events)
    }
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Amt {
    Exact,
    /// Per mille of the target.
    Partial(u16),
    /// Target plus this per mille (and one msat).
    Over(u16),
    OneLess,
    /// A few msats (Lightning) or sats (on-chain).
    Tiny(u16),
    /// Just enough to reach the threshold (minus one msat if true).
    Threshold(bool),
}

#[derive(Debug, Clone)]
enum ClockCmd {
    Record,
    Deactivate,
    Update,
    Expire,
    Quote,
}

#[derive(Debug, Clone)]
enum Cmd {
    Quote(u64),
    PayLn(Index, Amt),
    PayChain {
        amt: Amt,
        conf: u32,
        rbf: bool,
        vout: u32,
        reversed: bool,
    },
    Confirm(Index, u32),
    Fewer(Index),
    Reverse(Index),
    Replay(Index),
    Mismatch(Index, u32),
    KnownWrongAddress(Index),
    Advance(u32),
    ToExpiry(i8),
    Expire,
    Update(Upd),
    Deactivate,
    UnknownHash,
    WrongAddress,
    ZeroAmount,
    ClockBack(ClockCmd),
}

fn amt_strategy() -> impl Strategy<Value = Amt> {
    prop_oneof![
        2 => Just(Amt::Exact),
        6 => (1u16..1000).prop_map(Amt::Partial),
        1 => (1u16..=2000).prop_map(Amt::Over),
        1 => Just(Amt::OneLess),
        1 => (1u16..=2000).prop_map(Amt::Tiny),
        2 => any::<bool>().prop_map(Amt::Threshold),
    ]
}

fn cmd_strategy() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        6 => rate_strategy().prop_map(Cmd::Quote),
        6 => (any::<Index>(), amt_strategy()).prop_map(|(i, a)| Cmd::PayLn(i, a)),
        5 => (
            amt_strategy(),
            prop::sample::select(vec![0u32, 0, 1, 2, 6]),
            prop::bool::weighted(0.2),
            0u32..3,
            prop::bool::weighted(0.05),
        )
            .prop_map(|(amt, conf, rbf, vout, reversed)| Cmd::PayChain {
                amt,
                conf,
                rbf,
                vout,
                reversed,
            }),
        4 => (any::<Index>(), 1u32..=6).prop_map(|(i, n)| Cmd::Confirm(i, n)),
        1 => any::<Index>().prop_map(Cmd::Fewer),
        2 => any::<Index>().prop_map(Cmd::Reverse),
        3 => any::<Index>().prop_map(Cmd::Replay),
        1 => (any::<Index>(), 1u32..1000).prop_map(|(i, d)| Cmd::Mismatch(i, d)),
        1 => any::<Index>().prop_map(Cmd::KnownWrongAddress),
        3 => prop_oneof![1u32..=120_000, 200_000u32..=1_300_000].prop_map(Cmd::Advance),
        1 => (-1i8..=1).prop_map(Cmd::ToExpiry),
        1 => Just(Cmd::Expire),
        2 => upd_strategy().prop_map(Cmd::Update),
        1 => Just(Cmd::Deactivate),
        1 => Just(Cmd::UnknownHash),
        1 => Just(Cmd::WrongAddress),
        1 => Just(Cmd::ZeroAmount),
        1 => prop_oneof![
            Just(ClockCmd::Record),
            Just(ClockCmd::Deactivate),
            Just(ClockCmd::Update),
            Just(ClockCmd::Expire),
            Just(ClockCmd::Quote),
        ]
        .prop_map(Cmd::ClockBack),
    ]
}

// ---------------------------------------------------------------------------------------
// The runner: one session and its model, stepped together
// ---------------------------------------------------------------------------------------

type Outcome = Result<Vec<SessionEvent>, Error>;

struct Run {
    s: CheckoutSession,
    m: Model,
    now: OffsetDateTime,
    /// Every report that was accepted, for replays.
    reports: Vec<Spec>,
    next_tx: u32,
    events: Vec<SessionEvent>,
    /// Whether the counted credit reached the threshold while the session was active.
    reached: bool,
    log: Vec<String>,
}

impl Run {
    fn new(setup: &Setup) -> Self {
        let (s, events) = CheckoutSession::create(sid(7), setup.params(), t0()).expect("create");
        assert_eq!(events, vec![ev(EventType::CheckoutSessionCreated, t0())]);
        let mut run = Run {
            s,
            m: Model::new(setup, t0()),
            now: t0(),
            reports: Vec::new(),
            next_tx: 1,
            events,
            reached: false,
            log: Vec::new(),
        };
        run.check();
        run.quote(setup.rate_e4);
        run.check();
        run
    }

    /// Tries to issue the next quote; compares terms, events and errors with the model.
    fn quote(&mut self, rate_e4: u64) {
        let now = self.now;
        let n = u32::try_from(self.s.payments().len()).unwrap() + 1;
        let before = self.s.clone();
        let expected = self.m.next_quote(now, rate_e4);
        let got = self.s.next_quote(pid(n), sats_rate(rate_e4, now), now);
        match (expected, got) {
            (Err(e), Err(g)) => {
                assert_eq!(g, e, "next_quote error");
                assert_eq!(self.s, before);
                self.log.push(format!("quote -> {g:?}"));
            }
            (Ok((due, target)), Ok(terms)) => {
                assert_eq!(terms.payment_id(), pid(n));
                assert_eq!(terms.due(), usd_minor(due));
                assert_eq!(terms.target(), Sats::new(target));
                assert_eq!(terms.target_msats(), Msats::new(target * 1000));
                assert_eq!(terms.expires_at(), now + Duration::seconds(self.m.ttl));
                // Rule 1, checked with rust_decimal too.
                let exact = terms.due() * rate_dec(rate_e4);
                assert_eq!(Decimal::from(target), exact.ceil());
                assert!(Decimal::from(target) - exact < Decimal::ONE);
                let req = request_for(&self.s, &terms, n);
                let got = self.s.issue_quote(terms, req, now);
                let exp = self.m.issue(now, pid(n), n, (due, target), rate_e4);
                assert_eq!(got, Ok(exp.clone()), "issue_quote events");
                self.log
                    .push(format!("quote {due}c -> {target} sat: {:?}", exp));
                self.events.extend(exp);
            }
            (e, g) => panic!("next_quote: model {e:?}, session {g:?}"),
        }
    }

    /// Applies `f` to the session and `model` to the model; compares outcomes and, on
    /// error, checks that the session did not change.
    fn apply(
        &mut self,
        what: String,
        f: impl FnOnce(&mut CheckoutSession) -> Outcome,
        model: impl FnOnce(&mut Model) -> Outcome,
    ) -> Outcome {
        let before = self.s.clone();
        let mut m = self.m.clone();
        let expected = model(&mut m);
        let got = f(&mut self.s);
        self.log.push(format!("{what} -> {got:?}"));
        assert_eq!(
            got,
            expected,
            "outcome of {what}\nlog:\n{}",
            self.log.join("\n")
        );
        match &got {
            Ok(events) => {
                if m.version == self.m.version {
                    // A command the model says changes nothing must leave the session equal.
                    assert!(events.is_empty());
                    assert_eq!(self.s, before, "{what} should have changed nothing");
                }
                self.m = m;
                self.events.extend(events.iter().cloned());
            }
            Err(_) => assert_eq!(self.s, before, "{what} failed but changed the session"),
        }
        got
    }

    fn record(&mut self, spec: Spec) -> Outcome {
        let now = self.now;
        let report = spec.build();
        let out = self.apply(
            format!("record {spec:?} at {}", ms(now)),
            |s| s.record_transfer(report, now),
            |m| m.record(&spec, now),
        );
        if out.is_ok() {
            self.reports.push(spec);
        }
        out
    }

    /// A known transfer picked by `i`, as the spec of its first report.
    fn pick_known(&self, i: &Index) -> Option<Spec> {
        let keys: Vec<TransferKey> = self.m.transfers.keys().copied().collect();
        if keys.is_empty() {
            return None;
        }
        let key = keys[i.index(keys.len())];
        let t = &self.m.transfers[&key];
        Some(match key {
            TransferKey::Lightning(hash) => Spec::Ln {
                hash,
                msat: t.amount,
                reversed: false,
            },
            TransferKey::Onchain { vout, .. } => {
                let tx = self
                    .reports
                    .iter()
                    .find_map(|r| match r {
                        Spec::Oc { tx, .. } if r.key() == key => Some(*tx),
                        _ => None,
                    })
                    .unwrap();
                Spec::Oc {
                    tx,
                    vout,
                    address: ADDRESS.into(),
                    sats: t.amount / 1000,
                    conf: t.conf,
                    rbf: t.rbf,
                    reversed: false,
                }
            }
        })
    }

    /// Msats for `amt` against payment `p` (the open one for on-chain).
    fn amount_for(&self, p: Option<&MPayment>, amt: &Amt) -> u64 {
        let Some(p) = p else { return 1_000_000 };
        let t = p.target_msat();
        let v = match amt {
            Amt::Exact => t,
            Amt::Partial(k) => (t * u128::from(*k) / 1000).max(1),
            Amt::Over(k) => t + t * u128::from(*k) / 1000 + 1,
            Amt::OneLess => (t - 1).max(1),
            Amt::Tiny(k) => u128::from(*k),
            Amt::Threshold(less) => {
                let received = self.m.credits().0;
                let need = self.m.threshold().saturating_sub(received).max(1);
                let m = (need * t).div_ceil(p.due_minor);
                if *less { (m - 1).max(1) } else { m }
            }
        };
        u64::try_from(v).unwrap()
    }

    fn step(&mut self, cmd: &Cmd) {
        let was_active = matches!(self.s.state(), SessionState::Active);
        let before = self.s.clone();
        match cmd {
            Cmd::Quote(rate) => self.quote(*rate),
            Cmd::PayLn(i, amt) => {
                let n = self.m.payments.len();
                // The last slot (and an empty session) means the open or latest quote.
                let idx = if n == 0 {
                    None
                } else {
                    Some(i.index(n + 1).min(n - 1))
                };
                let hash = idx.map_or(hash(1), |k| hash(u32::try_from(k).unwrap() + 1));
                let msat = self.amount_for(idx.map(|k| &self.m.payments[k]), amt);
                let _ = self.record(Spec::Ln {
                    hash,
                    msat,
                    reversed: false,
                });
            }
            Cmd::PayChain {
                amt,
                conf,
                rbf,
                vout,
                reversed,
            } => {
                let mut probe = self.m.clone();
                probe.expire(self.now);
                let p = probe
                    .payments
                    .iter()
                    .find(|p| p.unpaid())
                    .or(probe.payments.last());
                let sats = self.amount_for(p, amt).div_ceil(1000);
                let tx = self.next_tx;
                self.next_tx += 1;
                let _ = self.record(Spec::Oc {
                    tx,
                    vout: *vout,
                    address: ADDRESS.into(),
                    sats: sats.max(1),
                    conf: *conf,
                    rbf: *rbf,
                    reversed: *reversed,
                });
            }
            Cmd::Confirm(i, add) => {
                if let Some(Spec::Oc {
                    tx,
                    vout,
                    address,
                    sats,
                    conf,
                    rbf,
                    ..
                }) = self.pick_known(i)
                {
                    let _ = self.record(Spec::Oc {
                        tx,
                        vout,
                        address,
                        sats,
                        conf: conf + add,
                        rbf,
                        reversed: false,
                    });
                }
            }
            Cmd::Fewer(i) => {
                if let Some(mut spec) = self.pick_known(i) {
                    if let Spec::Oc { conf, .. } = &mut spec {
                        *conf = conf.saturating_sub(1);
                    }
                    let out = self.record(spec);
                    assert_eq!(out, Ok(Vec::new()), "fewer confirmations changed something");
                    assert_eq!(self.s, before);
                }
            }
            Cmd::Reverse(i) => {
                if let Some(mut spec) = self.pick_known(i) {
                    match &mut spec {
                        Spec::Ln { reversed, .. } | Spec::Oc { reversed, .. } => *reversed = true,
                    }
                    let _ = self.record(spec);
                }
            }
            Cmd::Replay(i) => {
                if !self.reports.is_empty() {
                    let spec = self.reports[i.index(self.reports.len())].clone();
                    let out = self.record(spec);
                    assert_eq!(out, Ok(Vec::new()), "a replayed report returned events");
                    assert_eq!(self.s, before, "a replayed report changed the session");
                }
            }
            Cmd::Mismatch(i, delta) => {
                if let Some(mut spec) = self.pick_known(i) {
                    let first = spec.msat();
                    match &mut spec {
                        Spec::Ln { msat, .. } => *msat += u64::from(*delta),
                        Spec::Oc { sats, .. } => *sats += u64::from(*delta),
                    }
                    let again = spec.msat();
                    let out = self.record(spec);
                    assert_eq!(out, Err(Error::TransferAmountMismatch { first, again }));
                }
            }
            Cmd::KnownWrongAddress(i) => {
                if let Some(Spec::Oc {
                    tx,
                    vout,
                    sats,
                    conf,
                    rbf,
                    ..
                }) = self.pick_known(i)
                {
                    let out = self.record(Spec::Oc {
                        tx,
                        vout,
                        address: WRONG_ADDRESS.into(),
                        sats,
                        conf: conf + 1,
                        rbf,
                        reversed: false,
                    });
                    assert_eq!(out, Err(Error::UnknownPaymentRequest));
                }
            }
            Cmd::Advance(msecs) => {
                self.now += Duration::milliseconds(i64::from(*msecs));
                self.log.push(format!("advance {msecs} ms"));
            }
            Cmd::ToExpiry(delta) => {
                if let Some(p) = self.m.open(self.now).map(|i| self.m.payments[i].clone()) {
                    let t = p.expires_at + Duration::milliseconds(i64::from(*delta));
                    if t > self.now {
                        self.now = t;
                        self.log.push(format!("to expiry {delta:+} ms"));
                    }
                }
            }
            Cmd::Expire => {
                let now = self.now;
                let _ = self.apply(
                    "expire".into(),
                    |s| s.expire_quotes(now),
                    |m| m.expire_quotes(now),
                );
            }
            Cmd::Update(u) => {
                let now = self.now;
                let update = u.build();
                let _ = self.apply(
                    format!("update {u:?}"),
                    |s| s.update(&update, now),
                    |m| m.update(u, now),
                );
            }
            Cmd::Deactivate => {
                let now = self.now;
                let _ = self.apply(
                    "deactivate".into(),
                    |s| s.deactivate(now),
                    |m| m.deactivate(now),
                );
            }
            Cmd::UnknownHash => {
                let out = self.record(Spec::Ln {
                    hash: hash(999_999),
                    msat: 1000,
                    reversed: false,
                });
                let want = if self.m.ln {
                    Error::UnknownPaymentRequest
                } else {
                    Error::MethodNotEnabled("lightning")
                };
                assert_eq!(out, Err(want));
            }
            Cmd::WrongAddress => {
                let tx = self.next_tx;
                self.next_tx += 1;
                let out = self.record(Spec::Oc {
                    tx,
                    vout: 0,
                    address: WRONG_ADDRESS.into(),
                    sats: 1000,
                    conf: 1,
                    rbf: false,
                    reversed: false,
                });
                let want = if self.m.oc {
                    Error::UnknownPaymentRequest
                } else {
                    Error::MethodNotEnabled("onchain")
                };
                assert_eq!(out, Err(want));
            }
            Cmd::ZeroAmount => {
                let out = self.record(Spec::Ln {
                    hash: hash(1),
                    msat: 0,
                    reversed: false,
                });
                assert_eq!(out, Err(Error::AmountNotPositive));
            }
            Cmd::ClockBack(which) => {
                let past = self.s.modified() - Duration::milliseconds(1);
                let want = Error::ClockWentBackwards {
                    now_ms: ms(past),
                    last_ms: ms(self.s.modified()),
                };
                let got = match which {
                    ClockCmd::Record => self
                        .s
                        .record_transfer(TransferReport::lightning(hash(1), Msats::new(1000)), past)
                        .map(|_| ()),
                    ClockCmd::Deactivate => self.s.deactivate(past).map(|_| ()),
                    ClockCmd::Update => self
                        .s
                        .update(&SessionUpdate::new().description("back"), past)
                        .map(|_| ()),
                    ClockCmd::Expire => self.s.expire_quotes(past).map(|_| ()),
                    ClockCmd::Quote => self
                        .s
                        .next_quote(pid(99), sats_rate(10_000_000, past), past)
                        .map(|_| ()),
                };
                assert_eq!(got, Err(want));
                assert_eq!(self.s, before);
            }
        }
        // Property 4: terminal statuses never change.
        if before.state().is_terminal() {
            assert_eq!(
                self.s.state(),
                before.state(),
                "a terminal session changed state"
            );
        }
        for (old, new) in before.payments().iter().zip(self.s.payments()) {
            assert_eq!(old.id(), new.id());
            if !matches!(old.state(), PaymentState::Unpaid) {
                assert_eq!(new.state(), old.state(), "a terminal payment changed state");
            }
        }
        assert!(self.s.payments().len() >= before.payments().len());
        // Property 5 bookkeeping.
        if was_active && counted_credit(&self.s) >= threshold(&self.s) {
            self.reached = true;
        }
        self.check();
    }

    /// Everything that must hold after every step.
    fn check(&self) {
        let (s, m, now) = (&self.s, &self.m, self.now);
        let log = || self.log.join("\n");

        // --- agreement with the model ---
        assert_eq!(s.state(), m.state, "state\n{}", log());
        assert_eq!(s.version(), m.version, "version\n{}", log());
        assert_eq!(s.modified(), m.modified);
        assert_eq!(s.onchain_address(), m.address.as_deref());
        assert_eq!(s.payments().len(), m.payments.len());
        for (p, q) in s.payments().iter().zip(&m.payments) {
            assert_eq!(p.id(), q.id);
            assert_eq!(p.due(), usd_minor(q.due_minor));
            assert_eq!(p.target(), Sats::new(q.target_sats));
            assert_eq!(p.rate().rate(), rate_dec(q.rate_e4));
            assert_eq!(p.expires_at(), q.expires_at);
            assert_eq!(p.state(), q.state, "payment state\n{}", log());
        }
        let mut transfers: Vec<Transfer> = s.transfers().cloned().collect();
        transfers.sort_by_key(|t| t.key);
        let mut expected: Vec<Transfer> = m
            .transfers
            .iter()
            .map(|(k, t)| Transfer {
                key: *k,
                payment_id: m.payments[t.payment].id,
                amount: Msats::new(t.amount),
                arrival: t.arrival,
                confirmations: t.conf,
                rbf: t.rbf,
                reversed: t.reversed,
                first_seen: t.first_seen,
                counted_at: t.counted_at,
            })
            .collect();
        expected.sort_by_key(|t| t.key);
        assert_eq!(transfers, expected, "transfers\n{}", log());
        let totals = s.totals();
        let sums = m.sums();
        let counted: u128 = sums.iter().map(|s| s.1).sum();
        let received: u128 = sums.iter().map(|s| s.0).sum();
        assert_eq!(
            u128::from(totals.counted.get()),
            counted,
            "counted\n{}",
            log()
        );
        assert_eq!(
            u128::from(totals.pending.get()),
            received - counted,
            "pending\n{}",
            log()
        );
        let (rc, cc) = m.credits();
        assert_eq!(totals.amount_paid, usd_minor(cc), "amount_paid\n{}", log());
        assert_eq!(
            totals.amount_received,
            usd_minor(rc),
            "amount_received\n{}",
            log()
        );
        let flags: Vec<Flag> = m
            .flags()
            .into_iter()
            .map(|(kind, a)| Flag {
                kind,
                amount: Msats::new(u64::try_from(a).unwrap()),
            })
            .collect();
        assert_eq!(s.flags(), flags, "flags\n{}", log());
        assert_eq!(
            s.needs_quote(now),
            m.needs_quote(now),
            "needs_quote\n{}",
            log()
        );
        assert_eq!(s.description(), m.details.description.as_deref());
        assert_eq!(s.success_url(), m.details.success_url.as_deref());
        assert_eq!(s.success_message(), m.details.success_message.as_deref());
        let meta: BTreeMap<String, MetadataValue> = s
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        assert_eq!(meta, m.details.metadata);

        // --- property 1: totals recomputed from transfers() ---
        let policy = s.confirmation_policy();
        let (mut c, mut p) = (0u64, 0u64);
        for t in s.transfers() {
            if t.reversed || !matches!(t.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry) {
                continue;
            }
            let confirmed = match t.key {
                TransferKey::Lightning(_) => true,
                TransferKey::Onchain { .. } => {
                    let need = if t.rbf {
                        policy.confirmations().max(1)
                    } else {
                        policy.confirmations()
                    };
                    t.confirmations >= need
                }
            };
            if confirmed {
                c += t.amount.get()
            } else {
                p += t.amount.get()
            }
        }
        assert_eq!(totals.counted.get(), c);
        assert_eq!(totals.pending.get(), p);

        // --- property 5: paid iff the threshold was reached while active ---
        assert_eq!(
            s.status() == SessionStatus::Paid,
            self.reached,
            "paid status vs. threshold reached\n{}",
            log()
        );

        // --- property 7: no satoshi created or lost ---
        let mut per: HashMap<PaymentId, u128> = HashMap::new();
        for t in s.transfers().filter(|t| !t.reversed) {
            if matches!(t.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry) {
                *per.entry(t.payment_id).or_default() += u128::from(t.amount.get());
            }
        }
        let mut credit_sum = 0u128;
        for pay in s.payments() {
            let exact = pay.due() * pay.rate().rate();
            assert_eq!(
                Decimal::from(pay.target().get()),
                exact.ceil(),
                "target = ceil(due × rate)"
            );
            let r = per.get(&pay.id()).copied().unwrap_or(0);
            let credit = minor_of(pay.due()) * r / u128::from(pay.target_msats().get());
            credit_sum += credit;
            // Credit never exceeds the exact value of the funds at the quote's rate.
            let credit_value = usd_minor(credit) * Decimal::from(1000) * pay.rate().rate();
            assert!(
                credit_value <= Decimal::from(u64::try_from(r).unwrap()),
                "credit above value"
            );
            if r == u128::from(pay.target_msats().get()) {
                assert_eq!(
                    usd_minor(credit),
                    pay.due(),
                    "exact target credits exactly due"
                );
            }
        }
        assert_eq!(totals.amount_received, usd_minor(credit_sum));
        let all: u64 = s
            .transfers()
            .filter(|t| !t.reversed)
            .map(|t| t.amount.get())
            .sum();
        let by_arrival = |a: Arrival| -> u64 {
            s.transfers()
                .filter(|t| !t.reversed && t.arrival == a)
                .map(|t| t.amount.get())
                .sum()
        };
        let (after_paid, late, after_expiry) = (
            by_arrival(Arrival::AfterPaid),
            by_arrival(Arrival::AfterDeactivated),
            by_arrival(Arrival::AfterQuoteExpiry),
        );
        assert_eq!(
            all,
            totals.counted.get() + totals.pending.get() + after_paid + late
        );
        assert_eq!(s.flagged(FlagKind::Late).get(), late);
        assert_eq!(s.flagged(FlagKind::PaidAfterExpiry).get(), after_expiry);
        let overpaid = s.flagged(FlagKind::Overpaid).get();
        assert!(overpaid >= after_paid);
        assert!(overpaid - after_paid <= totals.counted.get() + totals.pending.get());
        if credit_sum < minor_of(s.amount()) {
            assert_eq!(
                overpaid, after_paid,
                "excess flagged while less than the amount was received"
            );
        }
        let reversed_sum: u64 = s
            .transfers()
            .filter(|t| t.reversed)
            .map(|t| t.amount.get())
            .sum();
        assert!(s.flagged(FlagKind::Reversed).get() <= reversed_sum);
        let refund = if s.status() == SessionStatus::Deactivated {
            totals.counted.get() + totals.pending.get()
        } else {
            0
        };
        assert_eq!(s.flagged(FlagKind::RefundDue).get(), refund);

        // --- property 8: event bookkeeping over the whole run ---
        let count = |t: EventType, p: Option<PaymentId>| {
            self.events
                .iter()
                .filter(|e| e.event_type == t && (p.is_none() || e.payment_id == p))
                .count()
        };
        let paid = usize::from(s.status() == SessionStatus::Paid);
        assert_eq!(
            count(EventType::CheckoutSessionPaid, None),
            paid,
            "one paid event\n{}",
            log()
        );
        assert_eq!(count(EventType::CheckoutSessionCreated, None), 1);
        assert_eq!(
            count(EventType::CheckoutSessionDeactivated, None),
            usize::from(s.status() == SessionStatus::Deactivated)
        );
        for pay in s.payments() {
            let id = Some(pay.id());
            let is = |st: PaymentStatus| usize::from(pay.status() == st);
            assert_eq!(count(EventType::PaymentCreated, id), 1);
            assert_eq!(
                count(EventType::PaymentExpired, id),
                is(PaymentStatus::Expired)
            );
            assert_eq!(
                count(EventType::PaymentCancelled, id),
                is(PaymentStatus::Cancelled)
            );
            assert_eq!(count(EventType::PaymentPaid, id), is(PaymentStatus::Paid));
            assert_eq!(
                count(EventType::CheckoutSessionPaymentPaid, id),
                is(PaymentStatus::Paid)
            );
        }
        for t in s.transfers() {
            let n = |ty: EventType| {
                self.events
                    .iter()
                    .filter(|e| e.event_type == ty && e.transfer == Some(t.key))
                    .count()
            };
            assert_eq!(n(EventType::TransferReceived), 1);
            assert_eq!(n(EventType::TransferReversed), usize::from(t.reversed));
            assert!(n(EventType::TransferConfirmed) <= 1);
        }

        // --- wake_at: the open quote's expiry, else (since the last change) when a quote is due ---
        match s
            .payments()
            .iter()
            .find(|p| p.status() == PaymentStatus::Unpaid)
        {
            Some(open) => assert_eq!(s.wake_at(), Some(open.expires_at())),
            None => {
                assert_eq!(
                    s.wake_at().is_some(),
                    s.needs_quote(now),
                    "wake_at\n{}",
                    log()
                );
                assert!(s.wake_at().is_none_or(|w| w <= now));
            }
        }

        // --- property 10: JSON round-trip ---
        let json = s.to_json();
        let back = CheckoutSession::from_json(&json).expect("session JSON reads back");
        assert_eq!(back.to_json(), json, "JSON round-trip changed the JSON");
        if KNOWN_BUG_LEDGER_EQ {
            // BUG (json_shapes.rs `round_trip_after_a_reversal_equals_the_original`): after a
            // reversal the live session's ledger cache keeps an all-zero entry that a session
            // read from JSON does not have, so `==` fails although every fact (the JSON text
            // above) is equal. Tolerated only in that situation.
            if &back != s {
                assert!(s.transfers().any(|t| t.reversed), "JSON round-trip\n{json}");
            }
        } else {
            assert_eq!(&back, s, "JSON round-trip\n{json}");
        }
        // A store's form: the head JSON (no transfers) plus the transfers.
        let parts = CheckoutSession::from_parts(&s.head_json(), s.transfers().cloned())
            .expect("session rebuilt from its parts");
        assert_eq!(parts.to_json(), json, "from_parts");
        assert!(!s.head_json().contains(r#""transfers""#));
    }
}

fn threshold(s: &CheckoutSession) -> u128 {
    let amount = minor_of(s.amount());
    let tol_h = minor_of(s.tolerance()); // tolerance × 100
    amount - amount * tol_h / 10_000
}

/// Counted credit in minor units, recomputed from `payments()` and `transfers()`.
fn counted_credit(s: &CheckoutSession) -> u128 {
    let policy = s.confirmation_policy();
    s.payments()
        .iter()
        .map(|p| {
            let msat: u128 = s
                .transfers()
                .filter(|t| t.payment_id == p.id() && t.counts(policy))
                .map(|t| u128::from(t.amount.get()))
                .sum();
            minor_of(p.due()) * msat / u128::from(p.target_msats().get())
        })
        .sum()
}

proptest! {
    #![proptest_config(config(256))]

    /// Properties 1, 2, 4, 5, 7, 8, 9 and 10 over random command sequences.
    #[test]
    fn random_command_sequences(
        setup in setup_strategy(),
        cmds in prop::collection::vec(cmd_strategy(), 1..=30),
        auto_quote in any::<bool>(),
        rates in prop::collection::vec(rate_strategy(), 1..=3),
    ) {
        let mut run = Run::new(&setup);
        for (i, cmd) in cmds.iter().enumerate() {
            run.step(cmd);
            // Half the runs re-quote whenever a quote is needed, as the service's sweep does.
            if auto_quote && run.s.needs_quote(run.now) {
                run.step(&Cmd::Quote(rates[i % rates.len()]));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Property 3: reordering reports to one quote
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Reorder {
    setup: Setup,
    /// Lightning payment to the quote, in per mille of its target.
    ln_permille: Option<u16>,
    /// On-chain transfers: (per mille of the target, rbf, confirmation levels reported).
    chain: Vec<(u16, bool, Vec<u32>)>,
}

fn reorder_strategy() -> impl Strategy<Value = Reorder> {
    (
        setup_strategy(),
        prop::option::of(1u16..=1500),
        prop::collection::vec(
            (
                1u16..=1200,
                prop::bool::weighted(0.3),
                prop::sample::subsequence(vec![0u32, 1, 2, 3, 6, 7], 1..=4),
            ),
            1..=3,
        ),
    )
        .prop_map(|(mut setup, ln_permille, chain)| {
            setup.ln = true;
            setup.oc = true;
            Reorder {
                setup,
                ln_permille,
                chain,
            }
        })
}

/// The reports of a reorder case, in their natural order.
fn reorder_reports(case: &Reorder, target_sats: u64) -> Vec<Spec> {
    let mut reports = Vec::new();
    if let Some(k) = case.ln_permille {
        let msat = (u128::from(target_sats) * 1000 * u128::from(k) / 1000).max(1);
        let spec = Spec::Ln {
            hash: hash(1),
            msat: u64::try_from(msat).unwrap(),
            reversed: false,
        };
        // The node may report the same payment twice.
        reports.push(spec.clone());
        reports.push(spec);
    }
    for (i, (k, rbf, levels)) in case.chain.iter().enumerate() {
        let sats = (target_sats * u64::from(*k) / 1000).max(1);
        for conf in levels {
            reports.push(Spec::Oc {
                tx: 100 + u32::try_from(i).unwrap(),
                vout: 1,
                address: ADDRESS.into(),
                sats,
                conf: *conf,
                rbf: *rbf,
                reversed: false,
            });
        }
    }
    reports
}

proptest! {
    #![proptest_config(config(128))]

    /// Property 3: Lightning payments to one quote and confirmation updates of on-chain
    /// transfers give the same totals, flags and status in any order (among orders in which
    /// every transfer arrives while the session is active; the status in every order).
    #[test]
    fn reordering_reports_to_one_quote(
        (case, orders) in reorder_strategy().prop_flat_map(|case| {
            let n = reorder_reports(&case, 1).len();
            let ids: Vec<usize> = (0..n).collect();
            (Just(case), prop::collection::vec(Just(ids).prop_shuffle(), 1..=6))
        })
    ) {
        let (mut base, _) =
            CheckoutSession::create(sid(3), case.setup.params(), t0()).expect("create");
        let terms = base.next_quote(pid(1), sats_rate(case.setup.rate_e4, t0()), t0()).unwrap();
        let req = request_for(&base, &terms, 1);
        base.issue_quote(terms, req, t0()).unwrap();
        let p = base.payments()[0].clone();
        let reports = reorder_reports(&case, p.target().get());
        let model = Model::new(&case.setup, t0());
        let policy = model.policy;

        // What every order must end with.
        let mut finals: BTreeMap<TransferKey, (u64, u32, bool)> = BTreeMap::new();
        for r in &reports {
            let e = finals.entry(r.key()).or_insert((r.msat(), 0, r.rbf()));
            e.1 = e.1.max(r.conf());
        }
        let confirmed = |(_, conf, rbf): &(u64, u32, bool)| {
            *conf >= if *rbf { policy.max(1) } else { policy }
        };
        let total: u64 = finals.values().map(|f| f.0).sum();
        let counted: u64 = finals
            .iter()
            .filter(|(k, f)| matches!(k, TransferKey::Lightning(_)) || confirmed(f))
            .map(|(_, f)| f.0)
            .sum();
        let target_msat = u128::from(p.target_msats().get());
        let due = minor_of(p.due());
        let counted_credit = due * u128::from(counted) / target_msat;
        let want_paid = counted_credit >= model.threshold();
        let want_overpaid = u64::try_from(u128::from(total).saturating_sub(target_msat)).unwrap();

        let mut reference: Option<(Totals, Vec<Flag>)> = None;
        for order in &orders {
            let mut s = base.clone();
            for (step, &i) in order.iter().enumerate() {
                let now = at(1 + i64::try_from(step).unwrap());
                s.record_transfer(reports[i].build(), now).expect("report accepted");
            }
            let status = if want_paid { SessionStatus::Paid } else { SessionStatus::Active };
            prop_assert_eq!(s.status(), status, "status for order {:?}", order);
            prop_assert!(s.transfers().all(|t| t.payment_id == p.id()));
            if s.transfers().all(|t| t.arrival == Arrival::Expected) {
                let totals = s.totals();
                prop_assert_eq!(totals.counted.get(), counted);
                prop_assert_eq!(totals.pending.get(), total - counted);
                prop_assert_eq!(totals.amount_paid, usd_minor(counted_credit));
                prop_assert_eq!(s.flagged(FlagKind::Overpaid).get(), want_overpaid);
                let flags = s.flags();
                prop_assert!(flags.iter().all(|f| f.kind == FlagKind::Overpaid));
                match &reference {
                    None => reference = Some((totals, flags)),
                    Some((t, f)) => {
                        prop_assert_eq!(&totals, t);
                        prop_assert_eq!(&flags, f);
                    }
                }
            } else {
                // Money that arrived after the session was paid is flagged in full.
                let after_paid: u64 = s
                    .transfers()
                    .filter(|t| t.arrival == Arrival::AfterPaid)
                    .map(|t| t.amount.get())
                    .sum();
                prop_assert!(s.flagged(FlagKind::Overpaid).get() >= after_paid);
                prop_assert_eq!(s.status(), SessionStatus::Paid);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Property 6 (and part of 7): the exact-payment boundary
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Paying a fresh quote's target pays (crediting exactly the amount, with no flags);
    /// one msat less than the threshold never does; the threshold amount does.
    #[test]
    fn exact_payment_and_threshold_boundary(
        amount_minor in amount_minor_strategy(),
        tol_h in tolerance_strategy(),
        rate_e4 in rate_strategy(),
    ) {
        let setup = Setup {
            amount_minor,
            tol_h,
            policy: 1,
            ln: true,
            oc: true,
            ttl: 600,
            rate_e4,
        };
        let (mut fresh, _) = CheckoutSession::create(sid(4), setup.params(), t0()).unwrap();
        let terms = fresh.next_quote(pid(1), sats_rate(rate_e4, t0()), t0()).unwrap();
        let req = request_for(&fresh, &terms, 1);
        fresh.issue_quote(terms, req, t0()).unwrap();
        let p = fresh.payments()[0].clone();
        prop_assert_eq!(p.due(), usd_minor(u128::from(amount_minor)));
        let target_msat = u128::from(p.target_msats().get());
        let due = u128::from(amount_minor);
        let thr = due - due * u128::from(tol_h) / 10_000;
        prop_assert_eq!(thr, threshold(&fresh));
        let min_msat = (thr * target_msat).div_ceil(due);
        prop_assert!(min_msat <= target_msat);

        // Exactly the target.
        let mut s = fresh.clone();
        let ev = s
            .record_transfer(TransferReport::lightning(hash(1), p.target_msats()), at(1))
            .unwrap();
        prop_assert_eq!(
            types(&ev),
            vec![
                "checkout_session.transfer_received",
                "payment.paid",
                "checkout_session.payment_paid",
                "checkout_session.paid"
            ]
        );
        prop_assert_eq!(s.status(), SessionStatus::Paid);
        prop_assert_eq!(s.totals().amount_paid, p.due());
        prop_assert_eq!(s.totals().counted, p.target_msats());
        prop_assert!(s.flags().is_empty());

        // The least that reaches the threshold.
        let mut s = fresh.clone();
        let report = TransferReport::lightning(hash(1), Msats::new(u64::try_from(min_msat).unwrap()));
        s.record_transfer(report, at(1)).unwrap();
        prop_assert_eq!(s.status(), SessionStatus::Paid);
        prop_assert!(s.flags().is_empty());

        // One msat less.
        if min_msat > 1 {
            let mut s = fresh.clone();
            let report =
                TransferReport::lightning(hash(1), Msats::new(u64::try_from(min_msat - 1).unwrap()));
            let ev = s.record_transfer(report, at(1)).unwrap();
            prop_assert_eq!(s.status(), SessionStatus::Active);
            prop_assert_eq!(
                types(&ev),
                vec![
                    "checkout_session.transfer_received",
                    "payment.paid",
                    "checkout_session.payment_paid"
                ]
            );
            prop_assert!(s.totals().amount_paid < usd_minor(thr));
            prop_assert!(s.flags().is_empty());
            prop_assert!(s.needs_quote(at(1)));
        }
    }

    /// Partial payments, each below its quote's target, then the last quote paid exactly:
    /// the session is paid with exactly its amount credited and nothing flagged.
    #[test]
    fn partial_payments_then_exact_payment_credit_exactly_the_amount(
        amount_minor in 100u64..=10_000_000,
        rate_e4 in rate_strategy(),
        rates in prop::collection::vec(rate_strategy(), 1..=4),
        parts in prop::collection::vec(1u16..1000, 1..=4),
    ) {
        let setup = Setup {
            amount_minor,
            tol_h: 0,
            policy: 1,
            ln: true,
            oc: false,
            ttl: 600,
            rate_e4,
        };
        let (mut s, _) = CheckoutSession::create(sid(5), setup.params(), t0()).unwrap();
        let mut now = t0();
        let mut n = 0u32;
        let mut issue = |s: &mut CheckoutSession, rate: u64, now: OffsetDateTime| {
            n += 1;
            let terms = s.next_quote(pid(n), sats_rate(rate, now), now).unwrap();
            let req = request_for(s, &terms, n);
            s.issue_quote(terms, req, now).unwrap();
            n
        };
        let mut q = issue(&mut s, rate_e4, now);
        for (k, rate) in parts.iter().zip(rates.iter().cycle()) {
            let p = s.payments().last().unwrap().clone();
            let msat = (p.target_msats().get() * u64::from(*k) / 1000).max(1);
            now += Duration::seconds(10);
            s.record_transfer(TransferReport::lightning(hash(q), Msats::new(msat)), now).unwrap();
            if !s.needs_quote(now) {
                break;
            }
            q = issue(&mut s, *rate, now);
        }
        if s.status() == SessionStatus::Active {
            let p = s.open_payment().expect("a quote is open").clone();
            now += Duration::seconds(10);
            s.record_transfer(TransferReport::lightning(hash(q), p.target_msats()), now).unwrap();
        }
        prop_assert_eq!(s.status(), SessionStatus::Paid);
        prop_assert_eq!(s.totals().amount_paid, s.amount());
        prop_assert!(s.flags().is_empty(), "flags {:?}", s.flags());
    }
}
