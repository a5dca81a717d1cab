//! Payment requests end to end: derived addresses (BIP84 vectors), signed BOLT11 invoices
//! read back by lightning-invoice, BIP21 unified URIs, and QR codes decoded by rqrr.

use bitcoin_checkout::money::{Msats, Sats};
use bitcoin_checkout::qr;
use bitcoin_checkout::request::unified::{
    UnifiedUri, btc_amount, onchain_amount, parse_btc_amount,
};
use bitcoin_checkout::request::{PaymentRequest, RequestError};
use proptest::prelude::*;

// ---- QR decoding helpers ---------------------------------------------------------------

/// Decodes the single QR code in a grayscale bitmap; `light(x, y)` is true for white.
fn decode_bitmap(width: usize, height: usize, light: impl Fn(usize, usize) -> bool) -> String {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        if light(x, y) { 255 } else { 0 }
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "expected exactly one QR code");
    let (_meta, content) = grids[0].decode().expect("rqrr decodes the code");
    content
}

/// Rasterizes the SVG `render_svg` writes, one pixel a module: a white square, then one
/// path whose segments are `M x y.5` (absolute) or `m dx 0` (relative) moves each followed
/// by `h len`, a dark run of `len` modules stroked along the middle of row `y`.
fn decode_svg(svg: &str) -> String {
    let view_box = svg.split("viewBox=\"").nth(1).expect("viewBox");
    let size: usize = view_box
        .split([' ', '"'])
        .nth(2)
        .and_then(|n| n.parse().ok())
        .expect("numeric viewBox");
    let d = svg
        .split("stroke=\"#000\" d=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the stroked path");
    let mut dark = vec![false; size * size];
    let (mut x, mut y) = (0_usize, 0_usize);
    let mut rest = d;
    while let Some(command) = rest.chars().next() {
        let body_end = rest[1..]
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(rest.len(), |i| i + 1);
        let args: Vec<&str> = rest[1..body_end].split(' ').collect();
        match command {
            'M' => {
                x = args[0].parse().expect("x");
                y = args[1]
                    .strip_suffix(".5")
                    .expect("row middle")
                    .parse()
                    .expect("y");
            }
            'm' => {
                assert_eq!(args[1], "0", "moves stay on their row");
                x += args[0].parse::<usize>().expect("dx");
            }
            'h' => {
                let len: usize = args[0].parse().expect("len");
                for cell in &mut dark[y * size + x..y * size + x + len] {
                    *cell = true;
                }
                x += len;
            }
            other => panic!("unexpected path command {other:?}"),
        }
        rest = &rest[body_end..];
    }
    decode_bitmap(size * 4, size * 4, |px, py| !dark[py / 4 * size + px / 4])
}

/// Reads `render_terminal` output back into modules (a block is a light module) and decodes
/// it, 4 pixels a module.
fn decode_terminal(text: &str) -> String {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let width = lines[0].len();
    let mut light = vec![false; width * lines.len() * 2];
    for (row, line) in lines.iter().enumerate() {
        assert_eq!(line.len(), width, "ragged terminal output");
        for (x, c) in line.iter().enumerate() {
            let (top, bottom) = match c {
                ' ' => (false, false),
                '▀' => (true, false),
                '▄' => (false, true),
                '█' => (true, true),
                other => panic!("unexpected character {other:?}"),
            };
            light[2 * row * width + x] = top;
            light[(2 * row + 1) * width + x] = bottom;
        }
    }
    // The last text line of an odd-height code has only a top half: drop its bottom row.
    let height = width;
    decode_bitmap(width * 4, height * 4, |x, y| light[(y / 4) * width + x / 4])
}

#[cfg(feature = "qr-png")]
fn decode_png(png: &[u8]) -> String {
    let image = image::load_from_memory(png).expect("valid PNG").to_luma8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    decode_bitmap(w, h, |x, y| image.get_pixel(x as u32, y as u32).0[0] > 127)
}

/// Renders `payload` every way this build can and checks each decodes to it exactly.
fn assert_qr_round_trip(payload: &str) -> qr::SymbolInfo {
    let svg = qr::render_svg(payload).expect("svg");
    assert!(svg.starts_with("<svg"), "no XML prolog: {}", &svg[..40]);
    assert_eq!(decode_svg(&svg), payload);
    assert_eq!(
        decode_terminal(&qr::render_terminal(payload).expect("terminal")),
        payload
    );
    #[cfg(feature = "qr-png")]
    assert_eq!(
        decode_png(&qr::render_png(payload, 4).expect("png")),
        payload
    );
    let info = qr::symbol_info(payload).expect("fits");
    eprintln!(
        "QR for {} chars: version {}, {} modules",
        payload.len(),
        info.version,
        info.modules
    );
    info
}

// ---- unified URIs (no features) --------------------------------------------------------

const LUKE: &str = "175tWpb8K1S7NmH4Zx6rewF9WQrcZv245W";

#[test]
fn bip21_examples_parse() {
    let uri = UnifiedUri::parse(&format!("bitcoin:{LUKE}")).unwrap();
    assert_eq!(uri.address.as_deref(), Some(LUKE));
    assert_eq!((uri.amount, uri.label.as_deref()), (None, None));

    let uri = UnifiedUri::parse(&format!("bitcoin:{LUKE}?label=Luke-Jr")).unwrap();
    assert_eq!(uri.label.as_deref(), Some("Luke-Jr"));

    let uri = UnifiedUri::parse(&format!("bitcoin:{LUKE}?amount=20.3&label=Luke-Jr")).unwrap();
    assert_eq!(uri.amount, Some(Sats::new(2_030_000_000)));

    let uri = UnifiedUri::parse(&format!(
        "bitcoin:{LUKE}?amount=50&label=Luke-Jr&message=Donation%20for%20project%20xyz"
    ))
    .unwrap();
    assert_eq!(uri.amount, Some(Sats::new(5_000_000_000)));
    assert_eq!(uri.label.as_deref(), Some("Luke-Jr"));
    assert_eq!(uri.message.as_deref(), Some("Donation for project xyz"));
    assert_eq!(uri.lightning, None);
}

#[test]
fn bip21_req_params_are_rejected_and_others_tolerated() {
    let err = UnifiedUri::parse(&format!(
        "bitcoin:{LUKE}?req-somethingyoudontunderstand=50&req-somethingelseyoudontget=999"
    ));
    assert_eq!(
        err,
        Err(RequestError::UnsupportedRequiredParam {
            key: "req-somethingyoudontunde".into()
        })
    );
    let ok = UnifiedUri::parse(&format!(
        "bitcoin:{LUKE}?somethingyoudontunderstand=50&somethingelseyoudontget=999"
    ));
    assert_eq!(ok.unwrap().address.as_deref(), Some(LUKE));
    // Upper-case keys are the same keys (ABNF literals are case-insensitive).
    assert!(matches!(
        UnifiedUri::parse(&format!("bitcoin:{LUKE}?REQ-X=1")),
        Err(RequestError::UnsupportedRequiredParam { .. })
    ));
}

#[test]
fn amounts_are_exact_and_bounded() {
    assert_eq!(parse_btc_amount("0.00000001"), Ok(Sats::new(1)));
    assert_eq!(
        parse_btc_amount("21000000"),
        Ok(Sats::new(2_100_000_000_000_000))
    );
    assert_eq!(
        parse_btc_amount("000021000000.00000000"),
        Ok(Sats::new(2_100_000_000_000_000))
    );
    assert_eq!(parse_btc_amount(".5"), Ok(Sats::new(50_000_000)));
    assert_eq!(parse_btc_amount("5."), Ok(Sats::new(500_000_000)));
    assert_eq!(
        parse_btc_amount("0.000000001"),
        Err(RequestError::TooManyDecimals)
    );
    assert_eq!(
        parse_btc_amount("1.000000000"),
        Err(RequestError::TooManyDecimals)
    );
    assert_eq!(
        parse_btc_amount("21000000.00000001"),
        Err(RequestError::AmountTooLarge)
    );
    assert_eq!(
        parse_btc_amount("99999999999999999999999"),
        Err(RequestError::AmountTooLarge)
    );
    assert_eq!(parse_btc_amount("0"), Err(RequestError::AmountNotPositive));
    for bad in ["", ".", "-1", "+1", "1e3", "1,5", "1.2.3", "0x10", " 1"] {
        assert!(
            matches!(
                parse_btc_amount(bad),
                Err(RequestError::InvalidAmount { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(btc_amount(Sats::new(2_100_000_000_000_000)), "21000000");
    assert_eq!(btc_amount(Sats::new(10)), "0.0000001");
    assert_eq!(onchain_amount(Msats::new(1)), Ok(Sats::new(1)));
    assert_eq!(
        onchain_amount(Msats::new(0)),
        Err(RequestError::AmountNotPositive)
    );
    assert_eq!(
        onchain_amount(Msats::new(u64::MAX)),
        Err(RequestError::AmountTooLarge)
    );
}

#[test]
fn uri_forms() {
    let addr = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu";
    let both = UnifiedUri {
        address: Some(addr.into()),
        amount: Some(Sats::new(2_501)),
        lightning: Some("lnbc25010n1pexample".into()),
        ..UnifiedUri::default()
    };
    assert_eq!(
        both.to_uri().unwrap(),
        "bitcoin:BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU?amount=0.00002501&lightning=LNBC25010N1PEXAMPLE"
    );
    let ln_only = UnifiedUri {
        address: None,
        label: Some("ignored".into()),
        ..both.clone()
    };
    assert_eq!(ln_only.to_uri().unwrap(), "lightning:LNBC25010N1PEXAMPLE");
    let chain_only = UnifiedUri {
        lightning: None,
        message: Some("Order #42 – café".into()),
        ..both
    };
    assert_eq!(
        chain_only.to_uri().unwrap(),
        "bitcoin:BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU?amount=0.00002501&message=Order%20%2342%20%E2%80%93%20caf%C3%A9"
    );
    // Base58 is case-sensitive: never uppercased.
    let legacy = UnifiedUri {
        address: Some(LUKE.into()),
        ..UnifiedUri::default()
    };
    assert_eq!(legacy.to_uri().unwrap(), format!("bitcoin:{LUKE}"));
    assert_eq!(
        UnifiedUri::default().to_uri(),
        Err(RequestError::NothingToPay)
    );
    let bad = UnifiedUri {
        address: Some("bc1q x".into()),
        ..UnifiedUri::default()
    };
    assert!(matches!(bad.to_uri(), Err(RequestError::InvalidUri(_))));
}

#[test]
fn from_request_rounds_msats_up_for_onchain() {
    let request = PaymentRequest {
        lightning: None,
        onchain_address: Some(LUKE.into()),
    };
    let uri = UnifiedUri::from_request(&request, Msats::new(100_000_001)).unwrap();
    assert_eq!(uri.amount, Some(Sats::new(100_001)));
    assert_eq!(
        UnifiedUri::from_request(&PaymentRequest::default(), Msats::new(1)),
        Err(RequestError::NothingToPay)
    );
}

#[test]
fn parsing_is_liberal_where_bip21_allows() {
    let uri = UnifiedUri::parse(
        "BITCOIN:BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU?AMOUNT=0.001&LIGHTNING=LNBC100U1PEXAMPLE&pj=https://x&&",
    )
    .unwrap();
    assert_eq!(
        uri.address.as_deref(),
        Some("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu")
    );
    assert_eq!(uri.amount, Some(Sats::new(100_000)));
    assert_eq!(uri.lightning.as_deref(), Some("lnbc100u1pexample"));

    let ln = UnifiedUri::parse("LIGHTNING:LNBC100U1PEXAMPLE").unwrap();
    assert_eq!(
        (ln.address, ln.lightning.as_deref()),
        (None, Some("lnbc100u1pexample"))
    );
    let no_address = UnifiedUri::parse("bitcoin:?lightning=lnbc1").unwrap();
    assert_eq!(no_address.lightning.as_deref(), Some("lnbc1"));

    let label = UnifiedUri::parse(&format!("bitcoin:{LUKE}?label=caf%C3%A9+bar")).unwrap();
    assert_eq!(label.label.as_deref(), Some("café+bar"));
}

#[test]
fn parsing_rejects_malformed_uris() {
    let cases = [
        ("175tWpb8K1S7NmH4Zx6rewF9WQrcZv245W", "no scheme"),
        ("litecoin:LTC", "other scheme"),
        ("bitcoin:", "nothing to pay"),
        ("bitcoin:?amount=1", "nothing to pay"),
        ("bitcoin:bc1q%20x", "bad address chars"),
        ("bitcoin:{LUKE}?label=%zz", "bad escape"),
        ("bitcoin:{LUKE}?label=%+1", "signed escape"),
        ("bitcoin:{LUKE}?label=%FF", "not UTF-8"),
        ("bitcoin:{LUKE}?amount=1&amount=2", "duplicate"),
        ("bitcoin:{LUKE}?amount=1.123456789", "9 decimals"),
        ("bitcoin:{LUKE}?amount=21000001", "too large"),
        ("lightning:", "empty invoice"),
        ("lightning:lnbc1?amount=1", "params on lightning:"),
    ];
    for (uri, why) in cases {
        let uri = uri.replace("{LUKE}", LUKE);
        assert!(
            UnifiedUri::parse(&uri).is_err(),
            "{why}: {uri} was accepted"
        );
    }
    assert_eq!(
        UnifiedUri::parse("bitcoin:"),
        Err(RequestError::NothingToPay)
    );
    assert_eq!(
        UnifiedUri::parse(&format!("bitcoin:{LUKE}?amount=1&AMOUNT=2")),
        Err(RequestError::DuplicateParam { key: "amount" })
    );
}

fn address_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "bc1q[02-9ac-hj-np-z]{38}",
        "tb1p[02-9ac-hj-np-z]{58}",
        "bcrt1q[02-9ac-hj-np-z]{38}",
        "[13mn2][1-9A-HJ-NP-Za-km-z]{25,33}",
    ]
}

proptest! {
    #[test]
    fn unified_uri_round_trips(
        address in proptest::option::of(address_strategy()),
        amount in proptest::option::of(1u64..=2_100_000_000_000_000),
        lightning in proptest::option::of("ln(bc|tb|bcrt)[0-9]{1,6}[munp]?1[02-9ac-hj-np-z]{20,300}"),
        label in proptest::option::of(".{0,20}"),
        message in proptest::option::of(".{0,40}"),
    ) {
        prop_assume!(address.is_some() || lightning.is_some());
        let uri = UnifiedUri { address, amount: amount.map(Sats::new), lightning, label, message };
        let text = uri.to_uri().unwrap();
        // Lightning alone is written as `lightning:<invoice>`, which carries nothing else.
        let expected = match uri.address {
            Some(_) => uri.clone(),
            None => UnifiedUri { lightning: uri.lightning.clone(), ..UnifiedUri::default() },
        };
        prop_assert_eq!(UnifiedUri::parse(&text).unwrap(), expected);
        // Everything but the scheme, keys and percent-escaped text is uppercase.
        if let Some(invoice) = &uri.lightning {
            prop_assert!(text.contains(&invoice.to_uppercase()));
        }
    }

    #[test]
    fn btc_amounts_round_trip(sats in 1u64..=2_100_000_000_000_000) {
        let text = btc_amount(Sats::new(sats));
        prop_assert!(!text.contains('.') || !text.ends_with('0'));
        prop_assert_eq!(parse_btc_amount(&text), Ok(Sats::new(sats)));
    }

    #[test]
    fn parse_never_panics(s in "(bitcoin|lightning|BITCOIN):[ -~]{0,80}") {
        let _ = UnifiedUri::parse(&s);
    }
}

// ---- QR codes --------------------------------------------------------------------------

#[test]
fn qr_codes_decode_to_the_payload() {
    let payload = "bitcoin:BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU?amount=0.00002501";
    let info = assert_qr_round_trip(payload);
    assert_eq!(info.modules, 17 + 4 * u32::from(info.version));
    assert_qr_round_trip(&format!(
        "bitcoin:{LUKE}?amount=50&label=Luke-Jr&message=Donation%20for%20project%20xyz"
    ));
}

#[test]
fn qr_errors_are_typed() {
    assert_eq!(
        qr::render_svg(&"A".repeat(5_000)),
        Err(RequestError::QrDataTooLong)
    );
    #[cfg(feature = "qr-png")]
    {
        assert_eq!(
            qr::render_png("x", 0),
            Err(RequestError::InvalidModuleSize(0))
        );
        assert_eq!(
            qr::render_png("x", 33),
            Err(RequestError::InvalidModuleSize(33))
        );
    }
}

#[test]
fn terminal_code_has_a_light_quiet_zone() {
    let text = qr::render_terminal("LNBC1").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Four light modules = two full-block lines at the top, and four blocks each side.
    assert!(lines[0].chars().all(|c| c == '█') && lines[1].chars().all(|c| c == '█'));
    // (The last line is the bottom quiet zone's top half only: `▀`.)
    let (last, body) = lines.split_last().unwrap();
    assert!(
        body.iter()
            .all(|l| l.starts_with("████") && l.ends_with("████"))
    );
    assert!(last.chars().all(|c| c == '▀'));
}

// ---- on-chain addresses ----------------------------------------------------------------

#[cfg(feature = "onchain")]
mod onchain {
    use std::str::FromStr;

    use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
    use bitcoin::secp256k1::Secp256k1;
    use bitcoin_checkout::request::RequestError;
    use bitcoin_checkout::request::onchain::{AddressDeriver, Network, validate_address};

    // BIP84 test vectors, mnemonic "abandon abandon … about".
    const ROOT_XPRV: &str = "xprv9s21ZrQH143K3GJpoapnV8SFfukcVBSfeCficPSGfubmSFDxo1kuHnLisriDvSnRRuL2Qrg5ggqHKNVpxR86QEC8w35uxmGoggxtQTPvfUu";
    const ZPUB: &str = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
    // The same key with a corrupted tail (as once pasted into a task brief): checksum fails.
    const BAD_ZPUB: &str = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDyf9dBhU5YURtbG3ZFk9W7G2P";
    const XPUB: &str = "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V";
    // m/84'/1'/0' of the same seed, for test networks.
    const TPUB: &str = "tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M";
    const RECEIVE_0: &str = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu";
    const RECEIVE_1: &str = "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g";
    const CHANGE_0: &str = "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el";

    #[test]
    fn the_xpub_is_the_bip84_account_key() {
        let secp = Secp256k1::new();
        let root = Xpriv::from_str(ROOT_XPRV).unwrap();
        let account = root
            .derive_priv(&secp, &DerivationPath::from_str("m/84'/0'/0'").unwrap())
            .unwrap();
        assert_eq!(Xpub::from_priv(&secp, &account).to_string(), XPUB);
    }

    #[test]
    fn bip84_vectors_from_zpub_xpub_and_descriptor() {
        let descriptors = [
            ZPUB.to_string(),
            XPUB.to_string(),
            format!("wpkh({XPUB}/0/*)"),
            format!("wpkh([73c5da0a/84'/0'/0']{XPUB}/0/*)"),
            format!("  wpkh([73c5da0a/84h/0h/0h]{XPUB}/0/*)#afwvtk2s "),
        ];
        for d in descriptors {
            let deriver =
                AddressDeriver::new(&d, Network::Bitcoin).unwrap_or_else(|e| panic!("{d}: {e}"));
            assert_eq!(deriver.address_at(0).unwrap(), RECEIVE_0, "{d}");
            assert_eq!(deriver.address_at(1).unwrap(), RECEIVE_1, "{d}");
        }
        let change =
            AddressDeriver::from_descriptor(&format!("wpkh({XPUB}/1/*)"), Network::Bitcoin)
                .unwrap();
        assert_eq!(change.address_at(0).unwrap(), CHANGE_0);
    }

    #[test]
    fn taproot_and_nested_descriptors_work() {
        let tr =
            AddressDeriver::from_descriptor(&format!("tr({XPUB}/0/*)"), Network::Bitcoin).unwrap();
        let (a0, a1) = (tr.address_at(0).unwrap(), tr.address_at(1).unwrap());
        assert!(a0.starts_with("bc1p") && a1.starts_with("bc1p") && a0 != a1);
        assert_eq!(validate_address(&a0, Network::Bitcoin).unwrap(), a0);
        let nested =
            AddressDeriver::from_descriptor(&format!("sh(wpkh({XPUB}/0/*))"), Network::Bitcoin)
                .unwrap();
        assert!(nested.address_at(0).unwrap().starts_with('3'));
    }

    #[test]
    fn test_networks_use_tpubs() {
        let regtest = AddressDeriver::new(TPUB, Network::Regtest).unwrap();
        assert_eq!(
            regtest.address_at(0).unwrap(),
            "bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk"
        );
        let testnet = AddressDeriver::new(TPUB, Network::Testnet).unwrap();
        assert_eq!(
            testnet.address_at(0).unwrap(),
            "tb1q6rz28mcfaxtmd6v789l9rrlrusdprr9pqcpvkl"
        );
        let signet = AddressDeriver::new(TPUB, Network::Signet).unwrap();
        assert_eq!(
            signet.address_at(0).unwrap(),
            "tb1q6rz28mcfaxtmd6v789l9rrlrusdprr9pqcpvkl"
        );
    }

    #[test]
    fn bad_descriptors_are_typed_errors() {
        let cases = [
            (format!("wpkh({XPUB}/0/0)"), RequestError::NoWildcard),
            (
                format!("wpkh({XPUB}/0/*h)"),
                RequestError::HardenedDerivation,
            ),
            (
                format!("wpkh({XPUB}/0h/*)"),
                RequestError::HardenedDerivation,
            ),
            (
                format!("wpkh({XPUB}/<0;1>/*)"),
                RequestError::MultipathDescriptor,
            ),
            (format!("pk({XPUB}/0/*)"), RequestError::NoAddressForm),
            (
                format!("wpkh({ROOT_XPRV}/0/*)"),
                RequestError::SecretKeyGiven,
            ),
            (ROOT_XPRV.to_string(), RequestError::SecretKeyGiven),
        ];
        for (descriptor, expected) in cases {
            assert_eq!(
                AddressDeriver::new(&descriptor, Network::Bitcoin).unwrap_err(),
                expected,
                "{descriptor}"
            );
        }
        assert!(matches!(
            AddressDeriver::new(TPUB, Network::Bitcoin),
            Err(RequestError::NetworkMismatch {
                expected: "mainnet",
                ..
            })
        ));
        assert!(matches!(
            AddressDeriver::new(&format!("wpkh({XPUB}/0/*)"), Network::Regtest),
            Err(RequestError::NetworkMismatch {
                expected: "regtest",
                ..
            })
        ));
        for garbage in [
            "wpkh(nonsense)".to_string(),
            format!("wpkh({XPUB}/0/*)#ypdwhjm7"),
            "wpkh(".into(),
        ] {
            let err = AddressDeriver::new(&garbage, Network::Bitcoin).unwrap_err();
            assert!(
                matches!(err, RequestError::InvalidDescriptor { .. }),
                "{garbage}: {err}"
            );
        }
        for bad in ["xpubnonsense", BAD_ZPUB] {
            assert!(matches!(
                AddressDeriver::new(bad, Network::Bitcoin),
                Err(RequestError::InvalidExtendedKey { .. })
            ));
        }
        let deriver = AddressDeriver::new(XPUB, Network::Bitcoin).unwrap();
        assert_eq!(
            deriver.address_at(1 << 31),
            Err(RequestError::IndexOutOfRange(1 << 31))
        );
    }

    #[test]
    fn errors_never_echo_private_keys() {
        let mut typo = ROOT_XPRV.to_string();
        typo.pop();
        for input in [
            format!("wpkh({typo}/0/*)"),
            format!("wpkh({ROOT_XPRV}/0/*)"),
            typo.clone(),
        ] {
            let message = AddressDeriver::new(&input, Network::Bitcoin)
                .unwrap_err()
                .to_string();
            assert!(!message.contains(&typo[4..20]), "{message}");
        }
    }

    #[test]
    fn addresses_are_validated_for_the_network() {
        assert_eq!(
            validate_address(&RECEIVE_0.to_uppercase(), Network::Bitcoin).unwrap(),
            RECEIVE_0
        );
        let legacy = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2";
        assert_eq!(validate_address(legacy, Network::Bitcoin).unwrap(), legacy);
        // BIP21's example address is illustrative only: its checksum does not verify.
        assert!(validate_address("175tWpb8K1S7NmH4Zx6rewF9WQrcZv245W", Network::Bitcoin).is_err());
        let mismatch = validate_address(RECEIVE_0, Network::Regtest).unwrap_err();
        assert_eq!(
            mismatch,
            RequestError::NetworkMismatch {
                expected: "regtest",
                found: "mainnet"
            }
        );
        assert!(matches!(
            validate_address(
                "tb1q6rz28mcfaxtmd6v789l9rrlrusdprr9pqcpvkl",
                Network::Regtest
            ),
            Err(RequestError::NetworkMismatch {
                found: "testnet or signet",
                ..
            })
        ));
        for garbage in [
            "",
            "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyv",
            "hello",
            "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
        ] {
            assert!(
                matches!(
                    validate_address(garbage, Network::Bitcoin),
                    Err(RequestError::InvalidAddress { .. })
                ),
                "{garbage}"
            );
        }
    }

    #[test]
    fn our_uris_are_read_by_the_bip21_crate() {
        use bitcoin_checkout::money::Sats;
        use bitcoin_checkout::request::unified::UnifiedUri;

        let uri = UnifiedUri {
            address: Some(RECEIVE_0.into()),
            amount: Some(Sats::new(123_456_789)),
            label: Some("Shop & Co".into()),
            message: Some("Order 42: 2× café".into()),
            lightning: Some("lnbc1234567890n1pexample".into()),
        };
        let text = uri.to_uri().unwrap();
        let parsed: bip21::Uri<'_, bitcoin::address::NetworkUnchecked> = text.parse().unwrap();
        let parsed = parsed.require_network(Network::Bitcoin).unwrap();
        assert_eq!(parsed.address.to_string(), RECEIVE_0);
        assert_eq!(parsed.amount, Some(bitcoin::Amount::from_sat(123_456_789)));
        assert_eq!(
            String::try_from(parsed.label.unwrap()).unwrap(),
            "Shop & Co"
        );
        assert_eq!(
            String::try_from(parsed.message.unwrap()).unwrap(),
            "Order 42: 2× café"
        );
    }
}

// ---- Lightning invoices ----------------------------------------------------------------

#[cfg(feature = "lightning")]
mod lightning {
    use std::str::FromStr;
    use std::time::Duration as StdDuration;

    use bitcoin::hashes::{Hash, sha256};
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use bitcoin_checkout::money::Msats;
    use bitcoin_checkout::request::RequestError;
    use bitcoin_checkout::request::lightning::{
        Bolt11Signer, InvoiceDescription, Network, SignedInvoice, parse_invoice,
    };
    use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef, Currency};
    use time::{Duration, OffsetDateTime};

    const PREIMAGE: [u8; 32] = [0xab; 32];
    const SECRET: [u8; 32] = [0xcd; 32];

    fn signer(network: Network) -> Bolt11Signer {
        Bolt11Signer::new(SecretKey::from_slice(&[0x42; 32]).unwrap(), network)
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
    }

    fn sign(
        amount: u64,
        description: InvoiceDescription,
        expires_at: OffsetDateTime,
    ) -> SignedInvoice {
        signer(Network::Bitcoin)
            .invoice(
                Msats::new(amount),
                description,
                expires_at,
                now(),
                PREIMAGE,
                SECRET,
            )
            .unwrap()
    }

    #[test]
    fn invoices_read_back_with_lightning_invoice() {
        let expires = now() + Duration::seconds(900);
        let signed = sign(
            123_456,
            InvoiceDescription::Direct("Order 42".into()),
            expires,
        );
        let invoice = Bolt11Invoice::from_str(&signed.invoice.payment_request).unwrap();
        assert!(invoice.check_signature().is_ok());
        assert!(invoice.into_signed_raw().check_signature());
        let invoice = Bolt11Invoice::from_str(&signed.invoice.payment_request).unwrap();
        assert_eq!(
            invoice.recover_payee_pub_key(),
            signer(Network::Bitcoin).node_id()
        );
        assert_eq!(invoice.currency(), Currency::Bitcoin);
        assert_eq!(invoice.amount_milli_satoshis(), Some(123_456));
        assert_eq!(invoice.expiry_time(), StdDuration::from_secs(900));
        assert_eq!(
            invoice.duration_since_epoch(),
            StdDuration::from_secs(1_750_000_000)
        );
        assert_eq!(invoice.min_final_cltv_expiry_delta(), 18);
        assert_eq!(invoice.payment_secret().0, SECRET);
        let expected_hash = sha256::Hash::hash(&PREIMAGE);
        assert_eq!(*invoice.payment_hash(), expected_hash);
        assert_eq!(
            signed.invoice.payment_hash.to_bytes(),
            expected_hash.to_byte_array()
        );
        assert_eq!(signed.preimage.to_bytes(), PREIMAGE);
        assert_eq!(signed.invoice.expires_at, expires);
        match invoice.description() {
            Bolt11InvoiceDescriptionRef::Direct(d) => assert_eq!(d.as_inner().0, "Order 42"),
            other => panic!("expected a direct description, got {other:?}"),
        }
    }

    #[test]
    fn description_hashes_are_written() {
        let hash = sha256::Hash::hash(b"[[\"text/plain\",\"lnurl metadata\"]]").to_byte_array();
        let signed = sign(
            1_000,
            InvoiceDescription::Hash(hash),
            now() + Duration::minutes(5),
        );
        let parsed = parse_invoice(&signed.invoice.payment_request).unwrap();
        assert_eq!(parsed.description, InvoiceDescription::Hash(hash));
        let invoice = Bolt11Invoice::from_str(&signed.invoice.payment_request).unwrap();
        assert!(
            matches!(invoice.description(), Bolt11InvoiceDescriptionRef::Hash(h) if h.0.to_byte_array() == hash)
        );
    }

    #[test]
    fn parse_invoice_reports_every_field() {
        let expires = now() + Duration::seconds(600);
        let signed = sign(
            25_000_000,
            InvoiceDescription::Direct("café ☕".into()),
            expires,
        );
        let upper = format!(
            "LIGHTNING:{}",
            signed.invoice.payment_request.to_uppercase()
        );
        let parsed = parse_invoice(&upper).unwrap();
        assert_eq!(parsed.payment_request, signed.invoice.payment_request);
        assert_eq!(parsed.network, Network::Bitcoin);
        assert_eq!(parsed.amount, Some(Msats::new(25_000_000)));
        assert_eq!(parsed.payment_hash, signed.invoice.payment_hash);
        assert_eq!(parsed.payment_secret, SECRET);
        assert_eq!(parsed.payee, signer(Network::Bitcoin).node_id());
        assert_eq!(
            (parsed.created_at, parsed.expiry_secs, parsed.expires_at),
            (now(), 600, expires)
        );
        assert_eq!(
            parsed.description,
            InvoiceDescription::Direct("café ☕".into())
        );
        let invoice = parsed
            .for_quote(Network::Bitcoin, Msats::new(25_000_000), expires)
            .unwrap();
        assert_eq!(invoice, signed.invoice);
    }

    #[test]
    fn every_network_has_its_prefix() {
        for (network, prefix) in [
            (Network::Bitcoin, "lnbc"),
            (Network::Testnet, "lntb"),
            (Network::Testnet4, "lntb"),
            (Network::Signet, "lntbs"),
            (Network::Regtest, "lnbcrt"),
        ] {
            let signed = signer(network)
                .invoice(
                    Msats::new(10_000),
                    InvoiceDescription::Direct(String::new()),
                    now() + Duration::minutes(1),
                    now(),
                    PREIMAGE,
                    SECRET,
                )
                .unwrap();
            assert!(
                signed
                    .invoice
                    .payment_request
                    .starts_with(&format!("{prefix}100n1")),
                "{network}"
            );
            let parsed = parse_invoice(&signed.invoice.payment_request).unwrap();
            assert!(
                parsed
                    .for_quote(network, Msats::new(10_000), now() + Duration::minutes(1))
                    .is_ok()
            );
        }
    }

    #[test]
    fn invoices_never_outlive_their_quote() {
        // Sub-second times: the invoice is stamped 10:00:00 and expires at 10:10:00, not later.
        let now = now() + Duration::milliseconds(700);
        let expires = now + Duration::milliseconds(599_600); // 10:10:00.300
        let signed = signer(Network::Bitcoin)
            .invoice(
                Msats::new(5_000),
                InvoiceDescription::Direct("x".into()),
                expires,
                now,
                PREIMAGE,
                SECRET,
            )
            .unwrap();
        assert!(signed.invoice.expires_at <= expires);
        assert_eq!(
            parse_invoice(&signed.invoice.payment_request)
                .unwrap()
                .expiry_secs,
            600
        );

        let try_expiry = |expires_at| {
            signer(Network::Bitcoin).invoice(
                Msats::new(5_000),
                InvoiceDescription::Direct("x".into()),
                expires_at,
                now,
                PREIMAGE,
                SECRET,
            )
        };
        assert_eq!(
            try_expiry(now).unwrap_err(),
            RequestError::ExpiryNotInFuture
        );
        assert_eq!(
            try_expiry(now - Duration::minutes(1)).unwrap_err(),
            RequestError::ExpiryNotInFuture
        );
        assert_eq!(
            try_expiry(now + Duration::milliseconds(200)).unwrap_err(),
            RequestError::ExpiryNotInFuture
        );
    }

    #[test]
    fn an_invoice_expiring_after_the_quote_is_rejected() {
        let signed = sign(
            5_000,
            InvoiceDescription::Direct("x".into()),
            now() + Duration::minutes(15),
        );
        let parsed = parse_invoice(&signed.invoice.payment_request).unwrap();
        let quote_expires = now() + Duration::minutes(10);
        assert_eq!(
            parsed
                .clone()
                .for_quote(Network::Bitcoin, Msats::new(5_000), quote_expires),
            Err(RequestError::InvoiceOutlivesQuote { excess_secs: 300 })
        );
        assert_eq!(
            parsed.clone().for_quote(
                Network::Bitcoin,
                Msats::new(5_001),
                now() + Duration::hours(1)
            ),
            Err(RequestError::InvoiceAmountMismatch {
                expected: 5_001,
                found: Some(5_000)
            })
        );
        assert_eq!(
            parsed.for_quote(
                Network::Regtest,
                Msats::new(5_000),
                now() + Duration::hours(1)
            ),
            Err(RequestError::NetworkMismatch {
                expected: "regtest",
                found: "mainnet"
            })
        );
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let s = signer(Network::Bitcoin);
        let expires = now() + Duration::minutes(10);
        let make = |msat, text: &str| {
            s.invoice(
                Msats::new(msat),
                InvoiceDescription::Direct(text.into()),
                expires,
                now(),
                PREIMAGE,
                SECRET,
            )
        };
        assert_eq!(
            make(2_100_000_000_000_000_001, "x").unwrap_err(),
            RequestError::AmountTooLarge
        );
        // lightning-invoice encodes amounts as u64 pico-BTC: ~18.4 million BTC at most.
        assert!(make(u64::MAX / 10, "x").is_ok());
        assert_eq!(
            make(u64::MAX / 10 + 1, "x").unwrap_err(),
            RequestError::AmountTooLarge
        );
        assert_eq!(make(0, "x").unwrap_err(), RequestError::AmountNotPositive);
        assert_eq!(
            make(1, &"x".repeat(640)).unwrap_err(),
            RequestError::DescriptionTooLong
        );
        assert!(make(1, &"x".repeat(639)).is_ok());
        let before_1970 = OffsetDateTime::from_unix_timestamp(-10).unwrap();
        let err = s.invoice(
            Msats::new(1),
            InvoiceDescription::Direct("x".into()),
            now(),
            before_1970,
            PREIMAGE,
            SECRET,
        );
        assert_eq!(err.unwrap_err(), RequestError::TimestampOutOfRange);
    }

    #[test]
    fn tampered_and_garbage_invoices_are_rejected() {
        let signed = sign(
            5_000,
            InvoiceDescription::Direct("x".into()),
            now() + Duration::minutes(10),
        );
        let mut chars: Vec<char> = signed.invoice.payment_request.chars().collect();
        let i = chars.len() - 20;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let tampered: String = chars.into_iter().collect();
        assert!(matches!(
            parse_invoice(&tampered),
            Err(RequestError::InvalidInvoice { .. })
        ));
        assert!(matches!(
            parse_invoice(""),
            Err(RequestError::InvalidInvoice { .. })
        ));
        assert!(matches!(
            parse_invoice("lightning:"),
            Err(RequestError::InvalidInvoice { .. })
        ));

        // A well-formed invoice whose `n` field names another key than the signer.
        let other = SecretKey::from_slice(&[0x07; 32]).unwrap();
        let secp = Secp256k1::new();
        let forged = lightning_invoice::InvoiceBuilder::new(Currency::Bitcoin)
            .amount_milli_satoshis(5_000)
            .description("x".into())
            .payment_hash(sha256::Hash::hash(&PREIMAGE))
            .payment_secret(lightning_invoice::PaymentSecret(SECRET))
            .duration_since_epoch(StdDuration::from_secs(1_750_000_000))
            .min_final_cltv_expiry_delta(18)
            .payee_pub_key(bitcoin::secp256k1::PublicKey::from_secret_key(
                &secp, &other,
            ))
            .build_signed(|m| {
                secp.sign_ecdsa_recoverable(m, &SecretKey::from_slice(&[0x42; 32]).unwrap())
            })
            .unwrap();
        assert_eq!(
            parse_invoice(&forged.to_string()),
            Err(RequestError::InvalidInvoiceSignature)
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let key_hex = "42".repeat(32);
        let signer_debug = format!("{:?}", signer(Network::Bitcoin));
        assert!(!signer_debug.contains(&key_hex), "{signer_debug}");
        assert!(signer_debug.contains("node_id"));
        let signed = sign(
            1_000,
            InvoiceDescription::Direct("x".into()),
            now() + Duration::minutes(1),
        );
        let signed_debug = format!("{signed:?}");
        assert!(
            !signed_debug.contains(&"ab".repeat(32)) && !signed_debug.contains("171, 171"),
            "{signed_debug}"
        );
        assert!(signed_debug.contains("<redacted>"));
    }

    #[cfg(feature = "onchain")]
    #[test]
    fn unified_qr_with_a_real_invoice_and_address_decodes() {
        use bitcoin_checkout::qr;
        use bitcoin_checkout::request::PaymentRequest;
        use bitcoin_checkout::request::onchain::AddressDeriver;
        use bitcoin_checkout::request::unified::UnifiedUri;

        let xpub = "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V";
        let address = AddressDeriver::new(xpub, Network::Bitcoin)
            .unwrap()
            .address_at(0)
            .unwrap();
        let signed = sign(
            2_500_001_000,
            InvoiceDescription::Direct("Order 42 at Example Shop".into()),
            now() + Duration::minutes(10),
        );
        let request = PaymentRequest {
            lightning: Some(signed.invoice.clone()),
            onchain_address: Some(address.clone()),
        };
        let uri = UnifiedUri::from_request(&request, Msats::new(2_500_001_000)).unwrap();
        let text = uri.to_uri().unwrap();
        assert!(text.starts_with(&format!(
            "bitcoin:{}?amount=0.02500001&lightning=LNBC",
            address.to_uppercase()
        )));
        let info = super::assert_qr_round_trip(&text);
        eprintln!(
            "unified URI ({} chars) -> QR version {} ({} modules + 2×4 quiet zone)",
            text.len(),
            info.version,
            info.modules
        );
        // What a wallet gets back from the QR is the same request.
        let back = UnifiedUri::parse(&text).unwrap();
        assert_eq!(
            back.lightning.as_deref(),
            Some(signed.invoice.payment_request.as_str())
        );
        assert_eq!(
            parse_invoice(back.lightning.as_deref().unwrap())
                .unwrap()
                .payment_hash,
            signed.invoice.payment_hash
        );
        // Lowercase is the same payload in byte mode: a larger code.
        let lower = qr::symbol_info(&text.to_lowercase()).unwrap();
        eprintln!(
            "same URI lowercase -> QR version {} ({} modules)",
            lower.version, lower.modules
        );
        assert!(lower.version > info.version);
    }
}
