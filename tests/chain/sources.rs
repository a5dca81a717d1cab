//! The block sources' mapping from BDK's client types to the watcher, on synthetic
//! blocks (no node or server runs here: see docs/onchain.md).

#[cfg(feature = "bitcoind-rpc")]
mod bitcoind {
    use std::sync::Arc;

    use bdk_bitcoind_rpc::{BlockEvent, MempoolEvent};
    use bdk_chain::CheckPoint;
    use bitcoin_checkout::SessionStatus;
    use bitcoin_checkout::transfer::ConfirmationPolicy;
    use bitcoin_checkout::watch::bitcoind::{apply_block_event, apply_mempool_event};

    use crate::chain::{Chain, pay};
    use crate::shop::Shop;

    #[test]
    fn emitter_blocks_and_mempool_events_reach_the_sessions() {
        let shop = Shop::new();
        let mut chain = Chain::new();
        let mut w = shop.watcher();
        let (id, address) = shop.session("10", ConfirmationPolicy::One);
        let tx = pay(&[chain.coin()], &[(&address, 10_000)], false);
        let mut checkpoint = w.checkpoint();
        // The emitter gives the chain's blocks with their checkpoints…
        for h in 1..=chain.height() {
            let block = chain.at(h).clone();
            checkpoint = checkpoint.insert(bdk_chain::BlockId {
                height: h,
                hash: block.block_hash(),
            });
            let event = BlockEvent {
                block,
                checkpoint: checkpoint.clone(),
            };
            apply_block_event(&mut w, &event).expect("connects");
        }
        // …then the mempool.
        let event = MempoolEvent {
            update: vec![(Arc::new(tx.clone()), 1_700_000_000)],
            evicted: Vec::new(),
        };
        apply_mempool_event(&mut w, event);
        shop.sync(&mut w);
        assert_eq!(shop.get(id).totals().pending.get(), 10_000_000);
        // Mined in the next block: paid.
        let block = chain.mine(vec![tx]);
        let event = BlockEvent {
            checkpoint: CheckPoint::new(bdk_chain::BlockId {
                height: chain.height(),
                hash: block.block_hash(),
            }),
            block,
        };
        apply_block_event(&mut w, &event).expect("connects");
        shop.sync(&mut w);
        assert_eq!(shop.get(id).status(), SessionStatus::Paid);
    }

    #[test]
    fn an_evicted_mempool_payment_is_reversed() {
        let shop = Shop::new();
        let chain = Chain::new();
        let mut w = shop.watcher();
        let (id, address) = shop.session("10", ConfirmationPolicy::One);
        let tx = pay(&[chain.coin()], &[(&address, 10_000)], false);
        let seen = MempoolEvent {
            update: vec![(Arc::new(tx.clone()), 100)],
            evicted: Vec::new(),
        };
        apply_mempool_event(&mut w, seen);
        shop.sync(&mut w);
        let gone = MempoolEvent {
            update: Vec::new(),
            evicted: vec![(tx.compute_txid(), 200)],
        };
        apply_mempool_event(&mut w, gone);
        shop.sync(&mut w);
        let s = shop.get(id);
        assert!(s.transfers().next().expect("kept").reversed);
        assert_eq!(s.totals().pending.get(), 0);
    }
}

#[cfg(feature = "esplora")]
mod esplora {
    use std::sync::Arc;

    use bdk_chain::spk_client::SyncResponse;
    use bdk_chain::{BlockId, CheckPoint, ConfirmationBlockTime, TxUpdate};
    use bitcoin_checkout::SessionStatus;
    use bitcoin_checkout::transfer::ConfirmationPolicy;
    use bitcoin_checkout::watch::esplora::{apply_sync_response, sync_request};

    use crate::chain::{Chain, pay};
    use crate::shop::Shop;

    #[test]
    fn a_sync_asks_for_every_watched_address_and_its_answer_reaches_the_sessions() {
        let shop = Shop::new();
        let mut chain = Chain::new();
        let mut w = shop.watcher();
        let (id, address) = shop.session("10", ConfirmationPolicy::One);
        shop.sync(&mut w); // watches index 0 and the lookahead
        let request = sync_request(&w, 1_700_000_000);
        let progress = request.progress();
        assert_eq!(
            progress.total_spks(),
            21,
            "the address handed out and 20 ahead"
        );
        assert_eq!(request.chain_tip().map(|cp| cp.height()), Some(0));
        // The server answers: the payment, confirmed in the block at the tip.
        let tx = pay(&[chain.coin()], &[(&address, 10_000)], false);
        let block = chain.mine(vec![tx.clone()]);
        let tip = BlockId {
            height: chain.height(),
            hash: block.block_hash(),
        };
        let genesis = BlockId {
            height: 0,
            hash: chain.at(0).block_hash(),
        };
        let mut tx_update = TxUpdate::default();
        tx_update.txs.push(Arc::new(tx.clone()));
        tx_update.anchors.insert((
            ConfirmationBlockTime {
                block_id: tip,
                confirmation_time: u64::from(block.header.time),
            },
            tx.compute_txid(),
        ));
        let response = SyncResponse {
            chain_update: Some(CheckPoint::from_block_ids([genesis, tip]).expect("ordered")),
            tx_update,
        };
        apply_sync_response(&mut w, response).expect("connects");
        shop.sync(&mut w);
        assert_eq!(shop.get(id).status(), SessionStatus::Paid);
        assert_eq!(w.tip().0, chain.height());
    }
}
