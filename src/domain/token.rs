//! Tokens that travel in links. Confirmation tokens are 256-bit values kept
//! in the database only as a hash; unsubscribe tokens are signed, so they are
//! checked without a lookup.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Why a token from a link was refused. Deliberately vague towards users:
/// telling a forger which part was wrong helps nobody else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
}

/// The service's signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Signer { key: key.to_vec() }
    }

    /// HMAC over a purpose label and the parts; the label keeps a token made
    /// for one purpose from being accepted for another.
    fn mac(&self, purpose: &str, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        for part in parts {
            mac.update(b"\x1f");
            mac.update(part);
        }
        mac
    }

    /// Signs `id` for `purpose` as `"{id}.{signature}"`.
    pub fn sign_id(&self, purpose: &str, id: i64) -> String {
        let sig = self
            .mac(purpose, &[id.to_string().as_bytes()])
            .finalize()
            .into_bytes();
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks a token made by [`Signer::sign_id`] in constant time and returns the id.
    pub fn verify_id(&self, purpose: &str, token: &str) -> Result<i64, TokenError> {
        let (id, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let id: i64 = id.parse().map_err(|_| TokenError::Malformed)?;
        if id <= 0 || sig.len() != 43 {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(purpose, &[id.to_string().as_bytes()])
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(id)
    }

    /// The unsubscribe token of a subscriber.
    pub fn unsubscribe_token(&self, subscriber_id: i64) -> UnsubscribeToken {
        UnsubscribeToken(self.sign_id("unsubscribe", subscriber_id))
    }

    /// The subscriber id in a genuine unsubscribe token.
    pub fn verify_unsubscribe(&self, token: &str) -> Result<i64, TokenError> {
        self.verify_id("unsubscribe", token)
    }

    /// The token of a reader's feedback links for one report:
    /// `"{report}.{subscriber}.{signature}"`.
    pub fn feedback_token(&self, report_id: i64, subscriber_id: i64) -> String {
        let parts = format!("{report_id}.{subscriber_id}");
        let sig = self
            .mac("feedback", &[parts.as_bytes()])
            .finalize()
            .into_bytes();
        format!("{parts}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The report and reader of a genuine feedback token.
    pub fn verify_feedback(&self, token: &str) -> Result<(i64, i64), TokenError> {
        let (parts, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (report, subscriber) = parts.split_once('.').ok_or(TokenError::Malformed)?;
        let report: i64 = report.parse().map_err(|_| TokenError::Malformed)?;
        let subscriber: i64 = subscriber.parse().map_err(|_| TokenError::Malformed)?;
        if report <= 0 || subscriber <= 0 || sig.len() != 43 {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        self.mac("feedback", &[parts.as_bytes()])
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        Ok((report, subscriber))
    }

    /// The confirmation token derived from a seed stored with the queued
    /// email. Deriving it at send time keeps any usable token out of the
    /// database: the seed alone, without the key, confirms nothing.
    pub fn confirmation_token(&self, seed: &str) -> ConfirmationToken {
        let bytes = self
            .mac("confirm", &[seed.as_bytes()])
            .finalize()
            .into_bytes();
        ConfirmationToken(URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// 256 random bits, encoded for a URL.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 in hex: how tokens, API keys and session ids are kept at rest.
pub fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A confirmation token as found in a link.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfirmationToken(String);

impl fmt::Debug for ConfirmationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfirmationToken(<redacted>)")
    }
}

impl ConfirmationToken {
    /// Accepts only the shape we issue: 43 URL-safe base64 characters.
    pub fn parse(input: &str) -> Result<Self, TokenError> {
        let ok = input.len() == 43
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(TokenError::Malformed);
        }
        Ok(ConfirmationToken(input.to_string()))
    }

    /// What the database keeps: the SHA-256 of the token, in hex.
    pub fn hash(&self) -> String {
        sha256_hex(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signed unsubscribe token.
#[derive(Clone, PartialEq, Eq)]
pub struct UnsubscribeToken(String);

impl fmt::Debug for UnsubscribeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnsubscribeToken(<redacted>)")
    }
}

impl UnsubscribeToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn unsubscribe_token_round_trips() {
        let t = signer().unsubscribe_token(42);
        assert_eq!(signer().verify_unsubscribe(t.as_str()), Ok(42));
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let s = signer();
        let t = s.unsubscribe_token(42);
        let (_, sig) = t.as_str().split_once('.').unwrap();
        assert_eq!(
            s.verify_unsubscribe(&format!("43.{sig}")),
            Err(TokenError::BadSignature)
        );
        let other = Signer::new(b"another key, just as long as the first");
        assert_eq!(
            other.verify_unsubscribe(t.as_str()),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            s.verify_id("feedback", t.as_str()),
            Err(TokenError::BadSignature)
        );
        for bad in ["", "42", "42.", "x.abc", "-1.abc", "42.!!!"] {
            assert_eq!(
                s.verify_unsubscribe(bad),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn feedback_tokens_bind_report_and_reader() {
        let s = signer();
        let t = s.feedback_token(3, 42);
        assert_eq!(s.verify_feedback(&t), Ok((3, 42)));
        let sig = t.rsplit_once('.').unwrap().1;
        assert_eq!(
            s.verify_feedback(&format!("4.42.{sig}")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            s.verify_feedback(&format!("3.43.{sig}")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            s.verify_unsubscribe(&format!("42.{sig}")),
            Err(TokenError::BadSignature)
        );
        for bad in ["", "3.42", "3..x", "a.b.c", "3.42.short"] {
            assert_eq!(
                s.verify_feedback(bad),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn confirmation_tokens_are_derived_and_hashed() {
        let s = signer();
        let seed = random_token();
        let a = s.confirmation_token(&seed);
        assert_eq!(a, s.confirmation_token(&seed));
        assert_ne!(a, s.confirmation_token(&random_token()));
        assert_eq!(ConfirmationToken::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.hash().len(), 64);
        assert!(!format!("{a:?}").contains(a.as_str()));
        assert!(ConfirmationToken::parse("short").is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn signer() -> Signer {
        Signer::new(b"property tests use their own key of 32+ bytes")
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_verifies(input in "\\PC{0,120}") {
            prop_assert!(signer().verify_unsubscribe(&input).is_err());
            prop_assert!(signer().verify_feedback(&input).is_err());
        }

        #[test]
        fn signed_ids_round_trip(id in 1i64..i64::MAX, report in 1i64..i64::MAX) {
            let s = signer();
            prop_assert_eq!(s.verify_unsubscribe(s.unsubscribe_token(id).as_str()), Ok(id));
            prop_assert_eq!(s.verify_feedback(&s.feedback_token(report, id)), Ok((report, id)));
        }

        #[test]
        fn any_changed_character_is_refused(id in 1i64..1_000_000, pos in 0usize..64, replacement in "[A-Za-z0-9._-]") {
            let s = signer();
            let token = s.unsubscribe_token(id).as_str().to_string();
            let pos = pos % token.len();
            let mut altered: Vec<char> = token.chars().collect();
            let new = replacement.chars().next().unwrap();
            prop_assume!(altered[pos] != new);
            altered[pos] = new;
            let altered: String = altered.into_iter().collect();
            prop_assert!(s.verify_unsubscribe(&altered).is_err(), "{} verified", altered);
        }
    }
}
