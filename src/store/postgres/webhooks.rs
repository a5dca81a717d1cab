//! [`DeliveryStore`] for [`PostgresStore`] (feature `webhooks`): endpoints, per-endpoint
//! cursors and the delivery log, so a dispatcher resumes where it stopped after a restart.
//!
//! The `endpoints` rows hold [`Endpoint::to_stored_json`], which includes the signing
//! secret.

use super::ops::{Op, Out};
use super::pool::{Conn, Failure};
use super::{PostgresStore, clamp_i64, corrupt, millis, to_i64, unexpected};
use crate::id::EndpointId;
use crate::outbox::Event;
use crate::store::StoreError;
use crate::webhook::{Delivery, DeliveryStatus, DeliveryStore, Endpoint};

/// A webhook request to the background thread.
pub(super) enum WebhookOp {
    SaveEndpoint {
        id: String,
        body: String,
    },
    Endpoints,
    Cursor(String),
    Schedule {
        endpoint: String,
        cursor: i64,
        rows: DeliveryRows,
    },
    Pending(i64),
    SaveDelivery(DeliveryRows),
    Delivery {
        endpoint: String,
        seq: i64,
    },
    Deliveries(String),
}

impl WebhookOp {
    /// Whether running it again after a lost connection cannot do anything twice. Every
    /// write here is one statement that is idempotent (an upsert, inserts that keep what
    /// exists, a cursor that only moves forward), but like commits they are not re-run
    /// once their outcome is unknown.
    pub(super) fn is_read(&self) -> bool {
        matches!(
            self,
            WebhookOp::Endpoints
                | WebhookOp::Cursor(_)
                | WebhookOp::Pending(_)
                | WebhookOp::Delivery { .. }
                | WebhookOp::Deliveries(_)
        )
    }
}

/// A webhook reply from the background thread.
pub(super) enum WebhookOut {
    /// (id, body) of endpoints.
    Endpoints(Vec<(String, String)>),
    Cursor(Option<i64>),
    /// (endpoint, seq, body) of deliveries.
    Deliveries(Vec<(String, i64, String)>),
}

/// The `status` column: the JSON name of the status.
fn status_text(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
    }
}

/// Deliveries turned into column values (on the caller's thread).
pub(super) struct DeliveryRows {
    endpoints: Vec<String>,
    seqs: Vec<i64>,
    statuses: Vec<&'static str>,
    next_attempt_at: Vec<Option<i64>>,
    bodies: Vec<String>,
}

impl DeliveryRows {
    fn new(deliveries: &[Delivery]) -> Result<Self, StoreError> {
        let mut rows = Self {
            endpoints: Vec::with_capacity(deliveries.len()),
            seqs: Vec::with_capacity(deliveries.len()),
            statuses: Vec::with_capacity(deliveries.len()),
            next_attempt_at: Vec::with_capacity(deliveries.len()),
            bodies: Vec::with_capacity(deliveries.len()),
        };
        for d in deliveries {
            rows.endpoints.push(d.endpoint.to_string());
            rows.seqs.push(to_i64(d.seq, "delivery seq")?);
            rows.statuses.push(status_text(d.status));
            rows.next_attempt_at.push(d.next_attempt_at.map(millis));
            rows.bodies.push(serde_json::to_string(d).map_err(|e| {
                super::fatal(format!(
                    "cannot write delivery {} of {}: {e}",
                    d.seq, d.endpoint
                ))
            })?);
        }
        Ok(rows)
    }
}

pub(super) const SQL_SAVE_ENDPOINT: &str = "INSERT INTO endpoints (id, body) VALUES ($1, $2) \
     ON CONFLICT (id) DO UPDATE SET body = excluded.body";
const SQL_ENDPOINTS: &str = "SELECT id, body FROM endpoints ORDER BY id ASC";
const SQL_CURSOR: &str = "SELECT cursor FROM delivery_cursors WHERE endpoint = $1";
// One statement, so atomic: the deliveries not stored yet are inserted (existing ones, with
// their attempts, are kept) and the cursor moves to max(stored, cursor).
const SQL_SCHEDULE: &str = "WITH inserted AS ( \
       INSERT INTO deliveries (endpoint, seq, status, next_attempt_at, body) \
       SELECT u.endpoint, u.seq, u.status, u.next_attempt_at, u.body \
       FROM unnest($3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::text[]) \
         AS u(endpoint, seq, status, next_attempt_at, body) \
       ON CONFLICT (endpoint, seq) DO NOTHING) \
     INSERT INTO delivery_cursors (endpoint, cursor) VALUES ($1, $2) \
     ON CONFLICT (endpoint) DO UPDATE \
       SET cursor = GREATEST(delivery_cursors.cursor, excluded.cursor)";
const SQL_SAVE_DELIVERIES: &str = "INSERT INTO deliveries (endpoint, seq, status, next_attempt_at, body) \
     SELECT u.endpoint, u.seq, u.status, u.next_attempt_at, u.body \
     FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[]) \
       AS u(endpoint, seq, status, next_attempt_at, body) \
     ON CONFLICT (endpoint, seq) DO UPDATE SET status = excluded.status, \
       next_attempt_at = excluded.next_attempt_at, body = excluded.body";
const SQL_PENDING: &str = "SELECT endpoint, seq, body FROM deliveries WHERE status = $1 \
     ORDER BY endpoint ASC, seq ASC LIMIT $2";
const SQL_DELIVERY: &str =
    "SELECT endpoint, seq, body FROM deliveries WHERE endpoint = $1 AND seq = $2";
const SQL_DELIVERIES: &str =
    "SELECT endpoint, seq, body FROM deliveries WHERE endpoint = $1 ORDER BY seq ASC";

impl Conn {
    pub(super) async fn webhook(&mut self, op: &WebhookOp) -> Result<Out, Failure> {
        let pg = |e| Failure::Pg(e, false);
        let deliveries = |rows: Vec<tokio_postgres::Row>| {
            rows.into_iter()
                .map(|r| {
                    Ok((
                        r.try_get(0).map_err(pg)?,
                        r.try_get(1).map_err(pg)?,
                        r.try_get(2).map_err(pg)?,
                    ))
                })
                .collect::<Result<Vec<_>, Failure>>()
                .map(|d| Out::Webhook(WebhookOut::Deliveries(d)))
        };
        match op {
            WebhookOp::SaveEndpoint { id, body } => {
                self.exec(SQL_SAVE_ENDPOINT, &[id, body]).await?;
                Ok(Out::Unit)
            }
            WebhookOp::Endpoints => {
                let rows = self.query(SQL_ENDPOINTS, &[]).await?;
                let endpoints = rows
                    .into_iter()
                    .map(|r| Ok((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?)))
                    .collect::<Result<Vec<_>, Failure>>()?;
                Ok(Out::Webhook(WebhookOut::Endpoints(endpoints)))
            }
            WebhookOp::Cursor(endpoint) => {
                let cursor = self.query_value(SQL_CURSOR, &[endpoint]).await?;
                Ok(Out::Webhook(WebhookOut::Cursor(cursor)))
            }
            WebhookOp::Schedule {
                endpoint,
                cursor,
                rows: r,
            } => {
                self.exec(
                    SQL_SCHEDULE,
                    &[
                        endpoint,
                        cursor,
                        &r.endpoints,
                        &r.seqs,
                        &r.statuses,
                        &r.next_attempt_at,
                        &r.bodies,
                    ],
                )
                .await?;
                Ok(Out::Unit)
            }
            WebhookOp::Pending(limit) => {
                let status = status_text(DeliveryStatus::Pending);
                deliveries(self.query(SQL_PENDING, &[&status, limit]).await?)
            }
            WebhookOp::SaveDelivery(r) => {
                self.exec(
                    SQL_SAVE_DELIVERIES,
                    &[
                        &r.endpoints,
                        &r.seqs,
                        &r.statuses,
                        &r.next_attempt_at,
                        &r.bodies,
                    ],
                )
                .await?;
                Ok(Out::Unit)
            }
            WebhookOp::Delivery { endpoint, seq } => {
                deliveries(self.query(SQL_DELIVERY, &[endpoint, seq]).await?)
            }
            WebhookOp::Deliveries(endpoint) => {
                deliveries(self.query(SQL_DELIVERIES, &[endpoint]).await?)
            }
        }
    }
}

impl PostgresStore {
    fn webhook(&self, op: WebhookOp) -> Result<Out, StoreError> {
        self.call(Op::Webhook(op))
    }

    fn unit(&self, op: WebhookOp) -> Result<(), StoreError> {
        match self.webhook(op)? {
            Out::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn deliveries_of(&self, op: WebhookOp) -> Result<Vec<Delivery>, StoreError> {
        let Out::Webhook(WebhookOut::Deliveries(rows)) = self.webhook(op)? else {
            return Err(unexpected());
        };
        rows.iter()
            .map(|(endpoint, seq, body)| Delivery::from_row(endpoint, *seq, body))
            .collect()
    }
}

impl DeliveryStore for PostgresStore {
    fn save_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.unit(WebhookOp::SaveEndpoint {
            id: endpoint.id.to_string(),
            // The stored JSON includes the signing secret.
            body: endpoint.to_stored_json(),
        })
    }

    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let Out::Webhook(WebhookOut::Endpoints(rows)) = self.webhook(WebhookOp::Endpoints)? else {
            return Err(unexpected());
        };
        rows.iter()
            .map(|(id, body)| Endpoint::from_row(id, body))
            .collect()
    }

    fn cursor(&self, endpoint: EndpointId) -> Result<u64, StoreError> {
        let Out::Webhook(WebhookOut::Cursor(cursor)) =
            self.webhook(WebhookOp::Cursor(endpoint.to_string()))?
        else {
            return Err(unexpected());
        };
        cursor.map_or(Ok(0), |c| {
            u64::try_from(c).map_err(|e| corrupt("stored delivery cursor", e))
        })
    }

    /// One statement: the deliveries not stored yet are inserted (existing ones, with their
    /// attempts, are kept) and the cursor moves to `max(stored, cursor)`.
    fn schedule(
        &self,
        endpoint: EndpointId,
        cursor: u64,
        deliveries: &[Delivery],
    ) -> Result<(), StoreError> {
        self.unit(WebhookOp::Schedule {
            endpoint: endpoint.to_string(),
            cursor: to_i64(cursor, "delivery cursor")?,
            rows: DeliveryRows::new(deliveries)?,
        })
    }

    fn pending(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.deliveries_of(WebhookOp::Pending(clamp_i64(limit)))
    }

    fn save_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.unit(WebhookOp::SaveDelivery(DeliveryRows::new(
            std::slice::from_ref(delivery),
        )?))
    }

    fn delivery(&self, endpoint: EndpointId, seq: u64) -> Result<Option<Delivery>, StoreError> {
        // No stored seq exceeds i64::MAX.
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(None);
        };
        let found = self.deliveries_of(WebhookOp::Delivery {
            endpoint: endpoint.to_string(),
            seq,
        })?;
        Ok(found.into_iter().next())
    }

    fn deliveries(&self, endpoint: EndpointId) -> Result<Vec<Delivery>, StoreError> {
        self.deliveries_of(WebhookOp::Deliveries(endpoint.to_string()))
    }

    fn disable_endpoint(&self, endpoint: &Endpoint, event: &Event) -> Result<(), StoreError> {
        let rows = super::commit::DisableRows::new(
            endpoint.id.to_string(),
            endpoint.to_stored_json(),
            event,
        );
        match self.call(Op::DisableEndpoint(Box::new(rows)))? {
            Out::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }
}
