//! The watcher's cases, each on a chain built in the test: confirmations under each
//! policy, reorganisations, replacements, shared transactions, unexpected money, restarts
//! and duplicate deliveries.

use std::sync::Arc;

use bitcoin::Transaction;
use bitcoin_checkout::session::FlagKind;
use bitcoin_checkout::transfer::ConfirmationPolicy::{One, Six, Two, ZeroConf};
use bitcoin_checkout::{Sats, SessionStatus};

use crate::chain::{Chain, pay};
use crate::shop::{Shop, counted, event_types, feed, follow, other_address};

fn mempool(w: &mut bitcoin_checkout::watch::ChainWatcher, tx: &Transaction, seen: u64) {
    w.apply_mempool([(Arc::new(tx.clone()), seen)]);
}

#[test]
fn confirmations_0_1_2_6_under_each_policy() {
    for (policy, paid_at) in [(ZeroConf, 0), (One, 1), (Two, 2), (Six, 6)] {
        let shop = Shop::new();
        let mut chain = Chain::new();
        let mut w = shop.watcher();
        let (id, address) = shop.session("10", policy);
        let tx = pay(&[chain.coin()], &[(&address, 10_000)], false);
        mempool(&mut w, &tx, 1);
        follow(&shop, &mut w, &chain);
        let mut confirmations = vec![0];
        chain.mine(vec![tx]);
        follow(&shop, &mut w, &chain);
        confirmations.push(1);
        for c in 2..=7 {
            let s = shop.get(id);
            let t = s.transfers().next().expect("one transfer");
            let reported = c - 1;
            assert_eq!(t.confirmations, reported.min(6), "{policy:?} at {reported}");
            let expected = if reported >= paid_at {
                SessionStatus::Paid
            } else {
                SessionStatus::Active
            };
            assert_eq!(
                s.status(),
                expected,
                "{policy:?} at {reported} confirmations"
            );
            chain.mine_empty(1);
            follow(&shop, &mut w, &chain);
            confirmations.push(c);
        }
        let s = shop.get(id);
        assert_eq!(s.transfers().count(), 1, "{policy:?}: counted once");
        assert_eq!(counted(&s), 10_000);
    }
}

#[test]
fn an_rbf_transaction_never_counts_unconfirmed() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let mut w = shop.watcher();
    let (id, address) = shop.session("10", ZeroConf);
    let tx = pay(&[chain.coin()], &[(&address, 10_000)], true);
    mempool(&mut w, &tx, 1);
    follow(&shop, &mut w, &chain);
    let s = shop.get(id);
    assert_eq!(s.status(), SessionStatus::Active);
    assert!(s.transfers().next().expect("seen").rbf);
    chain.mine(vec![tx]);
    follow(&shop, &mut w, &chain);
    assert_eq!(shop.get(id).status(), SessionStatus::Paid);
}

#[test]
fn a_two_block_reorg_takes_a_counted_payment_back_until_it_confirms_again() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let mut w = shop.watcher();
    let (id, address) = shop.session("10", One);
    // A partial payment, confirmed: it counts.
    let tx = pay(&[chain.coin()], &[(&address, 4_000)], false);
    chain.mine(vec![tx.clone()]);
    chain.mine_empty(1);
    follow(&shop, &mut w, &chain);
    assert_eq!(counted(&shop.get(id)), 4_000);
    // Two blocks reorganised away; the new branch does not have it yet.
    let fork_height = chain.height() - 2;
    let mut fork = chain.fork_at(fork_height);
    fork.mine_empty(3);
    follow(&shop, &mut w, &fork);
    let s = shop.get(id);
    assert_eq!(
        counted(&s),
        0,
        "no longer counted before the session is paid"
    );
    assert_eq!(
        s.totals().pending.get(),
        4_000_000,
        "pending again, not lost"
    );
    assert_eq!(s.status(), SessionStatus::Active);
    assert!(event_types(&shop, id).contains(&"checkout_session.transfer_unconfirmed".into()));
    // The new branch mines it again: it counts again.
    fork.mine(vec![tx]);
    follow(&shop, &mut w, &fork);
    let s = shop.get(id);
    assert_eq!(counted(&s), 4_000);
    assert_eq!(s.transfers().count(), 1, "the same transfer throughout");
    assert_eq!(s.flagged(FlagKind::Reversed), bitcoin_checkout::Msats::ZERO);
}

#[test]
fn a_reorg_with_a_double_spend_reverses_a_payment_that_paid_the_session() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let mut w = shop.watcher();
    let (id, address) = shop.session("10", One);
    let coin = chain.coin();
    chain.mine(vec![pay(&[coin], &[(&address, 10_000)], false)]);
    chain.mine_empty(1);
    follow(&shop, &mut w, &chain);
    assert_eq!(shop.get(id).status(), SessionStatus::Paid);
    // The new branch spends the same coin elsewhere.
    let mut fork = chain.fork_at(chain.height() - 2);
    fork.mine(vec![pay(&[coin], &[(&other_address(), 9_000)], false)]);
    fork.mine_empty(2);
    follow(&shop, &mut w, &fork);
    let s = shop.get(id);
    assert_eq!(s.status(), SessionStatus::Paid, "paid is final");
    let t = s.transfers().next().expect("kept");
    assert!(t.reversed);
    assert_eq!(counted(&s), 0);
    assert_eq!(
        s.flagged(FlagKind::Reversed).get(),
        10_000_000,
        "flagged, not dropped"
    );
    assert!(event_types(&shop, id).contains(&"checkout_session.transfer_reversed".into()));
    // The original branch comes back, longer: the payment is restored.
    chain.mine_empty(3);
    follow(&shop, &mut w, &chain);
    let s = shop.get(id);
    assert!(!s.transfers().next().expect("kept").reversed);
    assert_eq!(counted(&s), 10_000);
    assert_eq!(s.flagged(FlagKind::Reversed).get(), 0);
    assert!(event_types(&shop, id).contains(&"checkout_session.transfer_restored".into()));
}

#[test]
fn an_rbf_replacement_that_pays_less_or_elsewhere() {
    for elsewhere in [false, true] {
        let shop = Shop::new();
        let mut chain = Chain::new();
        let mut w = shop.watcher();
        let (id, address) = shop.session("10", One);
        let coin = chain.coin();
        let first = pay(&[coin], &[(&address, 10_000)], true);
        mempool(&mut w, &first, 1);
        follow(&shop, &mut w, &chain);
        assert_eq!(shop.get(id).totals().pending.get(), 10_000_000);
        let other = other_address();
        let to = if elsewhere {
            other.as_str()
        } else {
            address.as_str()
        };
        let second = pay(&[coin], &[(to, 6_000)], true);
        mempool(&mut w, &second, 2);
        chain.mine(vec![second]);
        follow(&shop, &mut w, &chain);
        let s = shop.get(id);
        let first_txid = bitcoin_checkout::Txid::from(first.compute_txid());
        let replaced = s
            .transfers()
            .find(|t| matches!(t.key, bitcoin_checkout::TransferKey::Onchain(o) if o.txid == first_txid))
            .expect("the replaced payment is kept");
        assert!(replaced.reversed, "elsewhere={elsewhere}");
        assert_eq!(s.status(), SessionStatus::Active, "elsewhere={elsewhere}");
        assert_eq!(counted(&s), if elsewhere { 0 } else { 6_000 });
        // Reversed before it ever counted: nothing to flag.
        assert_eq!(s.flagged(FlagKind::Reversed).get(), 0);
    }
}

#[test]
fn one_transaction_pays_two_sessions() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let mut w = shop.watcher();
    let (a, address_a) = shop.session("10", One);
    let (b, address_b) = shop.session("5", One);
    let tx = pay(
        &[chain.coin()],
        &[(&address_a, 10_000), (&address_b, 5_000)],
        false,
    );
    chain.mine(vec![tx]);
    let pass = follow(&shop, &mut w, &chain);
    assert_eq!(pass.recorded.len(), 2);
    assert_eq!(shop.get(a).status(), SessionStatus::Paid);
    assert_eq!(shop.get(b).status(), SessionStatus::Paid);
}

#[test]
fn funds_after_paid_or_deactivated_are_flagged() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let mut w = shop.watcher();
    let (paid, paid_address) = shop.session("10", One);
    let (gone, gone_address) = shop.session("10", One);
    chain.mine(vec![pay(
        &[chain.coin()],
        &[(&paid_address, 10_000)],
        false,
    )]);
    follow(&shop, &mut w, &chain);
    shop.checkout.deactivate(gone).expect("deactivated");
    chain.mine(vec![
        pay(&[chain.coin()], &[(&paid_address, 2_500)], false),
        pay(&[chain.coin()], &[(&gone_address, 3_000)], false),
    ]);
    follow(&shop, &mut w, &chain);
    assert_eq!(shop.get(paid).flagged(FlagKind::Overpaid).get(), 2_500_000);
    assert_eq!(shop.get(gone).flagged(FlagKind::Late).get(), 3_000_000);
    assert_eq!(shop.get(gone).status(), SessionStatus::Deactivated);
}

#[test]
fn a_restart_between_blocks_misses_nothing_and_counts_nothing_twice() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let (id, address) = shop.session("10", Two);
    {
        let mut w = shop.watcher();
        chain.mine(vec![pay(&[chain.coin()], &[(&address, 10_000)], false)]);
        follow(&shop, &mut w, &chain);
    } // stopped
    assert_eq!(shop.get(id).status(), SessionStatus::Active);
    chain.mine_empty(1); // mined while the watcher is down
    let mut w = shop.watcher();
    assert_eq!(w.tip().0, chain.height() - 1, "resumes from the saved tip");
    let pass = follow(&shop, &mut w, &chain);
    assert_eq!(pass.recorded.len(), 1, "the new confirmation");
    let s = shop.get(id);
    assert_eq!(s.status(), SessionStatus::Paid);
    assert_eq!(s.transfers().count(), 1);
    assert_eq!(s.transfers().next().expect("one").confirmations, 2);
    // Loading again and syncing with nothing new records nothing.
    let mut again = shop.watcher();
    assert!(shop.sync(&mut again).recorded.is_empty());
}

#[test]
fn a_duplicate_block_delivery_changes_nothing() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let mut w = shop.watcher();
    let (id, address) = shop.session("10", One);
    let block = chain.mine(vec![pay(&[chain.coin()], &[(&address, 10_000)], false)]);
    follow(&shop, &mut w, &chain);
    let events = event_types(&shop, id).len();
    let height = chain.height();
    w.apply_block(&block, height).expect("the same block again");
    feed(&mut w, &chain);
    let pass = shop.sync(&mut w);
    assert!(pass.recorded.is_empty());
    assert_eq!(event_types(&shop, id).len(), events);
    assert_eq!(shop.get(id).transfers().count(), 1);
    assert_eq!(
        shop.get(id).transfers().next().expect("one").amount,
        Sats::new(10_000).to_msats()
    );
}

#[test]
fn funds_to_an_address_no_session_has_are_kept_as_unmatched() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let mut w = shop.watcher();
    let (_, _) = shop.session("10", One);
    // Index 5 is in the lookahead: watched, but no session has it.
    let lookahead = crate::shop::deriver().address_at(5).expect("address");
    chain.mine(vec![pay(&[chain.coin()], &[(&lookahead, 7_000)], false)]);
    let pass = follow(&shop, &mut w, &chain);
    assert_eq!(pass.unmatched.len(), 1);
    assert_eq!(pass.unmatched[0].amount, Sats::new(7_000));
    let again = shop.watcher();
    assert_eq!(again.unmatched().count(), 1, "kept across restarts");
}

#[test]
fn views_apply_in_sequence_order_whatever_order_they_arrive_in() {
    let shop = Shop::new();
    let (id, address) = shop.session("10", Two);
    let output =
        bitcoin_checkout::OutPoint::new(bitcoin_checkout::Txid::from_byte_array([7; 32]), 0);
    let view = |seq: u64, confirmations: u32| {
        bitcoin_checkout::TransferReport::onchain(output, address.clone(), Sats::new(10_000))
            .confirmations(confirmations)
            .sequenced(seq)
    };
    shop.checkout.record_transfer(view(5, 2)).expect("recorded");
    assert_eq!(shop.get(id).status(), SessionStatus::Paid);
    // An older view (0 confirmations) arriving late changes nothing…
    shop.checkout.record_transfer(view(4, 0)).expect("ignored");
    // …nor does a plain report once a view moved the transfer.
    let plain =
        bitcoin_checkout::TransferReport::onchain(output, address.clone(), Sats::new(10_000));
    shop.checkout
        .record_transfer(plain.reversed())
        .expect("ignored");
    let s = shop.get(id);
    let t = s.transfers().next().expect("one");
    assert_eq!(
        (t.confirmations, t.reversed, t.sequence),
        (2, false, Some(5))
    );
    // A newer view lowers the confirmations: pending again, the session stays paid.
    shop.checkout.record_transfer(view(6, 1)).expect("applied");
    let s = shop.get(id);
    assert_eq!(counted(&s), 0);
    assert_eq!(s.status(), SessionStatus::Paid);
    assert_eq!(s.totals().pending.get(), 10_000_000);
}
