//! The editors' path in a real browser: headless Chromium driven through
//! ChromeDriver logs in, writes a report and previews it, sends it to the
//! readers of the test SMTP server, watches the progress bar fill, and sees
//! a reader's vote arrive in the chart and in "N out of M".
//!
//! Runs where `chromedriver` is installed (`.ci/run` installs Debian's
//! `chromium` and `chromium-driver`); in CI a missing driver fails the test.
//! Screenshots of every page land in `target/screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::feedback::feedback_link;
use crate::helpers::{spawn_app_with, Backend};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const EDITOR: &str = "editor@example.com";
const PASSWORD: &str = "a long enough password";
const READERS: usize = 6;

/// ChromeDriver on a free port, stopped when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_driver() -> Option<Driver> {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        if std::env::var("CI").is_ok() {
            panic!("{CHROMEDRIVER} is required in CI (Debian's chromium-driver)");
        }
        eprintln!("skipping: no {CHROMEDRIVER} (apt-get install chromium chromium-driver)");
        return None;
    }
    // ChromeDriver picks a free port itself and names it on standard output.
    let mut child = tokio::process::Command::new(CHROMEDRIVER)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let port = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("chromedriver's output") {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return rest.trim_end_matches('.').parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .expect("chromedriver did not start within 20 s")
    .expect("chromedriver did not say which port it listens on");
    // Keep reading so that ChromeDriver never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if reqwest::get(format!("{url}/status")).await.is_ok() {
            return Some(Driver { child, url });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on port {port}");
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1700"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits until `check` holds for the text of the element at `css`.
async fn wait_for_text(browser: &Client, css: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if check(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never matched; last text {last:?}");
}

/// The attribute as the page stands now. The progress page redraws its
/// bar as the send goes on, so the element found may be replaced before it
/// is read: that reads as not there yet, and the caller asks again.
async fn attribute(browser: &Client, css: &str, name: &str) -> Option<String> {
    let element = browser.find(Locator::Css(css)).await.ok()?;
    element.attr(name).await.ok().flatten()
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no {css}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no {css}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_sends_a_report_and_sees_the_feedback() {
    let Some(driver) = start_driver().await else {
        return;
    };
    // Two messages a second, so the progress bar has something to show.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.delivery.rate_limit_per_sec = 2;
        s.delivery.poll_interval_ms = 100;
    })
    .await;
    app.add_editor(EDITOR, PASSWORD).await;
    for i in 0..READERS {
        app.confirmed_reader(&format!("reader{i}@example.com"))
            .await;
    }
    let worker = CancellationToken::new();
    tokio::spawn(app.app.dispatcher.clone().run(worker.clone()));
    let browser = browser(&driver).await;

    // Log in: the dashboard sends a stranger to the login form.
    browser.goto(&app.url("/admin")).await.unwrap();
    wait_for_text(&browser, "h1", |t| t == "Editors' login").await;
    screenshot(&browser, "01-login").await;
    type_into(&browser, "#email", EDITOR).await;
    type_into(&browser, "#password", PASSWORD).await;
    click(&browser, "form[action='/admin/login'] button[type=submit]").await;
    wait_for_text(&browser, "h1", |t| t == "Dashboard").await;
    assert_eq!(
        wait_for_text(&browser, "[data-count=confirmed]", |_| true).await,
        READERS.to_string()
    );
    screenshot(&browser, "02-dashboard-before").await;

    // Write the report; the live preview follows the text.
    click(&browser, ".admin-nav a[href='/admin/reports/new']").await;
    wait_for_text(&browser, "h1", |t| t == "New report").await;
    type_into(
        &browser,
        "#source",
        &crate::sending::report_source("in-the-browser"),
    )
    .await;
    wait_for_text(&browser, "[data-preview-subject]", |t| {
        t.contains("Weekly Report in-the-browser")
    })
    .await;
    screenshot(&browser, "03-editor-html-preview").await;
    click(&browser, "#tab-text").await;
    let text = wait_for_text(&browser, "[data-preview-text]", |t| {
        t.contains("A headline worth reading")
    })
    .await;
    assert!(text.contains("Source: Example Wire"), "{text}");
    screenshot(&browser, "04-editor-text-preview").await;
    click(
        &browser,
        "form[action='/admin/reports'] button[type=submit]",
    )
    .await;
    wait_for_text(&browser, "h1", |t| t == "Weekly Report in-the-browser").await;

    // Send, after ticking the confirmation, and watch the bar fill.
    let audience = wait_for_text(&browser, ".audience", |_| true).await;
    assert_eq!(
        audience,
        format!("This will send to {READERS} confirmed readers.")
    );
    click(&browser, "#confirm").await;
    click(&browser, "form[data-once] button[type=submit]").await;
    wait_for_text(&browser, "#send-heading", |t| t.starts_with("Send:")).await;
    screenshot(&browser, "05-sending").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = attribute(&browser, "#progress-bar", "value").await;
        if value.as_deref() == Some("100") {
            break;
        }
        assert!(Instant::now() < deadline, "the bar stopped at {value:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        wait_for_text(&browser, "[data-field=sent]", |t| t == READERS.to_string()).await,
        READERS.to_string()
    );
    screenshot(&browser, "06-sent").await;

    // A reader answers from the mail: the page votes by itself.
    let mails: Vec<_> = app
        .smtp
        .received()
        .into_iter()
        .filter(|m| m.subject().contains("in-the-browser"))
        .collect();
    assert_eq!(mails.len(), READERS);
    browser
        .goto(&feedback_link(&app, &mails[0], "yes"))
        .await
        .unwrap();
    wait_for_text(&browser, "h1", |t| t == "Thank you!").await;
    screenshot(&browser, "07-feedback-thanks").await;

    // The dashboard's chart and the archive show the answer.
    browser.goto(&app.url("/admin")).await.unwrap();
    let helpful = wait_for_text(&browser, "[data-field=helpful]", |t| t.contains("out of")).await;
    assert_eq!(helpful, "1 out of 1 found this helpful");
    let bar = browser
        .find(Locator::Css("[data-chart=helpfulness] rect.bar-yes title"))
        .await
        .expect("a bar in the helpfulness chart");
    let bar_title = bar.prop("textContent").await.unwrap().unwrap_or_default();
    assert!(
        bar_title.contains("1 out of 1 found this helpful (100%)"),
        "{bar_title}"
    );
    screenshot(&browser, "08-dashboard-after").await;

    browser
        .goto(&app.url("/archive/in-the-browser"))
        .await
        .unwrap();
    let archive = wait_for_text(&browser, "body", |t| t.contains("found this helpful")).await;
    assert!(
        archive.contains("1 out of 1 reader found this helpful"),
        "{archive}"
    );
    screenshot(&browser, "09-archive").await;

    browser.goto(&app.url("/admin/readers")).await.unwrap();
    wait_for_text(&browser, "[data-matching]", |t| t == READERS.to_string()).await;
    screenshot(&browser, "10-readers").await;

    // On a phone the pages reflow instead of scrolling sideways.
    browser.set_window_size(390, 844).await.unwrap();
    for (path, name) in [
        ("/admin", "11-phone-dashboard"),
        ("/admin/readers", "12-phone-readers"),
    ] {
        browser.goto(&app.url(path)).await.unwrap();
        wait_for_text(&browser, "h1", |t| !t.is_empty()).await;
        let fits = browser
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        screenshot(&browser, name).await;
        assert_eq!(fits, json!(true), "{path} is wider than a phone");
    }

    browser.close().await.unwrap();
    worker.cancel();
}

/// What the browser shows of the page: its language and its visible text.
async fn lang_and_text(browser: &Client) -> (String, String) {
    let lang = browser
        .execute("return document.documentElement.lang;", vec![])
        .await
        .unwrap();
    let text = browser
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap();
    (
        lang.as_str().unwrap_or_default().to_string(),
        text.as_str().unwrap_or_default().to_string(),
    )
}

/// A Chinese publication as its readers see it: the sign-up page, the
/// report email, the archive, the feedback and unsubscribe pages, each in
/// Chinese with no English chrome, each screenshotted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chinese_reader_sees_chinese_pages_and_mail() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let app = crate::language::spawn_chinese_app(Backend::Sqlite).await;
    let browser = browser(&driver).await;
    let check = |name: &'static str, expected: &'static str| {
        let browser = browser.clone();
        async move {
            wait_for_text(&browser, "body", |t| t.contains(expected)).await;
            let (lang, text) = lang_and_text(&browser).await;
            assert_eq!(lang, "zh-CN", "{name}");
            crate::language::assert_no_english_chrome(name, &text);
            screenshot(&browser, name).await;
        }
    };

    browser.goto(&app.url("/")).await.unwrap();
    check("zh-01-sign-up", "电子邮件地址").await;
    type_into(&browser, "#email", "reader@example.com").await;
    type_into(&browser, "#name", "安娜").await;
    click(
        &browser,
        "form[action='/subscriptions'] button[type=submit]",
    )
    .await;
    check("zh-02-check-your-inbox", "请查收邮件").await;
    app.dispatch_all_pending().await;
    let confirmation = app.smtp.received_for("reader@example.com").pop().unwrap();
    browser
        .goto(&crate::helpers::confirmation_link(&confirmation))
        .await
        .unwrap();
    // The page's script confirms at once.
    check("zh-03-subscribed", "订阅成功").await;

    let id = app
        .create_report(include_str!("../../reports/example.zh-CN.md"))
        .await;
    app.trigger_send(id, "zh").await;
    app.dispatch_all_pending().await;
    let mail = app.mail_to("reader@example.com", "产业区块链周报：");
    let dir = tempfile::tempdir().unwrap();
    let email = dir.path().join("email.html");
    std::fs::write(&email, mail.html()).unwrap();
    browser
        .goto(&format!("file://{}", email.display()))
        .await
        .unwrap();
    check("zh-04-email", "本期报告对您有帮助吗？").await;

    let yes = feedback_link(&app, &mail, "yes");
    browser.goto(&yes).await.unwrap();
    check("zh-05-feedback-thanks", "谢谢！").await;
    browser
        .goto(&app.url("/archive/chanye-qukuailian-zhoubao-2020-11"))
        .await
        .unwrap();
    check("zh-06-archive-report", "1 位读者中有 1 位认为有帮助").await;
    browser.goto(&app.url("/archive")).await.unwrap();
    check("zh-07-archive", "往期报告").await;
    let unsubscribe = mail
        .links_starting_with(&app.url("/unsubscribe"))
        .pop()
        .unwrap();
    browser.goto(&unsubscribe).await.unwrap();
    check("zh-08-unsubscribe", "不再接收").await;
    click(&browser, "form button[type=submit]").await;
    check("zh-09-unsubscribed", "已退订").await;
    browser.close().await.unwrap();
}
