//! The subscriber API: list with a status filter and pages, add (double
//! opt-in unless consent is given), read one, unsubscribe, erase.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend};

crate::on_both_backends!(
    readers_are_added_listed_unsubscribed_and_erased,
    bad_requests_get_json_errors_and_store_nothing,
);

async fn readers_are_added_listed_unsubscribed_and_erased(backend: Backend) {
    let app = spawn_app(backend).await;

    // Double opt-in by default: pending, and the confirmation mail goes out.
    let body = json!({ "email": "Ana@Example.com", "name": "Ana" });
    let (status, ana) = app
        .api_call(Method::POST, "/api/subscribers", Some(body))
        .await;
    assert_eq!(status, 202, "{ana}");
    assert_eq!(ana["status"], "pending");
    assert_eq!(ana["email"], "ana@example.com");
    app.dispatch_all_pending().await;
    let mail = app.smtp.received_for("ana@example.com");
    assert_eq!(mail.len(), 1, "one confirmation mail");
    assert!(mail[0].subject().starts_with("Please confirm"));

    // Pre-confirmed with the consent recorded elsewhere: no mail at all.
    let body = json!({ "email": "bo@example.com", "consent": { "at": "2026-11-02T09:30:00Z", "source": "shop checkout" } });
    let (status, bo) = app
        .api_call(Method::POST, "/api/subscribers", Some(body))
        .await;
    assert_eq!(status, 201, "{bo}");
    assert_eq!(bo["status"], "confirmed");
    app.dispatch_all_pending().await;
    assert!(app.smtp.received_for("bo@example.com").is_empty());
    assert_eq!(
        app.status_of("bo@example.com").await.as_deref(),
        Some("confirmed")
    );
    // Readers are named by their public id, never by the row id.
    let id = bo["id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id}");
    let row_id = app
        .count("select id from subscribers where email = 'bo@example.com'")
        .await;
    let public = app.store().reader_public_id(row_id).await.unwrap();
    assert_eq!(public.map(|p| p.to_string()), Some(id.clone()));
    let (status, read) = app
        .api_call(Method::GET, &format!("/api/subscribers/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(read["consent"]["source"], "shop checkout");
    assert_eq!(read["consent"]["consent_at"], 1_793_611_800_000_i64);
    assert_eq!(read["confirmed_at"], 1_793_611_800_000_i64);

    // Another system cannot put back someone already on the list.
    let body = json!({ "email": "bo@example.com", "consent": { "at": "2026-11-02T09:30:00Z", "source": "again" } });
    let (status, error) = app
        .api_call(Method::POST, "/api/subscribers", Some(body))
        .await;
    assert_eq!(status, 409);
    assert!(error["error"]
        .as_str()
        .unwrap()
        .contains("already on the list"));

    // Pages of confirmed readers, followed to the end, list each once.
    for i in 0..5 {
        let body = json!({ "email": format!("r{i}@example.com"), "consent": { "at": "2026-01-01T00:00:00+08:00", "source": "import" } });
        app.api_call(Method::POST, "/api/subscribers", Some(body))
            .await;
    }
    // Someone signs up while the pages are read: the pages that follow do
    // not shift (no reader twice, none missed).
    let mut seen = Vec::new();
    let mut next = Some("/api/subscribers?status=confirmed&limit=2".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let (status, page) = app.api_call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], if pages == 0 { 6 } else { 7 });
        let readers = page["subscribers"].as_array().unwrap();
        assert!(readers.len() <= 2);
        for reader in readers {
            assert_eq!(reader["status"], "confirmed");
            seen.push(reader["email"].as_str().unwrap().to_string());
        }
        if pages == 0 {
            let body = json!({ "email": "late@example.com", "consent": { "at": "2026-01-01T00:00:00Z", "source": "import" } });
            let (status, _) = app
                .api_call(Method::POST, "/api/subscribers", Some(body))
                .await;
            assert_eq!(status, 201);
        }
        pages += 1;
        next = page["next"].as_str().map(str::to_string);
    }
    seen.sort();
    assert_eq!(seen.len(), 6, "{seen:?}");
    seen.dedup();
    assert_eq!(seen.len(), 6, "no reader on two pages");
    assert!(!seen.iter().any(|e| e == "late@example.com"));
    // An offset still pages as before.
    let (status, page) = app
        .api_call(
            Method::GET,
            "/api/subscribers?status=confirmed&limit=2&offset=2",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["subscribers"].as_array().unwrap().len(), 2);
    let (_, pending) = app
        .api_call(Method::GET, "/api/subscribers?status=pending", None)
        .await;
    assert_eq!(pending["total"], 1);
    assert_eq!(pending["subscribers"][0]["email"], "ana@example.com");

    // Unsubscribe: stored as such, and left out of the next send.
    let (status, left) = app
        .api_call(
            Method::POST,
            &format!("/api/subscribers/{id}/unsubscribe"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(left["status"], "unsubscribed");
    assert_eq!(
        app.status_of("bo@example.com").await.as_deref(),
        Some("unsubscribed")
    );
    let report = app
        .create_report(&crate::sending::report_source("after-leaving"))
        .await;
    app.trigger_send(report, "k").await;
    app.dispatch_all_pending().await;
    assert!(app.smtp.received_for("bo@example.com").is_empty());
    assert_eq!(app.smtp.received_for("r0@example.com").len(), 1);

    // A bounce of theirs came back, quoting the address.
    sqlx::query(
        "insert into bounce_messages (source, outcome, raw, truncated, received_at) \
         values ('pipe', 'recorded', 'Final-Recipient: rfc822; bo@example.com', 0, 1)",
    )
    .execute(app.store().pool())
    .await
    .unwrap();
    sqlx::query(&format!(
        "insert into bounces (kind, source, recipient, subscriber_id, status_code, diagnostic, \
         message_id, created_at) values ('soft', 'pipe', 'bo@example.com', {row_id}, '4.2.2', \
         '452 4.2.2 <bo@example.com> mailbox full', \
         (select max(id) from bounce_messages), 1)"
    ))
    .execute(app.store().pool())
    .await
    .unwrap();

    // Erase: nothing left that names the reader.
    let (status, _) = app
        .api_call(Method::DELETE, &format!("/api/subscribers/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, gone) = app
        .api_call(Method::GET, &format!("/api/subscribers/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert!(gone["error"].is_string());
    assert_eq!(
        app.count("select count(*) from subscribers where email = 'bo@example.com'")
            .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from subscriber_consents where subscriber_id = {row_id}"
        ))
        .await,
        0
    );
    for table in [
        "select count(*) from bounces where recipient like '%bo@example.com%' \
         or diagnostic like '%bo@example.com%'",
        "select count(*) from bounce_messages where raw like '%bo@example.com%'",
        "select count(*) from outbox where recipient = 'bo@example.com'",
    ] {
        assert_eq!(app.count(table).await, 0, "{table}");
    }
    assert_eq!(
        app.count("select count(*) from bounces").await,
        1,
        "the bounce still counts"
    );
    let (status, _) = app
        .api_call(Method::DELETE, &format!("/api/subscribers/{id}"), None)
        .await;
    assert_eq!(status, 404);
}

async fn bad_requests_get_json_errors_and_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let anonymous = app
        .client
        .get(app.url("/api/subscribers"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.json::<Value>().await.unwrap()["error"].is_string());

    let bad_adds = [
        (json!({ "email": "no-at-sign" }), "no @"),
        (
            json!({ "email": "a@example.com", "consent": { "at": "yesterday", "source": "x" } }),
            "RFC 3339",
        ),
        (
            json!({ "email": "a@example.com", "consent": { "at": "2999-01-01T00:00:00Z", "source": "x" } }),
            "future",
        ),
        (
            json!({ "email": "a@example.com", "consent": { "at": "2026-01-01T00:00:00Z", "source": " " } }),
            "consent.source",
        ),
        (
            json!({ "email": "a@example.com", "consent": { "at": "2026-01-01T00:00:00Z" } }),
            "expected",
        ),
        (
            json!({ "email": "a@example.com", "confirmed": true }),
            "expected",
        ),
        (json!(["a@example.com"]), "expected"),
    ];
    for (body, expected) in bad_adds {
        let (status, error) = app
            .api_call(Method::POST, "/api/subscribers", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(
            error["error"].as_str().unwrap().contains(expected),
            "{body}: {error}"
        );
    }
    assert_eq!(app.count("select count(*) from subscribers").await, 0);
    assert_eq!(app.count("select count(*) from outbox").await, 0);

    for query in [
        "status=gone",
        "limit=0",
        "limit=100000",
        "offset=-1",
        "page=2",
    ] {
        let (status, error) = app
            .api_call(Method::GET, &format!("/api/subscribers?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}");
        assert!(error["error"].is_string(), "{query}");
    }
    // Row ids are not ids the API knows.
    let body = json!({ "email": "first@example.com", "consent": { "at": "2026-01-01T00:00:00Z", "source": "x" } });
    let (status, _) = app
        .api_call(Method::POST, "/api/subscribers", Some(body))
        .await;
    assert_eq!(status, 201);
    for id in ["not-a-number", "1", "0x1"] {
        let (status, error) = app
            .api_call(Method::GET, &format!("/api/subscribers/{id}"), None)
            .await;
        assert_eq!(status, 400, "{id}: {error}");
        assert!(error["error"]
            .as_str()
            .unwrap()
            .contains("not a subscriber id"));
    }
    let unknown = uuid::Uuid::new_v4();
    let (status, _) = app
        .api_call(Method::GET, &format!("/api/subscribers/{unknown}"), None)
        .await;
    assert_eq!(status, 404);
}
