//! Nothing under /api or /admin answers without an editor's credentials.

use reqwest::Method;

use crate::helpers::{spawn_app, Backend};

crate::on_both_backends!(
    every_api_route_refuses_missing_or_wrong_tokens,
    admin_pages_need_a_session,
    login_is_rate_limited_and_rotates_the_session,
);

const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/reports"),
    ("POST", "/api/reports"),
    ("GET", "/api/reports/1"),
    ("POST", "/api/reports/1/test"),
    ("POST", "/api/reports/1/send"),
    ("POST", "/api/reports/1/pause"),
    ("POST", "/api/reports/1/resume"),
    ("POST", "/api/reports/1/cancel"),
    ("GET", "/api/reports/1/stats"),
    ("GET", "/api/reports/1/feedback"),
    ("GET", "/api/reports/1/feedback.csv"),
];

async fn every_api_route_refuses_missing_or_wrong_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let report_id = app
        .create_report(&crate::sending::report_source("auth-check"))
        .await;
    assert_eq!(report_id, 1);
    let good = app.api_token().await;
    let forged = format!("{}x", good);
    for (method, path) in API_ROUTES {
        for auth in [
            None,
            Some("Bearer nl_not-a-token".to_string()),
            Some(format!("Bearer {forged}")),
            Some(format!("Basic {good}")),
        ] {
            let mut request = app
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(path),
                )
                .header("idempotency-key", "k1")
                .header("content-type", "application/json")
                .body(r#"{"addresses":["x@example.com"]}"#);
            if let Some(auth) = &auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
        }
    }
    // Nothing changed.
    assert_eq!(app.count("select count(*) from sends").await, 0);
    assert_eq!(app.count("select count(*) from outbox").await, 0);
}

async fn admin_pages_need_a_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let report_id = app
        .create_report(&crate::sending::report_source("session-check"))
        .await;
    assert_eq!(report_id, 1);
    app.confirmed_reader("reader@example.com").await;
    for path in [
        "/admin",
        "/admin/reports/new",
        "/admin/reports/1",
        "/admin/reports/1/preview",
        "/admin/reports/1/preview.txt",
        "/admin/reports/1/progress",
        "/admin/reports/1/feedback.csv",
        "/admin/readers",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(response.headers()["location"], "/admin/login");
    }
    for path in [
        "/admin/logout",
        "/admin/reports",
        "/admin/reports/1/send",
        "/admin/reports/1/test",
        "/admin/reports/1/pause",
        "/admin/reports/1/resume",
        "/admin/reports/1/cancel",
        "/admin/preview",
        "/admin/readers/1/unsubscribe",
        "/admin/readers/1/delete",
    ] {
        let response = app
            .post_form(
                path,
                "csrf=x&source=x&addresses=x%40example.com&key=k&confirm=yes",
            )
            .await;
        assert_eq!(response.status(), 401, "{path}");
    }
    // Nothing changed.
    assert_eq!(app.count("select count(*) from reports").await, 1);
    assert_eq!(
        app.status_of("reader@example.com").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(app.count("select count(*) from sends").await, 0);
    assert_eq!(
        app.count("select count(*) from outbox where kind <> 'confirmation'")
            .await,
        0
    );
}

async fn login_is_rate_limited_and_rotates_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_editor("editor@example.com", "a long enough password")
        .await;
    for _ in 0..5 {
        let response = app
            .post_form(
                "/admin/login",
                "email=editor%40example.com&password=wrong+password",
            )
            .await;
        assert_eq!(response.status(), 401);
    }
    let response = app
        .post_form(
            "/admin/login",
            "email=editor%40example.com&password=a+long+enough+password",
        )
        .await;
    assert_eq!(
        response.status(),
        429,
        "even the right password waits after 5 failures"
    );
    assert_eq!(app.count("select count(*) from admin_sessions").await, 0);

    let other = spawn_app(backend).await;
    other
        .add_editor("editor@example.com", "a long enough password")
        .await;
    let first = other
        .log_in("editor@example.com", "a long enough password")
        .await;
    let second = other
        .log_in("editor@example.com", "a long enough password")
        .await;
    assert_ne!(first, second, "a new session id at each login");
    assert!(
        first.contains("HttpOnly") && first.contains("SameSite=Strict"),
        "{first}"
    );
    assert_eq!(
        other.count("select count(*) from admin_sessions").await,
        1,
        "the old session is gone"
    );
}
