//! The sign-up form embedded in the team's own site: a form post lands on
//! the configured thank-you page, a script's JSON sign-up gets CORS
//! headers, and neither works as an open redirect or for other sites.

use crate::helpers::{spawn_app_with, Backend, TestApp};

crate::on_both_backends!(the_team_site_signs_readers_up_and_no_one_else_redirects);

const SITE: &str = "https://www.example.com";
const THANKS: &str = "https://www.example.com/newsletter/thanks";
const EVIL: &str = "https://evil.example.net";

async fn post(app: &TestApp, origin: &str, content_type: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/subscriptions"))
        .header("origin", origin)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// A browser's CORS preflight for a JSON POST from `origin`.
async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/subscriptions"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap()
}

const FORM: &str = "application/x-www-form-urlencoded";

async fn the_team_site_signs_readers_up_and_no_one_else_redirects(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.embed.allowed_origins = vec![SITE.parse().unwrap()];
        s.embed.thank_you_url = Some(THANKS.parse().unwrap());
    })
    .await;

    // The documented form, posted from the team's site.
    let response = post(&app, SITE, FORM, "email=ana%40example.com&name=Ana").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], THANKS);
    assert_eq!(
        app.status_of("ana@example.com").await.as_deref(),
        Some("pending")
    );
    app.dispatch_all_pending().await;
    assert_eq!(app.smtp.received_for("ana@example.com").len(), 1);

    // From anywhere else: our own page, never a redirect.
    let response = post(&app, EVIL, FORM, "email=bo%40example.com").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("location").is_none());
    // Nothing in the request can choose the target.
    let response = post(
        &app,
        SITE,
        FORM,
        "email=cy%40example.com&redirect=https%3A%2F%2Fevil.example.net",
    )
    .await;
    assert_eq!(response.status(), 422);
    assert!(response.headers().get("location").is_none());
    assert_eq!(app.status_of("cy@example.com").await, None);
    // A mistake on the team's form is shown, not hidden behind the thanks.
    let response = post(&app, SITE, FORM, "email=not-an-address").await;
    assert_eq!(response.status(), 422);
    assert!(response.headers().get("location").is_none());

    // A script on the team's site: preflight, then the JSON sign-up.
    let allowed = preflight(&app, SITE).await;
    assert!(allowed.status().is_success());
    assert_eq!(allowed.headers()["access-control-allow-origin"], SITE);
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let json = post(
        &app,
        SITE,
        "application/json",
        r#"{"email":"dee@example.com"}"#,
    )
    .await;
    assert_eq!(json.status(), 200);
    assert_eq!(json.headers()["access-control-allow-origin"], SITE);
    assert_eq!(
        app.status_of("dee@example.com").await.as_deref(),
        Some("pending")
    );

    // Another site's script gets no permission to read the answer.
    let refused = preflight(&app, EVIL).await;
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let json = post(
        &app,
        EVIL,
        "application/json",
        r#"{"email":"eve@example.com"}"#,
    )
    .await;
    assert!(json.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn a_thank_you_page_elsewhere_is_refused() {
    let mut settings = newsletter::config::Settings::default();
    settings.embed.allowed_origins = vec![SITE.parse().unwrap()];
    settings.embed.thank_you_url = Some("https://evil.example.net/thanks".parse().unwrap());
    let err = settings.validate().unwrap_err().to_string();
    assert!(err.contains("embed.thank_you_url"), "{err}");
    settings.embed.thank_you_url = Some(THANKS.parse().unwrap());
    settings.validate().unwrap();
}
