//! A test kit for users of the crate (feature `testkit`): the store conformance suite,
//! proptest strategies and a reference model of the lifecycle.

pub mod conformance;
