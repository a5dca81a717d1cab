//! The dispatcher: reads the outbox, schedules deliveries per endpoint and hands them to
//! the application's sender.

use std::collections::HashSet;

use time::OffsetDateTime;

use super::delivery::{Attempt, Delivery, DeliveryStatus, DeliveryStore, Endpoint, RetrySchedule};
use super::{SignError, SignatureHeader};
use crate::clock::Clock;
use crate::id::{EndpointId, SessionId};
use crate::store::{Store, StoreError};

/// Why a dispatcher call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The store failed (see [`StoreError::is_retryable`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message could not be signed (the endpoint's secret is unusable).
    #[error(transparent)]
    Sign(#[from] SignError),
    /// No delivery with this sequence number was scheduled for the endpoint.
    #[error("no delivery {seq} for {endpoint}")]
    UnknownDelivery {
        /// The endpoint.
        endpoint: EndpointId,
        /// The event's sequence number.
        seq: u64,
    },
}

/// What the sender saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// The endpoint answered with this HTTP status.
    Status(u16),
    /// The request failed before an answer (connection refused, timeout, TLS…).
    Error(String),
}

/// Sends one webhook request. The crate picks no HTTP client: implement this over yours
/// (POST `body` to `url` with the headers, a timeout of 15–30 s, no redirects followed).
pub trait WebhookSender: Send + Sync {
    /// Posts `body` to `url` with `headers` and reports the outcome.
    fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> SendOutcome;
}

forward_port!(WebhookSender {
    fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> SendOutcome;
});

/// What one [`Dispatcher::run_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatchReport {
    /// Deliveries newly scheduled from the outbox.
    pub scheduled: usize,
    /// Deliveries that got a 2xx.
    pub delivered: usize,
    /// Attempts that failed and will be retried.
    pub retried: usize,
    /// Deliveries given up on.
    pub failed: usize,
    /// Endpoints disabled by `410 Gone`.
    pub disabled: Vec<EndpointId>,
}

/// Delivers the outbox of a store to its endpoints.
#[derive(Debug)]
pub struct Dispatcher<S, T, C> {
    store: S,
    sender: T,
    clock: C,
    schedule: RetrySchedule,
    batch: usize,
}

impl<S: Store + DeliveryStore, T: WebhookSender, C: Clock> Dispatcher<S, T, C> {
    /// A dispatcher with the default retry schedule.
    pub fn new(store: S, sender: T, clock: C) -> Self {
        Self {
            store,
            sender,
            clock,
            schedule: RetrySchedule::default(),
            batch: 100,
        }
    }

    /// Uses another retry schedule.
    pub fn with_schedule(mut self, schedule: RetrySchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Registers (or replaces) an endpoint. It receives the events created from its
    /// `created` time on.
    pub fn add_endpoint(&self, endpoint: &Endpoint) -> Result<(), DispatchError> {
        Ok(self.store.save_endpoint(endpoint)?)
    }

    /// Schedules new events and makes every attempt that is due; call it in a loop (every
    /// second or so). Safe to run again after a crash: deliveries are recorded before they
    /// are attempted, and a delivery attempted twice is what at-least-once allows.
    pub fn run_once(&self) -> Result<DispatchReport, DispatchError> {
        let now = self.clock.now();
        let mut report = DispatchReport::default();
        let endpoints = self.store.endpoints()?;
        for ep in endpoints.iter().filter(|e| e.is_active()) {
            report.scheduled += self.schedule_new(ep, now)?;
        }
        // Within one (endpoint, session), only the oldest pending delivery may go.
        let mut blocked: HashSet<(EndpointId, Option<SessionId>)> = HashSet::new();
        let mut disabled: HashSet<EndpointId> = HashSet::new();
        for mut d in self.store.pending(usize::MAX)? {
            let Some(ep) = endpoints.iter().find(|e| e.id == d.endpoint) else {
                continue;
            };
            let lane = (d.endpoint, d.session_id);
            if !ep.is_active() || disabled.contains(&ep.id) || blocked.contains(&lane) {
                continue;
            }
            if d.next_attempt_at.is_some_and(|t| t > now) {
                // Sessionless events (links) do not hold each other up.
                if d.session_id.is_some() {
                    blocked.insert(lane);
                }
                continue;
            }
            match self.attempt(ep, &mut d, now)? {
                DeliveryStatus::Delivered => report.delivered += 1,
                DeliveryStatus::Failed => report.failed += 1,
                DeliveryStatus::Pending => {
                    report.retried += 1;
                    if d.session_id.is_some() {
                        blocked.insert(lane);
                    }
                }
            }
            self.store.save_delivery(&d)?;
            if d.attempts.last().and_then(|a| a.status) == Some(410) {
                let mut gone = ep.clone();
                gone.disabled_at = Some(now);
                self.store.save_endpoint(&gone)?;
                disabled.insert(ep.id);
                report.disabled.push(ep.id);
                report.failed += self.fail_pending(ep.id)?;
            }
        }
        Ok(report)
    }

    fn schedule_new(&self, ep: &Endpoint, now: OffsetDateTime) -> Result<usize, DispatchError> {
        let mut scheduled = 0;
        loop {
            let cursor = self.store.cursor(ep.id)?;
            let events = self.store.events_after(Some(cursor), self.batch)?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(scheduled);
            };
            let deliveries: Vec<Delivery> = events
                .iter()
                .filter(|e| {
                    e.event.created >= ep.created
                        && ep.wants(&e.event.event_type)
                        && ep.accepts_mode(e.event.livemode)
                })
                .map(|e| Delivery {
                    endpoint: ep.id,
                    seq: e.seq,
                    event_id: e.event.id,
                    session_id: e.event.session_id,
                    status: DeliveryStatus::Pending,
                    next_attempt_at: Some(now),
                    attempts: Vec::new(),
                })
                .collect();
            scheduled += deliveries.len();
            self.store.schedule(ep.id, last, &deliveries)?;
        }
    }

    /// Makes one attempt and updates `d`; returns its new status.
    fn attempt(
        &self,
        ep: &Endpoint,
        d: &mut Delivery,
        now: OffsetDateTime,
    ) -> Result<DeliveryStatus, DispatchError> {
        let stored = self
            .store
            .events_after(Some(d.seq.saturating_sub(1)), 1)?
            .into_iter()
            .find(|e| e.seq == d.seq)
            .ok_or_else(|| {
                StoreError::from(crate::store::Corruption::undecodable(
                    format!("event {}", d.seq),
                    "missing from the outbox",
                ))
            })?;
        let body = stored.event.to_json();
        let id = stored.event.id.to_string();
        let mut secrets = ep.signing_secrets(now).into_iter();
        let mut header = SignatureHeader::new(
            secrets.next().unwrap_or(&ep.secret),
            &id,
            now.unix_timestamp(),
            body.as_bytes(),
        )?;
        for older in secrets {
            header = header.signed_with(older);
        }
        let headers = header.into_headers().pairs();
        let outcome = self.sender.send(&ep.url, &headers, &body);
        let (status, error) = match &outcome {
            SendOutcome::Status(s) => (Some(*s), None),
            SendOutcome::Error(e) => (None, Some(e.chars().take(500).collect())),
        };
        d.attempts.push(Attempt {
            at: now,
            status,
            error,
        });
        d.status = match status {
            Some(200..=299) => DeliveryStatus::Delivered,
            Some(410) => DeliveryStatus::Failed,
            _ => match self.schedule.delay(d.attempts.len(), d.event_id) {
                Some(delay) => {
                    d.next_attempt_at = Some(now + delay);
                    DeliveryStatus::Pending
                }
                None => DeliveryStatus::Failed,
            },
        };
        if d.status != DeliveryStatus::Pending {
            d.next_attempt_at = None;
        }
        Ok(d.status)
    }

    /// Gives up the pending deliveries of a disabled endpoint (they stay in its log and can
    /// be redelivered by hand once it is back), so they are not read on every pass.
    fn fail_pending(&self, endpoint: EndpointId) -> Result<usize, DispatchError> {
        let mut failed = 0;
        for mut d in self.store.deliveries(endpoint)? {
            if d.status == DeliveryStatus::Pending {
                d.status = DeliveryStatus::Failed;
                d.next_attempt_at = None;
                self.store.save_delivery(&d)?;
                failed += 1;
            }
        }
        Ok(failed)
    }

    /// Queues a delivery again for an immediate attempt (manual redelivery), whatever its
    /// status; its log is kept.
    pub fn redeliver(&self, endpoint: EndpointId, seq: u64) -> Result<(), DispatchError> {
        let mut d = self
            .store
            .delivery(endpoint, seq)?
            .ok_or(DispatchError::UnknownDelivery { endpoint, seq })?;
        d.status = DeliveryStatus::Pending;
        d.next_attempt_at = Some(self.clock.now());
        self.store.save_delivery(&d)?;
        Ok(())
    }

    /// The delivery log of an endpoint.
    pub fn log(&self, endpoint: EndpointId) -> Result<Vec<Delivery>, DispatchError> {
        Ok(self.store.deliveries(endpoint)?)
    }
}
