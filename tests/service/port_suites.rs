//! The port suites: the crate's own rate sources, generators, address sources, clocks
//! and id sources pass them, and a catalogue of broken ones fails them, each with a
//! message that names the check and the problem.
#![cfg(feature = "testkit")]

use std::sync::atomic::{AtomicU64, Ordering};

use bitcoin_checkout::clock::{Clock, IdSource, RandomIds, SeededIds, SystemClock};
use bitcoin_checkout::rates::{FallbackRates, FixedRates, MaxAge, RateError, RateSource, Spread};
use bitcoin_checkout::request::{
    LightningInvoice, PaymentRequest, PaymentRequestGenerator, RequestError, TestRequestGenerator,
};
use bitcoin_checkout::testkit::ports::{self, GeneratorSubject, RateSubject};
use bitcoin_checkout::{CheckoutSession, Currency, ExchangeRate, QuoteTerms, TargetCurrency};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use crate::common::{panic_message, t0, usd};

/// Asserts that `f` fails, naming `check` and saying `problem`.
#[track_caller]
fn fails_with(check: &str, problem: &str, f: impl FnOnce()) {
    let message = panic_message(f).unwrap_or_else(|| panic!("{check} must fail"));
    assert!(
        message.starts_with(check) && message.contains(problem),
        "expected {check}: …{problem}…, got: {message}"
    );
}

// ---- rate sources ----

fn fixed() -> FixedRates {
    FixedRates::new()
        .with(usd(), TargetCurrency::Sats, Decimal::from(1_050))
        .with(usd(), TargetCurrency::Btc, Decimal::new(1_05, 7))
}

fn rate_subject<R: RateSource>(source: R) -> RateSubject<R> {
    RateSubject::new(source, t0(), Duration::minutes(10))
        .knows(usd(), TargetCurrency::Sats, Decimal::from(1_000))
        .knows(usd(), TargetCurrency::Btc, Decimal::new(1, 5))
}

mod fixed_rates {
    bitcoin_checkout::rate_source_tests!(super::rate_subject(super::fixed()));
}

mod chained_rates {
    use super::*;
    /// Every source the crate ships, composed: a spread over a staleness limit over a
    /// fallback chain whose first source knows nothing.
    fn chain() -> Spread<MaxAge<FallbackRates>> {
        let empty = FixedRates::new();
        let limited = MaxAge::new(
            FallbackRates::new().or(empty).or(fixed()),
            Duration::minutes(10),
        );
        Spread::new(limited, Decimal::ONE).unwrap()
    }
    bitcoin_checkout::rate_source_tests!(rate_subject(chain()));
}

/// A source with a bug: answers with `f(the fixed rate)` for the pair asked.
struct Broken<F>(F);

impl<F> RateSource for Broken<F>
where
    F: Fn(Currency, TargetCurrency, OffsetDateTime) -> Result<ExchangeRate, RateError>
        + Send
        + Sync,
{
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        (self.0)(base, target, now)
    }
}

fn rate(
    base: Currency,
    target: TargetCurrency,
    value: Decimal,
    at: OffsetDateTime,
) -> ExchangeRate {
    ExchangeRate::new(base, target, value, "broken", at).unwrap()
}

#[test]
fn a_rate_source_with_a_default_for_unknown_pairs_fails() {
    let source = Broken(|b, t, now| Ok(rate(b, t, Decimal::from(1_000), now)));
    fails_with(
        "check_rate_unknown_pair_is_an_error",
        "never fall back to a default",
        || {
            ports::check_rate_unknown_pair_is_an_error(&rate_subject(source));
        },
    );
}

#[test]
fn a_rate_source_with_a_stale_time_fails() {
    let source = Broken(|b, t, now| fixed().rate(b, t, now - Duration::hours(3)));
    fails_with("check_rate_is_fresh", "10800 s old", || {
        ports::check_rate_is_fresh(&rate_subject(source));
    });
}

#[test]
fn a_rate_source_that_never_refreshes_fails() {
    // Fetched once at t0, then served forever without a limit.
    let source = Broken(|b, t, _now| fixed().rate(b, t, t0()));
    fails_with("check_rate_is_fresh", "promises at most 600 s", || {
        ports::check_rate_is_fresh(&rate_subject(source));
    });
}

#[test]
fn a_rate_source_dated_in_the_future_fails() {
    let source = Broken(|b, t, now| fixed().rate(b, t, now + Duration::minutes(5)));
    fails_with("check_rate_not_dated_ahead", "in the future", || {
        ports::check_rate_not_dated_ahead(&rate_subject(source));
    });
}

#[test]
fn a_rate_source_with_inverted_units_fails() {
    let source = Broken(|b, t, now| {
        let r = fixed().rate(b, t, now)?;
        Ok(rate(b, t, Decimal::ONE / r.rate(), now))
    });
    fails_with("check_rate_units_match_the_reference", "inverted", || {
        ports::check_rate_units_match_the_reference(&rate_subject(source));
    });
}

#[test]
fn a_rate_source_giving_btc_for_sats_fails() {
    let source = Broken(|b, t, now| {
        let r = fixed().rate(b, TargetCurrency::Btc, now)?;
        Ok(rate(b, t, r.rate(), now))
    });
    fails_with(
        "check_rate_units_match_the_reference",
        "off by 10⁸",
        || {
            ports::check_rate_units_match_the_reference(&rate_subject(source));
        },
    );
}

#[test]
fn a_rate_source_answering_another_pair_fails() {
    let source = Broken(|_b, t, now| fixed().rate(Currency::Sats, t, now));
    fails_with(
        "check_rate_answers_the_pair_asked",
        "got a rate for SATS->",
        || {
            ports::check_rate_answers_the_pair_asked(&rate_subject(source));
        },
    );
}

// ---- payment-request generators ----

mod test_generator {
    use bitcoin_checkout::request::TestRequestGenerator;
    use bitcoin_checkout::testkit::ports::GeneratorSubject;
    bitcoin_checkout::request_generator_tests!(GeneratorSubject::new(TestRequestGenerator));
}

#[cfg(all(feature = "lightning", feature = "onchain"))]
mod real_generator {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use bitcoin_checkout::request::lightning::{Bolt11Signer, OfflineInvoices};
    use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses};
    use bitcoin_checkout::request::{MemoryAddressIndex, RequestGenerator};
    use bitcoin_checkout::testkit::ports::GeneratorSubject;

    /// Distinct 32-byte secrets from a counter (a real source uses the OS's generator).
    pub(super) fn entropy() -> impl Fn() -> [u8; 32] + Send + Sync {
        let counter = Arc::new(AtomicU64::new(1));
        move || {
            let mut out = [7u8; 32];
            out[..8].copy_from_slice(&counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
            out
        }
    }

    pub(super) fn signer() -> Bolt11Signer {
        let key = bitcoin_checkout::request::lightning::SecretKey::from_slice(&[0x42; 32]).unwrap();
        Bolt11Signer::new(key, bitcoin_checkout::request::onchain::Network::Regtest)
    }

    fn generator() -> GeneratorSubject<impl bitcoin_checkout::request::PaymentRequestGenerator> {
        GeneratorSubject::new(
            RequestGenerator::new()
                .lightning(OfflineInvoices::new(signer(), entropy(), |_| Ok(())))
                .onchain(DerivedAddresses::new(
                    AddressDeriver::new(
                        crate::common::TEST_DESCRIPTOR,
                        bitcoin_checkout::request::onchain::Network::Regtest,
                    )
                    .unwrap(),
                    MemoryAddressIndex::new(),
                )),
        )
    }

    bitcoin_checkout::request_generator_tests!(generator());
}

/// A generator with a bug: the test generator's request, changed by `f`.
struct Bent<F>(F);

impl<F> PaymentRequestGenerator for Bent<F>
where
    F: Fn(&CheckoutSession, &QuoteTerms, PaymentRequest) -> PaymentRequest + Send + Sync,
{
    fn generate(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<PaymentRequest, RequestError> {
        let request = TestRequestGenerator.generate(session, terms)?;
        Ok((self.0)(session, terms, request))
    }
}

fn with_invoice(
    mut request: PaymentRequest,
    f: impl FnOnce(&mut LightningInvoice),
) -> PaymentRequest {
    if let Some(inv) = request.lightning.as_mut() {
        f(inv);
    }
    request
}

#[test]
fn a_generator_asking_a_thousandth_fails() {
    let generator = Bent(|_: &CheckoutSession, terms: &QuoteTerms, request| {
        with_invoice(request, |inv| {
            let msats = terms.target_msats().get() / 1_000;
            inv.payment_request =
                format!("lntest{msats}n1{}", terms.payment_id().as_uuid().simple());
        })
    });
    fails_with("check_request_exact_amount", "amount_msat", || {
        ports::check_request_exact_amount(&GeneratorSubject::new(generator));
    });
}

#[cfg(all(feature = "lightning", feature = "onchain"))]
#[test]
fn a_generator_signing_a_bolt11_for_a_thousandth_fails() {
    use bitcoin_checkout::request::lightning::InvoiceDescription;
    let signer = real_generator::signer();
    let entropy = real_generator::entropy();
    let generator = Bent(move |_: &CheckoutSession, terms: &QuoteTerms, request| {
        let signed = signer
            .invoice(
                bitcoin_checkout::Msats::new(terms.target_msats().get() / 1_000 + 1),
                InvoiceDescription::Direct("thousandth".into()),
                terms.expires_at(),
                terms.issued_at(),
                entropy(),
                entropy(),
            )
            .unwrap();
        with_invoice(request, |inv| *inv = signed.invoice)
    });
    fails_with("check_request_exact_amount", "amount_msat", || {
        ports::check_request_exact_amount(&GeneratorSubject::new(generator).onchain(false));
    });
}

#[test]
fn a_generator_reusing_a_hash_fails() {
    let generator = Bent(|_: &CheckoutSession, _: &QuoteTerms, request| {
        with_invoice(request, |inv| {
            inv.payment_hash = bitcoin_checkout::request::Hash32::from_bytes([9; 32]);
        })
    });
    let subject = GeneratorSubject::new(generator);
    fails_with(
        "check_request_hashes_unique_across_sessions",
        "repeats payment hash",
        || {
            ports::check_request_hashes_unique_across_sessions(&subject);
        },
    );
    fails_with(
        "check_request_hashes_unique_across_threads",
        "repeats payment hash",
        || {
            ports::check_request_hashes_unique_across_threads(&subject);
        },
    );
}

#[test]
fn a_generator_with_a_late_expiry_fails() {
    let generator = Bent(|_: &CheckoutSession, terms: &QuoteTerms, request| {
        with_invoice(request, |inv| {
            inv.expires_at = terms.expires_at() + Duration::hours(1)
        })
    });
    fails_with(
        "check_request_expires_with_the_quote",
        "after its quote",
        || {
            ports::check_request_expires_with_the_quote(&GeneratorSubject::new(generator));
        },
    );
}

#[test]
fn a_generator_with_a_fixed_invoice_lifetime_fails_for_a_short_session() {
    // An hour from issue, whatever the quote says: wrong once the session ends sooner.
    let generator = Bent(|_: &CheckoutSession, terms: &QuoteTerms, request| {
        with_invoice(request, |inv| {
            inv.expires_at = inv
                .expires_at
                .max(terms.issued_at() + Duration::seconds(600));
        })
    });
    fails_with(
        "check_request_expires_with_the_quote",
        "after its quote",
        || {
            ports::check_request_expires_with_the_quote(&GeneratorSubject::new(generator));
        },
    );
}

#[test]
fn a_generator_with_one_address_for_all_fails() {
    let generator = Bent(
        |_: &CheckoutSession, _: &QuoteTerms, mut request: PaymentRequest| {
            if request.onchain_address.is_some() {
                request.onchain_address = Some("bcrt1qsameforeveryone".into());
            }
            request
        },
    );
    fails_with(
        "check_request_addresses_unique",
        "already another session's",
        || {
            ports::check_request_addresses_unique(&GeneratorSubject::new(generator));
        },
    );
}

#[test]
fn a_generator_with_a_new_address_per_quote_fails() {
    let generator = Bent(
        |_: &CheckoutSession, terms: &QuoteTerms, mut request: PaymentRequest| {
            if request.onchain_address.is_some() {
                request.onchain_address =
                    Some(format!("bcrt1q{}", terms.payment_id().as_uuid().simple()));
            }
            request
        },
    );
    fails_with(
        "check_request_address_kept_on_requote",
        "differs from the session's",
        || {
            ports::check_request_address_kept_on_requote(&GeneratorSubject::new(generator));
        },
    );
}

#[test]
fn a_generator_returning_a_partial_request_fails() {
    let generator = Bent(
        |_: &CheckoutSession, _: &QuoteTerms, mut request: PaymentRequest| {
            request.lightning = None;
            request
        },
    );
    fails_with(
        "check_request_is_complete",
        "lightning invoice missing",
        || {
            ports::check_request_is_complete(&GeneratorSubject::new(generator));
        },
    );
}

// ---- address sources ----

#[cfg(feature = "onchain")]
mod address_sources {
    use std::sync::Arc;

    use bitcoin_checkout::request::MemoryAddressIndex;
    use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses};
    use bitcoin_checkout::testkit::ports::{self, AddressSubject};

    use super::fails_with;

    fn deriver() -> AddressDeriver {
        AddressDeriver::new(
            crate::common::TEST_DESCRIPTOR,
            bitcoin_checkout::request::onchain::Network::Regtest,
        )
        .unwrap()
    }

    /// Derived addresses over one index that outlives every "process".
    fn shared_memory() -> AddressSubject<DerivedAddresses<Arc<MemoryAddressIndex>>> {
        let index = Arc::new(MemoryAddressIndex::new());
        AddressSubject::new(move || DerivedAddresses::new(deriver(), Arc::clone(&index)))
    }

    bitcoin_checkout::address_source_tests!(shared_memory());

    #[cfg(feature = "sqlite")]
    mod over_sqlite {
        use super::*;
        use bitcoin_checkout::store::SqliteStore;

        /// Derived addresses over a SQLite file reopened on every restart.
        fn on_file() -> AddressSubject<DerivedAddresses<SqliteStore>> {
            let dir = crate::common::TempDir::new("address-suite");
            let path = dir.file("addresses.db");
            AddressSubject::new(move || {
                let _keep = &dir;
                DerivedAddresses::new(deriver(), SqliteStore::open(&path).unwrap())
            })
        }

        bitcoin_checkout::address_source_tests!(on_file());
    }

    #[test]
    fn an_index_that_restarts_at_zero_fails() {
        // A fresh in-memory index per process: after a restart it hands out index 0 again.
        let subject =
            AddressSubject::new(|| DerivedAddresses::new(deriver(), MemoryAddressIndex::new()));
        fails_with(
            "check_address_unique_across_restarts",
            "was handed to",
            || {
                ports::check_address_unique_across_restarts(&subject);
            },
        );
    }

    #[test]
    fn one_address_for_all_fails() {
        struct Same;
        impl bitcoin_checkout::request::AddressSource for Same {
            fn fresh_address(
                &self,
                _: &bitcoin_checkout::CheckoutSession,
            ) -> Result<String, bitcoin_checkout::request::RequestError> {
                Ok("bcrt1qsameforeveryone".into())
            }
        }
        let subject = AddressSubject::new(|| Same);
        fails_with(
            "check_address_unique_across_sessions",
            "was handed to",
            || {
                ports::check_address_unique_across_sessions(&subject);
            },
        );
        fails_with(
            "check_address_unique_across_threads",
            "was handed to",
            || {
                ports::check_address_unique_across_threads(&subject);
            },
        );
    }
}

// ---- clocks and id sources ----

mod system_clock {
    bitcoin_checkout::clock_tests!(bitcoin_checkout::clock::SystemClock);
}

mod manual_clock {
    bitcoin_checkout::clock_tests!(bitcoin_checkout::clock::ManualClock::new(
        crate::common::t0()
    ));
}

mod random_ids {
    bitcoin_checkout::id_source_tests!(bitcoin_checkout::clock::RandomIds::new());
}

mod seeded_ids {
    bitcoin_checkout::id_source_tests!(bitcoin_checkout::clock::SeededIds::new(7));
}

#[test]
fn the_suites_run_whole() {
    ports::run_clock(&SystemClock);
    ports::run_id_source(&RandomIds::new());
    ports::run_rate_source(&rate_subject(fixed()));
    ports::run_request_generator(&GeneratorSubject::new(TestRequestGenerator));
}

/// A clock that goes back one second every other reading.
struct Jittery(AtomicU64);

impl Clock for Jittery {
    fn now(&self) -> OffsetDateTime {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        t0() + Duration::seconds(i64::try_from(n % 2).unwrap_or(0))
    }
}

#[test]
fn a_clock_that_goes_back_fails() {
    fails_with("check_clock_is_monotone", "after", || {
        ports::check_clock_is_monotone(&Jittery(AtomicU64::new(0)));
    });
}

/// A clock reading local time two hours east of UTC.
struct OffUtc;

impl Clock for OffUtc {
    fn now(&self) -> OffsetDateTime {
        t0().to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap())
    }
}

#[test]
fn a_clock_off_utc_fails() {
    fails_with("check_clock_is_utc", "at offset +02", || {
        ports::check_clock_is_utc(&OffUtc)
    });
}

/// Ids that repeat after 100.
struct Repeating(AtomicU64);

impl IdSource for Repeating {
    fn next_uuid(&self, now: OffsetDateTime) -> uuid::Uuid {
        let n = self.0.fetch_add(1, Ordering::Relaxed) % 100;
        SeededIds::new(n).next_uuid(now)
    }
}

#[test]
fn a_repeating_id_source_fails() {
    fails_with("check_ids_unique_across_threads", "twice", || {
        ports::check_ids_unique_across_threads(&Repeating(AtomicU64::new(0)));
    });
}

/// Random (version 4) ids: unique, but they neither carry nor sort by time.
struct Timeless;

impl IdSource for Timeless {
    fn next_uuid(&self, _now: OffsetDateTime) -> uuid::Uuid {
        // Random bits marked as version 4: never a v7 id (reversed v7 bits could be one).
        let bits = RandomIds::new().next_uuid(t0()).as_u128().reverse_bits();
        uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid()
    }
}

#[test]
fn an_id_source_without_time_fails() {
    fails_with("check_ids_carry_their_time", "not 7", || {
        ports::check_ids_carry_their_time(&Timeless);
    });
}
