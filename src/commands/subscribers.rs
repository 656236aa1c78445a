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
    /// `bounced` or `complained` when no more mail goes to the address.
    suppressed: &'static str,
    suppressed_at: String,
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Every subscriber as CSV (with a header line) or a JSON array.
pub async fn export(store: &Store, format: ExportFormat) -> anyhow::Result<Vec<u8>> {
    let suppressions = store.all_suppressions().await?;
    let rows: Vec<ExportRow> = store
        .all_subscribers()
        .await?
        .into_iter()
        .map(|s| {
            let suppression = suppressions.get(&s.email.to_lowercase());
            ExportRow {
                email: s.email,
                name: s.name.unwrap_or_default(),
                status: s.status.as_str(),
                created_at: time(Some(s.created_at)),
                confirmed_at: time(s.confirmed_at),
                unsubscribed_at: time(s.unsubscribed_at),
                suppressed: suppression.map(|(r, _)| r.as_str()).unwrap_or(""),
                suppressed_at: time(suppression.map(|(_, at)| *at)),
            }
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
                    "suppressed",
                    "suppressed_at",
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
    let mut readers = Vec::new();
    check_rows(
        || Ok(csv_text.as_bytes()),
        default_status,
        |r| readers.push(r),
    )?;
    Ok(readers)
}

/// At most this many bad rows are named; a wrong file should not flood the
/// terminal.
const MAX_ERRORS: usize = 100;

/// Reads the CSV row by row, handing each good row to `each`; returns the
/// number of rows, or every bad row by line. Repeated addresses are found
/// once the whole file is read, from an 8-byte fingerprint of each address,
/// so a list of a million readers is checked in about ten megabytes; only a
/// file with repeats is read once more, to name them. `each` sees every
/// good row before repeats are known: a caller stores nothing unless the
/// whole check passes.
fn check_rows<R: std::io::Read>(
    open: impl Fn() -> std::io::Result<R>,
    default_status: SubscriberStatus,
    mut each: impl FnMut(ImportedSubscriber),
) -> Result<usize, Vec<String>> {
    let reopen = || open().map_err(|e| vec![format!("cannot read the file: {e}")]);
    let hasher = std::collections::hash_map::RandomState::new();
    let fingerprint = |reader: &ImportedSubscriber| {
        use std::hash::BuildHasher;
        hasher.hash_one(reader.email.as_str())
    };
    let mut bad = BadRows::default();
    let mut fingerprints = Vec::new();
    let mut rows = 0;
    for (line, row) in read_rows(reopen()?, default_status)? {
        rows += 1;
        match row {
            Ok(reader) => {
                fingerprints.push(fingerprint(&reader));
                each(reader);
            }
            Err(e) => bad.add(line, e),
        }
    }
    let repeated = repeated(fingerprints);
    if !repeated.is_empty() {
        let mut first_lines = HashMap::new();
        let mut repeats = BadRows::default();
        for (line, row) in read_rows(reopen()?, default_status)? {
            let Ok(reader) = row else { continue };
            let key = fingerprint(&reader);
            if repeated.contains(&key) {
                match first_lines.entry(key) {
                    std::collections::hash_map::Entry::Occupied(first) => repeats.add(
                        line,
                        format!("{} is already on line {}", reader.email, first.get()),
                    ),
                    std::collections::hash_map::Entry::Vacant(first) => {
                        first.insert(line);
                    }
                }
            }
        }
        bad.merge(repeats);
    }
    bad.into_result(rows)
}

/// The fingerprints that occur more than once. Two different addresses
/// share a 64-bit fingerprint about once in 10^13 pairs (a million readers
/// make 5 × 10^11 pairs); the second reading compares the addresses' own
/// fingerprints again, so such a pair would be named as a repeat.
fn repeated(mut fingerprints: Vec<u64>) -> std::collections::HashSet<u64> {
    fingerprints.sort_unstable();
    fingerprints
        .windows(2)
        .filter(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
        .collect()
}

/// Each row of the CSV with its line number: the reader, or what is wrong
/// with the row.
fn read_rows<R: std::io::Read>(
    input: R,
    default_status: SubscriberStatus,
) -> Result<impl Iterator<Item = (usize, Result<ImportedSubscriber, String>)>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(input);
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
    Ok(reader.into_records().enumerate().map(move |(i, record)| {
        let line = i + 2;
        let row = match record {
            Ok(record) => {
                let field =
                    |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("").trim();
                parse_row(
                    field(Some(email_col)),
                    &name_of(field(name_col), field(first_col), field(last_col)),
                    field(status_col),
                    field(consent_col),
                    default_status,
                )
                .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        (line, row)
    }))
}

/// The bad rows of a file: the first `MAX_ERRORS` by line, and how many
/// in all.
#[derive(Default)]
struct BadRows {
    named: Vec<(usize, String)>,
    count: usize,
}

impl BadRows {
    /// Rows must come in the order of their lines.
    fn add(&mut self, line: usize, problem: String) {
        self.count += 1;
        if self.named.len() < MAX_ERRORS {
            self.named.push((line, problem));
        }
    }

    fn merge(&mut self, other: BadRows) {
        self.count += other.count;
        self.named.extend(other.named);
        self.named.sort_by_key(|(line, _)| *line);
        self.named.truncate(MAX_ERRORS);
    }

    fn into_result(self, rows: usize) -> Result<usize, Vec<String>> {
        if self.count == 0 {
            return Ok(rows);
        }
        let mut errors: Vec<String> = self
            .named
            .iter()
            .map(|(line, problem)| format!("line {line}: {problem}"))
            .collect();
        if self.count > errors.len() {
            errors.push(format!("… and {} more bad rows", self.count - errors.len()));
        }
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

/// Rows held in memory at once during an import.
const IMPORT_BATCH: usize = 5_000;

/// Checks every row of the file, then stores them all in one transaction,
/// reading the file a second time in batches: nothing is stored when any
/// row is bad, and memory stays flat however long the list.
pub async fn import(
    store: &Store,
    file: &std::path::Path,
    default_status: SubscriberStatus,
    dry_run: bool,
) -> Result<ImportSummary, anyhow::Error> {
    let path = file.to_path_buf();
    let open = move || std::fs::File::open(&path).map(std::io::BufReader::new);
    open().with_context(|| format!("reading {}", file.display()))?;
    let rows = check_rows(open.clone(), default_status, drop).map_err(|errors| {
        anyhow::anyhow!(
            "nothing was imported; fix these rows and try again:\n  {}",
            errors.join("\n  ")
        )
    })?;
    if dry_run {
        return Ok(ImportSummary { rows, added: 0 });
    }

    // The checked rows go to a task of their own that writes them while
    // this one parses the next batch.
    let (batches, mut incoming) = tokio::sync::mpsc::channel::<Vec<ImportedSubscriber>>(2);
    let mut import = store.begin_import().await?;
    let writer = tokio::spawn(async move {
        while let Some(batch) = incoming.recv().await {
            import.add(&batch).await?;
        }
        Ok::<_, crate::store::StoreError>(import)
    });
    let parsing = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        let mut writer_gone = false;
        let checked = check_rows(open, default_status, |reader| {
            batch.push(reader);
            if batch.len() == IMPORT_BATCH && !writer_gone {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(IMPORT_BATCH));
                writer_gone = batches.blocking_send(full).is_err();
            }
        });
        if !writer_gone && !batch.is_empty() {
            let _ = batches.blocking_send(batch);
        }
        checked
    });
    let reread = parsing.await.context("reading the file")?;
    // Dropping the import without committing it rolls every batch back.
    let import = writer.await.context("storing readers")??;
    if reread != Ok(rows) {
        anyhow::bail!(
            "{} changed while it was imported; nothing was imported",
            file.display()
        );
    }
    let added = import.commit().await?;
    Ok(ImportSummary { rows, added })
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
    fn repeats_and_bad_rows_are_named_in_the_order_of_their_lines() {
        // Odd lines from 3 on are bad; even ones repeat the first reader.
        let mut csv = String::from("email\nfirst@example.com\n");
        for i in 0..150 {
            csv.push_str(&format!("not-an-address-{i}\nFIRST@example.com\n"));
        }
        let errors = parse_import(&csv, SubscriberStatus::Pending).unwrap_err();
        assert_eq!(errors.len(), MAX_ERRORS + 1, "{errors:#?}");
        for (i, error) in errors[..MAX_ERRORS].iter().enumerate() {
            let line = i + 3;
            let expected = if line % 2 == 1 {
                format!("line {line}: ")
            } else {
                format!("line {line}: first@example.com is already on line 2")
            };
            assert!(error.starts_with(&expected), "{error} (wanted {expected})");
        }
        assert_eq!(errors[MAX_ERRORS], "… and 200 more bad rows");
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
