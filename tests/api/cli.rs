//! The command line, run as a real process.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::helpers::{spawn_app, Backend};

crate::on_both_backends!(
    an_editor_added_on_the_command_line_can_use_the_api,
    readers_round_trip_through_export_and_import,
    reports_are_imported_updated_and_listed,
    stdout_carries_only_the_command_output_even_with_chatty_logs,
);

pub(crate) fn newsletter(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    newsletter_logging(args, env, stdin, "warn")
}

/// `newsletter` with its log filter set to `log`.
fn newsletter_logging(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
    log: &str,
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(args)
        .envs(env.iter().copied())
        .env("NEWSLETTER_LOG__FILTER", log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn help_explains_every_command() {
    let out = newsletter(&["--help"], &[], None);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["serve", "worker", "migrate", "admin", "config"] {
        assert!(help.contains(command), "{command} in --help");
    }
    let version = newsletter(&["--version"], &[], None);
    assert!(String::from_utf8(version.stdout)
        .unwrap()
        .starts_with("newsletter "));
}

#[test]
fn a_bad_setting_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    let out = newsletter(
        &["config", "check"],
        &[
            ("NEWSLETTER_DATABASE_URL", &db),
            ("NEWSLETTER_MAIL__FROM", "not an address"),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("mail.from"), "{err}");

    let file = dir.path().join("settings.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:8080\"\nsite_name = 42\n").unwrap();
    let out = newsletter(
        &["--config", file.to_str().unwrap(), "config", "check"],
        &[],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("site_name"), "{err}");
}

#[test]
fn config_check_reports_an_unreachable_relay() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    let out = newsletter(
        &["config", "check"],
        &[
            ("NEWSLETTER_DATABASE_URL", &db),
            ("NEWSLETTER_MAIL__SMTP_URL", "smtp://127.0.0.1:1"),
        ],
        None,
    );
    assert!(!out.status.success());
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.contains("database: reachable"), "{report}");
    assert!(report.contains("does NOT answer"), "{report}");
}

async fn an_editor_added_on_the_command_line_can_use_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let db = app.app.state.settings.database_url.clone();
    let env = [("NEWSLETTER_DATABASE_URL", db.as_str())];
    let short = newsletter(&["admin", "add", "ed@example.com"], &env, Some("short\n"));
    assert!(!short.status.success(), "a short password is refused");
    let added = newsletter(
        &["admin", "add", "ed@example.com"],
        &env,
        Some("a long enough password\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let token = newsletter(&["admin", "token", "ed@example.com"], &env, None);
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("nl_"));
    let response = app
        .client
        .get(app.url("/api/reports"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.count(&format!(
            "select count(*) from api_tokens where token_hash = '{token}'"
        ))
        .await,
        0,
        "only the hash is stored"
    );

    let unknown = newsletter(&["admin", "token", "nobody@example.com"], &env, None);
    assert!(!unknown.status.success());
    assert!(String::from_utf8(unknown.stderr)
        .unwrap()
        .contains("no editor"));
    app.log_in("ed@example.com", "a long enough password").await;
}

async fn readers_round_trip_through_export_and_import(backend: Backend) {
    let app = spawn_app(backend).await;
    let db = app.app.state.settings.database_url.clone();
    let env = [("NEWSLETTER_DATABASE_URL", db.as_str())];
    let dir = tempfile::tempdir().unwrap();

    // A bad file: every bad row named, nothing stored.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "email,name,status,confirmed_at\nok@example.com,Ok,confirmed,2024-01-01\nbroken,X,confirmed,2024-01-01\n").unwrap();
    let out = newsletter(
        &["subscribers", "import", bad.to_str().unwrap()],
        &env,
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("line 3:"));
    assert_eq!(app.count("select count(*) from subscribers").await, 0);

    // A good one; an existing unsubscribed reader stays unsubscribed.
    app.confirmed_reader("left@example.com").await;
    sqlx::query("update subscribers set status = 'unsubscribed'")
        .execute(app.store().pool())
        .await
        .unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "Email Address,First Name,Last Name,CONFIRM_TIME\nana@example.com,Ana,Ruiz,2024-02-03 04:05:06\nleft@example.com,Le,Ft,2024-01-01 00:00:00\n",
    )
    .unwrap();
    let out = newsletter(
        &["subscribers", "import", good.to_str().unwrap()],
        &env,
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("1 readers added, 1 already on the list"));
    assert_eq!(
        app.status_of("ana@example.com").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        app.status_of("left@example.com").await.as_deref(),
        Some("unsubscribed")
    );

    let out = newsletter(&["subscribers", "export", "--format", "json"], &env, None);
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ana = exported
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["email"] == "ana@example.com")
        .unwrap();
    assert_eq!(ana["name"], "Ana Ruiz");
    assert_eq!(ana["confirmed_at"], "2024-02-03T04:05:06Z");

    let csv_file = dir.path().join("export.csv");
    let out = newsletter(
        &["subscribers", "export", "--out", csv_file.to_str().unwrap()],
        &env,
        None,
    );
    assert!(out.status.success());
    let csv = std::fs::read_to_string(&csv_file).unwrap();
    assert!(csv.starts_with(
        "email,name,status,created_at,confirmed_at,unsubscribed_at,suppressed,suppressed_at\n"
    ));
    assert_eq!(csv.lines().count(), 3);
}

#[test]
fn a_report_file_is_previewed_as_a_reader_would_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unicode.md");
    std::fs::write(
        &file,
        "---\ntitle: 区块链周报 🚀 第 11 期\nslug: weekly-11\nsummary: 本周要闻\n---\n# 行业动态\n## 央行发布新规 🏦\n正文内容。\n\nSource: 新华社\nComment: 值得关注。\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = newsletter(
        &[
            "report",
            "preview",
            file.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["report.html", "report.txt", "report.eml", "archive.html"] {
        assert!(out_dir.join(name).exists(), "{name}");
    }
    let eml = std::fs::read(out_dir.join("report.eml")).unwrap();
    assert!(
        eml.is_ascii(),
        "headers and bodies are encoded for transport"
    );
    let message = mail_parser::MessageParser::default().parse(&eml).unwrap();
    assert_eq!(message.subject(), Some("区块链周报 🚀 第 11 期"));
    assert!(message.body_text(0).unwrap().contains("央行发布新规 🏦"));
    assert!(message.body_html(0).unwrap().contains("央行发布新规 🏦"));
    assert_eq!(
        message.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(
        std::fs::read_to_string(out_dir.join("archive.html"))
            .unwrap()
            .contains("<style>"),
        "the page carries its styles"
    );
}

#[test]
fn a_malformed_report_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.md");
    std::fs::write(
        &file,
        "---\ntitle: T\nslug: t\n---\n# Section\n## Item\ntext\nSource: A\nSource: B\n",
    )
    .unwrap();
    let out = newsletter(
        &[
            "report",
            "preview",
            file.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "{}:9: item \"Item\" has two Source: lines",
            file.display()
        )),
        "{err}"
    );
}

async fn reports_are_imported_updated_and_listed(backend: Backend) {
    let app = spawn_app(backend).await;
    let db = app.app.state.settings.database_url.clone();
    let env = [("NEWSLETTER_DATABASE_URL", db.as_str())];
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/reports/example.md");
    let first = newsletter(&["report", "import", example], &env, None);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8(first.stdout)
        .unwrap()
        .starts_with("created draft #1"));
    let second = newsletter(&["report", "import", example], &env, None);
    assert!(String::from_utf8(second.stdout)
        .unwrap()
        .starts_with("updated draft #1"));
    let list = newsletter(&["report", "list"], &env, None);
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains("draft") && list.contains("industrial-blockchain-weekly-2020-11"),
        "{list}"
    );
    assert_eq!(app.count("select count(*) from reports").await, 1);
}

/// `TOKEN=$(newsletter admin token …)` and `subscribers export > file`
/// capture the output alone, whatever the log level: the migration run by
/// every command (PostgreSQL answers it with notices) logs to stderr.
async fn stdout_carries_only_the_command_output_even_with_chatty_logs(backend: Backend) {
    let app = spawn_app(backend).await;
    app.confirmed_reader("ana@example.com").await;
    let db = app.app.state.settings.database_url.clone();
    let env = [("NEWSLETTER_DATABASE_URL", db.as_str())];
    let run = |args: &[&str], stdin: Option<&str>| newsletter_logging(args, &env, stdin, "trace");
    let added = run(
        &["admin", "add", "ed@example.com"],
        Some("a long enough password\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    let token = run(&["admin", "token", "ed@example.com"], None);
    assert!(token.status.success());
    let stdout = String::from_utf8(token.stdout).unwrap();
    let stderr = String::from_utf8(token.stderr).unwrap();
    assert!(
        !stderr.trim().is_empty(),
        "the logs are somewhere: on stderr"
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout is the token alone: {stdout:?}"
    );
    let token = stdout.trim_end_matches('\n');
    assert!(
        token.starts_with("nl_") && !token.contains(' '),
        "{token:?}"
    );
    let response = app
        .client
        .get(app.url("/api/reports"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the captured token works");

    let export = run(&["subscribers", "export"], None);
    assert!(export.status.success());
    let csv = String::from_utf8(export.stdout).unwrap();
    let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert_eq!(&rows[0][0], "ana@example.com");
}

/// `config check` names the algorithm and prints the record an independent
/// verifier accepts signatures with; a broken key is reported.
#[tokio::test]
async fn config_check_prints_the_dkim_record_to_publish() {
    use crate::dkim::{dkim_settings, test_key, KeyKind};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    for (kind, algorithm) in [
        (KeyKind::Rsa2048, "rsa-sha256"),
        (KeyKind::Ed25519, "ed25519-sha256"),
    ] {
        let key = test_key(kind);
        let settings = dkim_settings(&key);
        let file = key.file.to_str().unwrap();
        let out = newsletter(
            &["config", "check"],
            &[
                ("NEWSLETTER_DATABASE_URL", &db),
                ("NEWSLETTER_MAIL__FROM", "News <news@example.com>"),
                ("NEWSLETTER_MAIL__DKIM__SELECTOR", &settings.selector),
                ("NEWSLETTER_MAIL__DKIM__DOMAIN", &settings.domain),
                ("NEWSLETTER_MAIL__DKIM__PRIVATE_KEY_FILE", file),
            ],
            None,
        );
        let report = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{report}");
        assert!(
            report.contains(&format!("dkim: {algorithm} key")),
            "{report}"
        );
        let line = report
            .lines()
            .find(|l| l.contains("._domainkey."))
            .expect("the record line");
        assert!(
            line.contains(&format!(
                "{}._domainkey.example.com. IN TXT",
                settings.selector
            )),
            "{line}"
        );
        // The zone file's strings joined are the record.
        let value: String = line
            .split('"')
            .skip(1)
            .step_by(2)
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(value, key.record);
        assert!(!report.contains("WARNING"), "{report}");

        // Confirmations sent from another domain would fail DMARC.
        let out = newsletter(
            &["config", "check"],
            &[
                ("NEWSLETTER_DATABASE_URL", &db),
                ("NEWSLETTER_MAIL__FROM", "News <news@example.com>"),
                (
                    "NEWSLETTER_MAIL__CONFIRMATION_FROM",
                    "Join <join@other.org>",
                ),
                ("NEWSLETTER_MAIL__DKIM__SELECTOR", &settings.selector),
                ("NEWSLETTER_MAIL__DKIM__DOMAIN", &settings.domain),
                ("NEWSLETTER_MAIL__DKIM__PRIVATE_KEY_FILE", file),
            ],
            None,
        );
        let report = String::from_utf8(out.stdout).unwrap();
        assert!(
            report.contains("WARNING: the confirmation From domain other.org is not example.com"),
            "{report}"
        );
    }

    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = newsletter(
        &["config", "check"],
        &[
            ("NEWSLETTER_DATABASE_URL", &db),
            ("NEWSLETTER_MAIL__DKIM__SELECTOR", "s"),
            ("NEWSLETTER_MAIL__DKIM__DOMAIN", "example.com"),
            (
                "NEWSLETTER_MAIL__DKIM__PRIVATE_KEY_FILE",
                broken.to_str().unwrap(),
            ),
        ],
        None,
    );
    assert!(!out.status.success());
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.contains("dkim: NOT usable"), "{report}");
}
