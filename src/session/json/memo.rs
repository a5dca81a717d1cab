//! Each payment's JSON, written once per state (ADR 27).
//!
//! A commit needs the same payment's JSON several times: in the session event's object,
//! in each payment event's object, and in the payment's row; and the next commit needs the
//! unchanged payments' again. Serialising a payment (an invoice, a dozen decimals and
//! times) is most of what writing a commit's JSON costs, so a session remembers the last
//! text it wrote for each payment.
//!
//! # Contract
//! - A remembered text is given back only for exactly the inputs it was written from: the
//!   same payment (the same shared allocation, or an equal one) and the same sum received
//!   for it. Anything else writes it again and remembers that instead. So the memo never
//!   changes what `CheckoutSession::payment_raw` returns, only how often it serialises.
//! - Copies of a session share the memo (it is behind an `Arc`), which is what makes it
//!   pay: the service's copy, the change made on it and the commit's rows all hit it.
//!   Copies that diverge still get their own texts, as entries are checked on every use.
//! - The memo is not part of the session's value: sessions compare equal, print and
//!   serialise the same whatever it holds.

use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

use crate::money::Msats;
use crate::payment::Payment;

/// The most payments a memo remembers; past it the oldest entry goes (a session's newest
/// payments are the ones its commits list).
const CAPACITY: usize = 8;

/// The remembered payment texts of a session and of its copies.
#[derive(Clone, Default)]
pub(crate) struct PaymentTexts(Arc<Mutex<Vec<Entry>>>);

struct Entry {
    payment: Arc<Payment>,
    received: Msats,
    text: Box<RawValue>,
}

impl PaymentTexts {
    /// The text written for `payment` with `received`, or `write`'s (remembered), or `None`
    /// if `write` fails.
    pub(crate) fn get_or_write(
        &self,
        payment: &Arc<Payment>,
        received: Msats,
        write: impl FnOnce() -> Option<Box<RawValue>>,
    ) -> Option<Box<RawValue>> {
        let same = |e: &Entry| {
            e.received == received
                // Shared: the memo's copy keeps the allocation shared, so a change to the
                // payment would have copied it first; equal content otherwise.
                && (Arc::ptr_eq(&e.payment, payment) || *e.payment == **payment)
        };
        if let Ok(entries) = self.0.lock()
            && let Some(e) = entries.iter().find(|e| same(e))
        {
            return Some(e.text.clone());
        }
        let text = write()?;
        // A poisoned lock only loses the memo: the text is right either way.
        if let Ok(mut entries) = self.0.lock() {
            entries.retain(|e| e.payment.id != payment.id);
            if entries.len() >= CAPACITY {
                entries.remove(0);
            }
            entries.push(Entry {
                payment: Arc::clone(payment),
                received,
                text: text.clone(),
            });
        }
        Some(text)
    }
}

impl PartialEq for PaymentTexts {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PaymentTexts {}

impl std::fmt::Debug for PaymentTexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaymentTexts")
    }
}
