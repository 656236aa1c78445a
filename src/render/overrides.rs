//! A team's own templates: any file under `templates_dir` replaces the
//! built-in template of the same relative name (`email/layout.html`,
//! `pages/base.html`, …), so a restyle needs no fork and survives upgrades.

use std::path::{Path, PathBuf};

use tera::Tera;

use super::{chain, LookError};

/// Replaces built-ins with the files of `dir`; the first broken file is
/// named with the line Tera points at.
pub fn apply(tera: &mut Tera, dir: &Path) -> Result<Vec<String>, LookError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut names = Vec::new();
    let mut sources = Vec::new();
    for (name, path) in &files {
        let source = std::fs::read_to_string(path)
            .map_err(|e| LookError::Read(path.display().to_string(), e))?;
        // Parse each file alone first, so an error names its own file.
        if let Err(e) = tera::Template::new(name, None, &source) {
            return Err(located(path, &e));
        }
        names.push(name.clone());
        sources.push((name.clone(), source));
    }
    tera.add_raw_templates(sources)
        .map_err(|e| LookError::Override {
            file: dir.display().to_string(),
            line: None,
            message: chain(&e),
        })?;
    Ok(names)
}

/// Template files under `dir`, by their name relative to `root`. The
/// `locales/` folder holds catalogues, not templates.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), LookError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| LookError::Read(dir.display().to_string(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LookError::Read(dir.display().to_string(), e))?;
        let path = entry.path();
        if path.is_dir() {
            if path != root.join("locales") {
                collect(root, &path, out)?;
            }
            continue;
        }
        let is_template = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("html" | "txt")
        );
        if !is_template {
            continue;
        }
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        out.push((name, path));
    }
    Ok(())
}

/// The error of a file, with the line Tera's parser reports (` --> 3:7`).
fn located(path: &Path, e: &tera::Error) -> LookError {
    let message = chain(e);
    let line = message.split("--> ").nth(1).and_then(|rest| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
    });
    LookError::Override {
        file: path.display().to_string(),
        line,
        message: message.replace('\n', " "),
    }
}

/// The line of `file` that first mentions the name Tera's render error is
/// about (``Variable `report.x` not found``), for errors found only when
/// rendering.
pub fn line_of_render_error(file: &Path, error: &str) -> Option<usize> {
    let name = error.split('`').nth(1)?;
    let source = std::fs::read_to_string(file).ok()?;
    source
        .lines()
        .position(|line| line.contains(name))
        .map(|i| i + 1)
}

/// Renders every public page and mail with sample values, and the example
/// report of the configured language, so that a broken override shows up
/// in `config check` rather than at send time. The error names the file
/// (the override when there is one) and, where it can, the line.
pub fn render_samples(
    tera: &Tera,
    templates_dir: Option<&Path>,
    language: &str,
) -> Result<(), LookError> {
    use serde_json::json;
    let site = json!("The Weekly Report");
    let pages = [
        ("pages/home.html", json!({ "site_name": site })),
        (
            "pages/message.html",
            json!({ "site_name": site, "heading": "confirmed-heading", "message": "confirmed-message", "offer_signup": true }),
        ),
        (
            "pages/confirm.html",
            json!({ "site_name": site, "token": "t" }),
        ),
        (
            "pages/unsubscribe.html",
            json!({ "site_name": site, "token": "t" }),
        ),
        (
            "pages/feedback.html",
            json!({ "site_name": site, "stage": "thanks", "title": "T", "token": "t", "answer": "yes", "other": "no", "commented": true, "max_comment": 1000 }),
        ),
        (
            "email/confirmation.html",
            json!({ "site_name": site, "name": "Ana", "confirm_url": "https://example.com/c", "unsubscribe_url": "https://example.com/u", "home_url": "https://example.com" }),
        ),
        (
            "email/confirmation.txt",
            json!({ "site_name": site, "name": null, "confirm_url": "https://example.com/c", "unsubscribe_url": "https://example.com/u", "home_url": "https://example.com" }),
        ),
    ];
    let failed = |name: &str, e: &dyn std::error::Error| render_error(templates_dir, name, e);
    for (name, context) in pages {
        let context = tera::Context::from_value(context).map_err(|e| failed(name, &e))?;
        tera.render(name, &context).map_err(|e| failed(name, &e))?;
    }
    let source = if language.to_ascii_lowercase().starts_with("zh") {
        include_str!("../../reports/example.zh-CN.md")
    } else {
        include_str!("../../reports/example.md")
    };
    let report = crate::report::Report::parse(source).map_err(|e| LookError::Override {
        file: "example report".into(),
        line: None,
        message: e.to_string(),
    })?;
    let context = crate::report::SendContext {
        base_url: "https://example.com",
        site_name: "The Weekly Report",
        archive_url: "https://example.com/archive/example".into(),
    };
    crate::report::render_report(tera, &report, &context)
        .map_err(|e| failed("email/report.html", &e))?;
    crate::report::render_archive_page(tera, &report, "The Weekly Report", Some("1"))
        .map_err(|e| failed("pages/archive_report.html", &e))?;
    let entries = [crate::report::ArchiveEntry::of(&report)];
    crate::report::render_archive_index(tera, "The Weekly Report", &entries)
        .map_err(|e| failed("pages/archive_index.html", &e))?;
    Ok(())
}

/// A render error, pinned to the template Tera names ("error happened in
/// 'x'", "… while rendering 'x'", else "Failed to render 'x'"), as a file
/// of `templates_dir` when overridden.
fn render_error(
    templates_dir: Option<&Path>,
    fallback: &str,
    e: &dyn std::error::Error,
) -> LookError {
    let message = chain(e);
    let quoted_after = |marker: &str| {
        let at = message.rfind(marker)? + marker.len();
        message[at..].split('\'').next().map(str::to_string)
    };
    let name = quoted_after("error happened in '")
        .or_else(|| quoted_after("while rendering '"))
        .or_else(|| quoted_after("Failed to render '"))
        .unwrap_or_else(|| fallback.to_string());
    let file = templates_dir
        .map(|dir| dir.join(&name))
        .filter(|path| path.exists());
    match file {
        Some(path) => LookError::Override {
            line: line_of_render_error(&path, &message),
            file: path.display().to_string(),
            message,
        },
        None => LookError::Override {
            file: format!("built-in {name}"),
            line: None,
            message,
        },
    }
}
