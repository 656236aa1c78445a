//! The publication's own look: brand settings shown in the mails and on
//! every public page, template overrides from `templates_dir`, and
//! `config check` pointing at a broken override's file and line.

use std::process::Command;

use crate::helpers::{spawn_app_with, Backend};

crate::on_both_backends!(
    the_brand_shows_in_every_mail_and_on_every_page,
    stylesheets_and_scripts_are_served_as_written,
);

const LOGO: &str = "https://cdn.example.org/brand/logo.png";
const ACCENT: &str = "#c2410c";
const FOOTER: &str = "Weekly Test is published by Example Media Ltd.";
const ADDRESS: &str = "12 Harbour Road, Wan Chai, Hong Kong";

async fn the_brand_shows_in_every_mail_and_on_every_page(backend: Backend) {
    let overrides = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(overrides.path().join("pages")).unwrap();
    // A team's own sign-up page, on the built-in layout.
    std::fs::write(
        overrides.path().join("pages/home.html"),
        "{% extends \"pages/base.html\" %}{% block content %}<p id=\"own\">Our own sign-up page</p>\
         <form method=\"post\" action=\"/subscriptions\"><input name=\"email\"></form>{% endblock content %}",
    )
    .unwrap();
    let dir = overrides.path().to_path_buf();
    let app = spawn_app_with(backend, move |s| {
        s.templates_dir = Some(dir);
        s.brand.logo_url = Some(LOGO.parse().unwrap());
        s.brand.accent_color = ACCENT.into();
        s.brand.footer = Some(FOOTER.into());
        s.brand.postal_address = Some(ADDRESS.into());
        s.brand.reply_to = Some("Letters Desk <letters@example.org>".into());
    })
    .await;

    let home = app.get("/").await.text().await.unwrap();
    assert!(
        home.contains("Our own sign-up page"),
        "the override is used"
    );
    let confirmation = app.sign_up("ana@example.com").await;
    assert_reply_to(&confirmation);
    for part in [confirmation.html(), confirmation.text()] {
        assert!(part.contains(FOOTER) && part.contains(ADDRESS), "{part}");
    }
    assert!(confirmation.html().contains(LOGO));
    let (confirm_page, confirmed) = app.confirm_through_pages(&confirmation).await;

    let id = app
        .create_report(&crate::sending::report_source("branded"))
        .await;
    app.trigger_send(id, "brand").await;
    app.dispatch_all_pending().await;
    let report = app.mail_to("ana@example.com", "Weekly Report branded");
    assert_reply_to(&report);
    let html = report.html();
    assert!(
        html.contains(&format!(r#"src="{LOGO}""#)),
        "the logo in the email"
    );
    assert!(
        html.contains(&format!("background: {ACCENT}"))
            || html.contains(&format!("background:{ACCENT}")),
        "the accent on the buttons"
    );
    assert!(!html.contains("#0b5cad"), "no trace of the default accent");
    for part in [html.clone(), report.text()] {
        assert!(part.contains(FOOTER) && part.contains(ADDRESS), "{part}");
    }

    let unsubscribe = report
        .links_starting_with(&format!("{}/unsubscribe", app.address))
        .pop()
        .unwrap()
        .replace(&app.address, "");
    let pages = [
        ("/", home),
        ("confirm", confirm_page),
        ("confirmed", confirmed),
        ("/archive", app.get("/archive").await.text().await.unwrap()),
        (
            "/archive/branded",
            app.get("/archive/branded").await.text().await.unwrap(),
        ),
        (
            "/archive/none",
            app.get("/archive/none").await.text().await.unwrap(),
        ),
        (
            "unsubscribe",
            app.get(&unsubscribe).await.text().await.unwrap(),
        ),
    ];
    // The pages' security policy lets the browser load the logo.
    let policy = app.get("/").await.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let images = policy
        .split(';')
        .find(|d| d.trim().starts_with("img-src"))
        .unwrap();
    assert!(
        images
            .split_whitespace()
            .any(|s| s == "https://cdn.example.org"),
        "{policy}"
    );
    for (name, page) in pages {
        assert!(page.contains(FOOTER), "footer on {name}");
        assert!(page.contains(ADDRESS), "postal address on {name}");
        assert!(page.contains(&format!(r#"src="{LOGO}""#)), "logo on {name}");
        assert!(
            page.contains(&format!("--accent: {ACCENT}")),
            "accent on {name}"
        );
    }
}

/// The Reply-To header, as another MIME parser reads it.
fn assert_reply_to(mail: &crate::smtp_server::Received) {
    let parsed = mail.parsed();
    let reply_to = parsed
        .reply_to()
        .and_then(|a| a.first())
        .expect("a Reply-To header");
    assert_eq!(reply_to.address(), Some("letters@example.org"));
    assert_eq!(reply_to.name(), Some("Letters Desk"));
}

fn config_check(env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(["config", "check"])
        .env("NEWSLETTER_DATABASE_URL", &db)
        .env("NEWSLETTER_LOG__FILTER", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn config_check_names_the_file_and_line_of_a_broken_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("email")).unwrap();
    let layout = dir.path().join("email/layout.html");
    let templates = dir.path().to_str().unwrap();
    let broken = [
        // Does not parse.
        "<html>\n<body>\n{% if %}\n</body>\n",
        // Parses, but fails when the example report is rendered through it.
        "<html>\n<body>\n{{ report.meta.no_such_field }}\n{% block content %}{% endblock content %}\n</body>\n",
    ];
    for source in broken {
        std::fs::write(&layout, source).unwrap();
        let (ok, report) = config_check(&[("NEWSLETTER_TEMPLATES_DIR", templates)]);
        assert!(!ok, "{source}");
        assert!(
            report.contains(&format!("{}: line 3", layout.display())),
            "{report}"
        );
    }

    // A good override renders.
    std::fs::write(
        &layout,
        "<html><body>{% block content %}{% endblock content %}{% block footer %}{% endblock footer %}</body></html>\n",
    )
    .unwrap();
    let (_, report) = config_check(&[("NEWSLETTER_TEMPLATES_DIR", templates)]);
    assert!(report.contains("the example report renders"), "{report}");
}

#[test]
fn config_check_lists_the_messages_a_catalogue_lacks() {
    let (_, report) = config_check(&[("NEWSLETTER_LANGUAGE", "zh-CN")]);
    assert!(report.contains("language: zh-CN (complete)"), "{report}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("locales")).unwrap();
    std::fs::write(
        dir.path().join("locales/de.ftl"),
        "feedback-yes = Ja\nfeedback-no = Nein\n",
    )
    .unwrap();
    let (_, report) = config_check(&[
        ("NEWSLETTER_LANGUAGE", "de"),
        ("NEWSLETTER_TEMPLATES_DIR", dir.path().to_str().unwrap()),
    ]);
    let line = report
        .lines()
        .find(|l| l.starts_with("language: de"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(line.contains("unsubscribe-link"), "{line}");
    assert!(!line.contains("feedback-yes"), "{line}");
    assert!(report.contains("the example report renders"), "{report}");

    let (ok, report) = config_check(&[("NEWSLETTER_LANGUAGE", "fr")]);
    assert!(!ok);
    assert!(
        report.contains("no catalogue for language `fr`"),
        "{report}"
    );
}

async fn stylesheets_and_scripts_are_served_as_written(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for (path, file, content_type) in [
        ("/static/site.css", "site.css", "text/css"),
        ("/static/admin.css", "admin.css", "text/css"),
        ("/static/autosubmit.js", "autosubmit.js", "text/javascript"),
        ("/static/admin.js", "admin.js", "text/javascript"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(
            headers["content-type"],
            format!("{content_type}; charset=utf-8").as_str(),
            "{path}"
        );
        assert_eq!(headers["cache-control"], "public, max-age=3600", "{path}");
        let written = std::fs::read_to_string(format!("templates/static/{file}")).unwrap();
        assert_eq!(response.text().await.unwrap(), written, "{path}");
    }
}
