//! Editor passwords, hashed with Argon2id, and how strong a new one must be.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

/// Shortest password accepted for an editor.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Characters of a password the strength estimate looks at: its cost grows
/// quickly with length, and a password this long that is weak in its first
/// part is weak.
const STRENGTH_CHARS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password is too easy to guess: {0}")]
    Weak(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Refuses a password an attacker would guess early: too short, or scored
/// below "safely unguessable" by a zxcvbn estimate, which knows common
/// passwords, words, names, repeats, sequences and keyboard patterns.
/// `context` holds words the password must not lean on (the login address).
pub fn check_strength(password: &str, context: &[&str]) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    let judged: String = password.chars().take(STRENGTH_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&judged, context);
    if estimate.score() >= zxcvbn::Score::Three {
        return Ok(());
    }
    let mut reasons = Vec::new();
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            reasons.push(warning.to_string());
        }
        reasons.extend(feedback.suggestions().iter().map(|s| s.to_string()));
    }
    if reasons.is_empty() {
        reasons.push("add more words or characters that do not follow a pattern".into());
    }
    Err(PasswordError::Weak(reasons.join(" ")))
}

/// A PHC-format Argon2id hash of `password`. Slow on purpose: call it from
/// a blocking thread in async code.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `hash` (the comparison is constant-time).
pub fn verify_password(password: &str, hash: &str) -> bool {
    verify_password_in(password, hash, &mut Vec::new())
}

/// As [`verify_password`], computing in `work`, which is grown to the size
/// the hash needs and kept: reusing one work area per concurrent check keeps
/// memory flat however many checks run over time.
pub fn verify_password_in(password: &str, hash: &str, work: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if work.len() < blocks {
        work.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut work[..blocks])
        .is_err()
    {
        return false;
    }
    bool::from(out.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterz", &a));
        assert!(!verify_password("anything", "not a hash"));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
    }

    #[test]
    fn the_work_area_verifies_the_stock_hashes_and_is_reused() {
        use argon2::PasswordVerifier;
        let hash = hash_password("a long enough password").unwrap();
        let mut work = Vec::new();
        assert!(verify_password_in(
            "a long enough password",
            &hash,
            &mut work
        ));
        let size = work.len();
        assert!(size > 0);
        assert!(!verify_password_in(
            "a long enough passwore",
            &hash,
            &mut work
        ));
        assert_eq!(work.len(), size, "no second allocation");
        // The stock verifier agrees.
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"a long enough password", &parsed)
            .is_ok());
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        for weak in [
            "aaaaaaaaaa",
            "1234567890",
            "          ",
            "password123",
            "qwertyuiop",
        ] {
            match check_strength(weak, &[]) {
                Err(PasswordError::Weak(reason)) => assert!(!reason.is_empty(), "{weak:?}"),
                other => panic!("{weak:?} was not refused as weak: {other:?}"),
            }
        }
        assert!(matches!(
            check_strength("editor@example.com", &["editor@example.com"]),
            Err(PasswordError::Weak(_))
        ));
        check_strength("a long enough password", &[]).unwrap();
        check_strength("tulip-marrow-casket-1987", &[]).unwrap();
    }
}
