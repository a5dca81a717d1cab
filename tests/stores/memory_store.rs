//! The in-memory store keeps sessions in a compact binary form and most event payloads
//! not at all (they are rendered from the session while it has not changed since). These
//! tests hold it to giving back exactly what was committed.

use crate::common;

use std::sync::Mutex;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::metadata::{Metadata, MetadataPatch, MetadataValue as MetaValue};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{Commit, MemoryStore, Store, StoreError};
use bitcoin_checkout::testkit::ObservedStore;
use bitcoin_checkout::testkit::strategies::scenario;
use bitcoin_checkout::*;
use common::{t0, usd};
use proptest::prelude::*;
use rust_decimal::Decimal;
use time::{Duration, UtcOffset};

/// Inserts `session` as it is: a new session's commit names all of its payments and
/// transfers.
fn insert(store: &MemoryStore, session: &CheckoutSession) -> Result<(), StoreError> {
    store.commit(&Commit {
        session: session.clone(),
        expected_version: None,
        payments: session.payments().iter().map(|p| p.id()).collect(),
        transfers: session.transfers().map(|t| t.key).collect(),
        events: Vec::new(),
        held: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever state a session reached (quotes, transfers, reversals, updates,
    /// deactivation), the store gives back an equal session with the same JSON.
    #[test]
    fn sessions_come_back_equal(s in scenario(0..30)) {
        let harness = s.run()?;
        let session = harness.session().clone();
        let store = MemoryStore::new();
        insert(&store, &session)?;
        let back = store.load(session.id())?;
        prop_assert_eq!(back.as_ref(), Some(&session));
        prop_assert_eq!(back.map(|b| b.to_json()), Some(session.to_json()));
    }
}

/// Times keep their nanoseconds and offset; text fields, metadata and branding survive.
#[test]
fn odd_times_and_every_optional_field_survive() -> Result<(), Box<dyn std::error::Error>> {
    let offset = UtcOffset::from_hms(-3, -30, 0)?;
    let created = (t0() + Duration::nanoseconds(123_456_789)).to_offset(offset);
    let params = SessionParams::new(Decimal::new(1999, 2), usd())
        .payment_methods([PaymentMethod::Onchain])
        .description("Ünïcode ✓ description")
        .metadata(Metadata::from_pairs([
            ("order", MetaValue::from("1001")),
            ("paid", MetaValue::from(true)),
        ])?)
        .success_url("https://shop.example/thanks")
        .cancel_url("https://shop.example/cart")
        .tolerance(Decimal::new(150, 2))
        .branding(Branding {
            title: Some("Shop".into()),
            title_description: None,
            title_image: Some("https://shop.example/logo.png".into()),
        })
        .source("shopify", "order-1001")
        .statement_descriptor("SHOP");
    let (session, _) = CheckoutSession::create(SessionId::generate(), params, created)?;
    let store = MemoryStore::new();
    insert(&store, &session)?;
    let back = store.load(session.id())?.ok_or("missing")?;
    assert_eq!(back, session);
    assert_eq!(back.created().offset(), offset);
    assert_eq!(back.created().nanosecond(), session.created().nanosecond());
    assert_eq!(back.to_json(), session.to_json());
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    Create,
    Pay { session: usize, percent: u64 },
    Update { session: usize, note: u8 },
    Deactivate { session: usize },
    Wait { minutes: i64 },
    Read { session: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Create),
        4 => (any::<usize>(), 1..80u64).prop_map(|(session, percent)| Op::Pay { session, percent }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(session, note)| Op::Update { session, note }),
        1 => any::<usize>().prop_map(|session| Op::Deactivate { session }),
        1 => (1..40i64).prop_map(|minutes| Op::Wait { minutes }),
        2 => any::<usize>().prop_map(|session| Op::Read { session }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the service does, reading the outbox gives back every event exactly as
    /// the service committed it, payload bytes included, whether it is read right away,
    /// after its session changed, or not until the end.
    #[test]
    fn the_outbox_gives_back_what_was_committed(ops in proptest::collection::vec(op(), 1..40)) {
        let clock = ManualClock::new(t0());
        let committed = Mutex::new(Vec::new());
        let store = ObservedStore::new(MemoryStore::new()).on_commit(|commit, result| {
            if result.is_ok() {
                committed.lock().unwrap_or_else(|p| p.into_inner()).extend(commit.events.iter().cloned());
            }
        });
        let checkout = Checkout::new(
            &store,
            FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000)),
            TestRequestGenerator,
        )
        .with_clock(&clock);
        let mut ids: Vec<SessionId> = Vec::new();
        let pick = |ids: &[SessionId], n: usize| (!ids.is_empty()).then(|| ids[n % ids.len()]);
        for op in &ops {
            match op {
                Op::Create => {
                    let params = SessionParams::new(Decimal::new(2500, 2), usd())
                        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain]);
                    ids.push(checkout.create(params, None)?.id());
                }
                Op::Pay { session, percent } => {
                    if let Some(id) = pick(&ids, *session)
                        && let Some(quote) = checkout.get(id)?.open_payment()
                    {
                        let hash = TestRequestGenerator::payment_hash(quote.id());
                        let msats = quote.target_msats().get() * percent / 50;
                        checkout.record_transfer(TransferReport::lightning(hash, Msats::new(msats)))?;
                    }
                }
                Op::Update { session, note } => {
                    if let Some(id) = pick(&ids, *session) {
                        let update = SessionUpdate::new()
                            .description(format!("note {note}"))
                            .metadata(MetadataPatch::new().set("note", i64::from(*note)));
                        checkout.update(id, &update)?;
                    }
                }
                Op::Deactivate { session } => {
                    if let Some(id) = pick(&ids, *session) {
                        let _ = checkout.deactivate(id);
                    }
                }
                Op::Wait { minutes } => {
                    clock.advance(Duration::minutes(*minutes));
                    checkout.sweep(100)?;
                }
                Op::Read { session } => {
                    if let Some(id) = pick(&ids, *session) {
                        let timeline = checkout.timeline(id)?;
                        let committed = committed.lock().map_err(|_| TestCaseError::fail("poisoned"))?.clone();
                        let own: Vec<_> = committed.iter().filter(|e| e.session_id == Some(id)).collect();
                        prop_assert_eq!(timeline.len(), own.len());
                        for (stored, made) in timeline.iter().zip(own) {
                            prop_assert_eq!(&stored.event, made);
                            prop_assert_eq!(stored.event.object.get(), made.object.get());
                        }
                    }
                }
            }
        }
        let committed = committed.lock().map_err(|_| TestCaseError::fail("poisoned"))?.clone();
        let outbox = checkout.events_after(None, usize::MAX)?;
        prop_assert_eq!(outbox.len(), committed.len());
        for (i, (stored, made)) in outbox.iter().zip(&committed).enumerate() {
            prop_assert_eq!(stored.seq, i as u64 + 1);
            prop_assert_eq!(&stored.event, made);
            prop_assert_eq!(stored.event.to_json(), made.to_json());
        }
    }
}
