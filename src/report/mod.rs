//! The weekly report: the format editors write (Markdown with front
//! matter), its parsed model, and its rendering to email and web.
//!
//! ```text
//! ---
//! title: Industrial Blockchain Weekly
//! slug: industrial-blockchain-weekly-2020-11
//! date: 2020-03-13
//! period: 6–12 March 2020
//! byline: Wang Qiao
//! editor: Sole Show
//! summary: One paragraph; also the email's preheader.
//! sign_off: Questions or tips? Just reply to this email.
//! ---
//! Intro paragraphs.
//!
//! # I. Industry news and reviews
//! ## A headline
//! The body, in Markdown.
//!
//! Source: [People's Network](https://example.com/article)
//! Comment: The editor's comment.
//!
//! # Discover more {related}
//! - [A related article](https://example.com/more) — a one-line teaser
//! ```

mod markdown;
mod model;
mod parse;
mod render;

pub use model::{Block, Item, RelatedLink, RelatedReading, Report, ReportMeta, Section, Source};
pub use parse::ReportError;
pub use render::{
    register_templates, render_archive_index, render_archive_page, render_report, ArchiveEntry,
    Personalisable, Reader, RenderError, RenderedReport, SendContext,
};

#[cfg(test)]
mod tests;
