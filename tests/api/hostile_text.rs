//! Text chosen by strangers must not act where it ends up: in an editor's
//! spreadsheet, or in mail we send from our own domain.

use reqwest::Method;

use crate::feedback::{feedback_link, sent_report, token_of};
use crate::helpers::{confirmation_link, spawn_app, token_in, Backend};

crate::on_both_backends!(
    formulas_in_feedback_and_reader_exports_open_as_text,
    a_confirmation_mail_carries_no_text_chosen_by_the_signer,
    a_strangers_sign_up_neither_renames_nor_resubscribes_a_reader,
);

const FORMULAS: &[&str] = &[
    "=HYPERLINK(\"https://evil.example/x\",\"Click for details\")",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
];

/// The cells of a CSV file, read by another parser.
fn cells(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

async fn formulas_in_feedback_and_reader_exports_open_as_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let readers: Vec<String> = (0..FORMULAS.len())
        .map(|i| format!("reader{i}@example.com"))
        .collect();
    let reader_refs: Vec<&str> = readers.iter().map(String::as_str).collect();
    let (id, mails) = sent_report(&app, &reader_refs).await;
    for (mail, formula) in mails.iter().zip(FORMULAS) {
        let token = token_of(&feedback_link(&app, mail, "yes"));
        let body = serde_urlencoded::to_string([
            ("token", token.as_str()),
            ("answer", "yes"),
            ("comment", formula),
        ])
        .unwrap();
        assert_eq!(app.post_form("/feedback", &body).await.status(), 200);
    }
    let csv = app
        .api(Method::GET, &format!("/api/reports/{id}/feedback.csv"))
        .await
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let rows = cells(&csv);
    let comments: Vec<&str> = rows[1..].iter().map(|r| r[3].as_str()).collect();
    assert_eq!(comments.len(), FORMULAS.len());
    for formula in FORMULAS {
        assert!(
            comments.contains(&format!("'{formula}").as_str()),
            "{formula:?} is not neutralised in {comments:?}"
        );
    }
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "a cell a spreadsheet would run: {cell:?}"
            );
        }
    }

    // Names and addresses in the readers' export, from the sign-up form.
    for (i, formula) in FORMULAS.iter().enumerate() {
        let email = format!("{}x{i}@example.com", ['-', '+', '=', '-'][i]);
        let body =
            serde_urlencoded::to_string([("email", email.as_str()), ("name", formula)]).unwrap();
        assert_eq!(app.post_form("/subscriptions", &body).await.status(), 200);
    }
    let rows = cells(&crate::bounces::export(&app, "csv"));
    let names: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    for formula in FORMULAS {
        assert!(
            names.contains(&format!("'{formula}").as_str()),
            "{formula:?} not neutralised in {names:?}"
        );
    }
    for row in &rows {
        for cell in row {
            assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell:?}");
        }
    }
    assert!(rows.iter().any(|r| r[0] == "'-x0@example.com"), "{rows:?}");
}

async fn a_confirmation_mail_carries_no_text_chosen_by_the_signer(backend: Backend) {
    let app = spawn_app(backend).await;
    let bait = "URGENT: your mailbox will be closed, log in at https://evil.example/verify now";
    let body =
        serde_urlencoded::to_string([("email", "stranger@example.com"), ("name", bait)]).unwrap();
    assert_eq!(app.post_form("/subscriptions", &body).await.status(), 200);
    app.dispatch_all_pending().await;
    let mails = app.smtp.received_for("stranger@example.com");
    assert_eq!(mails.len(), 1);
    let raw = String::from_utf8_lossy(&mails[0].data).to_string();
    // Read by another MIME parser, every header and part decoded.
    let parsed = mails[0].parsed();
    let mut seen = String::new();
    for header in parsed.headers() {
        seen.push_str(&format!("{:?}\n", header.value()));
    }
    for i in 0..parsed.text_body_count() {
        seen.push_str(&parsed.body_text(i).unwrap_or_default());
    }
    for i in 0..parsed.html_body_count() {
        seen.push_str(&parsed.body_html(i).unwrap_or_default());
    }
    for text in [seen.as_str(), raw.as_str()] {
        assert!(!text.contains("evil.example"), "{text}");
        assert!(!text.contains("URGENT"), "{text}");
    }
    assert!(
        seen.contains("/subscriptions/confirm?token="),
        "still a usable mail"
    );
}

async fn a_strangers_sign_up_neither_renames_nor_resubscribes_a_reader(backend: Backend) {
    let app = spawn_app(backend).await;
    let sign_up = |email: &'static str, name: &'static str| {
        let body = serde_urlencoded::to_string([("email", email), ("name", name)]).unwrap();
        let app = &app;
        async move {
            assert_eq!(app.post_form("/subscriptions", &body).await.status(), 200);
            app.dispatch_all_pending().await;
            app.smtp
                .received_for(email)
                .pop()
                .expect("a confirmation mail")
        }
    };
    let name_of = |email: &'static str| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, Option<String>>("select name from subscribers where email = $1")
                .bind(email)
                .fetch_one(app.store().pool())
                .await
                .unwrap()
        }
    };

    // A pending reader keeps the name they gave, through confirmation.
    let own = sign_up("ana@example.com", "Ana").await;
    sign_up("ana@example.com", "Mallory says click here").await;
    assert_eq!(name_of("ana@example.com").await.as_deref(), Some("Ana"));
    let token = token_in(&confirmation_link(&own));
    app.post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(
        app.status_of("ana@example.com").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(name_of("ana@example.com").await.as_deref(), Some("Ana"));

    // A reader who left is not put back by someone else's sign-up.
    let mail = app.confirmed_reader("dee@example.com").await;
    assert_eq!(app.unsubscribe_through(&mail).await.status(), 200);
    let offered = sign_up("dee@example.com", "Dee D.").await;
    assert_eq!(
        app.status_of("dee@example.com").await.as_deref(),
        Some("unsubscribed")
    );
    let report = app
        .create_report(&crate::sending::report_source("after-leaving"))
        .await;
    assert_eq!(app.trigger_send(report, "k").await.status(), 202);
    app.dispatch_all_pending().await;
    let reports_to_dee = app
        .smtp
        .received_for("dee@example.com")
        .iter()
        .filter(|m| !m.subject().contains("confirm"))
        .count();
    assert_eq!(reports_to_dee, 0, "no report for a reader who left");
    assert!(
        app.smtp.received_for("ana@example.com").len() >= 2,
        "Ana got it"
    );
    // Following the link is how they come back, with the name sent with it.
    let token = token_in(&confirmation_link(&offered));
    app.post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(
        app.status_of("dee@example.com").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(name_of("dee@example.com").await.as_deref(), Some("Dee D."));
}
