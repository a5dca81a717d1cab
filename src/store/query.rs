//! Which sessions to list: [`ListQuery`], its filters and its refusals.

use time::OffsetDateTime;

use crate::id::SessionId;
use crate::json::millis::truncate;
use crate::session::{CheckoutSession, SessionStatus};

/// Most sessions one page holds.
pub const MAX_LIST_LIMIT: usize = 100;

/// Sessions on a page when the query names no limit.
pub const DEFAULT_LIST_LIMIT: usize = 10;

/// Which sessions to list, newest first (by creation time, then id). Every filter given
/// must hold; build it with the setters:
///
/// ```
/// use bitcoin_checkout::store::ListQuery;
/// use bitcoin_checkout::{OffsetDateTime, SessionStatus};
///
/// // The paid sessions of order 1001 created since the start of 2026, 20 a page.
/// let since = OffsetDateTime::from_unix_timestamp(1_767_225_600)?;
/// let query = ListQuery::new()
///     .status(SessionStatus::Paid)
///     .metadata("order", "1001")
///     .created_gte(since)
///     .limit(20);
/// assert_eq!(query.page_size(), Ok(20));
/// assert!(ListQuery::new().limit(0).page_size().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ListQuery {
    /// Only sessions with this status.
    pub status: Option<SessionStatus>,
    /// At most this many (1 to [`MAX_LIST_LIMIT`]; default [`DEFAULT_LIST_LIMIT`]).
    pub limit: Option<usize>,
    /// Sessions older than this one (the next page).
    pub starting_after: Option<SessionId>,
    /// Sessions newer than this one (the previous page).
    pub ending_before: Option<SessionId>,
    /// Only sessions created with this `source_id`.
    pub source_id: Option<String>,
    /// Only sessions whose metadata has this key with a value written as this text
    /// (`"1001"` finds both `"order": "1001"` and `"order": 1001`).
    pub metadata: Option<(String, String)>,
    /// Only sessions created at or after this time (whole milliseconds: the part below a
    /// millisecond is ignored).
    pub created_gte: Option<OffsetDateTime>,
    /// Only sessions created before this time (whole milliseconds: the part below a
    /// millisecond is ignored).
    pub created_lt: Option<OffsetDateTime>,
    /// Only sessions with flagged money no resolution covers yet (the merchant's review
    /// queue, ADR 9).
    pub unresolved_flags: bool,
    /// Only sessions of this mode: live (`true`) or test (`false`), as
    /// [`CheckoutSession::livemode`] says.
    pub livemode: Option<bool>,
}

/// Why a [`ListQuery`] was refused: it asks for something no page can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListQueryError {
    /// Both `starting_after` and `ending_before`: a page lies on one side of one cursor.
    #[error("starting_after and ending_before cannot be used together")]
    ConflictingCursors,
    /// A limit of 0 or above [`MAX_LIST_LIMIT`].
    #[error("limit must be 1 to {max}, not {limit}")]
    LimitOutOfRange {
        /// The limit asked for.
        limit: usize,
        /// The largest allowed.
        max: usize,
    },
}

/// The page size of a listing with `limit` (and both cursors, if `both_cursors`), or
/// why there is none: the one rule of every listing.
pub(super) fn page_size(limit: Option<usize>, both_cursors: bool) -> Result<usize, ListQueryError> {
    if both_cursors {
        return Err(ListQueryError::ConflictingCursors);
    }
    match limit {
        None => Ok(DEFAULT_LIST_LIMIT),
        Some(limit @ 1..=MAX_LIST_LIMIT) => Ok(limit),
        Some(limit) => Err(ListQueryError::LimitOutOfRange {
            limit,
            max: MAX_LIST_LIMIT,
        }),
    }
}

impl ListQuery {
    /// All sessions, [`DEFAULT_LIST_LIMIT`] a page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only sessions with this status.
    pub fn status(mut self, status: SessionStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// At most `limit` sessions a page (1 to [`MAX_LIST_LIMIT`]; others are refused).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page after `cursor`: sessions older than it.
    pub fn starting_after(mut self, cursor: SessionId) -> Self {
        self.starting_after = Some(cursor);
        self
    }

    /// The page before `cursor`: sessions newer than it.
    pub fn ending_before(mut self, cursor: SessionId) -> Self {
        self.ending_before = Some(cursor);
        self
    }

    /// Only sessions created with this `source_id`.
    pub fn source_id(mut self, source_id: impl Into<String>) -> Self {
        self.source_id = Some(source_id.into());
        self
    }

    /// Only sessions whose metadata has `key` with a value written as `value` (a string's
    /// text, a number as written, `true` or `false`).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata = Some((key.into(), value.into()));
        self
    }

    /// Only sessions created at or after `at`.
    pub fn created_gte(mut self, at: OffsetDateTime) -> Self {
        self.created_gte = Some(at);
        self
    }

    /// Only sessions created before `at`.
    pub fn created_lt(mut self, at: OffsetDateTime) -> Self {
        self.created_lt = Some(at);
        self
    }

    /// Only live sessions (`true`) or only test sessions (`false`).
    pub fn livemode(mut self, live: bool) -> Self {
        self.livemode = Some(live);
        self
    }

    /// The page size, or why the query cannot be answered (both cursors, a limit out of
    /// range). Stores call it first and refuse with
    /// [`StoreError::InvalidQuery`](super::StoreError::InvalidQuery).
    pub fn page_size(&self) -> Result<usize, ListQueryError> {
        page_size(
            self.limit,
            self.starting_after.is_some() && self.ending_before.is_some(),
        )
    }

    /// Only sessions with unresolved flags ([`CheckoutSession::has_unresolved_flags`]).
    pub fn unresolved_flags(mut self) -> Self {
        self.unresolved_flags = true;
        self
    }

    /// Whether `session` passes every filter (cursors and limit aside): the definition
    /// the stores' indexes implement, and what a store without them may check.
    pub fn matches(&self, session: &CheckoutSession) -> bool {
        let created = session.created();
        self.status.is_none_or(|s| session.status() == s)
            && self
                .source_id
                .as_deref()
                .is_none_or(|id| session.source_id() == Some(id))
            && self.metadata.as_ref().is_none_or(|(key, value)| {
                session
                    .metadata()
                    .get(key)
                    .is_some_and(|v| v.text() == value)
            })
            // Bounds count in whole milliseconds, as stores keep times.
            && self.created_gte.is_none_or(|t| created >= truncate(t))
            && self.created_lt.is_none_or(|t| created < truncate(t))
            && (!self.unresolved_flags || session.has_unresolved_flags())
            && self.livemode.is_none_or(|live| session.livemode() == live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Metadata, MetadataValue};
    use crate::money::Currency;
    use crate::session::SessionParams;
    use rust_decimal::Decimal;
    use time::Duration;

    #[test]
    fn matches_is_every_filter_with_bounds_in_whole_milliseconds() {
        let usd = Currency::from_code("USD").expect("USD");
        let at = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let metadata =
            Metadata::from_pairs([("order", MetadataValue::from(1001))]).expect("metadata");
        let params = SessionParams::new(Decimal::ONE, usd)
            .source("shop", "wc_1")
            .metadata(metadata);
        let (s, _) = CheckoutSession::create(SessionId::generate(), params, at).expect("session");
        let half_ms = Duration::microseconds(500);
        for (query, want) in [
            (ListQuery::new(), true),
            (
                ListQuery::new().source_id("wc_1").metadata("order", "1001"),
                true,
            ),
            (ListQuery::new().source_id("wc_2"), false),
            (ListQuery::new().metadata("order", "1002"), false),
            (ListQuery::new().metadata("cart", "1001"), false),
            (ListQuery::new().status(SessionStatus::Paid), false),
            (ListQuery::new().livemode(false), true),
            (ListQuery::new().livemode(true), false),
            (ListQuery::new().created_gte(at + half_ms), true),
            (ListQuery::new().created_lt(at + half_ms), false),
            (
                ListQuery::new()
                    .created_gte(at)
                    .created_lt(at + Duration::milliseconds(1)),
                true,
            ),
        ] {
            assert_eq!(query.matches(&s), want, "{query:?}");
        }
    }
}
