//! `newsletter report …`: importing, previewing and listing reports.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use lettre::message::{Body, Mailbox};

use crate::app::{render_sample, ReportState};
use crate::config::Settings;
use crate::delivery::{assemble, list_id, Shape};
use crate::render::SITE_CSS;
use crate::report::{render_archive_page, Report};
use crate::store::{SaveOutcome, Store};

/// Reads and parses a report file; errors name the file and the line.
pub fn read_report(path: &Path) -> anyhow::Result<(String, Report)> {
    let source =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match Report::parse(&source) {
        Ok(report) => Ok((source, report)),
        Err(e) => match e.line {
            Some(line) => bail!("{}:{line}: {}", path.display(), e.message),
            None => bail!("{}: {}", path.display(), e.message),
        },
    }
}

/// Creates the draft, or updates the draft with the same slug.
pub async fn import(store: &Store, path: &Path) -> anyhow::Result<String> {
    let (source, report) = read_report(path)?;
    match store
        .save_report(report.slug(), report.title(), &source)
        .await?
    {
        SaveOutcome::Created(id) => Ok(format!(
            "created draft #{id} \"{}\" ({})",
            report.title(),
            report.slug()
        )),
        SaveOutcome::Updated(id) => Ok(format!(
            "updated draft #{id} \"{}\" ({})",
            report.title(),
            report.slug()
        )),
        SaveOutcome::Frozen(id) => bail!(
            "report #{id} ({}) has been sent or scheduled; its text can no longer change",
            report.slug()
        ),
    }
}

/// Writes what a reader would get: `report.html`, `report.txt`, a complete
/// `report.eml`, and the web archive page `archive.html`.
pub fn preview(settings: &Settings, path: &Path, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let (_, report) = read_report(path)?;
    // In the publication's language and look, overrides included.
    let tera = crate::render::templates_for(settings).context("loading templates")?;
    let sample = render_sample(settings, &tera, &report, "Ana Reader")?;
    let (html, text) = (sample.html, sample.text);
    let to: Mailbox = "Ana Reader <ana.reader@example.com>".parse()?;
    let message_id = format!(
        "<preview-{}@{}>",
        report.slug(),
        settings.sender()?.email.domain()
    );
    let message = assemble(
        settings.sender()?,
        to,
        &sample.subject,
        &message_id,
        Shape::Report {
            list_id: &list_id(&settings.site_name, settings.sender()?.email.domain()),
            unsubscribe_url: &sample.unsubscribe_url,
        },
        Body::new(text.clone()),
        Body::new(html.clone()),
        None,
    )?;
    let archive = render_archive_page(&tera, &report, &settings.site_name, None)?.replace(
        r#"<link rel="stylesheet" href="/static/site.css">"#,
        &format!("<style>{SITE_CSS}</style>"),
    );

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files = [
        ("report.html", html.into_bytes()),
        ("report.txt", text.into_bytes()),
        ("report.eml", message.formatted()),
        ("archive.html", archive.into_bytes()),
    ];
    let mut written = Vec::new();
    for (name, bytes) in files {
        let file = out.join(name);
        std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

/// One line per report: id, state, slug, title.
pub async fn list(store: &Store) -> anyhow::Result<String> {
    let mut out = String::new();
    for r in store.list_reports().await? {
        let state = ReportState::from(r.send_state).as_str();
        out.push_str(&format!(
            "{:>4}  {:<10} {:<40} {}\n",
            r.id, state, r.slug, r.title
        ));
    }
    if out.is_empty() {
        out.push_str("no reports yet; import one with `newsletter report import FILE`\n");
    }
    Ok(out)
}

/// Gives the failed deliveries of a report's send (by slug or id) one more
/// attempt each; the running service or worker sends them.
pub async fn retry_failed(
    store: &Store,
    report: &str,
    max_attempts: i64,
) -> anyhow::Result<String> {
    let found = match report.parse::<i64>() {
        Ok(id) => store.report(id).await?,
        Err(_) => store.report_by_slug(report).await?,
    };
    let Some(found) = found else {
        bail!("no report {report:?}; `newsletter report list` shows them");
    };
    match store
        .retry_failed(found.id, max_attempts, crate::store::now_ms())
        .await?
    {
        Some(n) => Ok(format!(
            "{n} failed deliveries of {} queued once more",
            found.slug
        )),
        None => bail!(
            "{} has no send whose failures can be retried (it is a draft, scheduled or cancelled)",
            found.slug
        ),
    }
}
