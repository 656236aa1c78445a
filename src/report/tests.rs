//! The report format end to end: parse, render, personalise.

use super::*;

const EXAMPLE: &str = include_str!("../../reports/example.md");

fn tera() -> tera::Tera {
    crate::render::templates().expect("templates")
}

fn context() -> SendContext<'static> {
    SendContext {
        base_url: "https://news.example.com",
        site_name: "The Weekly Report",
        archive_url: "https://news.example.com/archive/x".into(),
    }
}

fn reader<'a>(name: Option<&'a str>, id: &'a str) -> Reader<'a> {
    Reader {
        name,
        unsubscribe_url: id,
        feedback_yes_url: "https://news.example.com/feedback?token=t&answer=yes",
        feedback_no_url: "https://news.example.com/feedback?token=t&answer=no",
    }
}

#[test]
fn the_example_parses_into_its_structure() {
    let report = Report::parse(EXAMPLE).unwrap();
    assert_eq!(report.slug(), "industrial-blockchain-weekly-2020-11");
    assert_eq!(report.meta.period.as_deref(), Some("6–12 March 2020"));
    assert_eq!(report.meta.byline.as_deref(), Some("Wang Qiao"));
    assert_eq!(report.sections.len(), 3);
    let news = &report.sections[0];
    assert_eq!(news.items.len(), 5);
    assert!(news
        .items
        .iter()
        .all(|i| i.source.is_some() && i.comment.is_some()));
    assert_eq!(
        news.items[0].source.as_ref().unwrap().name,
        "People's Daily Online"
    );
    assert_eq!(news.items[1].source.as_ref().unwrap().url, None);
    assert!(news.items[0]
        .comment
        .as_ref()
        .unwrap()
        .ends_with("before the code."));
    assert!(news.items[3]
        .body
        .text
        .contains("- suppliers short of raw materials"));
    let voices = &report.sections[1];
    assert_eq!(voices.items.len(), 2);
    assert!(voices.items.iter().all(|i| i.comment.is_none()));
    let talk = &report.sections[2];
    assert!(talk.items.is_empty());
    assert_eq!(talk.intro.html.matches("<li>").count(), 2);
    let related = report.related.as_ref().unwrap();
    assert_eq!(related.title, "Discover more");
    assert_eq!(related.links.len(), 3);
    assert!(related
        .links
        .iter()
        .all(|l| l.url.starts_with("https://") && l.teaser.is_some()));
}

#[test]
fn every_part_of_the_example_reaches_both_parts() {
    let report = Report::parse(EXAMPLE).unwrap();
    let rendered = render_report(&tera(), &report, &context()).unwrap();
    let html = rendered.html.fill(
        &reader(
            Some("Ana"),
            "https://news.example.com/unsubscribe?token=1.x",
        ),
        true,
    );
    let text = rendered.text.fill(
        &reader(
            Some("Ana"),
            "https://news.example.com/unsubscribe?token=1.x",
        ),
        false,
    );
    // Long lines are wrapped; compare with whitespace folded.
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = flat(&text);
    // The CSS inliner writes text nodes back with only &, < and > escaped.
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    for section in &report.sections {
        assert!(
            html.contains(&escape(&section.title)),
            "section {:?} in HTML",
            section.title
        );
        assert!(
            text.contains(&flat(&section.title.to_uppercase())),
            "section {:?} in text",
            section.title
        );
        for item in &section.items {
            assert!(
                html.contains(&escape(&item.headline)),
                "{:?} in HTML",
                item.headline
            );
            assert!(
                text.contains(&flat(&format!("* {}", item.headline))),
                "{:?} in text",
                item.headline
            );
            if let Some(source) = &item.source {
                assert!(html.contains(&escape(&source.name)));
                match &source.url {
                    Some(url) => {
                        assert!(html.contains(&format!("href=\"{url}\"")), "{url} in HTML");
                        assert!(
                            text.contains(&flat(&format!("Source: {} <{url}>", source.name))),
                            "{url} in text"
                        );
                    }
                    None => assert!(text.contains(&format!("Source: {}", source.name))),
                }
            }
            if let Some(comment) = &item.comment {
                let start: String = comment.chars().take(30).collect();
                assert!(html.contains(&escape(&start)), "comment {start:?} in HTML");
                assert!(text.contains(&flat(&start)), "comment {start:?} in text");
            }
        }
    }
    for bullet in [
        "A blockchain \"safe house\" for data",
        "Access control built on the same ledger",
    ] {
        assert!(html.contains(&format!("<li>{bullet}")), "{bullet}");
    }
    assert!(
        text.contains("- A blockchain \"safe house\""),
        "bullets in text"
    );
    for link in &report.related.as_ref().unwrap().links {
        assert!(html.contains(&format!("href=\"{}\"", link.url)));
        assert!(text.contains(&flat(&format!("- {} <{}>", link.title, link.url))));
    }
    assert!(html.contains("Hi Ana,") && text.starts_with("Hi Ana,"));
    assert!(html.contains("Was this report helpful?"));
    assert!(text.contains("Yes: https://news.example.com/feedback?token=t&answer=yes"));
    assert!(html.contains("href=\"https://news.example.com/feedback?token=t&amp;answer=yes\""));
    assert!(text.contains("View in your browser: https://news.example.com/archive/x"));
    assert!(text.contains("Unsubscribe: https://news.example.com/unsubscribe?token=1.x"));
}

#[test]
fn the_email_is_client_safe() {
    let report = Report::parse(EXAMPLE).unwrap();
    let rendered = render_report(&tera(), &report, &context()).unwrap();
    let html = rendered
        .html
        .fill(&reader(None, "https://news.example.com/u"), true);
    assert!(html.contains(r#"width="600""#), "a 600 px column");
    assert!(
        html.contains("prefers-color-scheme: dark"),
        "dark mode rules kept"
    );
    assert!(html.contains("max-width: 620px"), "phone rules kept");
    assert!(
        html.contains("class=\"preheader\" style=\"display: none"),
        "hidden preheader, inlined"
    );
    assert!(
        html.contains("Hong Kong&#x27;s first virtual banks")
            || html.contains("Hong Kong's first virtual banks")
    );
    assert!(
        html.contains("<td class=\"content\" style=\""),
        "styles are inlined"
    );
    assert!(html.contains("Hello,"), "greeting without a name");
    // Every link is absolute.
    for href in html.split("href=\"").skip(1) {
        let url = &href[..href.find('"').unwrap()];
        assert!(
            url.starts_with("https://") || url.starts_with("http://"),
            "relative link {url:?}"
        );
    }
    assert!(
        !html.contains("NLSLOT")
            && !rendered
                .text
                .fill(&reader(None, "u"), false)
                .contains("NLSLOT")
    );
}

#[test]
fn headlines_and_bodies_are_escaped_and_sanitised() {
    let source = "---\ntitle: <script>alert(1)</script>\nslug: x\n---\n# Sec <b>\n## <script>alert(2)</script>\nBody <img src=x onerror=alert(3)> and [link](javascript:alert(4)).\n";
    let err = Report::parse(source).unwrap_err();
    assert_eq!(err.line, Some(7), "{err}");
    let source = source.replace("[link](javascript:alert(4))", "[link](https://example.com)");
    let report = Report::parse(&source).unwrap();
    let rendered = render_report(&tera(), &report, &context()).unwrap();
    let html = rendered
        .html
        .fill(&reader(None, "https://x.example.com/u"), true);
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(2)&lt;/script&gt;"),
        "{html}"
    );
    assert!(html.contains("Sec &lt;b&gt;"));
}

#[test]
fn personalisation_escapes_and_keeps_readers_apart() {
    let report = Report::parse(EXAMPLE).unwrap();
    let rendered = render_report(&tera(), &report, &context()).unwrap();
    let ana = rendered.html.fill(
        &reader(
            Some("<b>Ana & co</b>"),
            "https://news.example.com/unsubscribe?token=1.a",
        ),
        true,
    );
    let bo = rendered.html.fill(
        &reader(Some("Bo"), "https://news.example.com/unsubscribe?token=2.b"),
        true,
    );
    assert!(
        ana.contains("Hi &lt;b&gt;Ana &amp; co&lt;&#39;b&gt;,")
            || ana.contains("Hi &lt;b&gt;Ana &amp; co&lt;/b&gt;,")
    );
    assert!(ana.contains("token=1.a") && !ana.contains("token=2.b"));
    assert!(bo.contains("token=2.b") && !bo.contains("token=1.a"));
    let text = rendered
        .text
        .fill(&reader(Some("<b>Ana & co</b>"), "u"), false);
    assert!(text.starts_with("Hi <b>Ana & co</b>,"));
}

#[test]
fn the_pre_encoded_copy_decodes_to_the_plain_copy() {
    let report = Report::parse(EXAMPLE).unwrap();
    let rendered = render_report(&tera(), &report, &context()).unwrap();
    let reader = reader(
        Some("Zoë = \"Ünïcode\" 読者"),
        "https://news.example.com/unsubscribe?token=1.a",
    );
    for (part, html) in [(&rendered.html, true), (&rendered.text, false)] {
        let encoded = part.fill_quoted_printable(&reader, html);
        let encoded = String::from_utf8(encoded).expect("quoted-printable is ASCII");
        for line in encoded.split("\r\n") {
            assert!(
                line.len() <= 76,
                "a line of {} characters: {line}",
                line.len()
            );
        }
        assert!(
            !encoded.replace("\r\n", "").contains('\n'),
            "bare line feeds"
        );
        let decoded =
            quoted_printable::decode(&encoded, quoted_printable::ParseMode::Strict).unwrap();
        let expected = part.fill(&reader, html).replace('\n', "\r\n");
        assert_eq!(String::from_utf8(decoded).unwrap(), expected);
    }
}

#[test]
fn malformed_files_name_the_line_and_the_problem() {
    let cases: &[(&str, usize, &str)] = &[
        ("# No front matter\n", 1, "missing front matter"),
        ("---\ntitle: T\nslug: s\n", 1, "never closed"),
        ("---\ntitel: T\nslug: s\n---\n# S\ntext\n", 2, "unknown field `titel`"),
        ("---\ntitle: T\nslug: Not A Slug\n---\n# S\ntext\n", 3, "lowercase letters"),
        ("---\ntitle: \"\"\nslug: s\n---\n# S\ntext\n", 2, "title is empty"),
        ("---\ntitle: T\nslug: s\n---\nIntro\n## Orphan\ntext\n", 6, "comes before any section"),
        ("---\ntitle: T\nslug: s\n---\n# S\n## A\ntext\nSource: X\nSource: Y\n", 9, "two Source: lines"),
        ("---\ntitle: T\nslug: s\n---\n# S\n## A\ntext\nComment: a\n\nComment: b\n", 10, "two Comment: lines"),
        ("---\ntitle: T\nslug: s\n---\n# S\n## Empty\nSource: X\n", 6, "has no text"),
        ("---\ntitle: T\nslug: s\n---\n# S\n## A\ntext\n# More {related}\n- not a link\n", 9, "related reading is a list"),
        ("---\ntitle: T\nslug: s\n---\n# S\n## A\ntext\n# More {related}\n- [x](ftp://a.b) — t\n", 9, "absolute http(s) URL"),
        ("---\ntitle: T\nslug: s\n---\n# S\n## A\nsee [this](/relative/path)\n", 7, "absolute"),
        ("---\ntitle: T\nslug: s\ndate: 2020-13-45\n---\n# S\ntext\n", 4, "front matter"),
        ("---\ntitle: T\nslug: s\n---\nJust an intro.\n", 0, "no sections"),
    ];
    for (source, line, message) in cases {
        let err = Report::parse(source).unwrap_err();
        let expected_line = (*line > 0).then_some(*line);
        assert_eq!(err.line, expected_line, "{source:?}: {err}");
        assert!(err.to_string().contains(message), "{source:?}: {err}");
    }
}

#[test]
fn the_archive_page_shares_the_body_and_shows_helpfulness() {
    let report = Report::parse(EXAMPLE).unwrap();
    let page = render_archive_page(
        &tera(),
        &report,
        "The Weekly Report",
        Some("93 out of 132 found this helpful"),
    )
    .unwrap();
    assert!(page.contains("93 out of 132 found this helpful"));
    assert!(page.contains("class=\"section-title\""));
    assert!(page.contains(&report.sections[0].items[0].headline.replace('"', "&quot;")));
    let without = render_archive_page(&tera(), &report, "The Weekly Report", None).unwrap();
    assert!(!without.contains("found this helpful"));
}

mod properties {
    use proptest::prelude::*;

    use super::super::Report;

    proptest! {
        #[test]
        fn any_input_is_parsed_or_refused_without_panic(body in "[\\s\\S]{0,400}") {
            let _ = Report::parse(&body);
            let _ = Report::parse(&format!("---\ntitle: T\nslug: t\n---\n{body}"));
        }

        #[test]
        fn structured_noise_is_parsed_or_refused_with_a_line(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("# Section".to_string()),
                    Just("## Item".to_string()),
                    Just("Source: X".to_string()),
                    Just("Comment: y".to_string()),
                    Just("# More {related}".to_string()),
                    Just("- [a](https://a.example)".to_string()),
                    Just("```".to_string()),
                    Just(String::new()),
                    "[a-z <>&\\[\\]()]{0,20}",
                ],
                0..30,
            )
        ) {
            let source = format!("---\ntitle: T\nslug: t\n---\n{}\n", lines.join("\n"));
            if let Err(e) = Report::parse(&source) {
                let total = source.lines().count();
                if let Some(line) = e.line {
                    prop_assert!(line >= 1 && line <= total + 1, "line {} of {}: {}", line, total, e);
                }
            }
        }
    }
}
