//! Standard Webhooks signing and verification: the published vector, every typed failure,
//! key rotation, and interop with the reference `standardwebhooks` crate.
#![cfg(feature = "webhooks")]

use bitcoin_checkout::webhook::{
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SecretError, SignError, SignatureHeader,
    Verifier, VerifyError, WebhookHeaders, WebhookSecret, sign,
};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

// The test vector published by Standard Webhooks (and used by every reference library).
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const TIMESTAMP: i64 = 1649367553;
const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn secret() -> WebhookSecret {
    WebhookSecret::parse(SECRET).unwrap()
}

fn other_secret() -> WebhookSecret {
    WebhookSecret::parse(OTHER_SECRET).unwrap()
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn vector_headers(signature: &str) -> WebhookHeaders {
    WebhookHeaders {
        id: MSG_ID.into(),
        timestamp: TIMESTAMP,
        signature: signature.into(),
    }
}

#[test]
fn published_vector_signs_and_verifies() {
    let signature = sign(&secret(), MSG_ID, TIMESTAMP, BODY).unwrap();
    assert_eq!(signature.as_str(), EXPECTED);
    let verifier = Verifier::new(secret());
    assert_eq!(
        verifier.verify(&vector_headers(EXPECTED), BODY, at(TIMESTAMP)),
        Ok(())
    );
}

#[test]
fn tampered_body_is_a_mismatch() {
    let verifier = Verifier::new(secret());
    let body = br#"{"email":"evil@example.com","username":"test_user"}"#;
    assert_eq!(
        verifier.verify(&vector_headers(EXPECTED), body, at(TIMESTAMP)),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn wrong_secret_is_a_mismatch() {
    let verifier = Verifier::new(other_secret());
    assert_eq!(
        verifier.verify(&vector_headers(EXPECTED), BODY, at(TIMESTAMP)),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn timestamps_outside_the_tolerance_fail() {
    let verifier = Verifier::new(secret());
    let headers = vector_headers(EXPECTED);
    // The boundary itself is accepted, as by the reference implementation.
    assert_eq!(verifier.verify(&headers, BODY, at(TIMESTAMP + 300)), Ok(()));
    assert_eq!(verifier.verify(&headers, BODY, at(TIMESTAMP - 300)), Ok(()));
    assert_eq!(
        verifier.verify(&headers, BODY, at(TIMESTAMP + 301)),
        Err(VerifyError::TimestampTooOld { age_secs: 301 })
    );
    assert_eq!(
        verifier.verify(&headers, BODY, at(TIMESTAMP - 301)),
        Err(VerifyError::TimestampInFuture { ahead_secs: 301 })
    );
}

#[test]
fn tolerance_is_configurable() {
    let verifier = Verifier::new(secret()).with_tolerance(Duration::hours(1));
    assert_eq!(verifier.tolerance(), Duration::hours(1));
    let headers = vector_headers(EXPECTED);
    assert_eq!(
        verifier.verify(&headers, BODY, at(TIMESTAMP + 3600)),
        Ok(())
    );
    assert_eq!(
        verifier.verify(&headers, BODY, at(TIMESTAMP + 3601)),
        Err(VerifyError::TimestampTooOld { age_secs: 3601 })
    );
    assert_eq!(Verifier::new(secret()).tolerance(), Duration::minutes(5));
}

#[test]
fn extreme_timestamps_do_not_overflow() {
    let verifier = Verifier::new(secret());
    for timestamp in [i64::MIN, i64::MAX] {
        let headers = WebhookHeaders {
            timestamp,
            ..vector_headers(EXPECTED)
        };
        assert!(verifier.verify(&headers, BODY, at(TIMESTAMP)).is_err());
    }
}

#[test]
fn each_missing_header_is_named() {
    let verifier = Verifier::new(secret());
    let ts = TIMESTAMP.to_string();
    let now = at(TIMESTAMP);
    let cases = [
        (None, Some(ts.as_str()), Some(EXPECTED), HEADER_ID),
        (Some(MSG_ID), None, Some(EXPECTED), HEADER_TIMESTAMP),
        (Some(MSG_ID), Some(ts.as_str()), None, HEADER_SIGNATURE),
    ];
    for (id, timestamp, signature, name) in cases {
        assert_eq!(
            verifier.verify_raw(id, timestamp, signature, BODY, now),
            Err(VerifyError::MissingHeader { name })
        );
    }
    assert_eq!(
        verifier.verify_raw(Some(MSG_ID), Some(&ts), Some(EXPECTED), BODY, now),
        Ok(())
    );
}

#[test]
fn non_integer_timestamp_is_invalid() {
    let verifier = Verifier::new(secret());
    for ts in ["", "soon", "1649367553.0", "1e9"] {
        assert_eq!(
            verifier.verify_raw(Some(MSG_ID), Some(ts), Some(EXPECTED), BODY, at(TIMESTAMP)),
            Err(VerifyError::InvalidTimestamp)
        );
    }
}

#[test]
fn header_without_v1_entry_has_no_signature() {
    let verifier = Verifier::new(secret());
    for header in [
        "",
        "v1a,abc",
        "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        "garbage",
    ] {
        assert_eq!(
            verifier.verify(&vector_headers(header), BODY, at(TIMESTAMP)),
            Err(VerifyError::NoSignature),
            "{header:?}"
        );
    }
}

#[test]
fn malformed_and_foreign_entries_are_skipped() {
    let verifier = Verifier::new(secret());
    let header = format!("v1a,xyz v1,!!notbase64!! garbage v1, v1,AAAA {EXPECTED}");
    assert_eq!(
        verifier.verify(&vector_headers(&header), BODY, at(TIMESTAMP)),
        Ok(())
    );
    // A v1 entry that is malformed counts as a signature that does not match.
    assert_eq!(
        verifier.verify(&vector_headers("v1,!!notbase64!!"), BODY, at(TIMESTAMP)),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn rotated_key_header_verifies_with_second_entry() {
    // The sender signs with the old and the new key; this receiver only knows the new one.
    let header = SignatureHeader::new(&other_secret(), MSG_ID, TIMESTAMP, BODY)
        .unwrap()
        .signed_with(&secret());
    let value = header.value().to_owned();
    let (first, second) = value.split_once(' ').unwrap();
    assert_eq!(second, EXPECTED);
    let verifier = Verifier::new(secret());
    assert_eq!(
        verifier.verify(&header.into_headers(), BODY, at(TIMESTAMP)),
        Ok(())
    );
    // The first entry alone does not verify for this receiver.
    assert_eq!(
        verifier.verify(&vector_headers(first), BODY, at(TIMESTAMP)),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn signature_from_second_verifier_secret_verifies() {
    let verifier = Verifier::new(other_secret()).with_secret(secret());
    assert_eq!(
        verifier.verify(&vector_headers(EXPECTED), BODY, at(TIMESTAMP)),
        Ok(())
    );
}

#[test]
fn outgoing_header_pairs() {
    let headers = SignatureHeader::new(&secret(), MSG_ID, TIMESTAMP, BODY)
        .unwrap()
        .into_headers();
    assert_eq!(
        headers.pairs(),
        [
            ("webhook-id", MSG_ID.to_owned()),
            ("webhook-timestamp", TIMESTAMP.to_string()),
            ("webhook-signature", EXPECTED.to_owned()),
        ]
    );
}

#[test]
fn bad_message_ids_are_rejected() {
    let s = secret();
    assert_eq!(sign(&s, "", 1, BODY).unwrap_err(), SignError::EmptyId);
    assert_eq!(
        sign(&s, "msg.1", 1, BODY).unwrap_err(),
        SignError::IdContainsDot
    );
    assert_eq!(
        sign(&s, "msg 1", 1, BODY).unwrap_err(),
        SignError::IdNotHeaderSafe
    );
    assert_eq!(
        sign(&s, "msg\n1", 1, BODY).unwrap_err(),
        SignError::IdNotHeaderSafe
    );
    assert!(SignatureHeader::new(&s, "a.b", 1, BODY).is_err());
}

#[test]
fn speed_prefix_is_accepted() {
    let speed = WebhookSecret::parse("wsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    assert_eq!(
        sign(&speed, MSG_ID, TIMESTAMP, BODY).unwrap().as_str(),
        EXPECTED
    );
    assert_eq!(speed.to_whsec_string(), SECRET);
}

#[test]
fn secret_round_trips_and_from_bytes_matches() {
    assert_eq!(secret().to_whsec_string(), SECRET);
    let raw: WebhookSecret = SECRET.parse().unwrap();
    let bytes = WebhookSecret::from_bytes(&[7; 32]).unwrap();
    let again = WebhookSecret::parse(&bytes.to_whsec_string()).unwrap();
    assert_eq!(
        sign(&bytes, "m", 1, b"x").unwrap().as_str(),
        sign(&again, "m", 1, b"x").unwrap().as_str()
    );
    assert_eq!(raw.to_whsec_string(), SECRET);
    // Unpadded, padded and surrounded by whitespace all decode to the same key.
    let padded = WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAA==\n").unwrap();
    let unpadded = WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert_eq!(padded.to_whsec_string(), unpadded.to_whsec_string());
}

#[test]
fn bad_secrets_are_rejected_with_typed_errors() {
    assert_eq!(
        WebhookSecret::parse("").unwrap_err(),
        SecretError::MissingPrefix
    );
    assert_eq!(
        WebhookSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap_err(),
        SecretError::MissingPrefix
    );
    assert_eq!(
        WebhookSecret::parse("whsec_").unwrap_err(),
        SecretError::Empty
    );
    assert_eq!(
        WebhookSecret::parse("whsec_not base64!").unwrap_err(),
        SecretError::NotBase64
    );
    assert_eq!(
        WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
        SecretError::TooShort { len: 5, min: 16 }
    );
    assert_eq!(
        WebhookSecret::from_bytes(&[]).unwrap_err(),
        SecretError::Empty
    );
    assert_eq!(
        WebhookSecret::from_bytes(&[1; 15]).unwrap_err(),
        SecretError::TooShort { len: 15, min: 16 }
    );
    assert!(WebhookSecret::from_bytes(&[1; 16]).is_ok());
    let as_verify: VerifyError = SecretError::NotBase64.into();
    assert!(matches!(
        as_verify,
        VerifyError::InvalidSecret(SecretError::NotBase64)
    ));
}

#[test]
fn secrets_never_leak_through_debug_or_errors() {
    let key = SECRET.trim_start_matches("whsec_");
    let debug = format!("{:?}", secret());
    assert_eq!(debug, "WebhookSecret(<redacted>)");
    let verifier_debug = format!("{:?}", Verifier::new(secret()));
    assert!(!verifier_debug.contains(key), "{verifier_debug}");
    let err = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQ!!").unwrap_err();
    assert!(!err.to_string().contains("C2FVsBQIhrscChlQ"));
    let err = WebhookSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap_err();
    assert!(!err.to_string().contains("C2FVsBQIhrscChlQ"));
}

#[test]
fn error_messages_are_distinct() {
    let errors = [
        VerifyError::MissingHeader { name: HEADER_ID },
        VerifyError::InvalidTimestamp,
        VerifyError::TimestampTooOld { age_secs: 301 },
        VerifyError::TimestampInFuture { ahead_secs: 301 },
        VerifyError::NoSignature,
        VerifyError::SignatureMismatch,
        VerifyError::InvalidSecret(SecretError::Empty),
    ];
    let messages: std::collections::BTreeSet<String> =
        errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), errors.len());
    assert!(errors[0].to_string().contains("webhook-id"));
}

// ---- interop with the reference implementation ------------------------------------------

/// Verifies with `standardwebhooks`, which reads the clock itself and takes an
/// `http::HeaderMap`. `http` is not a dev-dependency of this crate, so the map's type is
/// inferred from the first `verify` call instead of being named.
fn reference_verify(secret: &str, id: &str, timestamp: i64, signature: &str, body: &[u8]) -> bool {
    let reference = standardwebhooks::Webhook::new(secret).unwrap();
    let mut headers = Default::default();
    // Empty map: fails with MissingHeader, but pins `headers` to `http::HeaderMap`.
    assert!(reference.verify(body, &headers).is_err());
    headers.insert(HEADER_ID, id.parse().unwrap());
    headers.insert(HEADER_TIMESTAMP, timestamp.to_string().parse().unwrap());
    headers.insert(HEADER_SIGNATURE, signature.parse().unwrap());
    reference.verify(body, &headers).is_ok()
}

#[test]
fn reference_crate_verifies_our_signatures() {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let header = SignatureHeader::new(&other_secret(), MSG_ID, now, BODY)
        .unwrap()
        .signed_with(&secret());
    assert!(reference_verify(SECRET, MSG_ID, now, header.value(), BODY));
    assert!(!reference_verify(
        SECRET,
        MSG_ID,
        now,
        header.value(),
        b"{}"
    ));
}

#[test]
fn we_verify_reference_crate_signatures() {
    let reference = standardwebhooks::Webhook::new(SECRET).unwrap();
    assert_eq!(reference.sign(MSG_ID, TIMESTAMP, BODY).unwrap(), EXPECTED);
    let now = OffsetDateTime::now_utc();
    let ts = now.unix_timestamp();
    let theirs = reference.sign("msg_interop", ts, br#"{"a":1}"#).unwrap();
    let verifier = Verifier::new(secret());
    let ts = ts.to_string();
    let result = verifier.verify_raw(
        Some("msg_interop"),
        Some(&ts),
        Some(&theirs),
        br#"{"a":1}"#,
        now,
    );
    assert_eq!(result, Ok(()));
}

// ---- properties ----------------------------------------------------------------------------

fn any_secret() -> impl Strategy<Value = WebhookSecret> {
    prop::collection::vec(any::<u8>(), 16..=64)
        .prop_map(|key| WebhookSecret::from_bytes(&key).unwrap())
}

proptest! {
    #[test]
    fn sign_then_verify_round_trips(
        secret in any_secret(),
        id in "[A-Za-z0-9_-]{1,40}",
        timestamp in -10_000_000_000i64..10_000_000_000,
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let headers = SignatureHeader::new(&secret, &id, timestamp, &body)?.into_headers();
        let now = OffsetDateTime::from_unix_timestamp(timestamp)?;
        prop_assert_eq!(Verifier::new(secret).verify(&headers, &body, now), Ok(()));
    }

    #[test]
    fn flipping_any_body_byte_fails(
        secret in any_secret(),
        body in prop::collection::vec(any::<u8>(), 1..256),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let headers = SignatureHeader::new(&secret, "msg_p", TIMESTAMP, &body)?.into_headers();
        let mut tampered = body.clone();
        tampered[index.index(body.len())] ^= flip;
        prop_assert_eq!(
            Verifier::new(secret).verify(&headers, &tampered, at(TIMESTAMP)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn reference_crate_agrees_on_utf8_bodies(
        id in "msg_[A-Za-z0-9]{1,30}",
        timestamp in 0i64..4_000_000_000,
        body in ".{0,200}",
    ) {
        let reference = standardwebhooks::Webhook::new(SECRET).unwrap();
        let theirs = reference.sign(&id, timestamp, body.as_bytes()).unwrap();
        let ours = sign(&secret(), &id, timestamp, body.as_bytes())?;
        prop_assert_eq!(ours.as_str(), theirs.as_str());
    }
}
