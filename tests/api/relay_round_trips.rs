//! A relay at a distance: each message costs as few round trips as the
//! relay allows, and the answers are still read one by one.

use std::collections::HashMap;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::sending::report_source;
use crate::smtp_server::{Extensions, Fault, Received};

crate::on_both_backends!(
    a_pipelining_relay_gets_each_message_in_one_round_trip,
    a_refused_message_on_the_wire_does_not_hold_up_the_next,
    a_line_that_drops_with_a_message_on_the_wire_repeats_nothing,
    a_chunking_relay_gets_each_message_in_one_round_trip,
    a_relay_without_pipelining_gets_one_command_at_a_time,
    refusals_in_a_pipelined_envelope_are_sorted_and_the_line_kept,
    refusals_in_a_chunked_transaction_are_sorted,
    lines_that_start_with_a_period_arrive_whole,
);

const READERS: usize = 30;

/// A send of a report to `READERS` readers over `connections` connections,
/// the relay offering `extensions`; every report message received.
async fn send_report(
    backend: Backend,
    extensions: Extensions,
    connections: u32,
) -> (TestApp, Vec<Received>) {
    let app = spawn_app_with(backend, |s| {
        s.mail.pool_size = connections;
        s.delivery.concurrency = connections as usize;
    })
    .await;
    app.smtp.set_extensions(extensions);
    app.insert_confirmed_readers(READERS).await;
    let id = app.create_report(&report_source("relay")).await;
    assert_eq!(app.trigger_send(id, "relay").await.status(), 202);
    app.dispatch_all_pending().await;
    let mails = app.smtp.received();
    (app, mails)
}

/// Each reader got the report exactly once, whole.
fn assert_each_reader_once(mails: &[Received]) {
    let mut per_reader: HashMap<&str, usize> = HashMap::new();
    for mail in mails {
        *per_reader.entry(mail.to()).or_default() += 1;
        assert_eq!(mail.subject(), "Weekly Report relay");
        assert!(mail.text().contains("A headline worth reading"));
    }
    assert_eq!(per_reader.len(), READERS, "{per_reader:?}");
    assert!(per_reader.values().all(|&n| n == 1), "{per_reader:?}");
}

fn assert_no_noop_or_rset(app: &TestApp) {
    let commands = app.smtp.commands();
    assert!(
        !commands.iter().any(|c| c == "NOOP" || c == "RSET"),
        "{commands:?}"
    );
}

/// A message's data rides in the same write as the next message's
/// envelope, so the only wait per message is for DATA's 354. The first
/// message on a connection also waits for the answer to EHLO, and one
/// that finds the queue empty for a moment (a busy machine) for its own
/// end of data; without pipelining across messages every one waits twice.
async fn a_pipelining_relay_gets_each_message_in_one_round_trip(backend: Backend) {
    let (app, mails) = send_report(backend, Extensions::default(), 2).await;
    assert_each_reader_once(&mails);
    let mut waited_twice = 0;
    for mail in &mails {
        assert_eq!(mail.commands, ["MAIL", "RCPT", "DATA"]);
        assert!(mail.round_trips <= 2, "{}", mail.to());
        if mail.round_trips == 2 {
            waited_twice += 1;
        }
    }
    assert!(
        waited_twice <= READERS / 3,
        "{waited_twice} of {READERS} messages took two round trips"
    );
    assert_no_noop_or_rset(&app);
    assert!(app.smtp.connections() <= 2, "connections are reused");
}

/// Two of the three readers got the report; the third failed for good,
/// with the relay's `words`.
async fn assert_two_sent_one_failed(app: &TestApp, id: i64, words: [&str; 2]) {
    let stats = app.stats(id).await;
    assert_eq!(
        (stats["sent"].as_i64(), stats["failed"].as_i64()),
        (Some(2), Some(1))
    );
    let reason = stats["failures"][0]["reason"].as_str().unwrap();
    assert!(words.iter().all(|w| reason.contains(w)), "{reason}");
}

/// One connection, three readers, the relay's faults in order of the
/// transactions they hit.
async fn send_on_one_line(backend: Backend, faults: Vec<Fault>) -> (TestApp, i64) {
    let app = spawn_app_with(backend, |s| {
        s.mail.pool_size = 1;
        s.delivery.concurrency = 1;
    })
    .await;
    app.insert_confirmed_readers(3).await;
    let id = app.create_report(&report_source("line")).await;
    for fault in faults {
        app.smtp.push_fault(fault);
    }
    assert_eq!(app.trigger_send(id, "line").await.status(), 202);
    app.dispatch_all_pending().await;
    (app, id)
}

/// The relay refuses the second message at its end of data, a reply that
/// arrives ahead of the third message's envelope replies: the second fails
/// with the relay's words, the third goes on, on the same connection.
async fn a_refused_message_on_the_wire_does_not_hold_up_the_next(backend: Backend) {
    let faults = vec![
        Fault::Nothing,
        Fault::DataReply(554, "5.7.1 message rejected as spam"),
    ];
    let (app, id) = send_on_one_line(backend, faults).await;
    let mails = app.smtp.received();
    assert_eq!(mails.len(), 2);
    assert_two_sent_one_failed(&app, id, ["554", "rejected as spam"]).await;
    assert_eq!(
        app.smtp.connections(),
        1,
        "a refusal does not cost the line"
    );
    let commands = app.smtp.commands();
    assert!(!commands.iter().any(|c| c == "RSET"), "{commands:?}");
}

/// The relay hangs up while reading the second message's data, which went
/// out with the third message's envelope: neither was delivered, both are
/// retried, and every reader gets the report exactly once.
async fn a_line_that_drops_with_a_message_on_the_wire_repeats_nothing(backend: Backend) {
    let (app, id) = send_on_one_line(backend, vec![Fault::Nothing, Fault::DropInData]).await;
    let mails = app.smtp.received();
    let mut per_reader: HashMap<&str, usize> = HashMap::new();
    for mail in &mails {
        *per_reader.entry(mail.to()).or_default() += 1;
    }
    assert_eq!(per_reader.len(), 3, "{per_reader:?}");
    assert!(per_reader.values().all(|&n| n == 1), "{per_reader:?}");
    let stats = app.stats(id).await;
    assert_eq!(stats["sent"].as_i64(), Some(3));
    let retried = app
        .count("select count(*) from outbox where kind = 'report' and attempts = 2")
        .await;
    assert!(retried >= 1, "the dropped message was retried");
    assert!(
        app.smtp.connections() >= 2,
        "the broken line was not reused"
    );
}

async fn a_chunking_relay_gets_each_message_in_one_round_trip(backend: Backend) {
    let extensions = Extensions {
        pipelining: true,
        chunking: true,
    };
    let (app, mails) = send_report(backend, extensions, 2).await;
    assert_each_reader_once(&mails);
    for mail in &mails {
        assert_eq!(mail.commands, ["MAIL", "RCPT", "BDAT"]);
        eprintln!("RT {} {}", mail.to(), mail.round_trips);
        // BDAT carries the bytes as they are: no dot-stuffing to undo, and
        // the other MIME parser reads the same message.
        let html = mail.html();
        assert!(html.contains("A headline worth reading"), "{html}");
    }
    assert_no_noop_or_rset(&app);
}

async fn a_relay_without_pipelining_gets_one_command_at_a_time(backend: Backend) {
    let extensions = Extensions {
        pipelining: false,
        chunking: true,
    };
    let (app, mails) = send_report(backend, extensions, 2).await;
    assert_each_reader_once(&mails);
    for mail in &mails {
        assert_eq!(mail.commands, ["MAIL", "RCPT", "DATA"]);
        assert_eq!(mail.round_trips, 4, "{}", mail.to());
    }
    assert_no_noop_or_rset(&app);
}

/// The relay refuses two recipients in a pipelined envelope: a 451 is
/// retried and delivered, a 550 fails for good, both with the relay's words,
/// and the one connection carries on after a RSET.
async fn assert_refusals_sorted(backend: Backend, extensions: Extensions) {
    let app = spawn_app_with(backend, |s| {
        s.mail.pool_size = 1;
        s.delivery.concurrency = 1;
    })
    .await;
    app.smtp.set_extensions(extensions);
    app.insert_confirmed_readers(3).await;
    let id = app.create_report(&report_source("refusals")).await;
    app.smtp
        .push_fault(Fault::RcptReply(451, "4.7.1 greylisted, try again"));
    app.smtp
        .push_fault(Fault::RcptReply(550, "5.1.1 no such user here"));
    app.trigger_send(id, "k").await;
    app.dispatch_all_pending().await;

    let mails = app.smtp.received();
    assert_eq!(mails.len(), 2, "one retried and delivered, one refused");
    assert_two_sent_one_failed(&app, id, ["550", "no such user"]).await;
    let retried = app
        .count("select count(*) from outbox where kind = 'report' and status = 'sent' and attempts = 2")
        .await;
    assert_eq!(retried, 1, "the 451 was retried");
    assert_eq!(
        app.smtp.connections(),
        1,
        "a refusal does not cost the line"
    );
    let commands = app.smtp.commands();
    assert_eq!(
        commands.iter().filter(|c| *c == "RSET").count(),
        2,
        "{commands:?}"
    );
}

async fn refusals_in_a_pipelined_envelope_are_sorted_and_the_line_kept(backend: Backend) {
    assert_refusals_sorted(backend, Extensions::default()).await;
}

async fn refusals_in_a_chunked_transaction_are_sorted(backend: Backend) {
    let extensions = Extensions {
        pipelining: true,
        chunking: true,
    };
    assert_refusals_sorted(backend, extensions).await;
}

/// DATA ends at a line holding a lone period, so every line of the message
/// that starts with one is sent with a second in front; the relay (here
/// the test server, which undoes it as relays do) gets the text back as
/// written, and the DKIM-less message parses the same.
async fn lines_that_start_with_a_period_arrive_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    app.insert_confirmed_readers(3).await;
    let source = report_source("dots").replace(
        "The body of the news item.",
        ".NET 10 shipped this week.\n\n.\n\n..and two periods lead this line.",
    );
    let id = app.create_report(&source).await;
    assert_eq!(app.trigger_send(id, "dots").await.status(), 202);
    app.dispatch_all_pending().await;
    let mails = app.smtp.received();
    assert_eq!(mails.len(), 3);
    for mail in &mails {
        assert_eq!(mail.commands, ["MAIL", "RCPT", "DATA"]);
        let text = mail.text();
        for line in [
            ".NET 10 shipped this week.",
            "..and two periods lead this line.",
        ] {
            assert!(
                text.lines().any(|l| l.trim_end() == line),
                "{line:?} is not a line of:\n{text}"
            );
        }
        assert!(mail.html().contains(".NET 10 shipped this week."));
    }
}
