//! Rendering a report with Tera: the HTML email (CSS inlined), its plain
//! text part and the web archive page, from one shared body template.
//!
//! The email is rendered once per send with markers where each reader's
//! parts go (greeting, unsubscribe and feedback links); [`Personalisable`]
//! then fills a reader's copy by concatenation, without running Tera again.

use serde::Serialize;
use serde_json::json;
use tera::Tera;

use super::model::Report;

/// Templates of this module, embedded in the binary.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "report/meta.html",
        include_str!("../../templates/report/meta.html"),
    ),
    (
        "report/body.html",
        include_str!("../../templates/report/body.html"),
    ),
    (
        "report/related.html",
        include_str!("../../templates/report/related.html"),
    ),
    (
        "email/layout.html",
        include_str!("../../templates/email/layout.html"),
    ),
    (
        "email/report.html",
        include_str!("../../templates/email/report.html"),
    ),
    (
        "email/report.txt",
        include_str!("../../templates/email/report.txt"),
    ),
    (
        "pages/archive_index.html",
        include_str!("../../templates/pages/archive_index.html"),
    ),
    (
        "pages/archive_report.html",
        include_str!("../../templates/pages/archive_report.html"),
    ),
];

/// Adds the report templates, and the `url_attr` filter they use, to `tera`.
pub fn register_templates(tera: &mut Tera) -> tera::Result<()> {
    tera.register_filter("url_attr", url_attr);
    tera.register_filter("underline", underline);
    tera.add_raw_templates(TEMPLATES.to_vec())
}

/// Escapes a URL for an HTML attribute without Tera's escaping of `/`,
/// which would make every link in the source unreadable.
fn url_attr(
    value: &tera::Value,
    _: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let url = tera::try_get_value!("url_attr", "value", String, value);
    let mut out = String::with_capacity(url.len());
    escape_html_into(&mut out, &url);
    Ok(tera::Value::String(out))
}

/// A line of `with` (default `-`) as long as the value, for plain-text
/// headings; capped at the text width, since long titles wrap.
fn underline(
    value: &tera::Value,
    args: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let text = tera::try_get_value!("underline", "value", String, value);
    let with = args.get("with").and_then(|v| v.as_str()).unwrap_or("-");
    let width = textwrap::core::display_width(&text).min(super::markdown::TEXT_WIDTH);
    Ok(tera::Value::String(with.repeat(width)))
}

/// Wraps long lines and squeezes the blank lines that template logic
/// leaves behind.
fn tidy_text(text: &str) -> String {
    let wrapped = super::markdown::wrap(text.trim());
    let mut out = String::with_capacity(wrapped.len());
    let mut blank_run = 0;
    for line in wrapped.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A report that could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template: {0}")]
    Template(#[from] tera::Error),
    #[error("inlining CSS: {0}")]
    Inline(String),
    #[error("{0}")]
    Greeting(&'static str),
}

/// What every copy of one send shares.
pub struct SendContext<'a> {
    /// Base URL without a trailing slash.
    pub base_url: &'a str,
    pub site_name: &'a str,
    /// The report's page in the web archive (the "view in browser" link).
    pub archive_url: String,
}

/// One reader's parts of a copy.
pub struct Reader<'a> {
    pub name: Option<&'a str>,
    pub unsubscribe_url: &'a str,
    pub feedback_yes_url: &'a str,
    pub feedback_no_url: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Greeting,
    Unsubscribe,
    FeedbackYes,
    FeedbackNo,
}

/// Markers that survive HTML escaping and CSS inlining untouched.
const MARKERS: [(Slot, &str); 4] = [
    (Slot::Greeting, "NLSLOTGREETINGQZ"),
    (Slot::Unsubscribe, "NLSLOTUNSUBSCRIBEQZ"),
    (Slot::FeedbackYes, "NLSLOTFEEDBACKYESQZ"),
    (Slot::FeedbackNo, "NLSLOTFEEDBACKNOQZ"),
];

#[derive(Debug, Clone)]
enum Segment {
    /// Literal text, with its quoted-printable form made once.
    Text(String, Vec<u8>),
    Slot(Slot),
}

/// The greeting in the publication's language, rendered once from
/// `email/greeting.txt`: the text around a reader's name, or the greeting
/// for a reader without one.
#[derive(Debug, Clone)]
pub struct Greeting {
    before_name: String,
    after_name: String,
    anonymous: String,
}

/// Stands for the name while the greeting template is rendered.
const NAME_MARKER: &str = "NLNAMEQZ";

impl Greeting {
    fn render(tera: &Tera) -> Result<Greeting, RenderError> {
        let named = tera.render(
            "email/greeting.txt",
            &tera::Context::from_value(json!({ "name": NAME_MARKER }))?,
        )?;
        let anonymous = tera.render(
            "email/greeting.txt",
            &tera::Context::from_value(json!({ "name": null }))?,
        )?;
        let (before, after) = named.trim().split_once(NAME_MARKER).ok_or_else(|| {
            RenderError::Greeting("email/greeting.txt must show the reader's name")
        })?;
        Ok(Greeting {
            before_name: before.to_string(),
            after_name: after.to_string(),
            anonymous: anonymous.trim().to_string(),
        })
    }
}

/// A rendered part, split once into literal text and per-reader slots.
#[derive(Debug, Clone)]
pub struct Personalisable {
    segments: Vec<Segment>,
    literal_len: usize,
    greeting: Greeting,
}

impl Personalisable {
    fn split(rendered: &str, greeting: &Greeting) -> Personalisable {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = rendered;
        while let Some(at) = rest.find("NLSLOT") {
            literal.push_str(&rest[..at]);
            rest = &rest[at..];
            match MARKERS.iter().find(|(_, m)| rest.starts_with(m)) {
                Some((slot, marker)) => {
                    let text = std::mem::take(&mut literal);
                    let encoded = quoted_printable_segment(&text);
                    segments.push(Segment::Text(text, encoded));
                    segments.push(Segment::Slot(*slot));
                    rest = &rest[marker.len()..];
                }
                None => {
                    literal.push_str("NLSLOT");
                    rest = &rest["NLSLOT".len()..];
                }
            }
        }
        literal.push_str(rest);
        let encoded = quoted_printable_segment(&literal);
        segments.push(Segment::Text(literal, encoded));
        let literal_len = segments
            .iter()
            .map(|s| match s {
                Segment::Text(t, _) => t.len(),
                Segment::Slot(_) => 0,
            })
            .sum();
        Personalisable {
            segments,
            literal_len,
            greeting: greeting.clone(),
        }
    }

    /// A reader's copy. With `html`, the reader's values are escaped.
    pub fn fill(&self, reader: &Reader<'_>, html: bool) -> String {
        let mut out = String::with_capacity(self.literal_len + 512);
        for segment in &self.segments {
            match segment {
                Segment::Text(t, _) => out.push_str(t),
                Segment::Slot(slot) => slot_value(&mut out, *slot, reader, &self.greeting, html),
            }
        }
        out
    }

    /// A reader's copy already in quoted-printable transfer encoding, with
    /// CRLF line ends: the literal text was encoded once, so only the
    /// reader's few values are encoded here. Encoding a whole 20 kB part per
    /// reader would cost more than everything else in building the message.
    pub fn fill_quoted_printable(&self, reader: &Reader<'_>, html: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.literal_len + self.literal_len / 8 + 512);
        let mut value = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(_, encoded) => out.extend_from_slice(encoded),
                Segment::Slot(slot) => {
                    value.clear();
                    slot_value(&mut value, *slot, reader, &self.greeting, html);
                    out.extend_from_slice(&quoted_printable_segment(&value));
                }
            }
        }
        // The soft break after the last piece joins it to nothing.
        if out.ends_with(b"=\r\n") {
            out.truncate(out.len() - 3);
        }
        out
    }
}

/// Writes a reader's value for `slot`; with `html`, escaped.
fn slot_value(out: &mut String, slot: Slot, reader: &Reader<'_>, greeting: &Greeting, html: bool) {
    let push = |out: &mut String, value: &str| {
        if html {
            escape_html_into(out, value)
        } else {
            out.push_str(value)
        }
    };
    match slot {
        Slot::Greeting => match reader.name {
            Some(name) => {
                push(out, &greeting.before_name);
                push(out, name);
                push(out, &greeting.after_name);
            }
            None => push(out, &greeting.anonymous),
        },
        Slot::Unsubscribe => push(out, reader.unsubscribe_url),
        Slot::FeedbackYes => push(out, reader.feedback_yes_url),
        Slot::FeedbackNo => push(out, reader.feedback_no_url),
    }
}

/// One piece of a part in quoted-printable form. Pieces are encoded apart
/// and joined: each ends with a line break of its own or a soft break
/// (`=` CRLF, which decodes to nothing), so no joined line grows past the
/// 76 characters the encoding allows.
fn quoted_printable_segment(text: &str) -> Vec<u8> {
    if text.is_empty() {
        return Vec::new();
    }
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let mut encoded = quoted_printable::encode(crlf.as_bytes());
    if crlf.ends_with("\r\n") {
        if !encoded.ends_with(b"\r\n") {
            encoded.extend_from_slice(b"\r\n");
        }
    } else {
        encoded.extend_from_slice(b"=\r\n");
    }
    encoded
}

fn escape_html_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The shared result of rendering a report for a send.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    pub subject: String,
    pub html: Personalisable,
    pub text: Personalisable,
}

/// "6–12 March 2020", or the date as `YYYY-MM-DD` (which the templates'
/// `long_date` filter writes out in the publication's language), or nothing.
fn dateline(report: &Report) -> Option<String> {
    report
        .meta
        .period
        .clone()
        .or_else(|| report.meta.date.map(|d| d.format("%Y-%m-%d").to_string()))
}

#[derive(Serialize)]
struct Slots {
    greeting: &'static str,
    unsubscribe_url: &'static str,
    feedback_yes_url: &'static str,
    feedback_no_url: &'static str,
}

const SLOT_VALUES: Slots = Slots {
    greeting: MARKERS[0].1,
    unsubscribe_url: MARKERS[1].1,
    feedback_yes_url: MARKERS[2].1,
    feedback_no_url: MARKERS[3].1,
};

/// Renders the email once for a whole send.
pub fn render_report(
    tera: &Tera,
    report: &Report,
    ctx: &SendContext<'_>,
) -> Result<RenderedReport, RenderError> {
    let context = tera::Context::from_value(json!({
        "report": report,
        "dateline": dateline(report),
        "site_name": ctx.site_name,
        "base_url": ctx.base_url,
        "archive_url": ctx.archive_url,
        "slots": SLOT_VALUES,
    }))?;
    let html = tera.render("email/report.html", &context)?;
    let html = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_at_rules(true)
        .build()
        .inline(&html)
        .map_err(|e| RenderError::Inline(e.to_string()))?;
    let text = tidy_text(&tera.render("email/report.txt", &context)?);
    let greeting = Greeting::render(tera)?;
    Ok(RenderedReport {
        subject: report.meta.title.clone(),
        html: Personalisable::split(&html, &greeting),
        text: Personalisable::split(&text, &greeting),
    })
}

/// The report's page in the web archive. `helpful` is the "N out of M found
/// this helpful" sentence, once anyone answered.
pub fn render_archive_page(
    tera: &Tera,
    report: &Report,
    site_name: &str,
    helpful: Option<&str>,
) -> Result<String, RenderError> {
    let context = tera::Context::from_value(json!({
        "report": report,
        "dateline": dateline(report),
        "site_name": site_name,
        "helpful": helpful,
    }))?;
    Ok(tera.render("pages/archive_report.html", &context)?)
}

/// A line of the archive index.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveEntry {
    pub title: String,
    pub slug: String,
    pub dateline: Option<String>,
    pub summary: Option<String>,
}

impl ArchiveEntry {
    pub fn of(report: &Report) -> ArchiveEntry {
        ArchiveEntry {
            title: report.meta.title.clone(),
            slug: report.meta.slug.clone(),
            dateline: dateline(report),
            summary: report.meta.summary.clone(),
        }
    }
}

/// The archive index, newest first as given.
pub fn render_archive_index(
    tera: &Tera,
    site_name: &str,
    entries: &[ArchiveEntry],
) -> Result<String, RenderError> {
    let context = tera::Context::from_value(json!({ "site_name": site_name, "entries": entries }))?;
    Ok(tera.render("pages/archive_index.html", &context)?)
}
