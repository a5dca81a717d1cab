//! Real payment requests for the benches and tools that measure rows as a shop makes them:
//! BOLT11 invoices signed offline (regtest, a fixed key, counted preimages) and bech32
//! addresses derived from a fixed test descriptor.

use std::sync::atomic::{AtomicU64, Ordering};

use bitcoin_checkout::request::lightning::{Bolt11Signer, Network, OfflineInvoices, SecretKey};
use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses};
use bitcoin_checkout::request::{MemoryAddressIndex, PaymentRequestGenerator, RequestGenerator};

const DESCRIPTOR: &str = "wpkh([73c5da0a/84h/1h/0h]tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M/0/*)";

/// A generator of real invoices and addresses (a setup that fails stops the run, loudly).
pub fn real_requests() -> impl PaymentRequestGenerator {
    let preimages = AtomicU64::new(1);
    let invoices = OfflineInvoices::new(
        Bolt11Signer::new(
            SecretKey::from_slice(&[0x42; 32]).unwrap(),
            Network::Regtest,
        ),
        move || {
            let mut preimage = [0u8; 32];
            let n = preimages.fetch_add(1, Ordering::Relaxed);
            preimage[..8].copy_from_slice(&n.to_be_bytes());
            preimage
        },
        |_| Ok(()),
    );
    RequestGenerator::new()
        .lightning(invoices)
        .onchain(DerivedAddresses::new(
            AddressDeriver::new(DESCRIPTOR, Network::Regtest).unwrap(),
            MemoryAddressIndex::new(),
        ))
}
