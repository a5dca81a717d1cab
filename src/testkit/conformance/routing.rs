//! Checks of the keys that route funds to a session: an invoice payment hash, an on-chain
//! address and a recorded transfer each belong to the first session whose commit names
//! them; a later session's commit that names one is refused with
//! [`StoreError::KeyTaken`] and writes nothing.

use time::{Duration, OffsetDateTime};

use super::fixtures::{Ck, Draft, dollars, fresh_txid, rates, t0, usd};
use crate::chain::OutPoint;
use crate::id::{PaymentId, SessionId};
use crate::money::{Msats, Sats};
use crate::payment::PaymentRequest;
use crate::rates::RateSource;
use crate::request::{PaymentRequestGenerator, TestRequestGenerator};
use crate::session::{CheckoutSession, SessionChange, SessionParams};
use crate::store::{RoutingKey, Store, StoreError};
use crate::transfer::{PaymentMethod, TransferKey, TransferReport};

/// A new session (not yet committed) whose first quote's request `tweak` changes.
fn draft_with(now: OffsetDateTime, tweak: impl FnOnce(&mut PaymentRequest)) -> Draft {
    let params = SessionParams::new(dollars(2500), usd())
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain]);
    let (session, change) =
        CheckoutSession::create(SessionId::generate(), params, now).expect("core: create");
    let mut d = Draft {
        session,
        stored: None,
        events: Vec::new(),
        change: SessionChange::default(),
    };
    d.wrap(change);
    quote_with(&mut d, now, tweak);
    d
}

/// Issues the draft's next quote with a request `tweak` changes.
fn quote_with(d: &mut Draft, now: OffsetDateTime, tweak: impl FnOnce(&mut PaymentRequest)) {
    let s = &d.session;
    let rate = rates()
        .rate(s.currency(), s.target_currency(), now)
        .expect("fixture rate");
    let terms = s
        .next_quote(s.next_payment_id(PaymentId::generate()), rate, now)
        .expect("core: next quote");
    let mut request = TestRequestGenerator
        .generate(s, &terms)
        .expect("test request");
    tweak(&mut request);
    let change = d
        .session
        .issue_quote(terms, request, now)
        .expect("core: issue quote");
    d.wrap(change);
}

/// Commits `d`, which must be refused as naming `key`, held by `holder`; then checks that
/// nothing was written: the stored version (or absence) and the outbox are as before.
#[track_caller]
fn refused<S: Store>(ck: &Ck<'_, S>, what: &str, d: &Draft, key: RoutingKey, holder: SessionId) {
    let before = ck.load(d.id()).map(|s| s.version());
    let last = ck.last_seq();
    let got = ck.store.commit(&d.to_commit());
    let want = Err(StoreError::KeyTaken {
        key: key.clone(),
        holder,
    });
    ck.eq(&format!("{what}: the commit's result"), got, want);
    ck.eq(
        &format!("{what}: the stored version after the refusal"),
        ck.load(d.id()).map(|s| s.version()),
        before,
    );
    ck.eq(
        &format!("{what}: the outbox's last sequence number after the refusal"),
        ck.last_seq(),
        last,
    );
}

/// A payment hash, an address and a transfer held by one session cannot be taken by
/// another: a new session's first commit, a later commit of a stored session and a
/// transfer record naming one are each refused with [`StoreError::KeyTaken`] naming the
/// key and the first session, write nothing, and every lookup still finds the first.
pub fn check_keys_stay_with_their_first_session<S: Store>(store: &S) {
    let ck = Ck::new("check_keys_stay_with_their_first_session", store);
    let now = t0();
    let mut first = Draft::new(
        SessionParams::new(dollars(2500), usd())
            .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain]),
        now,
    );
    ck.commit(&mut first);
    let hash = first.open_hash();
    let address = first.address();
    // An on-chain transfer to the first session.
    let outpoint = OutPoint::new(fresh_txid(), 0);
    first.record(
        TransferReport::onchain(outpoint, address.as_str(), Sats::new(25_000)).confirmations(1),
        now + Duration::seconds(1),
    );
    ck.commit(&mut first);

    // A new session whose first quote carries the first one's payment hash.
    let later = now + Duration::seconds(2);
    let stolen_hash = draft_with(later, |r| {
        if let Some(inv) = r.lightning.as_mut() {
            inv.payment_hash = hash;
        }
    });
    refused(
        &ck,
        "a new session with a held payment hash",
        &stolen_hash,
        RoutingKey::PaymentHash(hash),
        first.id(),
    );
    ck.that(
        ck.load(stolen_hash.id()).is_none(),
        "a refused insert left a session behind",
    );

    // A new session whose first quote carries the first one's address.
    let stolen_address = draft_with(later, |r| r.onchain_address = Some(address.clone()));
    refused(
        &ck,
        "a new session with a held address",
        &stolen_address,
        RoutingKey::Address(address.clone()),
        first.id(),
    );

    // A stored session whose next quote carries the held hash.
    let mut stored = Draft::new(
        SessionParams::new(dollars(2500), usd()).payment_methods([PaymentMethod::Lightning]),
        later,
    );
    ck.commit(&mut stored);
    let pay_part = TransferReport::lightning(stored.open_hash(), Msats::new(1_000));
    let after_part = later + Duration::seconds(1);
    stored.record(pay_part, after_part);
    quote_with(&mut stored, after_part, |r| {
        if let Some(inv) = r.lightning.as_mut() {
            inv.payment_hash = hash;
        }
    });
    refused(
        &ck,
        "a stored session's later quote with a held payment hash",
        &stored,
        RoutingKey::PaymentHash(hash),
        first.id(),
    );

    // Another session recording the first one's outpoint.
    let mut other = Draft::new(
        SessionParams::new(dollars(2500), usd()).payment_methods([PaymentMethod::Onchain]),
        later,
    );
    ck.commit(&mut other);
    let other_address = other.address();
    other.record(
        TransferReport::onchain(outpoint, other_address.as_str(), Sats::new(1_000)),
        later + Duration::seconds(1),
    );
    refused(
        &ck,
        "another session recording a held transfer",
        &other,
        RoutingKey::Transfer(TransferKey::Onchain(outpoint)),
        first.id(),
    );

    ck.eq(
        "find_by_payment_hash of the held hash",
        ck.ok("find_by_payment_hash", store.find_by_payment_hash(&hash)),
        Some(first.id()),
    );
    ck.eq(
        "find_by_address of the held address",
        ck.ok("find_by_address", store.find_by_address(&address)),
        Some(first.id()),
    );
    ck.loads_as("the first session after the refusals", &first);
}
