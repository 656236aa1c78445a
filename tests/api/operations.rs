//! What operators rely on: metrics, request ids, security headers.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Backend};

crate::on_both_backends!(
    metrics_need_their_token_and_count_what_happened,
    every_response_has_a_request_id
);

async fn metrics_need_their_token_and_count_what_happened(backend: Backend) {
    let closed = spawn_app(backend).await;
    assert_eq!(closed.get("/metrics").await.status(), 404);

    let app = spawn_app_with(backend, |s| {
        s.metrics_token = Some("scrape-secret-0123456789".to_string().into())
    })
    .await;
    app.post_json("/subscriptions", &json!({ "email": "m@example.com" }))
        .await;
    let queued = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 200);
    let text = queued.text().await.unwrap();
    assert!(text.contains("newsletter_queue_depth 1"), "{text}");
    assert!(text.contains("newsletter_signups_total{outcome=\"confirmation_queued\"}"));

    app.dispatch_all_pending().await;
    for token in ["", "wrong"] {
        let response = app
            .client
            .get(app.url("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret-0123456789")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("newsletter_queue_depth 0"), "{text}");
    assert!(text.contains("newsletter_deliveries_total{outcome=\"sent\"}"));
    assert!(text.contains("newsletter_smtp_send_seconds_bucket"));
}

async fn every_response_has_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/", "/health", "/no-such-page"] {
        let response = app.get(path).await;
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "{path}: a UUID");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    }
}
