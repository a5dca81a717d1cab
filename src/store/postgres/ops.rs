//! The requests the store sends its background thread, and how a connection answers the
//! ones that are not commits.

use std::sync::mpsc as std_mpsc;

use tokio_postgres::types::ToSql;

use super::commit::{LinkCommitRows, PgCommit};
use super::pool::{Conn, Failure, Shared};
use super::sql::*;
use super::unexpected;
use crate::session::CheckoutSession;
use crate::store::StoreError;
use crate::store::event_rows::FetchedEvent;
use crate::store::list_sql::ListParam;
use crate::store::rows::{self, IdempotencyRow};

pub(super) type Reply = std_mpsc::SyncSender<Result<Out, StoreError>>;
pub(super) type Job = (Op, Reply);

#[derive(Debug, Clone, Copy)]
pub(super) enum Lookup {
    Transfer,
    PaymentHash,
    Address,
    /// A payment (quote) id.
    Payment,
}

pub(super) enum Op {
    Migrate,
    Load(String),
    /// A session's version alone.
    Version(String),
    Commit(Box<PgCommit>),
    Find(Lookup, String),
    /// A listing statement with its parameters (`store::list_sql`).
    List {
        sql: &'static str,
        params: Vec<ListParam>,
    },
    Due {
        now: i64,
        limit: i64,
    },
    EventsAfter {
        after: i64,
        limit: i64,
    },
    /// Newest first, below `before` (all when `None`).
    EventsBefore {
        before: Option<i64>,
        limit: i64,
    },
    /// One event by its id.
    Event(String),
    /// A link listing statement with its parameters (`store::list_sql`).
    ListLinks {
        sql: &'static str,
        params: Vec<ListParam>,
    },
    SessionEvents(String),
    /// A page of a session's timeline: (id, after, limit).
    SessionEventsAfter(String, i64, i64),
    /// A session's held transfers, oldest first: (id, limit).
    HeldTransfers(String, i64),
    Idempotency(String),
    /// Insert an idempotency row unless its key exists; answer the row that holds it.
    ClaimIdempotency(IdempotencyRow),
    /// Delete an idempotency row if it is exactly this one (running it twice is harmless).
    ReleaseIdempotency(IdempotencyRow),
    /// Delete outbox events at or below a sequence number, at most a number.
    PruneEvents(i64, i64),
    /// Delete one session's events at or below a sequence number.
    PruneSessionEvents(String, i64),
    /// Delete idempotency rows created before a time (millis), at most a number.
    PruneIdempotency(i64, i64),
    /// Reserve the next derivation index of a descriptor.
    ReserveIndex(String),
    /// The counter of a descriptor's reservations, without reserving.
    ReservedIndex(String),
    LoadLink(String),
    LinkSessions(String),
    ResumePoint(String),
    /// Resume points with a name prefix: (from, inclusive, prefix, limit).
    ResumePoints(String, bool, String, i64),
    /// Delete a resume point if it is the expected one: (name, point).
    DeleteResumePoint(String, String),
    /// Compare-and-swap of a listener's resume point (`expected: None`: none stored yet).
    SaveResumePoint {
        name: String,
        expected: Option<String>,
        new: String,
    },
    CommitLink(Box<LinkCommitRows>),
    #[cfg(feature = "webhooks")]
    Webhook(super::webhooks::WebhookOp),
    /// Save an endpoint and append its sessionless event, in one transaction.
    #[cfg(feature = "webhooks")]
    DisableEndpoint(Box<super::commit::DisableRows>),
}

/// What a commit transaction applies.
pub(super) enum Work<'a> {
    Session(&'a PgCommit),
    Link(&'a LinkCommitRows),
    #[cfg(feature = "webhooks")]
    Disable(&'a super::commit::DisableRows),
}

impl Op {
    /// Whether running it again after a lost connection cannot do anything twice.
    pub(super) fn is_read(&self) -> bool {
        match self {
            // A claim run again finds its own row, which the service recognises.
            Op::Commit(_)
            | Op::CommitLink(_)
            | Op::Migrate
            | Op::SaveResumePoint { .. }
            | Op::DeleteResumePoint(..) => false,
            #[cfg(feature = "webhooks")]
            Op::Webhook(op) => op.is_read(),
            #[cfg(feature = "webhooks")]
            Op::DisableEndpoint(_) => false,
            _ => true,
        }
    }
}

pub(super) enum Out {
    Unit,
    /// A session's rows.
    Session(Option<SessionRows>),
    Sessions(Vec<SessionRows>),
    Id(Option<String>),
    Ids(Vec<String>),
    Events(Vec<FetchedEvent>),
    Idempotency(Option<IdempotencyRow>),
    Index(i64),
    /// A descriptor's reservation counter, if it has one.
    Reserved(Option<i64>),
    /// A session's version, if it exists.
    Version(Option<i64>),
    /// A link's version and body.
    Link(Option<(i64, String)>),
    /// Links' ids, versions and bodies.
    Links(Vec<(String, i64, String)>),
    /// A stored text (a resume point).
    Text(Option<String>),
    /// How many rows a write changed.
    Changed(u64),
    /// Key and body pairs (held transfers).
    Pairs(Vec<(String, String)>),
    #[cfg(feature = "webhooks")]
    Webhook(super::webhooks::WebhookOut),
}

/// A session as stored: its row's id, version and head, its payments' bodies and its
/// transfers' keys and bodies.
pub(super) struct SessionRows {
    id: String,
    version: i64,
    head: String,
    payments: Vec<String>,
    transfer_keys: Vec<String>,
    transfers: Vec<String>,
}

impl SessionRows {
    fn from_row(r: tokio_postgres::Row) -> Result<Self, Failure> {
        let pg = |e| Failure::Pg(e, false);
        Ok(Self {
            id: r.try_get(0).map_err(pg)?,
            version: r.try_get(1).map_err(pg)?,
            head: r.try_get(2).map_err(pg)?,
            payments: r.try_get(3).map_err(pg)?,
            transfer_keys: r.try_get(4).map_err(pg)?,
            transfers: r.try_get(5).map_err(pg)?,
        })
    }

    /// The session, through the row mapping's checks.
    pub(super) fn decode(self) -> Result<CheckoutSession, StoreError> {
        if self.transfer_keys.len() != self.transfers.len() {
            return Err(super::corrupt(
                &format!("session {}", self.id),
                "transfer rows changed while read",
            ));
        }
        rows::decode_session(
            &self.id,
            self.version,
            &self.head,
            self.payments.iter().map(String::as_str),
            self.transfer_keys
                .iter()
                .zip(&self.transfers)
                .map(|(k, b)| (k.as_str(), b.as_str())),
        )
    }
}

impl Conn {
    pub(super) async fn execute(&mut self, op: &Op, ctx: &Shared) -> Result<Out, Failure> {
        let pg = |e| Failure::Pg(e, false);
        match op {
            Op::Migrate => self.migrate(ctx).await.map(|()| Out::Unit),
            Op::Commit(rows) => self
                .transaction(Work::Session(rows), ctx.lock_suffix)
                .await
                .map(|()| Out::Unit),
            Op::CommitLink(rows) => self
                .transaction(Work::Link(rows), ctx.lock_suffix)
                .await
                .map(|()| Out::Unit),
            Op::LoadLink(id) => {
                let rows = self.query(SQL_LOAD_LINK, &[id]).await?;
                let row = rows
                    .into_iter()
                    .next()
                    .map(|r| {
                        Ok::<_, Failure>((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?))
                    })
                    .transpose()?;
                Ok(Out::Link(row))
            }
            Op::LinkSessions(id) => {
                let rows = self.query(SQL_LINK_SESSIONS, &[id]).await?;
                let ids = rows
                    .into_iter()
                    .map(|r| r.try_get(0).map_err(pg))
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(Out::Ids(ids))
            }
            #[cfg(feature = "webhooks")]
            Op::Webhook(op) => self.webhook(op).await,
            #[cfg(feature = "webhooks")]
            Op::DisableEndpoint(rows) => self
                .transaction(Work::Disable(rows), ctx.lock_suffix)
                .await
                .map(|()| Out::Unit),
            Op::ResumePoint(name) => Ok(Out::Text(
                self.query_value(SQL_RESUME_POINT, &[name]).await?,
            )),
            Op::ResumePoints(from, inclusive, prefix, limit) => {
                let rows = self
                    .query(SQL_RESUME_POINTS, &[from, inclusive, prefix, limit])
                    .await?;
                let pairs = rows
                    .into_iter()
                    .map(|r| Ok((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?)))
                    .collect::<Result<Vec<(String, String)>, Failure>>()?;
                Ok(Out::Pairs(pairs))
            }
            Op::DeleteResumePoint(name, point) => {
                let deleted = self.exec(SQL_DELETE_RESUME_POINT, &[name, point]).await?;
                Ok(Out::Changed(deleted))
            }
            Op::SaveResumePoint {
                name,
                expected,
                new,
            } => {
                let changed = match expected {
                    None => self.exec(SQL_INSERT_RESUME_POINT, &[name, new]).await?,
                    Some(old) => {
                        self.exec(SQL_UPDATE_RESUME_POINT, &[name, old, new])
                            .await?
                    }
                };
                Ok(Out::Changed(changed))
            }
            Op::Load(id) => {
                let rows = self.query(SQL_LOAD, &[id]).await?;
                let row = rows.into_iter().next();
                Ok(Out::Session(row.map(SessionRows::from_row).transpose()?))
            }
            Op::Version(id) => Ok(Out::Version(self.query_value(SQL_VERSION, &[id]).await?)),
            Op::Find(lookup, key) => {
                let sql = match lookup {
                    Lookup::Transfer => SQL_FIND_TRANSFER,
                    Lookup::PaymentHash => SQL_FIND_HASH,
                    Lookup::Address => SQL_FIND_ADDRESS,
                    Lookup::Payment => SQL_FIND_PAYMENT,
                };
                Ok(Out::Id(self.query_value(sql, &[key]).await?))
            }
            Op::List { sql, params } => {
                let rows = self.query(sql, &bind(params)).await?;
                let sessions = rows
                    .into_iter()
                    .map(SessionRows::from_row)
                    .collect::<Result<Vec<_>, Failure>>()?;
                Ok(Out::Sessions(sessions))
            }
            Op::Due { now, limit } => {
                let rows = self.query(SQL_DUE, &[now, limit]).await?;
                let ids = rows
                    .into_iter()
                    .map(|r| r.try_get(0).map_err(pg))
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(Out::Ids(ids))
            }
            Op::EventsAfter { after, limit } => {
                let rows = self.query(SQL_EVENTS_AFTER, &[after, limit]).await?;
                Ok(Out::Events(event_rows(rows)?))
            }
            Op::EventsBefore { before, limit } => {
                let rows = match before {
                    Some(before) => self.query(SQL_EVENTS_BEFORE, &[before, limit]).await?,
                    None => self.query(SQL_LAST_EVENTS, &[limit]).await?,
                };
                Ok(Out::Events(event_rows(rows)?))
            }
            Op::Event(id) => {
                let rows = self.query(SQL_EVENT, &[id]).await?;
                Ok(Out::Events(event_rows(rows)?))
            }
            Op::ListLinks { sql, params } => {
                let rows = self.query(sql, &bind(params)).await?;
                let links = rows
                    .into_iter()
                    .map(|r| {
                        Ok::<_, Failure>((
                            r.try_get(0).map_err(pg)?,
                            r.try_get(1).map_err(pg)?,
                            r.try_get(2).map_err(pg)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Out::Links(links))
            }
            Op::SessionEvents(id) => {
                let rows = self.query(SQL_SESSION_EVENTS, &[id]).await?;
                Ok(Out::Events(event_rows(rows)?))
            }
            Op::SessionEventsAfter(id, after, limit) => {
                let rows = self
                    .query(SQL_SESSION_EVENTS_AFTER, &[id, after, limit])
                    .await?;
                Ok(Out::Events(event_rows(rows)?))
            }
            Op::HeldTransfers(id, limit) => {
                let rows = self.query(SQL_HELD_TRANSFERS, &[id, limit]).await?;
                let pairs = rows
                    .into_iter()
                    .map(|r| Ok((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?)))
                    .collect::<Result<Vec<(String, String)>, Failure>>()?;
                Ok(Out::Pairs(pairs))
            }
            Op::Idempotency(key) => {
                let rows = self.query(SQL_IDEMPOTENCY, &[key]).await?;
                Ok(Out::Idempotency(
                    rows.into_iter().next().map(idempotency_row).transpose()?,
                ))
            }
            Op::ClaimIdempotency(r) => {
                let inserted = self
                    .exec(
                        SQL_CLAIM_IDEMPOTENCY,
                        &[&r.key, &r.request, &r.session_id, &r.created],
                    )
                    .await?;
                if inserted == 1 {
                    return Ok(Out::Idempotency(None));
                }
                // ON CONFLICT waited for the row's inserter to commit; this statement's
                // fresh snapshot sees it.
                let rows = self.query(SQL_IDEMPOTENCY, &[&r.key]).await?;
                Ok(Out::Idempotency(
                    rows.into_iter().next().map(idempotency_row).transpose()?,
                ))
            }
            Op::PruneEvents(through, limit) => {
                let deleted = self.exec(SQL_PRUNE_EVENTS, &[through, limit]).await?;
                Ok(Out::Changed(deleted))
            }
            Op::PruneSessionEvents(id, through) => {
                let deleted = self.exec(SQL_PRUNE_SESSION_EVENTS, &[id, through]).await?;
                Ok(Out::Changed(deleted))
            }
            Op::PruneIdempotency(before, limit) => {
                let deleted = self.exec(SQL_PRUNE_IDEMPOTENCY, &[before, limit]).await?;
                Ok(Out::Changed(deleted))
            }
            Op::ReleaseIdempotency(r) => {
                self.exec(
                    SQL_RELEASE_IDEMPOTENCY,
                    &[&r.key, &r.request, &r.session_id],
                )
                .await?;
                Ok(Out::Unit)
            }
            Op::ReserveIndex(descriptor) => {
                // One statement, so the increment and its result are atomic; a rerun after a
                // lost connection can only skip an index, never hand one out twice.
                let rows = self.query(SQL_RESERVE_INDEX, &[descriptor]).await?;
                let next: i64 = match rows.first() {
                    Some(r) => r.try_get(0).map_err(pg)?,
                    None => return Err(Failure::Store(unexpected())),
                };
                Ok(Out::Index(next))
            }
            Op::ReservedIndex(descriptor) => {
                let rows = self.query(SQL_RESERVED_INDEX, &[descriptor]).await?;
                let next: Option<i64> = match rows.first() {
                    Some(r) => Some(r.try_get(0).map_err(pg)?),
                    None => None,
                };
                Ok(Out::Reserved(next))
            }
        }
    }
}

/// A listing's parameters as the statement binds them.
fn bind(params: &[ListParam]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            ListParam::Int(i) => i as &(dyn ToSql + Sync),
            ListParam::Text(t) => t,
            ListParam::Bool(b) => b,
        })
        .collect()
}

fn event_rows(rows: Vec<tokio_postgres::Row>) -> Result<Vec<FetchedEvent>, Failure> {
    let pg = |e| Failure::Pg(e, false);
    rows.into_iter()
        .map(|r| {
            Ok(FetchedEvent {
                seq: r.try_get(0).map_err(pg)?,
                body: r.try_get(1).map_err(pg)?,
                carrier: r.try_get(2).map_err(pg)?,
                part: r.try_get(3).map_err(pg)?,
                carrier_body: r.try_get(4).map_err(pg)?,
                id: r.try_get(5).map_err(pg)?,
                session_id: r.try_get(6).map_err(pg)?,
                created: r.try_get(7).map_err(pg)?,
                // Always null here: this store keeps every object in its events.
                object_version: r.try_get(8).map_err(pg)?,
                event_type: r.try_get(9).map_err(pg)?,
                object: None,
            })
        })
        .collect()
}

fn idempotency_row(r: tokio_postgres::Row) -> Result<IdempotencyRow, Failure> {
    let pg = |e| Failure::Pg(e, false);
    Ok(IdempotencyRow {
        key: r.try_get(0).map_err(pg)?,
        request: r.try_get(1).map_err(pg)?,
        session_id: r.try_get(2).map_err(pg)?,
        created: r.try_get(3).map_err(pg)?,
    })
}
