//! DKIM signatures (RFC 6376) with an RSA-SHA256 or an Ed25519-SHA256
//! (RFC 8463) key, relaxed/relaxed, over every header a mailbox provider
//! judges a bulk message by.
//!
//! Signing is done by `mail-auth` on `aws-lc-rs`: a constant-time RSA that
//! is several times faster than the pure-Rust `rsa` crate (whose
//! RUSTSEC-2023-0071 timing advisory has no fix). The key's algorithm is
//! read from the key file itself.

use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

/// The headers every signature covers. One the message lacks is signed as
/// absent (RFC 6376 §5.4.2), so nobody can add it on the way: wanted for
/// Reply-To, which would take readers' answers elsewhere. `Sender` is left
/// out on purpose: some relays add it to what they pass on, and a signature
/// over its absence would then fail. The one-click unsubscribe headers are
/// here because mailbox providers honour one-click only when the signature
/// covers them (RFC 8058 §4); `List-Id` because filters are built on it.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "Precedence",
];

/// A key that cannot be used for signing.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot read the DKIM key {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the DKIM key is not a PEM private key (PKCS#8 \"BEGIN PRIVATE KEY\" for RSA or Ed25519, or PKCS#1 \"BEGIN RSA PRIVATE KEY\"): {0}")]
    Format(String),
    #[error("the DKIM key is not a usable RSA (2048 to 8192 bits) or Ed25519 key: {0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The signature algorithm, as the key decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    RsaSha256,
    Ed25519Sha256,
}

impl DkimAlgorithm {
    /// The `k=` value of the DNS record.
    fn key_type(self) -> &'static str {
        match self {
            DkimAlgorithm::RsaSha256 => "rsa",
            DkimAlgorithm::Ed25519Sha256 => "ed25519",
        }
    }

    /// The `a=` value of signatures.
    pub fn name(self) -> &'static str {
        match self {
            DkimAlgorithm::RsaSha256 => "rsa-sha256",
            DkimAlgorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

/// The TXT record that publishes the public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// `selector._domainkey.domain`
    pub name: String,
    /// `v=DKIM1; k=…; p=…`
    pub value: String,
}

/// Signs messages for one domain and selector.
pub struct Signer {
    inner: DkimSigner<DkimKey, Done>,
    algorithm: DkimAlgorithm,
    record: DnsRecord,
}

impl Signer {
    /// Loads the key file of the settings.
    pub fn load(settings: &crate::config::DkimSettings) -> Result<Signer, DkimError> {
        let pem = read_key(&settings.private_key_file)?;
        Signer::from_pem(&pem, &settings.domain, &settings.selector)
    }

    /// A signer from a PEM private key: PKCS#8 (RSA or Ed25519) or PKCS#1
    /// (RSA).
    pub fn from_pem(pem: &str, domain: &str, selector: &str) -> Result<Signer, DkimError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| DkimError::Format(e.to_string()))?;
        let (key, algorithm, public_key) = match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                match Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()) {
                    Ok(ed) => {
                        let public = ed.public_key();
                        (DkimKey::Ed25519(ed), DkimAlgorithm::Ed25519Sha256, public)
                    }
                    Err(_) => rsa_key(&der)?,
                }
            }
            PrivateKeyDer::Pkcs1(_) => rsa_key(&der)?,
            _ => {
                return Err(DkimError::Format(
                    "an EC (SEC1) key; DKIM takes RSA or Ed25519".into(),
                ))
            }
        };
        let inner = DkimSigner::from_key(key)
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied());
        let record = DnsRecord {
            name: format!("{selector}._domainkey.{domain}"),
            value: format!(
                "v=DKIM1; k={}; p={}",
                algorithm.key_type(),
                base64::engine::general_purpose::STANDARD.encode(public_key)
            ),
        };
        Ok(Signer {
            inner,
            algorithm,
            record,
        })
    }

    pub fn algorithm(&self) -> DkimAlgorithm {
        self.algorithm
    }

    /// The TXT record to publish for this key.
    pub fn dns_record(&self) -> &DnsRecord {
        &self.record
    }

    /// The `DKIM-Signature` header line (with its CRLF) for a complete
    /// message, to be put in front of it. The body is hashed once, in the
    /// same pass.
    pub fn signature_header(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let signature = self
            .inner
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(signature.to_header().into_bytes())
    }

    /// The message with its signature in front.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let mut signed = self.signature_header(message)?;
        signed.extend_from_slice(message);
        Ok(signed)
    }
}

fn read_key(path: &Path) -> Result<String, DkimError> {
    std::fs::read_to_string(path).map_err(|e| DkimError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// An RSA key for signing and its public key as published: the DER
/// SubjectPublicKeyInfo, as `opendkim-genkey` and `openssl rsa -pubout`
/// write it.
fn rsa_key(der: &PrivateKeyDer<'_>) -> Result<(DkimKey, DkimAlgorithm, Vec<u8>), DkimError> {
    let pair = match der {
        PrivateKeyDer::Pkcs1(k) => aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(k) => aws_lc_rs::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der()),
        _ => return Err(DkimError::Format("not an RSA key".into())),
    }
    .map_err(|e| DkimError::Key(e.to_string()))?;
    let public = aws_lc_rs::signature::KeyPair::public_key(&pair)
        .as_der()
        .map_err(|e| DkimError::Key(e.to_string()))?
        .as_ref()
        .to_vec();
    let key = RsaKey::<Sha256>::from_key_der(der.clone_key())
        .map_err(|e| DkimError::Key(e.to_string()))?;
    Ok((DkimKey::Rsa(key), DkimAlgorithm::RsaSha256, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        use x509_cert::der::pem::{encode_string, LineEnding};
        encode_string(label, LineEnding::LF, der).unwrap()
    }

    #[test]
    fn an_ed25519_key_publishes_its_raw_public_key() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let signer =
            Signer::from_pem(&pem("PRIVATE KEY", pkcs8.as_ref()), "example.com", "ed").unwrap();
        assert_eq!(signer.algorithm(), DkimAlgorithm::Ed25519Sha256);
        let record = signer.dns_record();
        assert_eq!(record.name, "ed._domainkey.example.com");
        let p = record.value.split("p=").nth(1).unwrap();
        let raw = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        assert_eq!(raw.len(), 32, "RFC 8463: the bare 32-byte key");
        assert!(record.value.starts_with("v=DKIM1; k=ed25519; "));
    }

    #[test]
    fn garbage_and_ec_keys_are_refused_with_a_reason() {
        let err = Signer::from_pem("not a key", "example.com", "s")
            .err()
            .unwrap();
        assert!(err.to_string().contains("PEM"), "{err}");
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        let err = Signer::from_pem(&pem("PRIVATE KEY", ec.as_ref()), "example.com", "s")
            .err()
            .unwrap();
        assert!(err.to_string().contains("RSA"), "{err}");
    }
}
