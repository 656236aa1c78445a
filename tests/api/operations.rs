//! What operators rely on: metrics, request ids, security headers.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};

const METRICS_TOKEN: &str = "scrape-secret-0123456789";

crate::on_both_backends!(
    metrics_need_their_token_and_count_what_happened,
    requests_are_counted_by_route_pattern_not_by_path,
    every_response_has_a_request_id
);

async fn metrics_need_their_token_and_count_what_happened(backend: Backend) {
    let closed = spawn_app(backend).await;
    assert_eq!(closed.get("/metrics").await.status(), 404);

    let app = spawn_app_with(backend, |s| {
        s.metrics_token = Some(METRICS_TOKEN.to_string().into())
    })
    .await;
    app.post_json("/subscriptions", &json!({ "email": "m@example.com" }))
        .await;
    let text = scrape(&app).await;
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
    let text = scrape(&app).await;
    assert!(text.contains("newsletter_queue_depth 0"), "{text}");
    assert!(text.contains("newsletter_deliveries_total{outcome=\"sent\"}"));
    assert!(text.contains("newsletter_smtp_send_seconds_bucket"));
}

/// The metrics page, read with the token.
async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn requests_are_counted_by_route_pattern_not_by_path(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.metrics_token = Some(METRICS_TOKEN.to_string().into())
    })
    .await;
    let ids: Vec<String> = (0..3)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    for id in &ids[..2] {
        assert_eq!(app.get(&format!("/archive/{id}")).await.status(), 404);
    }
    assert_eq!(app.get(&format!("/{}", ids[2])).await.status(), 404);
    let text = scrape(&app).await;
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("newsletter_http_requests_total{"))
        .collect();
    let counted = |route: &str| {
        requests.iter().any(|l| {
            l.contains(&format!("route=\"{route}\""))
                && l.contains("method=\"GET\"")
                && l.contains("status=\"404\"")
        })
    };
    assert!(counted("/archive/{slug}"), "{text}");
    assert!(counted("unmatched"), "{text}");
    for id in &ids {
        assert!(!text.contains(id.as_str()), "{id} became a label: {text}");
    }
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

#[tokio::test]
async fn oversized_headers_are_refused_without_harm() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .client
        .get(app.url("/"))
        .header("x-padding", "a".repeat(512 * 1024))
        .send()
        .await;
    // hyper answers 431 (or closes the connection) before any handler runs.
    if let Ok(response) = response {
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    assert_eq!(
        app.get("/health").await.status(),
        200,
        "the server still serves"
    );
}

/// Runs the real binary with debug logging through a whole reader journey
/// and checks that no token, password or key reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_reach_the_logs() {
    use std::process::Stdio;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let smtp = crate::smtp_server::TestSmtp::start().await;
    // Links in the mail point at this name; the test rewrites them to the
    // port the server picked.
    let public = "http://newsletter.test";
    let secret = "a-very-secret-signing-key-0123456789abcdef";
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .arg("serve")
        .env("NEWSLETTER_LISTEN", "127.0.0.1:0")
        .env("NEWSLETTER_BASE_URL", public)
        .env(
            "NEWSLETTER_DATABASE_URL",
            format!("sqlite://{}/db.sqlite", dir.path().display()),
        )
        .env(
            "NEWSLETTER_MAIL__SMTP_URL",
            format!("smtp://user:smtp-password-xyz@127.0.0.1:{}", smtp.port),
        )
        // The test relay is on this machine: no TLS, explicitly allowed.
        .env("NEWSLETTER_MAIL__ALLOW_PLAINTEXT_AUTH", "true")
        .env("NEWSLETTER_SECRET_KEY", secret)
        .env("NEWSLETTER_DELIVERY__POLL_INTERVAL_MS", "50")
        .env("NEWSLETTER_LOG__FILTER", "debug")
        .env("NEWSLETTER_LOG__JSON", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The whole log (on stderr), read as it is written (a full pipe would
    // stall the server); the address it listens on is sent as soon as it is
    // logged.
    let (address_tx, address_rx) = tokio::sync::oneshot::channel();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let stdout = tokio::spawn(async move {
        let mut log = String::new();
        let mut address_tx = Some(address_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let address: String = rest.chars().take_while(|c| *c != '"').collect();
                if let Some(tx) = address_tx.take() {
                    let _ = tx.send(address);
                }
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let base = tokio::time::timeout(Duration::from_secs(30), address_rx)
        .await
        .expect("the server logs its address within 30 s")
        .expect("the server logs its address");
    let client = reqwest::Client::new();
    client
        .post(format!("{base}/subscriptions"))
        .form(&[("email", "log@example.com")])
        .send()
        .await
        .unwrap();
    // The relay authenticates us with the password from the URL.
    let mail = smtp.wait_for(1, crate::helpers::MAIL_WAIT).await.remove(0);
    let link = mail
        .link_starting_with(&format!("{public}/subscriptions/confirm?token="))
        .expect("a confirmation link")
        .replace(public, &base);
    let token = crate::helpers::token_in(&link);
    client.get(&link).send().await.unwrap();
    client
        .post(format!("{base}/subscriptions/confirm"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let unsubscribe = mail.header("List-Unsubscribe").unwrap();
    let unsubscribe = unsubscribe.trim_matches(['<', '>']).replace(public, &base);
    client.post(&unsubscribe).send().await.unwrap();
    let unsubscribe_token = unsubscribe.split("token=").nth(1).unwrap();

    let pid = server.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("the server stops within 30 s of SIGTERM")
        .unwrap();
    let mut log = stdout.await.unwrap();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();

    assert!(
        log.contains("subscription confirmed"),
        "the journey was logged"
    );
    for secret_value in [
        token.as_str(),
        unsubscribe_token,
        secret,
        "smtp-password-xyz",
    ] {
        assert!(
            !log.contains(secret_value),
            "{secret_value} appears in the log"
        );
    }
}
