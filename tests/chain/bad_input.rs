//! Bad input to the watcher: typed errors, and nothing applied.

use bitcoin::hashes::Hash as _;
use bitcoin_checkout::backend::ResumePoint;
use bitcoin_checkout::request::RequestError;
use bitcoin_checkout::request::onchain::{AddressDeriver, Network};
use bitcoin_checkout::store::ResumeStore;
use bitcoin_checkout::watch::{ChainWatcher, WatchConfig, WatchError};

use crate::chain::{Chain, pay};
use crate::shop::{DESCRIPTOR, Shop, deriver, follow};

#[test]
fn an_address_of_another_network_is_refused() {
    let w = ChainWatcher::new(deriver(), WatchConfig::default());
    let mainnet = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu";
    assert!(matches!(
        w.index_of(mainnet),
        Err(WatchError::Request(RequestError::NetworkMismatch { .. }))
    ));
    let ours = deriver().address_at(3).expect("address");
    assert_eq!(
        w.index_of(&ours).expect("valid"),
        Some(3),
        "in the lookahead"
    );
    // A descriptor of test keys is refused for mainnet.
    assert!(matches!(
        AddressDeriver::new(DESCRIPTOR, Network::Bitcoin),
        Err(RequestError::NetworkMismatch { .. })
    ));
}

#[test]
fn a_descriptor_without_wildcard_is_refused() {
    let fixed = DESCRIPTOR.replace("/0/*", "/0/7");
    assert_eq!(
        AddressDeriver::new(&fixed, Network::Regtest).unwrap_err(),
        RequestError::NoWildcard
    );
}

#[test]
fn a_block_that_does_not_connect_is_refused_and_changes_nothing() {
    let shop = Shop::new();
    let mut chain = Chain::new();
    let mut w = shop.watcher();
    let (_, address) = shop.session("10", bitcoin_checkout::transfer::ConfirmationPolicy::One);
    follow(&shop, &mut w, &chain);
    let before = (w.tip(), w.state());
    // A gap: block 3 before block 2.
    chain.mine_empty(1);
    let three = chain.mine(vec![pay(&[chain.coin()], &[(&address, 1_000)], false)]);
    assert!(matches!(
        w.apply_block(&three, 3),
        Err(WatchError::BlockDoesNotConnect { height: 3, .. })
    ));
    // Another chain's genesis block.
    let mainnet = bitcoin::constants::genesis_block(Network::Bitcoin);
    assert!(matches!(
        w.apply_block(&mainnet, 0),
        Err(WatchError::WrongChain { .. })
    ));
    // A block whose transactions are not those of its header.
    let mut tampered = chain.at(2).clone();
    tampered.header.merkle_root = bitcoin::TxMerkleNode::all_zeros();
    assert!(matches!(
        w.apply_block(&tampered, 2),
        Err(WatchError::BlockDoesNotConnect { .. } | WatchError::InvalidBlock { .. })
    ));
    let mut forged = chain.at(2).clone();
    forged
        .txdata
        .push(pay(&[chain.coin()], &[(&address, 5)], false));
    assert!(matches!(
        w.apply_block(&forged, 2),
        Err(WatchError::InvalidBlock { height: 2, .. })
    ));
    assert_eq!((w.tip(), w.state()), before, "nothing applied");
}

#[test]
fn a_saved_state_of_another_descriptor_or_garbage_is_refused() {
    let shop = Shop::new();
    let mut w = shop.watcher();
    shop.sync(&mut w);
    let saved = shop
        .checkout
        .store()
        .resume_point(w.name())
        .expect("read")
        .expect("saved");
    let store = bitcoin_checkout::store::MemoryStore::new();
    let other = deriver();
    let name = ChainWatcher::new(other.clone(), WatchConfig::default())
        .name()
        .to_owned();
    store
        .save_resume_point(&name, None, &ResumePoint::new("{not json"))
        .expect("saved");
    assert!(matches!(
        ChainWatcher::load(&store, other.clone(), WatchConfig::default()),
        Err(WatchError::InvalidState(_))
    ));
    let elsewhere = saved.as_str().replace(
        &deriver().descriptor(),
        "wpkh(tpubD6NzVbkrYhZ4XgiXtGrdW5XDAPFCL9h7we1vwNCpn8tGbBcgfVYjXyhWo4E1xkh56hjod1RhGjxbaTLV3X4FyWuejifB9jusQ46QzG87VKp/0/*)#0",
    );
    let store = bitcoin_checkout::store::MemoryStore::new();
    store
        .save_resume_point(&name, None, &ResumePoint::new(elsewhere))
        .expect("saved");
    assert!(matches!(
        ChainWatcher::load(&store, other, WatchConfig::default()),
        Err(WatchError::InvalidState(_))
    ));
}
