//! The words readers see, in the publication's language.
//!
//! Every sentence of the public pages and the mails comes from a Fluent
//! catalogue (`templates/locales/<language>.ftl`), so a team publishing in
//! Chinese gets Chinese chrome around its Chinese report. The English
//! catalogue is complete by definition; any message another catalogue lacks
//! is taken from it, and `config check` lists what was missing.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// The language every other one falls back to.
pub const FALLBACK: &str = "en";

/// Catalogues compiled into the binary, by language tag.
const BUILT_IN: &[(&str, &str)] = &[
    ("en", include_str!("../templates/locales/en.ftl")),
    ("zh-CN", include_str!("../templates/locales/zh-CN.ftl")),
];

/// A catalogue that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("`{0}` is not a language tag (try en or zh-CN)")]
    Tag(String),
    #[error("no catalogue for language `{0}`: the built-in ones are en and zh-CN; put others in <templates_dir>/locales/{0}.ftl")]
    Unknown(String),
    #[error("{file}: line {line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("reading {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
}

type Bundle = FluentBundle<FluentResource>;

/// The messages of one language, with English behind them.
pub struct Catalogue {
    language: LanguageIdentifier,
    primary: Bundle,
    fallback: Bundle,
    /// Message ids of the English catalogue absent from the chosen one.
    missing: Vec<String>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("language", &self.language.to_string())
            .field("missing", &self.missing)
            .finish_non_exhaustive()
    }
}

impl Catalogue {
    /// The English catalogue alone.
    pub fn english() -> Catalogue {
        Catalogue::load(FALLBACK, None).expect("the built-in English catalogue loads")
    }

    /// The catalogue for `language`: the built-in one, with the messages of
    /// `<templates_dir>/locales/<language>.ftl` (when that file exists)
    /// added or replacing built-in ones.
    pub fn load(language: &str, templates_dir: Option<&Path>) -> Result<Catalogue, CatalogueError> {
        let tag: LanguageIdentifier = language
            .parse()
            .map_err(|_| CatalogueError::Tag(language.to_string()))?;
        let built_in = BUILT_IN
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(language))
            .map(|(t, source)| parse(&format!("built-in {t}.ftl"), source));
        let overriding = match templates_dir {
            Some(dir) => read_override(&dir.join("locales").join(format!("{language}.ftl")))?,
            None => None,
        };
        if built_in.is_none() && overriding.is_none() {
            return Err(CatalogueError::Unknown(language.to_string()));
        }
        let mut primary = new_bundle(&tag);
        let mut ids = BTreeSet::new();
        for resource in built_in.into_iter().chain(overriding) {
            let resource = resource?;
            ids.extend(message_ids(&resource));
            primary.add_resource_overriding(resource);
        }
        let english: LanguageIdentifier = FALLBACK.parse().expect("static tag");
        let mut fallback = new_bundle(&english);
        let english_resource = parse("built-in en.ftl", BUILT_IN[0].1)?;
        let missing = message_ids(&english_resource)
            .filter(|id| !ids.contains(id))
            .collect();
        fallback.add_resource_overriding(english_resource);
        Ok(Catalogue {
            language: tag,
            primary,
            fallback,
            missing,
        })
    }

    /// The language tag, as HTML's `lang` attribute wants it.
    pub fn language(&self) -> String {
        self.language.to_string()
    }

    /// Messages taken from English because this language lacks them.
    pub fn missing_keys(&self) -> &[String] {
        &self.missing
    }

    /// The message `id` with `args`; English when this language lacks it,
    /// the id itself when no catalogue has it (so a typo shows, not blanks).
    pub fn message(&self, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        for bundle in [&self.primary, &self.fallback] {
            let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
                continue;
            };
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, args, &mut errors);
            if !errors.is_empty() {
                tracing::warn!(
                    message = id,
                    ?errors,
                    "a catalogue message did not format cleanly"
                );
            }
            return text.into_owned();
        }
        tracing::warn!(message = id, "no catalogue has this message");
        id.to_string()
    }

    /// A message with no arguments.
    pub fn text(&self, id: &str) -> String {
        self.message(id, None)
    }

    /// A date as the language writes it in full ("6 March 2020",
    /// "2020年3月6日").
    pub fn long_date(&self, date: chrono::NaiveDate) -> String {
        use chrono::Datelike;
        let mut args = FluentArgs::new();
        args.set("year", date.year());
        args.set("month", date.month());
        args.set("day", date.day());
        self.message("date-long", Some(&args))
    }

    /// "N out of M found this helpful", with the language's plural rules;
    /// `None` before anyone answered.
    pub fn helpful(&self, yes: i64, voters: i64) -> Option<String> {
        (voters > 0).then(|| {
            let mut args = FluentArgs::new();
            args.set("yes", yes);
            args.set("total", voters);
            self.message("helpful-count", Some(&args))
        })
    }
}

/// The English catalogue's phrases (each message cut at its arguments),
/// for checking that a page in another language shows no English chrome.
pub fn english_phrases() -> Vec<String> {
    let english = Catalogue::english();
    let resource = parse("built-in en.ftl", BUILT_IN[0].1).expect("the English catalogue parses");
    let mut phrases = BTreeSet::new();
    for id in message_ids(&resource) {
        let Some(pattern) = english.fallback.get_message(&id).and_then(|m| m.value()) else {
            continue;
        };
        let mut errors = Vec::new();
        let text = english.fallback.format_pattern(pattern, None, &mut errors);
        for piece in text.split(['{', '}']) {
            let piece = piece.trim();
            if piece.len() > 1
                && !piece.starts_with('$')
                && piece.chars().any(|c| c.is_ascii_alphabetic())
            {
                phrases.insert(piece.to_string());
            }
        }
    }
    phrases.into_iter().collect()
}

fn new_bundle(tag: &LanguageIdentifier) -> Bundle {
    let mut bundle = FluentBundle::new_concurrent(vec![tag.clone()]);
    // Unicode isolation marks around arguments would land in subjects and
    // plain text, where they show up as odd characters in some clients.
    bundle.set_use_isolating(false);
    bundle
}

fn parse(file: &str, source: &str) -> Result<FluentResource, CatalogueError> {
    FluentResource::try_new(source.to_string()).map_err(|(_, errors)| {
        let first = &errors[0];
        let line = source[..first.pos.start.min(source.len())]
            .matches('\n')
            .count()
            + 1;
        CatalogueError::Syntax {
            file: file.to_string(),
            line,
            message: first.kind.to_string(),
        }
    })
}

fn read_override(
    path: &Path,
) -> Result<Option<Result<FluentResource, CatalogueError>>, CatalogueError> {
    match std::fs::read_to_string(path) {
        Ok(source) => Ok(Some(parse(&path.display().to_string(), &source))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CatalogueError::Read {
            file: path.display().to_string(),
            source,
        }),
    }
}

fn message_ids(resource: &FluentResource) -> impl Iterator<Item = String> + '_ {
    resource.entries().filter_map(|entry| match entry {
        fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
        _ => None,
    })
}

/// The Tera function `t(key="…", name=…)`: a message of `catalogue` with
/// the other arguments passed to it.
pub fn tera_function(
    catalogue: std::sync::Arc<Catalogue>,
) -> impl Fn(&HashMap<String, tera::Value>) -> tera::Result<tera::Value> + Send + Sync {
    move |args: &HashMap<String, tera::Value>| {
        let key = args
            .get("key")
            .and_then(|v| v.as_str())
            .ok_or_else(|| tera::Error::msg("t() needs key=\"message-id\""))?;
        let mut fluent = FluentArgs::new();
        for (name, value) in args {
            if name == "key" {
                continue;
            }
            let value = match value {
                tera::Value::Number(n) => match n.as_i64() {
                    Some(i) => FluentValue::from(i),
                    None => FluentValue::from(n.as_f64().unwrap_or_default()),
                },
                tera::Value::String(s) => FluentValue::from(s.clone()),
                tera::Value::Null => continue,
                other => FluentValue::from(other.to_string()),
            };
            fluent.set(name.clone(), value);
        }
        Ok(tera::Value::String(catalogue.message(key, Some(&fluent))))
    }
}

/// The Tera filter `label`: the value followed by the language's colon
/// ("Source: ", "来源：").
pub fn tera_label(
    catalogue: std::sync::Arc<Catalogue>,
) -> impl Fn(&tera::Value, &HashMap<String, tera::Value>) -> tera::Result<tera::Value> + Send + Sync
{
    move |value: &tera::Value, _: &HashMap<String, tera::Value>| {
        let text = tera::try_get_value!("label", "value", String, value);
        let mut args = FluentArgs::new();
        args.set("text", text);
        Ok(tera::Value::String(catalogue.message("label", Some(&args))))
    }
}

/// The Tera filter `long_date`: a `YYYY-MM-DD` value written out in the
/// language; any other text (a period such as "6–12 March") unchanged.
pub fn tera_long_date(
    catalogue: std::sync::Arc<Catalogue>,
) -> impl Fn(&tera::Value, &HashMap<String, tera::Value>) -> tera::Result<tera::Value> + Send + Sync
{
    move |value: &tera::Value, _: &HashMap<String, tera::Value>| {
        let text = tera::try_get_value!("long_date", "value", String, value);
        Ok(tera::Value::String(
            match chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
                Ok(date) => catalogue.long_date(date),
                Err(_) => text,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_catalogue_is_complete() {
        for (tag, _) in BUILT_IN {
            let catalogue = Catalogue::load(tag, None).unwrap();
            assert_eq!(catalogue.missing_keys(), &[] as &[String], "{tag}");
        }
    }

    #[test]
    fn plural_rules_and_dates_follow_the_language() {
        let en = Catalogue::english();
        assert_eq!(
            en.helpful(1, 1).unwrap(),
            "1 out of 1 reader found this helpful"
        );
        assert_eq!(
            en.helpful(2, 3).unwrap(),
            "2 out of 3 readers found this helpful"
        );
        assert_eq!(en.helpful(0, 0), None);
        let date = chrono::NaiveDate::from_ymd_opt(2020, 3, 6).unwrap();
        assert_eq!(en.long_date(date), "6 March 2020");
        let zh = Catalogue::load("zh-CN", None).unwrap();
        assert_eq!(zh.long_date(date), "2020年3月6日");
        assert_eq!(zh.helpful(2, 3).unwrap(), "3 位读者中有 2 位认为有帮助");
    }

    #[test]
    fn an_override_adds_a_language_and_falls_back_to_english() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("locales")).unwrap();
        std::fs::write(
            dir.path().join("locales/de.ftl"),
            "feedback-yes = Ja\nfeedback-no = Nein\n",
        )
        .unwrap();
        let de = Catalogue::load("de", Some(dir.path())).unwrap();
        assert_eq!(de.text("feedback-yes"), "Ja");
        assert_eq!(de.text("unsubscribe-link"), "Unsubscribe");
        assert!(de.missing_keys().contains(&"unsubscribe-link".to_string()));
        assert!(!de.missing_keys().contains(&"feedback-yes".to_string()));
    }

    #[test]
    fn a_broken_catalogue_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("locales")).unwrap();
        std::fs::write(dir.path().join("locales/en.ftl"), "a = b\n\n= broken\n").unwrap();
        let err = Catalogue::load("en", Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("en.ftl: line 3"), "{err}");
    }

    #[test]
    fn unknown_language_is_refused() {
        assert!(matches!(
            Catalogue::load("fr", None),
            Err(CatalogueError::Unknown(_))
        ));
    }
}
