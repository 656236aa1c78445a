//! Markdown to sanitised HTML and to plain text, with links checked.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use super::model::Block;

/// Width of the plain-text part.
pub const TEXT_WIDTH: usize = 76;

/// A problem at a byte offset of the Markdown given.
#[derive(Debug)]
pub struct MarkdownError {
    pub offset: usize,
    pub message: String,
}

/// Renders `source`. Raw HTML is shown as text rather than passed through,
/// and the HTML is sanitised once more with ammonia, so nothing an editor
/// pastes can run in a reader's mail client. Links must be absolute
/// http(s) or mailto URLs: relative ones would be broken in an email.
pub fn render(source: &str) -> Result<Block, MarkdownError> {
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    let mut events = Vec::new();
    for (event, range) in Parser::new_ext(source, options).into_offset_iter() {
        let event = match event {
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. })
                if !is_absolute(&dest_url) =>
            {
                return Err(MarkdownError {
                    offset: range.start,
                    message: format!(
                        "link {:?} must be an absolute https:// (or mailto:) address",
                        dest_url.as_ref()
                    ),
                });
            }
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            other => other,
        };
        events.push(event);
    }
    join_cjk_lines(&mut events);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.iter().cloned());
    let html = sanitiser().clean(&html).to_string();
    Ok(Block {
        html,
        text: to_text(&events),
    })
}

/// A line break inside a Chinese or Japanese sentence is no space: those
/// scripts put none between words, so a paragraph wrapped in the source
/// must not read "中国 移动" in the mail or on the page (as CSS Text 3 has
/// browsers do for such breaks, which not all of them do).
fn join_cjk_lines(events: &mut [Event<'_>]) {
    for i in 1..events.len().saturating_sub(1) {
        if !matches!(events[i], Event::SoftBreak) {
            continue;
        }
        let before = match &events[i - 1] {
            Event::Text(t) => t.chars().next_back(),
            _ => None,
        };
        let after = match &events[i + 1] {
            Event::Text(t) => t.chars().next(),
            _ => None,
        };
        if before.is_some_and(is_cjk) && after.is_some_and(is_cjk) {
            events[i] = Event::Text(CowStr::Borrowed(""));
        }
    }
}

/// Han, kana, CJK punctuation and full-width forms; not Hangul, which
/// puts spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x303F | 0x3040..=0x30FF | 0x3100..=0x31FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
        | 0x20000..=0x3FFFF)
}

fn is_absolute(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")) && url.len() > 8
        || lower.starts_with("mailto:")
}

fn sanitiser() -> ammonia::Builder<'static> {
    let mut builder = ammonia::Builder::default();
    builder
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer"));
    builder
}

/// Plain text: paragraphs separated by blank lines, lists with dashes or
/// numbers, every link written out after its text.
fn to_text(events: &[Event<'_>]) -> String {
    let mut out = String::new();
    let mut links: Vec<CowStr<'_>> = Vec::new();
    let mut lists: Vec<Option<u64>> = Vec::new();
    for event in events {
        match event {
            Event::Text(t) | Event::Code(t) => out.push_str(t),
            Event::SoftBreak => out.push(' '),
            Event::HardBreak => out.push('\n'),
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => links.push(dest_url.clone()),
            Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
                if let Some(url) = links.pop() {
                    let url = url.trim_start_matches("mailto:");
                    if !out.ends_with(url) {
                        out.push_str(&format!(" <{url}>"));
                    }
                }
            }
            Event::Start(Tag::List(start)) => lists.push(*start),
            Event::End(TagEnd::List(_)) => {
                lists.pop();
                if lists.is_empty() {
                    out.push_str("\n\n");
                }
            }
            Event::Start(Tag::Item) => {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                let depth = lists.len().saturating_sub(1);
                out.push_str(&"  ".repeat(depth));
                match lists.last_mut() {
                    Some(Some(n)) => {
                        out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => out.push_str("- "),
                }
            }
            Event::End(TagEnd::Paragraph)
            | Event::End(TagEnd::Heading(_))
            | Event::End(TagEnd::BlockQuote(_))
                if lists.is_empty() =>
            {
                out.push_str("\n\n")
            }
            Event::End(TagEnd::CodeBlock)
            | Event::End(TagEnd::TableRow)
            | Event::End(TagEnd::TableHead) => out.push('\n'),
            Event::End(TagEnd::TableCell) => out.push_str("  "),
            Event::Rule => out.push_str("----\n\n"),
            _ => {}
        }
    }
    wrap(out.trim())
}

/// Wraps long lines at word boundaries, measuring by display width (a
/// Chinese character takes two columns) and breaking between CJK
/// characters, which have no spaces between words; list items keep their
/// indent. URLs and other space-free Latin runs are never split.
pub fn wrap(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / TEXT_WIDTH);
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if textwrap::core::display_width(line) <= TEXT_WIDTH {
            out.push_str(line);
            continue;
        }
        let hang = " ".repeat(list_indent(line).min(8));
        let options = textwrap::Options::new(TEXT_WIDTH)
            .subsequent_indent(&hang)
            .break_words(false)
            .word_separator(textwrap::WordSeparator::Custom(cjk_aware_words))
            .word_splitter(textwrap::WordSplitter::NoHyphenation);
        out.push_str(&textwrap::wrap(line, &options).join("\n"));
    }
    out
}

/// Columns before a list item's text ("- ", "12. ", with any leading
/// spaces), so its continuation lines hang under the text; 0 for prose.
fn list_indent(line: &str) -> usize {
    let body = line.trim_start_matches(' ');
    let lead = line.len() - body.len();
    let digits = body.len() - body.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let marker = if body.starts_with("- ") || body.starts_with("* ") {
        2
    } else if digits > 0 && body[digits..].starts_with(". ") {
        digits + 2
    } else {
        0
    };
    lead + marker
}

/// Words split at spaces; a word with wide (CJK) characters is split
/// further where the Unicode line-breaking rules allow, so a Chinese
/// sentence wraps while a URL stays whole.
fn cjk_aware_words(line: &str) -> Box<dyn Iterator<Item = textwrap::core::Word<'_>> + '_> {
    use textwrap::WordSeparator;
    Box::new(WordSeparator::AsciiSpace.find_words(line).flat_map(|word| {
        let wide = textwrap::core::display_width(word.word) > word.word.chars().count();
        if !wide {
            return vec![word];
        }
        let mut parts: Vec<_> = WordSeparator::UnicodeBreakProperties
            .find_words(word.word)
            .collect();
        if let Some(last) = parts.last_mut() {
            last.whitespace = word.whitespace;
        }
        parts
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_break_inside_chinese_is_no_space() {
        let block =
            render("中国移动\n发布了计划。\nThe plan\nwas published.\n中文\nEnglish").unwrap();
        assert!(
            block.text.contains("中国移动发布了计划。"),
            "{}",
            block.text
        );
        assert!(
            block.html.contains("中国移动发布了计划。"),
            "{}",
            block.html
        );
        assert!(
            block.text.contains("The plan was published."),
            "{}",
            block.text
        );
        // Between Chinese and English the break still reads as a space.
        assert!(block.text.contains("中文 English"), "{}", block.text);
        // Korean puts spaces between words: its breaks stay.
        let korean = render("한국어\n문장").unwrap();
        assert!(korean.text.contains("한국어 문장"), "{}", korean.text);
    }

    #[test]
    fn chinese_wraps_by_display_width_and_urls_stay_whole() {
        let paragraph = "中国移动发布智慧城市计划，由地市一级负责建设和运营五大平台。".repeat(8);
        let url = format!("<https://example.com/{}>", "a/b".repeat(40));
        let wrapped = wrap(&format!("{paragraph} {url} 点评"));
        let lines: Vec<&str> = wrapped.lines().collect();
        assert!(lines.len() > 4, "{wrapped}");
        for line in &lines {
            let width = textwrap::core::display_width(line);
            assert!(
                width <= TEXT_WIDTH || line.contains("https://"),
                "{width}: {line}"
            );
        }
        // Nothing lost, nothing added but line breaks.
        let squeeze = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(
            squeeze(&wrapped),
            squeeze(&format!("{paragraph}{url} 点评"))
        );
        assert!(
            lines.iter().any(|l| *l == url),
            "the URL is split: {wrapped}"
        );
    }

    #[test]
    fn list_items_keep_their_hanging_indent() {
        let item = format!("- {}", "word ".repeat(30));
        let wrapped = wrap(item.trim_end());
        let lines: Vec<&str> = wrapped.lines().collect();
        assert!(lines.len() > 1);
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.starts_with("  ") && !l.starts_with("   ")),
            "{wrapped}"
        );
    }

    #[test]
    fn raw_html_never_passes() {
        let block =
            render("Hello <script>alert(1)</script> and <img src=x onerror=alert(1)>").unwrap();
        assert!(!block.html.contains("<script"), "{}", block.html);
        assert!(!block.html.contains("<img"), "{}", block.html);
        assert!(block.html.contains("&lt;script&gt;"));
    }

    #[test]
    fn links_are_absolute_and_written_out_in_text() {
        let block = render("Read [the paper](https://example.com/p?a=1&b=2) now.").unwrap();
        assert!(
            block
                .html
                .contains(r#"href="https://example.com/p?a=1&amp;b=2""#),
            "{}",
            block.html
        );
        assert_eq!(
            block.text,
            "Read the paper <https://example.com/p?a=1&b=2> now."
        );
        let err = render("A\n\nsee [here](/relative)").unwrap_err();
        assert_eq!(err.offset, 7, "where the link starts");
        assert!(err.message.contains("absolute"));
        assert!(render("[x](javascript:alert(1))").is_err());
    }

    #[test]
    fn lists_become_dashes_and_numbers() {
        let block = render("- one\n- two\n\n1. first\n2. second").unwrap();
        assert_eq!(block.text, "- one\n- two\n\n1. first\n2. second");
    }

    #[test]
    fn long_lines_wrap() {
        let text = wrap(&"word ".repeat(40));
        assert!(text.lines().all(|l| l.chars().count() <= TEXT_WIDTH));
    }
}
