//! Double opt-in: sign up, receive the mail, follow the link, be confirmed.

use serde_json::json;

use crate::helpers::{confirmation_link, spawn_app, spawn_app_with, token_in, Backend};

crate::on_both_backends!(
    home_page_has_a_subscribe_form,
    sign_up_then_link_then_confirmed,
    json_sign_up_is_answered_in_json,
    bad_input_is_refused_and_nothing_is_stored,
    answer_does_not_reveal_whether_an_address_is_subscribed,
    signing_up_again_while_pending_sends_a_fresh_link,
    confirmation_mails_per_address_are_limited,
    concurrent_sign_ups_are_each_answered_and_limited,
    an_unsubscribed_reader_may_opt_in_again,
    an_expired_link_offers_to_sign_up_again,
    a_used_link_cannot_be_used_again,
    a_link_of_before_still_confirms,
    unknown_and_malformed_tokens_are_refused,
    health_reports_the_database,
    the_signing_key_survives_a_restart,
    sign_ups_per_client_are_limited,
);

async fn home_page_has_a_subscribe_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"<form method="post" action="/subscriptions">"#));
    assert!(page.contains(r#"name="email""#));
}

async fn sign_up_then_link_then_confirmed(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_form(
            "/subscriptions",
            "email=Ana%40Example.com&name=Ana+L%C3%B3pez",
        )
        .await;
    assert_eq!(response.status(), 200);
    let thanks = response.text().await.unwrap();
    assert!(thanks.contains("Check your inbox"));
    assert_eq!(
        app.status_of("ana@example.com").await.as_deref(),
        Some("pending")
    );
    // The page kept after the first sign-up is the one it rendered.
    let again = app
        .post_form("/subscriptions", "email=bo%40example.com")
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().await.unwrap(), thanks);

    // The request only queued the mail; the worker sends it.
    assert!(app.smtp.received().is_empty());
    assert_eq!(app.dispatch_all_pending().await, 2);
    let mails = app.smtp.received_for("ana@example.com");
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to(), "ana@example.com");
    assert!(mail.subject().contains("confirm"), "{}", mail.subject());
    assert_eq!(mail.to_name(), None, "no name before the address confirms");
    assert!(mail
        .header("List-Unsubscribe")
        .unwrap()
        .starts_with(&format!("<{}/unsubscribe?token=", app.address)));
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(mail.header("Message-ID").is_some());
    let link = confirmation_link(mail);
    assert!(
        mail.html().contains(&link),
        "the HTML part carries the same link"
    );
    // The token is kept only as a hash.
    let token = token_in(&link);
    assert_eq!(
        app.count(&format!(
            "select count(*) from confirmation_tokens where token_hash = '{token}'"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from outbox where seed like '%{token}%'"
        ))
        .await,
        0
    );

    // Following the link shows a page; a scanner's GET confirms nothing.
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("data-autosubmit"));
    assert!(page.contains(&format!(r#"value="{token}""#)));
    assert_eq!(
        app.status_of("ana@example.com").await.as_deref(),
        Some("pending")
    );

    let confirmed = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(confirmed.status(), 200);
    assert!(confirmed
        .text()
        .await
        .unwrap()
        .contains("You are subscribed"));
    assert_eq!(
        app.status_of("ana@example.com").await.as_deref(),
        Some("confirmed")
    );
    let name: Option<String> =
        sqlx::query_scalar("select name from subscribers where email = 'ana@example.com'")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert_eq!(name.as_deref(), Some("Ana López"));
}

async fn json_sign_up_is_answered_in_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json("/subscriptions", &json!({ "email": "bo@example.org" }))
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(
        app.status_of("bo@example.org").await.as_deref(),
        Some("pending")
    );
}

async fn bad_input_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let long_local = "a".repeat(320);
    let form_cases: Vec<(String, &str)> = vec![
        ("email=ana.example.com".into(), "no @"),
        (format!("email={long_local}%40example.com"), "longer than"),
        (
            "email=ana%40example.com%0D%0ABcc%3A+x%40evil.com".into(),
            "control character",
        ),
        ("email=ana%00%40example.com".into(), "control character"),
        ("email=ana+lopez%40example.com".into(), "space"),
        ("email=ana%40%D0%B5xample.com".into(), "non-ASCII"),
        ("email=ana%40localhost".into(), "domain"),
        ("email=%40example.com".into(), "not valid"),
        ("email=".into(), "empty"),
        ("email=++".into(), "empty"),
        (
            "email=ana%40example.com&name=Ana%0ABcc%3A+x".into(),
            "name contains a control character",
        ),
        (
            format!("email=ana%40example.com&name={}", "x".repeat(101)),
            "name is longer",
        ),
        ("name=Ana".into(), "missing field `email`"),
        ("".into(), "missing field `email`"),
    ];
    for (body, expected) in &form_cases {
        let response = app.post_form("/subscriptions", body).await;
        assert_eq!(response.status(), 422, "{body}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains(expected),
            "{body}: expected {expected:?} in the page"
        );
    }

    let json_cases = [
        (json!({ "email": 42 }), 422, "expected a JSON object"),
        (json!(["ana@example.com"]), 422, "expected a JSON object"),
        (
            json!({ "mail": "ana@example.com" }),
            422,
            "expected a JSON object",
        ),
        (
            json!({ "email": "ana@example.com", "name": ["x"] }),
            422,
            "expected a JSON object",
        ),
        (
            json!({ "email": "ana@exa\u{0430}mple.com" }),
            422,
            "non-ASCII",
        ),
    ];
    for (body, status, expected) in &json_cases {
        let response = app.post_json("/subscriptions", body).await;
        assert_eq!(response.status(), *status, "{body}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(expected),
            "{body}: {error}"
        );
    }

    let raw_cases = [
        ("text/plain", "email=ana@example.com", 415),
        ("application/json", "{not json", 422),
        ("application/json", "", 422),
        ("", "email=ana%40example.com", 415),
    ];
    for (content_type, body, status) in raw_cases {
        let mut request = app.client.post(app.url("/subscriptions")).body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{content_type}: {body}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(!error["error"].as_str().unwrap().is_empty());
    }

    let huge = format!("email={}", "a".repeat(100_000));
    assert_eq!(app.post_form("/subscriptions", &huge).await.status(), 413);

    assert_eq!(app.count("select count(*) from subscribers").await, 0);
    assert_eq!(app.count("select count(*) from outbox").await, 0);
}

async fn answer_does_not_reveal_whether_an_address_is_subscribed(backend: Backend) {
    let app = spawn_app(backend).await;
    app.confirmed_reader("known@example.com").await;
    app.sign_up("pending@example.com").await;
    let mut answers = Vec::new();
    for email in [
        "new@example.com",
        "pending@example.com",
        "known@example.com",
    ] {
        let response = app
            .post_json("/subscriptions", &json!({ "email": email }))
            .await;
        answers.push((response.status(), response.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
    app.dispatch_all_pending().await;
    assert_eq!(
        app.smtp.received_for("known@example.com").len(),
        1,
        "no new mail to a confirmed reader"
    );
}

async fn signing_up_again_while_pending_sends_a_fresh_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.sign_up("cy@example.com").await;
    let second = app.sign_up("cy@example.com").await;
    let (first, second) = (confirmation_link(&first), confirmation_link(&second));
    assert_ne!(first, second);
    let response = app
        .post_form(
            "/subscriptions/confirm",
            &format!("token={}", token_in(&second)),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.status_of("cy@example.com").await.as_deref(),
        Some("confirmed")
    );
    // Once confirmed, the older link is spent too.
    let response = app
        .post_form(
            "/subscriptions/confirm",
            &format!("token={}", token_in(&first)),
        )
        .await;
    assert_eq!(response.status(), 400);
}

async fn confirmation_mails_per_address_are_limited(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.subscription.confirmations_per_day = 2).await;
    for _ in 0..5 {
        let response = app
            .post_json("/subscriptions", &json!({ "email": "victim@example.com" }))
            .await;
        assert_eq!(response.status(), 200);
    }
    app.dispatch_all_pending().await;
    assert_eq!(app.smtp.received_for("victim@example.com").len(), 2);
}

/// Sign-ups arriving together are written together; repeated addresses in
/// one burst must still be one reader each, within the mail limit.
async fn concurrent_sign_ups_are_each_answered_and_limited(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.subscription.confirmations_per_day = 3;
        s.subscription.signups_per_ip_per_hour = 0;
    })
    .await;
    let requests = (0..400).map(|i| {
        let app = &app;
        async move {
            let email = format!("burst{}@example.com", i % 100);
            let response = app
                .post_json("/subscriptions", &json!({ "email": email }))
                .await;
            response.status()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        app.count("select count(*) from subscribers where email like 'burst%'")
            .await,
        100
    );
    assert_eq!(
        app.count("select count(*) from outbox where kind = 'confirmation'")
            .await,
        300,
        "three confirmation mails per address, not four"
    );
    assert_eq!(
        app.count("select count(*) from confirmation_tokens").await,
        300
    );
}

async fn an_unsubscribed_reader_may_opt_in_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let mail = app.confirmed_reader("dee@example.com").await;
    let unsubscribe = mail.header("List-Unsubscribe").unwrap();
    let unsubscribe = unsubscribe.trim_start_matches('<').trim_end_matches('>');
    let response = app.client.post(unsubscribe).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.status_of("dee@example.com").await.as_deref(),
        Some("unsubscribed")
    );

    let again = app.sign_up("dee@example.com").await;
    assert_eq!(
        app.status_of("dee@example.com").await.as_deref(),
        Some("unsubscribed"),
        "until the link is followed"
    );
    let token = token_in(&confirmation_link(&again));
    app.post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(
        app.status_of("dee@example.com").await.as_deref(),
        Some("confirmed")
    );
}

async fn an_expired_link_offers_to_sign_up_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let mail = app.sign_up("eve@example.com").await;
    sqlx::query("update confirmation_tokens set expires_at = 0")
        .execute(app.store().pool())
        .await
        .unwrap();
    let link = confirmation_link(&mail);
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("Sign up again"));
    let response = app
        .post_form(
            "/subscriptions/confirm",
            &format!("token={}", token_in(&link)),
        )
        .await;
    assert_eq!(response.status(), 410);
    assert_eq!(
        app.status_of("eve@example.com").await.as_deref(),
        Some("pending")
    );
}

async fn a_used_link_cannot_be_used_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let mail = app.confirmed_reader("fay@example.com").await;
    let token = token_in(&confirmation_link(&mail));
    let response = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("already been used"));
    let page = app
        .get(&format!("/subscriptions/confirm?token={token}"))
        .await;
    assert_eq!(page.status(), 400);
}

/// Confirmation links in mail sent before tokens carried the time they were
/// issued hold 43 characters alone, kept in the database as their bare
/// hash; they confirm as before. Tokens issued now are kept under keys that
/// begin with `t` and the time, in the order they were issued.
async fn a_link_of_before_still_confirms(backend: Backend) {
    let app = spawn_app(backend).await;
    let mail = app.sign_up("hal@example.com").await;
    let issued = token_in(&confirmation_link(&mail));
    let (time, mac) = issued.split_once('.').expect("the time, then the MAC");
    assert_eq!((time.len(), mac.len()), (12, 43), "{issued}");
    assert_eq!(
        app.count(&format!(
            "select count(*) from confirmation_tokens where token_hash like 't{time}%'"
        ))
        .await,
        1
    );

    let before = "B".repeat(43);
    sqlx::query(
        "insert into confirmation_tokens (token_hash, subscriber_id, created_at, expires_at) \
         select $1, id, 0, $2 from subscribers where email = $3",
    )
    .bind(newsletter::domain::sha256_hex(&before))
    .bind(i64::MAX / 2)
    .bind("hal@example.com")
    .execute(app.store().pool())
    .await
    .unwrap();
    let page = app
        .get(&format!("/subscriptions/confirm?token={before}"))
        .await;
    assert_eq!(page.status(), 200);
    let response = app
        .post_form("/subscriptions/confirm", &format!("token={before}"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.status_of("hal@example.com").await.as_deref(),
        Some("confirmed")
    );
}

async fn unknown_and_malformed_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mail = app.sign_up("gus@example.com").await;
    let unknown = "A".repeat(43);
    // The genuine token with its time changed or taken away: the key
    // covers the whole token, so neither finds it.
    let genuine = token_in(&confirmation_link(&mail));
    let (time, mac) = genuine.split_once('.').unwrap();
    let later = format!("{:012x}.{mac}", i64::from_str_radix(time, 16).unwrap() + 1);
    for query in [
        "",
        "?token=",
        "?token=short",
        "?token=%0D%0A",
        &format!("?token={unknown}"),
        &format!("?token=019af232b200.{unknown}"),
        &format!("?token={later}"),
        &format!("?token={mac}"),
    ] {
        let page = app.get(&format!("/subscriptions/confirm{query}")).await;
        assert_eq!(page.status(), 400, "{query}");
        assert!(page.text().await.unwrap().contains("Sign up again"));
    }
    let response = app
        .post_form("/subscriptions/confirm", &format!("token={unknown}"))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        app.status_of("gus@example.com").await.as_deref(),
        Some("pending")
    );
}

async fn health_reports_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    app.store().close().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 503);
}

async fn the_signing_key_survives_a_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = uuid::Uuid::new_v4();
    let token = app.app.state.signer.unsubscribe_token(&reader);
    let mut settings = (*app.app.state.settings).clone();
    settings.secret_key = None;
    let again = newsletter::startup::Application::build(settings)
        .await
        .unwrap();
    assert_eq!(
        again.state.signer.verify_unsubscribe(token.as_str()),
        Ok(newsletter::domain::LinkedId::Public(reader))
    );
    let key: String =
        sqlx::query_scalar("select value from app_secrets where name = 'signing_key'")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert!(key.len() >= 64);
}

async fn sign_ups_per_client_are_limited(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.subscription.signups_per_ip_per_hour = 3;
        s.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    let sign_up = |i: usize, ip: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/subscriptions"))
                .header("x-forwarded-for", format!("198.51.100.77, {ip}"))
                .json(&json!({ "email": format!("flood{i}@example.com") }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for i in 0..3 {
        assert_eq!(sign_up(i, "203.0.113.9").await, 200);
    }
    assert_eq!(sign_up(3, "203.0.113.9").await, 429);
    assert_eq!(
        sign_up(4, "203.0.113.10").await,
        200,
        "another client is not affected"
    );
    assert_eq!(app.count("select count(*) from subscribers").await, 4);
}
