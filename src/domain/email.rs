//! A reader's address, checked and normalised once.

use std::fmt;
use std::str::FromStr;

/// The longest address that fits the SMTP path limit (RFC 5321: 256 octets
/// including the angle brackets).
const MAX_LEN: usize = 254;

/// A syntactically valid, lower-cased, ASCII email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberEmail(String);

/// Why an address was refused; the message is shown to the person typing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the email address is empty")]
    Empty,
    #[error("the email address is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("the email address contains a control character (such as a line break)")]
    ControlCharacter,
    #[error("the email address contains a space")]
    Whitespace,
    #[error("the email address contains non-ASCII characters; write an international domain in its xn-- form")]
    NonAscii,
    #[error("the email address has no @")]
    MissingAt,
    #[error("the email address's domain must be a public name such as example.com")]
    BadDomain,
    #[error("the email address is not valid: {0}")]
    Invalid(String),
}

impl SubscriberEmail {
    /// Checks `input` and returns it trimmed and lower-cased.
    ///
    /// Beyond the syntax, we refuse what a list should never hold: non-ASCII
    /// look-alikes (a Cyrillic "а" in "pаypal.com"), quoted local parts and IP
    /// literals, which real readers do not use and abusers do.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        if input.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        if trimmed.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace);
        }
        if !trimmed.is_ascii() {
            return Err(EmailError::NonAscii);
        }
        let Some((local, domain)) = trimmed.rsplit_once('@') else {
            return Err(EmailError::MissingAt);
        };
        if local.starts_with('"') || domain.starts_with('[') {
            return Err(EmailError::Invalid(
                "quoted names and IP addresses are not accepted".into(),
            ));
        }
        if !domain.contains('.') || domain.ends_with('.') || domain.starts_with('.') {
            return Err(EmailError::BadDomain);
        }
        email_address::EmailAddress::from_str(trimmed)
            .map_err(|e| EmailError::Invalid(e.to_string()))?;
        Ok(SubscriberEmail(trimmed.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SubscriberEmail {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        let e = SubscriberEmail::parse("  Ana.Lopez@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "ana.lopez@example.com");
    }

    #[test]
    fn refuses_what_a_list_should_not_hold() {
        let cases: &[(&str, EmailError)] = &[
            ("", EmailError::Empty),
            ("ana.example.com", EmailError::MissingAt),
            ("ana@exa mple.com", EmailError::Whitespace),
            (
                "ana@example.com\r\nBcc: x@y.z",
                EmailError::ControlCharacter,
            ),
            ("ana\0@example.com", EmailError::ControlCharacter),
            ("ana@pаypal.com", EmailError::NonAscii),
            ("ana@localhost", EmailError::BadDomain),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &SubscriberEmail::parse(input).unwrap_err(),
                expected,
                "{input:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(320));
        assert_eq!(
            SubscriberEmail::parse(&long).unwrap_err(),
            EmailError::TooLong
        );
        assert!(SubscriberEmail::parse("a@@example.com").is_err());
        assert!(SubscriberEmail::parse("\"a b\"@example.com").is_err());
        assert!(SubscriberEmail::parse("a@[127.0.0.1]").is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn never_panics_and_accepts_only_clean_addresses(input in "\\PC{0,300}") {
            if let Ok(email) = SubscriberEmail::parse(&input) {
                let s = email.as_str();
                prop_assert!(s.len() <= MAX_LEN);
                prop_assert!(s.is_ascii());
                prop_assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()));
                prop_assert_eq!(s.to_ascii_lowercase(), s);
                prop_assert_eq!(SubscriberEmail::parse(s).unwrap(), email.clone());
            }
        }

        #[test]
        fn plain_addresses_are_accepted(local in "[a-z0-9][a-z0-9._+-]{0,30}[a-z0-9]", domain in "[a-z0-9]{1,20}\\.[a-z]{2,10}") {
            let input = format!("{local}@{domain}");
            prop_assume!(!local.contains(".."));
            let parsed = SubscriberEmail::parse(&input).unwrap();
            prop_assert_eq!(parsed.as_str(), input.as_str());
        }

        #[test]
        fn line_breaks_anywhere_are_refused(a in "[a-z]{1,10}", b in "[a-z]{1,10}", brk in "[\r\n\0]") {
            let input = format!("{a}{brk}@{b}.com");
            prop_assert_eq!(SubscriberEmail::parse(&input), Err(EmailError::ControlCharacter));
        }
    }
}
