//! Reading what comes back: RFC 3464 delivery status notifications, RFC
//! 5965 (ARF) complaint reports, the plain-text bounces some mail systems
//! still send, and everything that only looks like a bounce (auto-replies,
//! vacation notices, challenge-response mail), which must not count.

use std::sync::LazyLock;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;

use super::classify::{classify, first_status, is_final_failure};
use super::BounceKind;

/// What a message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Addresses that may be one of our VERP addresses: where the notice
    /// was sent, and the envelope sender of the message it returns.
    pub verp_candidates: Vec<String>,
    /// The Message-ID of the returned message, when it is included.
    pub original_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeKind {
    /// Delivery failed for these recipients.
    Bounce(Vec<Failure>),
    /// A recipient reported the message as spam.
    Complaint(Complaint),
    /// Not a bounce; the reason, for the log and the editor.
    NotABounce(&'static str),
}

/// One recipient's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The address that failed, when the notice names it.
    pub recipient: Option<String>,
    pub kind: BounceKind,
    /// The enhanced status code (`5.1.1`), or the SMTP reply code.
    pub status: Option<String>,
    /// What the receiving server said.
    pub diagnostic: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    pub recipient: Option<String>,
    pub feedback_type: String,
}

/// Reads one raw message. Never fails: what cannot be understood is "not a
/// bounce", which suppresses nobody.
pub fn read_notice(raw: &[u8]) -> Notice {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Notice {
            kind: NoticeKind::NotABounce("not a mail message"),
            verp_candidates: Vec::new(),
            original_message_id: None,
        };
    };
    let mut notice = Notice {
        kind: NoticeKind::NotABounce("not a bounce or a complaint"),
        verp_candidates: addressed_to(&message),
        original_message_id: None,
    };
    let mut report = Report::default();
    collect_parts(&message, &mut report, 0);
    if let Some(original) = &report.original {
        notice
            .verp_candidates
            .extend(original.return_path.iter().cloned());
        notice.original_message_id = original.message_id.clone();
    }
    if let Some(feedback) = &report.feedback {
        notice
            .verp_candidates
            .extend(field(feedback, "original-mail-from"));
        notice.kind = complaint(feedback, report.original.as_ref());
    } else if let Some(status) = &report.delivery_status {
        notice.kind = delivery_status(status);
    } else {
        notice.kind = plain_text_notice(&message);
    }
    notice.verp_candidates.retain(|a| !a.is_empty());
    notice.verp_candidates.dedup();
    notice
}

/// The parts of a report that matter, wherever they sit in the MIME tree.
#[derive(Default)]
struct Report {
    delivery_status: Option<String>,
    feedback: Option<Vec<(String, String)>>,
    original: Option<Original>,
}

/// What the returned message tells about itself.
struct Original {
    return_path: Option<String>,
    message_id: Option<String>,
    to: Option<String>,
}

fn collect_parts(message: &Message<'_>, report: &mut Report, depth: usize) {
    for part in &message.parts {
        let Some(content_type) = part.content_type() else {
            continue;
        };
        let ctype = content_type.ctype().to_ascii_lowercase();
        let subtype = content_type
            .subtype()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                report
                    .delivery_status
                    .get_or_insert_with(|| String::from_utf8_lossy(part.contents()).into_owned());
            }
            ("message", "feedback-report") => {
                let text = String::from_utf8_lossy(part.contents());
                report
                    .feedback
                    .get_or_insert_with(|| unfolded_fields(&text));
            }
            ("text", "rfc822-headers") | ("message", "global-headers")
                if report.original.is_none() =>
            {
                let headers = format!("{}\r\n\r\n", String::from_utf8_lossy(part.contents()));
                if let Some(parsed) = MessageParser::default().parse_headers(headers.as_bytes()) {
                    report.original = Some(original_of(&parsed));
                }
            }
            ("message", "rfc822" | "global") => {
                if let PartType::Message(inner) = &part.body {
                    if report.original.is_none() {
                        report.original = Some(original_of(inner));
                    }
                    // A report forwarded inside another message.
                    if depth < 2 && report.delivery_status.is_none() && report.feedback.is_none() {
                        let mut nested = Report::default();
                        collect_parts(inner, &mut nested, depth + 1);
                        if nested.delivery_status.is_some() || nested.feedback.is_some() {
                            report.delivery_status = nested.delivery_status;
                            report.feedback = nested.feedback;
                            report.original = nested.original.or(report.original.take());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn original_of(message: &Message<'_>) -> Original {
    Original {
        return_path: message.return_address().map(str::to_string).or_else(|| {
            message
                .header_raw("Return-Path")
                .map(|v| clean_address(v).to_string())
        }),
        message_id: message.message_id().map(str::to_string),
        to: message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string),
    }
}

/// Where the notice was addressed: the VERP address shows up here.
fn addressed_to(message: &Message<'_>) -> Vec<String> {
    let mut found = Vec::new();
    for (name, value) in message.headers_raw() {
        if [
            "delivered-to",
            "x-original-to",
            "to",
            "envelope-to",
            "x-envelope-to",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        {
            found.extend(ADDRESS.find_iter(value).map(|m| m.as_str().to_string()));
        }
    }
    found
}

/// A delivery status notification: one group of fields per recipient after
/// the per-message group.
fn delivery_status(text: &str) -> NoticeKind {
    let mut failures = Vec::new();
    let mut recipients_seen = 0;
    for group in field_groups(text) {
        let recipient = field(&group, "final-recipient")
            .or_else(|| field(&group, "original-recipient"))
            .map(|v| address_type_value(&v));
        let Some(recipient) = recipient else {
            continue;
        };
        recipients_seen += 1;
        let action = field(&group, "action").unwrap_or_default();
        let status = field(&group, "status");
        let diagnostic = field(&group, "diagnostic-code")
            .map(|v| address_type_value(&v))
            .unwrap_or_default();
        if !is_final_failure(&action) {
            continue;
        }
        failures.push(Failure {
            kind: classify(status.as_deref(), &diagnostic),
            recipient: Some(recipient),
            status: status.map(|s| s.split_whitespace().next().unwrap_or_default().to_string()),
            diagnostic,
        });
    }
    match (failures.is_empty(), recipients_seen) {
        (false, _) => NoticeKind::Bounce(failures),
        (true, 0) => NoticeKind::NotABounce("a delivery report without recipients"),
        (true, _) => NoticeKind::NotABounce("a delay or success notice, not a failure"),
    }
}

/// A feedback report: only abuse and fraud reports are complaints.
fn complaint(fields: &[(String, String)], original: Option<&Original>) -> NoticeKind {
    let feedback_type = field(fields, "feedback-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(feedback_type.as_str(), "abuse" | "fraud") {
        return NoticeKind::NotABounce("a feedback report that is not a complaint");
    }
    let recipient = field(fields, "original-rcpt-to")
        .map(|v| clean_address(&v).to_string())
        .or_else(|| original.and_then(|o| o.to.clone()));
    NoticeKind::Complaint(Complaint {
        recipient,
        feedback_type,
    })
}

/// The bounces of mail systems that do not send RFC 3464 reports, and the
/// auto-replies that must not be mistaken for them.
fn plain_text_notice(message: &Message<'_>) -> NoticeKind {
    let subject = message.subject().unwrap_or_default().to_lowercase();
    let text = message
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let from_mail_system = message
        .from()
        .and_then(|f| f.first())
        .map(|a| {
            let address = a.address().unwrap_or_default().to_ascii_lowercase();
            let name = a.name().unwrap_or_default().to_ascii_lowercase();
            address.starts_with("mailer-daemon@")
                || address.starts_with("postmaster@")
                || name.contains("mail delivery")
                || name.contains("mailer-daemon")
        })
        .unwrap_or(false);
    if from_mail_system {
        if subject.starts_with("warning:") || subject.contains("delayed") {
            return NoticeKind::NotABounce("a delay warning; delivery is still being tried");
        }
        if let Some(failures) = text_bounce(&text) {
            return NoticeKind::Bounce(failures);
        }
    }
    if is_auto_reply(message, &subject) {
        return NoticeKind::NotABounce("an automatic reply (vacation or out of office)");
    }
    if is_challenge(message, &subject, &text) {
        return NoticeKind::NotABounce("a challenge-response request");
    }
    NoticeKind::NotABounce("not a bounce or a complaint")
}

/// Plain-text bounce forms: Exim, qmail, older Postfix, Exchange and Gmail.
/// The explanation comes before the copy of the returned message; only
/// that part is read, so addresses in the returned message are not taken
/// for failed recipients.
fn text_bounce(text: &str) -> Option<Vec<Failure>> {
    let explanation = BODY_END
        .find(text)
        .map(|m| &text[..m.start()])
        .unwrap_or(text);
    if !BOUNCE_PHRASE.is_match(explanation) {
        return None;
    }
    let mut recipients: Vec<String> = Vec::new();
    for m in ADDRESS.find_iter(explanation) {
        let address = m.as_str().to_string();
        let lower = address.to_ascii_lowercase();
        if lower.starts_with("mailer-daemon@") || lower.starts_with("postmaster@") {
            continue;
        }
        if !recipients.iter().any(|r| r.eq_ignore_ascii_case(&address)) {
            recipients.push(address);
        }
    }
    let status = first_status(&ENHANCED_STATUS, explanation)
        .or_else(|| REPLY_CODE.find(explanation).map(|m| m.as_str()))
        .map(|code| code.trim_start_matches('#').to_string());
    let diagnostic = explanation
        .lines()
        .map(str::trim)
        .find(|line| first_status(&ENHANCED_STATUS, line).is_some() || REPLY_CODE.is_match(line))
        .or_else(|| {
            explanation
                .lines()
                .map(str::trim)
                .find(|l| BOUNCE_PHRASE.is_match(l))
        })
        .unwrap_or_default()
        .chars()
        .take(500)
        .collect::<String>();
    let kind = classify(status.as_deref(), explanation);
    let failures = if recipients.is_empty() {
        vec![Failure {
            recipient: None,
            kind,
            status,
            diagnostic,
        }]
    } else {
        recipients
            .into_iter()
            .map(|r| Failure {
                recipient: Some(r),
                kind,
                status: status.clone(),
                diagnostic: diagnostic.clone(),
            })
            .collect()
    };
    Some(failures)
}

/// RFC 3834 `Auto-Submitted`, the headers vacation programs add, and the
/// subjects out-of-office replies carry.
fn is_auto_reply(message: &Message<'_>, subject: &str) -> bool {
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if header("Auto-Submitted").is_some_and(|v| !v.is_empty() && v != "no") {
        return true;
    }
    if [
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Vacation",
    ]
    .iter()
    .any(|h| header(h).is_some())
    {
        return true;
    }
    if header("Precedence").is_some_and(|v| v == "auto_reply") {
        return true;
    }
    if header("X-Auto-Response-Suppress").is_some() && AUTO_REPLY_SUBJECT.is_match(subject) {
        return true;
    }
    AUTO_REPLY_SUBJECT.is_match(subject)
}

/// Challenge-response systems ask the sender to prove they are human.
fn is_challenge(message: &Message<'_>, subject: &str, text: &str) -> bool {
    message.header_raw("X-Boxbe-Challenge").is_some()
        || message.header_raw("X-Challenge").is_some()
        || CHALLENGE.is_match(subject)
        || CHALLENGE.is_match(&text.to_lowercase())
}

/// Header-style fields, continuation lines joined, names lowercased.
fn unfolded_fields(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    fields
}

/// The groups of a delivery-status body, separated by blank lines.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let normalised = text.replace("\r\n", "\n");
    normalised
        .split("\n\n")
        .map(unfolded_fields)
        .filter(|g| !g.is_empty())
        .collect()
}

fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// `rfc822; user@example.com` → `user@example.com`.
fn address_type_value(value: &str) -> String {
    match value.split_once(';') {
        Some((_, rest)) => clean_address(rest).to_string(),
        None => clean_address(value).to_string(),
    }
}

fn clean_address(value: &str) -> &str {
    value
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
}

static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+=#-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+").expect("static regex")
});
static ENHANCED_STATUS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[245]\.\d{1,3}\.\d{1,3}\b").expect("static regex"));
static REPLY_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[\s#'])[45]\d\d\b").expect("static regex"));
static BOUNCE_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)could not be delivered|wasn't able to deliver|was not delivered|wasn't delivered|delivery has failed|delivery to the following recipient|failed permanently|permanent error|undeliverable|address(?:es)? failed|couldn't be found|user unknown|does not exist|mailbox (?:is )?full|over quota",
    )
    .expect("static regex")
});
/// Where a text bounce's copy of the returned message begins.
static BODY_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?im)^(?:-+ ?(?:Below this line is a copy of the message|This is a copy of the message|Original message|Original Message Headers)|\s*-+\s*original message\s*-+)",
    )
    .expect("static regex")
});
static AUTO_REPLY_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|auto:|out of (?:the )?office|abwesenheit|réponse automatique|respuesta automática|risposta automatica|自动回复|on vacation|vacation)",
    )
    .expect("static regex")
});
static CHALLENGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)please (?:verify|confirm) (?:that )?(?:you|your (?:message|email|identity))|approve (?:the )?sender|sender verification|challenge[- ]response|prove you are (?:a )?human",
    )
    .expect("static regex")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_with_two_recipients_gives_two_failures() {
        let raw = concat!(
            "From: MAILER-DAEMON@mx.example.net\r\n",
            "To: bounces+1-abc@bounce.example.com\r\n",
            "Subject: Undelivered Mail\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n",
            "\r\n--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n",
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n",
            "Reporting-MTA: dns; mx.example.net\r\n\r\n",
            "Final-Recipient: rfc822; one@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 no such\r\n user here\r\n\r\n",
            "Final-Recipient: rfc822; two@example.org\r\nAction: failed\r\nStatus: 4.2.2\r\n",
            "Diagnostic-Code: smtp; 452 4.2.2 mailbox full\r\n\r\n",
            "Final-Recipient: rfc822; three@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n",
            "--b--\r\n"
        );
        let notice = read_notice(raw.as_bytes());
        let NoticeKind::Bounce(failures) = notice.kind else {
            panic!("{notice:?}")
        };
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].recipient.as_deref(), Some("one@example.org"));
        assert_eq!(failures[0].kind, BounceKind::Hard);
        assert_eq!(failures[0].diagnostic, "550 5.1.1 no such user here");
        assert_eq!(failures[1].kind, BounceKind::Soft);
        assert_eq!(
            notice.verp_candidates,
            vec!["bounces+1-abc@bounce.example.com"]
        );
    }

    #[test]
    fn a_vacation_reply_is_not_a_bounce() {
        let raw = "From: Ana <ana@example.org>\r\nTo: news@example.com\r\nSubject: Out of Office: Weekly\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday; your message was not delivered to my desk.\r\n";
        let notice = read_notice(raw.as_bytes());
        assert!(
            matches!(notice.kind, NoticeKind::NotABounce(_)),
            "{notice:?}"
        );
    }

    #[test]
    fn an_ip_address_in_a_text_bounce_is_not_its_status() {
        let raw = concat!(
            "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\n",
            "To: bounces+1-abc@bounce.example.com\r\n",
            "Subject: Mail delivery failed: returning message to sender\r\n",
            "\r\n",
            "This message was created automatically by mail delivery software.\r\n\r\n",
            "A message that you sent could not be delivered to one or more of its\r\n",
            "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n",
            "  reader@example.org\r\n",
            "    host mx.example.org [5.9.100.10]\r\n",
            "    SMTP error from remote mail server after RCPT TO:<reader@example.org>:\r\n",
            "    552 5.2.2 <reader@example.org>: mailbox over quota\r\n",
        );
        let notice = read_notice(raw.as_bytes());
        let NoticeKind::Bounce(failures) = notice.kind else {
            panic!("{notice:?}")
        };
        assert_eq!(failures[0].status.as_deref(), Some("5.2.2"));
        assert_eq!(failures[0].kind, BounceKind::Soft, "a full mailbox");
    }

    #[test]
    fn garbage_is_not_a_bounce() {
        for raw in [&b""[..], b"\xff\xfe\x00", b"no headers at all"] {
            assert!(matches!(read_notice(raw).kind, NoticeKind::NotABounce(_)));
        }
    }
}
