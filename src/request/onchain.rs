//! On-chain addresses.
