//! Reading the authoring format: YAML front matter, then Markdown in which
//! `#` starts a section, `##` a news item, and the lines `Source:` and
//! `Comment:` close an item (or their Chinese forms `来源：` and `点评：`,
//! so an editor writes the labels of the report's own language). A section whose heading ends in `{related}` is
//! the related-reading list.

use std::fmt;

use chrono::NaiveDate;
use serde::Deserialize;

use super::markdown;
use super::model::{Block, Item, RelatedLink, RelatedReading, Report, ReportMeta, Section, Source};

/// Line prefixes that give an item's source, in the languages we ship.
const SOURCE_LABELS: &[&str] = &["Source:", "来源：", "来源:"];
/// Line prefixes that start the editors' comment on an item.
const COMMENT_LABELS: &[&str] = &["Comment:", "点评：", "点评:", "评论：", "评论:"];

/// The rest of `line` after the first of `labels` it starts with.
fn strip_label<'a>(line: &'a str, labels: &[&str]) -> Option<&'a str> {
    labels.iter().find_map(|label| line.strip_prefix(label))
}

/// Why a report file was refused. The message names the line when there is
/// one, so an editor can go straight to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ReportError {}

fn at(line: usize, message: impl Into<String>) -> ReportError {
    ReportError {
        line: Some(line),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    title: String,
    slug: String,
    date: Option<NaiveDate>,
    period: Option<String>,
    byline: Option<String>,
    editor: Option<String>,
    summary: Option<String>,
    sign_off: Option<String>,
}

/// Markdown lines with the file line each came from.
#[derive(Default)]
struct Chunk {
    text: String,
    /// File line of each line of `text`.
    lines: Vec<usize>,
}

impl Chunk {
    fn push(&mut self, line_no: usize, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        self.lines.push(line_no);
    }

    fn render(&self) -> Result<Block, ReportError> {
        markdown::render(&self.text).map_err(|e| {
            let index = self.text[..e.offset.min(self.text.len())]
                .matches('\n')
                .count();
            let line = self
                .lines
                .get(index)
                .or(self.lines.last())
                .copied()
                .unwrap_or(1);
            at(line, e.message)
        })
    }
}

struct ItemDraft {
    line: usize,
    headline: String,
    body: Chunk,
    source: Option<Source>,
    comment: Option<String>,
    in_comment: bool,
}

struct SectionDraft {
    line: usize,
    title: String,
    intro: Chunk,
    items: Vec<ItemDraft>,
}

struct RelatedDraft {
    title: String,
    links: Vec<RelatedLink>,
}

impl Report {
    /// Parses a report file. Nothing is returned unless the whole file is
    /// good.
    pub fn parse(source: &str) -> Result<Report, ReportError> {
        let (meta, body_start, body) = front_matter(source)?;
        let mut drafts = Drafts::default();
        for (index, line) in body.lines().enumerate() {
            drafts.take_line(body_start + index, line)?;
        }
        if drafts.in_fence {
            return Err(at(
                body_start + body.lines().count().saturating_sub(1),
                "a code block (```) is never closed",
            ));
        }
        build(meta, drafts.intro, drafts.sections, drafts.related)
    }
}

/// The report as read so far, line by line.
#[derive(Default)]
struct Drafts {
    intro: Chunk,
    sections: Vec<SectionDraft>,
    related: Option<RelatedDraft>,
    /// Inside a fenced code block, where nothing is markup of the format.
    in_fence: bool,
}

impl Drafts {
    /// Reads file line `n`: a heading, a related link, a labelled line of an
    /// item, or text for the current part.
    fn take_line(&mut self, n: usize, line: &str) -> Result<(), ReportError> {
        let trimmed = line.trim_start();
        let fence = trimmed.starts_with("```") || trimmed.starts_with("~~~");
        if fence {
            self.in_fence = !self.in_fence;
        }
        if self.in_fence || fence {
            self.text(n, line);
            return Ok(());
        }
        if let Some(heading) = line.strip_prefix("# ") {
            return self.section_heading(n, heading.trim());
        }
        if let Some(related) = self.related.as_mut() {
            if !line.trim().is_empty() {
                related.links.push(related_link(n, line)?);
            }
            return Ok(());
        }
        if let Some(headline) = line.strip_prefix("## ") {
            return self.item_heading(n, headline.trim());
        }
        if let Some(value) = strip_label(line, SOURCE_LABELS) {
            let item = self.labelled_item(n, "Source")?;
            item.in_comment = false;
            item.source = Some(parse_source(n, value.trim())?);
            return Ok(());
        }
        if let Some(value) = strip_label(line, COMMENT_LABELS) {
            let item = self.labelled_item(n, "Comment")?;
            item.comment = Some(value.trim().to_string());
            item.in_comment = true;
            return Ok(());
        }
        if self.after_labels(n, line)? {
            return Ok(());
        }
        self.text(n, line);
        Ok(())
    }

    /// Ordinary text, for the current item, section intro or report intro.
    fn text(&mut self, n: usize, line: &str) {
        current_chunk(&mut self.intro, &mut self.sections).push(n, line);
    }

    /// `# Title` starts a section; `# Title {related}` the related reading,
    /// which comes last and once.
    fn section_heading(&mut self, n: usize, heading: &str) -> Result<(), ReportError> {
        if let Some(title) = heading.strip_suffix("{related}") {
            if self.related.is_some() {
                return Err(at(
                    n,
                    "only one section can be the related reading (`{related}`)",
                ));
            }
            let title = title.trim();
            if title.is_empty() {
                return Err(at(
                    n,
                    "the related-reading section needs a title, e.g. `# Discover more {related}`",
                ));
            }
            self.related = Some(RelatedDraft {
                title: title.to_string(),
                links: Vec::new(),
            });
            return Ok(());
        }
        if self.related.is_some() {
            return Err(at(n, "the related-reading section must be the last one"));
        }
        if heading.is_empty() {
            return Err(at(n, "a section heading (`# …`) needs a title"));
        }
        self.sections.push(SectionDraft {
            line: n,
            title: heading.to_string(),
            intro: Chunk::default(),
            items: Vec::new(),
        });
        Ok(())
    }

    /// `## Headline` starts a news item of the current section.
    fn item_heading(&mut self, n: usize, headline: &str) -> Result<(), ReportError> {
        let Some(section) = self.sections.last_mut() else {
            return Err(at(n, format!("item \"{headline}\" comes before any section: start one with `# Section title`")));
        };
        if headline.is_empty() {
            return Err(at(n, "an item heading (`## …`) needs a headline"));
        }
        section.items.push(ItemDraft {
            line: n,
            headline: headline.to_string(),
            body: Chunk::default(),
            source: None,
            comment: None,
            in_comment: false,
        });
        Ok(())
    }

    /// The item a `label:` line belongs to, which must not have one yet.
    fn labelled_item(&mut self, n: usize, label: &str) -> Result<&mut ItemDraft, ReportError> {
        let Some(item) = self.sections.last_mut().and_then(|s| s.items.last_mut()) else {
            return Err(at(
                n,
                format!("`{label}:` belongs to a news item (after a `## headline`)"),
            ));
        };
        let taken = match label {
            "Source" => item.source.is_some(),
            _ => item.comment.is_some(),
        };
        if taken {
            return Err(at(
                n,
                format!("item \"{}\" has two {label}: lines", item.headline),
            ));
        }
        Ok(item)
    }

    /// A line after an item's Source:/Comment: lines: the rest of the
    /// comment's paragraph, or blank. Returns whether the line was one.
    fn after_labels(&mut self, n: usize, line: &str) -> Result<bool, ReportError> {
        let Some(item) = self.sections.last_mut().and_then(|s| s.items.last_mut()) else {
            return Ok(false);
        };
        if item.in_comment {
            // A comment runs to the end of its paragraph.
            if line.trim().is_empty() {
                item.in_comment = false;
            } else if let Some(comment) = item.comment.as_mut() {
                comment.push(' ');
                comment.push_str(line.trim());
            }
            return Ok(true);
        }
        if item.source.is_none() && item.comment.is_none() {
            return Ok(false);
        }
        if !line.trim().is_empty() {
            return Err(at(
                n,
                format!("text after the Source:/Comment: lines of \"{}\"; start a new item with `## headline`", item.headline),
            ));
        }
        Ok(true)
    }
}

/// Where ordinary text goes: the current item, else the current section's
/// intro, else the report's intro.
fn current_chunk<'a>(intro: &'a mut Chunk, sections: &'a mut [SectionDraft]) -> &'a mut Chunk {
    match sections.last_mut() {
        Some(section) => match section.items.last_mut() {
            Some(item) => &mut item.body,
            None => &mut section.intro,
        },
        None => intro,
    }
}

fn build(
    meta: ReportMeta,
    intro: Chunk,
    drafts: Vec<SectionDraft>,
    related: Option<RelatedDraft>,
) -> Result<Report, ReportError> {
    if drafts.is_empty() {
        return Err(ReportError {
            line: None,
            message: "the report has no sections: add at least one `# Section title`".into(),
        });
    }
    let mut sections = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let intro = draft.intro.render()?;
        if intro.is_empty() && draft.items.is_empty() {
            return Err(at(
                draft.line,
                format!("section \"{}\" is empty", draft.title),
            ));
        }
        let mut items = Vec::with_capacity(draft.items.len());
        for item in draft.items {
            let body = item.body.render()?;
            if body.is_empty() {
                return Err(at(
                    item.line,
                    format!("item \"{}\" has no text", item.headline),
                ));
            }
            items.push(Item {
                headline: item.headline,
                body,
                source: item.source,
                comment: item.comment,
            });
        }
        sections.push(Section {
            title: draft.title,
            intro,
            items,
        });
    }
    let related = match related {
        Some(r) if r.links.is_empty() => {
            return Err(ReportError {
                line: None,
                message: format!("the related-reading section \"{}\" has no links", r.title),
            })
        }
        Some(r) => Some(RelatedReading {
            title: r.title,
            links: r.links,
        }),
        None => None,
    };
    Ok(Report {
        meta,
        intro: intro.render()?,
        sections,
        related,
    })
}

/// Splits off and checks the front matter; returns it with the file line
/// where the body starts and the body.
fn front_matter(source: &str) -> Result<(ReportMeta, usize, &str), ReportError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut lines = source.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(at(1, "missing front matter: the file must start with a line `---`, then `title:`, `slug:` … and another `---`"));
    }
    let mut offset = source.find('\n').map(|i| i + 1).unwrap_or(source.len());
    let yaml_start = offset;
    let mut line_no = 1;
    let mut end = None;
    for line in lines {
        line_no += 1;
        if line.trim_end() == "---" {
            end = Some((offset, offset + line.len(), line_no));
            break;
        }
        offset += line.len();
    }
    let Some((yaml_end, body_offset, closing_line)) = end else {
        return Err(at(
            1,
            "the front matter is never closed: add a line `---` after it",
        ));
    };
    let yaml = &source[yaml_start..yaml_end];
    let fm: FrontMatter = serde_norway::from_str(yaml).map_err(|e| {
        let line = e.location().map(|l| l.line() + 1).unwrap_or(2);
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        at(line, format!("front matter: {message}"))
    })?;
    let field_line = |name: &str| {
        yaml.lines()
            .position(|l| l.starts_with(&format!("{name}:")))
            .map(|i| i + 2)
            .unwrap_or(2)
    };
    let title = fm.title.trim().to_string();
    if title.is_empty() {
        return Err(at(field_line("title"), "front matter: the title is empty"));
    }
    if title.contains(['\r', '\n']) {
        return Err(at(
            field_line("title"),
            "front matter: the title must be one line",
        ));
    }
    let slug = fm.slug.trim().to_string();
    let slug_ok = !slug.is_empty()
        && slug.len() <= 100
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if !slug_ok {
        return Err(at(
            field_line("slug"),
            format!("front matter: slug {slug:?} must be lowercase letters, digits and hyphens"),
        ));
    }
    let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let meta = ReportMeta {
        title,
        slug,
        date: fm.date,
        period: clean(fm.period),
        byline: clean(fm.byline),
        editor: clean(fm.editor),
        summary: clean(fm.summary),
        sign_off: clean(fm.sign_off),
    };
    Ok((
        meta,
        closing_line + 1,
        &source[body_offset.min(source.len())..],
    ))
}

/// `Source: Name` or `Source: [Name](https://…)`.
fn parse_source(line: usize, value: &str) -> Result<Source, ReportError> {
    if value.is_empty() {
        return Err(at(line, "the Source: line is empty"));
    }
    match markdown_link(value) {
        Some((name, url, rest)) if rest.trim().is_empty() => {
            check_url(line, url)?;
            Ok(Source {
                name: name.to_string(),
                url: Some(url.to_string()),
            })
        }
        _ => Ok(Source {
            name: value.to_string(),
            url: None,
        }),
    }
}

/// `- [Title](https://…) — teaser` (the dash or colon before the teaser is optional).
fn related_link(line: usize, text: &str) -> Result<RelatedLink, ReportError> {
    let expected = "related reading is a list of `- [Title](https://…) — teaser`";
    let item = text
        .trim_start()
        .strip_prefix("- ")
        .or_else(|| text.trim_start().strip_prefix("* "));
    let Some((title, url, rest)) = item.and_then(markdown_link) else {
        return Err(at(line, expected));
    };
    check_url(line, url)?;
    let teaser = rest.trim().trim_start_matches(['—', '–', '-', ':']).trim();
    Ok(RelatedLink {
        title: title.trim().to_string(),
        url: url.to_string(),
        teaser: (!teaser.is_empty()).then(|| teaser.to_string()),
    })
}

/// `[text](url)` at the start of `s`: the text, the URL and what follows.
fn markdown_link(s: &str) -> Option<(&str, &str, &str)> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find("](")?;
    let (text, after) = (&rest[..close], &rest[close + 2..]);
    let end = after.find(')')?;
    Some((text, &after[..end], &after[end + 1..]))
}

fn check_url(line: usize, url: &str) -> Result<(), ReportError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(at(
            line,
            format!("link {url:?} must be an absolute http(s) URL"),
        )),
    }
}
