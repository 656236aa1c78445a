//! Attacks on the login form: bursts, guessing from many addresses, posts
//! from other sites, and floods that would exhaust memory.

use futures::future::join_all;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};

crate::on_both_backends!(
    a_burst_of_wrong_passwords_is_counted_before_any_is_checked,
    the_owner_still_logs_in_while_others_guess_from_many_addresses,
    endless_addresses_meet_a_limit_the_owners_browser_does_not,
    a_login_posted_from_another_site_is_refused,
    a_login_with_every_check_slot_busy_is_turned_away_at_once,
);

const EDITOR: &str = "editor@example.com";
const PASSWORD: &str = "a long enough password";

fn login_body(email: &str, password: &str) -> String {
    serde_urlencoded::to_string([("email", email), ("password", password)]).unwrap()
}

/// A login from `client` (sent as X-Forwarded-For, which the app is told to
/// trust in these tests).
async fn login_from(app: &TestApp, client: &str, password: &str) -> reqwest::Response {
    login_with(&app.client, app, client, password).await
}

/// A login from `client` through `browser`, with its cookies.
async fn login_with(
    browser: &reqwest::Client,
    app: &TestApp,
    client: &str,
    password: &str,
) -> reqwest::Response {
    browser
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", client)
        .body(login_body(EDITOR, password))
        .send()
        .await
        .unwrap()
}

async fn a_burst_of_wrong_passwords_is_counted_before_any_is_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_editor(EDITOR, PASSWORD).await;
    let bodies: Vec<String> = (0..60)
        .map(|i| login_body(EDITOR, &format!("wrong guess {i}")))
        .collect();
    let burst = bodies
        .iter()
        .map(|body| app.post_form("/admin/login", body));
    let statuses: Vec<u16> = join_all(burst)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    let mut checked = statuses.iter().filter(|s| **s == 401).count();
    // Whatever the burst left, the client is stopped at five checks.
    for i in 0..10 {
        let status = app
            .post_form("/admin/login", &login_body(EDITOR, &format!("later {i}")))
            .await
            .status()
            .as_u16();
        if status == 401 {
            checked += 1;
        }
    }
    assert!(
        checked <= 5,
        "{checked} wrong passwords were checked; the limit is 5 ({statuses:?})"
    );
    let right = app
        .post_form("/admin/login", &login_body(EDITOR, PASSWORD))
        .await;
    assert_eq!(right.status(), 429, "the client waits out its window");
    assert_eq!(app.count("select count(*) from admin_sessions").await, 0);
}

async fn the_owner_still_logs_in_while_others_guess_from_many_addresses(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    app.add_editor(EDITOR, PASSWORD).await;
    // Thirty machines guess six times each.
    let mut checked = 0;
    for machine in 1..=30 {
        let client = format!("10.0.0.{machine}");
        for guess in 0..6 {
            let status = login_from(&app, &client, &format!("guess {guess}"))
                .await
                .status()
                .as_u16();
            match (guess, status) {
                (_, 401) => checked += 1,
                (0, _) => panic!("{client}'s first guess was not checked: {status}"),
                (_, 429) => {}
                _ => panic!("{client} guess {guess}: {status}"),
            }
        }
        let response = login_from(&app, &client, "one more").await;
        assert_eq!(response.status(), 429, "{client} is stopped");
    }
    assert!(
        checked <= 20 + 30,
        "{checked} guesses checked: past 20 on the account, only fresh machines get one"
    );
    // A machine that failed elsewhere gets nowhere near this account now.
    let elsewhere = app
        .client
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "10.9.9.9")
        .body(login_body("nobody@example.com", "whatever it is"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401);
    let response = login_from(&app, "10.9.9.9", PASSWORD).await;
    assert_eq!(
        response.status(),
        429,
        "a client with failures on record cannot try an account under attack"
    );
    // The attackers' machines stay locked out, even with the password.
    let response = login_from(&app, "10.0.0.7", PASSWORD).await;
    assert_eq!(response.status(), 429);
    // The owner, from an address that has not failed, logs in.
    let response = login_from(&app, "192.0.2.10", PASSWORD).await;
    assert_eq!(response.status(), 303, "the owner is not locked out");
    assert_eq!(response.headers()["location"], "/admin");
    assert_eq!(app.count("select count(*) from admin_sessions").await, 1);
}

/// Guessers with endless addresses (a new IPv6 network for each guess)
/// meet the account's limit; the owner's own browser, known from an earlier
/// login, still gets in. Addresses within one /64 are one client.
async fn endless_addresses_meet_a_limit_the_owners_browser_does_not(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    app.add_editor(EDITOR, PASSWORD).await;
    let owner = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = login_with(&owner, &app, "192.0.2.10", PASSWORD).await;
    assert_eq!(response.status(), 303, "the owner logged in here before");

    let mut statuses = Vec::new();
    for host in 1..=6 {
        let client = format!("2001:db8:ffff:1::{host:x}");
        statuses.push(login_from(&app, &client, "guess").await.status().as_u16());
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429],
        "one /64, one client"
    );

    let mut checked = 0;
    for network in 1..=150u32 {
        let client = format!("2001:db8:{network:x}::1");
        match login_from(&app, &client, "guess").await.status().as_u16() {
            401 => checked += 1,
            429 => {}
            other => panic!("guess from {client}: {other}"),
        }
    }
    // The account has seen the owner's login and five guesses: the rest of
    // its hundred went to the new networks, then they waited.
    assert_eq!(checked, 100 - 6);
    let stranger = login_from(&app, "2001:db8:abcd::1", PASSWORD).await;
    assert_eq!(
        stranger.status(),
        429,
        "a browser the account has not seen waits"
    );
    let response = login_with(&owner, &app, "198.51.100.7", PASSWORD).await;
    assert_eq!(response.status(), 303, "the owner's browser gets in");
    // A new password forgets every browser that knew the old one.
    let renewed = "another long enough password";
    app.add_editor(EDITOR, renewed).await;
    let response = login_with(&owner, &app, "198.51.100.8", renewed).await;
    assert_eq!(response.status(), 429, "the browser is a stranger again");
}

async fn a_login_posted_from_another_site_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_editor(EDITOR, PASSWORD).await;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let response = app
            .client
            .post(app.url("/admin/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(header, value)
            .body(login_body(EDITOR, PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{header}: {value}");
        assert!(response.headers().get("set-cookie").is_none());
        let body = response.text().await.unwrap();
        assert!(body.contains("another site"), "{body}");
    }
    assert_eq!(app.count("select count(*) from admin_sessions").await, 0);
    // The login page asks browsers to name our origin when it posts.
    let page = app.get("/admin/login").await;
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    // Our own login page posts with our origin, and that works.
    let origin = app.address.clone();
    let response = app
        .client
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", origin)
        .header("sec-fetch-site", "same-origin")
        .body(login_body(EDITOR, PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}

async fn a_login_with_every_check_slot_busy_is_turned_away_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.http.login_concurrency = 1).await;
    app.add_editor(EDITOR, PASSWORD).await;
    let held = app
        .app
        .state
        .password_checks
        .try_slot()
        .expect("the only slot");
    for _ in 0..10 {
        let response = app
            .post_form("/admin/login", &login_body(EDITOR, PASSWORD))
            .await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
    }
    drop(held);
    // The refused logins were not counted against the editor.
    let response = app
        .post_form("/admin/login", &login_body(EDITOR, PASSWORD))
        .await;
    assert_eq!(response.status(), 303);
}
