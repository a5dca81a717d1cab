//! The address-source suite: no address is handed to two sessions, across sessions,
//! threads and restarts.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::{fail, on_threads};
use crate::id::SessionId;
use crate::money::Currency;
use crate::request::AddressSource;
use crate::session::{CheckoutSession, SessionParams};
use crate::transfer::PaymentMethod;

/// An address source under test, given as a way to open it: each call must open the
/// source over the same durable state (the same database, file or index), as a restarted
/// process would.
pub struct AddressSubject<A> {
    open: Box<dyn Fn() -> A + Send + Sync>,
}

impl<A> std::fmt::Debug for AddressSubject<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSubject").finish_non_exhaustive()
    }
}

impl<A: AddressSource> AddressSubject<A> {
    /// The source `open` opens (again on every call, over the same durable state).
    pub fn new(open: impl Fn() -> A + Send + Sync + 'static) -> Self {
        Self {
            open: Box::new(open),
        }
    }

    fn open(&self) -> A {
        (self.open)()
    }
}

/// A fresh on-chain session to ask an address for.
fn session(name: &str) -> CheckoutSession {
    let params = SessionParams::new(
        Decimal::new(1_000, 2),
        Currency::Fiat(iso_currency::Currency::USD),
    )
    .payment_methods([PaymentMethod::Onchain]);
    CheckoutSession::create(SessionId::generate(), params, OffsetDateTime::now_utc())
        .map(|(s, _)| s)
        .unwrap_or_else(|e| fail(name, format_args!("fixture session: {e}")))
}

/// Takes `count` addresses from `source`, each for a new session.
fn take<A: AddressSource>(name: &str, source: &A, count: usize) -> Vec<(SessionId, String)> {
    (0..count)
        .map(|_| {
            let s = session(name);
            match source.fresh_address(&s) {
                Ok(address) if address.trim().is_empty() => fail(name, "an empty address"),
                Ok(address) => (s.id(), address),
                Err(e) => fail(name, format_args!("fresh_address failed: {e}")),
            }
        })
        .collect()
}

/// Fails if two sessions got one address.
fn distinct(name: &str, what: &str, handed: impl IntoIterator<Item = (SessionId, String)>) {
    let mut owners = BTreeMap::new();
    for (session, address) in handed {
        if let Some(first) = owners.insert(address.clone(), session) {
            fail(
                name,
                format_args!("{what}: {address} was handed to {first} and again to {session}"),
            );
        }
    }
}

/// 64 sessions get 64 distinct addresses.
pub fn check_address_unique_across_sessions<A: AddressSource>(subject: &AddressSubject<A>) {
    let name = "check_address_unique_across_sessions";
    distinct(
        name,
        "sessions one after another",
        take(name, &subject.open(), 64),
    );
}

/// Sessions asking from 4 threads at once get distinct addresses.
pub fn check_address_unique_across_threads<A: AddressSource>(subject: &AddressSubject<A>) {
    let name = "check_address_unique_across_threads";
    let source = subject.open();
    let handed = on_threads(4, |_| take(name, &source, 16));
    distinct(name, "sessions on 4 threads", handed.into_iter().flatten());
}

/// Addresses handed out before a restart (the source dropped and opened again) are never
/// handed out after it.
pub fn check_address_unique_across_restarts<A: AddressSource>(subject: &AddressSubject<A>) {
    let name = "check_address_unique_across_restarts";
    let before = take(name, &subject.open(), 8);
    let after = take(name, &subject.open(), 8);
    distinct(
        name,
        "sessions before and after a restart",
        before.into_iter().chain(after),
    );
}

/// Runs every check of the address-source suite on `subject`.
pub fn run_address_source<A: AddressSource>(subject: &AddressSubject<A>) {
    check_address_unique_across_sessions(subject);
    check_address_unique_across_threads(subject);
    check_address_unique_across_restarts(subject);
}
