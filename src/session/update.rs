//! Updating the fields of a session that may change at any time.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::SessionChange;
use super::params::{MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS};
use super::text::{check_text, check_url};
use super::{Branding, CheckoutSession, Details};
use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::metadata::MetadataPatch;

/// A change to a session's mutable fields: description, metadata (merged; a `None` value
/// removes a key), success URL or message, cancel URL and branding.
///
/// Fixed at creation and refused here: amount, currency, target currency, ttl, payment
/// methods, tolerance, confirmations, livemode, statement descriptor, source and source id
/// (the last three identify the order and are written into invoices already issued).
///
/// For each field, `None` leaves it as it is and `Some(None)` clears it; in JSON, a missing
/// field is left alone and `null` clears it (`"metadata": null` removes every key). Fields that never change (amount, currency,
/// ttl, payment methods, target currency) are refused with
/// [`Error::ImmutableField`](crate::Error::ImmutableField).
///
/// ```
/// use bitcoin_checkout::{MetadataPatch, SessionUpdate};
///
/// let update = SessionUpdate::new()
///     .description("Order #1001 (gift)")
///     .metadata(MetadataPatch::new().set("gift", true).remove("coupon"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionUpdate {
    description: Option<Option<String>>,
    metadata: MetadataPatch,
    clear_metadata: bool,
    success_url: Option<Option<String>>,
    success_message: Option<Option<String>>,
    cancel_url: Option<Option<String>>,
    title: Option<Option<String>>,
    title_description: Option<Option<String>>,
    title_image: Option<Option<String>>,
    immutable: Option<&'static str>,
}

/// Writes the update as it reads: absent = unchanged, `null` = clear (`"metadata": null`
/// clears every key), and a refused creation-only field is written back (as `null`) so the
/// update stays refused after a round trip.
impl Serialize for SessionUpdate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        let texts = [
            ("description", &self.description),
            ("success_url", &self.success_url),
            ("success_message", &self.success_message),
            ("cancel_url", &self.cancel_url),
            ("title", &self.title),
            ("title_description", &self.title_description),
            ("title_image", &self.title_image),
        ];
        for (name, value) in texts {
            if let Some(v) = value {
                map.serialize_entry(name, v)?;
            }
        }
        // A clear with a patch has no single JSON spelling; the patch is what is written.
        if !self.metadata.is_empty() {
            map.serialize_entry("metadata", &self.metadata)?;
        } else if self.clear_metadata {
            map.serialize_entry("metadata", &())?;
        }
        if let Some(field) = self.immutable {
            map.serialize_entry(field, &())?;
        }
        map.end()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident, $clear:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: impl Into<String>) -> Self {
                self.$field = Some(Some(value.into()));
                self
            }

            /// Clears the field.
            pub fn $clear(mut self) -> Self {
                self.$field = Some(None);
                self
            }
        )*
    };
}

impl SessionUpdate {
    /// An update that changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads Speed's update JSON (missing = unchanged, `null` = clear).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        crate::json::read(text)
    }

    setters! {
        /// Sets the description.
        description, clear_description;
        /// Sets the success URL.
        success_url, clear_success_url;
        /// Sets the success message.
        success_message, clear_success_message;
        /// Sets the cancel URL.
        cancel_url, clear_cancel_url;
        /// Sets the page title.
        title, clear_title;
        /// Sets the line under the title.
        title_description, clear_title_description;
        /// Sets the title image URL.
        title_image, clear_title_image;
    }

    /// Merges metadata changes.
    pub fn metadata(mut self, patch: MetadataPatch) -> Self {
        self.metadata = patch;
        self
    }

    /// Removes every metadata key (before merging any [`metadata`](Self::metadata) patch).
    pub fn clear_metadata(mut self) -> Self {
        self.clear_metadata = true;
        self
    }

    /// The details after this update, validated.
    fn apply_to(&self, current: &Details) -> Result<Details, Error> {
        if let Some(field) = self.immutable {
            return Err(Error::ImmutableField(field));
        }
        fn pick(change: &Option<Option<String>>, old: &Option<String>) -> Option<String> {
            match change {
                Some(v) => v.clone(),
                None => old.clone(),
            }
        }
        let b = &current.branding;
        let next = Details {
            description: pick(&self.description, &current.description),
            metadata: if self.clear_metadata {
                crate::metadata::Metadata::new().merged(&self.metadata)?
            } else {
                current.metadata.merged(&self.metadata)?
            },
            success_url: pick(&self.success_url, &current.success_url),
            success_message: pick(&self.success_message, &current.success_message),
            cancel_url: pick(&self.cancel_url, &current.cancel_url),
            branding: Branding {
                title: pick(&self.title, &b.title),
                title_description: pick(&self.title_description, &b.title_description),
                title_image: pick(&self.title_image, &b.title_image),
            },
        };
        if next.success_url.is_some() && next.success_message.is_some() {
            return Err(Error::SuccessUrlAndMessage);
        }
        check_url("success_url", next.success_url.as_deref())?;
        check_url("cancel_url", next.cancel_url.as_deref())?;
        check_text(
            "description",
            next.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
            true,
        )?;
        check_text(
            "success_message",
            next.success_message.as_deref(),
            MAX_DESCRIPTION_CHARS,
            true,
        )?;
        check_text(
            "title",
            next.branding.title.as_deref(),
            MAX_TITLE_CHARS,
            false,
        )?;
        next.branding.validate()?;
        Ok(next)
    }
}

impl CheckoutSession {
    /// Applies an update. Allowed in every status. An update that changes nothing returns
    /// no events and leaves the version as it is.
    pub fn update(
        &mut self,
        update: &SessionUpdate,
        now: OffsetDateTime,
    ) -> Result<SessionChange, Error> {
        let now = crate::json::millis::truncate(now);
        self.check_clock(now)?;
        let next = update.apply_to(&self.details)?;
        if next == self.details {
            return Ok(SessionChange::default());
        }
        let mut change = self.expire_due(now);
        self.details = next;
        change.push(SessionEvent::new(EventType::CheckoutSessionUpdated, now));
        self.touch(now);
        Ok(change)
    }
}

/// Reads Speed's update JSON: missing = unchanged, `null` = clear.
impl<'de> Deserialize<'de> for SessionUpdate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = std::collections::BTreeMap::<String, Box<RawValue>>::deserialize(d)?;
        let mut out = Self::new();
        for (name, raw) in fields {
            let text = || -> Result<Option<String>, D::Error> {
                serde_json::from_str::<Option<String>>(raw.get()).map_err(D::Error::custom)
            };
            match name.as_str() {
                "description" => out.description = Some(text()?),
                "success_url" => out.success_url = Some(text()?),
                "success_message" => out.success_message = Some(text()?),
                "cancel_url" => out.cancel_url = Some(text()?),
                "title" => out.title = Some(text()?),
                "title_description" => out.title_description = Some(text()?),
                "title_image" => out.title_image = Some(text()?),
                "metadata" if raw.get().trim() == "null" => out.clear_metadata = true,
                "metadata" => {
                    out.metadata = serde_json::from_str::<MetadataPatch>(raw.get())
                        .map_err(D::Error::custom)?
                }
                "amount" => out.immutable = Some("amount"),
                "currency" => out.immutable = Some("currency"),
                "target_currency" => out.immutable = Some("target_currency"),
                "ttl" => out.immutable = Some("ttl"),
                "payment_methods" => out.immutable = Some("payment_methods"),
                "amount_paid_tolerance" => out.immutable = Some("amount_paid_tolerance"),
                "confirmations" => out.immutable = Some("confirmations"),
                "livemode" => out.immutable = Some("livemode"),
                "statement_descriptor" => out.immutable = Some("statement_descriptor"),
                "source" => out.immutable = Some("source"),
                "source_id" => out.immutable = Some("source_id"),
                // Unknown fields from newer API versions are tolerated.
                _ => {}
            }
        }
        Ok(out)
    }
}
