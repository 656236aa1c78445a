//! Tokens that travel in links. Confirmation tokens are 256-bit values kept
//! in the database only as a hash; unsubscribe and feedback tokens are
//! signed, so they are checked without a lookup. Signed tokens name readers
//! and reports by their random public ids: a row id is sequential and tells
//! whoever holds two links how many readers there are.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

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

/// What a signed link names. Links made now carry the public id; links in
/// mail sent before public ids existed carry the row id, and keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkedId {
    Public(Uuid),
    /// The row id of a link made before public ids.
    Row(i64),
}

impl LinkedId {
    /// A public id in its canonical form (lowercase, hyphenated), or a
    /// positive row id. Exactly one spelling of each is accepted, the one
    /// that was signed.
    fn parse(text: &str) -> Option<LinkedId> {
        if let Some(id) = row_id(text) {
            return Some(LinkedId::Row(id));
        }
        let id = Uuid::try_parse(text).ok()?;
        (id.hyphenated().to_string() == text).then_some(LinkedId::Public(id))
    }
}

/// A positive row id written in plain decimal.
fn row_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

/// The report and reader of a feedback token's text, both of one format.
fn feedback_ids(text: &str) -> Option<(LinkedId, LinkedId)> {
    let (report, reader) = text.split_once('.')?;
    match (LinkedId::parse(report)?, LinkedId::parse(reader)?) {
        ids @ ((LinkedId::Public(_), LinkedId::Public(_))
        | (LinkedId::Row(_), LinkedId::Row(_))) => Some(ids),
        _ => None,
    }
}

/// The service's signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Signer {
    /// HMAC with the key already taken in: every message signs several
    /// links, and taking the key in is two of a short token's four blocks
    /// of hashing.
    keyed: HmacSha256,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Signer {
            keyed: HmacSha256::new_from_slice(key).expect("HMAC takes any key length"),
        }
    }

    /// HMAC over a purpose label and the parts; the label keeps a token made
    /// for one purpose from being accepted for another.
    fn mac(&self, purpose: &str, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(purpose.as_bytes());
        for part in parts {
            mac.update(b"\x1f");
            mac.update(part);
        }
        mac
    }

    /// Signs `text` for `purpose` as `"{text}.{signature}"`.
    pub fn sign(&self, purpose: &str, text: &str) -> String {
        let sig = self
            .mac(purpose, &[text.as_bytes()])
            .finalize()
            .into_bytes();
        format!("{text}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks the signature of a token made by [`Signer::sign`] in constant
    /// time and returns the signed text. `check` sees the text first, so a
    /// token of the wrong shape is reported as malformed, not as forged.
    fn verify<'t>(
        &self,
        purpose: &str,
        token: &'t str,
        check: impl FnOnce(&str) -> bool,
    ) -> Result<&'t str, TokenError> {
        let (text, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        if !check(text) || sig.len() != 43 {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(purpose, &[text.as_bytes()])
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(text)
    }

    /// The raw HMAC of `parts` for `purpose`, for tokens with an encoding
    /// of their own.
    pub fn mac_bytes(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        self.mac(purpose, parts).finalize().into_bytes().into()
    }

    /// Signs `id` for `purpose` as `"{id}.{signature}"`.
    pub fn sign_id(&self, purpose: &str, id: i64) -> String {
        self.sign(purpose, &id.to_string())
    }

    /// Checks a token made by [`Signer::sign_id`] in constant time and returns the id.
    pub fn verify_id(&self, purpose: &str, token: &str) -> Result<i64, TokenError> {
        let text = self.verify(purpose, token, |text| row_id(text).is_some())?;
        row_id(text).ok_or(TokenError::Malformed)
    }

    /// The token of a browser an editor logged in from, for their login
    /// address and their password as it stands (its stored hash): a new
    /// password forgets every browser. It names them by a digest: a cookie
    /// value need not carry what an address may hold.
    pub fn login_device_token(&self, email: &str, password_hash: &str) -> String {
        self.sign("login-device", &device_digest(email, password_hash))
    }

    /// Whether a browser's device token was made for this login address
    /// and this password.
    pub fn is_login_device_of(&self, token: &str, email: &str, password_hash: &str) -> bool {
        self.verify("login-device", token, |digest| digest.len() == 64)
            .is_ok_and(|digest| digest == device_digest(email, password_hash))
    }

    /// The unsubscribe token of a reader, by their public id.
    pub fn unsubscribe_token(&self, reader: &Uuid) -> UnsubscribeToken {
        UnsubscribeToken(self.sign("unsubscribe", &reader.to_string()))
    }

    /// The reader named by a genuine unsubscribe token, of either format.
    pub fn verify_unsubscribe(&self, token: &str) -> Result<LinkedId, TokenError> {
        let text = self.verify("unsubscribe", token, |text| LinkedId::parse(text).is_some())?;
        LinkedId::parse(text).ok_or(TokenError::Malformed)
    }

    /// The token of a reader's feedback links for one report, by their
    /// public ids: `"{report}.{reader}.{signature}"`.
    pub fn feedback_token(&self, report: &Uuid, reader: &Uuid) -> String {
        self.sign("feedback", &format!("{report}.{reader}"))
    }

    /// The report and reader of a genuine feedback token, of either format
    /// (both public ids, or both row ids).
    pub fn verify_feedback(&self, token: &str) -> Result<(LinkedId, LinkedId), TokenError> {
        let text = self.verify("feedback", token, |text| feedback_ids(text).is_some())?;
        feedback_ids(text).ok_or(TokenError::Malformed)
    }

    /// The confirmation token derived from a seed stored with the queued
    /// email. Deriving it at send time keeps any usable token out of the
    /// database: the seed alone, without the key, confirms nothing. A seed
    /// that carries the time it was made (`confirmation_seed`) passes that
    /// time on to its token; a seed of before (43 random characters) gives
    /// a token of before.
    pub fn confirmation_token(&self, seed: &str) -> ConfirmationToken {
        let bytes = self
            .mac("confirm", &[seed.as_bytes()])
            .finalize()
            .into_bytes();
        let mac = URL_SAFE_NO_PAD.encode(bytes);
        ConfirmationToken(match issued(seed) {
            Some((issued, _)) => format!("{issued}.{mac}"),
            None => mac,
        })
    }
}

/// A new confirmation seed: the time it is made (Unix milliseconds, 12
/// hex digits), a period, then 256 random bits.
pub fn confirmation_seed(now_ms: i64) -> String {
    format!("{:012x}.{}", now_ms.max(0), random_token())
}

/// The time part of a seed or token that carries one, and the rest.
fn issued(text: &str) -> Option<(&str, &str)> {
    let (issued, rest) = text.split_once('.')?;
    let hex = issued.len() == 12
        && issued
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hex.then_some((issued, rest))
}

/// 43 URL-safe base64 characters: a MAC or 256 random bits.
fn is_base64_256(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 256 random bits, encoded for a URL.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 in hex: how tokens, API keys and session ids are kept at rest.
fn device_digest(email: &str, password_hash: &str) -> String {
    sha256_hex(&format!("{email}\n{password_hash}"))
}

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
    /// Accepts only the shapes we issue: the time it was issued (12 hex
    /// digits), a period and 43 URL-safe base64 characters; or, in mail
    /// sent before tokens carried their time, the 43 characters alone.
    pub fn parse(input: &str) -> Result<Self, TokenError> {
        let ok = match issued(input) {
            Some((_, mac)) => is_base64_256(mac),
            None => is_base64_256(input),
        };
        if !ok {
            return Err(TokenError::Malformed);
        }
        Ok(ConfirmationToken(input.to_string()))
    }

    /// What the database keeps and finds the token by: the SHA-256 of the
    /// token in hex, behind `t` and the time it was issued when it carries
    /// one. Keys in the order tokens are issued are added at the end of the
    /// table's index, a few pages for a whole batch of sign-ups; keys that
    /// are hashes alone land on a page of their own each, and every such
    /// page is written again at each commit. The `t` puts them after every
    /// key of before, all hex digits.
    pub fn key(&self) -> String {
        match issued(&self.0) {
            Some((issued, _)) => format!("t{issued}{}", sha256_hex(&self.0)),
            None => sha256_hex(&self.0),
        }
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

    #[test]
    fn a_device_token_names_one_login_address() {
        let s = Signer::new(b"device token key, long enough for the tests");
        let token = s.login_device_token("ed@example.com", "$argon2id$one");
        assert!(s.is_login_device_of(&token, "ed@example.com", "$argon2id$one"));
        assert!(!s.is_login_device_of(&token, "other@example.com", "$argon2id$one"));
        assert!(
            !s.is_login_device_of(&token, "ed@example.com", "$argon2id$two"),
            "a new password forgets the browser"
        );
        let other = Signer::new(b"another key, long enough for the tests too");
        assert!(!other.is_login_device_of(&token, "ed@example.com", "$argon2id$one"));
        assert!(!s.is_login_device_of("garbage", "ed@example.com", "$argon2id$one"));
        assert!(!token.contains("ed@example.com"), "{token}");
    }
    use super::*;

    fn signer() -> Signer {
        Signer::new(b"0123456789abcdef0123456789abcdef")
    }

    /// A public id fixed for the tests: `Uuid::new_v4` everywhere else.
    fn public(n: u128) -> Uuid {
        Uuid::from_u128(0x5f0e_2a1c_9b7d_4e3a_8c61_0000_0000_0000 + n)
    }

    /// A signature is HMAC-SHA256 of the purpose, a unit separator and the
    /// text, as another implementation computes it: links in mail already
    /// sent must verify whatever changes in how the signer is built.
    #[test]
    fn signatures_are_hmac_sha256_of_purpose_and_text() {
        let key = b"0123456789abcdef0123456789abcdef";
        let expected = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
            b"feedback\x1freport.reader",
        );
        let signer = signer();
        for _ in 0..2 {
            assert_eq!(
                signer.sign("feedback", "report.reader"),
                format!(
                    "report.reader.{}",
                    URL_SAFE_NO_PAD.encode(expected.as_ref())
                )
            );
        }
    }

    #[test]
    fn unsubscribe_tokens_carry_the_public_id_only() {
        let reader = Uuid::new_v4();
        let t = signer().unsubscribe_token(&reader);
        let (text, _) = t.as_str().rsplit_once('.').unwrap();
        assert_eq!(text, reader.to_string());
        assert_eq!(
            signer().verify_unsubscribe(t.as_str()),
            Ok(LinkedId::Public(reader))
        );
    }

    /// Unsubscribe links in mail sent before public ids carry the row id,
    /// signed the same way; they keep working.
    #[test]
    fn unsubscribe_tokens_of_the_row_id_format_still_verify() {
        let s = signer();
        let old = s.sign_id("unsubscribe", 42);
        assert!(old.starts_with("42."), "{old}");
        assert_eq!(s.verify_unsubscribe(&old), Ok(LinkedId::Row(42)));
        let sig = old.rsplit_once('.').unwrap().1;
        assert_eq!(
            s.verify_unsubscribe(&format!("43.{sig}")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let s = signer();
        let t = s.unsubscribe_token(&public(1));
        let sig = t.as_str().rsplit_once('.').unwrap().1;
        assert_eq!(
            s.verify_unsubscribe(&format!("{}.{sig}", public(2))),
            Err(TokenError::BadSignature)
        );
        // The signature covers one spelling of the id.
        let upper = public(1).to_string().to_uppercase();
        assert_eq!(
            s.verify_unsubscribe(&format!("{upper}.{sig}")),
            Err(TokenError::Malformed)
        );
        let other = Signer::new(b"another key, just as long as the first");
        assert_eq!(
            other.verify_unsubscribe(t.as_str()),
            Err(TokenError::BadSignature)
        );
        let legacy = s.sign_id("unsubscribe", 42);
        assert_eq!(
            s.verify_id("feedback", &legacy),
            Err(TokenError::BadSignature)
        );
        for bad in ["", "42", "42.", "x.abc", "-1.abc", "042.abc", "42.!!!"] {
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
        let (report, reader) = (public(3), public(42));
        let t = s.feedback_token(&report, &reader);
        assert_eq!(
            s.verify_feedback(&t),
            Ok((LinkedId::Public(report), LinkedId::Public(reader)))
        );
        let sig = t.rsplit_once('.').unwrap().1;
        for (r, m) in [(public(4), reader), (report, public(43)), (reader, report)] {
            assert_eq!(
                s.verify_feedback(&format!("{r}.{m}.{sig}")),
                Err(TokenError::BadSignature)
            );
        }
        assert_eq!(
            s.verify_unsubscribe(&format!("{reader}.{sig}")),
            Err(TokenError::BadSignature)
        );
        let mixed = s.sign("feedback", &format!("3.{reader}"));
        for bad in ["", "3.42", "3..x", "a.b.c", "3.42.short", mixed.as_str()] {
            assert_eq!(
                s.verify_feedback(bad),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    /// Feedback links in mail sent before public ids carry the report's
    /// and the reader's row ids; they keep working.
    #[test]
    fn feedback_tokens_of_the_row_id_format_still_verify() {
        let s = signer();
        let old = s.sign("feedback", "3.42");
        assert_eq!(
            s.verify_feedback(&old),
            Ok((LinkedId::Row(3), LinkedId::Row(42)))
        );
        let sig = old.rsplit_once('.').unwrap().1;
        assert_eq!(
            s.verify_feedback(&format!("3.43.{sig}")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn confirmation_tokens_are_derived_and_hashed() {
        let s = signer();
        let seed = confirmation_seed(1_765_000_000_000);
        let a = s.confirmation_token(&seed);
        assert_eq!(a, s.confirmation_token(&seed));
        assert_ne!(
            a,
            s.confirmation_token(&confirmation_seed(1_765_000_000_000))
        );
        assert_eq!(ConfirmationToken::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 12 + 1 + 43);
        assert!(a.as_str().starts_with("019af232b200."), "{}", a.as_str());
        assert_eq!(a.key().len(), 1 + 12 + 64);
        assert!(!format!("{a:?}").contains(a.as_str()));
        for refused in [
            "short",
            "019af232b200.short",
            "019AF232B200.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(ConfirmationToken::parse(refused).is_err(), "{refused}");
        }
    }

    /// Mail sent before tokens carried their time holds a 43-character
    /// token, kept in the database as its bare hash; a seed of before still
    /// queued gives the same kind of token. A seed with its time gives a
    /// token and key with that time in front.
    #[test]
    fn tokens_of_before_keep_their_shape_and_key() {
        let s = signer();
        let old = s.confirmation_token(&random_token());
        assert_eq!(old.as_str().len(), 43);
        assert_eq!(old.key(), sha256_hex(old.as_str()));
        // Known answers, worked out apart from this code (HMAC-SHA256 of
        // "confirm", 0x1f and the seed; SHA-256 of the token).
        let known = s.confirmation_token(&"A".repeat(43));
        assert_eq!(
            known.as_str(),
            "LXpHhiFDspRLmMCw5Od3LX0G9v9nfooVW-1-tqMs-MM"
        );
        assert_eq!(
            known.key(),
            "2df3131c7c6592375dcf6eb639b8ca14f565fae2ba1180147c455d77aeef4baa"
        );
        let new = s.confirmation_token(&format!("019af232b200.{}", "A".repeat(43)));
        assert_eq!(
            new.as_str(),
            "019af232b200.YX5rpjTZ9UmRH-ECH0jdJB2vyA4XaE6jMEM5uKdLTFU"
        );
        assert_eq!(
            new.key(),
            "t019af232b200e9e6ec66d85456d29d9fde5d0489106834e3c4eeec2e36311c4422dd4be638f0"
        );
        let link = "B".repeat(43);
        let parsed = ConfirmationToken::parse(&link).unwrap();
        assert_eq!(parsed.key(), sha256_hex(&link));
    }

    /// Keys grow with the time their token was issued, and sort after
    /// every key of before: new rows go at the end of the index.
    #[test]
    fn keys_follow_the_order_tokens_are_issued_in() {
        let s = signer();
        let keys: Vec<String> = [1_765_000_000_000, 1_765_000_000_001, 1_765_000_060_000]
            .map(|t| s.confirmation_token(&confirmation_seed(t)).key())
            .into();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(keys[0].as_str() > "f".repeat(64).as_str());
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
        fn signed_ids_round_trip(id in 1i64..i64::MAX, report in 1i64..i64::MAX, a in any::<u128>(), b in any::<u128>()) {
            let s = signer();
            let (reader, issue) = (Uuid::from_u128(a), Uuid::from_u128(b));
            prop_assert_eq!(s.verify_unsubscribe(s.unsubscribe_token(&reader).as_str()), Ok(LinkedId::Public(reader)));
            prop_assert_eq!(s.verify_feedback(&s.feedback_token(&issue, &reader)), Ok((LinkedId::Public(issue), LinkedId::Public(reader))));
            prop_assert_eq!(s.verify_unsubscribe(&s.sign_id("unsubscribe", id)), Ok(LinkedId::Row(id)));
            prop_assert_eq!(s.verify_feedback(&s.sign("feedback", &format!("{report}.{id}"))), Ok((LinkedId::Row(report), LinkedId::Row(id))));
        }

        #[test]
        fn any_changed_character_is_refused(id in any::<u128>(), pos in 0usize..80, replacement in "[A-Za-z0-9._-]") {
            let s = signer();
            let token = s.unsubscribe_token(&Uuid::from_u128(id)).as_str().to_string();
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
