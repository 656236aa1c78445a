//! The parsed report: what an editor wrote, in typed form.

use chrono::NaiveDate;
use serde::Serialize;

/// A weekly report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub meta: ReportMeta,
    /// Paragraphs before the first section.
    pub intro: Block,
    pub sections: Vec<Section>,
    /// The "Discover more" list at the end.
    pub related: Option<RelatedReading>,
}

/// The front matter.
#[derive(Debug, Clone, Serialize)]
pub struct ReportMeta {
    pub title: String,
    pub slug: String,
    pub date: Option<NaiveDate>,
    /// Free text such as "6–12 March 2020".
    pub period: Option<String>,
    pub byline: Option<String>,
    pub editor: Option<String>,
    /// One paragraph; also the hidden preheader of the email.
    pub summary: Option<String>,
    /// A closing line after the last section.
    pub sign_off: Option<String>,
}

/// Markdown rendered twice: sanitised HTML and plain text.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Block {
    pub html: String,
    pub text: String,
}

impl Block {
    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// A `#` section: news, voices, a bullet review…
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub title: String,
    /// Text (paragraphs, bullet lists) before the section's first item.
    pub intro: Block,
    pub items: Vec<Item>,
}

/// A `##` news item.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub headline: String,
    pub body: Block,
    pub source: Option<Source>,
    /// The editor's comment.
    pub comment: Option<String>,
}

/// Where a news item comes from.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub name: String,
    pub url: Option<String>,
}

/// The related-reading list.
#[derive(Debug, Clone, Serialize)]
pub struct RelatedReading {
    pub title: String,
    pub links: Vec<RelatedLink>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelatedLink {
    pub title: String,
    pub url: String,
    pub teaser: Option<String>,
}

impl Report {
    pub fn slug(&self) -> &str {
        &self.meta.slug
    }

    pub fn title(&self) -> &str {
        &self.meta.title
    }
}
