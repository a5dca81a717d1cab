//! Idempotency records.
