//! Chain data in its own types: a txid has one byte order (internal, as
//! `bitcoin::Txid::to_byte_array` gives it) and one text (reversed hex, as explorers and
//! `bitcoin::Txid` show it), so however a watcher obtains a txid the transfer key is the
//! same and an output is counted once. Before `Txid`, a `Hash32` built from the bytes and
//! one parsed from the text were two different keys for one output.

use std::str::FromStr;

use bitcoin_checkout::{Error, OutPoint, Txid};
use proptest::prelude::*;

#[cfg(feature = "onchain")]
mod from_the_bitcoin_crate {
    use bitcoin::hashes::Hash as _;
    use bitcoin_checkout::{
        CheckoutSession, OutPoint, Sats, SessionParams, TransferKey, TransferReport, Txid,
    };

    use crate::common::*;

    /// The genesis coinbase: its bytes are not a palindrome, so a byte-order mix-up shows.
    fn genesis() -> bitcoin::Txid {
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
            .parse()
            .unwrap()
    }

    fn report(outpoint: impl Into<OutPoint>) -> TransferReport {
        TransferReport::onchain(outpoint, ADDRESS, Sats::new(4_000)).confirmations(1)
    }

    #[test]
    fn every_way_to_obtain_a_txid_gives_one_transfer_key() {
        let theirs = genesis();
        let converted = Txid::from(theirs);
        let from_bytes = Txid::from_byte_array(theirs.to_byte_array());
        let from_text: Txid = theirs.to_string().parse().unwrap();
        assert_eq!(converted, from_bytes);
        assert_eq!(converted, from_text);
        assert_eq!(converted.to_string(), theirs.to_string());

        let keys = [
            report(OutPoint::new(converted, 1)).key(),
            report(OutPoint::new(from_bytes, 1)).key(),
            report(OutPoint::new(from_text, 1)).key(),
            report(bitcoin::OutPoint::new(theirs, 1)).key(),
        ];
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(keys[0].to_string(), format!("{theirs}:1"));
        assert_eq!(keys[0].to_string().parse::<TransferKey>().unwrap(), keys[0]);

        // And back, unchanged.
        assert_eq!(bitcoin::Txid::from(converted), theirs);
        assert_eq!(
            bitcoin::OutPoint::from(OutPoint::new(converted, 1)),
            bitcoin::OutPoint::new(theirs, 1)
        );
    }

    /// A watcher that reports an output once from the bytes it decoded and once from the
    /// txid an explorer printed reports one transfer: the second report is a repeat.
    #[test]
    fn a_watcher_mixing_bytes_and_text_counts_an_output_once() {
        let (mut s, _) = session_with(SessionParams::new(dec("10"), usd()));
        let theirs = genesis();
        let first = s
            .record_transfer(
                report(OutPoint::new(
                    Txid::from_byte_array(theirs.to_byte_array()),
                    0,
                )),
                at(1),
            )
            .unwrap();
        assert!(!first.events().is_empty());
        let again = s
            .record_transfer(
                report(OutPoint::new(theirs.to_string().parse().unwrap(), 0)),
                at(2),
            )
            .unwrap();
        assert!(again.events().is_empty(), "counted twice: {again:?}");
        assert_eq!(s.transfers().count(), 1);
        assert_eq!(s.totals().counted.get(), 4_000_000);
        let json = CheckoutSession::from_json(&s.to_json()).unwrap();
        assert_eq!(json, s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A txid's text is its bytes reversed, in lowercase hex; it reads back equal in either
    /// case, as does its JSON (the same string) and an outpoint's `<txid>:<vout>`.
    #[test]
    fn txid_and_outpoint_text_round_trips(bytes in proptest::array::uniform32(any::<u8>()), vout in any::<u32>()) {
        let txid = Txid::from_byte_array(bytes);
        let text = txid.to_string();
        let reference: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
        prop_assert_eq!(&text, &reference);
        prop_assert_eq!(Txid::from_str(&text).unwrap(), txid);
        prop_assert_eq!(Txid::from_str(&text.to_uppercase()).unwrap(), txid);
        prop_assert_eq!(txid.to_byte_array(), bytes);
        let json = serde_json::to_string(&txid).unwrap();
        prop_assert_eq!(&json, &format!("\"{reference}\""));
        prop_assert_eq!(serde_json::from_str::<Txid>(&json).unwrap(), txid);

        let outpoint = OutPoint::new(txid, vout);
        let text = outpoint.to_string();
        prop_assert_eq!(&text, &format!("{reference}:{vout}"));
        prop_assert_eq!(OutPoint::from_str(&text).unwrap(), outpoint);
        let json = serde_json::to_string(&outpoint).unwrap();
        prop_assert_eq!(serde_json::from_str::<OutPoint>(&json).unwrap(), outpoint);
    }

    /// Anything but exactly 64 hex digits is refused with `InvalidTxid`.
    #[test]
    fn txid_from_str_refuses_wrong_lengths_and_non_hex(len in 0usize..140, pos in 0usize..64, junk in any::<char>()) {
        prop_assume!(len != 64);
        let wrong_length = "a".repeat(len);
        let refused = |r: Result<Txid, Error>| matches!(r, Err(Error::InvalidTxid { .. }));
        prop_assert!(refused(Txid::from_str(&wrong_length)), "length {}", len);
        prop_assume!(!junk.is_ascii_hexdigit());
        let mut bad: Vec<char> = "ab".repeat(32).chars().collect();
        bad[pos] = junk;
        let bad: String = bad.into_iter().collect();
        prop_assert!(refused(Txid::from_str(&bad)), "{:?}", bad);
        // A junk ':' splits the outpoint elsewhere, which is refused as an outpoint.
        let outpoint = OutPoint::from_str(&format!("{bad}:0"));
        let refused_outpoint = matches!(outpoint, Err(Error::InvalidTxid { .. } | Error::InvalidOutPoint { .. }));
        prop_assert!(refused_outpoint, "{:?}", bad);
    }
}

#[cfg(feature = "onchain")]
proptest! {
    /// The crate's text and the `bitcoin` crate's agree for every txid, both ways.
    #[test]
    fn txid_text_agrees_with_the_bitcoin_crate(bytes in proptest::array::uniform32(any::<u8>()), vout in any::<u32>()) {
        use bitcoin::hashes::Hash as _;
        let theirs = bitcoin::Txid::from_byte_array(bytes);
        let ours = Txid::from_byte_array(bytes);
        prop_assert_eq!(ours.to_string(), theirs.to_string());
        prop_assert_eq!(Txid::from(theirs), ours);
        prop_assert_eq!(theirs.to_string().parse::<Txid>().unwrap(), ours);
        prop_assert_eq!(ours.to_string().parse::<bitcoin::Txid>().unwrap(), theirs);
        let outpoint = bitcoin::OutPoint::new(theirs, vout);
        prop_assert_eq!(OutPoint::from(outpoint).to_string(), outpoint.to_string());
    }
}
