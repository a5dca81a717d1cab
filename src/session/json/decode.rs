//! From the wire structs back to a session and its payments, with every refusal of the
//! stored and API forms (ids that disagree, amounts that do not fit, unknown fields).

use super::*;

pub(super) fn payment_from_wire(w: PaymentWire, target: TargetCurrency) -> Result<Payment, Error> {
    let id = w.id;
    let invalid = |reason: &str| Error::Json(format!("payment {id}: {reason}"));
    let due_minor = crate::money::to_minor_units(w.amount, w.currency.scale())
        .and_then(|m| u128::try_from(m).ok())
        .ok_or_else(|| invalid("amount has more decimals than its currency"))?;
    let status = w.status.known("status")?;
    let state = match (status, w.paid_at, w.expired_at, w.cancelled_at) {
        (PaymentStatus::Unpaid, ..) => PaymentState::Unpaid,
        (PaymentStatus::Paid, Some(paid_at), ..) => PaymentState::Paid { paid_at },
        (PaymentStatus::Expired, _, Some(expired_at), _) => PaymentState::Expired { expired_at },
        (PaymentStatus::Cancelled, _, _, Some(cancelled_at)) => {
            PaymentState::Cancelled { cancelled_at }
        }
        (status, ..) => return Err(invalid(&format!("status {status:?} without its time"))),
    };
    let sats = match target {
        TargetCurrency::Sats => Some(w.target_amount),
        TargetCurrency::Btc => w
            .target_amount
            .checked_mul(Decimal::from(crate::money::SATS_PER_BTC)),
    }
    .ok_or_else(|| invalid("target_amount out of range"))?;
    if !sats.fract().is_zero() {
        return Err(invalid("target_amount is not a whole number of sats"));
    }
    let sats = u64::try_from(sats).map_err(|_| invalid("target_amount out of range"))?;
    let rate = ExchangeRate::new(
        w.currency,
        w.target_currency,
        w.exchange_rate,
        w.exchange_rate_source,
        w.exchange_rate_fetched_at,
    )?;
    // JSON drops trailing zeros; show the due amount at its currency's scale again.
    let mut due = w.amount;
    due.rescale(w.currency.scale());
    Ok(Payment {
        id: w.id,
        due,
        due_minor,
        target: Sats::checked(sats)?,
        rate,
        request: PaymentRequest {
            lightning: w
                .payment_method_options
                .lightning
                .map(|l| LightningInvoice {
                    payment_request: l.payment_request,
                    payment_hash: l.payment_hash,
                    expires_at: l.expires_at,
                }),
            onchain_address: w.payment_method_options.onchain.map(|o| o.address),
        },
        state,
        created: w.created,
        modified: w.modified.unwrap_or(w.created),
        expires_at: w.expires_at,
    })
}

/// Refuses payments where one but the newest is unpaid: the commands never make such a
/// session (a quote is issued only once the one before is no longer open), and the
/// session relies on it to look for the open quote at the newest alone.
pub(super) fn only_newest_unpaid(payments: &[std::sync::Arc<Payment>]) -> Result<(), Error> {
    match payments.iter().rev().skip(1).find(|p| p.state.is_unpaid()) {
        Some(p) => Err(Error::Json(format!(
            "payment {} is unpaid but not the newest",
            p.id
        ))),
        None => Ok(()),
    }
}

/// A session from a store's row head: this crate's own JSON, read without the checks of
/// [`CheckoutSession::from_json`] (the head lists no payments or transfers but carries
/// the totals they give).
pub(super) fn stored_session(head: &str) -> Result<CheckoutSession, String> {
    let wire: SessionWire = crate::json::read(head).map_err(|e| e.to_string())?;
    session_from_wire(wire).map_err(|e| e.to_string())
}

impl Written {
    /// What `w` states.
    pub(super) fn of(w: &SessionWire) -> Self {
        Self {
            amount_paid: w.amount_paid,
            target_amount_paid: w.target_amount_paid,
            target_amount_pending: w.target_amount_pending,
            payments_count: w.payments_count,
            listed: w.payments.wires().len(),
            payments: w
                .payments
                .wires()
                .iter()
                .map(|p| (p.id, p.target_amount_paid))
                .collect(),
        }
    }
}

pub(super) fn session_from_wire(w: SessionWire) -> Result<CheckoutSession, Error> {
    let status = w.status.known("status")?;
    let state = match (status, w.paid_at, w.deactivated_at) {
        (SessionStatus::Active, ..) => SessionState::Active,
        (SessionStatus::Paid, Some(paid_at), _) => SessionState::Paid { paid_at },
        (SessionStatus::Deactivated, _, Some(deactivated_at)) => SessionState::Deactivated {
            deactivated_at,
            // Sessions written before reasons were recorded were all deactivated by hand.
            reason: match w.deactivation_reason {
                Some(reason) => reason.known("deactivation_reason")?,
                None => DeactivationReason::Requested,
            },
        },
        (status, ..) => {
            return Err(Error::Json(format!(
                "session status {status:?} without its time"
            )));
        }
    };
    let methods: BTreeSet<PaymentMethod> = w
        .payment_methods
        .into_iter()
        .map(|m| m.known("payment_methods"))
        .collect::<Result<_, _>>()?;
    let target = w.target_currency;
    // A session's payments are in its own currencies, each listed once; they are kept in
    // the order they were issued whatever order the JSON lists them in.
    if w.payments.wires().iter().any(|p| {
        p.currency != w.currency || p.target_currency != target || p.checkout_session != w.id
    }) {
        return Err(Error::Json(
            "a payment is in other currencies or of another session".into(),
        ));
    }
    let mut payments = w
        .payments
        .into_wires()
        .into_iter()
        .map(|p| payment_from_wire(p, target).map(std::sync::Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    payments.sort_by_key(|p| (p.created, p.id));
    only_newest_unpaid(&payments)?;
    if payments.windows(2).any(|w| w[0].id == w[1].id) {
        return Err(Error::Json("a payment is listed twice".into()));
    }
    let amount = w.currency.validate_amount(w.amount)?;
    // The same limits as creation: a stored session outside them cannot be trusted.
    if !(crate::session::MIN_TTL_SECS..=crate::session::MAX_TTL_SECS).contains(&w.ttl) {
        return Err(Error::InvalidTtl(w.ttl));
    }
    if w.amount_paid_tolerance < Decimal::ZERO || w.amount_paid_tolerance >= Decimal::ONE_HUNDRED {
        return Err(Error::InvalidTolerance(w.amount_paid_tolerance));
    }
    let session = CheckoutSession {
        id: w.id,
        livemode: w.livemode,
        amount,
        currency: w.currency,
        target_currency: target,
        payment_methods: methods,
        ttl_secs: w.ttl,
        tolerance: w.amount_paid_tolerance,
        limits: crate::session::accounting::Limits::of(
            amount,
            w.currency.scale(),
            w.amount_paid_tolerance,
        ),
        caps: w.limits.checked(),
        held: w.held_transfers,
        confirmations: w.confirmations,
        statement_descriptor: w.statement_descriptor,
        source: w.source,
        source_id_integer: matches!(w.source_id, Some(SourceIdWire::Integer(_))),
        source_id: w.source_id.map(|id| match id {
            SourceIdWire::Integer(n) => n.to_string(),
            SourceIdWire::Text(text) => text,
        }),
        details: Details {
            description: w.description,
            metadata: w.metadata,
            success_url: w.success_url,
            success_message: w.success_message,
            cancel_url: w.cancel_url,
            branding: Branding {
                title: w.title,
                title_description: w.title_description,
                title_image: w.title_image,
            },
        },
        state,
        payments: payments.into(),
        transfers: Default::default(),
        ledger: Default::default(),
        resolutions: std::sync::Arc::new(w.resolutions),
        onchain_address: w.onchain_address,
        link: w.link,
        expires_at: w.expires_at,
        created: w.created,
        modified: w.modified,
        version: w.version,
        texts: Default::default(),
    };
    let mut session = session;
    session.ledger.make_room(session.payments.len());
    session.add_transfers(w.transfers)?;
    Ok(session)
}
