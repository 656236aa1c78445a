//! Hard or soft: the status codes of RFC 3463 first, the SMTP reply code
//! next, the words of the diagnostic last.

use std::sync::LazyLock;

use regex::Regex;

use super::BounceKind;

/// Whether a DSN `Action` means the message will not arrive. A report
/// without one (some mail systems leave it out) is judged by its status.
pub fn is_final_failure(action: &str) -> bool {
    let action = action.trim().to_ascii_lowercase();
    action.is_empty() || action.starts_with("failed")
}

/// Hard (the address will not work) or soft (it may work later).
pub fn classify(status: Option<&str>, diagnostic: &str) -> BounceKind {
    let status = status
        .and_then(|s| ENHANCED.find(s).or_else(|| REPLY.find(s)))
        .or_else(|| ENHANCED.find(diagnostic))
        .or_else(|| REPLY.find(diagnostic))
        .map(|m| m.as_str());
    match status {
        // A full mailbox is reported as permanent by some servers but is
        // the reader's to fix; it counts towards the soft-bounce limit.
        Some("5.2.2") | Some("552") => BounceKind::Soft,
        Some(code) if code.starts_with('5') => BounceKind::Hard,
        Some(code) if code.starts_with('4') => BounceKind::Soft,
        _ if SOFT_WORDS.is_match(diagnostic) => BounceKind::Soft,
        _ => BounceKind::Hard,
    }
}

/// Whether a relay's permanent refusal is about the recipient's address
/// (and so a hard bounce of it) rather than about us: our sender address,
/// authentication, policy or content must never suppress readers, or one
/// misconfigured relay would suppress the whole list.
pub fn is_recipient_refusal(reply: &str) -> bool {
    if let Some(code) = ENHANCED.find(reply).map(|m| m.as_str()) {
        let mut parts = code.split('.').skip(1);
        let subject = parts.next().unwrap_or_default();
        let detail = parts.next().unwrap_or_default();
        return code.starts_with('5')
            && (subject == "2" || (subject == "1" && !matches!(detail, "7" | "8")));
    }
    REPLY
        .find(reply)
        .is_some_and(|m| matches!(m.as_str(), "550" | "551" | "553"))
}

static ENHANCED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[45]\.\d{1,3}\.\d{1,3}\b").expect("static regex"));
static REPLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[45]\d\d\b").expect("static regex"));
static SOFT_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)mailbox (?:is )?full|over quota|quota exceeded|temporar|try again later|greylist|deferred")
        .expect("static regex")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_before_words() {
        assert_eq!(classify(Some("5.1.1"), ""), BounceKind::Hard);
        assert_eq!(classify(Some("5.1.1 (unknown user)"), ""), BounceKind::Hard);
        assert_eq!(classify(Some("4.2.2"), "550 whatever"), BounceKind::Soft);
        assert_eq!(classify(Some("5.2.2"), ""), BounceKind::Soft);
        assert_eq!(classify(None, "550 5.1.1 User unknown"), BounceKind::Hard);
        assert_eq!(classify(None, "451 greylisted"), BounceKind::Soft);
        assert_eq!(classify(None, "the mailbox is full"), BounceKind::Soft);
        assert_eq!(classify(None, "no such user"), BounceKind::Hard);
    }

    #[test]
    fn only_refusals_of_the_address_are_bounces() {
        assert!(is_recipient_refusal(
            "permanent error (550): 5.1.1 no such user"
        ));
        assert!(is_recipient_refusal("permanent error (550): user unknown"));
        assert!(is_recipient_refusal(
            "permanent error (552): 5.2.2 mailbox full"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (550): 5.7.1 message rejected as spam"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (553): 5.1.8 sender domain unknown"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (535): 5.7.8 authentication failed"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (554): transaction failed"
        ));
        assert!(!is_recipient_refusal("TLS setup: bad certificate"));
    }

    #[test]
    fn only_failed_actions_are_final() {
        assert!(is_final_failure("failed"));
        assert!(is_final_failure("Failed"));
        assert!(is_final_failure(""));
        for action in ["delayed", "delivered", "relayed", "expanded"] {
            assert!(!is_final_failure(action), "{action}");
        }
    }
}
