//! What [`CheckoutSession::from_json`] refuses rather than change: fields this version does
//! not write, and derived fields (totals, the number of payments) that differ from what
//! the session's facts give. The wire shapes themselves are in `json.rs`.

use rust_decimal::Decimal;

use super::CheckoutSession;
use super::json::nonzero;
use crate::error::Error;
use crate::id::PaymentId;

/// The fields of the objects this version writes: [`CheckoutSession::from_json`] refuses
/// any other ([`Error::UnknownField`]), since reading it would drop it. The snapshot types
/// read objects with other fields.
const SESSION_FIELDS: &[&str] = &[
    "id",
    "object",
    "livemode",
    "status",
    "currency",
    "amount",
    "target_currency",
    "ttl",
    "payment_methods",
    "confirmations",
    "amount_paid_tolerance",
    "statement_descriptor",
    "description",
    "success_url",
    "success_message",
    "cancel_url",
    "title",
    "title_description",
    "title_image",
    "source",
    "source_id",
    "metadata",
    "amount_paid",
    "target_amount_paid",
    "target_amount_pending",
    "onchain_address",
    "link",
    "payments",
    "payments_count",
    "transfers",
    "flags",
    "limits",
    "held_transfers",
    "paid_at",
    "deactivated_at",
    "deactivation_reason",
    "expires_at",
    "resolutions",
    "created",
    "modified",
    "version",
];
const PAYMENT_FIELDS: &[&str] = &[
    "id",
    "object",
    "status",
    "checkout_session",
    "currency",
    "amount",
    "exchange_rate",
    "exchange_rate_source",
    "exchange_rate_fetched_at",
    "target_currency",
    "target_amount",
    "target_amount_paid",
    "payment_method_options",
    "created",
    "modified",
    "expires_at",
    "paid_at",
    "expired_at",
    "cancelled_at",
];
const OPTION_FIELDS: &[&str] = &["lightning", "onchain"];
const RESOLUTION_FIELDS: &[&str] = &["kind", "amount_msat", "outcome", "reference", "at"];
const LIGHTNING_FIELDS: &[&str] = &["payment_request", "payment_hash", "expires_at"];
const ONCHAIN_FIELDS: &[&str] = &["address"];
const TRANSFER_FIELDS: &[&str] = &[
    "key",
    "payment_id",
    "amount_msat",
    "arrival",
    "confirmations",
    "rbf",
    "reversed",
    "first_seen",
    "counted_at",
    "sequence",
];

type Fields<'a> = std::collections::BTreeMap<String, &'a serde_json::value::RawValue>;

/// Refuses a field of `text` (an object, or `null`) that is not in `known`, then runs
/// `inner` on the fields.
fn known_fields<'a>(
    object: &'static str,
    text: &'a str,
    known: &[&str],
    inner: impl FnOnce(&Fields<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    if text.trim() == "null" {
        return Ok(());
    }
    let fields: Fields<'a> = crate::json::read_borrowed(text)?;
    if let Some(field) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::UnknownField {
            object,
            field: crate::money::truncate_for_error(field),
        });
    }
    inner(&fields)
}

/// Runs `each` on every element of the array field `name`, if there is one.
fn each_of<'a>(
    fields: &Fields<'a>,
    name: &str,
    each: impl Fn(&'a str) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some(raw) = fields.get(name) else {
        return Ok(());
    };
    let items: Vec<&'a serde_json::value::RawValue> = crate::json::read_borrowed(raw.get())?;
    items.iter().try_for_each(|item| each(item.get()))
}

/// Refuses JSON with fields this version does not write, at every level it reads.
pub(super) fn only_known_fields(text: &str) -> Result<(), Error> {
    let none = |_: &Fields<'_>| Ok(());
    known_fields("checkout_session", text, SESSION_FIELDS, |session| {
        each_of(session, "transfers", |t| {
            known_fields("transfer", t, TRANSFER_FIELDS, none)
        })?;
        each_of(session, "resolutions", |r| {
            known_fields("resolution", r, RESOLUTION_FIELDS, none)
        })?;
        each_of(session, "payments", |p| {
            known_fields("payment", p, PAYMENT_FIELDS, |payment| {
                let Some(options) = payment.get("payment_method_options") else {
                    return Ok(());
                };
                known_fields(
                    "payment_method_options",
                    options.get(),
                    OPTION_FIELDS,
                    |o| {
                        if let Some(l) = o.get("lightning") {
                            known_fields("lightning", l.get(), LIGHTNING_FIELDS, none)?;
                        }
                        match o.get("onchain") {
                            Some(c) => known_fields("onchain", c.get(), ONCHAIN_FIELDS, none),
                            None => Ok(()),
                        }
                    },
                )
            })
        })
    })
}

/// The derived fields a session's JSON states, kept to compare with what its facts give.
pub(super) struct Written {
    pub(super) amount_paid: Option<Decimal>,
    pub(super) target_amount_paid: Option<Decimal>,
    pub(super) target_amount_pending: Option<Decimal>,
    pub(super) payments_count: Option<usize>,
    pub(super) listed: usize,
    pub(super) payments: Vec<(PaymentId, Option<Decimal>)>,
}

impl Written {
    /// Refuses JSON whose derived fields differ from the session's (a field absent or
    /// `null` states zero, as Speed writes `null` until something is paid).
    pub(super) fn check(&self, s: &CheckoutSession) -> Result<(), Error> {
        let mismatch = |field, written: Option<String>, derived: Option<String>| {
            Err(Error::DerivedMismatch {
                field,
                written: written.unwrap_or_else(|| "null".into()),
                derived: derived.unwrap_or_else(|| "null".into()),
            })
        };
        if let Some(count) = self.payments_count.filter(|&c| c != self.listed) {
            return mismatch(
                "payments_count",
                Some(count.to_string()),
                Some(self.listed.to_string()),
            );
        }
        let totals = s.totals();
        let target = s.target_currency;
        let derived = [
            ("amount_paid", self.amount_paid, nonzero(totals.amount_paid)),
            (
                "target_amount_paid",
                self.target_amount_paid,
                nonzero(target.from_msats(totals.counted)),
            ),
            (
                "target_amount_pending",
                self.target_amount_pending,
                nonzero(target.from_msats(totals.pending)),
            ),
        ];
        let payments = self.payments.iter().map(|(id, written)| {
            let got = nonzero(target.from_msats(s.received_for(*id)));
            ("payments[].target_amount_paid", *written, got)
        });
        for (field, written, derived) in derived.into_iter().chain(payments) {
            if written != derived {
                return mismatch(
                    field,
                    written.map(|d| d.normalize().to_string()),
                    derived.map(|d| d.normalize().to_string()),
                );
            }
        }
        Ok(())
    }
}
