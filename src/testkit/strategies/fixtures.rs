//! The fixed inputs the harness uses: the session's id and address, the start time, payment
//! ids, invoice hashes, txids and payment requests.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::chain::Txid;
use crate::id::{PaymentId, SessionId};
use crate::request::{Hash32, LightningInvoice, PaymentHash, PaymentRequest};
use crate::session::QuoteTerms;
use crate::testkit::model::SessionSpec;

/// The on-chain address the harness gives every session.
pub const ADDRESS: &str = "bcrt1qtestaddress0000000000000000000000000";
/// An address no session of the harness has.
pub const WRONG_ADDRESS: &str = "bcrt1qwrongaddress000000000000000000000000";
/// The id of the harness's session.
pub const SESSION_ID: SessionId = SessionId::from_uuid(Uuid::from_bytes([7; 16]));

/// When the harness's session is created: 2026-01-01T00:00:00Z.
pub fn start_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The id of the `n`th quote the harness issues (from 1).
pub fn payment_id(n: u32) -> PaymentId {
    let mut b = [0u8; 16];
    b[12..].copy_from_slice(&n.to_be_bytes());
    PaymentId::from_uuid(Uuid::from_bytes(b))
}

/// The payment hash of the `n`th quote's invoice (from 1).
pub fn invoice_hash(n: u32) -> PaymentHash {
    let mut b = [0u8; 32];
    b[28..].copy_from_slice(&n.to_be_bytes());
    Hash32::from_bytes(b)
}

/// The `n`th transaction id, shown as `abab…ab` and `n` in 8 hex digits.
pub fn txid(n: u32) -> Txid {
    let mut b = [0xabu8; 32];
    b[28..].copy_from_slice(&n.to_be_bytes());
    // `b` is the order shown; a txid keeps the reverse (internal byte order).
    b.reverse();
    Txid::from_byte_array(b)
}

/// The payment request the harness makes for the `n`th quote: invoice [`invoice_hash`]`(n)`
/// expiring with the quote when Lightning is accepted, [`ADDRESS`] when on-chain is.
pub fn request_for(spec: &SessionSpec, terms: &QuoteTerms, n: u32) -> PaymentRequest {
    PaymentRequest {
        lightning: spec.lightning.then(|| LightningInvoice {
            payment_request: format!("lntest{}n1fake{n}", terms.target_msats().get()),
            payment_hash: invoice_hash(n),
            expires_at: terms.expires_at(),
        }),
        onchain_address: spec.onchain.then(|| ADDRESS.to_owned()),
    }
}
