//! The editors' overview pages: the dashboard's numbers and charts, the
//! feedback panel of a report, and the readers page.

use crate::admin_pages::{csrf, location, logged_in, page, post, unescape};
use crate::feedback::{feedback_link, sent_report, token_of, vote};
use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(
    the_dashboard_charts_growth_and_helpfulness,
    the_report_page_shows_feedback_and_exports_it,
    readers_are_found_by_address_and_status,
    an_editor_unsubscribes_a_reader,
    a_deleted_reader_leaves_only_anonymous_counts,
);

/// The `<title>` texts of the bars of the chart marked `data-chart=name`.
fn bar_titles(html: &str, name: &str) -> Vec<String> {
    let start = html
        .find(&format!("data-chart=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} chart in:\n{html}"));
    let end = html[start..].find("</svg>").expect("the chart's end") + start;
    html[start..end]
        .split("<rect ")
        .skip(1)
        .map(|rect| {
            let open = rect.find("<title>").unwrap() + "<title>".len();
            let close = rect.find("</title>").unwrap();
            unescape(&rect[open..close])
        })
        .collect()
}

/// The text inside the first element carrying `attribute`.
fn marked(html: &str, attribute: &str) -> String {
    let at = html
        .find(attribute)
        .unwrap_or_else(|| panic!("no {attribute} in:\n{html}"));
    let start = html[at..].find('>').unwrap() + at + 1;
    let end = html[start..].find('<').unwrap() + start;
    unescape(html[start..end].trim())
}

/// Votes through each mail's link: `answers[i]` for reader `i`.
async fn answer(app: &TestApp, mails: &[crate::smtp_server::Received], answers: &[&str]) {
    for (mail, answer) in mails.iter().zip(answers) {
        let token = token_of(&feedback_link(app, mail, answer));
        assert_eq!(vote(app, &token, answer).await.status(), 200);
    }
}

/// The report's votes as the editor downloads them.
async fn feedback_csv(app: &TestApp, report: i64) -> String {
    app.get(&format!("/admin/reports/{report}/feedback.csv"))
        .await
        .text()
        .await
        .unwrap()
}

async fn reader_id(app: &TestApp, email: &str) -> i64 {
    let email = newsletter::domain::SubscriberEmail::parse(email).unwrap();
    app.store()
        .subscriber_by_email(&email)
        .await
        .unwrap()
        .expect("the reader")
        .id
}

async fn the_dashboard_charts_growth_and_helpfulness(backend: Backend) {
    let app = logged_in(backend).await;
    let before = page(&app, "/admin").await;
    assert!(
        before.contains("Once a report has gone out"),
        "no helpfulness chart before any send"
    );

    let (id, mails) = sent_report(&app, &["a@example.com", "b@example.com", "c@example.com"]).await;
    answer(&app, &mails, &["yes", "yes", "no"]).await;

    let html = page(&app, "/admin").await;
    assert_eq!(
        marked(&html, "data-this-week"),
        "Last 7 days: 3 signed up, 3 confirmed, 0 unsubscribed."
    );
    let growth = bar_titles(&html, "growth");
    assert_eq!(growth.len(), 24, "12 weeks, two bars each");
    assert!(
        growth[22].ends_with("3 signed up, 3 confirmed, 0 unsubscribed: confirmed"),
        "this week's bar: {}",
        growth[22]
    );
    let helpfulness = bar_titles(&html, "helpfulness");
    assert_eq!(
        helpfulness,
        ["Weekly Report helpful: 2 out of 3 found this helpful (67%): found it helpful"]
    );
    let row_start = html.find(&format!("data-report=\"{id}\"")).unwrap();
    let row = &html[row_start..];
    assert_eq!(marked(row, "data-field=\"sent\""), "3");
    assert_eq!(marked(row, "data-field=\"failed\""), "0");
    assert_eq!(
        marked(row, "data-field=\"helpful\""),
        "2 out of 3 found this helpful"
    );

    // A changed vote moves the chart.
    let token = token_of(&feedback_link(&app, &mails[2], "yes"));
    vote(&app, &token, "yes").await;
    let html = page(&app, "/admin").await;
    assert_eq!(
        bar_titles(&html, "helpfulness"),
        ["Weekly Report helpful: 3 out of 3 found this helpful (100%): found it helpful"]
    );
}

async fn the_report_page_shows_feedback_and_exports_it(backend: Backend) {
    let app = logged_in(backend).await;
    let (id, mails) = sent_report(&app, &["a@example.com", "b@example.com"]).await;
    let to_a = mails
        .iter()
        .find(|m| m.to().contains("a@example.com"))
        .unwrap();
    let token = token_of(&feedback_link(&app, to_a, "no"));
    let response = app
        .post_form(
            "/feedback",
            &format!("token={token}&answer=no&comment=%3Cb%3EMore%3C%2Fb%3E+charts"),
        )
        .await;
    assert_eq!(response.status(), 200);

    let html = page(&app, &format!("/admin/reports/{id}")).await;
    assert_eq!(marked(&html, "data-feedback=\"yes\""), "0");
    assert_eq!(marked(&html, "data-feedback=\"no\""), "1");
    assert_eq!(marked(&html, "data-feedback=\"response_rate\""), "50.0%");
    assert_eq!(
        marked(&html, "data-feedback=\"summary\""),
        "0 out of 1 found this helpful, out of 2 delivered."
    );
    assert!(
        html.contains("&lt;b&gt;More&lt;&#x2F;b&gt; charts"),
        "the comment is shown as text"
    );

    let csv = app.get(&format!("/admin/reports/{id}/feedback.csv")).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("helpful,a@example.com,no,<b>More</b> charts,"),
        "{csv}"
    );

    // Without the session there is nothing to download.
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = stranger
        .get(app.url(&format!("/admin/reports/{id}/feedback.csv")))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_redirection() || response.status() == 401,
        "{}",
        response.status()
    );
    assert!(!response.text().await.unwrap().contains("a@example.com"));
}

async fn readers_are_found_by_address_and_status(backend: Backend) {
    let app = logged_in(backend).await;
    app.insert_confirmed_readers(60).await;
    sqlx::query(
        "insert into subscribers (email, status, created_at) values \
         ('reader_x@example.com', 'pending', 0), ('left@example.org', 'unsubscribed', 0)",
    )
    .execute(app.store().pool())
    .await
    .unwrap();

    let all = page(&app, "/admin/readers").await;
    assert_eq!(marked(&all, "data-matching"), "62");
    assert!(all.contains("Page 1 of 2"));
    let second = page(&app, "/admin/readers?q=&status=&page=2").await;
    assert_eq!(second.matches("data-reader=").count(), 12);

    let found = page(&app, "/admin/readers?q=READER1&status=confirmed").await;
    // reader1, reader10..reader19: eleven confirmed addresses contain it.
    assert_eq!(marked(&found, "data-matching"), "11");
    assert!(found.contains("data-reader=\"reader15@example.com\""));

    // `_` is a character to look for, not a wildcard.
    let literal = page(&app, "/admin/readers?q=r_x").await;
    assert_eq!(marked(&literal, "data-matching"), "1");
    assert!(literal.contains("data-reader=\"reader_x@example.com\""));

    let left = page(&app, "/admin/readers?status=unsubscribed").await;
    assert_eq!(marked(&left, "data-matching"), "1");
    assert!(left.contains("left@example.org"));

    let bad = app.get("/admin/readers?status=vip").await;
    assert_eq!(bad.status(), 422);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("the status must be pending, confirmed or unsubscribed"));
}

async fn an_editor_unsubscribes_a_reader(backend: Backend) {
    let app = logged_in(backend).await;
    app.confirmed_reader("a@example.com").await;
    let id = reader_id(&app, "a@example.com").await;
    let html = page(&app, "/admin/readers").await;

    let forged = post(
        &app,
        &format!("/admin/readers/{id}/unsubscribe"),
        &[("csrf", "not-the-token")],
    )
    .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(
        app.status_of("a@example.com").await.as_deref(),
        Some("confirmed")
    );

    let done = post(
        &app,
        &format!("/admin/readers/{id}/unsubscribe"),
        &[("csrf", &csrf(&html))],
    )
    .await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/admin/readers?done=unsubscribed");
    assert_eq!(
        app.status_of("a@example.com").await.as_deref(),
        Some("unsubscribed")
    );
    let after = page(&app, "/admin/readers?done=unsubscribed").await;
    assert!(after.contains("The reader is unsubscribed"));

    let unknown = post(
        &app,
        "/admin/readers/999999/unsubscribe",
        &[("csrf", &csrf(&html))],
    )
    .await;
    assert_eq!(unknown.status(), 404);
}

async fn a_deleted_reader_leaves_only_anonymous_counts(backend: Backend) {
    let app = logged_in(backend).await;
    let (id, mails) = sent_report(&app, &["a@example.com", "b@example.com"]).await;
    answer(&app, &mails, &["yes", "no"]).await;
    let reader = reader_id(&app, "a@example.com").await;
    let html = page(&app, "/admin/readers").await;
    let done = post(
        &app,
        &format!("/admin/readers/{reader}/delete"),
        &[("csrf", &csrf(&html))],
    )
    .await;
    assert_eq!(done.status(), 303);

    assert_eq!(app.status_of("a@example.com").await, None);
    assert_eq!(
        app.count("select count(*) from outbox where recipient like '%a@example.com%'")
            .await,
        0,
        "no delivery keeps the address"
    );
    assert_eq!(
        app.count("select count(*) from outbox where kind = 'report' and status = 'sent'")
            .await,
        2,
        "the delivery still counts"
    );
    let archive = app.get("/archive/helpful").await.text().await.unwrap();
    assert!(
        archive.contains("1 out of 2 readers found this helpful"),
        "the vote still counts"
    );
    let csv = feedback_csv(&app, id).await;
    assert!(!csv.contains("a@example.com"));
    assert!(csv.contains("b@example.com"));

    // Signing up again is a new reader, with no link to the old votes.
    app.confirmed_reader("a@example.com").await;
    let csv = feedback_csv(&app, id).await;
    assert!(!csv.contains("a@example.com"));
}
