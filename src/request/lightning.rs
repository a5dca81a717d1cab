//! BOLT11 invoices.
