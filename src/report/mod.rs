//! Placeholder until the report module lands.
pub fn register_templates(_tera: &mut tera::Tera) -> tera::Result<()> {
    Ok(())
}

/// Placeholder.
pub struct Report {
    slug: String,
    title: String,
}

impl Report {
    pub fn parse(source: &str) -> Result<Report, String> {
        let mut slug = None;
        let mut title = None;
        for line in source.lines() {
            if let Some(v) = line.strip_prefix("slug:") {
                slug = Some(v.trim().to_string());
            }
            if let Some(v) = line.strip_prefix("title:") {
                title = Some(v.trim().to_string());
            }
        }
        Ok(Report {
            slug: slug.ok_or("no slug")?,
            title: title.ok_or("no title")?,
        })
    }
    pub fn slug(&self) -> &str {
        &self.slug
    }
    pub fn title(&self) -> &str {
        &self.title
    }
}

pub struct SendContext<'a> {
    pub base_url: &'a str,
    pub site_name: &'a str,
    pub archive_url: String,
}
pub struct Reader<'a> {
    pub name: Option<&'a str>,
    pub unsubscribe_url: &'a str,
    pub feedback_yes_url: &'a str,
    pub feedback_no_url: &'a str,
}
pub struct Personalisable(String);
impl Personalisable {
    pub fn fill(&self, reader: &Reader, _html: bool) -> String {
        format!(
            "{} {} {} {} {}",
            self.0,
            reader.name.unwrap_or(""),
            reader.unsubscribe_url,
            reader.feedback_yes_url,
            reader.feedback_no_url
        )
    }
}
pub struct RenderedReport {
    pub subject: String,
    pub html: Personalisable,
    pub text: Personalisable,
}
pub fn render_report(
    _tera: &tera::Tera,
    report: &Report,
    _ctx: &SendContext,
) -> Result<RenderedReport, String> {
    Ok(RenderedReport {
        subject: report.title.clone(),
        html: Personalisable(format!("<p>{}</p>", report.title)),
        text: Personalisable(report.title.clone()),
    })
}
