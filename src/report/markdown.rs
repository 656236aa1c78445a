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
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.iter().cloned());
    let html = sanitiser().clean(&html).to_string();
    Ok(Block {
        html,
        text: to_text(&events),
    })
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

/// Wraps long lines at word boundaries; list items keep their indent.
pub fn wrap(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / TEXT_WIDTH);
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.chars().count() <= TEXT_WIDTH {
            out.push_str(line);
            continue;
        }
        let indent = line.len()
            - line
                .trim_start_matches([
                    ' ', '-', '.', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
                ])
                .len();
        let hang = " ".repeat(indent.min(8));
        let mut width = 0;
        for (j, word) in line.split(' ').enumerate() {
            let len = word.chars().count();
            if j > 0 && width + 1 + len > TEXT_WIDTH && width > indent {
                out.push('\n');
                out.push_str(&hang);
                width = hang.len();
            } else if j > 0 {
                out.push(' ');
                width += 1;
            }
            out.push_str(word);
            width += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
