//! Time and ids come from the caller: one random command sequence, replayed with the same
//! clock and id seed, gives byte-identical sessions and events, twice on each store and on
//! every store (memory, SQLite, PostgreSQL).

use bitcoin_checkout::OutPoint;
use bitcoin_checkout::clock::{ManualClock, SeededIds};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{ListQuery, MemoryStore, PostgresStore, SqliteStore, Store};
use bitcoin_checkout::{
    Checkout, Currency, Msats, PaymentMethod, Sats, SessionParams, SessionUpdate, TargetCurrency,
    TransferReport,
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

/// One step of a shop's day.
#[derive(Debug, Clone)]
enum Step {
    /// A new session for this many cents, Lightning only or both methods.
    Create { cents: u32, onchain: bool },
    /// Pays the open quote of session `n % sessions` over Lightning, in `parts` tenths.
    PayLightning { n: usize, tenths: u8 },
    /// Sends sats to session `n`'s address with some confirmations.
    PayOnchain { n: usize, sats: u32, confs: u32 },
    /// Time passes.
    Advance { secs: u32 },
    /// The sweep runs.
    Sweep,
    /// The merchant edits session `n`.
    Update { n: usize, text: u8 },
    /// The merchant deactivates session `n`.
    Deactivate { n: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (100u32..50_000, any::<bool>())
            .prop_map(|(cents, onchain)| Step::Create { cents, onchain }),
        (any::<usize>(), 1u8..=12).prop_map(|(n, tenths)| Step::PayLightning { n, tenths }),
        (any::<usize>(), 1u32..30_000, 0u32..3).prop_map(|(n, sats, confs)| Step::PayOnchain {
            n,
            sats,
            confs
        }),
        (1u32..1_200).prop_map(|secs| Step::Advance { secs }),
        Just(Step::Sweep),
        (any::<usize>(), any::<u8>()).prop_map(|(n, text)| Step::Update { n, text }),
        any::<usize>().prop_map(|n| Step::Deactivate { n }),
    ]
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

/// Runs `steps` on `store` with a manual clock and ids seeded with `seed`; returns every
/// session's JSON (in creation order) and every event as stored (sequence and JSON).
fn replay<S: Store>(store: S, seed: u64, steps: &[Step]) -> (Vec<String>, Vec<(u64, String)>) {
    let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_400) + Duration::milliseconds(7);
    let clock = ManualClock::new(start);
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::new(1_234_567, 3));
    let checkout = Checkout::new(store, rates, TestRequestGenerator)
        .with_clock(&clock)
        .with_ids(SeededIds::new(seed));
    let mut ids = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        // Every step also moves the clock a little, so times differ between steps.
        clock.advance(Duration::milliseconds(1 + i as i64));
        let pick = |n: usize| (!ids.is_empty()).then(|| ids[n % ids.len()]);
        // Refusals are part of the sequence too: they must be refused the same way.
        match *step {
            Step::Create { cents, onchain } => {
                let mut params = SessionParams::new(Decimal::new(i64::from(cents), 2), usd());
                if !onchain {
                    params = params.payment_methods([PaymentMethod::Lightning]);
                }
                let key = format!("key-{}", cents % 7);
                if let Ok(s) = checkout.create(params, Some(&key))
                    && !ids.contains(&s.id())
                {
                    ids.push(s.id());
                }
            }
            Step::PayLightning { n, tenths } => {
                if let Some(id) = pick(n)
                    && let Ok(s) = checkout.get(id)
                    && let Some(p) = s.open_payment()
                    && let Some(inv) = &p.request().lightning
                {
                    let msats = p.target_msats().get() / 10 * u64::from(tenths);
                    let _ = checkout.record_transfer(TransferReport::lightning(
                        inv.payment_hash,
                        Msats::new(msats.max(1_000)),
                    ));
                }
            }
            Step::PayOnchain { n, sats, confs } => {
                if let Some(id) = pick(n)
                    && let Ok(s) = checkout.get(id)
                    && let Some(address) = s.onchain_address()
                {
                    let txid = TestRequestGenerator::payment_hash(
                        s.payments().last().map(|p| p.id()).unwrap_or_else(|| {
                            bitcoin_checkout::PaymentId::from_uuid(id.as_uuid())
                        }),
                    );
                    let txid = bitcoin_checkout::Txid::from_byte_array(txid.to_bytes());
                    let vout = u32::try_from(i).unwrap_or(0);
                    let _ = checkout.record_transfer(
                        TransferReport::onchain(
                            OutPoint::new(txid, vout),
                            address.to_owned(),
                            Sats::new(u64::from(sats)),
                        )
                        .confirmations(confs),
                    );
                }
            }
            Step::Advance { secs } => clock.advance(Duration::seconds(i64::from(secs))),
            Step::Sweep => {
                let _ = checkout.sweep(100);
            }
            Step::Update { n, text } => {
                if let Some(id) = pick(n) {
                    let _ = checkout.update(
                        id,
                        &SessionUpdate::new().description(format!("note {text}")),
                    );
                }
            }
            Step::Deactivate { n } => {
                if let Some(id) = pick(n) {
                    let _ = checkout.deactivate(id);
                }
            }
        }
    }
    let sessions = ids
        .iter()
        .map(|id| checkout.get(*id).map(|s| s.to_json()).unwrap_or_default())
        .collect();
    let events = checkout
        .events_after(None, 100_000)
        .expect("events")
        .into_iter()
        .map(|e| (e.seq, e.event.to_json()))
        .collect();
    // Listing sees the same sessions in the same order on every store.
    let listed = checkout.list(&ListQuery::new().limit(100)).expect("list");
    assert_eq!(listed.data.len(), ids.len());
    (sessions, events)
}

fn postgres() -> PostgresStore {
    let url = std::env::var("BITCOIN_CHECKOUT_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("BITCOIN_CHECKOUT_PG is not set: run scripts/test"));
    let schema = format!(
        "det_{}",
        bitcoin_checkout::SessionId::generate().as_uuid().simple()
    );
    PostgresStore::connect_in_schema(&url, &schema, 2).expect("connect")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_same_seed_gives_the_same_bytes_on_every_store(
        seed in any::<u64>(),
        steps in proptest::collection::vec(step(), 1..14),
    ) {
        let memory = replay(MemoryStore::new(), seed, &steps);
        let creates = steps.iter().any(|s| matches!(s, Step::Create { .. }));
        prop_assert!(!memory.0.is_empty() || !creates, "a create step made no session");
        prop_assert_eq!(&replay(MemoryStore::new(), seed, &steps), &memory, "memory, twice");
        let sqlite = replay(SqliteStore::open_in_memory().expect("sqlite"), seed, &steps);
        prop_assert_eq!(&sqlite, &memory, "sqlite vs memory");
        prop_assert_eq!(&replay(SqliteStore::open_in_memory().expect("sqlite"), seed, &steps), &sqlite, "sqlite, twice");
        let pg = postgres();
        let on_pg = replay(&pg, seed, &steps);
        pg.close();
        prop_assert_eq!(&on_pg, &memory, "postgres vs memory");
        // Another seed gives other ids.
        if !memory.0.is_empty() {
            prop_assert_ne!(&replay(MemoryStore::new(), seed ^ 1, &steps).0, &memory.0);
        }
    }
}
