//! Checks of the listing filters and refusals: by `source_id`, by a metadata key and
//! value, by creation time range, by unresolved flags, and queries no page can answer.

use time::Duration;

use super::fixtures::{Ck, Draft, dollars, ids, usd};
use crate::id::SessionId;
use crate::metadata::{Metadata, MetadataPatch};
use crate::money::Msats;
use crate::session::{
    CheckoutSession, FlagKind, FlagResolution, SessionParams, SessionStatus, SessionUpdate,
};
use crate::store::{ListQuery, ListQueryError, MAX_LIST_LIMIT, Store, StoreError};
use crate::transfer::TransferReport;

/// A creation time after every session already stored, so the sessions made from it are
/// the newest.
fn after_everything<S: Store>(ck: &Ck<'_, S>) -> time::OffsetDateTime {
    let newest = ck.list(ListQuery::new().limit(1));
    newest
        .data
        .first()
        .map_or(super::fixtures::t0(), CheckoutSession::created)
        + Duration::days(1)
}

/// A value no other check or run uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", SessionId::generate())
}

/// Every page of `query`, walked forward with `starting_after` in pages of `limit`, and
/// checked to come back the same walked backward with `ending_before`.
fn walk<S: Store>(ck: &Ck<'_, S>, what: &str, query: &ListQuery, limit: usize) -> Vec<SessionId> {
    let mut pages: Vec<Vec<SessionId>> = Vec::new();
    let mut q = query.clone().limit(limit);
    loop {
        let page = ck.list(q.clone());
        ck.that(
            page.data.len() <= limit,
            format!("{what}: page longer than {limit}"),
        );
        let Some(last) = page.data.last().map(CheckoutSession::id) else {
            break;
        };
        pages.push(ids(&page.data));
        if !page.has_more {
            break;
        }
        q.starting_after = Some(last);
    }
    // Back from the last page: each previous page is the one before its first session.
    for i in (1..pages.len()).rev() {
        let mut back = query.clone().limit(limit);
        back.ending_before = pages[i].first().copied();
        let page = ck.list(back);
        ck.eq(
            &format!("{what}: page {i} walked back"),
            ids(&page.data),
            pages[i - 1].clone(),
        );
    }
    pages.concat()
}

/// `source_id`: only the sessions created with it, newest first, paged both ways, with
/// the status filter and the creation range applied on top.
pub fn check_list_by_source_id<S: Store>(store: &S) {
    let ck = Ck::new("check_list_by_source_id", store);
    let base = after_everything(&ck);
    let (mine, other) = (unique("order"), unique("order"));
    let mut expected = Vec::new();
    for i in 0..7i64 {
        let source_id = if i % 3 == 2 { &other } else { &mine };
        let params = SessionParams::new(dollars(100 + i), usd()).source("shop", source_id.as_str());
        let mut d = Draft::new(params, base + Duration::seconds(i));
        if i == 1 {
            d.pay(base + Duration::seconds(i));
        }
        ck.commit(&mut d);
        if source_id == &mine {
            expected.push(d.session);
        }
    }
    expected.reverse();
    let by = ListQuery::new().source_id(mine.as_str());
    ck.eq(
        "by source_id",
        ids(&ck.list(by.clone()).data),
        ids(&expected),
    );
    ck.eq(
        "by source_id (sessions)",
        ck.list(by.clone()).data,
        expected.clone(),
    );
    ck.eq(
        "by source_id, paged",
        walk(&ck, "by source_id", &by, 2),
        ids(&expected),
    );
    let paid: Vec<_> = expected
        .iter()
        .filter(|s| s.status() == SessionStatus::Paid)
        .cloned()
        .collect();
    ck.eq(
        "by source_id and status",
        ids(&ck.list(by.clone().status(SessionStatus::Paid)).data),
        ids(&paid),
    );
    let since = base + Duration::seconds(3);
    let recent: Vec<_> = expected
        .iter()
        .filter(|s| s.created() >= since)
        .cloned()
        .collect();
    ck.eq(
        "by source_id since a time",
        ids(&ck.list(by.clone().created_gte(since)).data),
        ids(&recent),
    );
    ck.eq(
        "an unknown source_id",
        ck.list(ListQuery::new().source_id(unique("none")))
            .data
            .len(),
        0,
    );
}

/// A metadata key and value: the sessions whose metadata has the key with that value as
/// text (a number as written), following updates that set, change or remove it.
pub fn check_list_by_metadata<S: Store>(store: &S) {
    let ck = Ck::new("check_list_by_metadata", store);
    let base = after_everything(&ck);
    let order = unique("1001");
    let with = |pairs: Vec<(&str, crate::metadata::MetadataValue)>| {
        Metadata::from_pairs(pairs).expect("fixture metadata")
    };
    let at = |i: i64| base + Duration::seconds(i);
    let params = |metadata: Metadata| SessionParams::new(dollars(500), usd()).metadata(metadata);
    // a: the order as a string; b: the same key, another order; c: the order under
    // another key; d: no metadata, given the order by an update; e: a number value.
    let mut a = Draft::new(
        params(with(vec![
            ("order", order.as_str().into()),
            ("tier", "gold".into()),
        ])),
        at(0),
    );
    let mut b = Draft::new(params(with(vec![("order", unique("9").into())])), at(1));
    let mut c = Draft::new(params(with(vec![("cart", order.as_str().into())])), at(2));
    let mut d = Draft::new(SessionParams::new(dollars(500), usd()), at(3));
    let number = i64::from(u32::from_be_bytes(
        SessionId::generate().as_uuid().as_bytes()[..4]
            .try_into()
            .unwrap_or([1; 4]),
    ));
    let mut e = Draft::new(params(with(vec![("order_no", number.into())])), at(4));
    for draft in [&mut a, &mut b, &mut c, &mut d, &mut e] {
        ck.commit(draft);
    }
    let by = |key: &str, value: &str| ids(&ck.list(ListQuery::new().metadata(key, value)).data);
    ck.eq("by metadata", by("order", &order), vec![a.id()]);
    ck.eq(
        "by metadata (sessions)",
        ck.list(ListQuery::new().metadata("order", order.as_str()))
            .data,
        vec![a.session.clone()],
    );
    ck.eq(
        "by a number's text",
        by("order_no", &number.to_string()),
        vec![e.id()],
    );
    ck.eq("by an unknown value", by("order", &unique("none")), vec![]);
    ck.eq("by another key", by("tier", "gold").contains(&a.id()), true);

    // An update gives d the order; then a loses it: the lookup follows both.
    d.update(
        &SessionUpdate::new().metadata(MetadataPatch::new().set("order", order.as_str())),
        at(5),
    );
    ck.commit(&mut d);
    ck.eq(
        "after an update sets it",
        by("order", &order),
        vec![d.id(), a.id()],
    );
    ck.eq(
        "paged",
        walk(
            &ck,
            "by metadata",
            &ListQuery::new().metadata("order", order.as_str()),
            1,
        ),
        vec![d.id(), a.id()],
    );
    a.update(
        &SessionUpdate::new().metadata(MetadataPatch::new().remove("order")),
        at(6),
    );
    ck.commit(&mut a);
    ck.eq(
        "after an update removes it",
        by("order", &order),
        vec![d.id()],
    );
    ck.eq(
        "the other keys stay",
        by("tier", "gold").contains(&a.id()),
        true,
    );
    // Commits that leave the metadata alone keep it found.
    d.deactivate(at(7));
    ck.commit(&mut d);
    ck.eq("after another change", by("order", &order), vec![d.id()]);
    ck.eq(
        "with the status filter",
        ids(&ck
            .list(
                ListQuery::new()
                    .metadata("order", order.as_str())
                    .status(SessionStatus::Active),
            )
            .data),
        vec![],
    );
}

/// A creation time range: `created_gte` includes its bound, `created_lt` excludes its
/// own, both together and with paging; an empty range is an empty page.
pub fn check_list_by_created<S: Store>(store: &S) {
    let ck = Ck::new("check_list_by_created", store);
    let base = after_everything(&ck);
    let mut all = Vec::new();
    for i in 0..6i64 {
        let mut d = Draft::new(
            SessionParams::new(dollars(100 + i), usd()),
            base + Duration::seconds(i),
        );
        ck.commit(&mut d);
        all.push(d.session);
    }
    all.reverse();
    let between = |gte: i64, lt: i64| {
        ListQuery::new()
            .created_gte(base + Duration::seconds(gte))
            .created_lt(base + Duration::seconds(lt))
    };
    let want = |range: std::ops::Range<i64>| {
        all.iter()
            .filter(|s| range.contains(&(s.created() - base).whole_seconds()))
            .map(CheckoutSession::id)
            .collect::<Vec<_>>()
    };
    ck.eq("gte 1, lt 4", ids(&ck.list(between(1, 4)).data), want(1..4));
    ck.eq(
        "paged",
        walk(&ck, "gte 1, lt 5", &between(1, 5), 2),
        want(1..5),
    );
    ck.eq(
        "gte only",
        ids(&ck
            .list(ListQuery::new().created_gte(base + Duration::seconds(4)))
            .data),
        want(4..6),
    );
    let before = ck.list(
        ListQuery::new()
            .created_lt(base + Duration::seconds(2))
            .limit(2),
    );
    ck.eq(
        "lt only: the newest before the bound",
        ids(&before.data),
        want(0..2),
    );
    ck.eq("an empty range", ck.list(between(3, 3)).data.len(), 0);
    ck.eq("a reversed range", ck.list(between(4, 1)).data.len(), 0);
    // A cursor outside the range: the range still bounds the page.
    let mut q = between(1, 3);
    q.starting_after = Some(all[0].id());
    ck.eq("cursor above the range", ids(&ck.list(q).data), want(1..3));
}

/// Queries no page can answer are refused with [`StoreError::InvalidQuery`], naming the
/// problem: both cursors at once, a limit of 0 or above [`MAX_LIST_LIMIT`]. The limits at
/// the edges are accepted.
pub fn check_list_refusals<S: Store>(store: &S) {
    let ck = Ck::new("check_list_refusals", store);
    let id = SessionId::generate();
    let both = ListQuery::new().starting_after(id).ending_before(id);
    ck.eq(
        "both cursors",
        store.list(&both).map(|p| p.data.len()),
        Err(StoreError::InvalidQuery(ListQueryError::ConflictingCursors)),
    );
    for limit in [0, MAX_LIST_LIMIT + 1, usize::MAX] {
        ck.eq(
            &format!("limit {limit}"),
            store
                .list(&ListQuery::new().limit(limit))
                .map(|p| p.data.len()),
            Err(StoreError::InvalidQuery(ListQueryError::LimitOutOfRange {
                limit,
                max: MAX_LIST_LIMIT,
            })),
        );
    }
    for limit in [1, MAX_LIST_LIMIT] {
        ck.that(
            store.list(&ListQuery::new().limit(limit)).is_ok(),
            format!("limit {limit} is accepted"),
        );
    }
}

/// The review queue (`ListQuery::unresolved_flags`): sessions with flagged money no
/// resolution covers, newest first; a session leaves it when a commit resolves the rest
/// and is back when new flagged money arrives.
pub fn check_list_with_unresolved_flags<S: Store>(store: &S) {
    let ck = Ck::new("check_list_with_unresolved_flags", store);
    let base = after_everything(&ck);
    let at = |secs: i64| base + Duration::seconds(secs);
    let draft = |secs: i64| Draft::new(SessionParams::new(dollars(10), usd()), at(secs));
    // Paid exactly: nothing flagged.
    let mut exact = draft(0);
    exact.pay(at(1));
    // Overpaid by a tenth.
    let mut over = draft(2);
    let report = TransferReport::lightning(
        over.open_hash(),
        Msats::new(over.open_msats().get() * 11 / 10),
    );
    over.record(report, at(3));
    // Partly paid, then deactivated: refund due.
    let mut gone = draft(4);
    let part = TransferReport::lightning(gone.open_hash(), Msats::new(gone.open_msats().get() / 4));
    gone.record(part, at(5));
    gone.deactivate(at(6));
    for d in [&mut exact, &mut over, &mut gone] {
        ck.commit(d);
    }
    let queue = || {
        ids(&ck
            .list(ListQuery::new().unresolved_flags().created_gte(base))
            .data)
    };
    ck.eq("the queue", queue(), vec![gone.id(), over.id()]);
    // The overpayment refunded: it leaves the queue.
    let flagged = over.session.unresolved(FlagKind::Overpaid);
    let refund = FlagResolution::refunded(FlagKind::Overpaid, flagged, "re_conformance");
    let change = over
        .session
        .resolve_flag(&refund, at(7))
        .expect("core: resolve");
    over.wrap(change);
    ck.commit(&mut over);
    ck.eq("after the refund", queue(), vec![gone.id()]);
    ck.eq(
        "with another filter",
        ids(&ck
            .list(
                ListQuery::new()
                    .unresolved_flags()
                    .status(SessionStatus::Active)
                    .created_gte(base),
            )
            .data),
        vec![],
    );
}

/// The mode filter (`ListQuery::livemode`): only live or only test sessions, newest first,
/// paged both ways, together with each other filter (status, `source_id`, metadata,
/// creation range); a cursor of the other mode still marks its position, and a session
/// keeps its mode through later commits.
pub fn check_list_livemode<S: Store>(store: &S) {
    let ck = Ck::new("check_list_livemode", store);
    let base = after_everything(&ck);
    let (source, tag) = (unique("mode"), unique("run"));
    let mut all = Vec::new();
    for i in 0..9i64 {
        let live = i % 3 != 1;
        let metadata = Metadata::from_pairs([("run", tag.as_str())]).expect("metadata");
        let params = SessionParams::new(dollars(100 + i), usd())
            .livemode(live)
            .source("shop", source.as_str())
            .metadata(metadata);
        let mut d = Draft::new(params, base + Duration::seconds(i));
        if i % 4 == 0 {
            d.pay(base + Duration::seconds(i));
        }
        ck.commit(&mut d);
        ck.eq("fixture: the mode", d.session.livemode(), live);
        all.push(d.session);
    }
    all.reverse();
    let ours = ListQuery::new().created_gte(base);
    ck.eq(
        "without the filter: both modes",
        ids(&ck.list(ours.clone().limit(9)).data),
        ids(&all),
    );
    for live in [true, false] {
        let what = |s: &str| format!("livemode {live}: {s}");
        let mine: Vec<CheckoutSession> = all
            .iter()
            .filter(|s| s.livemode() == live)
            .cloned()
            .collect();
        let q = ours.clone().livemode(live);
        let page = ck.list(q.clone());
        ck.eq(&what("sessions"), page.data, mine.clone());
        ck.that(!page.has_more, what("has_more"));
        let short = ck.list(q.clone().limit(mine.len() - 1));
        ck.eq(
            &what("a page one short"),
            ids(&short.data),
            ids(&mine[..mine.len() - 1]),
        );
        ck.that(short.has_more, what("a page one short: has_more"));
        ck.eq(&what("paged"), walk(&ck, &what("paged"), &q, 2), ids(&mine));
        let paid: Vec<SessionId> = mine
            .iter()
            .filter(|s| s.status() == SessionStatus::Paid)
            .map(CheckoutSession::id)
            .collect();
        ck.that(!paid.is_empty(), what("fixture: paid sessions"));
        ck.eq(
            &what("with the status"),
            ids(&ck.list(q.clone().status(SessionStatus::Paid)).data),
            paid.clone(),
        );
        let by_source = ListQuery::new().source_id(source.as_str()).livemode(live);
        ck.eq(
            &what("with the source_id"),
            walk(&ck, &what("with the source_id"), &by_source, 2),
            ids(&mine),
        );
        ck.eq(
            &what("with the metadata"),
            ids(&ck
                .list(
                    ListQuery::new()
                        .metadata("run", tag.as_str())
                        .livemode(live),
                )
                .data),
            ids(&mine),
        );
        let every = ListQuery::new()
            .metadata("run", tag.as_str())
            .source_id(source.as_str())
            .status(SessionStatus::Paid)
            .created_gte(base)
            .created_lt(base + Duration::seconds(9))
            .livemode(live);
        ck.eq(&what("with every filter"), ids(&ck.list(every).data), paid);
        for s in &all {
            ck.eq(
                &what("ListQuery::matches"),
                q.matches(s),
                s.livemode() == live,
            );
        }
    }
    // A cursor of the other mode marks its position.
    let test = all.iter().position(|s| !s.livemode()).unwrap_or(0);
    let older_live: Vec<SessionId> = all[test + 1..]
        .iter()
        .filter(|s| s.livemode())
        .map(CheckoutSession::id)
        .collect();
    let mut q = ours.clone().livemode(true);
    q.starting_after = Some(all[test].id());
    ck.eq(
        "live sessions older than a test one",
        ids(&ck.list(q).data),
        older_live,
    );
    // The mode stays through a later commit, and unknown cursors give empty pages.
    let mut d = Draft::new(
        SessionParams::new(dollars(99), usd()).livemode(true),
        base + Duration::seconds(20),
    );
    ck.commit(&mut d);
    d.deactivate(base + Duration::seconds(21));
    ck.commit(&mut d);
    let live = ck.list(ours.clone().livemode(true).limit(1));
    ck.eq("after a later commit", live.data, vec![d.session.clone()]);
    ck.eq(
        "not among the test sessions",
        ck.list(ours.clone().livemode(false))
            .data
            .iter()
            .any(|s| s.id() == d.id()),
        false,
    );
    for q in [
        ours.clone()
            .livemode(true)
            .starting_after(SessionId::generate()),
        ours.clone()
            .livemode(false)
            .ending_before(SessionId::generate()),
    ] {
        let page = ck.list(q.clone());
        ck.eq(&format!("{q:?}: data"), page.data.len(), 0);
        ck.that(!page.has_more, format!("{q:?}: has_more"));
    }
}
