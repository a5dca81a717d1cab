//! The hosted payment page router.
