//! Read-only snapshots: sessions, payments and links as JSON carries them, every field
//! kept, whatever API version wrote them.
//!
//! The domain types ([`CheckoutSession`], [`Link`](crate::link::Link)) run commands, so
//! they hold only states they know and only whole objects: they refuse an unknown status
//! or field and a session whose totals its JSON does not carry the facts for. A webhook
//! receiver, or an application reading objects a newer version wrote, needs to read them
//! anyway. A snapshot does: it keeps every field in the order it came, each value as the
//! text it was, so [`to_json`](Snapshot::to_json) writes back what was read (without the
//! whitespace between fields), and its typed accessors read one field at a time, exactly
//! (decimals never through floating point) and with unknown enumeration values as
//! [`MaybeKnown::Unknown`].
//!
//! ```
//! use bitcoin_checkout::json::MaybeKnown;
//! use bitcoin_checkout::snapshot::SessionSnapshot;
//! use bitcoin_checkout::SessionStatus;
//!
//! // A session from a newer API version: a status and a field this one does not know.
//! let json = r#"{"id":"cs_0123456789abcdef0123456789abcdef","object":"checkout_session","status":"processing","amount":9.99999999999999999999999999,"currency":"USD","risk":{"score":0.25},"payments":[]}"#;
//! let snapshot = SessionSnapshot::from_json(json)?;
//! assert_eq!(snapshot.status()?, MaybeKnown::Unknown("processing".into()));
//! assert_eq!(snapshot.amount()?.to_string(), "9.99999999999999999999999999");
//! assert_eq!(snapshot.to_json(), json);
//! // The domain type refuses it, saying why.
//! assert!(snapshot.to_session().is_err());
//! # Ok::<(), bitcoin_checkout::Error>(())
//! ```

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::error::Error;
use crate::id::{LinkId, PaymentId, SessionId};
use crate::json::MaybeKnown;
use crate::link::LinkStatus;
use crate::metadata::Metadata;
use crate::money::{Currency, TargetCurrency};
use crate::outbox::Event;
use crate::payment::PaymentStatus;
use crate::session::{CheckoutSession, SessionStatus};
use crate::transfer::PaymentMethod;

/// A JSON object as read: every field in its order, each value as its text.
#[derive(Clone)]
pub struct Snapshot {
    fields: Vec<(String, Box<RawValue>)>,
}

/// Equal when the same fields hold the same texts, in the same order.
impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .zip(&other.fields)
                .all(|((n, v), (m, w))| n == m && v.get() == w.get())
    }
}

impl Eq for Snapshot {}

impl Snapshot {
    /// Reads a JSON object; refuses anything else, and an object naming a field twice
    /// (which of the two a reader takes differs between parsers).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        crate::json::read(text)
    }

    /// The object as JSON: every field read, in its order, with its value's text.
    pub fn to_json(&self) -> String {
        // Strings and raw values that were valid JSON: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The raw value of a field.
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| &**v)
    }

    /// Every field, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), &**v))
    }

    /// A field read as `T`; `None` when it is absent or `null`.
    pub fn field<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => crate::json::read(raw.get())
                .map(Some)
                .map_err(|e| in_field(name, e)),
        }
    }

    /// A field that must be there.
    pub fn required<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        self.field(name)?
            .ok_or_else(|| Error::Json(format!("missing field `{name}`")))
    }

    /// A decimal field, exactly (see [`json::decimal_number`](crate::json::decimal_number));
    /// `None` when absent or `null`.
    pub fn decimal(&self, name: &str) -> Result<Option<Decimal>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => crate::json::exact_decimal(raw.get()).map(Some),
        }
    }

    /// A time field written as Unix milliseconds; `None` when absent or `null`.
    pub fn millis(&self, name: &str) -> Result<Option<OffsetDateTime>, Error> {
        self.field::<i64>(name)?
            .map(|ms| crate::json::millis::from_millis(ms).map_err(Error::Json))
            .transpose()
    }
}

fn in_field(name: &str, e: Error) -> Error {
    match e {
        Error::Json(message) => Error::Json(format!("field `{name}`: {message}")),
        other => other,
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Snapshot;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Snapshot, A::Error> {
                let mut fields: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    if fields.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!(
                            "field `{name}` appears twice"
                        )));
                    }
                    fields.push((name, value));
                }
                Ok(Snapshot { fields })
            }
        }
        d.deserialize_map(Fields)
    }
}

/// The snapshot types' shared surface: reading, writing back, the raw fields.
macro_rules! snapshot_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(Snapshot);

        impl $name {
            /// Reads the object's JSON (any API version). Only the JSON's syntax is
            /// checked here; each accessor checks its field.
            pub fn from_json(text: &str) -> Result<Self, Error> {
                Snapshot::from_json(text).map(Self)
            }

            /// The object as JSON, every field as it was read.
            pub fn to_json(&self) -> String {
                self.0.to_json()
            }

            /// Every field, raw.
            pub fn fields(&self) -> &Snapshot {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Snapshot::deserialize(d).map(Self)
            }
        }
    };
}

snapshot_type!(
    /// A checkout session's JSON as read: a webhook payload's `data.object`, an API
    /// response, a session a newer version wrote.
    ///
    /// Event payloads list only the newest payments (`payments_count` says how many there
    /// are) and no transfers: the totals they state are the session's, and
    /// [`to_session`](Self::to_session) refuses to rebuild a session from them.
    SessionSnapshot
);

snapshot_type!(
    /// A payment's JSON as read (Speed's payment object).
    PaymentSnapshot
);

snapshot_type!(
    /// A checkout or payment link's JSON as read.
    LinkSnapshot
);

impl SessionSnapshot {
    /// `id`.
    pub fn id(&self) -> Result<SessionId, Error> {
        self.0.required("id")
    }
    /// `status`: an unknown one as [`MaybeKnown::Unknown`].
    pub fn status(&self) -> Result<MaybeKnown<SessionStatus>, Error> {
        self.0.required("status")
    }
    /// `amount`, exactly.
    pub fn amount(&self) -> Result<Decimal, Error> {
        required_decimal(&self.0, "amount")
    }
    /// `currency`.
    pub fn currency(&self) -> Result<Currency, Error> {
        self.0.required("currency")
    }
    /// `target_currency`.
    pub fn target_currency(&self) -> Result<TargetCurrency, Error> {
        self.0.required("target_currency")
    }
    /// `amount_paid` (`None` until something is paid).
    pub fn amount_paid(&self) -> Result<Option<Decimal>, Error> {
        self.0.decimal("amount_paid")
    }
    /// `target_amount_paid` (`None` until something counts).
    pub fn target_amount_paid(&self) -> Result<Option<Decimal>, Error> {
        self.0.decimal("target_amount_paid")
    }
    /// `payment_methods`: unknown ones as [`MaybeKnown::Unknown`].
    pub fn payment_methods(&self) -> Result<Vec<MaybeKnown<PaymentMethod>>, Error> {
        Ok(self.0.field("payment_methods")?.unwrap_or_default())
    }
    /// `metadata` (empty when absent).
    pub fn metadata(&self) -> Result<Metadata, Error> {
        Ok(self.0.field("metadata")?.unwrap_or_default())
    }
    /// The payments listed (in an event payload: the newest ones only).
    pub fn payments(&self) -> Result<Vec<PaymentSnapshot>, Error> {
        Ok(self.0.field("payments")?.unwrap_or_default())
    }
    /// `payments_count`: how many payments the session has, listed or not.
    pub fn payments_count(&self) -> Result<Option<usize>, Error> {
        self.0.field("payments_count")
    }
    /// The session as a domain type, if the JSON is a whole session this version can run
    /// commands on: see [`CheckoutSession::from_json`] for what it refuses.
    pub fn to_session(&self) -> Result<CheckoutSession, Error> {
        CheckoutSession::from_json(&self.to_json())
    }
}

impl PaymentSnapshot {
    /// `id`.
    pub fn id(&self) -> Result<PaymentId, Error> {
        self.0.required("id")
    }
    /// `status`: an unknown one (`refunded`, …) as [`MaybeKnown::Unknown`].
    pub fn status(&self) -> Result<MaybeKnown<PaymentStatus>, Error> {
        self.0.required("status")
    }
    /// `checkout_session`.
    pub fn checkout_session(&self) -> Result<SessionId, Error> {
        self.0.required("checkout_session")
    }
    /// `amount` (fiat), exactly.
    pub fn amount(&self) -> Result<Decimal, Error> {
        required_decimal(&self.0, "amount")
    }
    /// `exchange_rate`, exactly.
    pub fn exchange_rate(&self) -> Result<Decimal, Error> {
        required_decimal(&self.0, "exchange_rate")
    }
    /// `target_amount`, exactly.
    pub fn target_amount(&self) -> Result<Decimal, Error> {
        required_decimal(&self.0, "target_amount")
    }
    /// `target_amount_paid` (`None` until something is received).
    pub fn target_amount_paid(&self) -> Result<Option<Decimal>, Error> {
        self.0.decimal("target_amount_paid")
    }
}

impl LinkSnapshot {
    /// `id` (`cl_…` or `pl_…`).
    pub fn id(&self) -> Result<LinkId, Error> {
        self.0.required("id")
    }
    /// `status`: an unknown one as [`MaybeKnown::Unknown`].
    pub fn status(&self) -> Result<MaybeKnown<LinkStatus>, Error> {
        self.0.required("status")
    }
    /// `checkout_session`: the session a checkout link opened, if any.
    pub fn checkout_session(&self) -> Result<Option<SessionId>, Error> {
        self.0.field("checkout_session")
    }
}

fn required_decimal(s: &Snapshot, name: &str) -> Result<Decimal, Error> {
    s.decimal(name)?
        .ok_or_else(|| Error::Json(format!("missing field `{name}`")))
}

/// The object an event concerns, by its `object` field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectSnapshot {
    /// `checkout_session`.
    Session(SessionSnapshot),
    /// `payment`.
    Payment(PaymentSnapshot),
    /// `checkout.link` or `payment.link`.
    Link(LinkSnapshot),
    /// Any other object (a newer version's).
    Other(Snapshot),
}

impl ObjectSnapshot {
    /// Reads an object's JSON and sorts it by its `object` field.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let s = Snapshot::from_json(text)?;
        Ok(match s.field::<String>("object")?.as_deref() {
            Some("checkout_session") => Self::Session(SessionSnapshot(s)),
            Some("payment") => Self::Payment(PaymentSnapshot(s)),
            Some("checkout.link" | "payment.link") => Self::Link(LinkSnapshot(s)),
            _ => Self::Other(s),
        })
    }

    /// The object of a webhook event (`data.object`).
    ///
    /// ```
    /// use bitcoin_checkout::snapshot::ObjectSnapshot;
    /// use bitcoin_checkout::Event;
    ///
    /// let body = r#"{"id":"evt_0123456789abcdef0123456789abcdef","object":"events","api_version":"2022-10-15","event_type":"payment.refunded","data":{"object":{"id":"pi_0123456789abcdef0123456789abcdef","object":"payment","status":"refunded"}},"livemode":false,"created":1767225600000}"#;
    /// let event = Event::from_json(body)?;
    /// let ObjectSnapshot::Payment(payment) = ObjectSnapshot::of(&event)? else { panic!() };
    /// assert_eq!(payment.status()?.as_known(), None);
    /// # Ok::<(), bitcoin_checkout::Error>(())
    /// ```
    pub fn of(event: &Event) -> Result<Self, Error> {
        Self::from_json(event.object.get())
    }
}
