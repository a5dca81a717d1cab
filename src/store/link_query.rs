//! Which links to list: [`LinkListQuery`], its filters and its page, [`LinkPage`].

#[cfg(doc)]
use super::query::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use super::query::{ListQueryError, page_size};
use crate::id::LinkId;
use crate::link::Link;

/// The two kinds of link: a checkout link (`clink_…`, one session) or a payment link
/// (`plink_…`, a new session per open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A checkout link: one session.
    Checkout,
    /// A payment link: a session per open.
    Payment,
}

impl LinkKind {
    /// The kind of the link with this id.
    pub fn of(id: LinkId) -> Self {
        match id {
            LinkId::Checkout(_) => Self::Checkout,
            LinkId::Payment(_) => Self::Payment,
        }
    }

    /// `checkout` or `payment`, as the SQL stores keep it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checkout => "checkout",
            Self::Payment => "payment",
        }
    }
}

/// Which links to list, newest first (by [`Link::created`], then id). Every filter given
/// must hold; build it with the setters:
///
/// ```
/// use bitcoin_checkout::store::{LinkKind, LinkListQuery};
///
/// // The live payment links, 20 a page.
/// let query = LinkListQuery::new()
///     .kind(LinkKind::Payment)
///     .livemode(true)
///     .limit(20);
/// assert_eq!(query.page_size(), Ok(20));
/// assert!(LinkListQuery::new().limit(0).page_size().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LinkListQuery {
    /// Only links of this kind.
    pub kind: Option<LinkKind>,
    /// Only links of this mode: live (`true`) or test (`false`), as the link's
    /// parameters say (`link.params().livemode`).
    pub livemode: Option<bool>,
    /// At most this many (1 to [`MAX_LIST_LIMIT`]; default [`DEFAULT_LIST_LIMIT`]).
    pub limit: Option<usize>,
    /// Links older than this one (the next page).
    pub starting_after: Option<LinkId>,
    /// Links newer than this one (the previous page).
    pub ending_before: Option<LinkId>,
}

impl LinkListQuery {
    /// All links, [`DEFAULT_LIST_LIMIT`] a page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only links of this kind.
    pub fn kind(mut self, kind: LinkKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only live links (`true`) or only test links (`false`).
    pub fn livemode(mut self, live: bool) -> Self {
        self.livemode = Some(live);
        self
    }

    /// At most `limit` links a page (1 to [`MAX_LIST_LIMIT`]; others are refused).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page after `cursor`: links older than it.
    pub fn starting_after(mut self, cursor: LinkId) -> Self {
        self.starting_after = Some(cursor);
        self
    }

    /// The page before `cursor`: links newer than it.
    pub fn ending_before(mut self, cursor: LinkId) -> Self {
        self.ending_before = Some(cursor);
        self
    }

    /// The page size, or why the query cannot be answered (both cursors, a limit out of
    /// range), by the rule of [`ListQuery::page_size`](super::ListQuery::page_size).
    /// Stores call it first and refuse with
    /// [`StoreError::InvalidQuery`](super::StoreError::InvalidQuery).
    pub fn page_size(&self) -> Result<usize, ListQueryError> {
        page_size(
            self.limit,
            self.starting_after.is_some() && self.ending_before.is_some(),
        )
    }

    /// Whether `link` passes every filter (cursors and limit aside).
    pub fn matches(&self, link: &Link) -> bool {
        self.kind.is_none_or(|k| LinkKind::of(link.id()) == k)
            && self.livemode.is_none_or(|l| link.params().livemode == l)
    }
}

/// One page of a link listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPage {
    /// The links on this page, newest first.
    pub data: Vec<Link>,
    /// Whether more links lie beyond this page in the direction of travel.
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{CheckoutLinkId, PaymentLinkId};
    use crate::money::Currency;
    use crate::session::SessionParams;
    use rust_decimal::Decimal;
    use time::OffsetDateTime;

    #[test]
    fn matches_is_every_filter() {
        let usd = Currency::from_code("USD").expect("USD");
        let params = SessionParams::new(Decimal::ONE, usd).livemode(true);
        let id = LinkId::Payment(PaymentLinkId::generate());
        let (link, _) = Link::create(id, params, None, OffsetDateTime::UNIX_EPOCH).expect("link");
        for (query, want) in [
            (LinkListQuery::new(), true),
            (LinkListQuery::new().kind(LinkKind::Payment), true),
            (LinkListQuery::new().kind(LinkKind::Checkout), false),
            (LinkListQuery::new().livemode(true), true),
            (LinkListQuery::new().livemode(false), false),
            (
                LinkListQuery::new().kind(LinkKind::Payment).livemode(true),
                true,
            ),
        ] {
            assert_eq!(query.matches(&link), want, "{query:?}");
        }
        assert_eq!(
            LinkKind::of(LinkId::Checkout(CheckoutLinkId::generate())),
            LinkKind::Checkout
        );
        let both = LinkListQuery::new().starting_after(id).ending_before(id);
        assert_eq!(both.page_size(), Err(ListQueryError::ConflictingCursors));
    }
}
