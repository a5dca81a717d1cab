//! Standard Webhooks verification of incoming requests (feature `webhooks`).
//!
//! Invariants:
//! * arbitrary header values and body, verified with a fixed secret: never a panic, always
//!   an `Err` (nobody without the secret can make a valid signature);
//! * a message signed with `SignatureHeader` (fuzz-chosen id, body and clock skew) verifies
//!   iff its timestamp is within the tolerance, through `verify` and `verify_raw`, with or
//!   without base64 padding, and among any other signature entries;
//! * flipping a byte of the body, appending or dropping one, changing the id or the
//!   timestamp, or verifying with another secret makes it fail; a verifier holding both
//!   secrets (key rotation) accepts either signature;
//! * `WebhookSecret::parse` of arbitrary text never panics, and a secret it accepts signs
//!   messages that verify.
#![no_main]

use arbitrary::Arbitrary;
use bitcoin_checkout::webhook::{
    SignatureHeader, Verifier, VerifyError, WebhookHeaders, WebhookSecret, sign,
};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_767_225_600;
const TOLERANCE_SECS: i64 = 300;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    // A message from anyone.
    id: Option<&'a str>,
    timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    body: &'a [u8],
    now_offset: i32,
    // A message signed with the secret.
    msg_id: &'a str,
    skew_secs: i16,
    signed_body: &'a [u8],
    flip_at: u16,
    flip_mask: u8,
    other_entries: &'a str,
    // A secret from configuration.
    secret_text: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let secret = WebhookSecret::parse(SECRET).expect("the fixed secret parses");
    let other = WebhookSecret::parse(OTHER_SECRET).expect("the other secret parses");
    let verifier = Verifier::new(secret.clone());
    let now = OffsetDateTime::from_unix_timestamp(NOW + i64::from(input.now_offset))
        .expect("a valid time");

    // 1. Anything from anyone is refused, without a panic.
    let result = verifier.verify_raw(input.id, input.timestamp, input.signature, input.body, now);
    assert!(result.is_err(), "random input verified: {input:?}");
    if let Ok(headers) = WebhookHeaders::from_raw(input.id, input.timestamp, input.signature) {
        assert!(
            verifier.verify(&headers, input.body, now).is_err(),
            "random headers verified: {input:?}"
        );
    }

    // 2. A message signed with the secret.
    let msg_id = match SignatureHeader::new(&secret, input.msg_id, 0, b"") {
        Ok(_) => input.msg_id,
        Err(_) => {
            assert!(
                sign(&secret, input.msg_id, 0, b"").is_err(),
                "sign and SignatureHeader disagree on {:?}",
                input.msg_id
            );
            "msg_fallback"
        }
    };
    let timestamp = now.unix_timestamp() + i64::from(input.skew_secs);
    let body = input.signed_body;
    let header = SignatureHeader::new(&secret, msg_id, timestamp, body).expect("a valid id signs");
    let single = header.value().to_owned();
    let headers = header.into_headers();
    let within = (timestamp - now.unix_timestamp()).abs() <= TOLERANCE_SECS;
    let outcome = verifier.verify(&headers, body, now);
    if within {
        assert_eq!(
            outcome,
            Ok(()),
            "a signed message within the tolerance fails: {input:?}"
        );
    } else {
        assert!(
            matches!(
                outcome,
                Err(VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. })
            ),
            "a message outside the tolerance gives {outcome:?}"
        );
        return;
    }
    let ts = timestamp.to_string();
    assert_eq!(
        verifier.verify_raw(Some(msg_id), Some(&ts), Some(&single), body, now),
        Ok(())
    );
    let unpadded = single.trim_end_matches('=');
    assert_eq!(
        verifier.verify_raw(Some(msg_id), Some(&ts), Some(unpadded), body, now),
        Ok(())
    );
    let mixed = format!("{} {single}", input.other_entries);
    assert_eq!(
        verifier.verify_raw(Some(msg_id), Some(&ts), Some(&mixed), body, now),
        Ok(()),
        "other entries break a valid one: {mixed:?}"
    );

    // Tampering fails.
    let mismatch = |id: &str, ts: &str, sig: &str, body: &[u8], what: &str| {
        let got = verifier.verify_raw(Some(id), Some(ts), Some(sig), body, now);
        assert_eq!(
            got,
            Err(VerifyError::SignatureMismatch),
            "{what} still verifies: {input:?}"
        );
    };
    if !body.is_empty() {
        let mask = if input.flip_mask == 0 {
            1
        } else {
            input.flip_mask
        };
        for at in [usize::from(input.flip_at) % body.len(), 0, body.len() - 1] {
            let mut flipped = body.to_vec();
            flipped[at] ^= mask;
            mismatch(msg_id, &ts, &single, &flipped, "a flipped body byte");
        }
        mismatch(
            msg_id,
            &ts,
            &single,
            &body[..body.len() - 1],
            "a truncated body",
        );
    }
    let mut longer = body.to_vec();
    longer.push(input.flip_mask);
    mismatch(msg_id, &ts, &single, &longer, "a longer body");
    mismatch(&format!("{msg_id}x"), &ts, &single, body, "another id");
    let next_second = (timestamp + 1).to_string();
    if (timestamp + 1 - now.unix_timestamp()).abs() <= TOLERANCE_SECS {
        mismatch(msg_id, &next_second, &single, body, "another timestamp");
    }
    let other_verifier = Verifier::new(other.clone());
    assert_eq!(
        other_verifier.verify_raw(Some(msg_id), Some(&ts), Some(&single), body, now),
        Err(VerifyError::SignatureMismatch),
        "another secret verifies"
    );

    // Key rotation: both secrets configured, either signature verifies.
    let rotating = Verifier::new(other.clone()).with_secret(secret.clone());
    assert_eq!(
        rotating.verify_raw(Some(msg_id), Some(&ts), Some(&single), body, now),
        Ok(())
    );
    let both = SignatureHeader::new(&other, msg_id, timestamp, body)
        .expect("signs")
        .signed_with(&secret);
    assert_eq!(
        verifier.verify_raw(Some(msg_id), Some(&ts), Some(both.value()), body, now),
        Ok(())
    );

    // 3. A configured secret.
    if let Ok(configured) = WebhookSecret::parse(input.secret_text) {
        let round =
            WebhookSecret::parse(&configured.to_whsec_string()).expect("to_whsec_string parses");
        let signed = SignatureHeader::new(&configured, msg_id, timestamp, body).expect("signs");
        assert_eq!(
            Verifier::new(round).verify_raw(
                Some(msg_id),
                Some(&ts),
                Some(signed.value()),
                body,
                now
            ),
            Ok(())
        );
    }
});
