//! QR codes for payment requests.
