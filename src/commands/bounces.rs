//! `newsletter bounces …`: taking bounce mail from an MTA's pipe.

use crate::bounces::{Intake, IntakeResult};

/// The exit status an MTA reads as "try again later" (EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: u8 = 75;

/// Takes one raw message; returns the line to print.
pub async fn ingest(
    intake: &Intake,
    raw: &[u8],
    recipient: Option<&str>,
) -> anyhow::Result<String> {
    let result = intake.ingest_message(raw, "mta", recipient).await?;
    Ok(describe(&result))
}

/// One line saying what became of a message, for the command's output and
/// the mailbox poller's log.
pub fn describe(result: &IntakeResult) -> String {
    match result {
        IntakeResult::Recorded(recorded) => recorded
            .iter()
            .map(|r| {
                format!(
                    "{} {}{}{}",
                    r.kind.as_str(),
                    r.recipient,
                    if r.suppressed { ", suppressed" } else { "" },
                    if r.duplicate {
                        " (already recorded)"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        IntakeResult::NotABounce(why) => format!("ignored: {why}"),
        IntakeResult::Forged => "refused: the bounce address's token is not ours".to_string(),
        IntakeResult::Unmatched => "ignored: a bounce of no delivery we know".to_string(),
    }
}
