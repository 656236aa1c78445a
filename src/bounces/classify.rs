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

/// Hard (the address will not work) or soft (it may work later). Only a
/// failure of the address is hard: a refusal of our message or of us
/// (content, size, policy, our sender) says nothing of the reader, and a
/// relay's policy turning against one report must not suppress the list.
/// An enhanced status decides when its subject tells (RFC 3463); one that
/// does not (x.0.x, x.5.x protocol, x.3.x system) leaves it to the reply
/// code and the words.
pub fn classify(status: Option<&str>, diagnostic: &str) -> BounceKind {
    let told = [
        status.and_then(enhanced_status),
        enhanced_status(diagnostic),
    ]
    .into_iter()
    .flatten()
    .find_map(|code| what_the_status_says(code, diagnostic));
    if let Some(address_fails) = told {
        return match address_fails {
            true => BounceKind::Hard,
            false => BounceKind::Soft,
        };
    }
    let reply = status
        .and_then(|s| REPLY.find(s))
        .or_else(|| REPLY.find(diagnostic))
        .map(|m| m.as_str());
    let about_us = ABOUT_US.is_match(diagnostic);
    match reply {
        Some("550" | "551" | "553") if !about_us => BounceKind::Hard,
        Some(code) if code.starts_with('5') && ADDRESS_WORDS.is_match(diagnostic) && !about_us => {
            BounceKind::Hard
        }
        Some(_) => BounceKind::Soft,
        None if SOFT_WORDS.is_match(diagnostic) || about_us => BounceKind::Soft,
        None => BounceKind::Hard,
    }
}

/// Whether a relay's permanent refusal is about the recipient's address
/// (and so a hard bounce of it) rather than about us: our sender address,
/// authentication, policy, size or content must never suppress readers, or
/// one misconfigured relay would suppress the whole list. The same rule as
/// for bounces that come back.
pub fn is_recipient_refusal(reply: &str) -> bool {
    REPLY
        .find(reply)
        .is_some_and(|m| m.as_str().starts_with('5'))
        && classify(None, reply) == BounceKind::Hard
}

/// Whether a permanent refusal is the relay refusing us, whoever the
/// recipient: relaying denied, authentication required. Every message
/// would meet it, so it is the relay's failure, not the message's.
pub fn is_relay_refusal(reply: &str) -> bool {
    RELAY_REFUSAL.is_match(reply)
}

/// What an enhanced status says of the address, when its subject tells:
/// `Some(true)` the address failed, `Some(false)` it did not (a temporary
/// failure, or a refusal of the message or of us), `None` it does not say.
/// Subject 1 is the address (but x.1.7 and x.1.8 are our sender's, x.1.0
/// is "other"), 2 the mailbox (but a full mailbox, a message too large and
/// x.2.0 "other" are not the address's end), 4 routing (only "unable to
/// route" and Exchange's "domain does not exist" say the domain is gone;
/// x.4.1 says it when the words add "recipient address rejected"; the rest
/// are delays and loops), 6 content and 7 policy are about the message.
fn what_the_status_says(code: &str, text: &str) -> Option<bool> {
    let mut parts = code.split('.');
    let class = parts.next().unwrap_or_default();
    let subject = parts.next().unwrap_or_default();
    let detail = parts.next().unwrap_or_default();
    match (class, subject, detail) {
        ("4", _, _) => Some(false),
        ("5", "1", "7" | "8") => Some(false),
        ("5", "1", "0") => None,
        ("5", "1", _) => Some(true),
        ("5", "2", "2" | "3") => Some(false),
        ("5", "2", "0") => None,
        ("5", "2", _) => Some(true),
        ("5", "4", "4" | "310") => Some(true),
        ("5", "4", "1") => RECIPIENT_REJECTED.is_match(text).then_some(true),
        ("5", "4", _) => Some(false),
        ("5", "3", "4") => Some(false),
        ("5", "6" | "7", _) => Some(false),
        _ => None,
    }
}

/// The first enhanced status code of class 4 or 5 in `text`.
fn enhanced_status(text: &str) -> Option<&str> {
    first_status(&ENHANCED, text)
}

/// The first match of `status` in `text` that is not a piece of an IP
/// address: `[5.9.100.10]` holds no status 5.9.100.
pub(super) fn first_status<'t>(status: &Regex, text: &'t str) -> Option<&'t str> {
    status.find_iter(text).find_map(|m| {
        let dotted_before = text[..m.start()].ends_with('.');
        let mut after = text[m.end()..].chars();
        let dotted_on =
            after.next() == Some('.') && after.next().is_some_and(|c| c.is_ascii_digit());
        (!dotted_before && !dotted_on).then(|| m.as_str())
    })
}

static ENHANCED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[45]\.\d{1,3}\.\d{1,3}\b").expect("static regex"));
static REPLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[45]\d\d\b").expect("static regex"));
static SOFT_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)mailbox (?:is )?full|over quota|quota exceeded|temporar|try again later|greylist|deferred")
        .expect("static regex")
});
/// Words of an address that does not exist, for replies without a status
/// that tells.
static ADDRESS_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)user unknown|unknown user|no such (?:user|mailbox|recipient|address)|does not exist|doesn't exist|mailbox unavailable|invalid (?:recipient|mailbox)|recipient address rejected|(?:recipient|address) not found|unrouteable address|(?:doesn't|does not) have an? [\w.-]+ account|(?:user|mailbox|account) (?:is )?(?:disabled|inactive|deactivated)")
        .expect("static regex")
});
/// Exchange's x.4.1 refusal of an address it does not know.
static RECIPIENT_REJECTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)recipient address rejected").expect("static regex"));
/// Words of a refusal of us or of our message rather than of the address.
static ABOUT_US: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\bsender\b|{RELAY_DENIED}|spam|block ?list|black ?list|deny ?list|\bpolicy\b|reputation|dmarc|\bspf\b|authenticat|too (?:large|big)|size limit|rate limit"
    ))
    .expect("static regex")
});
/// The relay will not pass our mail on, whoever it is for.
const RELAY_DENIED: &str = r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)|not permitted to relay|unable to relay";
static RELAY_REFUSAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\(530\)|{RELAY_DENIED}|authentication required|must authenticate"
    ))
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
            "permanent error (550): 5.1.1 <a@example.com>: Recipient address rejected: \
             User unknown in relay recipient table"
        ));
        assert!(is_recipient_refusal(
            "permanent error (550): 5.4.1 Recipient address rejected: Access denied"
        ));
        // The mailbox is full, the report too large for this relay, our
        // sender refused, relaying denied: none is the address's end.
        assert!(!is_recipient_refusal(
            "permanent error (552): 5.2.2 mailbox full"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (552): 5.2.3 message too large"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (550): 5.1.0 <bounces+x@example.com>: Sender address rejected"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (550): Relaying denied"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (550): relay not permitted"
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
    fn refusals_of_our_message_or_of_us_are_soft() {
        for status in [
            "5.7.1", "5.7.26", "5.7.0", "5.3.4", "5.2.3", "5.6.0", "5.1.8",
        ] {
            assert_eq!(classify(Some(status), ""), BounceKind::Soft, "{status}");
        }
        assert_eq!(
            classify(None, "550 Message rejected as spam"),
            BounceKind::Soft
        );
        assert_eq!(classify(None, "550 no such user"), BounceKind::Hard);
        assert_eq!(classify(None, "554 no such user here"), BounceKind::Hard);
        assert_eq!(classify(None, "554 transaction failed"), BounceKind::Soft);
        // "Other or undefined": the reply code underneath decides.
        assert_eq!(
            classify(Some("5.0.0"), "550 5.1.1 user unknown"),
            BounceKind::Hard
        );
        assert_eq!(
            classify(Some("5.0.0"), "552 5.2.2 over quota"),
            BounceKind::Soft
        );
    }

    #[test]
    fn the_big_providers_words_for_an_unknown_address_are_hard() {
        let hard = [
            (None, "550 5.5.0 Requested action not taken: mailbox unavailable"),
            (
                Some("5.0.0"),
                "smtp; 554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0] - mta1",
            ),
            (Some("5.0.0"), "554 30 Sorry, your message to x@aol.com cannot be delivered. This mailbox is disabled (554.30)"),
            (Some("5.4.1"), "550 5.4.1 Recipient address rejected: Access denied"),
            (Some("5.4.4"), "unable to route: no mail hosts for domain"),
        ];
        for (status, diagnostic) in hard {
            assert_eq!(
                classify(status, diagnostic),
                BounceKind::Hard,
                "{diagnostic}"
            );
        }
        // A server down for days, a loop: not the address's end.
        for status in ["5.4.7", "5.4.6", "5.4.14", "5.4.300"] {
            assert_eq!(
                classify(Some(status), "Message expired"),
                BounceKind::Soft,
                "{status}"
            );
        }
        // Exchange refusing our From for every message, at the end of data.
        assert!(!is_recipient_refusal(
            "permanent error (554): 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
        ));
        assert!(!is_recipient_refusal(
            "permanent error (554): 5.1.0 <bounces@example.com>: Sender address rejected"
        ));
        assert!(is_relay_refusal(
            "permanent error (550): 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
        ));
    }

    #[test]
    fn an_ip_address_is_not_a_status() {
        let exim = "host mx.example.org [5.9.100.10]: 552 5.2.2 over quota";
        assert_eq!(enhanced_status(exim), Some("5.2.2"));
        assert_eq!(classify(None, exim), BounceKind::Soft);
        assert_eq!(
            enhanced_status("qmail 5.9.1.2 does not like recipient"),
            None
        );
        assert_eq!(enhanced_status("at 10.5.1.1 then 4.4.1"), Some("4.4.1"));
        assert_eq!(enhanced_status("Status: 5.1.1"), Some("5.1.1"));
    }

    #[test]
    fn relaying_denied_is_the_relays_failure() {
        assert!(is_relay_refusal("permanent error (550): Relaying denied"));
        assert!(is_relay_refusal(
            "permanent error (554): 5.7.1 <a@example.com>: Relay access denied"
        ));
        assert!(is_relay_refusal(
            "permanent error (530): 5.7.0 Authentication required"
        ));
        assert!(!is_relay_refusal(
            "permanent error (550): 5.1.1 no such user"
        ));
        assert!(!is_relay_refusal(
            "permanent error (554): 5.7.1 message rejected as spam"
        ));
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
