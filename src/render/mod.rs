//! Templates, compiled into the binary so it runs from any directory, and
//! loaded at startup so a broken template fails then, not at send time.

mod look;
pub mod overrides;

use std::sync::Arc;

use tera::Tera;

use crate::config::Settings;
use crate::i18n::{Catalogue, CatalogueError};
pub use look::Look;

/// Pages and transactional mails owned by this module, by name.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "pages/base.html",
        include_str!("../../templates/pages/base.html"),
    ),
    (
        "pages/home.html",
        include_str!("../../templates/pages/home.html"),
    ),
    (
        "pages/feedback.html",
        include_str!("../../templates/pages/feedback.html"),
    ),
    (
        "pages/message.html",
        include_str!("../../templates/pages/message.html"),
    ),
    (
        "pages/confirm.html",
        include_str!("../../templates/pages/confirm.html"),
    ),
    (
        "pages/unsubscribe.html",
        include_str!("../../templates/pages/unsubscribe.html"),
    ),
    (
        "admin/login.html",
        include_str!("../../templates/admin/login.html"),
    ),
    (
        "admin/layout.html",
        include_str!("../../templates/admin/layout.html"),
    ),
    (
        "admin/error.html",
        include_str!("../../templates/admin/error.html"),
    ),
    (
        "admin/dashboard.html",
        include_str!("../../templates/admin/dashboard.html"),
    ),
    (
        "admin/bar_chart.html",
        include_str!("../../templates/admin/bar_chart.html"),
    ),
    (
        "admin/readers.html",
        include_str!("../../templates/admin/readers.html"),
    ),
    (
        "admin/preview_panel.html",
        include_str!("../../templates/admin/preview_panel.html"),
    ),
    (
        "admin/report_form.html",
        include_str!("../../templates/admin/report_form.html"),
    ),
    (
        "admin/report.html",
        include_str!("../../templates/admin/report.html"),
    ),
    (
        "email/confirmation.html",
        include_str!("../../templates/email/confirmation.html"),
    ),
    (
        "email/confirmation.txt",
        include_str!("../../templates/email/confirmation.txt"),
    ),
    (
        "email/greeting.txt",
        include_str!("../../templates/email/greeting.txt"),
    ),
    (
        "brand/footer.html",
        include_str!("../../templates/brand/footer.html"),
    ),
];

/// Static assets served under `/static/`.
pub const SITE_CSS: &str = include_str!("../../templates/static/site.css");
pub const AUTOSUBMIT_JS: &str = include_str!("../../templates/static/autosubmit.js");
/// The editors' pages' stylesheet, on top of `SITE_CSS`.
pub const ADMIN_CSS: &str = include_str!("../../templates/static/admin.css");
/// The editors' pages' script: live preview and send progress.
pub const ADMIN_JS: &str = include_str!("../../templates/static/admin.js");

/// Builds the built-in template set in English with the default brand.
/// Every template is parsed here.
pub fn templates() -> Result<Tera, tera::Error> {
    let look = Look::new(
        Arc::new(Catalogue::english()),
        crate::config::BrandSettings::default(),
    );
    built_in(&look)
}

fn built_in(look: &Look) -> Result<Tera, tera::Error> {
    let mut tera = Tera::default();
    look.register(&mut tera);
    tera.add_raw_templates(TEMPLATES.to_vec())?;
    crate::report::register_templates(&mut tera)?;
    Ok(tera)
}

/// The template set the settings ask for: the built-ins in the configured
/// language and brand, with any file of `templates_dir` replacing the
/// built-in one of the same name.
pub fn templates_for(settings: &Settings) -> Result<Tera, LookError> {
    let catalogue = Catalogue::load(&settings.language, settings.templates_dir.as_deref())?;
    let look = Look::new(Arc::new(catalogue), settings.brand.clone());
    let mut tera = built_in(&look).map_err(|e| LookError::BuiltIn(chain(&e)))?;
    if let Some(dir) = &settings.templates_dir {
        overrides::apply(&mut tera, dir)?;
    }
    Ok(tera)
}

/// Why the configured look cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LookError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error("built-in templates: {0}")]
    BuiltIn(String),
    #[error("{file}{}: {message}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
    Override {
        file: String,
        line: Option<usize>,
        message: String,
    },
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
}

/// Tera's error with its causes, on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_templates_parse() {
        super::templates().unwrap();
    }
}
