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
