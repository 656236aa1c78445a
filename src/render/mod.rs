//! Templates, compiled into the binary so it runs from any directory, and
//! loaded at startup so a broken template fails then, not at send time.

use tera::Tera;

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
];

/// Static assets served under `/static/`.
pub const SITE_CSS: &str = include_str!("../../templates/static/site.css");
pub const AUTOSUBMIT_JS: &str = include_str!("../../templates/static/autosubmit.js");
/// The editors' pages' stylesheet, on top of `SITE_CSS`.
pub const ADMIN_CSS: &str = include_str!("../../templates/static/admin.css");
/// The editors' pages' script: live preview and send progress.
pub const ADMIN_JS: &str = include_str!("../../templates/static/admin.js");

/// Builds the template set. Every template is parsed here.
pub fn templates() -> Result<Tera, tera::Error> {
    let mut tera = Tera::default();
    tera.add_raw_templates(TEMPLATES.to_vec())?;
    crate::report::register_templates(&mut tera)?;
    Ok(tera)
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_templates_parse() {
        super::templates().unwrap();
    }
}
