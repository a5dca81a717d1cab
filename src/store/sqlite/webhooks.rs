//! [`DeliveryStore`] for [`SqliteStore`] (feature `webhooks`): endpoints, per-endpoint
//! cursors and the delivery log, so a dispatcher resumes where it stopped after a restart.
//!
//! The `endpoints` rows hold [`Endpoint::to_stored_json`], which includes the signing
//! secret.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend, commit, limit_i64, to_i64, to_u64};
use crate::id::EndpointId;
use crate::json::millis::to_millis;
use crate::outbox::Event;
use crate::store::StoreError;
use crate::store::rows::EventRow;
use crate::webhook::{Delivery, DeliveryStatus, DeliveryStore, Endpoint};

/// The `status` column: the JSON name of the status.
fn status_text(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
    }
}

/// A delivery turned into column values.
struct DeliveryRow {
    endpoint: String,
    seq: i64,
    status: &'static str,
    next_attempt_at: Option<i64>,
    body: String,
}

impl DeliveryRow {
    fn new(d: &Delivery) -> Result<Self, StoreError> {
        Ok(Self {
            endpoint: d.endpoint.to_string(),
            seq: to_i64(d.seq, "delivery seq")?,
            status: status_text(d.status),
            next_attempt_at: d.next_attempt_at.map(to_millis),
            body: serde_json::to_string(d).map_err(|e| StoreError::Backend {
                message: format!("delivery {} of {}: {e}", d.seq, d.endpoint),
                retryable: false,
            })?,
        })
    }
}

/// Runs a query of (endpoint, seq, body) rows and decodes them.
fn query_deliveries(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(params, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    rows.iter()
        .map(|(endpoint, seq, body)| Delivery::from_row(endpoint, *seq, body))
        .collect()
}

impl DeliveryStore for SqliteStore {
    fn save_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.write(|tx| save_endpoint(tx, endpoint))
    }

    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, body FROM endpoints ORDER BY id ASC")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.iter()
                .map(|(id, body)| Endpoint::from_row(id, body))
                .collect()
        })
    }

    fn cursor(&self, endpoint: EndpointId) -> Result<u64, StoreError> {
        let endpoint = endpoint.to_string();
        self.with_conn(|conn| {
            let cursor = conn
                .prepare_cached("SELECT cursor FROM delivery_cursors WHERE endpoint = ?1")
                .map_err(backend)?
                .query_row([&endpoint], |row| row.get::<_, i64>(0))
                .optional()
                .map_err(backend)?;
            cursor.map_or(Ok(0), |c| to_u64(c, "delivery cursor"))
        })
    }

    /// One write transaction: the deliveries not stored yet are inserted (existing ones,
    /// with their attempts, are kept) and the cursor moves to `max(stored, cursor)`.
    fn schedule(
        &self,
        endpoint: EndpointId,
        cursor: u64,
        deliveries: &[Delivery],
    ) -> Result<(), StoreError> {
        let endpoint = endpoint.to_string();
        let cursor = to_i64(cursor, "delivery cursor")?;
        let rows = deliveries
            .iter()
            .map(DeliveryRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|tx| {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO deliveries (endpoint, seq, status, next_attempt_at, body)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (endpoint, seq) DO NOTHING",
                )
                .map_err(backend)?;
            for r in &rows {
                insert
                    .execute(params![
                        r.endpoint,
                        r.seq,
                        r.status,
                        r.next_attempt_at,
                        r.body
                    ])
                    .map_err(backend)?;
            }
            tx.prepare_cached(
                "INSERT INTO delivery_cursors (endpoint, cursor) VALUES (?1, ?2)
                 ON CONFLICT (endpoint) DO UPDATE SET cursor = max(cursor, excluded.cursor)",
            )
            .and_then(|mut stmt| stmt.execute(params![endpoint, cursor]))
            .map_err(backend)?;
            Ok(())
        })
    }

    fn pending(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let status = status_text(DeliveryStatus::Pending);
        self.with_conn(|conn| {
            query_deliveries(
                conn,
                "SELECT endpoint, seq, body FROM deliveries WHERE status = ?1
                 ORDER BY endpoint ASC, seq ASC LIMIT ?2",
                params![status, limit_i64(limit)],
            )
        })
    }

    fn save_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let r = DeliveryRow::new(delivery)?;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO deliveries (endpoint, seq, status, next_attempt_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (endpoint, seq) DO UPDATE SET status = excluded.status,
                     next_attempt_at = excluded.next_attempt_at, body = excluded.body",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    r.endpoint,
                    r.seq,
                    r.status,
                    r.next_attempt_at,
                    r.body
                ])
            })
            .map_err(backend)?;
            Ok(())
        })
    }

    fn delivery(&self, endpoint: EndpointId, seq: u64) -> Result<Option<Delivery>, StoreError> {
        // No stored seq exceeds i64::MAX.
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(None);
        };
        let endpoint = endpoint.to_string();
        self.with_conn(|conn| {
            let found = query_deliveries(
                conn,
                "SELECT endpoint, seq, body FROM deliveries WHERE endpoint = ?1 AND seq = ?2",
                params![endpoint, seq],
            )?;
            Ok(found.into_iter().next())
        })
    }

    fn deliveries(&self, endpoint: EndpointId) -> Result<Vec<Delivery>, StoreError> {
        let endpoint = endpoint.to_string();
        self.with_conn(|conn| {
            query_deliveries(
                conn,
                "SELECT endpoint, seq, body FROM deliveries WHERE endpoint = ?1 ORDER BY seq ASC",
                [&endpoint],
            )
        })
    }

    fn disable_endpoint(&self, endpoint: &Endpoint, event: &Event) -> Result<(), StoreError> {
        let rows = EventRow::for_commit(std::slice::from_ref(event), None);
        self.write(|tx| {
            save_endpoint(tx, endpoint)?;
            rows.iter()
                .try_for_each(|row| commit::insert_event(tx, row, None).map(drop))
        })
    }
}

fn save_endpoint(tx: &Connection, endpoint: &Endpoint) -> Result<(), StoreError> {
    let id = endpoint.id.to_string();
    // The stored JSON includes the signing secret.
    let body = endpoint.to_stored_json();
    tx.prepare_cached(
        "INSERT INTO endpoints (id, body) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body",
    )
    .and_then(|mut stmt| stmt.execute(params![id, body]))
    .map_err(backend)?;
    Ok(())
}
