//! Commits on PostgreSQL: a commit's rows ([`CommitRows`]) as column arrays, and the
//! transaction that writes them.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio_postgres::types::ToSql;

use super::ops::Work;
use super::pool::{Conn, Failure};
use super::sql::*;
use super::{LOCK_OUTBOX, lock_key};
use crate::store::rows::{CommitRows, EventRow, LinkRow};
use crate::store::{LinkCommit, RoutingKey, StoreError, key_taken};

/// A commit as the statements bind it: the row mapping's rows, with the payments,
/// transfers and events as parallel arrays for `unnest`.
pub(super) struct PgCommit {
    id: String,
    expected_version: Option<i64>,
    version: i64,
    created: i64,
    status: &'static str,
    wake_at: Option<i64>,
    head: String,
    link_id: Option<String>,
    source_id: Option<String>,
    metadata: Option<String>,
    review: bool,
    livemode: bool,
    payment_ids: Vec<String>,
    payment_bodies: Vec<String>,
    /// The invoice hashes of the payments written.
    hashes: Vec<String>,
    /// The transfers the commit writes; each key is claimed for the session.
    transfer_keys: Vec<String>,
    transfer_bodies: Vec<String>,
    address: Option<String>,
    events: EventColumns,
    held: Option<crate::store::rows::HeldRow>,
}

impl PgCommit {
    pub(super) fn new(rows: CommitRows) -> Self {
        let s = rows.session;
        let (payment_ids, payment_bodies) = rows
            .payments
            .iter()
            .map(|p| (p.id.clone(), p.body.clone()))
            .unzip();
        let hashes = rows
            .payments
            .iter()
            .filter_map(|p| p.payment_hash.clone())
            .collect();
        let (transfer_keys, transfer_bodies) =
            rows.transfers.into_iter().map(|t| (t.key, t.body)).unzip();
        Self {
            id: s.id,
            expected_version: rows.expected_version,
            version: s.version,
            created: s.created,
            status: s.status,
            wake_at: s.wake_at,
            head: s.head,
            link_id: s.link_id,
            source_id: s.source_id,
            metadata: s.metadata,
            review: s.review,
            livemode: s.livemode,
            payment_ids,
            payment_bodies,
            hashes,
            transfer_keys,
            transfer_bodies,
            address: rows.address,
            events: EventColumns::new(rows.events),
            held: rows.held,
        }
    }
}

/// Outbox events as column arrays.
struct EventColumns {
    ids: Vec<String>,
    created: Vec<i64>,
    bodies: Vec<String>,
    carriers: Vec<Option<String>>,
    parts: Vec<Option<String>>,
}

impl EventColumns {
    fn new(events: Vec<EventRow>) -> Self {
        let mut columns = Self {
            ids: Vec::with_capacity(events.len()),
            created: Vec::with_capacity(events.len()),
            bodies: Vec::with_capacity(events.len()),
            carriers: Vec::with_capacity(events.len()),
            parts: Vec::with_capacity(events.len()),
        };
        for e in events {
            columns.ids.push(e.id);
            columns.created.push(e.created);
            columns.bodies.push(e.body);
            columns.carriers.push(e.carrier);
            columns.parts.push(e.part);
        }
        columns
    }
}

/// A link commit turned into column values (on the caller's thread).
pub(super) struct LinkCommitRows {
    row: LinkRow,
    /// `None` inserts the link; `Some(None)`: an expected version no stored link can have.
    expected_version: Option<Option<i64>>,
    events: EventColumns,
    sessions: Vec<PgCommit>,
}

impl LinkCommitRows {
    pub(super) fn new(c: &LinkCommit) -> Result<Self, StoreError> {
        Ok(Self {
            row: LinkRow::new(&c.link)?,
            expected_version: c.expected_version.map(|v| i64::try_from(v).ok()),
            events: EventColumns::new(EventRow::for_commit(&c.events, None)),
            sessions: c
                .sessions
                .iter()
                .map(|s| CommitRows::new(s).map(PgCommit::new))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// An endpoint disabled by the dispatcher, with its event.
#[cfg(feature = "webhooks")]
pub(super) struct DisableRows {
    id: String,
    /// The stored JSON (it includes the signing secret).
    body: String,
    events: EventColumns,
}

#[cfg(feature = "webhooks")]
impl DisableRows {
    /// The endpoint's row (`body` its stored JSON) and the event.
    pub(super) fn new(id: String, body: String, event: &crate::outbox::Event) -> Self {
        Self {
            id,
            body,
            events: EventColumns::new(EventRow::for_commit(std::slice::from_ref(event), None)),
        }
    }
}

impl Conn {
    /// Applies a session commit or a link commit in one READ COMMITTED transaction: commits
    /// if every step succeeds, rolls back otherwise. The level is explicit because the
    /// outbox ordering below relies on each statement taking a fresh snapshot, whatever the
    /// database's default level is.
    pub(super) async fn transaction(
        &mut self,
        work: Work<'_>,
        lock_suffix: u32,
    ) -> Result<(), Failure> {
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(|e| Failure::Pg(e, false))?;
        let rows = match work {
            Work::Session(rows) => self
                .apply_session(rows)
                .await
                .map(|()| vec![(Some(&rows.id), &rows.events)]),
            Work::Link(rows) => self.commit_link_body(rows).await,
            #[cfg(feature = "webhooks")]
            Work::Disable(rows) => {
                let params: [&(dyn ToSql + Sync); 2] = [&rows.id, &rows.body];
                self.exec(super::webhooks::SQL_SAVE_ENDPOINT, &params)
                    .await
                    .map(|_| vec![(None, &rows.events)])
            }
        };
        match rows {
            Ok(events) => self.publish_and_commit(&events, lock_suffix).await,
            Err(f) => {
                if self.client.batch_execute("ROLLBACK").await.is_err() {
                    self.poisoned = true;
                }
                Err(f)
            }
        }
    }

    /// A link commit's rows on an open transaction: the link's compare-and-swap, then every
    /// session commit's rows exactly as a session commit writes them. Answers the events to
    /// append last (see [`publish_and_commit`](Self::publish_and_commit)): the link's, then
    /// each session commit's, in that order. Any conflict fails the whole transaction.
    async fn commit_link_body<'r>(
        &mut self,
        r: &'r LinkCommitRows,
    ) -> Result<Vec<EventBatch<'r>>, Failure> {
        let l = &r.row;
        let written = match r.expected_version {
            None => {
                let params: [&(dyn ToSql + Sync); 6] =
                    [&l.id, &l.version, &l.body, &l.created, &l.kind, &l.livemode];
                self.exec(SQL_INSERT_LINK, &params).await?
            }
            // No stored version exceeds i64::MAX, so such an expectation cannot hold.
            Some(None) => 0,
            Some(Some(expected)) => {
                self.exec(SQL_UPDATE_LINK, &[&l.id, &expected, &l.version, &l.body])
                    .await?
            }
        };
        if written == 0 {
            return Err(Failure::Conflict);
        }
        for s in &r.sessions {
            self.apply_session(s).await?;
        }
        let mut events = vec![(None, &r.events)];
        events.extend(r.sessions.iter().map(|s| (Some(&s.id), &s.events)));
        Ok(events)
    }

    /// Writes a session commit's rows (everything but its events) on an open transaction.
    async fn apply_session(&mut self, r: &PgCommit) -> Result<(), Failure> {
        // Compare-and-swap: the new row only if there is none, the update only if the stored
        // version is the expected one. Zero rows written: someone else won; roll back.
        let row: [&(dyn ToSql + Sync); 7] = [
            &r.id, &r.created, &r.status, &r.version, &r.wake_at, &r.head, &r.link_id,
        ];
        // `source_id` and `livemode` are written once, with the new row; an update names
        // the expected version instead.
        let (sql, rest): (_, &[&(dyn ToSql + Sync)]) = match &r.expected_version {
            None => (
                SQL_INSERT_SESSION,
                &[&r.source_id, &r.metadata, &r.review, &r.livemode],
            ),
            Some(expected) => (SQL_UPDATE_SESSION, &[expected, &r.metadata, &r.review]),
        };
        let params: Vec<&(dyn ToSql + Sync)> = row.iter().chain(rest).copied().collect();
        let written = self.exec(sql, &params).await?;
        if written == 0 {
            return Err(Failure::Conflict);
        }
        // The checks in the in-memory store's order: version (above), transfer owners.
        if !r.transfer_keys.is_empty() {
            self.exec(SQL_CLAIM_TRANSFER_KEYS, &[&r.id, &r.transfer_keys])
                .await?;
            let foreign = self
                .query(SQL_FOREIGN_TRANSFER_KEY, &[&r.id, &r.transfer_keys])
                .await?;
            refuse_foreign(&foreign, RoutingKey::Transfer)?;
            self.exec(
                SQL_UPSERT_TRANSFERS,
                &[&r.id, &r.transfer_keys, &r.transfer_bodies],
            )
            .await?;
        }
        if let Some(h) = &r.held {
            // A held transfer is new: its key recorded anywhere refuses it (this session's
            // own: a racing report of the same transfer, a conflict to retry).
            if self.exec(SQL_CLAIM_HELD_KEY, &[&r.id, &h.key]).await? == 0 {
                let holder = self.query(SQL_TRANSFER_HOLDER, &[&h.key]).await?;
                let foreign: Vec<_> = holder
                    .into_iter()
                    .filter(|row| row.try_get::<_, String>(1).ok().as_ref() != Some(&r.id))
                    .collect();
                refuse_foreign(&foreign, RoutingKey::Transfer)?;
                return Err(Failure::Conflict);
            }
            self.exec(SQL_INSERT_HELD, &[&r.id, &h.key, &h.held_at, &h.body])
                .await?;
        }
        if !r.payment_ids.is_empty() {
            self.exec(
                SQL_UPSERT_PAYMENTS,
                &[&r.id, &r.payment_ids, &r.payment_bodies],
            )
            .await?;
        }
        if !r.hashes.is_empty() {
            self.exec(SQL_INDEX_HASHES, &[&r.id, &r.hashes]).await?;
            let foreign = self.query(SQL_FOREIGN_HASH, &[&r.id, &r.hashes]).await?;
            refuse_foreign(&foreign, RoutingKey::PaymentHash)?;
        }
        if let Some(address) = &r.address {
            self.exec(SQL_INDEX_ADDRESS, &[&r.id, address]).await?;
            let foreign = self.query(SQL_FOREIGN_ADDRESS, &[&r.id, address]).await?;
            refuse_foreign(&foreign, RoutingKey::Address)?;
        }
        Ok(())
    }

    /// Appends the events to the outbox (each batch filed under its session, NULL for a
    /// link's events) and commits, on a transaction whose rows are written.
    ///
    /// The outbox contract: a reader that has seen seq n never later sees a seq below n
    /// appear. A sequence (BIGSERIAL) does not give that: transaction A may draw 5, B draw 6
    /// and commit first; a reader then sees 6 and, later, 5. So the numbers are assigned
    /// under a transaction-scoped advisory lock, taken last (after every row lock of the
    /// transaction, so it cannot deadlock with them) and held until COMMIT. PostgreSQL makes
    /// a commit visible before it releases the transaction's locks, and under READ COMMITTED
    /// each INSERT takes its snapshot when it starts, after the lock is granted, so MAX(seq)
    /// sees every earlier outbox commit: numbers are handed out in commit order, without
    /// gaps (a rolled-back transaction burns none).
    ///
    /// The lock serialises every commit with events across all servers, so the time it is
    /// held is the store's ceiling (ADR 19). The lock, the inserts and the COMMIT are
    /// therefore sent together (pipelined) and the server runs them back to back: the lock is
    /// held for their execution and the commit's WAL flush, not for network round trips. The
    /// server still runs them in order, so each INSERT's snapshot is taken after the lock is
    /// granted. If the lock or an insert fails, the transaction is aborted and the COMMIT
    /// behind them rolls it back: nothing was written, and the error is the first failure.
    async fn publish_and_commit(
        &mut self,
        batches: &[EventBatch<'_>],
        lock_suffix: u32,
    ) -> Result<(), Failure> {
        let batches: Vec<_> = batches.iter().filter(|(_, e)| !e.ids.is_empty()).collect();
        if batches.is_empty() {
            return self
                .client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| Failure::Pg(e, true));
        }
        let lock = self.statement(SQL_ADVISORY_LOCK).await?;
        let insert = self.statement(SQL_INSERT_EVENTS).await?;
        let key = lock_key(LOCK_OUTBOX, lock_suffix);
        let lock_params: [&(dyn ToSql + Sync); 1] = [&key];
        let params: Vec<[&(dyn ToSql + Sync); 6]> = batches
            .iter()
            .map(|(session_id, e)| {
                [
                    session_id as &(dyn ToSql + Sync),
                    &e.ids,
                    &e.created,
                    &e.bodies,
                    &e.carriers,
                    &e.parts,
                ]
            })
            .collect();
        let client: &tokio_postgres::Client = &self.client;
        let mut steps: Vec<Step<'_>> = Vec::with_capacity(params.len() + 2);
        steps.push(Box::pin(client.execute(&lock, &lock_params)));
        for p in &params {
            steps.push(Box::pin(client.execute(&insert, p)));
        }
        steps.push(Box::pin(async move {
            client.batch_execute("COMMIT").await.map(|()| 0)
        }));
        let last = steps.len() - 1;
        for (i, result) in join_in_order(steps).await.into_iter().enumerate() {
            if let Err(e) = result {
                // Before COMMIT a database error aborted the transaction (the COMMIT then
                // rolled it back); a lost connection leaves the outcome unknown, as a failed
                // COMMIT does, so it is never re-run blindly.
                let unknown = i == last || e.as_db_error().is_none();
                return Err(Failure::Pg(e, unknown));
            }
        }
        Ok(())
    }
}

/// Events to append, filed under a session (or none, for a link's).
type EventBatch<'a> = (Option<&'a String>, &'a EventColumns);

/// One statement of a pipelined group.
type Step<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// Runs the steps at once and answers their results in order. The first poll polls each
/// step in turn, so their messages reach the connection (and the server) in that order.
async fn join_in_order(mut steps: Vec<Step<'_>>) -> Vec<Result<u64, tokio_postgres::Error>> {
    let mut done: Vec<Option<Result<u64, tokio_postgres::Error>>> =
        steps.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (step, slot) in steps.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match step.as_mut().poll(cx) {
                    Poll::Ready(result) => *slot = Some(result),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// Refuses the commit if `foreign` (rows of `key, session_id` another session holds) is not
/// empty: the first session to claim a key keeps it.
fn refuse_foreign<K>(
    foreign: &[tokio_postgres::Row],
    wrap: fn(K) -> RoutingKey,
) -> Result<(), Failure>
where
    K: std::str::FromStr,
    K::Err: std::fmt::Display,
{
    let Some(row) = foreign.first() else {
        return Ok(());
    };
    let text = |i| {
        row.try_get::<_, String>(i)
            .map_err(|e| Failure::Pg(e, false))
    };
    Err(Failure::Store(key_taken(wrap, &text(0)?, &text(1)?)))
}
