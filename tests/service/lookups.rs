//! Finding sessions through the service (issue #13, point 10): by `source_id`, by a
//! metadata key and value (how a shop finds the session of an order), by creation time,
//! and the refusal of queries no page can answer, on the in-memory store, a real SQLite
//! database and PostgreSQL.

use crate::common;

use std::sync::Arc;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::{DynCheckout, ErrorKind};
use bitcoin_checkout::store::{
    ListQuery, ListQueryError, MemoryStore, SqliteStore, Store, StoreError,
};
use bitcoin_checkout::*;
use common::*;

/// The service over any store, its ports boxed: one type for both stores.
type Service = DynCheckout<Box<dyn Store>>;

fn services() -> Vec<(&'static str, Service, Arc<ManualClock>)> {
    let stores: Vec<(&str, Box<dyn Store>)> = vec![
        ("memory", Box::new(MemoryStore::new())),
        (
            "sqlite",
            Box::new(SqliteStore::open_in_memory().expect("sqlite")),
        ),
    ];
    stores
        .into_iter()
        .map(|(name, store)| {
            let clock = Arc::new(ManualClock::new(t0()));
            let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
            let c = Checkout::boxed(store, rates, TestRequestGenerator)
                .with_boxed_clock(Arc::clone(&clock));
            (name, c, clock)
        })
        .collect()
}

fn order(n: u32) -> SessionParams {
    let metadata =
        Metadata::from_pairs([("order", MetadataValue::from(i64::from(n)))]).expect("metadata");
    SessionParams::new(dec("12.00"), usd())
        .source("woocommerce", format!("wc_{n}"))
        .metadata(metadata)
}

fn ids(page: &store::Page) -> Vec<SessionId> {
    page.data.iter().map(CheckoutSession::id).collect()
}

#[test]
fn a_shop_finds_the_session_of_an_order() {
    for (name, c, clock) in services() {
        let mut made = Vec::new();
        for n in 1..=5 {
            clock.advance(Duration::seconds(10));
            made.push(c.create(order(1000 + n), None).expect("create"));
        }
        let third = made[2].id();
        let by_meta = c
            .list(&ListQuery::new().metadata("order", "1003"))
            .expect("by metadata");
        assert_eq!(ids(&by_meta), vec![third], "{name}");
        let by_source = c
            .list(&ListQuery::new().source_id("wc_1003"))
            .expect("by source_id");
        assert_eq!(ids(&by_source), vec![third], "{name}");
        // An update that changes the order number moves the session in the lookup.
        c.update(
            third,
            &SessionUpdate::new().metadata(MetadataPatch::new().set("order", "A-7")),
        )
        .expect("update");
        assert!(
            c.list(&ListQuery::new().metadata("order", "1003"))
                .expect("old")
                .data
                .is_empty(),
            "{name}"
        );
        assert_eq!(
            ids(&c
                .list(&ListQuery::new().metadata("order", "A-7"))
                .expect("new")),
            vec![third],
            "{name}"
        );
        // Creation time range: sessions 2 to 4 (created at 20, 30, 40 s), newest first.
        let range = ListQuery::new().created_gte(at(20)).created_lt(at(50));
        let want: Vec<_> = made[1..4].iter().rev().map(CheckoutSession::id).collect();
        assert_eq!(ids(&c.list(&range).expect("range")), want, "{name}");
        let page = c.list(&range.clone().limit(2)).expect("first page");
        assert!(page.has_more, "{name}");
        let rest = c.list(&range.starting_after(want[1])).expect("next page");
        assert_eq!(ids(&rest), vec![want[2]], "{name}");
    }
}

#[test]
fn queries_no_page_can_answer_are_refused_as_invalid_input() {
    for (name, c, _) in services() {
        let s = c.create(order(1), None).expect("create");
        let both = c.list(
            &ListQuery::new()
                .starting_after(s.id())
                .ending_before(s.id()),
        );
        let err = both.expect_err("both cursors");
        assert_eq!(
            err,
            ServiceError::Store(StoreError::InvalidQuery(ListQueryError::ConflictingCursors)),
            "{name}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        assert_eq!(err.kind().http_status(), 400, "{name}");
        assert!(!err.is_retryable(), "{name}");
        for limit in [0, 101] {
            let err = c
                .list(&ListQuery::new().limit(limit))
                .expect_err("bad limit");
            assert_eq!(
                err,
                ServiceError::Store(StoreError::InvalidQuery(ListQueryError::LimitOutOfRange {
                    limit,
                    max: 100
                })),
                "{name}"
            );
            assert!(
                err.to_string().contains("limit must be 1 to 100"),
                "{name}: {err}"
            );
        }
        assert_eq!(
            c.list(&ListQuery::new().limit(100))
                .expect("100")
                .data
                .len(),
            1,
            "{name}"
        );
    }
}
