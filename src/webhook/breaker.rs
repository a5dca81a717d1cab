//! The circuit breaker of each endpoint: an endpoint that keeps failing is left alone for
//! a while instead of costing every pass a timeout per delivery, and one that fails for
//! days is disabled.
//!
//! With the default [`BreakerSchedule`]: after **5 failed attempts in a row** (a timeout,
//! a refused connection, any non-2xx answer) the circuit opens for **1 minute**; when that
//! has passed, the next pass sends one delivery (the probe). A 2xx closes the circuit; a
//! failure opens it again for twice as long, up to **1 hour**. An endpoint whose attempts
//! have all failed for **5 days** (longer than the 3.2 days of the default retry schedule,
//! so every delivery first runs out its own retries) is disabled (`disabled_at`, reported in
//! [`DispatchReport::disabled`](super::DispatchReport::disabled)), its pending deliveries
//! given up (they stay in its log for a redelivery by hand). The state is kept with the
//! endpoint, so every dispatcher sharing the store sees it.

use time::{Duration, OffsetDateTime};

/// How an endpoint has been answering lately: the breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EndpointHealth {
    /// Failed attempts in a row (a 2xx resets it).
    pub consecutive_failures: u32,
    /// When the current run of failures began (`None` after a 2xx).
    pub failing_since: Option<OffsetDateTime>,
    /// While the circuit is open: no attempt before this time, then one probe.
    pub open_until: Option<OffsetDateTime>,
}

/// When the breaker opens, for how long, and when an endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerSchedule {
    /// Failed attempts in a row that open the circuit.
    pub trip_after: u32,
    /// How long it first stays open; each failed probe doubles it.
    pub first_open: Duration,
    /// The longest it stays open.
    pub max_open: Duration,
    /// How long an endpoint may fail without a single 2xx before it is disabled.
    pub disable_after: Duration,
}

impl Default for BreakerSchedule {
    /// 5 failures, 1 minute doubling up to 1 hour, disabled after 5 days.
    fn default() -> Self {
        Self {
            trip_after: 5,
            first_open: Duration::minutes(1),
            max_open: Duration::hours(1),
            disable_after: Duration::days(5),
        }
    }
}

impl BreakerSchedule {
    /// A schedule of its own (tests, or receivers known to be slow to recover). A
    /// `trip_after` of 0 is taken as 1.
    pub fn new(
        trip_after: u32,
        first_open: Duration,
        max_open: Duration,
        disable_after: Duration,
    ) -> Self {
        Self {
            trip_after: trip_after.max(1),
            first_open,
            max_open: max_open.max(first_open),
            disable_after,
        }
    }
}

/// What an attempt's outcome means for its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Go on with the endpoint's next delivery.
    Continue,
    /// The circuit is open: no more attempts for it in this pass.
    Open,
    /// It has failed for too long: disable it.
    Disable,
}

impl EndpointHealth {
    /// Whether the circuit is open at `now` (no attempt may be made).
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.open_until.is_some_and(|until| until > now)
    }

    /// Records an attempt at `now` that succeeded (`ok`) or failed.
    pub(super) fn record(
        &mut self,
        ok: bool,
        now: OffsetDateTime,
        schedule: &BreakerSchedule,
    ) -> Verdict {
        if ok {
            *self = Self::default();
            return Verdict::Continue;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(now);
        if now - since >= schedule.disable_after {
            return Verdict::Disable;
        }
        if self.consecutive_failures < schedule.trip_after {
            return Verdict::Continue;
        }
        // Open for first_open × 2^(probes failed since it first opened), capped.
        let doublings = (self.consecutive_failures - schedule.trip_after).min(20);
        let open_for = (schedule.first_open * (1u32 << doublings)).min(schedule.max_open);
        self.open_until = Some(now + open_for);
        Verdict::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_doubles_and_closes_on_success() {
        let s = BreakerSchedule::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut h = EndpointHealth::default();
        for _ in 0..4 {
            assert_eq!(h.record(false, t0, &s), Verdict::Continue);
        }
        assert!(!h.is_open(t0));
        assert_eq!(h.record(false, t0, &s), Verdict::Open);
        assert_eq!(h.open_until, Some(t0 + Duration::minutes(1)));
        assert!(h.is_open(t0 + Duration::seconds(59)));
        assert!(!h.is_open(t0 + Duration::minutes(1)));
        // A failed probe: twice as long, then capped at an hour.
        let t1 = t0 + Duration::minutes(1);
        assert_eq!(h.record(false, t1, &s), Verdict::Open);
        assert_eq!(h.open_until, Some(t1 + Duration::minutes(2)));
        for _ in 0..10 {
            h.record(false, t1, &s);
        }
        assert_eq!(h.open_until, Some(t1 + Duration::hours(1)));
        // A 2xx: all forgotten.
        assert_eq!(h.record(true, t1, &s), Verdict::Continue);
        assert_eq!(h, EndpointHealth::default());
    }

    #[test]
    fn five_days_of_failures_disable() {
        let s = BreakerSchedule::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut h = EndpointHealth::default();
        assert_eq!(h.record(false, t0, &s), Verdict::Continue);
        let almost = t0 + Duration::days(5) - Duration::seconds(1);
        assert_ne!(h.record(false, almost, &s), Verdict::Disable);
        assert_eq!(
            h.record(false, t0 + Duration::days(5), &s),
            Verdict::Disable
        );
    }
}
