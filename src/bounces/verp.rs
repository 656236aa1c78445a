//! Per-delivery envelope senders (VERP): `bounces+<token>@domain`, where the
//! token names one outbox row and is signed, so a bounce maps to exactly one
//! delivery and a forged one cannot point at another reader.
//!
//! The row id in the token is enciphered: outbox ids count every message
//! sent, and a reader who sees the envelope sender (the `Return-Path` of
//! their copy) would otherwise learn the list's size and send volume. A
//! keyed permutation of the id rather than a random id stored with the row
//! keeps the queue's rows as they are: nothing is added per delivery.

use lettre::Address;
use subtle::ConstantTimeEq;

use crate::domain::{feistel, Signer};

/// Bytes of the signature kept in the token: 96 bits, written in lowercase
/// hex so that a relay that changes the case of a local part does no harm.
const SIGNATURE_BYTES: usize = 12;

/// Hex digits of a token: the enciphered id (8 bytes), then the signature.
const TOKEN_DIGITS: usize = 2 * (8 + SIGNATURE_BYTES);

/// Rounds of the Feistel network that enciphers ids; 4 already make a
/// pseudorandom permutation, the rest are margin at no real cost.
const ROUNDS: u8 = 8;

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

    /// The envelope sender of outbox row `delivery`: 40 hex digits after
    /// the `+`, the enciphered id and its signature.
    pub fn envelope_sender(&self, signer: &Signer, delivery: i64) -> Address {
        let sealed = encipher(signer, delivery.to_be_bytes());
        let token = format!("{}{}", hex(&sealed), sealed_signature(signer, &sealed));
        Address::new(format!("{}+{token}", self.local), &self.domain)
            .expect("a valid base address with a token of hex digits stays valid")
    }

    /// The delivery named by `address`: `Ok(None)` when it is not one of our
    /// VERP addresses at all, `Err` when it is but the token was altered.
    /// Addresses of mail sent before ids were enciphered (`<id>-<signature>`)
    /// are still recognised: their bounces may come days later.
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
        let token = token.to_ascii_lowercase();
        let id = match token.split_once('-') {
            Some((id, mac)) => plain_delivery(signer, id, mac)?,
            None => sealed_delivery(signer, &token)?,
        };
        Ok(Some(id))
    }
}

/// The delivery of a token made by [`BounceAddress::envelope_sender`].
fn sealed_delivery(signer: &Signer, token: &str) -> Result<i64, ForgedToken> {
    if token.len() != TOKEN_DIGITS || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ForgedToken);
    }
    let (sealed, mac) = token.split_at(16);
    let sealed: [u8; 8] = unhex(sealed).ok_or(ForgedToken)?;
    let expected = sealed_signature(signer, &sealed);
    if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
        return Err(ForgedToken);
    }
    let id = i64::from_be_bytes(decipher(signer, sealed));
    if id <= 0 {
        return Err(ForgedToken);
    }
    Ok(id)
}

/// The delivery of a token of the earlier format, `<id>-<signature>`.
fn plain_delivery(signer: &Signer, id: &str, mac: &str) -> Result<i64, ForgedToken> {
    let id: i64 = id.parse().map_err(|_| ForgedToken)?;
    if id <= 0 {
        return Err(ForgedToken);
    }
    let expected = signature(signer, id);
    if expected.as_bytes().ct_eq(mac.as_bytes()).into() {
        Ok(id)
    } else {
        Err(ForgedToken)
    }
}

/// The truncated HMAC of a delivery id, for the "verp" purpose only: the
/// signature of the earlier, plain format.
fn signature(signer: &Signer, delivery: i64) -> String {
    let bytes = signer.mac_bytes("verp", &[delivery.to_string().as_bytes()]);
    hex(&bytes[..SIGNATURE_BYTES])
}

/// The truncated HMAC of an enciphered delivery id.
fn sealed_signature(signer: &Signer, sealed: &[u8; 8]) -> String {
    hex(&signer.mac_bytes("verp sealed", &[sealed])[..SIGNATURE_BYTES])
}

/// The round function of the Feistel network: 32 bits of an HMAC keyed by
/// the service's key, so only the service can run the permutation.
fn round(signer: &Signer, round: u8, half: u64) -> u64 {
    let half = u32::try_from(half)
        .expect("halves are 32 bits")
        .to_be_bytes();
    let mac = signer.mac_bytes("verp round", &[&[round], &half]);
    u64::from(u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]))
}

/// A block's two 32-bit halves, in the order of its bytes.
fn halves(block: [u8; 8]) -> (u64, u64) {
    let value = u64::from_be_bytes(block);
    (value >> 32, value & 0xffff_ffff)
}

fn join((left, right): (u64, u64)) -> [u8; 8] {
    ((left << 32) | right).to_be_bytes()
}

/// A keyed permutation of 64-bit blocks: consecutive ids come out
/// unrelated, and only [`decipher`] with the same key maps them back.
fn encipher(signer: &Signer, block: [u8; 8]) -> [u8; 8] {
    join(feistel::encipher(ROUNDS, halves(block), |r, half| {
        round(signer, r, half)
    }))
}

fn decipher(signer: &Signer, block: [u8; 8]) -> [u8; 8] {
    join(feistel::decipher(ROUNDS, halves(block), |r, half| {
        round(signer, r, half)
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(digits: &str) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut bytes = [0; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
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
        assert!(sender.starts_with("bounces+"), "{sender}");
        assert!(!sender.contains("4711"), "{sender}");
        assert!(sender.len() <= 64 + 1 + "bounce.example.com".len());
        assert_eq!(bounce.delivery_in(&signer, &sender), Ok(Some(4711)));
        // Relays may change the case of what they hand back.
        let upper = sender.to_uppercase();
        assert_eq!(bounce.delivery_in(&signer, &upper), Ok(Some(4711)));
    }

    /// The token of one delivery says nothing about the next one's: the
    /// tokens of consecutive rows share no more than chance would.
    #[test]
    fn consecutive_deliveries_get_unrelated_tokens() {
        let (bounce, signer) = setup();
        let token = |id: i64| {
            let sender = bounce.envelope_sender(&signer, id).to_string();
            let local = sender.split('@').next().unwrap().to_string();
            local["bounces+".len()..].to_string()
        };
        let tokens: Vec<String> = (1..=50).map(token).collect();
        for pair in tokens.windows(2) {
            let same = pair[0]
                .bytes()
                .zip(pair[1].bytes())
                .filter(|(a, b)| a == b)
                .count();
            assert!(same < 12, "{} and {} share {same} places", pair[0], pair[1]);
        }
        for token in &tokens {
            assert_eq!(token.len(), TOKEN_DIGITS);
        }
        // Read as numbers, the enciphered ids are far apart, in no order.
        let sealed: Vec<u64> = tokens
            .iter()
            .map(|t| u64::from_str_radix(&t[..16], 16).unwrap())
            .collect();
        for pair in sealed.windows(2) {
            assert!(pair[0].abs_diff(pair[1]) > 1 << 32, "{pair:?}");
        }
    }

    /// Bounces of mail sent before the ids were enciphered still find
    /// their delivery.
    #[test]
    fn envelope_senders_of_the_plain_format_still_work() {
        let (bounce, signer) = setup();
        let plain = format!(
            "bounces+4711-{}@bounce.example.com",
            signature(&signer, 4711)
        );
        assert_eq!(bounce.delivery_in(&signer, &plain), Ok(Some(4711)));
        let moved = plain.replacen("4711", "4712", 1);
        assert_eq!(bounce.delivery_in(&signer, &moved), Err(ForgedToken));
    }

    #[test]
    fn a_token_moved_to_another_delivery_is_refused() {
        let (bounce, signer) = setup();
        let sender = bounce.envelope_sender(&signer, 4711).to_string();
        let (local, _) = sender.split_once('@').unwrap();
        let token = &local["bounces+".len()..];
        let other = bounce.envelope_sender(&signer, 4712).to_string();
        let other_token = &other.split_once('@').unwrap().0["bounces+".len()..];
        // Another delivery's enciphered id with this one's signature.
        let spliced = format!(
            "bounces+{}{}@bounce.example.com",
            &other_token[..16],
            &token[16..]
        );
        assert_eq!(bounce.delivery_in(&signer, &spliced), Err(ForgedToken));
        let other_key = Signer::new(b"another key that is long enough too");
        assert_eq!(bounce.delivery_in(&other_key, &sender), Err(ForgedToken));
        for forged in ["bounces+junk", "bounces+0123456789abcdef", "bounces+1-00"] {
            assert_eq!(
                bounce.delivery_in(&signer, &format!("{forged}@bounce.example.com")),
                Err(ForgedToken),
                "{forged}"
            );
        }
    }

    #[test]
    fn enciphering_is_a_permutation_that_decipher_undoes() {
        let (_, signer) = setup();
        for id in [1_i64, 2, 4711, i64::MAX] {
            let block = id.to_be_bytes();
            let sealed = encipher(&signer, block);
            assert_ne!(sealed, block);
            assert_eq!(decipher(&signer, sealed), block);
        }
    }

    #[test]
    fn other_addresses_are_not_ours() {
        let (bounce, signer) = setup();
        for address in [
            "someone@example.com",
            "bounces@bounce.example.com",
            "bounces+1-00@elsewhere.example",
            "bounces+0123456789abcdef0123456789abcdef01234567@elsewhere.example",
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
