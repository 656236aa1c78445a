//! The public archive shows sent reports only.

use crate::helpers::{spawn_app, Backend};

crate::on_both_backends!(only_sent_reports_are_published);

async fn only_sent_reports_are_published(backend: Backend) {
    let app = spawn_app(backend).await;
    let example = include_str!("../../reports/example.md");
    let sent = app.create_report(example).await;
    app.create_report(&crate::sending::report_source("still-a-draft"))
        .await;
    assert_eq!(
        app.get("/archive/industrial-blockchain-weekly-2020-11")
            .await
            .status(),
        404
    );
    app.trigger_send(sent, "k").await;

    let index = app.get("/archive").await;
    assert_eq!(index.status(), 200);
    let index = index.text().await.unwrap();
    assert!(index.contains("/archive/industrial-blockchain-weekly-2020-11"));
    assert!(!index.contains("still-a-draft"), "drafts stay private");
    assert_eq!(app.get("/archive/still-a-draft").await.status(), 404);
    assert_eq!(app.get("/archive/no-such-report").await.status(), 404);

    let page = app
        .get("/archive/industrial-blockchain-weekly-2020-11")
        .await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    for expected in [
        "Industrial Blockchain Weekly",
        "Discover more",
        "Comment:",
        "6–12 March 2020",
        "Wang Qiao",
    ] {
        assert!(page.contains(expected), "{expected}");
    }
}

crate::on_both_backends!(the_archive_is_an_atom_feed);

/// Read back with another crate's Atom parser than the one that wrote it.
async fn the_archive_is_an_atom_feed(backend: Backend) {
    let app = spawn_app(backend).await;
    let empty = app.get("/archive/feed.xml").await;
    assert_eq!(empty.status(), 200);
    let empty = feed_rs::parser::parse(empty.bytes().await.unwrap().as_ref()).unwrap();
    assert!(empty.entries.is_empty());

    let sent = app
        .create_report(include_str!("../../reports/example.md"))
        .await;
    app.create_report(&crate::sending::report_source("still-a-draft"))
        .await;
    app.trigger_send(sent, "k").await;

    let response = app.get("/archive/feed.xml").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/atom+xml"));
    let feed = feed_rs::parser::parse(response.bytes().await.unwrap().as_ref()).unwrap();
    assert_eq!(feed.feed_type, feed_rs::model::FeedType::Atom);
    assert_eq!(feed.entries.len(), 1, "drafts stay out of the feed");
    let entry = &feed.entries[0];
    let page = app.url("/archive/industrial-blockchain-weekly-2020-11");
    assert_eq!(entry.links[0].href, page);
    assert!(entry
        .title
        .as_ref()
        .unwrap()
        .content
        .starts_with("Industrial Blockchain Weekly"));
    assert_eq!(entry.authors[0].name.as_deref(), Some("Wang Qiao"));
    // RFC 4287 §4.1.1: a feed whose entries may lack an author names one.
    assert_eq!(feed.authors[0].name.as_deref(), Some("The Weekly Report"));
    let content = entry.content.as_ref().unwrap().body.as_deref().unwrap();
    assert!(
        content.contains("first eight virtual banks begin trials"),
        "{content}"
    );
    assert!(feed
        .links
        .iter()
        .any(|l| l.rel.as_deref() == Some("self") && l.href == app.url("/archive/feed.xml")));

    // Feed readers find it from the archive pages.
    for path in ["/archive", "/archive/industrial-blockchain-weekly-2020-11"] {
        let html = app.get(path).await.text().await.unwrap();
        assert!(
            html.contains(r#"<link rel="alternate" type="application/atom+xml""#),
            "{path}"
        );
        assert!(html.contains(r#"href="/archive/feed.xml""#), "{path}");
    }
}
