//! Per-delivery envelope senders (VERP): `bounces+<token>@domain`, where the
//! token names one outbox row and is signed, so a bounce maps to exactly one
//! delivery and a forged one cannot point at another reader.

use lettre::Address;
use subtle::ConstantTimeEq;

use crate::domain::Signer;

/// Bytes of the signature kept in the token: 96 bits, written in lowercase
/// hex so that a relay that changes the case of a local part does no harm.
const SIGNATURE_BYTES: usize = 12;

/// The configured bounce address, split for building and recognising VERP
/// addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceAddress {
    local: String,
    domain: String,
}

/// A bounce address that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BounceAddressError {
    #[error("{0:?} is not an email address")]
    NotAnAddress(String),
    #[error("the local part must not contain '+': the delivery's token goes after it")]
    HasDelimiter,
}

/// A VERP address of ours whose token does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the bounce address's token is not one we signed")]
pub struct ForgedToken;

impl BounceAddress {
    pub fn parse(input: &str) -> Result<Self, BounceAddressError> {
        let address: Address = input
            .trim()
            .parse()
            .map_err(|_| BounceAddressError::NotAnAddress(input.to_string()))?;
        if address.user().contains('+') {
            return Err(BounceAddressError::HasDelimiter);
        }
        Ok(BounceAddress {
            local: address.user().to_string(),
            domain: address.domain().to_string(),
        })
    }

    /// The envelope sender of outbox row `delivery`.
    pub fn envelope_sender(&self, signer: &Signer, delivery: i64) -> Address {
        let token = format!("{delivery}-{}", signature(signer, delivery));
        Address::new(format!("{}+{token}", self.local), &self.domain)
            .expect("a valid base address with a token of digits, '-' and hex stays valid")
    }

    /// The delivery named by `address`: `Ok(None)` when it is not one of our
    /// VERP addresses at all, `Err` when it is but the token was altered.
    pub fn delivery_in(&self, signer: &Signer, address: &str) -> Result<Option<i64>, ForgedToken> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Ok(None);
        };
        let Some((base, token)) = local.split_once('+') else {
            return Ok(None);
        };
        if !base.eq_ignore_ascii_case(&self.local) || !domain.eq_ignore_ascii_case(&self.domain) {
            return Ok(None);
        }
        let (id, mac) = token.split_once('-').ok_or(ForgedToken)?;
        let id: i64 = id.parse().map_err(|_| ForgedToken)?;
        if id <= 0 {
            return Err(ForgedToken);
        }
        let expected = signature(signer, id);
        let given = mac.to_ascii_lowercase();
        if expected.as_bytes().ct_eq(given.as_bytes()).into() {
            Ok(Some(id))
        } else {
            Err(ForgedToken)
        }
    }
}

/// The truncated HMAC of a delivery id, for the "verp" purpose only.
fn signature(signer: &Signer, delivery: i64) -> String {
    use base64::Engine;
    let signed = signer.sign_id("verp", delivery);
    let mac = signed.rsplit('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(mac)
        .unwrap_or_default();
    bytes
        .iter()
        .take(SIGNATURE_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (BounceAddress, Signer) {
        (
            BounceAddress::parse("bounces@bounce.example.com").unwrap(),
            Signer::new(b"a test key that is long enough for hmac"),
        )
    }

    #[test]
    fn a_delivery_is_found_from_its_envelope_sender() {
        let (bounce, signer) = setup();
        let sender = bounce.envelope_sender(&signer, 4711).to_string();
        assert!(sender.starts_with("bounces+4711-"), "{sender}");
        assert!(sender.len() <= 64 + 1 + "bounce.example.com".len());
        assert_eq!(bounce.delivery_in(&signer, &sender), Ok(Some(4711)));
        // Relays may change the case of what they hand back.
        let upper = sender.to_uppercase();
        assert_eq!(bounce.delivery_in(&signer, &upper), Ok(Some(4711)));
    }

    #[test]
    fn a_token_moved_to_another_delivery_is_refused() {
        let (bounce, signer) = setup();
        let sender = bounce.envelope_sender(&signer, 4711).to_string();
        let moved = sender.replacen("4711", "4712", 1);
        assert_eq!(bounce.delivery_in(&signer, &moved), Err(ForgedToken));
        let other_key = Signer::new(b"another key that is long enough too");
        assert_eq!(bounce.delivery_in(&other_key, &sender), Err(ForgedToken));
        assert_eq!(
            bounce.delivery_in(&signer, "bounces+junk@bounce.example.com"),
            Err(ForgedToken)
        );
    }

    #[test]
    fn other_addresses_are_not_ours() {
        let (bounce, signer) = setup();
        for address in [
            "someone@example.com",
            "bounces@bounce.example.com",
            "bounces+1-00@elsewhere.example",
            "",
        ] {
            assert_eq!(bounce.delivery_in(&signer, address), Ok(None), "{address}");
        }
    }

    #[test]
    fn the_base_address_must_leave_room_for_the_token() {
        assert_eq!(
            BounceAddress::parse("a+b@example.com"),
            Err(BounceAddressError::HasDelimiter)
        );
        assert!(BounceAddress::parse("no at sign").is_err());
    }
}
