//! "Was this helpful?": signed per-reader links, one vote per reader that
//! can change, exact counts.

use futures::StreamExt;
use reqwest::Method;

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::smtp_server::Received;

crate::on_both_backends!(
    yes_then_no_the_counts_follow,
    a_get_alone_records_nothing,
    forged_foreign_and_malformed_links_change_nothing,
    comments_are_kept_limited_and_exported,
    a_thousand_concurrent_votes_are_counted_exactly,
);

/// Sends a report to `readers` (confirmed first) and returns its id and the
/// report mails.
pub(crate) async fn sent_report(app: &TestApp, readers: &[&str]) -> (i64, Vec<Received>) {
    for r in readers {
        app.confirmed_reader(r).await;
    }
    let id = app
        .create_report(&crate::sending::report_source("helpful"))
        .await;
    app.trigger_send(id, "k").await;
    app.dispatch_all_pending().await;
    let mails = app
        .smtp
        .received()
        .into_iter()
        .filter(|m| !m.subject().starts_with("Please confirm"))
        .collect();
    (id, mails)
}

pub(crate) fn feedback_link(app: &TestApp, mail: &Received, answer: &str) -> String {
    mail.links_starting_with(&format!("{}/feedback?token=", app.address))
        .into_iter()
        .find(|l| l.ends_with(&format!("answer={answer}")))
        .expect("a feedback link in the text part")
}

pub(crate) fn token_of(link: &str) -> String {
    link.split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string()
}

pub(crate) async fn vote(app: &TestApp, token: &str, answer: &str) -> reqwest::Response {
    app.post_form("/feedback", &format!("token={token}&answer={answer}"))
        .await
}

async fn summary(app: &TestApp, id: i64) -> serde_json::Value {
    app.api(Method::GET, &format!("/api/reports/{id}/feedback"))
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn yes_then_no_the_counts_follow(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, mails) = sent_report(&app, &["a@example.com", "b@example.com"]).await;
    let a = mails.iter().find(|m| m.to() == "a@example.com").unwrap();
    let b = mails.iter().find(|m| m.to() == "b@example.com").unwrap();

    // The link shows a page whose form posts the answer.
    let page = app
        .client
        .get(feedback_link(&app, a, "yes"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("data-autosubmit") && page.contains(r#"name="answer" value="yes""#));

    let token_a = token_of(&feedback_link(&app, a, "yes"));
    let thanks = vote(&app, &token_a, "yes").await;
    assert_eq!(thanks.status(), 200);
    assert!(thanks
        .text()
        .await
        .unwrap()
        .contains("Change my answer to not helpful"));
    let s = summary(&app, id).await;
    assert_eq!((s["yes"].as_i64(), s["no"].as_i64()), (Some(1), Some(0)));
    assert_eq!(s["summary"], "1 out of 1 found this helpful");

    vote(&app, &token_a, "no").await;
    let s = summary(&app, id).await;
    assert_eq!(
        (s["yes"].as_i64(), s["no"].as_i64()),
        (Some(0), Some(1)),
        "the latest answer counts"
    );

    vote(&app, &token_of(&feedback_link(&app, b, "yes")), "yes").await;
    let s = summary(&app, id).await;
    assert_eq!(s["summary"], "1 out of 2 found this helpful");
    let archive = app.get("/archive/helpful").await;
    assert_eq!(archive.status(), 200);
    assert!(archive
        .text()
        .await
        .unwrap()
        .contains("1 out of 2 readers found this helpful"));
    assert_eq!(s["delivered"], 2);
    assert_eq!(s["response_rate"], 1.0);
}

async fn a_get_alone_records_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mails) = sent_report(&app, &["a@example.com"]).await;
    let archive = app.get("/archive/helpful").await.text().await.unwrap();
    assert!(
        !archive.contains("found this helpful"),
        "no count before anyone answers"
    );
    for answer in ["yes", "no"] {
        let response = app
            .client
            .get(feedback_link(&app, &mails[0], answer))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.count("select count(*) from votes").await, 0);
}

async fn forged_foreign_and_malformed_links_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mails) = sent_report(&app, &["a@example.com"]).await;
    let token = token_of(&feedback_link(&app, &mails[0], "yes"));
    let mut parts = token.splitn(3, '.');
    let (report, reader, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let other = uuid::Uuid::new_v4();
    let bad_tokens = [
        format!("{other}.{reader}.{signature}"),
        format!("{report}.{other}.{signature}"),
        format!("{reader}.{report}.{signature}"),
        format!("{report}.{reader}.{}", "A".repeat(43)),
        format!("{report}.{reader}"),
        "%00%0D%0A".to_string(),
        String::new(),
    ];
    for bad in &bad_tokens {
        let response = vote(&app, bad, "yes").await;
        assert_eq!(response.status(), 400, "{bad}");
        assert!(response.text().await.unwrap().contains("does not work"));
        assert_eq!(
            app.get(&format!("/feedback?token={bad}&answer=yes"))
                .await
                .status(),
            400
        );
    }
    assert_eq!(vote(&app, &token, "maybe").await.status(), 400);
    assert_eq!(app.count("select count(*) from votes").await, 0);
}

async fn comments_are_kept_limited_and_exported(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, mails) = sent_report(&app, &["a@example.com"]).await;
    let token = token_of(&feedback_link(&app, &mails[0], "no"));
    let too_long = "x".repeat(1001);
    let response = app
        .post_form(
            "/feedback",
            &format!("token={token}&answer=no&comment={too_long}"),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response.text().await.unwrap().contains(&too_long),
        "the comment is kept for another try"
    );
    assert_eq!(app.count("select count(*) from votes").await, 0);

    let response = app
        .post_form(
            "/feedback",
            &format!("token={token}&answer=no&comment=More+charts%2C+please"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let s = summary(&app, id).await;
    assert_eq!(s["comments"][0]["comment"], "More charts, please");

    let csv = app
        .api(Method::GET, &format!("/api/reports/{id}/feedback.csv"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("report,reader_email,helpful,comment,voted_at,changed_at")
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("helpful,a@example.com,no,\"More charts, please\","),
        "{row}"
    );
}

async fn a_thousand_concurrent_votes_are_counted_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    app.insert_confirmed_readers(1000).await;
    let id = app
        .create_report(&crate::sending::report_source("many-votes"))
        .await;
    app.trigger_send(id, "k").await;
    let readers = app.reader_ids().await;
    assert_eq!(readers.len(), 1000);
    let issue = app.report_public_id(id).await;
    let signer = app.app.state.signer.clone();
    let statuses: Vec<u16> = futures::stream::iter(readers.iter().copied())
        .map(|(reader, public)| {
            let token = signer.feedback_token(&issue, &public);
            let answer = if reader % 2 == 0 { "yes" } else { "no" };
            let app = &app;
            async move { vote(app, &token, answer).await.status().as_u16() }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    let yes = readers.iter().filter(|(r, _)| *r % 2 == 0).count() as i64;
    let s = summary(&app, id).await;
    assert_eq!(s["yes"].as_i64(), Some(yes));
    assert_eq!(s["no"].as_i64(), Some(1000 - yes));
    assert_eq!(
        s["summary"],
        format!("{yes} out of 1000 found this helpful")
    );
}
