//! Strategies for sessions and rates: currencies, amounts, tolerances, confirmation policies,
//! session specs and parameters, exchange rates.

use proptest::prelude::*;

use crate::metadata::Metadata;
use crate::money::{Currency, SATS_PER_BTC, TargetCurrency};
use crate::session::SessionParams;
use crate::testkit::model::{RateSpec, SessionSpec};
use crate::transfer::ConfirmationPolicy;

/// Price currencies: mostly USD, also EUR, JPY (no decimals), KWD (3 decimals), BTC and SATS.
pub fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        4 => Just(Currency::Fiat(iso_currency::Currency::USD)),
        1 => Just(Currency::Fiat(iso_currency::Currency::EUR)),
        1 => Just(Currency::Fiat(iso_currency::Currency::JPY)),
        1 => Just(Currency::Fiat(iso_currency::Currency::KWD)),
        1 => Just(Currency::Btc),
        1 => Just(Currency::Sats),
    ]
}

/// Prices in minor units of `currency`, from the smallest unit to large orders (fiat up to
/// 100,000 major units, BTC up to 100 BTC, SATS up to 10 BTC).
pub fn amount_minor_for(currency: Currency) -> BoxedStrategy<u64> {
    match currency {
        Currency::Btc => prop_oneof![
            1u64..=10_000,
            10_000u64..=100_000_000,
            100_000_000u64..=10_000_000_000,
        ]
        .boxed(),
        Currency::Sats => prop_oneof![
            1u64..=1_000,
            1_000u64..=1_000_000,
            1_000_000u64..=1_000_000_000
        ]
        .boxed(),
        Currency::Fiat(_) => prop_oneof![
            1u64..=100,
            100u64..=100_000,
            100_000u64..=10_000_000,
            Just(10_000_000u64),
        ]
        .boxed(),
    }
}

/// Tolerances in hundredths of a percent: often none, often any, and the edges (1 %, 99.99 %).
pub fn tolerance_hundredths() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(0u32), 1 => Just(100u32), 3 => 0u32..10_000, 1 => Just(9_999u32)]
}

/// Confirmation policies: 0, 1, 2 or 6 confirmations.
pub fn confirmation_policy() -> impl Strategy<Value = ConfirmationPolicy> {
    prop::sample::select(vec![
        ConfirmationPolicy::ZeroConf,
        ConfirmationPolicy::One,
        ConfirmationPolicy::Two,
        ConfirmationPolicy::Six,
    ])
}

/// Valid session specs: any [`currency`] with a fitting amount, SATS or BTC as the target
/// currency, any [`tolerance_hundredths`] and [`confirmation_policy`], Lightning, on-chain or
/// both, a ttl of 5 to 20 minutes, the description `"initial"` and the metadata
/// `{"order": "1001"}`; one spec in four with a session expiry 5 to 40 minutes after
/// [`start_time`](super::start_time), the time specs are valid at (create sessions then).
///
/// ```
/// use bitcoin_checkout::testkit::model::ReferenceSession;
/// use bitcoin_checkout::testkit::strategies::{session_spec, start_time};
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn every_spec_is_valid(spec in session_spec()) {
///         prop_assert!(ReferenceSession::new(&spec, start_time()).is_ok());
///     }
/// }
/// every_spec_is_valid();
/// ```
pub fn session_spec() -> impl Strategy<Value = SessionSpec> {
    currency()
        .prop_flat_map(|currency| {
            (
                Just(currency),
                amount_minor_for(currency),
                prop_oneof![3 => Just(TargetCurrency::Sats), 1 => Just(TargetCurrency::Btc)],
                tolerance_hundredths(),
                confirmation_policy(),
                prop_oneof![1 => Just((true, false)), 1 => Just((false, true)), 2 => Just((true, true))],
                300i64..=1200,
                // A session expiry in one spec of four, 5 to 40 minutes after the harness's
                // creation time (so quotes are cut by it and it passes in many runs).
                prop_oneof![3 => Just(None), 1 => (300i64..=2400).prop_map(Some)],
            )
        })
        .prop_map(
            |(currency, amount_minor, target, tolerance, confirmations, (ln, oc), ttl, expiry)| {
                let mut spec = SessionSpec::new(amount_minor, currency);
                spec.target_currency = target;
                spec.tolerance_hundredths = tolerance;
                spec.confirmations = confirmations;
                spec.lightning = ln;
                spec.onchain = oc;
                spec.ttl_secs = ttl;
                spec.expires_at =
                    expiry.map(|secs| super::fixtures::start_time() + time::Duration::seconds(secs));
                spec.description = Some("initial".into());
                spec.metadata = Metadata::from_pairs([("order", "1001")]).unwrap_or_default();
                spec
            },
        )
}

/// Valid [`SessionParams`]: [`session_spec`] turned into parameters.
///
/// ```
/// use bitcoin_checkout::testkit::strategies::{session_params, start_time};
/// use bitcoin_checkout::{CheckoutSession, SessionId};
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn every_session_can_be_created(params in session_params()) {
///         prop_assert!(CheckoutSession::create(SessionId::generate(), params, start_time()).is_ok());
///     }
/// }
/// every_session_can_be_created();
/// ```
pub fn session_params() -> impl Strategy<Value = SessionParams> {
    session_spec().prop_map(|spec| spec.params())
}

/// Rates in 1/10,000 sats per unit: 1 to 100,000 sats per unit.
fn rate_e4() -> impl Strategy<Value = u64> {
    prop_oneof![10_000u64..=1_000_000, 1_000_000u64..=1_000_000_000]
}

/// Rates of 1 to 100,000 sats per unit with up to 4 decimals: what a fiat currency like USD
/// or EUR is worth in SATS. For other currency pairs use [`rate_for`].
///
/// ```
/// use bitcoin_checkout::testkit::strategies::rate;
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn rates_are_positive(r in rate()) {
///         prop_assert!(r.to_decimal() >= rust_decimal::Decimal::ONE);
///     }
/// }
/// rates_are_positive();
/// ```
pub fn rate() -> impl Strategy<Value = RateSpec> {
    rate_e4().prop_map(|m| RateSpec::from_parts(m, 4))
}

/// Rates that fit a session pricing `currency` in `target`: around 1 sat per sat, around
/// 100,000,000 sats per BTC, 0.01 to 1,000 sats per unit for currencies without decimals and
/// 1 to 100,000 sats per unit for the others; divided by 100,000,000 for a BTC target.
///
/// ```
/// use bitcoin_checkout::testkit::strategies::{rate_for, session_spec, start_time};
/// use bitcoin_checkout::testkit::model::ReferenceSession;
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn every_session_is_quoted_unless_worth_less_than_a_sat(
///         (spec, rate) in session_spec().prop_flat_map(|spec| {
///             let rate = rate_for(spec.currency, spec.target_currency);
///             (Just(spec), rate)
///         }),
///     ) {
///         // Specs are for sessions created at `start_time()` (their expiry is after it).
///         let now = start_time();
///         let model = ReferenceSession::new(&spec, now)?;
///         let quoted = model.next_quote(&rate, now);
///         prop_assert!(
///             quoted.is_ok() || quoted == Err(bitcoin_checkout::Error::AmountBelowOneSat),
///             "{quoted:?}"
///         );
///     }
/// }
/// every_session_is_quoted_unless_worth_less_than_a_sat();
/// ```
pub fn rate_for(currency: Currency, target: TargetCurrency) -> BoxedStrategy<RateSpec> {
    let extra = match target {
        TargetCurrency::Sats => 0,
        TargetCurrency::Btc => 8,
    };
    let sats_per_unit: BoxedStrategy<(u64, u32)> = match currency {
        Currency::Sats => prop_oneof![
            3 => Just((1u64, 0u32)),
            1 => (5_000u64..=20_000).prop_map(|m| (m, 4)),
        ]
        .boxed(),
        Currency::Btc => prop_oneof![
            3 => Just((SATS_PER_BTC, 0u32)),
            1 => (50_000_000u64..=200_000_000).prop_map(|m| (m, 0)),
        ]
        .boxed(),
        Currency::Fiat(_) if currency.scale() == 0 => rate_e4().prop_map(|m| (m, 6)).boxed(),
        Currency::Fiat(_) => rate_e4().prop_map(|m| (m, 4)).boxed(),
    };
    sats_per_unit
        .prop_map(move |(m, s)| RateSpec::from_parts(m, s + extra))
        .boxed()
}
