//! The migration of the HTTP API's reads (SQLite 7, PostgreSQL 8): sessions, payments,
//! events and links stored before it are listed by mode and kind, found by payment id and
//! by event id after the upgrade (its columns filled from the stored rows), and new writes
//! keep them current. On PostgreSQL the new statements can use their indexes.

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::link::Link;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{LinkKind, LinkListQuery, LinkStore, ListQuery, Store};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Duration, Msats, SessionParams, TargetCurrency, TransferReport,
};
use rust_decimal::Decimal;

use crate::common::{t0, usd};

/// What [`fill`] stored.
struct Stored {
    /// A live session, partly paid and quoted again (two payments).
    live: CheckoutSession,
    /// A test session.
    test: CheckoutSession,
    /// A live payment link, then (newer) a test checkout link.
    links: [Link; 2],
}

fn checkout<'a, S: LinkStore>(
    store: &'a S,
    clock: &'a ManualClock,
) -> Checkout<&'a S, FixedRates, TestRequestGenerator, &'a ManualClock> {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(store, rates, TestRequestGenerator).with_clock(clock)
}

/// Stores two sessions and two links through the service.
fn fill<S: LinkStore>(store: &S) -> Stored {
    let clock = ManualClock::new(t0());
    let c = checkout(store, &clock);
    let live = c
        .create(
            SessionParams::new(Decimal::new(2500, 2), usd()).livemode(true),
            None,
        )
        .expect("create");
    clock.advance(Duration::seconds(1));
    let quote = live.open_payment().expect("a quote");
    let live = c
        .record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            Msats::new(quote.target_msats().get() / 2),
        ))
        .expect("a partial payment");
    assert_eq!(
        live.payments().len(),
        2,
        "re-quoted after the partial payment"
    );
    clock.advance(Duration::seconds(1));
    let test = c
        .create(SessionParams::new(Decimal::new(900, 2), usd()), None)
        .expect("create");
    clock.advance(Duration::seconds(1));
    let payment_link = c
        .create_payment_link(
            SessionParams::new(Decimal::new(500, 2), usd()).livemode(true),
            None,
        )
        .expect("payment link");
    clock.advance(Duration::seconds(1));
    let checkout_link = c
        .create_checkout_link(SessionParams::new(Decimal::new(700, 2), usd()), None)
        .expect("checkout link");
    Stored {
        live,
        test,
        links: [payment_link, checkout_link],
    }
}

/// Every event of `store` as `UPDATE` statements that write it whole into its row, as
/// the schema before thin events (migration 8 on SQLite, 9 on PostgreSQL) kept them: a
/// downgrade runs them before it drops the thin columns.
fn materialize_events<S: Store>(store: &S) -> String {
    store
        .events_after(None, 1_000)
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "UPDATE events SET body = '{}' WHERE seq = {};\n",
                e.event.to_json().replace('\'', "''"),
                e.seq
            )
        })
        .collect()
}

/// What the upgraded store must answer about what [`fill`] stored.
fn check_upgraded<S: LinkStore>(store: &S, stored: &Stored) {
    let list = |q: ListQuery| store.list(&q).expect("list").data;
    assert_eq!(
        list(ListQuery::new().livemode(true)),
        vec![stored.live.clone()]
    );
    assert_eq!(
        list(ListQuery::new().livemode(false)),
        vec![stored.test.clone()]
    );
    for s in [&stored.live, &stored.test] {
        for p in s.payments() {
            assert_eq!(
                store.find_by_payment(p.id()),
                Ok(Some(s.id())),
                "{}",
                p.id()
            );
        }
    }
    let events = store.events_after(None, 1_000).expect("events");
    assert!(events.len() >= 6, "{}", events.len());
    for e in &events {
        assert_eq!(store.event(e.event.id), Ok(Some(e.clone())));
    }
    let mut newest_first = events.clone();
    newest_first.reverse();
    assert_eq!(store.events_before(None, 1_000), Ok(newest_first));
    let [payment_link, checkout_link] = &stored.links;
    let links = |q: LinkListQuery| store.list_links(&q).expect("list_links").data;
    assert_eq!(
        links(LinkListQuery::new()),
        vec![checkout_link.clone(), payment_link.clone()]
    );
    assert_eq!(
        links(LinkListQuery::new().kind(LinkKind::Payment)),
        vec![payment_link.clone()]
    );
    assert_eq!(
        links(
            LinkListQuery::new()
                .kind(LinkKind::Checkout)
                .livemode(false)
        ),
        vec![checkout_link.clone()]
    );
    assert_eq!(
        links(LinkListQuery::new().livemode(true)),
        vec![payment_link.clone()]
    );
    assert_eq!(
        links(LinkListQuery::new().starting_after(checkout_link.id())),
        vec![payment_link.clone()]
    );
    // New writes keep the new columns current.
    let clock = ManualClock::new(t0() + Duration::minutes(5));
    let c = checkout(store, &clock);
    let newer = c
        .create(
            SessionParams::new(Decimal::new(100, 2), usd()).livemode(true),
            None,
        )
        .expect("create");
    let newer_link = c
        .create_payment_link(
            SessionParams::new(Decimal::new(100, 2), usd()).livemode(true),
            None,
        )
        .expect("link");
    assert_eq!(
        list(ListQuery::new().livemode(true)),
        vec![newer.clone(), stored.live.clone()]
    );
    assert_eq!(
        links(LinkListQuery::new().livemode(true)),
        vec![newer_link, payment_link.clone()]
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn a_version_6_sqlite_database_gains_the_api_reads() {
    use bitcoin_checkout::store::SqliteStore;
    let dir = crate::common::TempDir::new("upgrade-v6");
    let path = dir.file("v6.db");
    let store = SqliteStore::open(&path).expect("open");
    let stored = fill(&store);
    let whole_events = materialize_events(&store);
    store.close().expect("close");
    // Back to version 6 of the schema, keeping the rows.
    crate::packed_rows::live_rows_as_text(&path);
    {
        let conn = rusqlite::Connection::open(&path).expect("raw connection");
        conn.execute_batch(&whole_events).expect("whole events");
        conn.execute_batch(crate::thin_events::EVENTS_WITH_TEXT_IDS)
            .expect("text ids");
        conn.execute_batch(
            "ALTER TABLE events DROP COLUMN object_version;
             ALTER TABLE sessions DROP COLUMN object_payments;
             DROP TABLE session_objects;
             ALTER TABLE events DROP COLUMN carrier;
             ALTER TABLE events DROP COLUMN part;
             DROP INDEX payments_by_id;
             DROP INDEX events_by_id;
             DROP INDEX sessions_by_mode;
             DROP INDEX links_by_created;
             DROP INDEX links_by_kind;
             ALTER TABLE sessions DROP COLUMN livemode;
             ALTER TABLE links DROP COLUMN created;
             ALTER TABLE links DROP COLUMN kind;
             ALTER TABLE links DROP COLUMN livemode;
             DROP TABLE held_transfers;
             DROP INDEX idempotency_by_created;
             PRAGMA user_version = 6;",
        )
        .expect("downgrade");
    }
    let store = SqliteStore::open(&path).expect("upgrade");
    assert_eq!(
        store.schema_version(),
        Ok(SqliteStore::latest_schema_version())
    );
    check_upgraded(&store, &stored);
    store.close().expect("close");
}

#[cfg(all(feature = "postgres", feature = "testkit"))]
mod postgres {
    use super::*;
    use crate::postgres_store::{Schemas, admin, pg_url};
    use bitcoin_checkout::store::PostgresStore;

    #[test]
    fn a_database_of_migration_7_gains_the_api_reads() {
        let schemas = Schemas::new();
        let name = schemas.fresh();
        let store = PostgresStore::connect_in_schema(&pg_url(), &name, 2).expect("connect");
        let stored = fill(&store);
        let whole_events = materialize_events(&store);
        store.close();
        admin(&format!(
            "SET search_path TO \"{name}\";
             {whole_events}
             ALTER TABLE events DROP COLUMN object_version;
             ALTER TABLE events DROP COLUMN carrier, DROP COLUMN part;
             DROP INDEX payments_by_id, events_by_id;
             ALTER TABLE sessions DROP COLUMN livemode;
             ALTER TABLE links DROP COLUMN created, DROP COLUMN kind, DROP COLUMN livemode;
             DROP TABLE held_transfers;
             DROP INDEX idempotency_by_created;
             DELETE FROM schema_migrations WHERE version >= 8;"
        ))
        .expect("downgrade");
        let store = PostgresStore::connect_in_schema(&pg_url(), &name, 2).expect("upgrade");
        check_upgraded(&store, &stored);
        store.close();
    }

    /// With sequential scans priced out, each new statement's plan names its index.
    #[test]
    fn the_api_reads_can_use_their_indexes_on_postgres() {
        let schemas = Schemas::new();
        let name = schemas.fresh();
        let store = PostgresStore::connect_in_schema(&pg_url(), &name, 2).expect("connect");
        for (sql, index) in [
            (
                "SELECT session_id FROM payments WHERE id = 'pi_1' ORDER BY session_id LIMIT 1",
                "payments_by_id",
            ),
            (
                "SELECT seq, body FROM events WHERE id = 'evt_1' ORDER BY seq LIMIT 1",
                "events_by_id",
            ),
            (
                "SELECT s.id FROM sessions s WHERE 1 = 1 AND s.livemode = true \
                 ORDER BY s.created DESC, s.id DESC LIMIT 11",
                "sessions_by_mode",
            ),
            (
                "SELECT l.id FROM links l WHERE 1 = 1 ORDER BY l.created DESC, l.id DESC LIMIT 11",
                "links_by_created",
            ),
            (
                "SELECT l.id FROM links l WHERE 1 = 1 AND l.kind = 'payment' \
                 AND l.livemode = false ORDER BY l.created DESC, l.id DESC LIMIT 11",
                "links_by_kind",
            ),
        ] {
            let plan: Vec<String> = admin(&format!(
                "SET search_path TO \"{name}\"; SET enable_seqscan = off; EXPLAIN {sql}"
            ))
            .expect("explain")
            .into_iter()
            .flatten()
            .collect();
            assert!(plan.iter().any(|l| l.contains(index)), "{sql}: {plan:#?}");
            assert!(
                !plan.iter().any(|l| l.contains("Seq Scan")),
                "{sql}: {plan:#?}"
            );
        }
        store.close();
    }
}
