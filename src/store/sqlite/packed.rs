//! The live rows' JSON, packed (ADR 25): a session's head and a payment's body are kept as
//! zstd frames compressed against a dictionary for their kind of row.
//!
//! Those two columns are most of a session's bytes, and most of their bytes are the same
//! from one row to the next: the field names, `null`s, the currencies and statuses. A
//! general compressor learns nothing from one row of 800 bytes, but one that starts from a
//! sample row (the dictionary) only has to spell out what this row says differently: the
//! ids, times, texts, address and invoice. That takes a head from about 840 bytes to 220
//! and a payment from about 1,040 (most of it an invoice, which does not compress much)
//! to 420.
//!
//! Format 2 (ADR 28) replaced the hand-written samples of format 1 by dictionaries trained
//! on a few hundred rows (`scripts/train-dictionaries`): their content is what the rows
//! share, and they carry entropy tables, so a frame neither describes its own tables nor
//! has them built for it. Against format 1, on rows the training did not see, that packs
//! a head in about 100 bytes instead of 165 and a payment in about 290 instead of 390,
//! 2.8x and 1.9x as fast, and unpacks them 3.2x and 2.4x as fast (`zstd -b3`).
//!
//! # Contract
//! - [`pack`] then [`unpack`] gives back the JSON byte for byte: the rows still splice into
//!   the wire form of the object (ADR 22).
//! - A packed value starts with its format byte. Format [`ZSTD_DICTIONARY_1`] is a zstd
//!   frame (with its content size) compressed against [`HEAD_DICTIONARY_1`] or
//!   [`PAYMENT_DICTIONARY_1`]; format [`ZSTD_DICTIONARY_2`] one against the kind's trained
//!   dictionary in `dictionaries/` (its frames name the dictionary's id, so one kind's
//!   dictionary refuses the other's). [`pack`] writes format 2; [`unpack`] reads both.
//!   A dictionary never changes once released: rows written with it must read back. A
//!   better one gets a new format byte.
//! - A value that does not unpack (unknown format, damaged frame, no or an implausible
//!   content size, not UTF-8) is [`Corruption`], never a panic.
//!
//! The compression contexts are kept per thread: creating one costs more than using it.

use std::cell::RefCell;
use std::sync::OnceLock;

use zstd_safe::{CCtx, CDict, DCtx, DDict};

use crate::store::{Corruption, StoreError};

/// The format byte of a zstd frame compressed against the kind's dictionary 1.
const ZSTD_DICTIONARY_1: u8 = 1;

/// The format byte of a zstd frame compressed against the kind's trained dictionary 2.
const ZSTD_DICTIONARY_2: u8 = 2;

/// The format [`pack`] writes.
const FORMAT: u8 = ZSTD_DICTIONARY_2;

/// zstd's default level: at these sizes level 1 is no faster and a little larger, and the
/// higher levels gain a few bytes for twice the time or more (measured with format 1).
const LEVEL: i32 = 3;

/// The largest JSON a packed value may claim to hold. A session's head and a payment are a
/// few kilobytes even at the input limits; a frame claiming more is damaged.
const MAX_UNPACKED: u64 = 1 << 24;

/// The kind of a packed column: each has its own dictionary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `sessions.head`: a session without its payments and transfers.
    Head,
    /// `payments.body`: one payment.
    Payment,
}

/// The sample a session head is compressed against: the field names in their order and the
/// values most heads share, the rarer values first (zstd reaches the nearest ones for fewer
/// bits). Never edit it: heads packed with it must read back.
const HEAD_DICTIONARY_1: &str = concat!(
    r#""livemode":true,"status":"deactivated","status":"active","currency":"EUR","#,
    r#""currency":"GBP","target_currency":"BTC","payment_methods":["lightning"],"#,
    r#""payment_methods":["onchain"],"source":"payment_link","source":"checkout_link","#,
    r#""flags":[{"kind":"overpaid","kind":"late","kind":"paid_after_expiry","#,
    r#""kind":"reversed","kind":"refund_due","metadata":{"order_id":""#,
    r#"{"id":"cs_","object":"checkout_session","livemode":false,"status":"paid","#,
    r#""currency":"USD","amount":1,"target_currency":"SATS","ttl":600,"#,
    r#""payment_methods":["lightning","onchain"],"confirmations":1,"#,
    r#""amount_paid_tolerance":0,"statement_descriptor":null,"description":null,"#,
    r#""success_url":"https://","success_message":null,"cancel_url":"https://","#,
    r#""title":null,"title_description":null,"title_image":null,"source":null,"#,
    r#""source_id":null,"metadata":{},"amount_paid":null,"target_amount_paid":null,"#,
    r#""target_amount_pending":null,"onchain_address":"bc1q","payments":[],"#,
    r#""payments_count":1,"flags":[],"paid_at":null,"deactivated_at":null,"#,
    r#""created":17,"modified":17,"version":1}"#,
);

/// The sample a payment is compressed against (as [`HEAD_DICTIONARY_1`]). Never edit it.
const PAYMENT_DICTIONARY_1: &str = concat!(
    r#""status":"expired","status":"cancelled","currency":"EUR","currency":"GBP","#,
    r#""target_currency":"BTC","exchange_rate_source":"coingecko","#,
    r#""exchange_rate_source":"coinbase","exchange_rate_source":"kraken","lnbc","lntb","#,
    r#""bc1q","tb1q","bc1p","#,
    r#"{"id":"pi_","object":"payment","status":"unpaid","checkout_session":"cs_","#,
    r#""currency":"USD","amount":1,"exchange_rate":1,"exchange_rate_source":"fixed","#,
    r#""exchange_rate_fetched_at":17,"target_currency":"SATS","target_amount":1,"#,
    r#""target_amount_paid":null,"payment_method_options":{"lightning":{"#,
    r#""payment_request":"lnbcrt","payment_hash":"","expires_at":17},"#,
    r#""onchain":{"address":"bcrt1q"}},"created":17,"modified":17,"expires_at":17,"#,
    r#""paid_at":null,"expired_at":null,"cancelled_at":null}"#,
);

/// The trained dictionaries of format 2 (zstd's dictionary format: content and entropy
/// tables, ids 32770 and 32771). Never replace them: rows packed with them must read back.
const HEAD_DICTIONARY_2: &[u8] = include_bytes!("dictionaries/head-2.zdict");
const PAYMENT_DICTIONARY_2: &[u8] = include_bytes!("dictionaries/payment-2.zdict");

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Head => "head",
            Kind::Payment => "payment",
        }
    }

    /// The kind's dictionary of `format` (1 or 2), prepared once per process.
    fn prepared(self, format: u8) -> Result<&'static Prepared, StoreError> {
        static HEAD_1: OnceLock<Option<Prepared>> = OnceLock::new();
        static PAYMENT_1: OnceLock<Option<Prepared>> = OnceLock::new();
        static HEAD_2: OnceLock<Option<Prepared>> = OnceLock::new();
        static PAYMENT_2: OnceLock<Option<Prepared>> = OnceLock::new();
        let (cell, dictionary) = match (self, format) {
            (Kind::Head, ZSTD_DICTIONARY_1) => (&HEAD_1, HEAD_DICTIONARY_1.as_bytes()),
            (Kind::Payment, ZSTD_DICTIONARY_1) => (&PAYMENT_1, PAYMENT_DICTIONARY_1.as_bytes()),
            (Kind::Head, _) => (&HEAD_2, HEAD_DICTIONARY_2),
            (Kind::Payment, _) => (&PAYMENT_2, PAYMENT_DICTIONARY_2),
        };
        cell.get_or_init(|| {
            Some(Prepared {
                pack: CDict::try_create(dictionary, LEVEL)?,
                unpack: DDict::try_create(dictionary)?,
            })
        })
        .as_ref()
        // Kept for the process once made (or not): a retry would meet the same failure.
        .ok_or_else(|| StoreError::Backend {
            message: "zstd could not allocate the dictionaries".to_owned(),
            retryable: false,
        })
    }
}

/// A dictionary prepared for each direction (zstd digests it once, not per row).
struct Prepared {
    pack: CDict<'static>,
    unpack: DDict<'static>,
}

thread_local! {
    static PACKER: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static UNPACKER: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// A context zstd could not allocate: the next call tries again.
fn out_of_memory(what: &str) -> StoreError {
    StoreError::Backend {
        message: format!("zstd could not allocate {what}"),
        retryable: true,
    }
}

/// `json` packed for a column of `kind`.
pub(super) fn pack(kind: Kind, json: &str) -> Result<Vec<u8>, StoreError> {
    pack_as(FORMAT, kind, json)
}

/// `json` packed in `format` (1 or 2; the tests write format 1, which rows still hold).
fn pack_as(format: u8, kind: Kind, json: &str) -> Result<Vec<u8>, StoreError> {
    let dictionary = &kind.prepared(format)?.pack;
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(json.len()) + 1);
    PACKER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = CCtx::try_create();
        }
        let cctx = cell
            .as_mut()
            .ok_or_else(|| out_of_memory("a compression context"))?;
        cctx.compress_using_cdict(&mut out, json.as_bytes(), dictionary)
            .map_err(|code| StoreError::Backend {
                message: format!(
                    "zstd could not pack a {}: {}",
                    kind.name(),
                    zstd_safe::get_error_name(code)
                ),
                retryable: false,
            })
    })?;
    out.insert(0, format);
    Ok(out)
}

/// The JSON a column of `kind` keeps in `packed`; `row` names the row in an error.
pub(super) fn unpack(
    kind: Kind,
    packed: &[u8],
    row: &dyn Fn() -> String,
) -> Result<String, StoreError> {
    let damaged = |reason: String| -> StoreError {
        Corruption::undecodable(row(), format!("its packed {}: {reason}", kind.name())).into()
    };
    let (format, frame) = match packed.split_first() {
        Some((&format @ (ZSTD_DICTIONARY_1 | ZSTD_DICTIONARY_2), frame)) => (format, frame),
        Some((format, _)) => return Err(damaged(format!("unknown format {format}"))),
        None => return Err(damaged("empty".to_owned())),
    };
    let size = match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_UNPACKED => size,
        Ok(Some(size)) => return Err(damaged(format!("claims {size} bytes"))),
        Ok(None) | Err(_) => return Err(damaged("no content size".to_owned())),
    };
    // Bounded above, so the conversion only fails on a 16-bit target: as damaged.
    let size = usize::try_from(size).map_err(|_| damaged(format!("claims {size} bytes")))?;
    let dictionary = &kind.prepared(format)?.unpack;
    let mut json = Vec::with_capacity(size);
    let written = UNPACKER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = DCtx::try_create();
        }
        let dctx = cell
            .as_mut()
            .ok_or_else(|| out_of_memory("a decompression context"))?;
        dctx.decompress_using_ddict(&mut json, frame, dictionary)
            .map_err(|code| damaged(zstd_safe::get_error_name(code).to_owned()))
    })?;
    if written != size {
        return Err(damaged(format!("{written} bytes where it claims {size}")));
    }
    String::from_utf8(json).map_err(|e| damaged(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> String {
        "session cs_1".to_owned()
    }

    #[test]
    fn packed_json_reads_back_byte_for_byte_and_smaller() {
        let head = r#"{"id":"cs_01a250af38b57d0a876ffba4adc191a3","object":"checkout_session","livemode":false,"status":"paid","currency":"USD","amount":25,"target_currency":"SATS","ttl":600,"payment_methods":["lightning","onchain"],"confirmations":1,"amount_paid_tolerance":0,"statement_descriptor":null,"description":"Satoshi's Coffee, order 0 — ☕","success_url":"https://shop.example.com/thanks?order=0","success_message":null,"cancel_url":"https://shop.example.com/cart","title":null,"title_description":null,"title_image":null,"source":null,"source_id":null,"metadata":{},"amount_paid":25,"target_amount_paid":25000,"target_amount_pending":null,"onchain_address":"bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk","payments":[],"payments_count":1,"flags":[],"paid_at":1796649990326,"deactivated_at":null,"created":1796649990325,"modified":1796649990326,"version":2}"#;
        let packed = pack(Kind::Head, head).expect("pack");
        assert_eq!(packed[0], ZSTD_DICTIONARY_2);
        assert!(
            packed.len() * 5 < head.len(),
            "{} of {}",
            packed.len(),
            head.len()
        );
        assert_eq!(unpack(Kind::Head, &packed, &row).expect("unpack"), head);
        // Each kind has its own dictionary, named by the frame: the payment's refuses a head.
        let crossed = unpack(Kind::Payment, &packed, &row);
        assert!(
            matches!(crossed, Err(StoreError::Corrupt(_))),
            "{crossed:?}"
        );
        // Rows packed before format 2 still read back, and format 2 is smaller.
        let older = pack_as(ZSTD_DICTIONARY_1, Kind::Head, head).expect("pack");
        assert_eq!(older[0], ZSTD_DICTIONARY_1);
        assert_eq!(unpack(Kind::Head, &older, &row).expect("unpack"), head);
        assert!(
            packed.len() < older.len(),
            "{} >= {}",
            packed.len(),
            older.len()
        );
        for json in ["", "{}", "\u{0}", &"x".repeat(100_000)] {
            let packed = pack(Kind::Payment, json).expect("pack");
            assert_eq!(unpack(Kind::Payment, &packed, &row).expect("unpack"), json);
        }
    }

    /// Values as released versions packed them: the dictionaries must never change.
    #[test]
    fn released_formats_read_back() {
        let json = r#"{"id":"cs_1","status":"active"}"#;
        for format in [ZSTD_DICTIONARY_1, ZSTD_DICTIONARY_2] {
            let hex = GOLDEN
                .iter()
                .find(|(f, _)| *f == format)
                .map(|(_, hex)| *hex)
                .expect("a golden value per format");
            // Packing is deterministic: the same value again (the dictionaries are the same).
            let again = pack_as(format, Kind::Head, json).expect("pack");
            let again: String = again.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(again, hex, "format {format}");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            assert_eq!(unpack(Kind::Head, &bytes, &row).expect("unpack"), json);
        }
    }

    /// `{"id":"cs_1","status":"active"}` packed as a head in each format.
    const GOLDEN: [(u8, &str); 2] = [
        (
            ZSTD_DICTIONARY_1,
            "0128b52ffd201f65000010317d0200e445924c9b0002",
        ),
        (
            ZSTD_DICTIONARY_2,
            "0228b52ffd2202801f6d00001831227d02fc1c2a2b65059e0c",
        ),
    ];

    #[test]
    fn a_damaged_value_is_corrupt_never_a_panic() {
        let packed = pack(Kind::Head, r#"{"id":"cs_1","status":"active"}"#).expect("pack");
        let mut unknown_format = packed.clone();
        unknown_format[0] = 3;
        let mut no_size = packed.clone();
        no_size.truncate(3);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("unknown format", unknown_format),
            ("truncated", packed[..packed.len() - 1].to_vec()),
            ("header only", no_size),
            ("text", br#"{"id":"cs_1"}"#.to_vec()),
        ];
        for (case, bytes) in cases {
            let error = unpack(Kind::Head, &bytes, &row).expect_err(case);
            assert!(matches!(error, StoreError::Corrupt(_)), "{case}: {error}");
            assert!(
                error.to_string().contains("session cs_1"),
                "{case}: {error}"
            );
        }
        // Any changed byte reads back as some text (which the row mapping then checks) or
        // is refused as corrupt; never a panic or another kind of error.
        for at in 0..packed.len() {
            let mut flipped = packed.clone();
            flipped[at] ^= 0x5a;
            let read = unpack(Kind::Head, &flipped, &row);
            assert!(
                read.is_ok() || read.is_err_and(|e| matches!(e, StoreError::Corrupt(_))),
                "byte {at}"
            );
        }
    }
}
