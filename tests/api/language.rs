//! A publication in Chinese: every word around the report, in the mails and
//! on the pages, comes from the zh-CN catalogue, and the plain-text part
//! wraps Chinese by display width.

use crate::helpers::{spawn_app_with, token_in, Backend, TestApp};

crate::on_both_backends!(a_chinese_publication_speaks_chinese_everywhere);

const ZH_EXAMPLE: &str = include_str!("../../reports/example.zh-CN.md");
const ZH_SLUG: &str = "chanye-qukuailian-zhoubao-2020-11";
pub const ZH_SITE: &str = "产业区块链周报";

pub async fn spawn_chinese_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.language = "zh-CN".into();
        s.site_name = ZH_SITE.into();
    })
    .await
}

/// What a reader sees of an HTML document: no styles, scripts or tags.
pub fn visible_text(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        rest = &rest[start..];
        for hidden in ["<style", "<script", "<title"] {
            if rest.starts_with(hidden) {
                let close = format!("</{}", &hidden[1..]);
                rest = rest.find(&close).map(|i| &rest[i..]).unwrap_or("");
            }
        }
        rest = rest.find('>').map(|i| &rest[i + 1..]).unwrap_or("");
        text.push(' ');
    }
    text.push_str(rest);
    text.replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
}

/// Fails when any phrase of the English catalogue shows in `text`.
pub fn assert_no_english_chrome(what: &str, text: &str) {
    let found: Vec<String> = newsletter::i18n::english_phrases()
        .into_iter()
        .filter(|phrase| contains_word(text, phrase))
        .collect();
    assert!(
        found.is_empty(),
        "English chrome in {what}: {found:?}\n{text}"
    );
}

/// `phrase` in `text` as whole words (so "No" does not match "Noto").
fn contains_word(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

async fn a_chinese_publication_speaks_chinese_everywhere(backend: Backend) {
    let app = spawn_chinese_app(backend).await;

    let home = app.get("/").await.text().await.unwrap();
    assert!(home.contains(r#"<html lang="zh-CN">"#), "{home}");
    assert!(home.contains("电子邮件地址"));
    assert_no_english_chrome("the sign-up page", &visible_text(&home));

    // An old or mistyped link: a page in Chinese for a browser, JSON for a
    // program.
    let lost = app
        .client
        .get(app.url("/reports-of-2019"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(lost.status(), 404);
    let lost = lost.text().await.unwrap();
    assert!(
        lost.contains(r#"<html lang="zh-CN">"#) && lost.contains("没有这个页面"),
        "{lost}"
    );
    assert_no_english_chrome("the missing page", &visible_text(&lost));
    let lost = app.get("/reports-of-2019").await;
    assert_eq!(lost.status(), 404);
    assert!(lost.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    // A sign-up form's script gets the same sentence to show.
    let refused = app
        .post_json(
            "/subscriptions",
            &serde_json::json!({ "email": "ana.example.com" }),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let refused: serde_json::Value = refused.json().await.unwrap();
    let shown = refused["message"].as_str().unwrap_or_default();
    assert!(shown.contains("电子邮件地址缺少 @"), "{refused}");
    assert!(refused["error"].is_string());

    // A mistake is explained in Chinese, and nothing is stored.
    let refused = app
        .post_form("/subscriptions", "email=ana.example.com")
        .await;
    assert_eq!(refused.status(), 422);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("电子邮件地址缺少 @"), "{refused}");
    assert_no_english_chrome("the refused sign-up", &visible_text(&refused));

    let accepted = app
        .post_form(
            "/subscriptions",
            "email=ana%40example.com&name=%E5%AE%89%E5%A8%9C",
        )
        .await;
    assert_eq!(accepted.status(), 200);
    let accepted = accepted.text().await.unwrap();
    assert!(accepted.contains("请查收邮件"));
    assert_no_english_chrome("the sign-up answer", &visible_text(&accepted));
    app.dispatch_all_pending().await;
    let mail = app
        .smtp
        .received_for("ana@example.com")
        .pop()
        .expect("a confirmation mail");
    assert_eq!(mail.subject(), format!("请确认订阅{ZH_SITE}"));
    assert!(mail.text().starts_with("您好！"), "{}", mail.text());
    assert!(mail.html().contains(r#"lang="zh-CN""#));
    assert_no_english_chrome("the confirmation mail's text", &mail.text());
    assert_no_english_chrome("the confirmation mail's HTML", &visible_text(&mail.html()));

    let (page, confirmed) = app.confirm_through_pages(&mail).await;
    assert_no_english_chrome("the confirmation page", &visible_text(&page));
    assert!(confirmed.contains("订阅成功"), "{confirmed}");
    assert_no_english_chrome("the confirmed page", &visible_text(&confirmed));

    // The report mail.
    let id = app.create_report(ZH_EXAMPLE).await;
    assert!(app.trigger_send(id, "zh").await.status().is_success());
    app.dispatch_all_pending().await;
    let report = app.mail_to("ana@example.com", "产业区块链周报：");
    let text = report.text();
    assert!(text.starts_with("安娜，您好！"), "{text}");
    for chrome in [
        "来源：人民网",
        "点评：",
        "本期报告对您有帮助吗？",
        "有帮助：http",
        "退订：http",
        "在浏览器中查看",
    ] {
        assert!(text.contains(chrome), "{chrome} in\n{text}");
    }
    assert_no_english_chrome("the report's text part", &text);
    for line in text.lines() {
        let width = textwrap::core::display_width(line);
        assert!(
            width <= 76 || line.contains("http"),
            "{width} columns: {line}"
        );
    }
    let longest = text
        .lines()
        .map(textwrap::core::display_width)
        .max()
        .unwrap();
    assert!(
        longest > 60,
        "paragraphs are filled, not cut short: {longest}"
    );
    let html = report.html();
    assert!(html.contains(r#"<html lang="zh-CN">"#));
    assert!(html.contains("PingFang SC"), "a CJK font in the stack");
    assert_no_english_chrome("the report's HTML part", &visible_text(&html));

    // The reader answers; the archive counts in Chinese.
    let yes = report
        .links_starting_with(&app.address)
        .into_iter()
        .find(|l| l.contains("answer=yes"))
        .expect("a yes link");
    let feedback = app
        .get(&yes.replace(&app.address, ""))
        .await
        .text()
        .await
        .unwrap();
    assert_no_english_chrome("the feedback page", &visible_text(&feedback));
    let thanks = app
        .post_form(
            "/feedback",
            &format!(
                "token={}&answer=yes",
                token_in(&yes).split('&').next().unwrap()
            ),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(thanks.contains("谢谢！"), "{thanks}");
    assert_no_english_chrome("the feedback thanks", &visible_text(&thanks));

    let archive = app
        .get(&format!("/archive/{ZH_SLUG}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(archive.contains("1 位读者中有 1 位认为有帮助"), "{archive}");
    assert_no_english_chrome("the archive page", &visible_text(&archive));
    let index = app.get("/archive").await.text().await.unwrap();
    assert!(index.contains("往期报告"));
    assert_no_english_chrome("the archive index", &visible_text(&index));

    let unsubscribe = report
        .links_starting_with(&format!("{}/unsubscribe", app.address))
        .pop()
        .expect("an unsubscribe link");
    let path = unsubscribe.replace(&app.address, "");
    let page = app.get(&path).await.text().await.unwrap();
    assert_no_english_chrome("the unsubscribe page", &visible_text(&page));
    let done = app
        .client
        .post(app.url(&path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(done.contains("已退订"), "{done}");
    assert_no_english_chrome("the unsubscribed page", &visible_text(&done));
    let missing = app
        .get("/archive/no-such-report")
        .await
        .text()
        .await
        .unwrap();
    assert_no_english_chrome("the missing report page", &visible_text(&missing));
}
