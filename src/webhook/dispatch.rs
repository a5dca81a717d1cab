//! The dispatcher: reads the outbox, schedules deliveries per endpoint and hands them to
//! the application's sender.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use time::OffsetDateTime;

use super::breaker::{BreakerSchedule, EndpointHealth, Verdict};
use super::delivery::{Attempt, Delivery, DeliveryStatus, DeliveryStore, Endpoint, RetrySchedule};
use super::{SignError, SignatureHeader};
use crate::clock::{Clock, IdSource, RandomIds};
use crate::event::EventType;
use crate::id::{EndpointId, EventId, SessionId};
use crate::metrics::{Counter, Metrics};
use crate::outbox::{Event, raw_or_null};
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
    /// Events pruned after the pass (with [`Dispatcher::prune_after_delivery`]).
    pub pruned: usize,
    /// Endpoints this pass disabled (a `410 Gone`, or failing for the breaker's
    /// `disable_after`), each with a `webhook_endpoint.disabled` event in the outbox.
    pub disabled: Vec<EndpointId>,
}

/// Delivers the outbox of a store to its endpoints.
///
/// Each endpoint is a lane of its own: a pass sends to up to [`DEFAULT_LANES`] endpoints
/// at once (one thread each), at most [`DEFAULT_PER_ENDPOINT`] attempts per endpoint, in
/// order within each session. So a dead or slow endpoint holds up only itself, and its
/// circuit breaker (see [`BreakerSchedule`]) stops it being tried for a while.
#[derive(Debug)]
pub struct Dispatcher<S, T, C> {
    store: S,
    sender: T,
    clock: C,
    schedule: RetrySchedule,
    breaker: BreakerSchedule,
    batch: usize,
    lanes: usize,
    per_endpoint: usize,
    /// Events to prune after each pass, at most (`None`: keep the outbox whole).
    prune: Option<usize>,
    ids: Ids,
    metrics: Arc<Metrics>,
}

/// The source of the ids of the dispatcher's own events.
struct Ids(Arc<dyn IdSource>);

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdSource")
    }
}

/// Endpoints sent to at once by default.
pub const DEFAULT_LANES: usize = 8;
/// Attempts per endpoint and pass by default.
pub const DEFAULT_PER_ENDPOINT: usize = 100;

impl<S: Store + DeliveryStore, T: WebhookSender, C: Clock> Dispatcher<S, T, C> {
    /// A dispatcher with the default retry schedule.
    pub fn new(store: S, sender: T, clock: C) -> Self {
        Self {
            store,
            sender,
            clock,
            schedule: RetrySchedule::default(),
            breaker: BreakerSchedule::default(),
            batch: 100,
            lanes: DEFAULT_LANES,
            per_endpoint: DEFAULT_PER_ENDPOINT,
            ids: Ids(Arc::new(RandomIds::new())),
            metrics: Arc::new(Metrics::new()),
            prune: None,
        }
    }

    /// After each pass, prunes up to `limit` events that every endpoint is done with
    /// ([`prune_delivered`](Self::prune_delivered)), so the outbox keeps only what is
    /// still to deliver. Off by default: the outbox is the event history the API lists.
    pub fn prune_after_delivery(mut self, limit: usize) -> Self {
        self.prune = Some(limit);
        self
    }

    /// Counts into `metrics` (for example the service's,
    /// [`Checkout::metrics`](crate::Checkout::metrics)) instead of a registry of its own:
    /// deliveries by outcome, their lag, endpoints disabled.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// What the dispatcher has counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Mints the ids of the dispatcher's own events (an endpoint disabled) from `ids`
    /// instead of [`RandomIds`].
    pub fn with_ids(mut self, ids: impl IdSource + 'static) -> Self {
        self.ids = Ids(Arc::new(ids));
        self
    }

    /// Uses another retry schedule.
    pub fn with_schedule(mut self, schedule: RetrySchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Uses another circuit breaker schedule.
    pub fn with_breaker(mut self, breaker: BreakerSchedule) -> Self {
        self.breaker = breaker;
        self
    }

    /// Sends to at most `lanes` endpoints at once (at least 1), and makes at most
    /// `per_endpoint` attempts per endpoint in one pass (at least 1).
    pub fn with_lanes(mut self, lanes: usize, per_endpoint: usize) -> Self {
        self.lanes = lanes.max(1);
        self.per_endpoint = per_endpoint.max(1);
        self
    }

    /// Registers (or replaces) an endpoint. It receives the events created from its
    /// `created` time on.
    pub fn add_endpoint(&self, endpoint: &Endpoint) -> Result<(), DispatchError> {
        Ok(self.store.save_endpoint(endpoint)?)
    }

    /// Schedules new events and makes the attempts that are due, each endpoint in its own
    /// lane; call it in a loop (every second or so). Safe to run again after a crash:
    /// deliveries are recorded before they are attempted, and a delivery attempted twice is
    /// what at-least-once allows.
    pub fn run_once(&self) -> Result<DispatchReport, DispatchError> {
        let now = self.clock.now();
        let mut report = DispatchReport::default();
        let endpoints = self.store.endpoints()?;
        for ep in endpoints.iter().filter(|e| e.is_active()) {
            report.scheduled += self.schedule_new(ep, now)?;
        }
        // The pending deliveries of each active endpoint whose circuit is closed (or due
        // for its probe), in the store's order.
        let mut lanes: Vec<(&Endpoint, Vec<Delivery>)> = Vec::new();
        let mut lane_of: HashMap<EndpointId, Option<usize>> = HashMap::new();
        let pending = self.store.pending(usize::MAX)?;
        // What pruning after the pass must keep: read before the pass, so it only errs on
        // the side of keeping (deliveries the pass settles are pruned next time).
        let first_pending = pending.iter().map(|d| d.seq).min();
        for d in pending {
            let lane = *lane_of.entry(d.endpoint).or_insert_with(|| {
                let ep = endpoints
                    .iter()
                    .find(|e| e.id == d.endpoint && e.is_active() && !e.health.is_open(now))?;
                lanes.push((ep, Vec::new()));
                Some(lanes.len() - 1)
            });
            if let Some(i) = lane {
                lanes[i].1.push(d);
            }
        }
        let threads = self.lanes.min(lanes.len());
        let outcomes: Vec<Result<DispatchReport, DispatchError>> = if threads <= 1 {
            lanes
                .iter()
                .map(|(ep, ds)| self.run_lane(ep, ds, now))
                .collect()
        } else {
            let next = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut out = Vec::new();
                            while let Some((ep, ds)) =
                                lanes.get(next.fetch_add(1, Ordering::Relaxed))
                            {
                                out.push(self.run_lane(ep, ds, now));
                            }
                            out
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        for outcome in outcomes {
            let lane = outcome?;
            report.delivered += lane.delivered;
            report.retried += lane.retried;
            report.failed += lane.failed;
            report.disabled.extend(lane.disabled);
        }
        if let Some(limit) = self.prune {
            let through = self.done_through(&endpoints, first_pending)?;
            report.pruned = self.store.prune_events(through, limit)?;
        }
        Ok(report)
    }

    /// The last outbox sequence number every reader the dispatcher knows is done with:
    /// each active endpoint has scheduled everything up to it, and no pending delivery
    /// needs an event at or below it. Events up to there can be pruned
    /// ([`Store::prune_events`]) without losing a webhook (a manual
    /// [`redeliver`](Self::redeliver) of one of them then fails: copy the outbox elsewhere
    /// first to archive it).
    pub fn delivered_through(&self) -> Result<u64, DispatchError> {
        let first_pending = self.store.pending(usize::MAX)?.iter().map(|d| d.seq).min();
        self.done_through(&self.store.endpoints()?, first_pending)
    }

    /// [`delivered_through`](Self::delivered_through) from the endpoints and the smallest
    /// pending sequence number already read.
    fn done_through(
        &self,
        endpoints: &[Endpoint],
        first_pending: Option<u64>,
    ) -> Result<u64, DispatchError> {
        let mut through = self
            .store
            .events_before(None, 1)?
            .first()
            .map_or(0, |e| e.seq);
        for ep in endpoints.iter().filter(|e| e.is_active()) {
            through = through.min(self.store.cursor(ep.id)?);
        }
        if let Some(seq) = first_pending {
            through = through.min(seq.saturating_sub(1));
        }
        Ok(through)
    }

    /// Prunes up to `limit` events every endpoint is done with (see
    /// [`delivered_through`](Self::delivered_through)); returns how many went.
    pub fn prune_delivered(&self, limit: usize) -> Result<usize, DispatchError> {
        let through = self.delivered_through()?;
        Ok(self.store.prune_events(through, limit)?)
    }

    /// One endpoint's share of a pass: its due deliveries in order (within a session,
    /// only the oldest pending one may go), at most `per_endpoint` attempts, until its
    /// circuit opens.
    fn run_lane(
        &self,
        ep: &Endpoint,
        deliveries: &[Delivery],
        now: OffsetDateTime,
    ) -> Result<DispatchReport, DispatchError> {
        let mut report = DispatchReport::default();
        let mut blocked: HashSet<Option<SessionId>> = HashSet::new();
        let mut health = ep.health;
        let mut verdict = Verdict::Continue;
        let mut attempts = 0;
        for d in deliveries {
            if attempts >= self.per_endpoint || verdict != Verdict::Continue {
                break;
            }
            if blocked.contains(&d.session_id) {
                continue;
            }
            if d.next_attempt_at.is_some_and(|t| t > now) {
                // Sessionless events (links) do not hold each other up.
                if d.session_id.is_some() {
                    blocked.insert(d.session_id);
                }
                continue;
            }
            let mut d = d.clone();
            let span = tracing::debug_span!(
                "delivery",
                endpoint = %ep.id,
                seq = d.seq,
                attempt = d.attempts.len() + 1
            );
            let status = span.in_scope(|| self.attempt(ep, &mut d, now))?;
            attempts += 1;
            match status {
                DeliveryStatus::Delivered => report.delivered += 1,
                DeliveryStatus::Failed => report.failed += 1,
                DeliveryStatus::Pending => {
                    report.retried += 1;
                    if d.session_id.is_some() {
                        blocked.insert(d.session_id);
                    }
                }
            }
            self.store.save_delivery(&d)?;
            if d.attempts.last().and_then(|a| a.status) == Some(410) {
                self.disable(ep.id, health, now, &mut report)?;
                return Ok(report);
            }
            verdict = health.record(status == DeliveryStatus::Delivered, now, &self.breaker);
        }
        if verdict == Verdict::Disable {
            self.disable(ep.id, health, now, &mut report)?;
        } else if health != ep.health {
            self.update_endpoint(ep.id, |e| e.health = health)?;
        }
        Ok(report)
    }

    /// Disables an endpoint (gone, or failing for too long), with its
    /// [`WebhookEndpointDisabled`](EventType::WebhookEndpointDisabled) event in the same
    /// write, and gives up its pending deliveries. An endpoint disabled or deleted
    /// meanwhile (through the API) is left as it is, without an event.
    fn disable(
        &self,
        id: EndpointId,
        health: EndpointHealth,
        now: OffsetDateTime,
        report: &mut DispatchReport,
    ) -> Result<(), DispatchError> {
        let stored = self.store.endpoints()?.into_iter().find(|e| e.id == id);
        if let Some(mut e) = stored.filter(Endpoint::is_active) {
            e.health = health;
            e.disabled_at = Some(now);
            let event = Event {
                id: EventId::from_uuid(self.ids.0.next_uuid(now)),
                event_type: EventType::WebhookEndpointDisabled,
                session_id: None,
                livemode: e.livemode.unwrap_or(false),
                created: now,
                object: raw_or_null(e.to_api_json()),
            };
            self.store.disable_endpoint(&e, &event)?;
            self.metrics.add(Counter::endpoints_disabled, 1);
            tracing::warn!(endpoint = %id, url = %e.url, "webhook endpoint disabled");
            report.disabled.push(id);
        }
        report.failed += self.fail_pending(id)?;
        Ok(())
    }

    /// Changes the stored endpoint `id` as `change` says, read again first so that a
    /// change made meanwhile (through the API) is kept.
    fn update_endpoint(
        &self,
        id: EndpointId,
        change: impl FnOnce(&mut Endpoint),
    ) -> Result<(), DispatchError> {
        if let Some(mut e) = self.store.endpoints()?.into_iter().find(|e| e.id == id) {
            change(&mut e);
            self.store.save_endpoint(&e)?;
        }
        Ok(())
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
        match d.status {
            DeliveryStatus::Delivered => {
                let lag = (now - stored.event.created).whole_milliseconds().max(0);
                self.metrics
                    .delivered(u64::try_from(lag).unwrap_or(u64::MAX));
            }
            DeliveryStatus::Pending => self.metrics.add(Counter::deliveries_retried, 1),
            DeliveryStatus::Failed => self.metrics.add(Counter::deliveries_failed, 1),
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
        self.metrics.add(
            Counter::deliveries_failed,
            u64::try_from(failed).unwrap_or(u64::MAX),
        );
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
