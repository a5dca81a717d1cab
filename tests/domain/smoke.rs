use crate::common;
use bitcoin_checkout::*;
use common::*;

#[test]
fn full_lightning_payment_pays() {
    let (mut s, ev) = session_with(SessionParams::new(dec("25.00"), usd()));
    assert_eq!(types(&ev), ["checkout_session.created", "payment.created"]);
    let p = s.open_payment().expect("open").clone();
    assert_eq!(p.target(), Sats::new(25_000));
    let ev = s
        .record_transfer(
            TransferReport::lightning(hash(1), Msats::new(25_000_000)),
            at(10),
        )
        .expect("record")
        .into_events();
    println!("{}", s.to_json());
    assert_eq!(
        types(&ev),
        [
            "checkout_session.transfer_received",
            "payment.paid",
            "checkout_session.payment_paid",
            "checkout_session.paid"
        ]
    );
    let back = CheckoutSession::from_json(&s.to_json()).expect("roundtrip");
    assert_eq!(back, s);
}
