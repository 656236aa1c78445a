//! Links name readers and reports by random public ids, never by row ids:
//! two people who sign up one after the other cannot tell from their mail,
//! the archive or the feed how many readers or reports there are. Links in
//! mail sent before public ids keep working; altered links are refused.

use reqwest::Url;
use serde_json::json;
use uuid::Uuid;

use crate::bounces::{app_with_bounces, envelope_sender_to, ingest, sample, send_report_to};
use crate::helpers::{
    confirmation_link, drop_test_database, fresh_database, migrate_before, token_in, Backend,
    TestApp,
};
use crate::smtp_server::Received;

crate::on_both_backends!(
    two_readers_in_a_row_learn_nothing_of_the_list_size,
    links_of_mail_sent_before_public_ids_still_work,
    altered_links_are_refused_with_a_clear_4xx,
    readers_and_reports_of_before_get_public_ids_on_upgrade,
);

/// Every link into the app that `mail` carries: in the text part, in the
/// HTML part and in the `List-Unsubscribe` header.
fn links_in(app: &TestApp, mail: &Received) -> Vec<Url> {
    let mut links = mail.links_starting_with(&app.address);
    let html = mail.html();
    for (start, _) in html.match_indices("href=\"") {
        let rest = &html[start + "href=\"".len()..];
        let href = &rest[..rest.find('"').unwrap()];
        links.push(href.replace("&amp;", "&"));
    }
    if let Some(header) = mail.header("List-Unsubscribe") {
        links.extend(
            header
                .split(',')
                .map(|l| l.trim().trim_start_matches('<').trim_end_matches('>'))
                .map(str::to_string),
        );
    }
    links
        .into_iter()
        .filter(|l| l.starts_with(&app.address))
        .map(|l| Url::parse(&l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A random (version 4) UUID, as every id in a link must be.
fn opaque(id: &str, context: &str) -> Uuid {
    assert!(id.parse::<i64>().is_err(), "{context}: {id} is a number");
    let parsed = Uuid::try_parse(id).unwrap_or_else(|_| panic!("{context}: {id:?} is no UUID"));
    assert_eq!(parsed.get_version_num(), 4, "{context}: {id}");
    parsed
}

/// The ids in a signed token: every part but the signature, each checked
/// to be opaque.
fn ids_in(token: &str, context: &str) -> Vec<Uuid> {
    let (ids, signature) = token.rsplit_once('.').unwrap();
    assert_eq!(signature.len(), 43, "{context}: {token}");
    ids.split('.').map(|id| opaque(id, context)).collect()
}

/// Two ids of consecutive rows are no neighbours: not as integers (they
/// are none), and not as 128-bit numbers either.
fn far_apart(a: &Uuid, b: &Uuid, what: &str) {
    assert_ne!(a, b, "{what}");
    assert!(
        a.as_u128().abs_diff(b.as_u128()) > 1 << 64,
        "{what}: {a} and {b} are close"
    );
}

/// What one reader's mail names them and the reports by.
#[derive(Default, Debug)]
struct SeenIds {
    reader: Vec<Uuid>,
    reports: Vec<Uuid>,
}

/// Checks every link of `mail` and collects the ids it names. No path
/// segment and no query value may be a number; tokens carry UUIDs only;
/// the "view in browser" link is the report's slug.
fn check_links(app: &TestApp, mail: &Received, seen: &mut SeenIds) {
    let links = links_in(app, mail);
    assert!(!links.is_empty(), "{}", mail.text());
    for link in links {
        for segment in link.path_segments().into_iter().flatten() {
            assert!(
                segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()),
                "{link}"
            );
        }
        let token = link
            .query_pairs()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        for (_, value) in link.query_pairs() {
            assert!(value.parse::<i64>().is_err(), "{link}");
        }
        match (link.path(), token) {
            ("/subscriptions/confirm", Some(token)) => {
                // The time it was issued, then a MAC: nothing counts.
                let (issued, mac) = token.split_once('.').expect("the time, then the MAC");
                let issued = i64::from_str_radix(issued, 16).unwrap();
                let now = chrono::Utc::now().timestamp_millis();
                assert!((now - 3_600_000..=now).contains(&issued), "{link}");
                assert_eq!(mac.len(), 43, "{link}");
            }
            ("/unsubscribe", Some(token)) => {
                seen.reader.extend(ids_in(&token, link.as_str()));
            }
            ("/feedback", Some(token)) => {
                let ids = ids_in(&token, link.as_str());
                assert_eq!(ids.len(), 2, "{link}");
                seen.reports.push(ids[0]);
                seen.reader.push(ids[1]);
            }
            (path, None) if path.starts_with("/archive/") => {
                assert!(path.starts_with("/archive/opaque-week"), "{link}");
            }
            (path, None) => assert!(path == "/" || path == "/archive", "{link}"),
            (_, Some(_)) => panic!("an unexpected link with a token: {link}"),
        }
    }
}

/// A confirmation link's token, posted as the confirmation page does.
async fn confirm(app: &TestApp, mail: &Received) {
    let token = token_in(&confirmation_link(mail));
    let response = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(response.status(), 200);
}

async fn two_readers_in_a_row_learn_nothing_of_the_list_size(backend: Backend) {
    let app = app_with_bounces(backend).await;

    // One signs up through the form, the next a moment later by script;
    // the script's answer names nobody.
    let ana_confirmation = app.sign_up("ana@example.org").await;
    let response = app
        .post_json("/subscriptions", &json!({ "email": "bo@example.org" }))
        .await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["message", "status"], "{answer}");
    app.dispatch_all_pending().await;
    let bo_confirmation = app.mail_to("bo@example.org", "Please confirm");

    let (mut ana, mut bo) = (SeenIds::default(), SeenIds::default());
    check_links(&app, &ana_confirmation, &mut ana);
    check_links(&app, &bo_confirmation, &mut bo);
    confirm(&app, &ana_confirmation).await;
    confirm(&app, &bo_confirmation).await;

    // Two reports in a row, to both.
    let readers = ["ana@example.org", "bo@example.org"];
    send_report_to(&app, &readers, "opaque-week").await;
    send_report_to(&app, &readers, "opaque-week-two").await;
    let mut senders = Vec::new();
    for (reader, seen) in [("ana@example.org", &mut ana), ("bo@example.org", &mut bo)] {
        let mails: Vec<Received> = app
            .smtp
            .received_for(reader)
            .into_iter()
            .filter(|m| m.subject().starts_with("Weekly Report"))
            .collect();
        assert_eq!(mails.len(), 2, "{reader}");
        for mail in &mails {
            check_links(&app, mail, seen);
            senders.push(mail.mail_from.clone());
        }
    }

    // Each reader is named by one id throughout, the two far apart.
    for seen in [&ana, &bo] {
        // Each mail's unsubscribe link in the text, the HTML and the
        // header; each report's two feedback links in the text and HTML.
        assert_eq!(seen.reader.len(), 3 + 2 * (3 + 2 * 2), "{seen:?}");
        assert!(
            seen.reader.iter().all(|id| *id == seen.reader[0]),
            "{seen:?}"
        );
    }
    far_apart(&ana.reader[0], &bo.reader[0], "the two readers");
    // Both see the same id for a report, and the two reports' are far apart.
    assert_eq!(ana.reports, bo.reports);
    let first = ana.reports[0];
    let second = *ana.reports.iter().find(|id| **id != first).unwrap();
    far_apart(&first, &second, "the two reports");

    // The envelope senders (the Return-Path a reader can read) carry the
    // delivery enciphered: 40 hex digits, unrelated from one to the next.
    let mut sealed = Vec::new();
    for sender in &senders {
        let token = sender
            .strip_prefix("bounces+")
            .and_then(|s| s.strip_suffix("@bounce.example.com"))
            .unwrap_or_else(|| panic!("{sender}"));
        assert_eq!(token.len(), 40, "{sender}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{sender}");
        sealed.push(u64::from_str_radix(&token[..16], 16).unwrap());
    }
    for (i, a) in sealed.iter().enumerate() {
        for b in &sealed[i + 1..] {
            assert!(a.abs_diff(*b) > 1 << 32, "{senders:?}");
        }
    }

    // The archive and the feed name reports by their slugs.
    let index = app.page_text("/archive").await;
    for (start, _) in index.match_indices("href=\"") {
        let href = &index[start + 6..];
        let href = &href[..href.find('"').unwrap()];
        assert!(!href.split('/').any(|s| s.parse::<i64>().is_ok()), "{href}");
    }
    let feed: atom_syndication::Feed = app.page_text("/archive/feed.xml").await.parse().unwrap();
    assert_eq!(feed.entries().len(), 2);
    for entry in feed.entries() {
        let slug = entry.id().rsplit('/').next().unwrap();
        assert!(slug.starts_with("opaque-week"), "{}", entry.id());
        assert_eq!(entry.id(), app.url(&format!("/archive/{slug}")));
        for link in entry.links() {
            assert_eq!(link.href(), entry.id());
        }
    }
}

/// The token parameter of a link, up to the next parameter.
fn token_of(link: &str) -> String {
    token_in(link).split('&').next().unwrap().to_string()
}

/// The row id of the reader with `email`.
async fn row_id(app: &TestApp, email: &str) -> i64 {
    app.count(&format!(
        "select id from subscribers where email = '{email}'"
    ))
    .await
}

async fn links_of_mail_sent_before_public_ids_still_work(backend: Backend) {
    let app = app_with_bounces(backend).await;
    let readers = ["old@example.org", "older@example.org"];
    let report = send_report_to(&app, &readers, "opaque-week").await;
    let signer = &app.app.state.signer;
    let old = row_id(&app, "old@example.org").await;

    // Links as mail carried them before: the row ids, signed the same way.
    let feedback = signer.sign("feedback", &format!("{report}.{old}"));
    let response = app
        .get(&format!("/feedback?token={feedback}&answer=no"))
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .post_form("/feedback", &format!("token={feedback}&answer=no"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.count(&format!(
            "select count(*) from votes where subscriber_id = {old} and report_id = {report} and helpful = 0"
        ))
        .await,
        1
    );

    let unsubscribe = signer.sign_id("unsubscribe", old);
    let link = format!("/unsubscribe?token={unsubscribe}");
    assert_eq!(app.get(&link).await.status(), 200);
    let response = app.post_form(&link, "List-Unsubscribe=One-Click").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.status_of("old@example.org").await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        app.status_of("older@example.org").await.as_deref(),
        Some("confirmed")
    );

    // A bounce of such mail comes back to the envelope sender of the time,
    // `<outbox row>-<signature>`, and still finds its delivery.
    let older = row_id(&app, "older@example.org").await;
    let delivery = app
        .count(&format!(
            "select id from outbox where subscriber_id = {older} and report_id = {report}"
        ))
        .await;
    let mac = signer.mac_bytes("verp", &[delivery.to_string().as_bytes()]);
    let signature: String = mac[..12].iter().map(|b| format!("{b:02x}")).collect();
    let verp = format!("bounces+{delivery}-{signature}@bounce.example.com");
    let out = ingest(
        &app,
        &sample("gmail-no-such-user.eml", &verp, "older@example.org"),
        &[],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.trim(), "hard older@example.org, suppressed", "{out:?}");
}

async fn altered_links_are_refused_with_a_clear_4xx(backend: Backend) {
    let app = app_with_bounces(backend).await;
    let readers = ["eve@example.org", "victim@example.org"];
    let report = send_report_to(&app, &readers, "opaque-week").await;
    let eve_mail = app.mail_to("eve@example.org", "Weekly Report");
    let victim_mail = app.mail_to("victim@example.org", "Weekly Report");
    let unsubscribe_of =
        |mail: &Received| token_of(&mail.link_starting_with(&app.url("/unsubscribe")).unwrap());
    let eve = unsubscribe_of(&eve_mail);
    let victim = unsubscribe_of(&victim_mail);
    let (eve_id, eve_signature) = eve.split_once('.').unwrap();
    let (victim_id, _) = victim.split_once('.').unwrap();
    let signer = &app.app.state.signer;
    let victim_row = row_id(&app, "victim@example.org").await;
    let eve_row = row_id(&app, "eve@example.org").await;
    let old_format = signer.sign_id("unsubscribe", eve_row);
    let old_signature = old_format.split_once('.').unwrap().1;

    let mut flipped = eve.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let forged_unsubscribes = [
        format!("{victim_id}.{eve_signature}"),
        String::from_utf8(flipped).unwrap(),
        format!("{victim_row}.{old_signature}"),
        format!("{}.{eve_signature}", eve_id.to_uppercase()),
        eve_id.to_string(),
        "garbage".to_string(),
    ];
    for token in &forged_unsubscribes {
        let link = format!("/unsubscribe?token={token}");
        let response = app.post_form(&link, "List-Unsubscribe=One-Click").await;
        assert_eq!(response.status(), 400, "{token}");
        assert!(
            response.text().await.unwrap().contains("link is damaged"),
            "{token}"
        );
        assert_eq!(app.get(&link).await.status(), 400, "{token}");
    }
    for reader in readers {
        assert_eq!(app.status_of(reader).await.as_deref(), Some("confirmed"));
    }

    let eve_feedback = token_of(
        &eve_mail
            .links_starting_with(&app.url("/feedback"))
            .into_iter()
            .next()
            .unwrap(),
    );
    let parts: Vec<&str> = eve_feedback.split('.').collect();
    let (report_id, signature) = (parts[0], parts[2]);
    let forged_votes = [
        format!("{report_id}.{victim_id}.{signature}"),
        format!("{report}.{victim_id}.{signature}"),
        format!("{report}.{victim_row}.{signature}"),
        signer.sign("feedback", &format!("{report}.{victim_id}")),
    ];
    for token in &forged_votes {
        let response = app
            .post_form("/feedback", &format!("token={token}&answer=yes"))
            .await;
        assert_eq!(response.status(), 400, "{token}");
        assert!(
            response.text().await.unwrap().contains("not valid"),
            "{token}"
        );
        let page = app
            .get(&format!("/feedback?token={token}&answer=yes"))
            .await;
        assert_eq!(page.status(), 400, "{token}");
    }
    assert_eq!(app.count("select count(*) from votes").await, 0);

    // A delivery's envelope sender with another's enciphered id is refused.
    let forged = crate::bounces::token_moved(
        &envelope_sender_to(&app, "eve@example.org", ""),
        &envelope_sender_to(&app, "victim@example.org", ""),
    );
    let out = ingest(
        &app,
        &sample("gmail-no-such-user.eml", &forged, "victim@example.org"),
        &[],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("refused"),
        "{out:?}"
    );
    assert_eq!(app.count("select count(*) from suppressions").await, 0);
}

/// The public ids in `table`, each checked to be a random UUID, and that no
/// two are the same.
async fn public_ids_in(store: &newsletter::store::Store, table: &str) -> Vec<Uuid> {
    let ids: Vec<String> =
        sqlx::query_scalar(&format!("select public_id from {table} order by id"))
            .fetch_all(store.pool())
            .await
            .unwrap();
    let ids: Vec<Uuid> = ids.iter().map(|id| opaque(id, table)).collect();
    let distinct: std::collections::HashSet<&Uuid> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{table}: {ids:?}");
    ids
}

async fn readers_and_reports_of_before_get_public_ids_on_upgrade(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, dir.path()).await;
    let store = newsletter::store::Store::connect(&url, 2).await.unwrap();

    // The database as it was before public ids, with readers and reports.
    migrate_before(&store, backend, 18).await;
    for i in 0..50 {
        sqlx::query(
            "insert into subscribers (email, status, created_at) values ($1, 'confirmed', 0)",
        )
        .bind(format!("r{i}@example.org"))
        .execute(store.pool())
        .await
        .unwrap();
    }
    for slug in ["one", "two", "three"] {
        sqlx::query(
            "insert into reports (slug, title, source, created_at, updated_at) values ($1, $1, '', 0, 0)",
        )
        .bind(slug)
        .execute(store.pool())
        .await
        .unwrap();
    }

    store.migrate().await.unwrap();
    let readers = public_ids_in(&store, "subscribers").await;
    assert_eq!(readers.len(), 50);
    assert_eq!(public_ids_in(&store, "reports").await.len(), 3);

    // A row inserted since, by the service or a script, has one too,
    // enciphered from its row id rather than stored, and unlike the others.
    sqlx::query("insert into subscribers (email, status, created_at) values ('late@example.org', 'pending', 0)")
        .execute(store.pool())
        .await
        .unwrap();
    let late_row: i64 =
        sqlx::query_scalar("select id from subscribers where email = 'late@example.org'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let late = store.reader_public_id(late_row).await.unwrap().unwrap();
    opaque(&late.to_string(), "a reader added since");
    assert!(!readers.contains(&late), "{late}");
    // Every reader is found by the id they are named by.
    for (row, id) in [(1, readers[0]), (late_row, late)] {
        assert_eq!(store.reader_public_id(row).await.unwrap(), Some(id));
        let named = newsletter::domain::LinkedId::Public(id);
        assert_eq!(store.subscriber_id_of(&named).await.unwrap(), Some(row));
    }
    store.pool().close().await;
    drop_test_database(&url);
}
