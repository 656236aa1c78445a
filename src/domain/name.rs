//! A reader's display name, safe to place in a header or a page.

/// Longest name we keep, in characters.
const MAX_CHARS: usize = 100;

/// A trimmed name with no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is longer than {MAX_CHARS} characters")]
    TooLong,
    #[error("the name contains a control character (such as a line break)")]
    ControlCharacter,
}

impl SubscriberName {
    /// Returns `None` for a blank name: the name is optional.
    pub fn parse(input: &str) -> Result<Option<Self>, NameError> {
        // A line break in a name would end up in a To: header.
        if input.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > MAX_CHARS {
            return Err(NameError::TooLong);
        }
        Ok(Some(SubscriberName(trimmed.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_allows_unicode() {
        let n = SubscriberName::parse("  Zoë 王  ").unwrap().unwrap();
        assert_eq!(n.as_str(), "Zoë 王");
        assert_eq!(SubscriberName::parse("   ").unwrap(), None);
    }

    #[test]
    fn refuses_line_breaks_and_long_names() {
        assert_eq!(
            SubscriberName::parse("Ana\r\nBcc: x").unwrap_err(),
            NameError::ControlCharacter
        );
        assert_eq!(
            SubscriberName::parse("Ana\u{7}").unwrap_err(),
            NameError::ControlCharacter
        );
        assert_eq!(
            SubscriberName::parse(&"x".repeat(101)).unwrap_err(),
            NameError::TooLong
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn accepted_names_are_trimmed_short_and_clean(input in "\\PC{0,150}|[\\s\\S]{0,150}") {
            if let Ok(Some(name)) = SubscriberName::parse(&input) {
                let s = name.as_str();
                prop_assert!(s.chars().count() <= MAX_CHARS);
                prop_assert!(!s.chars().any(char::is_control));
                prop_assert_eq!(s.trim(), s);
                prop_assert!(!s.is_empty());
            }
        }
    }
}
