//! Schema 18 lists a session's transfer keys in its own row instead of the index
//! `transfers_by_session` (ADR 34): past 20 keys the rest go to
//! `session_transfers_beyond`, a transfer reported again is not listed twice, and a
//! database of schema 17 upgrades with every session loading the same.

use bitcoin_checkout::session::SessionLimits;
use bitcoin_checkout::store::{SqliteStore, Store};
use bitcoin_checkout::{
    CheckoutSession, Currency, OutPoint, Sats, SessionParams, TransferReport, Txid,
};
use rust_decimal::Decimal;

/// The number of keys a session's row lists before the rest go beyond it (the default
/// transfer cap).
const LISTED: usize = 20;

use crate::event_lists::{Service, service};

/// An on-chain payment of 1,000 sats to `s`'s address in output `n` of a transaction.
fn paid(s: &CheckoutSession, n: u64, confirmations: u32) -> TransferReport {
    let mut txid = [0x5au8; 32];
    txid[..8].copy_from_slice(&n.to_be_bytes());
    TransferReport::onchain(
        OutPoint::new(Txid::from_byte_array(txid), 0),
        s.onchain_address().expect("an address"),
        Sats::new(1_000),
    )
    .confirmations(confirmations)
}

/// A session of $1,000 with `n` on-chain transfers of 1,000 sats, numbered from `base`.
fn with_transfers(c: &Service, n: u64, base: u64) -> CheckoutSession {
    let usd = Currency::from_code("USD").expect("USD");
    // A cap above the default, so that the session keeps every transfer.
    let limits = SessionLimits::new().max_transfers(100);
    let s = c
        .create(
            SessionParams::new(Decimal::from(1_000), usd).limits(limits),
            None,
        )
        .expect("create");
    for i in 0..n {
        c.record_transfer(paid(&s, base + i, 1)).expect("record");
    }
    c.store().load(s.id()).expect("load").expect("session")
}

/// How many keys session `id`'s row lists, and how many are filed beyond it.
fn filed(path: &std::path::Path, s: &CheckoutSession) -> (usize, usize) {
    let raw = rusqlite::Connection::open(path).expect("raw connection");
    let (listed, beyond): (i64, i64) = raw
        .query_row(
            "SELECT coalesce(json_array_length(transfer_keys), 0),
                    (SELECT count(*) FROM session_transfers_beyond WHERE session_id = ?1)
             FROM sessions WHERE id = ?1",
            [s.id().to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("list");
    let count = |n: i64| usize::try_from(n).expect("count");
    (count(listed), count(beyond))
}

#[test]
fn a_session_lists_its_transfers_and_files_the_rest_beyond_its_row() {
    let dir = crate::common::TempDir::new("transfer-lists");
    let path = dir.file("transfers.sqlite3");
    let c = service(&path);
    let few = with_transfers(&c, 3, 0);
    let many = with_transfers(&c, u64::try_from(LISTED).expect("fits") + 5, 100);
    assert_eq!(few.transfers().count(), 3);
    assert_eq!(many.transfers().count(), LISTED + 5);
    assert_eq!(filed(&path, &few), (3, 0));
    assert_eq!(filed(&path, &many), (LISTED, 5));

    // The same transfer again, with more confirmations: its row changes, its key is
    // filed once.
    for (s, n) in [(&few, 0), (&many, 100 + 21)] {
        c.record_transfer(paid(s, n, 6)).expect("again");
    }
    assert_eq!(filed(&path, &few), (3, 0));
    assert_eq!(filed(&path, &many), (LISTED, 5));
    let store = SqliteStore::open(&path).expect("open");
    for s in [&few, &many] {
        let loaded = store.load(s.id()).expect("load").expect("session");
        assert_eq!(loaded.transfers().count(), s.transfers().count());
        assert_eq!(
            loaded,
            c.store().load(s.id()).expect("load").expect("session")
        );
    }
    // The key still belongs to its session alone.
    let key = paid(&many, 100 + 24, 1).key();
    assert_eq!(store.find_by_transfer(&key), Ok(Some(many.id())));
}

#[test]
fn a_database_of_schema_17_lists_every_sessions_transfers() {
    let dir = crate::common::TempDir::new("transfer-lists-upgrade");
    let path = dir.file("v17.sqlite3");
    let (few, many) = {
        let c = service(&path);
        (
            with_transfers(&c, 2, 0),
            with_transfers(&c, u64::try_from(LISTED).expect("fits") + 3, 100),
        )
    };
    {
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        raw.execute_batch(
            "ALTER TABLE sessions DROP COLUMN transfer_keys;
             DROP TABLE session_transfers_beyond;
             CREATE INDEX transfers_by_session ON transfers (session_id);
             PRAGMA user_version = 17;",
        )
        .expect("schema 17");
    }

    let c = service(&path);
    assert_eq!(
        c.store().schema_version(),
        Ok(SqliteStore::latest_schema_version())
    );
    for s in [&few, &many] {
        assert_eq!(
            c.store().load(s.id()).expect("load").as_ref(),
            Some(s),
            "loads the same"
        );
    }
    assert_eq!(filed(&path, &few), (2, 0));
    assert_eq!(filed(&path, &many), (LISTED, 3));
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let old_index: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'transfers_by_session'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    assert_eq!(old_index, 0, "the index is gone");
    drop(raw);

    // The upgraded lists go on from where they were.
    c.record_transfer(paid(&few, 50, 1)).expect("record");
    c.record_transfer(paid(&many, 150, 1)).expect("record");
    assert_eq!(filed(&path, &few), (3, 0));
    assert_eq!(filed(&path, &many), (LISTED, 4));
    for (s, n) in [(&few, 3), (&many, LISTED + 4)] {
        let loaded = c.store().load(s.id()).expect("load").expect("session");
        assert_eq!(loaded.transfers().count(), n);
    }
}

/// A listed transfer whose row is gone is corrupt, never a session that silently lost
/// the money; a row whose key was changed is reported as the row it is (its key does not
/// match its transfer), as without the list.
#[test]
fn a_listed_transfer_without_its_row_is_corrupt() {
    use bitcoin_checkout::store::{Corruption, StoreError};
    let dir = crate::common::TempDir::new("transfer-lists-damage");
    let path = dir.file("damage.sqlite3");
    let c = service(&path);
    let s = with_transfers(&c, 3, 0);
    let store = SqliteStore::open(&path).expect("open");
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    let key = paid(&s, 1, 1).key().to_string();
    raw.execute("UPDATE transfers SET key = 'ab' WHERE key = ?1", [&key])
        .expect("change a key");
    let changed = store.load(s.id());
    assert!(
        matches!(
            changed,
            Err(StoreError::Corrupt(Corruption::Mismatch {
                field: "key",
                ..
            }))
        ),
        "{changed:?}"
    );
    raw.execute("DELETE FROM transfers WHERE key = 'ab'", [])
        .expect("delete the row");
    let missing = store.load(s.id());
    assert!(
        matches!(
            missing,
            Err(StoreError::Corrupt(Corruption::Undecodable { .. }))
        ),
        "{missing:?}"
    );
}
