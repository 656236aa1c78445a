//! A report as a made-up reader would receive it, with links that lead
//! nowhere: for the editors' preview and the `report preview` command.

use tera::Tera;

use crate::config::Settings;
use crate::report::{render_report, Reader, RenderError, Report, SendContext};

/// A report rendered for one sample reader.
pub struct Sample {
    pub subject: String,
    pub html: String,
    pub text: String,
    /// The inert unsubscribe link the copy carries.
    pub unsubscribe_url: String,
}

/// Renders `report` the way a send would, for a reader called
/// `reader_name`. Its unsubscribe and feedback links open harmless pages:
/// clicking them in a preview must not unsubscribe or vote for anyone.
pub fn render_sample(
    settings: &Settings,
    tera: &Tera,
    report: &Report,
    reader_name: &str,
) -> Result<Sample, RenderError> {
    let base = settings.base();
    let context = SendContext {
        base_url: &base,
        site_name: &settings.site_name,
        archive_url: format!("{base}/archive/{}", report.slug()),
    };
    let rendered = render_report(tera, report, &context)?;
    let unsubscribe_url = format!("{base}/unsubscribe?token=preview");
    let feedback_yes_url = format!("{base}/feedback?token=preview&answer=yes");
    let feedback_no_url = format!("{base}/feedback?token=preview&answer=no");
    let reader = Reader {
        name: Some(reader_name),
        unsubscribe_url: &unsubscribe_url,
        feedback_yes_url: &feedback_yes_url,
        feedback_no_url: &feedback_no_url,
    };
    Ok(Sample {
        html: rendered.html.fill(&reader, true),
        text: rendered.text.fill(&reader, false),
        subject: rendered.subject,
        unsubscribe_url,
    })
}
