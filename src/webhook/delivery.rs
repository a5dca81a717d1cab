//! Webhook delivery: endpoints, the delivery log and its retry schedule.
//!
//! Delivery is at least once: an event is handed to the sender until an endpoint answers
//! 2xx, on the schedule of [`RetrySchedule`] (about three days), with the same
//! `webhook-id` (the event id) on every attempt so receivers can deduplicate. Within one
//! session, events reach an endpoint in order: a later event waits while an earlier one is
//! still being retried. An endpoint answering `410 Gone` is disabled.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::WebhookSecret;
use crate::error::Error;
use crate::event::EventType;
use crate::id::{EndpointId, EventId, SessionId};
use crate::outbox::Event;
use crate::store::{Corruption, StoreError};

/// Where events are sent.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The endpoint's id.
    pub id: EndpointId,
    /// The URL events are posted to (absolute http or https).
    pub url: String,
    /// The signing secret.
    pub secret: WebhookSecret,
    /// The event types sent; empty means all.
    pub enabled_events: Vec<EventType>,
    /// When it was disabled (by hand, or by a `410 Gone`), if it was.
    pub disabled_at: Option<OffsetDateTime>,
    /// When it was created.
    pub created: OffsetDateTime,
    /// Only events of this mode (`Some(false)`: test, `Some(true)`: live); `None`, for
    /// endpoints added in code, receives both. Endpoints made through the HTTP API have
    /// the mode of the key that made them.
    pub livemode: Option<bool>,
    /// A note for people.
    pub description: Option<String>,
    /// How requests are signed.
    pub signatures: SignatureScheme,
    /// The secret replaced by the last rotation, and until when it still signs (under
    /// [`SignatureScheme::Rotating`]).
    pub previous_secret: Option<(WebhookSecret, OffsetDateTime)>,
    /// When it was deleted: it receives nothing and the API no longer shows it; its
    /// delivery log is kept.
    pub deleted_at: Option<OffsetDateTime>,
    /// How it has been answering: its circuit breaker (see `webhook::breaker`).
    pub health: super::EndpointHealth,
}

/// How an endpoint's requests are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureScheme {
    /// One `v1,` signature with the current secret: what Speed's clients verify (they read
    /// exactly one signature).
    #[default]
    Single,
    /// Standard Webhooks: after a rotation, a signature with the current secret and one
    /// with the previous secret until it retires, space-separated, so a receiver can swap
    /// secrets without missing a delivery.
    Rotating,
}

impl Endpoint {
    /// The secrets requests are signed with at `now`: the current one, then the previous
    /// one while it has not retired (under [`SignatureScheme::Rotating`] only).
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&WebhookSecret> {
        let rotating = self.signatures == SignatureScheme::Rotating;
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|(_, until)| rotating && *until > now)
            .map(|(secret, _)| secret);
        std::iter::once(&self.secret).chain(previous).collect()
    }

    /// Whether it receives an event of this mode.
    pub fn accepts_mode(&self, livemode: bool) -> bool {
        self.livemode.is_none_or(|mode| mode == livemode)
    }
}

impl Endpoint {
    /// An endpoint receiving every event type.
    pub fn new(
        url: impl Into<String>,
        secret: WebhookSecret,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let url = url.into();
        crate::session::check_url("url", Some(&url))?;
        Ok(Self {
            id: EndpointId::generate(),
            url,
            secret,
            enabled_events: Vec::new(),
            disabled_at: None,
            created: crate::json::millis::truncate(now),
            livemode: None,
            description: None,
            signatures: SignatureScheme::Single,
            previous_secret: None,
            deleted_at: None,
            health: super::EndpointHealth::default(),
        })
    }

    /// Restricts the endpoint to these event types.
    pub fn only(mut self, events: impl IntoIterator<Item = EventType>) -> Self {
        self.enabled_events = events.into_iter().collect();
        self
    }

    /// Whether the endpoint wants events of this type.
    pub fn wants(&self, event_type: &EventType) -> bool {
        self.enabled_events.is_empty() || self.enabled_events.contains(event_type)
    }

    /// Whether it is active (neither disabled nor deleted).
    pub fn is_active(&self) -> bool {
        self.disabled_at.is_none() && self.deleted_at.is_none()
    }

    /// The endpoint as the HTTP API shows it (Speed's `webhook.endpoint` object), without
    /// its secret: the object of a [`WebhookEndpointDisabled`](EventType::WebhookEndpointDisabled)
    /// event.
    pub fn to_api_json(&self) -> String {
        self.api_json(false)
    }

    /// [`to_api_json`](Self::to_api_json), with the secret when `with_secret` (the API's
    /// answer to a create or a rotation).
    pub(crate) fn api_json(&self, with_secret: bool) -> String {
        serde_json::to_string(&ApiWire {
            id: self.id,
            object: "webhook.endpoint",
            api_version: "2022-10-15",
            enabled_events: &self.enabled_events,
            livemode: self.livemode.unwrap_or(false),
            status: if self.is_active() {
                "active"
            } else {
                "deactivated"
            },
            url: &self.url,
            secret: with_secret.then(|| self.secret.to_wsec_string()),
            description: self.description.as_deref(),
            signatures: self.signatures,
            created: self.created,
        })
        .unwrap_or_default()
    }

    /// The endpoint as JSON, secret included (for stores only: never log it).
    pub fn to_stored_json(&self) -> String {
        serde_json::to_string(&EndpointWire::from(self)).unwrap_or_default()
    }

    /// Reads [`to_stored_json`](Self::to_stored_json).
    pub fn from_stored_json(text: &str) -> Result<Self, StoreError> {
        // The parser's messages never quote the secret-bearing text.
        let row = "endpoint row";
        let w: EndpointWire =
            serde_json::from_str(text).map_err(|e| Corruption::undecodable(row, e))?;
        Ok(Self {
            id: w.id,
            url: w.url,
            secret: WebhookSecret::parse(&w.secret).map_err(|e| Corruption::undecodable(row, e))?,
            enabled_events: w.enabled_events,
            disabled_at: w.disabled_at,
            created: w.created,
            livemode: w.livemode,
            description: w.description,
            signatures: w.signatures,
            previous_secret: match (w.previous_secret, w.previous_until) {
                (Some(text), Some(until)) => Some((
                    WebhookSecret::parse(&text).map_err(|e| Corruption::undecodable(row, e))?,
                    until,
                )),
                _ => None,
            },
            deleted_at: w.deleted_at,
            health: super::EndpointHealth {
                consecutive_failures: w.consecutive_failures,
                failing_since: w.failing_since,
                open_until: w.open_until,
            },
        })
    }

    /// Reads an endpoint row (`id`, [`to_stored_json`](Self::to_stored_json)) back,
    /// checking that it holds the endpoint its key names.
    pub fn from_row(id: &str, body: &str) -> Result<Self, StoreError> {
        let endpoint = Self::from_stored_json(body)?;
        let found = endpoint.id.to_string();
        if found != id {
            return Err(Corruption::mismatch(format!("endpoint {id}"), "id", id, found).into());
        }
        Ok(endpoint)
    }
}

/// The API's view of an endpoint.
#[derive(Serialize)]
struct ApiWire<'a> {
    id: EndpointId,
    object: &'static str,
    api_version: &'static str,
    enabled_events: &'a [EventType],
    livemode: bool,
    status: &'static str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    description: Option<&'a str>,
    signatures: SignatureScheme,
    #[serde(with = "crate::json::millis")]
    created: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
struct EndpointWire {
    id: EndpointId,
    url: String,
    secret: String,
    enabled_events: Vec<EventType>,
    #[serde(with = "crate::json::millis_option")]
    disabled_at: Option<OffsetDateTime>,
    #[serde(with = "crate::json::millis")]
    created: OffsetDateTime,
    // Fields added after the first stored endpoints: absent in old rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    livemode: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default)]
    signatures: SignatureScheme,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_secret: Option<String>,
    #[serde(
        default,
        with = "crate::json::millis_option",
        skip_serializing_if = "Option::is_none"
    )]
    previous_until: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "crate::json::millis_option",
        skip_serializing_if = "Option::is_none"
    )]
    deleted_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "is_zero")]
    consecutive_failures: u32,
    #[serde(
        default,
        with = "crate::json::millis_option",
        skip_serializing_if = "Option::is_none"
    )]
    failing_since: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "crate::json::millis_option",
        skip_serializing_if = "Option::is_none"
    )]
    open_until: Option<OffsetDateTime>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<&Endpoint> for EndpointWire {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url.clone(),
            secret: e.secret.to_whsec_string(),
            enabled_events: e.enabled_events.clone(),
            disabled_at: e.disabled_at,
            created: e.created,
            livemode: e.livemode,
            description: e.description.clone(),
            signatures: e.signatures,
            previous_secret: e.previous_secret.as_ref().map(|(s, _)| s.to_whsec_string()),
            previous_until: e.previous_secret.as_ref().map(|(_, until)| *until),
            deleted_at: e.deleted_at,
            consecutive_failures: e.health.consecutive_failures,
            failing_since: e.health.failing_since,
            open_until: e.health.open_until,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Not delivered yet; will be attempted at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up: the schedule ran out or the endpoint is gone. Can be redelivered by hand.
    Failed,
}

/// One attempt in a delivery's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it was made.
    #[serde(with = "crate::json::millis")]
    pub at: OffsetDateTime,
    /// The HTTP status, if the endpoint answered.
    pub status: Option<u16>,
    /// The transport error, if it did not.
    pub error: Option<String>,
}

/// One event's delivery to one endpoint, with its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The event's outbox sequence number.
    pub seq: u64,
    /// The event (its id is the `webhook-id` of every attempt).
    pub event_id: EventId,
    /// The event's session, which orders deliveries.
    pub session_id: Option<SessionId>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// When to try next (pending only).
    #[serde(with = "crate::json::millis_option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
}

impl Delivery {
    /// Reads a delivery row (keyed by endpoint and sequence number, its JSON as body)
    /// back, checking that it holds the delivery its key names.
    pub fn from_row(endpoint: &str, seq: i64, body: &str) -> Result<Self, StoreError> {
        let row = || format!("delivery {seq} of {endpoint}");
        let d: Self = serde_json::from_str(body).map_err(|e| Corruption::undecodable(row(), e))?;
        let found = d.endpoint.to_string();
        if found != endpoint {
            return Err(Corruption::mismatch(row(), "endpoint", endpoint, found).into());
        }
        if u64::try_from(seq).ok() != Some(d.seq) {
            return Err(
                Corruption::mismatch(row(), "seq", seq.to_string(), d.seq.to_string()).into(),
            );
        }
        Ok(d)
    }
}

/// Persistence of endpoints and deliveries, so delivery survives restarts.
pub trait DeliveryStore: Send + Sync {
    /// Inserts or replaces an endpoint.
    fn save_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;
    /// Every endpoint.
    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    /// The last outbox sequence number scheduled for an endpoint (0 if none).
    fn cursor(&self, endpoint: EndpointId) -> Result<u64, StoreError>;
    /// Atomically inserts `deliveries` (keeping any that already exist) and moves the
    /// endpoint's cursor forward to `cursor` (never backward).
    fn schedule(
        &self,
        endpoint: EndpointId,
        cursor: u64,
        deliveries: &[Delivery],
    ) -> Result<(), StoreError>;
    /// Pending deliveries ordered by (endpoint, seq), at most `limit`.
    fn pending(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;
    /// Replaces a delivery.
    fn save_delivery(&self, delivery: &Delivery) -> Result<(), StoreError>;
    /// One delivery.
    fn delivery(&self, endpoint: EndpointId, seq: u64) -> Result<Option<Delivery>, StoreError>;
    /// The delivery log of an endpoint, by seq.
    fn deliveries(&self, endpoint: EndpointId) -> Result<Vec<Delivery>, StoreError>;
    /// Atomically saves `endpoint` (as [`save_endpoint`](Self::save_endpoint) does; the
    /// dispatcher passes it with `disabled_at` set) and appends `event`, its
    /// [`WebhookEndpointDisabled`](EventType::WebhookEndpointDisabled) event (no session),
    /// to the outbox: either both are written or neither.
    fn disable_endpoint(&self, endpoint: &Endpoint, event: &Event) -> Result<(), StoreError>;
}

/// When to retry: the delay after each failed attempt, plus jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter_percent: u8,
}

impl Default for RetrySchedule {
    /// Immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h
    /// (ten attempts over about 3.2 days), each delay ±10 %.
    fn default() -> Self {
        let d = |s: i64| Duration::seconds(s);
        Self {
            delays: vec![
                d(5),
                d(300),
                d(1_800),
                d(7_200),
                d(18_000),
                d(36_000),
                d(50_400),
                d(72_000),
                d(86_400),
            ],
            jitter_percent: 10,
        }
    }
}

impl RetrySchedule {
    /// A custom schedule: the delays after the first, second, … failed attempt.
    pub fn new(delays: Vec<Duration>, jitter_percent: u8) -> Self {
        Self {
            delays,
            jitter_percent: jitter_percent.min(50),
        }
    }

    /// Attempts in all (the first one plus one per delay).
    pub fn max_attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The total span of the schedule without jitter.
    pub fn span(&self) -> Duration {
        self.delays.iter().fold(Duration::ZERO, |a, d| a + *d)
    }

    /// The delay after `failed` failed attempts of `event`, jittered deterministically
    /// by the event id (so retries of many events spread out without a random source),
    /// or `None` when the schedule is exhausted.
    pub fn delay(&self, failed: usize, event: EventId) -> Option<Duration> {
        let base = *self.delays.get(failed.checked_sub(1)?)?;
        let spread = base * jitter_points(event, failed, self.jitter_percent) / 100;
        Some(base + spread)
    }
}

/// A whole percentage in [-p, +p], picked by FNV-1a over the event id and the attempt
/// number: deterministic, spread out, and free of floating point.
fn jitter_points(event: EventId, attempt: usize, percent: u8) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in event
        .as_uuid()
        .as_bytes()
        .iter()
        .chain(&attempt.to_le_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let span = i64::from(percent) * 2 + 1;
    let point =
        i64::try_from(h % u64::try_from(span).unwrap_or(1)).unwrap_or(0) - i64::from(percent);
    i32::try_from(point).unwrap_or(0)
}

forward_port!(DeliveryStore {
    fn save_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;
    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    fn cursor(&self, endpoint: EndpointId) -> Result<u64, StoreError>;
    fn schedule(&self, endpoint: EndpointId, cursor: u64, deliveries: &[Delivery]) -> Result<(), StoreError>;
    fn pending(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;
    fn save_delivery(&self, delivery: &Delivery) -> Result<(), StoreError>;
    fn delivery(&self, endpoint: EndpointId, seq: u64) -> Result<Option<Delivery>, StoreError>;
    fn deliveries(&self, endpoint: EndpointId) -> Result<Vec<Delivery>, StoreError>;
    fn disable_endpoint(&self, endpoint: &Endpoint, event: &Event) -> Result<(), StoreError>;
});
