//! The signature on every outgoing webhook.
//!
//! `Newsletter-Signature: t=<unix seconds>,v1=<hex>` where the hex is
//! HMAC-SHA256, under the endpoint's secret, of the timestamp, a dot and the
//! exact body. Signing the time with the body lets a receiver refuse an old
//! request replayed later; signing the bytes (not a re-serialisation) lets it
//! check before parsing anything.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "newsletter-signature";
/// The header carrying the event's id, the same on every retry.
pub const EVENT_ID_HEADER: &str = "newsletter-event-id";
/// The header carrying the event's type.
pub const EVENT_TYPE_HEADER: &str = "newsletter-event-type";

/// The header value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &str) -> String {
    format!("t={timestamp},v1={}", hex(&mac(secret, timestamp, body)))
}

/// Whether `header` is a valid signature of `body` under `secret`; the
/// comparison takes the same time wherever the first difference is.
pub fn verify(secret: &[u8], header: &str, body: &str) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    let expected = hex(&mac(secret, timestamp, body));
    signatures.iter().any(|given| {
        use subtle::ConstantTimeEq;
        given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
    })
}

fn mac(secret: &[u8], timestamp: i64, body: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_its_body_secret_and_time() {
        let header = sign(b"s3cret", 1_700_000_000, r#"{"a":1}"#);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(b"s3cret", &header, r#"{"a":1}"#));
        assert!(!verify(b"s3cret", &header, r#"{"a":2}"#));
        assert!(!verify(b"other", &header, r#"{"a":1}"#));
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify(b"s3cret", &moved, r#"{"a":1}"#));
        assert!(!verify(b"s3cret", "v1=00", r#"{"a":1}"#));
    }
}
