//! The link listing check: [`LinkStore::list_links`], newest first with its filters, its
//! cursors and its refusals.

use time::{Duration, OffsetDateTime};

use super::fixtures::{Ck, dollars, t0, usd};
use super::links::link_events;
use crate::id::{CheckoutLinkId, PaymentLinkId};
use crate::link::{Link, LinkId};
use crate::session::SessionParams;
use crate::store::{
    LinkCommit, LinkKind, LinkListQuery, LinkPage, LinkStore, ListQueryError, MAX_LIST_LIMIT,
    StoreError,
};

impl<S: LinkStore> Ck<'_, S> {
    #[track_caller]
    fn list_links(&self, query: &LinkListQuery) -> LinkPage {
        self.ok("list_links", self.store.list_links(query))
    }
}

fn link_ids(links: &[Link]) -> Vec<LinkId> {
    links.iter().map(Link::id).collect()
}

/// A new link of the kind and mode, created at `now`, with its creation events.
fn link_of(kind: LinkKind, live: bool, now: OffsetDateTime) -> (Link, Vec<crate::Event>) {
    let id = match kind {
        LinkKind::Checkout => LinkId::Checkout(CheckoutLinkId::generate()),
        LinkKind::Payment => LinkId::Payment(PaymentLinkId::generate()),
    };
    let params = SessionParams::new(dollars(800), usd()).livemode(live);
    let (link, events) = Link::create(id, params, None, now).expect("core: link");
    let events = link_events(&link, &events);
    (link, events)
}

/// Walks `query` forward in pages of `limit` until `mine` (the newest matching links,
/// newest first) is covered, checking each page, its `has_more` (with `older` telling
/// whether a matching link older than `mine` is stored) and each page walked back with
/// `ending_before`.
fn walk<S: LinkStore>(
    ck: &Ck<'_, S>,
    what: &str,
    query: &LinkListQuery,
    limit: usize,
    mine: &[Link],
    older: bool,
) {
    let mut q = query.clone().limit(limit);
    let mut start = 0;
    let mut pages = Vec::new();
    while start < mine.len() {
        let page = ck.list_links(&q);
        let end = (start + limit).min(mine.len());
        ck.eq(
            &format!("{what}: page from {start}"),
            link_ids(&page.data[..page.data.len().min(end - start)]),
            link_ids(&mine[start..end]),
        );
        ck.eq(
            &format!("{what}: page from {start} (links)"),
            page.data.get(..end - start).map(<[Link]>::to_vec),
            Some(mine[start..end].to_vec()),
        );
        // A page holds only these links when it is full or nothing older matches.
        if end - start == limit || !older {
            ck.eq(
                &format!("{what}: page from {start}: has_more"),
                page.has_more,
                end < mine.len() || older,
            );
        }
        if !older {
            ck.eq(
                &format!("{what}: page from {start}: length"),
                page.data.len(),
                end - start,
            );
        }
        pages.push(start..end);
        start = end;
        q.starting_after = mine.get(end - 1).map(Link::id);
    }
    for range in pages.iter().skip(1) {
        let mut back = query.clone().limit(limit);
        back.ending_before = Some(mine[range.start].id());
        let page = ck.list_links(&back);
        let from = range.start.saturating_sub(limit);
        ck.eq(
            &format!("{what}: the page before {}", range.start),
            link_ids(&page.data),
            link_ids(&mine[from..range.start]),
        );
        ck.eq(
            &format!("{what}: the page before {}: has_more", range.start),
            page.has_more,
            from > 0,
        );
    }
}

/// `list_links`: newest first (creation time, then id: two links share a time), as
/// `load_link` returns them (after an open or a deactivation too); the default page of 10
/// and pages both ways with the right `has_more`; the kind and mode filters, alone and
/// together; a cursor of another kind than the filter still marks its position; unknown
/// cursors give empty pages; both cursors or a limit out of range are refused.
pub fn check_list_links<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_list_links", store);
    // Newer than every stored link, so that these are the first pages.
    let newest = ck.list_links(&LinkListQuery::new().limit(1));
    let base = newest.data.first().map_or(t0(), Link::created) + Duration::days(1);
    const N: usize = 14;
    let mut links = Vec::with_capacity(N);
    for i in 0..N {
        let kind = if i % 2 == 0 {
            LinkKind::Payment
        } else {
            LinkKind::Checkout
        };
        let offset = i64::try_from(i).unwrap_or(0) - i64::from(i == 7);
        let (link, events) = link_of(kind, i % 3 == 0, base + Duration::seconds(offset));
        ck.insert_link(&link, events);
        links.push(link);
    }
    // A link opened and one deactivated keep their places, as they are now.
    let opened = &mut links[4];
    ck.open_link(opened, base + Duration::seconds(30));
    let expected_version = links[9].version();
    let change = links[9]
        .deactivate(base + Duration::seconds(31))
        .expect("core: deactivate");
    let commit = LinkCommit {
        events: link_events(&links[9], &change),
        link: links[9].clone(),
        expected_version: Some(expected_version),
        sessions: Vec::new(),
    };
    ck.ok("commit_link (deactivate)", store.commit_link(&commit));
    for link in &links {
        ck.eq(
            "fixture: stored",
            ck.load_link(link.id()),
            Some(link.clone()),
        );
    }
    let mut expected = links;
    expected.sort_by_key(|l| std::cmp::Reverse((l.created(), l.id())));

    let page = ck.list_links(&LinkListQuery::new());
    ck.eq("default page", page.data, expected[..10].to_vec());
    ck.that(page.has_more, "default page: has_more");
    let older = |query: &LinkListQuery, last: &Link| {
        let q = query.clone().limit(1).starting_after(last.id());
        !ck.list_links(&q).data.is_empty()
    };
    let all = LinkListQuery::new();
    let older_all = older(&all, &expected[N - 1]);
    for limit in [1, 3, 7, N] {
        walk(
            &ck,
            &format!("all, {limit} a page"),
            &all,
            limit,
            &expected,
            older_all,
        );
    }
    let page = ck.list_links(&all.clone().ending_before(expected[0].id()));
    ck.eq("page before the newest", page.data.len(), 0);
    ck.that(!page.has_more, "page before the newest: has_more");

    let kinds = [None, Some(LinkKind::Checkout), Some(LinkKind::Payment)];
    for kind in kinds {
        for live in [None, Some(true), Some(false)] {
            let mut query = LinkListQuery::new();
            query.kind = kind;
            query.livemode = live;
            let mine: Vec<Link> = expected
                .iter()
                .filter(|l| {
                    kind.is_none_or(|k| LinkKind::of(l.id()) == k)
                        && live.is_none_or(|m| l.params().livemode == m)
                })
                .cloned()
                .collect();
            ck.that(!mine.is_empty(), format!("fixture: links for {query:?}"));
            ck.that(
                expected
                    .iter()
                    .all(|l| query.matches(l) == mine.contains(l)),
                format!("{query:?}: LinkListQuery::matches"),
            );
            let Some(last) = mine.last() else { continue };
            let older = older(&query, last);
            walk(&ck, &format!("{query:?}"), &query, 2, &mine, older);
        }
    }

    // A cursor of another kind than the filter marks its position.
    let checkout = expected
        .iter()
        .position(|l| LinkKind::of(l.id()) == LinkKind::Checkout)
        .unwrap_or(0);
    let want: Vec<LinkId> = expected[checkout + 1..]
        .iter()
        .filter(|l| LinkKind::of(l.id()) == LinkKind::Payment)
        .take(3)
        .map(Link::id)
        .collect();
    let q = LinkListQuery::new()
        .kind(LinkKind::Payment)
        .limit(3)
        .starting_after(expected[checkout].id());
    ck.eq(
        "payment links older than a checkout link",
        link_ids(&ck.list_links(&q).data),
        want,
    );

    for q in [
        LinkListQuery::new().starting_after(LinkId::Checkout(CheckoutLinkId::generate())),
        LinkListQuery::new().ending_before(LinkId::Payment(PaymentLinkId::generate())),
        LinkListQuery::new()
            .kind(LinkKind::Payment)
            .starting_after(LinkId::Payment(PaymentLinkId::generate())),
    ] {
        let page = ck.list_links(&q);
        ck.eq(&format!("{q:?}: data"), page.data.len(), 0);
        ck.that(!page.has_more, format!("{q:?}: has_more"));
    }

    let id = expected[0].id();
    ck.eq(
        "both cursors",
        store
            .list_links(&LinkListQuery::new().starting_after(id).ending_before(id))
            .map(|p| p.data.len()),
        Err(StoreError::InvalidQuery(ListQueryError::ConflictingCursors)),
    );
    for limit in [0, MAX_LIST_LIMIT + 1, usize::MAX] {
        ck.eq(
            &format!("limit {limit}"),
            store
                .list_links(&LinkListQuery::new().limit(limit))
                .map(|p| p.data.len()),
            Err(StoreError::InvalidQuery(ListQueryError::LimitOutOfRange {
                limit,
                max: MAX_LIST_LIMIT,
            })),
        );
    }
    for limit in [1, MAX_LIST_LIMIT] {
        ck.that(
            store.list_links(&LinkListQuery::new().limit(limit)).is_ok(),
            format!("limit {limit} is accepted"),
        );
    }
}
