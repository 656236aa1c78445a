//! Editors' credentials: API tokens that can be listed, revoked and left to
//! expire, passwords strong enough, and sessions that end with a password.

use reqwest::Method;

use crate::cli::newsletter;
use crate::helpers::{spawn_app, Backend, TestApp};

crate::on_both_backends!(
    tokens_are_listed_with_their_last_use_revoked_and_expire,
    weak_passwords_are_refused_with_the_reason,
    a_new_password_ends_the_sessions,
);

const EDITOR: &str = "ed@example.com";
const PASSWORD: &str = "a long enough password";

async fn api_status(app: &TestApp, token: &str) -> u16 {
    app.client
        .request(Method::GET, app.url("/api/reports"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

async fn tokens_are_listed_with_their_last_use_revoked_and_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    let db = app.app.state.settings.database_url.clone();
    let env = [("NEWSLETTER_DATABASE_URL", db.as_str())];
    app.add_editor(EDITOR, PASSWORD).await;
    let lasting = stdout(&newsletter(&["admin", "token", EDITOR], &env, None))
        .trim()
        .to_string();
    let expiring = stdout(&newsletter(
        &["admin", "token", EDITOR, "--expires-in-days", "30"],
        &env,
        None,
    ))
    .trim()
    .to_string();

    let listed = stdout(&newsletter(&["admin", "tokens", "list"], &env, None));
    let lines: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines
        .iter()
        .all(|l| l.contains(EDITOR) && l.contains("never")));
    assert!(!listed.contains(&lasting) && !listed.contains(&expiring[3..]));
    assert!(
        lines[0].trim_end().ends_with("never"),
        "no expiry: {listed}"
    );
    assert!(
        !lines[1].trim_end().ends_with("never"),
        "an expiry: {listed}"
    );

    // Use is recorded.
    assert_eq!(api_status(&app, &lasting).await, 200);
    assert_eq!(api_status(&app, &expiring).await, 200);
    let listed = stdout(&newsletter(&["admin", "tokens", "list"], &env, None));
    assert!(
        listed
            .lines()
            .skip(1)
            .all(|l| l.matches("never").count() <= 1),
        "both show a last use: {listed}"
    );
    assert_eq!(
        app.count("select count(*) from api_tokens where last_used_at is not null")
            .await,
        2
    );

    // Time passes for the expiring one.
    sqlx::query("update api_tokens set expires_at = $1 where expires_at is not null")
        .bind(newsletter::store::now_ms() - 1)
        .execute(app.store().pool())
        .await
        .unwrap();
    assert_eq!(api_status(&app, &expiring).await, 401);
    let listed = stdout(&newsletter(&["admin", "tokens", "list"], &env, None));
    assert!(listed.contains("(expired)"), "{listed}");

    // Revoking by id.
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let out = stdout(&newsletter(&["admin", "tokens", "revoke", id], &env, None));
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(api_status(&app, &lasting).await, 401);
    let again = newsletter(&["admin", "tokens", "revoke", id], &env, None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no API token"));
}

async fn weak_passwords_are_refused_with_the_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let db = app.app.state.settings.database_url.clone();
    let env = [("NEWSLETTER_DATABASE_URL", db.as_str())];
    for weak in [
        "aaaaaaaaaa",
        "1234567890",
        "          ",
        "password1234",
        "ed@example.com1",
    ] {
        let out = newsletter(&["admin", "add", EDITOR], &env, Some(&format!("{weak}\n")));
        assert!(!out.status.success(), "{weak:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("too easy to guess"), "{weak:?}: {err}");
    }
    assert_eq!(app.count("select count(*) from admins").await, 0);
    let out = newsletter(
        &["admin", "add", EDITOR],
        &env,
        Some("tulip-marrow-casket-1987\n"),
    );
    stdout(&out);
    app.log_in(EDITOR, "tulip-marrow-casket-1987").await;
}

async fn a_new_password_ends_the_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_editor(EDITOR, PASSWORD).await;
    app.log_in(EDITOR, PASSWORD).await;
    assert_eq!(app.get("/admin").await.status(), 200, "logged in");
    app.add_editor(EDITOR, "another long enough password").await;
    let response = app.get("/admin").await;
    assert_eq!(response.status(), 303, "the old session is over");
    assert_eq!(response.headers()["location"], "/admin/login");
    assert_eq!(app.count("select count(*) from admin_sessions").await, 0);
}
