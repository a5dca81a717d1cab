//! Checkout links (`clink_…`, one session per link) and payment links (`plink_…`, a new
//! session per open), as plain values like sessions: commands take `now` and return events.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;
use crate::event::{EventType, SessionEvent};
pub use crate::id::LinkId;
use crate::id::SessionId;
use crate::json::millis::truncate;
use crate::session::{SessionParams, SessionStatus};

/// A link's status: `active`, `paid` (checkout links whose session is paid) or
/// `deactivated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LinkStatus {
    /// Opens sessions.
    Active,
    /// Its one session is paid (checkout links only).
    Paid,
    /// Deactivated by hand.
    Deactivated,
}

/// What opening a link gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opening {
    /// A new session must be created with this id from the link's parameters.
    NewSession(SessionId),
    /// The checkout link's existing session.
    Existing(SessionId),
}

/// A checkout link or payment link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    id: LinkId,
    params: SessionParams,
    #[serde(default)]
    session: Option<SessionId>,
    #[serde(default)]
    sessions_opened: u64,
    #[serde(default, with = "crate::json::millis_option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(default, with = "crate::json::millis_option")]
    deactivated_at: Option<OffsetDateTime>,
    #[serde(with = "crate::json::millis")]
    created: OffsetDateTime,
    #[serde(with = "crate::json::millis")]
    modified: OffsetDateTime,
    version: u64,
}

impl Link {
    /// Creates a link whose sessions use `params`. The parameters are validated now, so
    /// opening the link cannot fail on them later. `expires_at`, if given, must be after
    /// `now`.
    #[must_use = "the link and its events must be committed"]
    pub fn create(
        id: LinkId,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(Self, Vec<SessionEvent>), Error> {
        let now = truncate(now);
        params.validate()?;
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::LinkExpired);
        }
        let link = Self {
            id,
            params,
            session: None,
            sessions_opened: 0,
            expires_at: expires_at.map(truncate),
            deactivated_at: None,
            created: now,
            modified: now,
            version: 0,
        };
        let kind = match id {
            LinkId::Checkout(_) => EventType::CheckoutLinkCreated,
            LinkId::Payment(_) => EventType::PaymentLinkCreated,
        };
        Ok((link, vec![SessionEvent::new(kind, now)]))
    }

    /// The id.
    pub fn id(&self) -> LinkId {
        self.id
    }

    /// The parameters of the sessions it opens.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// A checkout link's session, once opened.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// How many sessions the link has opened.
    pub fn sessions_opened(&self) -> u64 {
        self.sessions_opened
    }

    /// When the link stops opening sessions, if ever.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
    }

    /// When it was created.
    pub fn created(&self) -> OffsetDateTime {
        self.created
    }

    /// The version, for compare-and-swap.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether it was deactivated.
    pub fn is_deactivated(&self) -> bool {
        self.deactivated_at.is_some()
    }

    /// The status, given the status of a checkout link's session.
    pub fn status(&self, session: Option<SessionStatus>) -> LinkStatus {
        if self.deactivated_at.is_some() {
            return LinkStatus::Deactivated;
        }
        match (self.id, session) {
            (LinkId::Checkout(_), Some(SessionStatus::Paid)) => LinkStatus::Paid,
            _ => LinkStatus::Active,
        }
    }

    /// Opens the link at `now`. A checkout link returns its session once it has one; a
    /// payment link always asks for a new session (with the id given).
    #[must_use = "the opening says which session to create or return"]
    pub fn open(&mut self, new_session: SessionId, now: OffsetDateTime) -> Result<Opening, Error> {
        let now = truncate(now);
        if let Some(existing) = self.session {
            return Ok(Opening::Existing(existing));
        }
        if self.deactivated_at.is_some() {
            return Err(Error::InvalidTransition {
                action: "open",
                status: "deactivated",
            });
        }
        if self.expires_at.is_some_and(|e| now >= e) {
            return Err(Error::LinkExpired);
        }
        if matches!(self.id, LinkId::Checkout(_)) {
            self.session = Some(new_session);
        }
        self.sessions_opened += 1;
        self.modified = now.max(self.modified);
        self.version += 1;
        Ok(Opening::NewSession(new_session))
    }

    /// Deactivates the link. The caller deactivates its active sessions in the same
    /// commit (the service does).
    #[must_use = "the events must be committed with the link"]
    pub fn deactivate(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        if self.deactivated_at.is_some() {
            return Err(Error::InvalidTransition {
                action: "deactivate",
                status: "deactivated",
            });
        }
        self.deactivated_at = Some(now);
        self.modified = now.max(self.modified);
        self.version += 1;
        let kind = match self.id {
            LinkId::Checkout(_) => EventType::CheckoutLinkDeactivated,
            LinkId::Payment(_) => EventType::PaymentLinkDeactivated,
        };
        Ok(vec![SessionEvent::new(kind, now)])
    }

    /// The link as JSON (Speed's `checkout.link` / `payment.link` object) given the status
    /// of its session.
    pub fn to_json(&self, session: Option<SessionStatus>) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            id: LinkId,
            object: &'static str,
            status: LinkStatus,
            livemode: bool,
            #[serde(with = "crate::json::decimal_number")]
            amount: rust_decimal::Decimal,
            currency: crate::money::Currency,
            target_currency: crate::money::TargetCurrency,
            checkout_session: Option<SessionId>,
            sessions_opened: u64,
            #[serde(with = "crate::json::millis_option")]
            expires_at: Option<OffsetDateTime>,
            #[serde(with = "crate::json::millis")]
            created: OffsetDateTime,
            #[serde(with = "crate::json::millis")]
            modified: OffsetDateTime,
            params: &'a SessionParams,
        }
        let object = match self.id {
            LinkId::Checkout(_) => "checkout.link",
            LinkId::Payment(_) => "payment.link",
        };
        serde_json::to_string(&Wire {
            id: self.id,
            object,
            status: self.status(session),
            livemode: self.params.livemode,
            amount: self.params.amount,
            currency: self.params.currency,
            target_currency: self.params.target_currency,
            checkout_session: self.session,
            sessions_opened: self.sessions_opened,
            expires_at: self.expires_at,
            created: self.created,
            modified: self.modified,
            params: &self.params,
        })
        .unwrap_or_default()
    }
}
