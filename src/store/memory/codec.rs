//! A compact binary form of a session's head and payments for the in-memory store.
//!
//! The live [`CheckoutSession`] is built for cheap changes (shared payments, a ledger of
//! running sums, room for every optional field) and takes about 2 KB for a fresh session;
//! this form takes about 300 bytes, which is what lets the store keep a million active
//! sessions in well under a gigabyte. Transfers are not encoded: the store keeps them in a
//! map of its own, updated with the transfers each commit changed, and decoding copies
//! them into the session and rebuilds the ledger from them.
//!
//! Only this store reads what it writes, in the same process, so the format has no
//! version. Times keep their nanoseconds and offset, decimals their scale: decoding gives
//! back a session equal to the one encoded.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::id::{PaymentId, SessionId};
use crate::money::{ExchangeRate, Sats};
use crate::payment::{Payment, PaymentState};
use crate::request::{Hash32, LightningInvoice, PaymentRequest};
use crate::session::{Branding, CheckoutSession, Details, SessionState};
use crate::transfer::{PaymentMethod, Transfer, TransferKey};

/// The bytes are not a session this module wrote.
#[derive(Debug)]
pub(super) struct Corrupt;

pub(super) type Transfers = HashMap<TransferKey, Transfer>;

/// The session without its payments and transfers.
pub(super) fn encode(s: &CheckoutSession) -> Box<[u8]> {
    let mut w = Writer(Vec::with_capacity(384));
    w.uuid(s.id.as_uuid());
    let base = s.created.unix_timestamp_nanos();
    w.time(0, s.created);
    // Bit 0: livemode; bit 1: source_id written as an integer.
    w.u8(u8::from(s.livemode) | (u8::from(s.source_id_integer) << 1));
    w.decimal(s.amount);
    w.json(&s.currency);
    w.json(&s.target_currency);
    w.u8(methods_mask(&s.payment_methods));
    w.signed(i128::from(s.ttl_secs));
    w.decimal(s.tolerance);
    w.json(&s.confirmations);
    for text in [&s.statement_descriptor, &s.source, &s.source_id] {
        w.opt_str(text.as_deref());
    }
    let d = &s.details;
    w.opt_str(d.description.as_deref());
    w.json(&d.metadata);
    for text in [&d.success_url, &d.success_message, &d.cancel_url] {
        w.opt_str(text.as_deref());
    }
    let b = &d.branding;
    for text in [&b.title, &b.title_description, &b.title_image] {
        w.opt_str(text.as_deref());
    }
    match s.state {
        SessionState::Active => w.u8(0),
        SessionState::Paid { paid_at } => {
            w.u8(1);
            w.time(base, paid_at);
        }
        SessionState::Deactivated {
            deactivated_at,
            reason,
        } => {
            w.u8(2);
            w.time(base, deactivated_at);
            w.json(&reason);
        }
    }
    match s.expires_at {
        Some(at) => {
            w.u8(1);
            w.time(base, at);
        }
        None => w.u8(0),
    }
    // Rare (a merchant's review), so kept as JSON rather than packed.
    w.json(&*s.resolutions);
    w.opt_str(s.onchain_address.as_deref());
    match &s.link {
        Some(link) => {
            w.u8(1);
            w.json(link);
        }
        None => w.u8(0),
    }
    w.time(base, s.modified);
    w.unsigned(u128::from(s.version));
    w.unsigned(u128::from(s.caps.quotes()));
    w.unsigned(u128::from(s.caps.transfers()));
    w.unsigned(u128::from(s.held.count));
    w.unsigned(u128::from(s.held.amount.get()));
    w.0.into_boxed_slice()
}

/// One of `s`'s payments, encoded apart so that a change rewrites only the payments it
/// touched (a session paid in many parts has many).
pub(super) fn encode_payment(s: &CheckoutSession, p: &Payment) -> Box<[u8]> {
    let mut w = Writer(Vec::with_capacity(160));
    payment(
        &mut w,
        s.created.unix_timestamp_nanos(),
        p,
        s.onchain_address.as_deref(),
    );
    w.0.into_boxed_slice()
}

fn payment(w: &mut Writer, base: i128, p: &Payment, session_address: Option<&str>) {
    w.uuid(p.id.as_uuid());
    w.decimal(p.due);
    w.unsigned(p.due_minor);
    w.unsigned(u128::from(p.target.get()));
    w.json(&p.rate.base());
    w.json(&p.rate.target());
    w.decimal(p.rate.rate());
    w.str(p.rate.source());
    w.time(base, p.rate.fetched_at());
    match &p.request.lightning {
        Some(inv) => {
            w.u8(1);
            w.str(&inv.payment_request);
            w.0.extend_from_slice(&inv.payment_hash.to_bytes());
            w.time(base, inv.expires_at);
        }
        None => w.u8(0),
    }
    // Quotes normally carry their session's address: one byte instead of a copy.
    match p.request.onchain_address.as_deref() {
        None => w.u8(0),
        Some(a) if Some(a) == session_address => w.u8(1),
        Some(a) => {
            w.u8(2);
            w.str(a);
        }
    }
    let (tag, at) = match p.state {
        PaymentState::Unpaid => (0, None),
        PaymentState::Paid { paid_at } => (1, Some(paid_at)),
        PaymentState::Expired { expired_at } => (2, Some(expired_at)),
        PaymentState::Cancelled { cancelled_at } => (3, Some(cancelled_at)),
    };
    w.u8(tag);
    if let Some(at) = at {
        w.time(base, at);
    }
    w.time(base, p.created);
    w.time(base, p.modified);
    w.time(base, p.expires_at);
}

/// The session written by [`encode`], with its payments (from [`encode_payment`], in
/// order) and `transfers` (none when `None`).
pub(super) fn decode(
    bytes: &[u8],
    encoded_payments: &[Box<[u8]>],
    transfers: Option<&Transfers>,
) -> Result<CheckoutSession, Corrupt> {
    let mut r = Reader(bytes);
    let id = SessionId::from_uuid(r.uuid()?);
    let created = r.time(0)?;
    let base = created.unix_timestamp_nanos();
    let flags = r.u8()?;
    let livemode = flags & 1 != 0;
    let source_id_integer = flags & 2 != 0;
    let amount = r.decimal()?;
    let currency: crate::money::Currency = r.json()?;
    let target_currency = r.json()?;
    let payment_methods = methods_from_mask(r.u8()?);
    let ttl_secs = i64::try_from(r.signed()?).map_err(|_| Corrupt)?;
    let tolerance = r.decimal()?;
    let confirmations = r.json()?;
    let statement_descriptor = r.opt_str()?;
    let source = r.opt_str()?;
    let source_id = r.opt_str()?;
    let description = r.opt_str()?;
    let metadata = r.json()?;
    let success_url = r.opt_str()?;
    let success_message = r.opt_str()?;
    let cancel_url = r.opt_str()?;
    let branding = Branding {
        title: r.opt_str()?,
        title_description: r.opt_str()?,
        title_image: r.opt_str()?,
    };
    let state = match r.u8()? {
        0 => SessionState::Active,
        1 => SessionState::Paid {
            paid_at: r.time(base)?,
        },
        2 => SessionState::Deactivated {
            deactivated_at: r.time(base)?,
            reason: r.json()?,
        },
        _ => return Err(Corrupt),
    };
    let expires_at = match r.u8()? {
        0 => None,
        _ => Some(r.time(base)?),
    };
    let resolutions: Vec<crate::session::Resolution> = r.json()?;
    let onchain_address = r.opt_str()?;
    let link = match r.u8()? {
        0 => None,
        _ => Some(r.json()?),
    };
    let modified = r.time(base)?;
    let version = u64::try_from(r.unsigned()?).map_err(|_| Corrupt)?;
    let small = |v: u128| u32::try_from(v).map_err(|_| Corrupt);
    let caps = crate::session::SessionLimits::new()
        .max_quotes(small(r.unsigned()?)?)
        .max_transfers(small(r.unsigned()?)?);
    let held = crate::session::HeldTotals {
        count: u64::try_from(r.unsigned()?).map_err(|_| Corrupt)?,
        amount: crate::money::Msats::new(u64::try_from(r.unsigned()?).map_err(|_| Corrupt)?),
    };
    if !r.0.is_empty() {
        return Err(Corrupt);
    }
    let mut payments = Vec::with_capacity(encoded_payments.len());
    for bytes in encoded_payments {
        let mut r = Reader(bytes);
        payments.push(Arc::new(read_payment(
            &mut r,
            base,
            onchain_address.as_deref(),
        )?));
        if !r.0.is_empty() {
            return Err(Corrupt);
        }
    }
    let mut session = CheckoutSession {
        id,
        livemode,
        amount,
        currency,
        target_currency,
        payment_methods,
        ttl_secs,
        tolerance,
        limits: crate::session::Limits::of(amount, currency.scale(), tolerance),
        caps,
        held,
        confirmations,
        statement_descriptor,
        source,
        source_id,
        source_id_integer,
        details: Details {
            description,
            metadata,
            success_url,
            success_message,
            cancel_url,
            branding,
        },
        state,
        payments: payments.into(),
        transfers: Arc::new(transfers.cloned().unwrap_or_default()),
        ledger: Default::default(),
        resolutions: Arc::new(resolutions),
        onchain_address,
        link,
        expires_at,
        created,
        modified,
        version,
        texts: Default::default(),
    };
    session.rebuild_ledger();
    Ok(session)
}

fn read_payment(
    r: &mut Reader,
    base: i128,
    session_address: Option<&str>,
) -> Result<Payment, Corrupt> {
    let id = PaymentId::from_uuid(r.uuid()?);
    let due = r.decimal()?;
    let due_minor = r.unsigned()?;
    let target = Sats::new(u64::try_from(r.unsigned()?).map_err(|_| Corrupt)?);
    let rate_base = r.json()?;
    let rate_target = r.json()?;
    let rate_value = r.decimal()?;
    let source = r.str()?;
    let fetched_at = r.time(base)?;
    let rate = ExchangeRate::new(rate_base, rate_target, rate_value, source, fetched_at)
        .map_err(|_| Corrupt)?;
    let lightning = match r.u8()? {
        0 => None,
        _ => Some(LightningInvoice {
            payment_request: r.str()?,
            payment_hash: Hash32::from_bytes(r.array()?),
            expires_at: r.time(base)?,
        }),
    };
    let onchain_address = match r.u8()? {
        0 => None,
        1 => Some(session_address.ok_or(Corrupt)?.to_owned()),
        _ => Some(r.str()?),
    };
    let state = match r.u8()? {
        0 => PaymentState::Unpaid,
        1 => PaymentState::Paid {
            paid_at: r.time(base)?,
        },
        2 => PaymentState::Expired {
            expired_at: r.time(base)?,
        },
        3 => PaymentState::Cancelled {
            cancelled_at: r.time(base)?,
        },
        _ => return Err(Corrupt),
    };
    Ok(Payment {
        id,
        due,
        due_minor,
        target,
        rate,
        request: PaymentRequest {
            lightning,
            onchain_address,
        },
        state,
        created: r.time(base)?,
        modified: r.time(base)?,
        expires_at: r.time(base)?,
    })
}

fn methods_mask(methods: &BTreeSet<PaymentMethod>) -> u8 {
    methods.iter().fold(0, |mask, m| {
        mask | match m {
            PaymentMethod::Lightning => 1,
            PaymentMethod::Onchain => 2,
        }
    })
}

fn methods_from_mask(mask: u8) -> BTreeSet<PaymentMethod> {
    [(1, PaymentMethod::Lightning), (2, PaymentMethod::Onchain)]
        .into_iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, m)| m)
        .collect()
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    /// LEB128: seven bits per byte, low bits first.
    fn unsigned(&mut self, mut v: u128) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(low);
                return;
            }
            self.0.push(low | 0x80);
        }
    }

    /// Zig-zag, so small negative numbers stay short.
    fn signed(&mut self, v: i128) {
        self.unsigned(((v << 1) ^ (v >> 127)) as u128);
    }

    fn uuid(&mut self, id: Uuid) {
        self.0.extend_from_slice(id.as_bytes());
    }

    /// Scale and sign in one byte, then the magnitude of the mantissa.
    fn decimal(&mut self, d: Decimal) {
        self.u8(d.scale() as u8 | if d.is_sign_negative() { 0x80 } else { 0 });
        self.unsigned(d.mantissa().unsigned_abs());
    }

    fn str(&mut self, s: &str) {
        self.unsigned(s.len() as u128);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }

    /// Nanoseconds after `base` (the session's creation: most times are close to it, so
    /// they take a few bytes), then the offset.
    fn time(&mut self, base: i128, t: OffsetDateTime) {
        self.signed(t.unix_timestamp_nanos() - base);
        self.signed(i128::from(t.offset().whole_seconds()));
    }

    /// Small enums, ids and metadata in their JSON form: exact, and short enough.
    fn json<T: Serialize>(&mut self, v: &T) {
        // Serializing these plain values cannot fail; an empty text would fail decoding.
        self.str(&serde_json::to_string(v).unwrap_or_default());
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Corrupt> {
        if n > self.0.len() {
            return Err(Corrupt);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Corrupt> {
        self.take(N)?.try_into().map_err(|_| Corrupt)
    }

    fn u8(&mut self) -> Result<u8, Corrupt> {
        Ok(self.array::<1>()?[0])
    }

    fn unsigned(&mut self) -> Result<u128, Corrupt> {
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let byte = self.u8()?;
            v |= u128::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Corrupt)
    }

    fn signed(&mut self) -> Result<i128, Corrupt> {
        let v = self.unsigned()?;
        Ok(((v >> 1) as i128) ^ -((v & 1) as i128))
    }

    fn uuid(&mut self) -> Result<Uuid, Corrupt> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    fn decimal(&mut self) -> Result<Decimal, Corrupt> {
        let head = self.u8()?;
        let mantissa = i128::try_from(self.unsigned()?).map_err(|_| Corrupt)?;
        let mut d = Decimal::try_from_i128_with_scale(mantissa, u32::from(head & 0x7f))
            .map_err(|_| Corrupt)?;
        d.set_sign_negative(head & 0x80 != 0);
        Ok(d)
    }

    fn str(&mut self) -> Result<String, Corrupt> {
        let len = usize::try_from(self.unsigned()?).map_err(|_| Corrupt)?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| Corrupt)
    }

    fn opt_str(&mut self) -> Result<Option<String>, Corrupt> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.str().map(Some),
        }
    }

    fn time(&mut self, base: i128) -> Result<OffsetDateTime, Corrupt> {
        let nanos = base.checked_add(self.signed()?).ok_or(Corrupt)?;
        let utc = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| Corrupt)?;
        let seconds = i32::try_from(self.signed()?).map_err(|_| Corrupt)?;
        let offset = UtcOffset::from_whole_seconds(seconds).map_err(|_| Corrupt)?;
        Ok(utc.to_offset(offset))
    }

    fn json<T: DeserializeOwned>(&mut self) -> Result<T, Corrupt> {
        serde_json::from_str(&self.str()?).map_err(|_| Corrupt)
    }
}
