//! Standard Webhooks signing and verification.
