//! URL fields (success_url, cancel_url, title_image) through a real URL parser: what it
//! refuses that the hand-written check let through, what stays accepted, and that an
//! accepted URL is stored exactly as written.

use crate::common::*;

use bitcoin_checkout::{Branding, CheckoutSession, Error, SessionParams, SessionUpdate};

fn create(params: SessionParams) -> Result<CheckoutSession, Error> {
    CheckoutSession::create(sid(3), params, t0()).map(|(s, _)| s)
}

fn with_success_url(url: &str) -> Result<CheckoutSession, Error> {
    create(SessionParams::new(dec("10"), usd()).success_url(url))
}

/// Malformed URLs the hand-written check accepted (each was stored and shown to customers).
#[test]
fn malformed_urls_are_refused_naming_the_field() {
    for url in [
        "http://[",
        "http://[::1/ok",
        "http://h:abc",
        "https://shop.example:65536/ok",
        "http://user:pw@host/",
        "https://shop.example@evil.example/ok",
        "https://@shop.example/ok",
        "http://256.256.256.256/",
    ] {
        assert_eq!(
            with_success_url(url).err(),
            Some(Error::InvalidUrl {
                field: "success_url"
            }),
            "{url}"
        );
    }
    let (mut s, _) = session_with(SessionParams::new(dec("10"), usd()));
    for (update, field) in [
        (
            SessionUpdate::new().cancel_url("https://user:pw@shop.example/"),
            "cancel_url",
        ),
        (SessionUpdate::new().title_image("http://["), "title_image"),
    ] {
        assert_eq!(
            s.update(&update, at(1)).err(),
            Some(Error::InvalidUrl { field })
        );
    }
}

/// What was valid before stays valid, and is kept byte for byte (not normalised: no
/// lowercased scheme or host, no added trailing slash, no punycode).
#[test]
fn valid_urls_are_accepted_and_stored_as_written() {
    for url in [
        "https://shop.example/thanks",
        "http://localhost:3000/cb?order=1#done",
        "HTTPS://Shop.Example",
        "https://bücher.example/danke",
        "https://shop_1.example/ok",
        "http://[::1]:8080/ok",
        "https://127.0.0.1/ok",
        "https://shop.example/a%20b?q=%E2%82%AC",
        "https://shop.example:443/",
    ] {
        let s = with_success_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(s.success_url(), Some(url));
        let s = create(SessionParams::new(dec("10"), usd()).branding(Branding {
            title_image: Some(url.into()),
            ..Branding::default()
        }))
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(s.branding().title_image.as_deref(), Some(url));
    }
}
