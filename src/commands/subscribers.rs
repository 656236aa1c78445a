//! `newsletter subscribers export|import`: moving a list in and out, in the
//! shapes other newsletter tools use.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::domain::{spreadsheet_text, SubscriberEmail, SubscriberName, SubscriberStatus};
use crate::store::{now_ms, ImportedSubscriber, Store};

/// Output formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Clone, Serialize)]
struct ExportRow {
    email: String,
    name: String,
    status: &'static str,
    created_at: String,
    confirmed_at: String,
    unsubscribed_at: String,
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Every subscriber as CSV (with a header line) or a JSON array.
pub async fn export(store: &Store, format: ExportFormat) -> anyhow::Result<Vec<u8>> {
    let rows: Vec<ExportRow> = store
        .all_subscribers()
        .await?
        .into_iter()
        .map(|s| ExportRow {
            email: s.email,
            name: s.name.unwrap_or_default(),
            status: s.status.as_str(),
            created_at: time(Some(s.created_at)),
            confirmed_at: time(s.confirmed_at),
            unsubscribed_at: time(s.unsubscribed_at),
        })
        .collect();
    match format {
        ExportFormat::Json => Ok(serde_json::to_vec_pretty(&rows)?),
        ExportFormat::Csv => {
            let mut csv = csv::Writer::from_writer(Vec::new());
            for row in &rows {
                csv.serialize(ExportRow {
                    email: spreadsheet_text(&row.email).into_owned(),
                    name: spreadsheet_text(&row.name).into_owned(),
                    ..row.clone()
                })?;
            }
            if rows.is_empty() {
                csv.write_record([
                    "email",
                    "name",
                    "status",
                    "created_at",
                    "confirmed_at",
                    "unsubscribed_at",
                ])?;
            }
            Ok(csv.into_inner().context("writing CSV")?)
        }
    }
}

/// What an import did (or would do, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub rows: usize,
    pub added: u64,
}

/// Parses a CSV file of readers. Column names are matched loosely, so the
/// exports of listmonk and Mailchimp work as they are: `email` / `Email
/// Address`, `name` or `First Name` + `Last Name`, `status` (listmonk's
/// enabled/blocklisted, Mailchimp's subscribed/unsubscribed/cleaned), and a
/// consent date (`confirmed_at`, `CONFIRM_TIME`, `OPTIN_TIME`, `created_at`).
/// Every bad row is reported with its line number, and nothing is returned
/// unless every row is good.
pub fn parse_import(
    csv_text: &str,
    default_status: SubscriberStatus,
) -> Result<Vec<ImportedSubscriber>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(vec![format!("line 1: cannot read the header line: {e}")]),
    };
    let columns: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_ascii_lowercase().replace(['_', ' '], ""), i))
        .collect();
    let find = |names: &[&str]| names.iter().find_map(|n| columns.get(*n).copied());
    let Some(email_col) = find(&["email", "emailaddress", "mail"]) else {
        return Err(vec![
            "line 1: no email column (expected a header such as `email` or `Email Address`)".into(),
        ]);
    };
    let name_col = find(&["name", "fullname"]);
    let first_col = find(&["firstname"]);
    let last_col = find(&["lastname"]);
    let status_col = find(&["status", "subscriptionstatus"]);
    let consent_col = find(&[
        "confirmedat",
        "consentdate",
        "confirmtime",
        "optintime",
        "createdat",
    ]);

    let mut readers = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let field = |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("").trim();
        match parse_row(
            field(Some(email_col)),
            &name_of(field(name_col), field(first_col), field(last_col)),
            field(status_col),
            field(consent_col),
            default_status,
        ) {
            Ok(reader) => {
                if let Some(first) = seen.insert(reader.email.as_str().to_string(), line) {
                    errors.push(format!(
                        "line {line}: {} is already on line {first}",
                        reader.email
                    ));
                } else {
                    readers.push(reader);
                }
            }
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(readers)
    } else {
        Err(errors)
    }
}

fn name_of(name: &str, first: &str, last: &str) -> String {
    if !name.is_empty() {
        return name.to_string();
    }
    format!("{first} {last}").trim().to_string()
}

fn parse_row(
    email: &str,
    name: &str,
    status: &str,
    consent: &str,
    default_status: SubscriberStatus,
) -> Result<ImportedSubscriber, String> {
    let email = SubscriberEmail::parse(email).map_err(|e| e.to_string())?;
    let name = SubscriberName::parse(name).map_err(|e| e.to_string())?;
    let status = if status.is_empty() {
        default_status
    } else {
        match status.to_ascii_lowercase().as_str() {
            "confirmed" | "subscribed" | "enabled" | "active" => SubscriberStatus::Confirmed,
            "pending" | "unconfirmed" => SubscriberStatus::Pending,
            "unsubscribed" | "blocklisted" | "blocked" | "cleaned" | "disabled" => {
                SubscriberStatus::Unsubscribed
            }
            other => {
                return Err(format!(
                    "unknown status {other:?} (use confirmed, pending or unsubscribed)"
                ))
            }
        }
    };
    let consent_at = if consent.is_empty() {
        None
    } else {
        Some(parse_time(consent)?)
    };
    // A confirmed reader without a consent date is one we could not defend
    // to a mailbox provider or a regulator.
    if status == SubscriberStatus::Confirmed && consent_at.is_none() {
        return Err("a confirmed reader needs a consent date (e.g. a confirmed_at column)".into());
    }
    let now = now_ms();
    Ok(ImportedSubscriber {
        email,
        name,
        status,
        created_at: consent_at.unwrap_or(now),
        confirmed_at: (status == SubscriberStatus::Confirmed).then_some(consent_at.unwrap_or(now)),
        unsubscribed_at: (status == SubscriberStatus::Unsubscribed).then_some(now),
    })
}

/// RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or `YYYY-MM-DD`.
fn parse_time(value: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S") {
        return Ok(t.and_utc().timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
            .unwrap_or_default());
    }
    Err(format!(
        "cannot read the date {value:?} (use 2024-03-01, 2024-03-01 09:30:00 or RFC 3339)"
    ))
}

/// Parses and stores; nothing is stored when any row is bad.
pub async fn import(
    store: &Store,
    csv_text: &str,
    default_status: SubscriberStatus,
    dry_run: bool,
) -> Result<ImportSummary, anyhow::Error> {
    let readers = parse_import(csv_text, default_status).map_err(|errors| {
        anyhow::anyhow!(
            "nothing was imported; fix these rows and try again:\n  {}",
            errors.join("\n  ")
        )
    })?;
    let added = if dry_run {
        0
    } else {
        store.import_subscribers(&readers).await?
    };
    Ok(ImportSummary {
        rows: readers.len(),
        added,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listmonk_and_mailchimp_shapes() {
        let listmonk = "uuid,email,name,attributes,status,created_at\n\
            1,ana@example.com,Ana,{},enabled,2024-01-02T03:04:05Z\n\
            2,bo@example.com,Bo,{},blocklisted,2024-01-02T03:04:05Z\n";
        let rows = parse_import(listmonk, SubscriberStatus::Pending).unwrap();
        assert_eq!(rows[0].status, SubscriberStatus::Confirmed);
        assert_eq!(rows[1].status, SubscriberStatus::Unsubscribed);

        let mailchimp = "Email Address,First Name,Last Name,OPTIN_TIME,CONFIRM_TIME\n\
            cy@example.com,Cy,Lee,2023-05-01 10:00:00,2023-05-01 10:05:00\n";
        let rows = parse_import(mailchimp, SubscriberStatus::Confirmed).unwrap();
        assert_eq!(rows[0].name.as_ref().unwrap().as_str(), "Cy Lee");
        assert_eq!(rows[0].confirmed_at, Some(1_682_935_500_000));
    }

    #[test]
    fn every_bad_row_is_named_and_nothing_passes() {
        let csv = "email,status,confirmed_at\n\
            good@example.com,confirmed,2024-01-01\n\
            no-at-sign,confirmed,2024-01-01\n\
            x@example.com,confirmed,\n\
            y@example.com,maybe,2024-01-01\n\
            GOOD@example.com,confirmed,2024-01-01\n\
            z@example.com,confirmed,yesterday\n";
        let errors = parse_import(csv, SubscriberStatus::Pending).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with("line 3: ") && errors[0].contains("no @"));
        assert!(errors[1].starts_with("line 4: ") && errors[1].contains("consent date"));
        assert!(errors[2].starts_with("line 5: ") && errors[2].contains("unknown status"));
        assert!(errors[3].starts_with("line 6: ") && errors[3].contains("already on line 2"));
        assert!(errors[4].starts_with("line 7: ") && errors[4].contains("cannot read the date"));
        assert!(
            parse_import("name\nAna\n", SubscriberStatus::Pending).unwrap_err()[0]
                .contains("no email column")
        );
    }
}
