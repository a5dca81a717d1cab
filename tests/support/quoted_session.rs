//! The session the core's benchmark and allocation test record on: $25 at 1000 sats/USD,
//! Lightning and on-chain, zero-conf, with one open quote (an invoice and `ADDRESS`).

use bitcoin_checkout::request::{Hash32, LightningInvoice, PaymentRequest};
use bitcoin_checkout::*;
use rust_decimal::Decimal;
use time::OffsetDateTime;

/// The quote's on-chain address.
pub const ADDRESS: &str = "bcrt1qfixture";

/// The creation time.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A hash whose first bytes are `n`.
pub fn hash(n: u32) -> Hash32 {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    Hash32::from_bytes(b)
}

/// An on-chain report of `sats` to `ADDRESS` in the transaction with the bytes of
/// `hash(txid)`, unconfirmed.
pub fn onchain(txid: u32, sats: u64) -> TransferReport {
    let txid = Txid::from_byte_array(hash(txid).to_bytes());
    TransferReport::onchain(OutPoint::new(txid, 0), ADDRESS, Sats::new(sats))
}

/// The session, with its quote issued at `t0`.
pub fn quoted_session() -> CheckoutSession {
    let usd = Currency::from_code("USD").unwrap_or(Currency::Sats);
    let params = SessionParams::new(Decimal::new(2500, 2), usd)
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
        .confirmations(ConfirmationPolicy::ZeroConf);
    let (mut s, _) = CheckoutSession::create(SessionId::generate(), params, t0())
        .unwrap_or_else(|e| panic!("{e}"));
    let rate = ExchangeRate::new(
        usd,
        TargetCurrency::Sats,
        Decimal::from(1_000),
        "fixed",
        t0(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let terms = s
        .next_quote(PaymentId::generate(), rate, t0())
        .unwrap_or_else(|e| panic!("{e}"));
    let request = PaymentRequest {
        lightning: Some(LightningInvoice {
            payment_request: format!("lntest{}n1", terms.target_msats().get()),
            payment_hash: hash(0),
            expires_at: terms.expires_at(),
        }),
        onchain_address: Some(ADDRESS.into()),
    };
    // The change is what a store would commit; these benches and tests only time commands.
    let _change = s
        .issue_quote(terms, request, t0())
        .unwrap_or_else(|e| panic!("{e}"));
    s
}
