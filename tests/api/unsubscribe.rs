//! One-click unsubscribe with signed tokens.

use crate::helpers::{spawn_app, Backend};

crate::on_both_backends!(
    one_click_post_unsubscribes_at_once,
    the_link_shows_a_button_and_changes_nothing,
    a_forged_token_is_refused,
);

fn header_link(mail: &crate::smtp_server::Received) -> String {
    let value = mail
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe header");
    value
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

async fn one_click_post_unsubscribes_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let mail = app.confirmed_reader("ida@example.com").await;
    // What a mail client sends for RFC 8058 one-click.
    let response = app
        .client
        .post(header_link(&mail))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.status_of("ida@example.com").await.as_deref(),
        Some("unsubscribed")
    );
}

async fn the_link_shows_a_button_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mail = app.confirmed_reader("jo@example.com").await;
    let link = header_link(&mail);
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains(r#"<form method="post" action="/unsubscribe?token="#));
    assert_eq!(
        app.status_of("jo@example.com").await.as_deref(),
        Some("confirmed")
    );
}

async fn a_forged_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mail = app.confirmed_reader("kim@example.com").await;
    let link = header_link(&mail);
    let token = link.split("token=").nth(1).unwrap();
    let (id, signature) = token.split_once('.').unwrap();
    let other_id = uuid::Uuid::new_v4();
    let forged = [
        format!("{other_id}.{signature}"),
        format!("{id}.{}", "A".repeat(43)),
        id.to_string(),
        "garbage".to_string(),
        String::new(),
    ];
    for token in &forged {
        let response = app
            .post_form(
                &format!("/unsubscribe?token={token}"),
                "List-Unsubscribe=One-Click",
            )
            .await;
        assert_eq!(response.status(), 400, "{token}");
        assert_eq!(
            app.get(&format!("/unsubscribe?token={token}"))
                .await
                .status(),
            400
        );
    }
    assert_eq!(
        app.status_of("kim@example.com").await.as_deref(),
        Some("confirmed")
    );
}
