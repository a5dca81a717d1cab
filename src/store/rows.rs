//! The one row mapping of the crate's stores: how a [`Commit`] becomes rows, and how rows
//! become a session again, with the same integrity checks in every store.
//!
//! SQLite and PostgreSQL both use it, and so can a third-party store that keeps rows:
//!
//! | row | key | columns |
//! | --- | --- | --- |
//! | [`SessionRow`] | `id` | `created`, `status`, `version`, `wake_at` (for listing and sweeping), `link_id`, `source_id`, `metadata`, `review` and `livemode` (for the listing filters), `head` (the session's JSON without payments and transfers) |
//! | [`PaymentRow`] | (`session_id`, `id`) | `payment_hash` (its invoice's, for lookups), `body` (Speed's payment JSON) |
//! | [`TransferRow`] | `key` (`<hash>` or `<txid>:<vout>`) | `session_id`, `body` (the transfer's JSON) |
//! | lookups | invoice hash, on-chain address, transfer key | `session_id`; the first session to claim a key keeps it |
//! | [`EventRow`] | a store-wide sequence number | `id`, `session_id`, `created`, `event_type`, `body` ([`Event::to_json`]), `carrier` and `part` (thin rows: where the object is), `object_version` (the session version whose object it has, when the session's rows keep it: [`CommitRows::with_live_object`]) |
//! | [`IdempotencyRow`] | `key` | `request`, `session_id`, `created` |
//! | [`LinkRow`] | `id` | `version`, `created`, `kind` and `livemode` (for the link listing), `body` (the [`Link`] as JSON) |
//!
//! Times are Unix milliseconds, the precision of the JSON forms. Decoding
//! ([`decode_session`], [`decode_event`], [`IdempotencyRow::decode`]) checks that each row
//! holds what its key names (the session row's id and version, each transfer row's key,
//! each payment's session) and reports anything else as [`StoreError::Corrupt`].
//!
//! ```
//! use bitcoin_checkout::store::rows::{decode_session, session_rows};
//! # use bitcoin_checkout::{CheckoutSession, Currency, SessionParams};
//! # use rust_decimal::Decimal;
//! # let usd = Currency::from_code("USD")?;
//! # let (session, _change) = CheckoutSession::create(
//! #     bitcoin_checkout::SessionId::generate(), SessionParams::new(Decimal::ONE, usd),
//! #     time::OffsetDateTime::UNIX_EPOCH)?;
//! let rows = session_rows(&session)?;
//! let back = decode_session(
//!     &rows.session.id,
//!     rows.session.version,
//!     &rows.session.head,
//!     rows.payments.iter().map(|p| p.body.as_str()),
//!     rows.transfers.iter().map(|t| (t.key.as_str(), t.body.as_str())),
//! )?;
//! assert_eq!(back, session);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use time::OffsetDateTime;

use super::{Commit, Corruption, IdempotencyRecord, StoreError, StoredEvent};
use crate::id::SessionId;
use crate::json::millis;
use crate::link::Link;
use crate::outbox::Event;
use crate::session::CheckoutSession;
use crate::transfer::Transfer;

/// A session's own row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The session id (`cs_…`), the row's key.
    pub id: String,
    /// Creation time, Unix ms (listing order).
    pub created: i64,
    /// `active`, `paid` or `deactivated` (listing filter).
    pub status: &'static str,
    /// The version, compared and swapped by every commit.
    pub version: i64,
    /// When the sweep should look at it next, Unix ms; `None`: never without new funds.
    pub wake_at: Option<i64>,
    /// The link that opened it, if any.
    pub link_id: Option<String>,
    /// Its `source_id`, for the listing filter.
    pub source_id: Option<String>,
    /// Whether it has flagged money no resolution covers (the review-queue filter).
    pub review: bool,
    /// Live (`true`) or test mode, for the listing filter (set at creation, never changed).
    pub livemode: bool,
    /// Its metadata as a JSON object of each key's value as text
    /// ([`MetadataValue::text`](crate::metadata::MetadataValue::text)), `None` when it has
    /// none: the SQL stores index it in a table of (key, value, session) rows for the
    /// listing's metadata filter.
    pub metadata: Option<String>,
    /// The session's JSON without payments and transfers.
    pub head: String,
}

/// One payment (quote) of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// The payment id (`pi_…`); the key is (session id, payment id).
    pub id: String,
    /// Its invoice's payment hash, for the hash lookup.
    pub payment_hash: Option<String>,
    /// Speed's payment JSON.
    pub body: String,
}

/// One transfer of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    /// The transfer key (`<payment hash>` or `<txid>:<vout>`), the row's key.
    pub key: String,
    /// The transfer's JSON.
    pub body: String,
}

/// One outbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// The event id (`evt_…`).
    pub id: String,
    /// The session it is filed under (`None` for link events).
    pub session_id: Option<String>,
    /// When it happened, Unix ms.
    pub created: i64,
    /// Its type, e.g. `checkout_session.paid`.
    pub event_type: String,
    /// [`Event::to_json`]; for a thin row (with a `carrier`), only what the other columns
    /// do not say, `{"event_type":…,"livemode":…}` (its envelope is rebuilt from them), and
    /// for a row with an `object_version`, `{"livemode":…}` (its store reads the type from
    /// this column); or the envelope with `"object": null` when it is filed under another
    /// session than its own (a link's event) or was written by an earlier version.
    pub body: String,
    /// The event of the same commit whose body holds this one's object (`None`: its own).
    pub carrier: Option<String>,
    /// With a carrier: the payment of the carrier's session that is this event's object
    /// (`None`: the carrier's whole object).
    pub part: Option<String>,
    /// The session's version whose event object this event has (ADR 22): the object is
    /// not in the row but kept by the session's rows (live, [`CommitRows::live`]) or, once
    /// the session moved on, as an older object the store keeps (`None`: in the row or
    /// its carrier's). With it, `part` names the payment of that object the event has.
    pub object_version: Option<i64>,
}

impl EventRow {
    /// The row of `event`, filed under `session_id`.
    pub fn new(event: &Event, session_id: Option<&str>) -> Self {
        Self {
            id: event.id.to_string(),
            session_id: session_id.map(str::to_owned),
            created: millis::to_millis(event.created),
            event_type: event.event_type.as_str().to_owned(),
            body: event.to_json(),
            carrier: None,
            part: None,
            object_version: None,
        }
    }

    /// The rows of one commit's events, filed under `session_id`: the first event of each
    /// object keeps it, the others are thin and name it (see the module docs of
    /// `store::event_rows`).
    pub fn for_commit(events: &[Event], session_id: Option<&str>) -> Vec<Self> {
        super::event_rows::commit_event_rows(events, session_id)
    }
}

/// A whole session as rows (what a new session's commit writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRows {
    /// Its own row.
    pub session: SessionRow,
    /// Every payment, oldest first.
    pub payments: Vec<PaymentRow>,
    /// Every transfer, by key.
    pub transfers: Vec<TransferRow>,
}

/// A commit as rows: what a store writes in its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRows {
    /// The session's new row.
    pub session: SessionRow,
    /// The version the stored row must still have; `None` inserts the row.
    pub expected_version: Option<i64>,
    /// The payments to write (insert or replace): exactly those the commit names.
    pub payments: Vec<PaymentRow>,
    /// The transfers to write (insert or replace): exactly those the commit names. Each
    /// key is claimed for the session; a key another session holds refuses the commit.
    pub transfers: Vec<TransferRow>,
    /// The session's on-chain address, for the address lookup.
    pub address: Option<String>,
    /// The events to append, in order, filed under the session.
    pub events: Vec<EventRow>,
    /// The held transfer to insert apart, if any (see [`Commit::held`]).
    pub held: Option<HeldRow>,
    /// The session's event object as its rows keep it, when the events name it by
    /// version ([`EventRow::object_version`]; only from [`CommitRows::with_live_object`]).
    pub live: Option<LiveObject>,
}

/// A session's event object kept by its rows (ADR 22): its row head with the bodies of
/// the payments `payments` names, in order, listed in place of the head's empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveObject {
    /// The session version the object is of.
    pub version: i64,
    /// The ids of the payments it lists, in order, `,`-separated (a session column).
    pub payments: String,
    /// The object itself, to keep it as a delta against the next one when the session
    /// moves on.
    pub text: String,
}

/// A held transfer as a row: in the transfers table (one key index for every transfer),
/// marked by the time it was held so that the session's load leaves it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    /// The transfer key, as [`TransferRow::key`].
    pub key: String,
    /// The [`HeldTransfer`](crate::session::HeldTransfer)'s JSON.
    pub body: String,
    /// When it was held (Unix milliseconds), never null for a held row.
    pub held_at: i64,
}

impl CommitRows {
    /// The rows of `commit`. An expected version no stored row can have (above
    /// `i64::MAX`) is a [`StoreError::Conflict`] before anything is written.
    pub fn new(commit: &Commit) -> Result<Self, StoreError> {
        let mut rows = Self::without_events(commit)?;
        rows.events = EventRow::for_commit(&commit.events, Some(&rows.session.id));
        Ok(rows)
    }

    /// The rows of `commit` but its events.
    fn without_events(commit: &Commit) -> Result<Self, StoreError> {
        let s = &commit.session;
        let expected_version = match commit.expected_version {
            None => None,
            Some(v) => Some(i64::try_from(v).map_err(|_| StoreError::Conflict)?),
        };
        let mut payments = Vec::with_capacity(commit.payments.len());
        for &id in &commit.payments {
            let p = s
                .payments()
                .iter()
                .rev()
                .find(|p| p.id() == id)
                .ok_or_else(|| unwritable(format!("payment {id} is not in the session")))?;
            payments.push(payment_row(s, p)?);
        }
        let mut transfers = Vec::with_capacity(commit.transfers.len());
        for key in &commit.transfers {
            let t = s
                .transfer(key)
                .ok_or_else(|| unwritable(format!("transfer {key} is not in the session")))?;
            transfers.push(transfer_row(t)?);
        }
        Ok(Self {
            session: session_row(s)?,
            expected_version,
            payments,
            transfers,
            address: s.onchain_address().map(str::to_owned),
            events: Vec::new(),
            held: commit.held.as_ref().map(|h| HeldRow {
                key: h.key.to_string(),
                body: h.to_json(),
                held_at: millis::to_millis(h.seen_at),
            }),
            live: None,
        })
    }

    /// The rows of `commit` for a store that keeps the session's latest event object in
    /// its rows (ADR 22): the object is the row head with the bodies of the session's
    /// newest [`EVENT_PAYMENTS`](crate::session::EVENT_PAYMENTS) payments listed, and the
    /// events whose object is exactly that, or exactly one of those bodies, name it by
    /// version instead of holding it; every payment it lists is written with the commit
    /// (so the rows give it back byte for byte). Without such events, the rows of
    /// [`new`](Self::new).
    pub fn with_live_object(commit: &Commit) -> Result<Self, StoreError> {
        let mut rows = Self::without_events(commit)?;
        let s = &commit.session;
        let all = s.payments();
        let listed = &all[all.len().saturating_sub(crate::session::EVENT_PAYMENTS)..];
        let mut bodies = Vec::with_capacity(listed.len());
        for p in listed {
            let id = p.id().to_string();
            bodies.push(match rows.payments.iter().find(|row| row.id == id) {
                Some(row) => row.clone(),
                None => payment_row(s, p)?,
            });
        }
        let version = rows.session.version;
        let live = super::live_object::listing(
            &rows.session.head,
            bodies.iter().map(|b| (b.id.as_str(), b.body.as_str())),
        )
        .and_then(|(object, listing)| {
            let events = super::event_rows::live_event_rows(
                &commit.events,
                &rows.session.id,
                &object,
                &listing,
                version,
            )?;
            Some((object, listing.ids(), events))
        });
        let Some((text, payments, events)) = live else {
            rows.events = EventRow::for_commit(&commit.events, Some(&rows.session.id));
            return Ok(rows);
        };
        for row in bodies {
            if !rows.payments.iter().any(|p| p.id == row.id) {
                rows.payments.push(row);
            }
        }
        rows.live = Some(LiveObject {
            version,
            payments,
            text,
        });
        rows.events = events;
        Ok(rows)
    }
}

/// A whole session as rows.
pub fn session_rows(session: &CheckoutSession) -> Result<SessionRows, StoreError> {
    let mut transfers: Vec<TransferRow> = session
        .transfers()
        .map(transfer_row)
        .collect::<Result<_, _>>()?;
    transfers.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(SessionRows {
        session: session_row(session)?,
        payments: session
            .payments()
            .iter()
            .map(|p| payment_row(session, p))
            .collect::<Result<_, _>>()?,
        transfers,
    })
}

fn session_row(s: &CheckoutSession) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        id: s.id().to_string(),
        created: millis::to_millis(s.created()),
        status: s.status().as_str(),
        version: i64::try_from(s.version())
            .map_err(|_| unwritable(format!("session {} version out of range", s.id())))?,
        wake_at: s.wake_at().map(millis::to_millis),
        link_id: s.link().map(|l| l.to_string()),
        source_id: s.source_id().map(str::to_owned),
        review: s.has_unresolved_flags(),
        livemode: s.livemode(),
        metadata: metadata_index(s),
        head: s.row_head_json(),
    })
}

/// [`SessionRow::metadata`]: each key with its value's text.
fn metadata_index(s: &CheckoutSession) -> Option<String> {
    let metadata = s.metadata();
    if metadata.is_empty() {
        return None;
    }
    let object: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v.text())))
        .collect();
    Some(serde_json::Value::Object(object).to_string())
}

fn payment_row(s: &CheckoutSession, p: &crate::payment::Payment) -> Result<PaymentRow, StoreError> {
    let body = s
        .payment_json(p.id())
        .ok_or_else(|| unwritable(format!("payment {} cannot be written", p.id())))?;
    Ok(PaymentRow {
        id: p.id().to_string(),
        payment_hash: p
            .request()
            .lightning
            .as_ref()
            .map(|inv| inv.payment_hash.to_string()),
        body,
    })
}

fn transfer_row(t: &Transfer) -> Result<TransferRow, StoreError> {
    let body =
        serde_json::to_string(t).map_err(|e| unwritable(format!("transfer {}: {e}", t.key)))?;
    Ok(TransferRow {
        key: t.key.to_string(),
        body,
    })
}

fn unwritable(message: String) -> StoreError {
    StoreError::Backend {
        message,
        retryable: false,
    }
}

/// Rebuilds a session from its row (`row_id`, `row_version`, `head`), its payment bodies
/// (any order) and its transfer rows (`(key, body)`, any order), checking that the session
/// row holds session `row_id` at `row_version`, that each payment belongs to it and each
/// transfer row holds the transfer its key names.
pub fn decode_session<'a>(
    row_id: &str,
    row_version: i64,
    head: &str,
    payments: impl IntoIterator<Item = &'a str>,
    transfers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<CheckoutSession, StoreError> {
    let row = || format!("session {row_id}");
    let mut decoded = Vec::new();
    for (key, body) in transfers {
        let t: Transfer = serde_json::from_str(body)
            .map_err(|e| Corruption::undecodable(format!("transfer {key}"), e))?;
        let found = t.key.to_string();
        if found != key {
            return Err(Corruption::mismatch(format!("transfer {key}"), "key", key, found).into());
        }
        decoded.push(t);
    }
    let session = CheckoutSession::from_rows(head, payments, decoded)
        .map_err(|reason| Corruption::undecodable(row(), reason))?;
    let found_id = session.id().to_string();
    if found_id != row_id {
        return Err(Corruption::mismatch(row(), "id", row_id, found_id).into());
    }
    if i64::try_from(session.version()).ok() != Some(row_version) {
        let found = session.version().to_string();
        return Err(Corruption::mismatch(row(), "version", row_version.to_string(), found).into());
    }
    Ok(session)
}

/// Reads an outbox row back.
pub fn decode_event(seq: i64, body: &str) -> Result<StoredEvent, StoreError> {
    let row = || format!("event {seq}");
    let seq = u64::try_from(seq)
        .map_err(|_| Corruption::undecodable(row(), "negative sequence number"))?;
    let event = Event::from_json(body).map_err(|e| Corruption::undecodable(row(), e))?;
    Ok(StoredEvent { seq, event })
}

/// An idempotency record as a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRow {
    /// The client's key.
    pub key: String,
    /// The request's canonical JSON.
    pub request: String,
    /// The session it creates.
    pub session_id: String,
    /// When it was claimed, Unix ms.
    pub created: i64,
}

impl IdempotencyRow {
    /// The row of `record` (its time kept to the millisecond).
    pub fn new(record: &IdempotencyRecord) -> Self {
        Self {
            key: record.key.clone(),
            request: record.request.clone(),
            session_id: record.session_id.to_string(),
            created: millis::to_millis(record.created),
        }
    }

    /// The record back.
    pub fn decode(self) -> Result<IdempotencyRecord, StoreError> {
        let row = || format!("idempotency {}", self.key);
        let session_id: SessionId = self
            .session_id
            .parse()
            .map_err(|e| Corruption::undecodable(row(), e))?;
        let created =
            time_from_millis(self.created).map_err(|e| Corruption::undecodable(row(), e))?;
        Ok(IdempotencyRecord {
            key: self.key,
            request: self.request,
            session_id,
            created,
        })
    }
}

/// A link's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    /// The link id (`clink_…` or `plink_…`), the row's key.
    pub id: String,
    /// The version, compared and swapped by every link commit.
    pub version: i64,
    /// Creation time, Unix ms (listing order; never changes).
    pub created: i64,
    /// [`LinkKind::as_str`](super::LinkKind::as_str) of the id (listing filter).
    pub kind: &'static str,
    /// Live (`true`) or test mode, from the link's parameters (listing filter).
    pub livemode: bool,
    /// The link as JSON, read back with [`decode_link`].
    pub body: String,
}

impl LinkRow {
    /// The row of `link`.
    pub fn new(link: &Link) -> Result<Self, StoreError> {
        let id = link.id().to_string();
        let body =
            serde_json::to_string(link).map_err(|e| unwritable(format!("link {id}: {e}")))?;
        Ok(Self {
            version: i64::try_from(link.version())
                .map_err(|_| unwritable(format!("link {id} version out of range")))?,
            created: millis::to_millis(link.created()),
            kind: super::LinkKind::of(link.id()).as_str(),
            livemode: link.params().livemode,
            body,
            id,
        })
    }
}

/// Reads a link row back, checking that it holds the link its key names at its version.
pub fn decode_link(row_id: &str, row_version: i64, body: &str) -> Result<Link, StoreError> {
    let row = || format!("link {row_id}");
    let link: Link = serde_json::from_str(body).map_err(|e| Corruption::undecodable(row(), e))?;
    let found = link.id().to_string();
    if found != row_id {
        return Err(Corruption::mismatch(row(), "id", row_id, found).into());
    }
    if i64::try_from(link.version()).ok() != Some(row_version) {
        let found = link.version().to_string();
        return Err(Corruption::mismatch(row(), "version", row_version.to_string(), found).into());
    }
    Ok(link)
}

/// A session id read from a lookup or listing row.
pub fn decode_session_id(text: &str) -> Result<SessionId, StoreError> {
    text.parse()
        .map_err(|e| Corruption::undecodable(format!("session id {text:?}"), e).into())
}

/// A time from Unix milliseconds, as rows keep it.
pub fn time_from_millis(ms: i64) -> Result<OffsetDateTime, String> {
    millis::from_millis(ms)
}

/// Reads a held transfer's row back, checking that it holds the transfer its key names.
pub fn held_from_row(key: &str, body: &str) -> Result<crate::session::HeldTransfer, StoreError> {
    let row = || format!("held transfer {key}");
    let held = crate::session::HeldTransfer::from_json(body)
        .map_err(|e| Corruption::undecodable(row(), e))?;
    let found = held.key.to_string();
    if found != key {
        return Err(Corruption::mismatch(row(), "key", key, found).into());
    }
    Ok(held)
}
