//! Outgoing webhooks over real HTTP: a receiving server on a random port
//! records every request, checks each signature with an HMAC of its own,
//! and answers as the test tells it (failing, refusing, or not there).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use newsletter::config::{Settings, WebhookEndpoint};
use newsletter::domain::WebhookState;
use newsletter::events::{EventKind, WebhookSender};
use serde_json::Value;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::bounces::{envelope_sender_to, ingest, sample, send_report_to, BOUNCE_ADDRESS};
use crate::helpers::{confirmation_link, spawn_app, spawn_app_with, token_in, Backend, TestApp};
use crate::on_both_backends;
use crate::smtp_server::Fault;

on_both_backends!(
    reader_events_arrive_signed_with_their_facts_and_no_token,
    bounces_complaints_and_finished_sends_are_told,
    a_failing_endpoint_gets_each_event_accepted_once_after_retries,
    events_wait_for_an_endpoint_that_is_down,
    an_endpoint_gets_only_the_events_it_chose,
    several_senders_post_each_event_once,
    a_delivery_out_of_attempts_is_failed_and_listed_by_the_command,
    events_no_endpoint_wants_are_not_written,
);

const SECRET: &str = "test-secret-0123456789abcdefghijklmnop";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: String,
    /// What the receiver answered.
    answered: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap().to_string()
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("a {name} header"))
            .to_str()
            .unwrap()
            .to_string()
    }
}

/// A receiving endpoint: records requests, answers from a script (200 once
/// the script is used up).
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (receiver, stop) = Receiver::serve(listener);
        (receiver, address, stop)
    }

    fn serve(listener: tokio::net::TcpListener) -> (Receiver, CancellationToken) {
        let receiver = Receiver::default();
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let answered = state.script.lock().unwrap().pop_front().unwrap_or(200);
                    state.hits.lock().unwrap().push(Hit {
                        headers,
                        body,
                        answered,
                    });
                    StatusCode::from_u16(answered).unwrap()
                }
            }),
        );
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await
                .unwrap();
        });
        (receiver, stop)
    }

    fn answer(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    fn accepted(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| (200..300).contains(&h.answered))
            .collect()
    }

    fn accepted_kinds(&self) -> Vec<String> {
        self.accepted().iter().map(Hit::kind).collect()
    }
}

fn endpoint(name: &str, address: SocketAddr, events: Option<Vec<EventKind>>) -> WebhookEndpoint {
    WebhookEndpoint {
        name: name.into(),
        url: format!("http://{address}/hooks").parse().unwrap(),
        secret: SECRET.to_string().into(),
        events,
        allow_http: false,
    }
}

fn with_endpoints(settings: &mut Settings, endpoints: Vec<WebhookEndpoint>) {
    settings.webhooks.endpoints = endpoints;
    settings.webhooks.retry_base_secs = 0.0;
    settings.webhooks.retry_max_secs = 0.0;
    settings.webhooks.timeout_secs = 5;
}

fn sender(app: &TestApp) -> WebhookSender {
    app.app.webhook_sender().expect("webhook sender")
}

async fn deliver(app: &TestApp) {
    sender(app).deliver_all_pending().await.expect("deliver");
}

/// Whether `header` (`t=…,v1=…`) signs `body` under `secret`: checked with
/// an HMAC computed here, not with the service's code.
fn signed(secret: &str, header: &str, body: &str) -> bool {
    let mut timestamp = None;
    let mut given = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = Some(t.to_string()),
            Some(("v1", v)) => given = Some(v.to_string()),
            _ => {}
        }
    }
    let (Some(timestamp), Some(given)) = (timestamp, given) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    given == expected
}

fn assert_signed(hit: &Hit) {
    let signature = hit.header("newsletter-signature");
    assert!(signed(SECRET, &signature, &hit.body), "{signature}");
    let timestamp: i64 = signature
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 600);
    let body = hit.json();
    assert_eq!(
        hit.header("newsletter-event-id"),
        body["id"].as_str().unwrap()
    );
    assert_eq!(
        hit.header("newsletter-event-type"),
        body["type"].as_str().unwrap()
    );
    assert_eq!(hit.header("content-type"), "application/json");
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).is_ok(),
        "{body}"
    );
}

/// The reader's public id: the one the API and events name them by.
async fn subscriber_id(app: &TestApp, email: &str) -> String {
    let row: i64 = sqlx::query_scalar("select id from subscribers where email = $1")
        .bind(email)
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    let public = app.store().reader_public_id(row).await.unwrap().unwrap();
    public.to_string()
}

async fn reader_events_arrive_signed_with_their_facts_and_no_token(backend: Backend) {
    let (receiver, address, _stop) = Receiver::start().await;
    let app = spawn_app_with(backend, |s| {
        with_endpoints(s, vec![endpoint("crm", address, None)])
    })
    .await;

    let mail = app.sign_up("ann@example.org").await;
    let token = token_in(&confirmation_link(&mail));
    deliver(&app).await;
    assert_eq!(receiver.accepted_kinds(), ["subscriber.created"]);

    let response = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(response.status(), 200);
    let public_id = subscriber_id(&app, "ann@example.org").await;
    // Unsubscribing twice: the second changes nothing, and tells nobody.
    for _ in 0..2 {
        let response = app
            .api(
                reqwest::Method::POST,
                &format!("/api/subscribers/{public_id}/unsubscribe"),
            )
            .await
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    deliver(&app).await;

    let hits = receiver.accepted();
    let kinds: Vec<String> = hits.iter().map(Hit::kind).collect();
    assert_eq!(
        kinds,
        [
            "subscriber.created",
            "subscriber.confirmed",
            "subscriber.unsubscribed"
        ]
    );
    let statuses = ["pending", "confirmed", "unsubscribed"];
    for (hit, status) in hits.iter().zip(statuses) {
        assert_signed(hit);
        let reader = &hit.json()["data"]["subscriber"];
        assert_eq!(reader["email"], "ann@example.org", "{}", hit.body);
        assert_eq!(reader["id"], public_id);
        assert_eq!(reader["status"], status, "{}", hit.body);
        assert!(!hit.body.contains(&token), "no token in {}", hit.body);
        // An altered body, or another secret, does not verify.
        let altered = hit.body.replace("ann@example.org", "eve@example.org");
        assert!(!signed(
            SECRET,
            &hit.header("newsletter-signature"),
            &altered
        ));
        assert!(!signed(
            "another-secret-0123456789abcdefghijkl",
            &hit.header("newsletter-signature"),
            &hit.body
        ));
    }
    let ids: std::collections::HashSet<String> = hits
        .iter()
        .map(|h| h.header("newsletter-event-id"))
        .collect();
    assert_eq!(ids.len(), 3, "every event has an id of its own");
    assert_eq!(receiver.hits().len(), 3, "nothing was posted twice");

    // A reader added through the API with their consent is created and
    // confirmed at once: both are told.
    let response = app
        .api(reqwest::Method::POST, "/api/subscribers")
        .await
        .json(&serde_json::json!({
            "email": "cat@example.org",
            "consent": {"at": "2026-11-02T09:30:00Z", "source": "shop checkout"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    deliver(&app).await;
    let added: Vec<(String, Value)> = receiver.accepted()[3..]
        .iter()
        .map(|h| (h.kind(), h.json()["data"]["subscriber"].clone()))
        .collect();
    assert_eq!(added.len(), 2, "{added:?}");
    assert_eq!(added[0].0, "subscriber.created");
    assert_eq!(added[1].0, "subscriber.confirmed");
    for (_, reader) in &added {
        assert_eq!(reader["email"], "cat@example.org");
        assert_eq!(reader["status"], "confirmed");
    }
}

async fn bounces_complaints_and_finished_sends_are_told(backend: Backend) {
    let (receiver, address, _stop) = Receiver::start().await;
    let app = spawn_app_with(backend, |s| {
        s.delivery.concurrency = 1;
        s.mail.bounce_address = Some(BOUNCE_ADDRESS.into());
        with_endpoints(s, vec![endpoint("crm", address, None)]);
    })
    .await;
    let readers = [
        "nobody@example.org",
        "angry@example.org",
        "fine@example.org",
    ];
    for reader in readers {
        app.confirmed_reader(reader).await;
    }
    // Deliveries go out in id order: the relay refuses the first reader.
    app.smtp
        .push_fault(Fault::RcptReply(550, "5.1.1 no such user"));
    let report_row = send_report_to(&app, &readers, "told-week").await;
    let report: String = sqlx::query_scalar("select public_id from reports where id = $1")
        .bind(report_row)
        .fetch_one(app.store().pool())
        .await
        .unwrap();

    // A complaint comes back by mail, fed through the command an MTA runs:
    // the event is written by that process and posted by the worker.
    let verp = envelope_sender_to(&app, "angry@example.org", "");
    let out = ingest(
        &app,
        &sample("yahoo-arf-complaint.eml", &verp, "angry@example.org"),
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    deliver(&app).await;

    let hits = receiver.accepted();
    for hit in &hits {
        assert_signed(hit);
    }
    let of = |kind: &str| -> Vec<Value> {
        hits.iter()
            .filter(|h| h.kind() == kind)
            .map(|h| h.json()["data"].clone())
            .collect()
    };
    let bounced = of("subscriber.bounced");
    assert_eq!(bounced.len(), 1, "{bounced:?}");
    assert_eq!(bounced[0]["email"], "nobody@example.org");
    assert_eq!(bounced[0]["subscriber"]["email"], "nobody@example.org");
    assert_eq!(bounced[0]["source"], "smtp");
    assert_eq!(bounced[0]["report_id"], report);
    assert!(bounced[0]["detail"].as_str().unwrap().contains("5.1.1"));

    let complained = of("subscriber.complained");
    assert_eq!(complained.len(), 1, "{complained:?}");
    assert_eq!(complained[0]["email"], "angry@example.org");
    assert_eq!(complained[0]["report_id"], report);

    let finished = of("send.finished");
    assert_eq!(finished.len(), 1, "{finished:?}");
    let send = &finished[0]["send"];
    assert_eq!(finished[0]["report"]["id"], report);
    assert_eq!(finished[0]["report"]["slug"], "told-week");
    assert_eq!(finished[0]["report"]["title"], "Weekly Report told-week");
    assert_eq!(send["total"], 3, "{send}");
    assert_eq!(send["delivered"], 2, "{send}");
    assert_eq!(send["failed"], 1, "{send}");
    assert_eq!(send["skipped"], 0, "{send}");
    assert!(chrono::DateTime::parse_from_rfc3339(send["finished_at"].as_str().unwrap()).is_ok());
}

async fn a_failing_endpoint_gets_each_event_accepted_once_after_retries(backend: Backend) {
    let (receiver, address, _stop) = Receiver::start().await;
    let app = spawn_app_with(backend, |s| {
        with_endpoints(s, vec![endpoint("crm", address, None)])
    })
    .await;
    receiver.answer(&[500, 503]);
    app.sign_up("ann@example.org").await;
    app.sign_up("bob@example.org").await;
    deliver(&app).await;

    // Ann's event is retried until accepted; Bob's waits behind it (not
    // posted to an endpoint that is failing) and then follows, in order.
    let hits = receiver.hits();
    let seen: Vec<(String, u16)> = hits
        .iter()
        .map(|h| {
            let email = h.json()["data"]["subscriber"]["email"]
                .as_str()
                .unwrap()
                .to_string();
            (email, h.answered)
        })
        .collect();
    let expected = [
        ("ann@example.org", 500),
        ("ann@example.org", 503),
        ("ann@example.org", 200),
        ("bob@example.org", 200),
    ]
    .map(|(e, s)| (e.to_string(), s));
    assert_eq!(seen, expected);
    // The same event each time, byte for byte, freshly signed.
    for hit in &hits[..3] {
        assert_signed(hit);
        assert_eq!(hit.body, hits[0].body);
        assert_eq!(
            hit.header("newsletter-event-id"),
            hits[0].header("newsletter-event-id")
        );
    }
    assert_eq!(receiver.accepted().len(), 2);
    let listed = app.store().webhook_deliveries(None, 10).await.unwrap();
    let attempts: Vec<(WebhookState, i64, Option<i64>)> = listed
        .iter()
        .map(|d| (d.status, d.attempts, d.response_status))
        .collect();
    assert_eq!(
        attempts,
        [
            (WebhookState::Delivered, 1, Some(200)),
            (WebhookState::Delivered, 3, Some(200))
        ],
        "newest first; a delivery handed back untried used no attempt"
    );
    // Nothing left to post.
    deliver(&app).await;
    assert_eq!(receiver.hits().len(), 4);
}

async fn events_wait_for_an_endpoint_that_is_down(backend: Backend) {
    // A port bound but not listening: connections are refused, and no
    // other test or outgoing connection can take the port meanwhile.
    let parked = tokio::net::TcpSocket::new_v4().unwrap();
    parked.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = parked.local_addr().unwrap();
    let app = spawn_app_with(backend, |s| {
        with_endpoints(s, vec![endpoint("crm", address, None)]);
        s.webhooks.retry_base_secs = 3600.0;
        s.webhooks.retry_max_secs = 7200.0;
    })
    .await;
    app.sign_up("ann@example.org").await;
    app.sign_up("bob@example.org").await;
    deliver(&app).await;

    let waiting = app.store().webhook_deliveries(None, 10).await.unwrap();
    assert_eq!(waiting.len(), 2);
    for delivery in &waiting {
        assert_eq!(delivery.status, WebhookState::Queued);
        assert_eq!(delivery.attempts, 1);
        assert!(delivery.last_error.is_some());
        assert!(delivery.next_attempt_at > newsletter::store::now_ms() + 1_000_000);
        assert!(
            !delivery
                .last_error
                .as_deref()
                .unwrap()
                .contains("127.0.0.1"),
            "{:?}",
            delivery.last_error
        );
    }

    // The endpoint comes up; the events wait for their time (an hour), or
    // for the operator to send them now.
    let listener = parked.listen(64).unwrap();
    let (receiver, _stop) = Receiver::serve(listener);
    deliver(&app).await;
    assert!(receiver.hits().is_empty());
    assert_eq!(
        app.store()
            .retry_webhooks_now(newsletter::store::now_ms())
            .await
            .unwrap(),
        2
    );
    deliver(&app).await;
    let mut emails: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|h| {
            h.json()["data"]["subscriber"]["email"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    emails.sort();
    assert_eq!(emails, ["ann@example.org", "bob@example.org"]);
}

async fn an_endpoint_gets_only_the_events_it_chose(backend: Backend) {
    let (chosen, chosen_address, _stop1) = Receiver::start().await;
    let (everything, everything_address, _stop2) = Receiver::start().await;
    let app = spawn_app_with(backend, |s| {
        with_endpoints(
            s,
            vec![
                endpoint(
                    "confirmations",
                    chosen_address,
                    Some(vec![EventKind::SubscriberConfirmed]),
                ),
                endpoint("everything", everything_address, None),
            ],
        )
    })
    .await;
    // The endpoint that wants everything refuses the first post for good.
    everything.answer(&[410]);
    app.confirmed_reader("ann@example.org").await;
    deliver(&app).await;

    assert_eq!(chosen.accepted_kinds(), ["subscriber.confirmed"]);
    assert_eq!(chosen.hits().len(), 1);
    let answered: Vec<(String, u16)> = everything
        .hits()
        .iter()
        .map(|h| (h.kind(), h.answered))
        .collect();
    assert_eq!(
        answered,
        [
            ("subscriber.created".to_string(), 410),
            ("subscriber.confirmed".to_string(), 200)
        ],
        "a refusal is not retried"
    );
    let failed = app
        .store()
        .webhook_deliveries(Some(WebhookState::Failed), 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].endpoint, "everything");
    assert_eq!(failed[0].response_status, Some(410));
}

/// Routing would drop an event that no endpoint wants, so it is not written
/// in the first place: with no webhooks, a sign-up writes no event at all.
async fn events_no_endpoint_wants_are_not_written(backend: Backend) {
    const EVENTS: &str = "select count(*) from webhook_events";
    let plain = spawn_app(backend).await;
    plain.confirmed_reader("ann@example.org").await;
    assert_eq!(plain.count(EVENTS).await, 0, "no endpoint, no event");
    // Nor a reader the relay refuses, a send that finishes, or one who
    // leaves. The report goes to its readers in order: ann is refused.
    plain.confirmed_reader("dee@example.org").await;
    plain
        .smtp
        .push_fault(Fault::RcptReply(550, "5.1.1 no such user"));
    send_report_to(
        &plain,
        &["ann@example.org", "dee@example.org"],
        "quiet-week",
    )
    .await;
    assert_eq!(
        plain.count("select count(*) from suppressions").await,
        1,
        "the refused address is suppressed"
    );
    assert_eq!(
        plain
            .count("select count(*) from sends where state = 'done'")
            .await,
        1,
        "the send finished"
    );
    let report = plain.smtp.received_for("dee@example.org").pop().unwrap();
    let response = plain.unsubscribe_through(&report).await;
    assert!(response.status().is_success());
    assert_eq!(
        plain.status_of("dee@example.org").await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(plain.count(EVENTS).await, 0, "nobody wants those either");

    let (chosen, address, _stop) = Receiver::start().await;
    let app = spawn_app_with(backend, |s| {
        with_endpoints(
            s,
            vec![endpoint(
                "confirmations",
                address,
                Some(vec![EventKind::SubscriberConfirmed]),
            )],
        )
    })
    .await;
    app.sign_up("bob@example.org").await;
    assert_eq!(
        app.count(EVENTS).await,
        0,
        "nobody wants subscriber.created"
    );
    app.confirmed_reader("cy@example.org").await;
    assert_eq!(app.count(EVENTS).await, 1, "subscriber.confirmed is wanted");
    deliver(&app).await;
    assert_eq!(chosen.accepted_kinds(), ["subscriber.confirmed"]);
}

async fn several_senders_post_each_event_once(backend: Backend) {
    let (receiver, address, _stop) = Receiver::start().await;
    let app = spawn_app_with(backend, |s| {
        with_endpoints(s, vec![endpoint("crm", address, None)]);
        s.webhooks.concurrency = 4;
        s.subscription.signups_per_ip_per_hour = 1000;
    })
    .await;
    let readers = 60;
    for n in 0..readers {
        let response = app
            .post_form("/subscriptions", &format!("email=reader{n}%40example.org"))
            .await;
        assert_eq!(response.status(), 200);
    }
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let sender = sender(&app);
            tokio::spawn(async move { sender.deliver_all_pending().await.unwrap() })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    deliver(&app).await;
    let hits = receiver.hits();
    let ids: std::collections::HashSet<String> = hits
        .iter()
        .map(|h| h.header("newsletter-event-id"))
        .collect();
    assert_eq!(ids.len(), readers, "every sign-up was told");
    assert_eq!(hits.len(), readers, "and none twice");
}

async fn a_delivery_out_of_attempts_is_failed_and_listed_by_the_command(backend: Backend) {
    let (receiver, address, _stop) = Receiver::start().await;
    let app = spawn_app_with(backend, |s| {
        with_endpoints(s, vec![endpoint("crm", address, None)]);
        s.webhooks.max_attempts = 3;
    })
    .await;
    receiver.answer(&[500, 500, 500, 500]);
    app.sign_up("ann@example.org").await;
    deliver(&app).await;
    assert_eq!(receiver.hits().len(), 3, "three attempts, then it stops");

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_newsletter"))
            .args(args)
            .env(
                "NEWSLETTER_DATABASE_URL",
                &app.app.state.settings.database_url,
            )
            .env("NEWSLETTER_LOG__FILTER", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = run(&["webhooks", "list", "--status", "failed"]);
    assert!(listed.contains("subscriber.created"), "{listed}");
    assert!(listed.contains("crm"), "{listed}");
    assert!(listed.contains("failed"), "{listed}");
    assert!(listed.contains("500"), "{listed}");

    // Once the endpoint works again, the operator sends what failed.
    let retried = run(&["webhooks", "retry"]);
    assert!(retried.starts_with('1'), "{retried}");
    deliver(&app).await;
    assert_eq!(receiver.accepted_kinds(), ["subscriber.created"]);
    assert!(run(&["webhooks", "list", "--status", "failed"])
        .lines()
        .all(|l| !l.contains("subscriber.created")));
}

#[test]
fn config_check_lists_the_endpoints_but_never_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("newsletter.toml");
    std::fs::write(
        &settings,
        format!(
            "database_url = \"sqlite://{}/news.db\"\n\n\
             [[webhooks.endpoints]]\nname = \"crm\"\n\
             url = \"https://hook:url-password@crm.example.com/hooks\"\n\
             secret = \"{SECRET}\"\nevents = [\"subscriber.confirmed\", \"send.finished\"]\n\n\
             [[webhooks.endpoints]]\nname = \"chat\"\nurl = \"http://127.0.0.1:9/chat\"\n\
             secret = \"{SECRET}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(["--config", settings.to_str().unwrap(), "config", "check"])
        .env("NEWSLETTER_LOG__FILTER", "warn")
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("webhooks: 2 endpoints"), "{printed}");
    assert!(
        printed.contains(
            "crm  https://hook:***@crm.example.com/hooks  subscriber.confirmed, send.finished"
        ),
        "{printed}"
    );
    assert!(
        printed.contains("chat  http://127.0.0.1:9/chat  every event"),
        "{printed}"
    );
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(!printed.contains("url-password"), "{printed}");

    // A secret too short stops the service before it starts, saying which.
    std::fs::write(
        &settings,
        "[[webhooks.endpoints]]\nname = \"crm\"\nurl = \"https://crm.example.com/\"\nsecret = \"short\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(["--config", settings.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("webhooks.endpoints") && stderr.contains("crm") && stderr.contains("32"),
        "{stderr}"
    );
}
