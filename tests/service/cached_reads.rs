//! `get` through the session cache (ADR 26): a copy is returned only while the store says
//! the session is still at its version, so a change made elsewhere (another service on
//! the same database, another server) is seen at the next read.

use crate::common;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{MemoryStore, Reload, SqliteStore, Store};
use bitcoin_checkout::*;
use common::*;

fn checks_on<S: Store>(name: &str, store: &S) {
    let clock = ManualClock::new(t0());
    let rates = || FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let here = Checkout::new(store, rates(), TestRequestGenerator).with_clock(&clock);
    let elsewhere = Checkout::new(store, rates(), TestRequestGenerator).with_clock(&clock);

    let created = here
        .create(SessionParams::new(dec("25.00"), usd()), None)
        .expect("create");
    // Cached at creation: the read is the committed session, as a load gives it.
    let read = here.get(created.id()).expect("get");
    assert_eq!(read, created, "{name}");
    assert_eq!(store.load(created.id()).expect("load"), Some(read.clone()));
    assert_eq!(
        store.load_if_changed(created.id(), read.version()),
        Ok(Reload::Unchanged),
        "{name}"
    );

    // Another service pays part of it: the first one's copy is stale and is not used.
    let hash = TestRequestGenerator::payment_hash(read.open_payment().expect("quote").id());
    let paid = elsewhere
        .record_transfer(TransferReport::lightning(hash, Msats::new(5_000_000)))
        .expect("record");
    assert!(paid.version() > read.version(), "{name}");
    let again = here.get(created.id()).expect("get after the change");
    assert_eq!(again, paid, "{name}: the change made elsewhere is seen");
    assert_ne!(again, read, "{name}: not the stale copy");
    // And read again while nothing moves: the same session.
    assert_eq!(here.get(created.id()).expect("get"), paid, "{name}");
}

#[test]
fn a_cached_read_sees_a_change_made_by_another_service() {
    checks_on("memory", &MemoryStore::new());
    checks_on("sqlite", &SqliteStore::open_in_memory().expect("sqlite"));
    let dir = std::env::temp_dir().join(format!("cached-reads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("c.db");
    let _ = std::fs::remove_file(&path);
    // On a file in WAL mode reads go through the reader connection.
    checks_on("sqlite file", &SqliteStore::open(&path).expect("open"));
    let _ = std::fs::remove_dir_all(&dir);
}
