//! The editors' pages, driven like a browser without JavaScript: read the
//! page, take its CSRF token and send key from the HTML, post the forms.

use reqwest::Response;

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::sending::report_source;

crate::on_both_backends!(
    the_dashboard_shows_readers_and_reports,
    a_report_is_written_and_corrected_through_the_form,
    forms_without_the_session_csrf_token_change_nothing,
    test_copies_are_sent_from_the_report_page,
    the_send_form_sends_once_to_every_confirmed_reader,
    a_send_can_be_scheduled_paused_resumed_and_cancelled,
    previews_render_the_report,
    logging_out_ends_the_session,
);

const EDITOR: &str = "editor@example.com";
const PASSWORD: &str = "a long enough password";

/// An app with a logged-in editor (the client keeps the session cookie).
pub(crate) async fn logged_in(backend: Backend) -> TestApp {
    let app = spawn_app(backend).await;
    app.add_editor(EDITOR, PASSWORD).await;
    app.log_in(EDITOR, PASSWORD).await;
    app
}

/// Undoes Tera's HTML escaping, to compare page text with what was sent.
pub(crate) fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

/// The value of the first `<input>` named `name` on the page.
fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} field in:\n{html}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..at + html[at..].find('>').unwrap()];
    let start = tag.find("value=\"").expect("a value") + "value=\"".len();
    let end = tag[start..].find('"').unwrap() + start;
    unescape(&tag[start..end])
}

pub(crate) fn csrf(html: &str) -> String {
    field(html, "csrf")
}

/// The text of the page's textarea, as the browser would show it (the
/// newline right after the opening tag is not part of it).
fn textarea(html: &str) -> String {
    let open = html.find("<textarea").expect("a textarea");
    let start = html[open..].find('>').unwrap() + open + 1;
    let end = html[start..].find("</textarea>").unwrap() + start;
    let text = &html[start..end];
    unescape(text.strip_prefix('\n').unwrap_or(text))
}

pub(crate) async fn page(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.unwrap()
}

pub(crate) async fn post(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Response {
    app.post_form(path, &serde_urlencoded::to_string(fields).unwrap())
        .await
}

pub(crate) fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

/// Saves `source` through the new-report form; returns the report's id.
async fn create_through_form(app: &TestApp, source: &str) -> i64 {
    let form = page(app, "/admin/reports/new").await;
    let response = post(
        app,
        "/admin/reports",
        &[("csrf", &csrf(&form)), ("source", source)],
    )
    .await;
    assert_eq!(response.status(), 303, "saving the report");
    let to = location(&response);
    to.trim_start_matches("/admin/reports/")
        .trim_end_matches("?done=saved")
        .parse()
        .unwrap_or_else(|_| panic!("redirected to {to}"))
}

async fn report_source_in_db(app: &TestApp, id: i64) -> String {
    app.store().report(id).await.unwrap().unwrap().source
}

async fn send_state(app: &TestApp, id: i64) -> Option<String> {
    app.store()
        .send_of_report(id)
        .await
        .unwrap()
        .map(|s| s.state.to_string())
}

async fn progress(app: &TestApp, id: i64) -> serde_json::Value {
    let response = app.get(&format!("/admin/reports/{id}/progress")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Report mails received (the confirmation mails left out).
fn report_mails(app: &TestApp) -> usize {
    app.smtp
        .received()
        .iter()
        .filter(|m| !m.subject().starts_with("Please confirm"))
        .count()
}

async fn the_dashboard_shows_readers_and_reports(backend: Backend) {
    let app = logged_in(backend).await;
    app.insert_confirmed_readers(3).await;
    sqlx::query(
        "insert into subscribers (email, status, created_at) values \
         ('p1@example.com', 'pending', 0), ('p2@example.com', 'pending', 0), \
         ('gone@example.com', 'unsubscribed', 0)",
    )
    .execute(app.store().pool())
    .await
    .unwrap();
    let draft = app.create_report(&report_source("draft-one")).await;
    let sent = app.create_report(&report_source("sent-one")).await;
    assert_eq!(app.trigger_send(sent, "k").await.status(), 202);
    app.dispatch_all_pending().await;

    let html = page(&app, "/admin").await;
    assert!(html.contains(r#"data-count="confirmed">3<"#), "{html}");
    assert!(html.contains(r#"data-count="pending">2<"#), "{html}");
    assert!(html.contains(r#"data-count="unsubscribed">1<"#), "{html}");
    for (id, slug, state) in [(draft, "draft-one", "draft"), (sent, "sent-one", "done")] {
        let row_start = html
            .find(&format!(r#"data-report="{id}""#))
            .unwrap_or_else(|| panic!("no row for report {id}"));
        let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
        assert!(
            row.contains(&format!(
                r#"href="/admin/reports/{id}">Weekly Report {slug}<"#
            )),
            "{row}"
        );
        assert!(row.contains(&format!("<code>{slug}</code>")), "{row}");
        assert!(row.contains(&format!(">{state}</span>")), "{row}");
    }
    assert!(html.contains(r#"href="/admin/reports/new""#));
    assert!(html.contains(r#"action="/admin/logout""#));
    assert!(!csrf(&html).is_empty());
}

async fn a_report_is_written_and_corrected_through_the_form(backend: Backend) {
    let app = logged_in(backend).await;
    let form = page(&app, "/admin/reports/new").await;
    let starter = textarea(&form);
    assert!(
        newsletter::report::Report::parse(&starter).is_ok(),
        "the form starts with a report that saves as is:\n{starter}"
    );

    // A browser sends the textarea's lines with CRLF.
    let source = report_source("from-the-form");
    let id = create_through_form(&app, &source.replace('\n', "\r\n")).await;
    assert_eq!(report_source_in_db(&app, id).await, source);
    let html = page(&app, &format!("/admin/reports/{id}?done=saved")).await;
    assert!(
        html.contains("<h1>Weekly Report from-the-form</h1>"),
        "{html}"
    );
    assert!(html.contains("Saved."));
    assert_eq!(textarea(&html), source);
    assert!(html.contains(&format!(r#"src="/admin/reports/{id}/preview""#)));
    assert!(html.contains("<strong data-subject>Weekly Report from-the-form</strong>"));

    // The same slug from the report page updates the draft.
    let edited = source.replace("The body of the news item.", "A corrected body & more.");
    let response = post(
        &app,
        "/admin/reports",
        &[("csrf", &csrf(&html)), ("source", &edited)],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        format!("/admin/reports/{id}?done=saved")
    );
    assert_eq!(report_source_in_db(&app, id).await, edited);

    // A malformed report: the parser's message, and every character kept.
    let broken = "---\ntitle: A report without a slug <b>\n---\n\nSome text & \"quotes\".\n";
    let expected = match newsletter::report::Report::parse(broken) {
        Ok(_) => panic!("the test's broken report parses"),
        Err(e) => e.to_string(),
    };
    let response = post(
        &app,
        "/admin/reports",
        &[("csrf", &csrf(&html)), ("source", broken)],
    )
    .await;
    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert!(unescape(&body).contains(&expected), "{expected} in {body}");
    assert!(body.contains(r#"role="alert""#));
    assert_eq!(textarea(&body), broken, "the editor's text is kept");
    assert_eq!(app.count("select count(*) from reports").await, 1);
    assert_eq!(report_source_in_db(&app, id).await, edited);

    // A long issue is more than the site's 64 KiB form limit allows.
    let long = source.replace(
        "The body of the news item.",
        &"A long, long paragraph. ".repeat(8_000),
    );
    let response = post(
        &app,
        "/admin/reports",
        &[("csrf", &csrf(&html)), ("source", &long)],
    )
    .await;
    assert_eq!(response.status(), 303, "{} bytes", long.len());
    assert_eq!(report_source_in_db(&app, id).await, long);
}

async fn forms_without_the_session_csrf_token_change_nothing(backend: Backend) {
    let app = logged_in(backend).await;
    app.insert_confirmed_readers(1).await;
    let draft = app.create_report(&report_source("csrf-draft")).await;
    let sending = app.create_report(&report_source("csrf-sending")).await;
    assert_eq!(app.trigger_send(sending, "k").await.status(), 202);
    let real = csrf(&page(&app, &format!("/admin/reports/{draft}")).await);

    let changed = report_source("csrf-draft").replace("Industry news", "Changed");
    let new_one = report_source("csrf-new");
    let draft_test = format!("/admin/reports/{draft}/test");
    let draft_send = format!("/admin/reports/{draft}/send");
    let pause = format!("/admin/reports/{sending}/pause");
    let cancel = format!("/admin/reports/{sending}/cancel");
    let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/admin/reports", vec![("source", &changed)]),
        ("/admin/reports", vec![("source", &new_one)]),
        (
            draft_test.as_str(),
            vec![("addresses", "editor@example.com")],
        ),
        (
            draft_send.as_str(),
            vec![("key", "a-key"), ("confirm", "yes")],
        ),
        (pause.as_str(), vec![]),
        (cancel.as_str(), vec![]),
    ];
    let wrong = format!("{real}x");
    for (path, fields) in &forms {
        for token in [None, Some(""), Some(wrong.as_str())] {
            let mut fields = fields.clone();
            if let Some(token) = token {
                fields.push(("csrf", token));
            }
            let response = post(&app, path, &fields).await;
            assert_eq!(response.status(), 403, "{path} with csrf {token:?}");
            let body = response.text().await.unwrap();
            assert!(body.contains("reload the page"), "{body}");
        }
    }
    // The live preview takes its token in a header.
    for token in [None, Some(wrong.as_str())] {
        let mut request = app
            .client
            .post(app.url("/admin/preview"))
            .header("content-type", "text/markdown")
            .body(report_source("x"));
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        assert_eq!(request.send().await.unwrap().status(), 403, "{token:?}");
    }

    assert_eq!(
        report_source_in_db(&app, draft).await,
        report_source("csrf-draft")
    );
    assert_eq!(app.count("select count(*) from reports").await, 2);
    assert_eq!(app.count("select count(*) from sends").await, 1);
    assert_eq!(send_state(&app, sending).await.as_deref(), Some("sending"));
    assert_eq!(
        app.count("select count(*) from outbox where kind = 'test'")
            .await,
        0
    );
    assert_eq!(
        app.count("select count(*) from outbox where status = 'queued'")
            .await,
        1,
        "the one reader's delivery is still queued"
    );
}

async fn test_copies_are_sent_from_the_report_page(backend: Backend) {
    let app = logged_in(backend).await;
    app.insert_confirmed_readers(2).await;
    let id = create_through_form(&app, &report_source("tested")).await;
    let path = format!("/admin/reports/{id}");
    let html = page(&app, &path).await;

    // A bad address: nothing queued, the input kept, the reason shown.
    let typed = "first@example.com, not-an-address";
    let response = post(
        &app,
        &format!("{path}/test"),
        &[("csrf", &csrf(&html)), ("addresses", typed)],
    )
    .await;
    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert_eq!(field(&body, "addresses"), typed);
    assert!(body.contains(r#"id="test-error""#), "{body}");
    assert!(
        unescape(&body).contains("\"not-an-address\""),
        "the refused address is named: {body}"
    );
    let response = post(
        &app,
        &format!("{path}/test"),
        &[("csrf", &csrf(&html)), ("addresses", " , ")],
    )
    .await;
    assert_eq!(response.status(), 422, "no address at all");
    assert_eq!(app.count("select count(*) from outbox").await, 0);

    let response = post(
        &app,
        &format!("{path}/test"),
        &[
            ("csrf", &csrf(&html)),
            ("addresses", "first@example.com, second@example.com"),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{path}?done=test"));
    assert!(page(&app, &location(&response))
        .await
        .contains("Test copies queued"));
    app.dispatch_all_pending().await;
    for to in ["first@example.com", "second@example.com"] {
        let mails = app.smtp.received_for(to);
        assert_eq!(mails.len(), 1, "{to}");
        assert_eq!(mails[0].subject(), "[Test] Weekly Report tested");
    }
    assert_eq!(app.smtp.received().len(), 2, "no reader got anything");
    assert_eq!(send_state(&app, id).await, None, "a test is not a send");
}

async fn the_send_form_sends_once_to_every_confirmed_reader(backend: Backend) {
    let app = logged_in(backend).await;
    app.insert_confirmed_readers(3).await;
    let source = report_source("sent-from-the-page");
    let id = create_through_form(&app, &source).await;
    let path = format!("/admin/reports/{id}");
    let html = page(&app, &path).await;
    assert!(
        html.contains("This will send to 3 confirmed readers."),
        "{html}"
    );
    let key = field(&html, "key");
    assert!(key.len() >= 20, "a random key: {key}");
    let other_key = field(&page(&app, &path).await, "key");
    assert_ne!(key, other_key, "each rendered form has its own key");

    // The confirmation box is required.
    let response = post(
        &app,
        &format!("{path}/send"),
        &[("csrf", &csrf(&html)), ("key", &key), ("schedule", "")],
    )
    .await;
    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert!(body.contains("Tick the box"), "{body}");
    assert_eq!(
        field(&body, "key"),
        key,
        "the same form, corrected, is one send"
    );
    assert_eq!(app.count("select count(*) from sends").await, 0);

    // A double click: the same form twice, at once and then again.
    let form = [
        ("csrf", csrf(&html)),
        ("key", key.clone()),
        ("schedule", String::new()),
        ("confirm", "yes".to_string()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let send_path = format!("{path}/send");
    let (first, second) =
        tokio::join!(post(&app, &send_path, &form), post(&app, &send_path, &form));
    let third = post(&app, &send_path, &form).await;
    for response in [&first, &second, &third] {
        assert_eq!(response.status(), 303);
        assert_eq!(location(response), format!("{path}?done=sent"));
    }
    assert_eq!(app.count("select count(*) from sends").await, 1);
    assert_eq!(
        app.count("select count(*) from outbox where kind = 'report'")
            .await,
        3
    );

    // Another rendering of the form (another key) cannot send it again.
    let mut again = form.clone();
    again[1] = ("key", &other_key);
    let response = post(&app, &send_path, &again).await;
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("sent only once"));

    app.dispatch_all_pending().await;
    assert_eq!(report_mails(&app), 3, "one mail per confirmed reader");
    let progress = progress(&app, id).await;
    assert_eq!(progress["percent"], 100, "{progress}");
    assert_eq!(progress["sent"], 3);
    assert_eq!(progress["state"], "done");

    let html = page(&app, &path).await;
    assert!(
        !html.contains(&format!(r#"action="{path}/send""#)),
        "the form is gone"
    );
    assert!(html.contains(r#"<progress id="progress-bar" max="100" value="100">"#));
    assert!(
        html.contains(r#"<span data-field="sent">3</span> of <span data-field="total">3</span>"#)
    );
    assert!(
        !html.contains("data-progress-url"),
        "a finished send is not polled"
    );
    assert!(!html.contains(&format!(r#"action="{path}/pause""#)));

    // A sent report is frozen: the form comes back with the text and a 409.
    let edited = source.replace("Why it matters.", "Too late.");
    let response = post(
        &app,
        "/admin/reports",
        &[("csrf", &csrf(&html)), ("source", &edited)],
    )
    .await;
    assert_eq!(response.status(), 409);
    let body = response.text().await.unwrap();
    assert!(body.contains("can no longer change"), "{body}");
    assert_eq!(textarea(&body), edited);
    assert_eq!(report_source_in_db(&app, id).await, source);
}

async fn a_send_can_be_scheduled_paused_resumed_and_cancelled(backend: Backend) {
    let app = logged_in(backend).await;
    app.insert_confirmed_readers(3).await;
    let scheduled = create_through_form(&app, &report_source("later")).await;
    let path = format!("/admin/reports/{scheduled}");
    let html = page(&app, &path).await;
    let send = |schedule: String, key: String| {
        let csrf = csrf(&html);
        let app = &app;
        let path = format!("{path}/send");
        async move {
            post(
                app,
                &path,
                &[
                    ("csrf", csrf.as_str()),
                    ("key", key.as_str()),
                    ("schedule", schedule.as_str()),
                    ("confirm", "yes"),
                ],
            )
            .await
        }
    };

    // A time in the past is refused rather than taken as "now".
    let response = send("2020-01-01T08:00".into(), field(&html, "key")).await;
    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert!(body.contains("has already passed"), "{body}");
    assert_eq!(field(&body, "schedule"), "2020-01-01T08:00");

    // The datetime-local value is read as UTC.
    let tomorrow = chrono::Utc::now().naive_utc() + chrono::Duration::days(1);
    let value = tomorrow.format("%Y-%m-%dT%H:%M").to_string();
    let expected_ms = chrono::NaiveDateTime::parse_from_str(&value, "%Y-%m-%dT%H:%M")
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let response = send(value, field(&html, "key")).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{path}?done=scheduled"));
    let stored = app
        .store()
        .send_of_report(scheduled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.state.as_str(), stored.scheduled_at),
        ("scheduled", expected_ms)
    );
    app.dispatch_all_pending().await;
    assert_eq!(report_mails(&app), 0, "nothing before its time");
    let html = page(&app, &path).await;
    assert!(html.contains("Scheduled for"), "{html}");
    assert!(html.contains(&format!(r#"data-progress-url="{path}/progress""#)));
    assert!(html.contains(&format!(r#"action="{path}/cancel""#)));
    let response = post(&app, &format!("{path}/cancel"), &[("csrf", &csrf(&html))]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        send_state(&app, scheduled).await.as_deref(),
        Some("cancelled")
    );

    // Now a send that starts at once, paused before any delivery.
    let id = create_through_form(&app, &report_source("paused")).await;
    let path = format!("/admin/reports/{id}");
    let html = page(&app, &path).await;
    let response = post(
        &app,
        &format!("{path}/send"),
        &[
            ("csrf", &csrf(&html)),
            ("key", &field(&html, "key")),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    let html = page(&app, &path).await;
    assert!(html.contains(r#"data-state="sending""#), "{html}");
    assert!(html.contains(&format!(r#"action="{path}/pause""#)));
    assert!(!html.contains(&format!(r#"action="{path}/resume""#)));

    let response = post(&app, &format!("{path}/pause"), &[("csrf", &csrf(&html))]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{path}?done=paused"));
    assert_eq!(send_state(&app, id).await.as_deref(), Some("paused"));
    app.dispatch_all_pending().await;
    assert_eq!(report_mails(&app), 0, "a paused send sends nothing");
    let html = page(&app, &path).await;
    assert!(
        html.contains(&format!(r#"action="{path}/resume""#)),
        "{html}"
    );
    assert!(!html.contains(&format!(r#"action="{path}/pause""#)));
    assert_eq!(progress(&app, id).await["paused"], 3);

    let response = post(&app, &format!("{path}/resume"), &[("csrf", &csrf(&html))]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(send_state(&app, id).await.as_deref(), Some("sending"));
    let response = post(&app, &format!("{path}/cancel"), &[("csrf", &csrf(&html))]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{path}?done=cancelled"));
    app.dispatch_all_pending().await;
    assert_eq!(report_mails(&app), 0, "a cancelled send sends nothing");
    let progress = progress(&app, id).await;
    assert_eq!(
        (
            &progress["state"],
            &progress["cancelled"],
            &progress["percent"]
        ),
        (
            &serde_json::json!("cancelled"),
            &serde_json::json!(3),
            &serde_json::json!(100)
        ),
        "{progress}"
    );
    let html = page(&app, &path).await;
    assert!(
        !html.contains(&format!(r#"action="{path}/cancel""#)),
        "{html}"
    );
    let response = post(&app, &format!("{path}/cancel"), &[("csrf", &csrf(&html))]).await;
    assert_eq!(response.status(), 409, "nothing left to cancel");
    assert!(response.text().await.unwrap().contains("cannot cancel"));
}

async fn previews_render_the_report(backend: Backend) {
    let app = logged_in(backend).await;
    let id = create_through_form(&app, &report_source("previewed")).await;
    let html = page(&app, &format!("/admin/reports/{id}")).await;

    let response = app.get(&format!("/admin/reports/{id}/preview")).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(
        headers["x-frame-options"], "SAMEORIGIN",
        "framed by our page"
    );
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'self'"));
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Weekly Report previewed"));

    let response = app.get(&format!("/admin/reports/{id}/preview.txt")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Weekly Report previewed"));

    // The live preview renders unsaved text.
    let live = |source: String| {
        app.client
            .post(app.url("/admin/preview"))
            .header("content-type", "text/markdown")
            .header("x-csrf-token", csrf(&html))
            .body(source)
            .send()
    };
    let response = live(report_source("not-saved-yet")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["subject"], "Weekly Report not-saved-yet");
    assert!(body["html"]
        .as_str()
        .unwrap()
        .contains("Weekly Report not-saved-yet"));
    assert!(body["text"]
        .as_str()
        .unwrap()
        .contains("Weekly Report not-saved-yet"));
    let broken = "---\ntitle: No slug\n---\n";
    let expected = match newsletter::report::Report::parse(broken) {
        Ok(_) => panic!("the test's broken report parses"),
        Err(e) => e.to_string(),
    };
    let response = live(broken.to_string()).await.unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], expected);
    assert_eq!(
        app.count("select count(*) from reports").await,
        1,
        "previews save nothing"
    );

    // Without a session, nothing is shown.
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = stranger
        .get(app.url(&format!("/admin/reports/{id}/preview")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let response = stranger
        .post(app.url("/admin/preview"))
        .header("content-type", "text/markdown")
        .header("x-csrf-token", csrf(&html))
        .body(report_source("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

async fn logging_out_ends_the_session(backend: Backend) {
    let app = logged_in(backend).await;
    let html = page(&app, "/admin").await;
    let token = csrf(&html);
    // Without the token, as with a wrong one, another site cannot log the
    // editor out.
    let response = post(&app, "/admin/logout", &[]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.get("/admin").await.status(), 200);
    let response = post(&app, "/admin/logout", &[("csrf", &token)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/login");

    let response = app.get("/admin").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/login");
    let response = post(
        &app,
        "/admin/reports",
        &[("csrf", &token), ("source", &report_source("after"))],
    )
    .await;
    assert_eq!(
        response.status(),
        401,
        "the old session's forms are refused"
    );
    assert_eq!(app.count("select count(*) from reports").await, 0);
    assert_eq!(app.count("select count(*) from admin_sessions").await, 0);
}
