//! BIP21 unified URIs.
