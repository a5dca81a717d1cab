//! Counters a metrics backend can read: commits, conflicts, retries, quotes, deliveries.
//!
//! The service ([`Checkout::metrics`](crate::Checkout::metrics)) and the webhook
//! dispatcher count into a [`Metrics`]; share one between them (`with_metrics`) to read
//! everything in one place. The counters only grow (they are `_total` counters in
//! Prometheus' terms) except [`MetricsSnapshot::delivery_lag_ms_max`], the largest lag
//! seen. Reading is a [`snapshot`](Metrics::snapshot): plain numbers, named for an
//! exporter by [`MetricsSnapshot::iter`]. The crate picks no metrics library; a few lines
//! turn the snapshot into whatever yours expects.
//!
//! ```
//! use std::sync::Arc;
//! use bitcoin_checkout::metrics::Metrics;
//!
//! let metrics = Arc::new(Metrics::new());
//! // Checkout::new(..).with_metrics(Arc::clone(&metrics)), Dispatcher::new(..).with_metrics(..)
//! for (name, value) in metrics.snapshot().iter() {
//!     println!("{name} {value}");
//! }
//! assert_eq!(metrics.snapshot().commits, 0);
//! ```
//!
//! Traces: every service operation runs in an `info` span named `checkout` (fields
//! `operation` and, once known, `session_id`), each of its attempts in a `debug` span
//! `attempt` (field `n`, from 0), and every store call it makes in a `debug` span `store`
//! (field `call`, and `session_id` where the call names one); the dispatcher's attempts
//! run in a `debug` span `delivery` (`endpoint`, `seq`, `attempt`). They are `tracing`
//! spans: without a subscriber they cost a check of a static flag.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $field:ident => $name:literal,)*) => {
        /// The live counters (see the [module docs](self)). `Send + Sync`; share it in an
        /// `Arc`.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($field: AtomicU64,)*
            delivery_lag_ms_max: AtomicU64,
        }

        /// The counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct MetricsSnapshot {
            $($(#[$doc])* pub $field: u64,)*
            /// The largest delivery lag seen, in milliseconds (a gauge, not a counter).
            pub delivery_lag_ms_max: u64,
        }

        /// Which counter to add to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub(crate) enum Counter {
            $($field,)*
        }

        impl Metrics {
            /// Adds `n` to a counter.
            pub(crate) fn add(&self, counter: Counter, n: u64) {
                let cell = match counter {
                    $(Counter::$field => &self.$field,)*
                };
                cell.fetch_add(n, Ordering::Relaxed);
            }

            /// Every counter now.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                    delivery_lag_ms_max: self.delivery_lag_ms_max.load(Ordering::Relaxed),
                }
            }
        }

        impl MetricsSnapshot {
            /// Each value with a Prometheus-style name (`bitcoin_checkout_…`), in a fixed
            /// order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [
                    $(($name, self.$field),)*
                    ("bitcoin_checkout_delivery_lag_ms_max", self.delivery_lag_ms_max),
                ]
                .into_iter()
            }
        }
    };
}

counters! {
    /// Commits the store accepted (sessions and links).
    commits => "bitcoin_checkout_commits_total",
    /// Commits refused because another writer changed the object first (then retried).
    conflicts => "bitcoin_checkout_conflicts_total",
    /// Attempts run again: after a conflict, a retryable store error, or a cached copy of
    /// the session that has to be checked against the store (it refused the command or
    /// found nothing to do).
    retries => "bitcoin_checkout_retries_total",
    /// Store calls that failed with a backend error (retryable or not).
    store_errors => "bitcoin_checkout_store_errors_total",
    /// Sessions created.
    sessions_created => "bitcoin_checkout_sessions_created_total",
    /// Sessions paid.
    sessions_paid => "bitcoin_checkout_sessions_paid_total",
    /// Quotes issued (first quotes and refreshes).
    quotes_issued => "bitcoin_checkout_quotes_issued_total",
    /// Quotes issued to an existing session: after an expiry or a partial payment.
    quote_refreshes => "bitcoin_checkout_quote_refreshes_total",
    /// Quotes that ran out unpaid.
    quotes_expired => "bitcoin_checkout_quotes_expired_total",
    /// Transfers recorded for the first time.
    transfers_recorded => "bitcoin_checkout_transfers_recorded_total",
    /// Flags raised (overpaid, late, paid after expiry, limits reached).
    flags_raised => "bitcoin_checkout_flags_raised_total",
    /// Webhook deliveries answered with a 2xx.
    deliveries_delivered => "bitcoin_checkout_deliveries_delivered_total",
    /// Webhook attempts that failed and will be retried.
    deliveries_retried => "bitcoin_checkout_deliveries_retried_total",
    /// Webhook deliveries given up (retries exhausted, `410 Gone`, endpoint disabled).
    deliveries_failed => "bitcoin_checkout_deliveries_failed_total",
    /// Endpoints the dispatcher disabled.
    endpoints_disabled => "bitcoin_checkout_endpoints_disabled_total",
    /// The sum of delivery lags (event created → 2xx), in milliseconds: divided by
    /// `deliveries_delivered`, the mean lag.
    delivery_lag_ms_sum => "bitcoin_checkout_delivery_lag_ms_sum",
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a delivery that took `lag_ms` from its event's creation to its 2xx.
    pub(crate) fn delivered(&self, lag_ms: u64) {
        self.add(Counter::deliveries_delivered, 1);
        self.add(Counter::delivery_lag_ms_sum, lag_ms);
        self.delivery_lag_ms_max
            .fetch_max(lag_ms, Ordering::Relaxed);
    }

    /// Counts what a committed change did, from its events (`update`: the change was made
    /// to an existing session or link): a change committed once is counted once, however
    /// many attempts it took.
    pub(crate) fn committed(&self, events: &[crate::outbox::Event], update: bool) {
        use crate::event::EventType as T;
        for e in events {
            let counter = match e.event_type {
                T::CheckoutSessionCreated => Counter::sessions_created,
                T::CheckoutSessionPaid => Counter::sessions_paid,
                T::PaymentCreated => {
                    if update {
                        self.add(Counter::quote_refreshes, 1);
                    }
                    Counter::quotes_issued
                }
                T::PaymentExpired => Counter::quotes_expired,
                T::TransferReceived => Counter::transfers_recorded,
                T::Overpaid | T::LatePayment | T::PaidAfterExpiry => Counter::flags_raised,
                _ => continue,
            };
            self.add(counter, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let snapshot = Metrics::new().snapshot();
        let names: Vec<&str> = snapshot.iter().map(|(n, _)| n).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(names.iter().all(|n| n.starts_with("bitcoin_checkout_")));
    }

    #[test]
    fn lag_keeps_its_sum_and_maximum() {
        let m = Metrics::new();
        m.delivered(40);
        m.delivered(10);
        let s = m.snapshot();
        assert_eq!(
            (
                s.deliveries_delivered,
                s.delivery_lag_ms_sum,
                s.delivery_lag_ms_max
            ),
            (2, 50, 40)
        );
    }
}
