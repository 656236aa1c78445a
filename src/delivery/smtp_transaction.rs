//! One message's SMTP transaction in as few round trips as the relay allows.
//!
//! lettre's client waits for each reply before it writes the next command,
//! so a message costs four round trips (MAIL, RCPT, DATA, end of data). A
//! relay 20–80 ms away then sets the pace, not the CPU. When the relay
//! announces PIPELINING (RFC 2920) the envelope and DATA go out in one write,
//! and the message's data in the same write as the next message's envelope:
//! one round trip per message while messages follow each other. When it
//! also announces CHUNKING (RFC 3030) the message rides in the same write as
//! its own envelope (`BDAT n LAST`): one round trip. lettre still opens the connection,
//! speaks TLS and AUTH, and parses every reply.

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error;

use super::transport::{classify, MailError};

/// The extensions that change how a transaction is written. lettre keeps
/// only the ones it uses itself, so they are read from an EHLO of our own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Capabilities {
    pub pipelining: bool,
    pub chunking: bool,
}

impl Capabilities {
    /// Asks the relay with EHLO; one round trip per connection.
    pub async fn probe(
        conn: &mut AsyncSmtpConnection,
        hello: &ClientId,
    ) -> Result<Capabilities, Error> {
        let reply = conn.command(Ehlo::new(hello.clone())).await?;
        Ok(Capabilities::from_ehlo(&reply))
    }

    fn from_ehlo(reply: &Response) -> Capabilities {
        let mut caps = Capabilities::default();
        // The first line is the relay's name; keywords follow, one a line.
        for line in reply.message().skip(1) {
            let keyword = line.split_whitespace().next().unwrap_or("");
            if keyword.eq_ignore_ascii_case("PIPELINING") {
                caps.pipelining = true;
            } else if keyword.eq_ignore_ascii_case("CHUNKING") {
                caps.chunking = true;
            }
        }
        caps
    }
}

/// How long each reply may take. Every reply is awaited on its own, so a
/// verdict already read is never lost to a later reply that is slow. The
/// verdict on a message's data gets the longer wait: giving up on it is the
/// one moment a message the relay took can be sent again, and relays that
/// scan mail take their time there (RFC 5321 §4.5.3.2.6 allows 10 minutes).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub command: Duration,
    pub end_of_data: Duration,
}

/// The reply `reading` waits for, unless it takes longer than `limit`; the
/// connection is then out of step.
async fn within(
    limit: Duration,
    what: &str,
    reading: impl Future<Output = Result<Response, Error>>,
) -> Result<Result<Response, Error>, Failure> {
    tokio::time::timeout(limit, reading).await.map_err(|_| {
        Failure::Broken(MailError::Transient(format!(
            "no answer to {what} from the relay within {} s",
            limit.as_secs_f32()
        )))
    })
}

const END_OF_DATA: &str = "the end of a message's data";

/// A transaction that did not end in "accepted".
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// The relay answered no; the connection is back at the start of a
    /// transaction and can carry the next message.
    Refused(MailError),
    /// The connection is out of step or gone and must be closed.
    Broken(MailError),
}

impl Failure {
    pub fn into_error(self) -> MailError {
        match self {
            Failure::Refused(e) | Failure::Broken(e) => e,
        }
    }

    /// A permanent refusal of our envelope sender: every message would
    /// meet it, so it is the relay's failure rather than this message's.
    fn of_our_sender(self) -> Failure {
        let relay = |e: MailError| match e {
            MailError::Permanent(m) => MailError::Relay(m),
            other => other,
        };
        match self {
            Failure::Refused(e) => Failure::Refused(relay(e)),
            Failure::Broken(e) => Failure::Broken(relay(e)),
        }
    }

    fn refused(e: Error) -> Failure {
        Failure::Refused(classify(e))
    }

    fn broken(e: Error) -> Failure {
        Failure::Broken(classify(e))
    }
}

/// A message whose envelope the relay has taken (its DATA got 354) and
/// whose data is not written yet: it goes out at the head of the next
/// message's envelope, since RFC 2920 lets message content open a group,
/// or alone when no message follows. Each message then costs one round
/// trip instead of two.
pub(super) struct Held {
    block: String,
}

/// What became of a message handed to [`send`].
pub(super) enum Handover {
    /// The relay accepted it.
    Accepted,
    /// Its data waits for the next message or for [`finish`].
    Held(Held),
}

/// The replies [`send`] read: for the message held before, if one was
/// given, and for the new one.
pub(super) struct Sent {
    pub before: Option<Result<(), Failure>>,
    pub this: Result<Handover, Failure>,
}

/// Sends one message with one envelope recipient per reader (with several,
/// a refusal of any fails the whole message, as lettre does), writing the
/// data of the message `held` before in the same write as this envelope.
pub(super) async fn send(
    conn: &mut AsyncSmtpConnection,
    caps: Capabilities,
    deadlines: Deadlines,
    held: Option<Held>,
    envelope: &Envelope,
    email: &[u8],
) -> Sent {
    let text = std::str::from_utf8(email).ok();
    let chunk = text.filter(|_| caps.chunking);
    // Only the pipelined DATA exchange leaves a message held, and a
    // connection's extensions do not change between its messages.
    debug_assert!(held.is_none() || (caps.pipelining && chunk.is_none()));
    let mut before = None;
    if !caps.pipelining {
        return Sent {
            before,
            this: one_step_at_a_time(conn, deadlines, envelope, email).await,
        };
    }
    let parameters = match mail_parameters(conn, envelope, email) {
        Ok(parameters) => parameters,
        Err(refused) => {
            // Nothing of this message is written; a held one goes alone.
            if let Some(held) = held {
                before = Some(finish(conn, deadlines, held).await);
            }
            return Sent {
                before,
                this: Err(refused),
            };
        }
    };
    let had_held = held.is_some();
    let mut group = match held {
        Some(held) => held.block,
        None => String::new(),
    };
    group.push_str(&Mail::new(envelope.from().cloned(), parameters).to_string());
    for to in envelope.to() {
        group.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
    }
    // BDAT carries the message verbatim inside the command text, which
    // lettre writes from a `str`; a message that is not UTF-8 goes by DATA.
    match chunk {
        Some(text) => {
            let _ = write!(group, "BDAT {} LAST\r\n", text.len());
            group.push_str(text);
        }
        None => group.push_str("DATA\r\n"),
    }

    // With a message held, the first reply is its verdict on that
    // message's data, and it is kept whatever becomes of this one. With
    // BDAT this message's data is already written: giving up on any of its
    // replies could repeat it, so each gets the data's deadline.
    let first_reply = match (had_held, chunk.is_some()) {
        (true, _) => (deadlines.end_of_data, END_OF_DATA),
        (false, true) => (deadlines.end_of_data, "MAIL"),
        (false, false) => (deadlines.command, "MAIL"),
    };
    let first = match within(first_reply.0, first_reply.1, conn.command(group)).await {
        Ok(first) => first,
        Err(late) => {
            return Sent {
                before: had_held.then(|| Err(late.clone())),
                this: Err(late),
            }
        }
    };
    let first = if had_held {
        match end_of_data(first) {
            Err(Failure::Broken(cause)) => {
                before = Some(Err(Failure::Broken(cause.clone())));
                return Sent {
                    before,
                    this: Err(Failure::Broken(cause)),
                };
            }
            verdict => before = Some(verdict),
        }
        match within(deadlines.command, "MAIL", conn.read_response()).await {
            Ok(first) => first,
            Err(late) => {
                return Sent {
                    before,
                    this: Err(late),
                }
            }
        }
    } else {
        first
    };
    // A refusal of MAIL refuses our sender, not this message.
    let sender_refused = matches!(&first, Err(e) if e.is_permanent());
    let chunked = chunk.is_some();
    let this = envelope_replies(conn, deadlines, first, envelope, email, text, chunked).await;
    Sent {
        before,
        this: match this {
            Err(failure) if sender_refused => Err(failure.of_our_sender()),
            this => this,
        },
    }
}

/// A transaction as lettre writes it, each command after the last reply,
/// for a relay that does not announce PIPELINING.
async fn one_step_at_a_time(
    conn: &mut AsyncSmtpConnection,
    deadlines: Deadlines,
    envelope: &Envelope,
    email: &[u8],
) -> Result<Handover, Failure> {
    let parameters = mail_parameters(conn, envelope, email)?;
    let command = deadlines.command;
    let mail = Mail::new(envelope.from().cloned(), parameters);
    if let Err(e) = within(command, "MAIL", conn.command(mail)).await? {
        return Err(refused_or_broken(conn, deadlines, e).await.of_our_sender());
    }
    for to in envelope.to() {
        let rcpt = Rcpt::new(to.clone(), vec![]);
        if let Err(e) = within(command, "RCPT", conn.command(rcpt)).await? {
            return Err(refused_or_broken(conn, deadlines, e).await);
        }
    }
    if let Err(e) = within(command, "DATA", conn.command(Data)).await? {
        return Err(refused_or_broken(conn, deadlines, e).await);
    }
    end_of_data(within(deadlines.end_of_data, END_OF_DATA, conn.message(email)).await?)
        .map(|()| Handover::Accepted)
}

/// A reply that says no leaves the connection usable once reset; anything
/// else leaves it out of step.
async fn refused_or_broken(
    conn: &mut AsyncSmtpConnection,
    deadlines: Deadlines,
    e: Error,
) -> Failure {
    if is_reply(&e) {
        reset(conn, deadlines, e).await
    } else {
        Failure::broken(e)
    }
}

/// Reads the rest of a pipelined transaction's replies, each under its
/// deadline, `first` being the reply to MAIL.
async fn envelope_replies(
    conn: &mut AsyncSmtpConnection,
    deadlines: Deadlines,
    first: Result<Response, Error>,
    envelope: &Envelope,
    email: &[u8],
    text: Option<&str>,
    chunked: bool,
) -> Result<Handover, Failure> {
    let command = match chunked {
        // The data went out with the envelope.
        true => deadlines.end_of_data,
        false => deadlines.command,
    };
    let mut refusal = None;
    note(first, &mut refusal)?;
    for _ in envelope.to() {
        note(
            within(command, "RCPT", conn.read_response()).await?,
            &mut refusal,
        )?;
    }
    if chunked {
        // The last reply is the verdict on the data that rode along.
        let last = within(deadlines.end_of_data, END_OF_DATA, conn.read_response()).await?;
        note(last, &mut refusal)?;
    } else {
        match within(command, "DATA", conn.read_response()).await? {
            Ok(_) if refusal.is_some() => {
                // DATA accepted although the envelope was refused: all that
                // can follow the 354 is an end of data, which might deliver
                // an empty message. Hang up instead.
                return Err(Failure::broken(refusal.take().expect("checked")));
            }
            Ok(_) => match text {
                // The data and its end in one write, stuffed here in a pass
                // over the lines rather than lettre's pass over every byte,
                // which was the send's largest cost.
                Some(text) => {
                    return Ok(Handover::Held(Held {
                        block: data_block(text),
                    }))
                }
                None => {
                    let verdict =
                        within(deadlines.end_of_data, END_OF_DATA, conn.message(email)).await?;
                    note(verdict, &mut refusal)?
                }
            },
            Err(e) => note(Err(e), &mut refusal)?,
        }
    }
    match refusal {
        None => Ok(Handover::Accepted),
        Some(e) => Err(reset(conn, deadlines, e).await),
    }
}

/// Writes a held message's data alone and reads the relay's verdict.
pub(super) async fn finish(
    conn: &mut AsyncSmtpConnection,
    deadlines: Deadlines,
    held: Held,
) -> Result<(), Failure> {
    end_of_data(within(deadlines.end_of_data, END_OF_DATA, conn.command(held.block)).await?)
}

/// The relay's verdict on a message from its reply to the end of data.
fn end_of_data(reply: Result<Response, Error>) -> Result<(), Failure> {
    match reply {
        Ok(_) => Ok(()),
        Err(e) if is_reply(&e) => Err(Failure::refused(e)),
        Err(e) => Err(Failure::broken(e)),
    }
}

/// A 4xx or 5xx reply, as opposed to I/O trouble or a garbled answer.
fn is_reply(e: &Error) -> bool {
    e.is_transient() || e.is_permanent()
}

/// The message as DATA carries it, with its end (RFC 5321 §4.5.2): a
/// period that starts a line gets a second one in front, and a line with a
/// lone period ends the data. A line starts after CRLF, as lettre counts
/// it, and at the very beginning.
fn data_block(message: &str) -> String {
    // Room for the stuffing, and for the next envelope that may follow.
    let mut block = String::with_capacity(message.len() + message.len() / 256 + 512);
    if message.starts_with('.') {
        block.push('.');
    }
    let mut start = 0;
    for at in memchr::memmem::find_iter(message.as_bytes(), b"\r\n.") {
        block.push_str(&message[start..at + 2]);
        block.push('.');
        start = at + 2;
    }
    block.push_str(&message[start..]);
    block.push_str("\r\n.\r\n");
    block
}

/// Keeps the first refusal; an error that is not a reply (I/O, a garbled
/// answer) leaves the connection out of step.
fn note(result: Result<Response, Error>, refusal: &mut Option<Error>) -> Result<(), Failure> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_reply(&e) => {
            if refusal.is_none() {
                *refusal = Some(e);
            }
            Ok(())
        }
        Err(e) => Err(Failure::broken(refusal.take().unwrap_or(e))),
    }
}

/// A refused transaction may leave the relay holding a sender; RSET clears
/// it, so only a failure costs this round trip.
async fn reset(conn: &mut AsyncSmtpConnection, deadlines: Deadlines, refusal: Error) -> Failure {
    match within(deadlines.command, "RSET", conn.command(Rset)).await {
        Ok(Ok(_)) => Failure::refused(refusal),
        _ => Failure::broken(refusal),
    }
}

/// SMTPUTF8 and 8BITMIME as lettre asks for them, refusing what the relay
/// cannot take.
fn mail_parameters(
    conn: &AsyncSmtpConnection,
    envelope: &Envelope,
    email: &[u8],
) -> Result<Vec<MailParameter>, Failure> {
    let info = conn.server_info();
    let mut parameters = Vec::new();
    let non_ascii = |a: &Address| !AsRef::<str>::as_ref(a).is_ascii();
    if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(Failure::Refused(MailError::Permanent(
                "the relay does not take non-ASCII addresses (no SMTPUTF8)".into(),
            )));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !email.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            return Err(Failure::Refused(MailError::Permanent(
                "the relay does not take 8-bit messages (no 8BITMIME)".into(),
            )));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_that_starts_a_line_is_doubled_and_the_data_ends_with_a_lone_period() {
        assert_eq!(data_block("a\r\nb"), "a\r\nb\r\n.\r\n");
        assert_eq!(data_block(".a"), "..a\r\n.\r\n");
        assert_eq!(
            data_block("x\r\n.\r\n..y\r\n.z.\r\n"),
            "x\r\n..\r\n...y\r\n..z.\r\n\r\n.\r\n"
        );
        // Only CRLF ends a line: a lone LF or CR does not.
        assert_eq!(data_block("a\n.b\r.c"), "a\n.b\r.c\r\n.\r\n");
        assert_eq!(data_block("a\r\r\n.b"), "a\r\r\n..b\r\n.\r\n");
        assert_eq!(data_block(""), "\r\n.\r\n");
    }
}
