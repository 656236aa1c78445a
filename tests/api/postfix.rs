//! Real bounces from a real MTA: the service sends through Debian's Postfix
//! (started by the shared `local-postfix` tool), which refuses mail for
//! @bounce.test and defers mail for @soft.test, and writes RFC 3464
//! reports back to each delivery's own envelope sender. The reports reach
//! the test's SMTP server and are fed to `newsletter bounces ingest` as a
//! Postfix pipe would.

use std::os::fd::AsRawFd;

use mail_parser::MimeHeaders;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::bounces::{ingest, suppression_of};
use crate::helpers::Backend;

crate::on_both_backends!(postfix_bounces_suppress_the_address_they_report);

const LOCK: &str = "/tmp/newsletter-postfix.lock";
const DEFAULT_TOOL: &str = "/work/shared/tools/local-postfix";

/// Holds the machine's Postfix for one test: port 25 is one per machine.
struct PostfixLock(std::fs::File);

impl PostfixLock {
    async fn acquire() -> PostfixLock {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)
            .expect("open the Postfix lock file");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
        loop {
            // SAFETY: flock on a descriptor this struct owns.
            let got = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            if got {
                return PostfixLock(file);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "another test held Postfix for 15 minutes"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for PostfixLock {
    fn drop(&mut self) {
        // Leave Postfix as the tool configures it for the next user.
        let _ = Command::new("postconf")
            .args(["-e", "maximal_queue_lifetime=1h"])
            .status();
        let _ = Command::new("postfix").arg("reload").output();
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Runs `local-postfix start`. A Postfix left by an interrupted run can hang
/// while the tool stops it (its log daemon gone, the master waiting on it):
/// past a deadline the stuck processes are killed and the start is tried
/// once more, so one bad leftover costs a minute instead of the whole run.
pub fn start_local_postfix(
    tool: &std::path::Path,
    dir: &std::path::Path,
    port: u16,
    strict_helo: bool,
) -> std::process::Output {
    for _ in 0..2 {
        let mut child = Command::new(tool)
            .arg("start")
            .arg(dir)
            .arg(port.to_string())
            .env("STRICT_HELO", if strict_helo { "1" } else { "0" })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run local-postfix");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if child.try_wait().expect("wait for local-postfix").is_some() {
                return child.wait_with_output().expect("local-postfix output");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("local-postfix hung; killing the stuck Postfix and starting again");
        let _ = child.kill();
        let _ = child.wait();
        for pattern in ["postfix-script", "/usr/sbin/postlog", "postfix/sbin/master"] {
            let _ = Command::new("pkill").args(["-9", "-f", pattern]).status();
        }
    }
    panic!("local-postfix hung twice");
}

fn tool() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("NEWSLETTER_TEST_LOCAL_POSTFIX").unwrap_or_else(|_| DEFAULT_TOOL.into()),
    );
    path.exists().then_some(path)
}

/// Starts Postfix relaying to `port`; `None` (after saying so) when it
/// cannot run here, which fails the test under CI.
fn start_postfix(dir: &std::path::Path, port: u16) -> Option<()> {
    let reason = match tool() {
        None => "the local-postfix tool is not installed".to_string(),
        Some(tool) => {
            let out = start_local_postfix(&tool, dir, port, false);
            if out.status.success() {
                // Deferred mail comes back at the first failed attempt, so
                // a soft bounce arrives within the test.
                let set = Command::new("postconf")
                    .args(["-e", "maximal_queue_lifetime=0"])
                    .status()
                    .expect("postconf");
                let reload = Command::new("postfix")
                    .arg("reload")
                    .output()
                    .expect("reload");
                assert!(
                    set.success() && reload.status.success(),
                    "reconfiguring Postfix"
                );
                return Some(());
            }
            format!(
                "Postfix did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        }
    };
    if std::env::var("CI").is_ok() {
        panic!("{reason}");
    }
    eprintln!("skipping: {reason}");
    None
}

async fn postfix_bounces_suppress_the_address_they_report(backend: Backend) {
    let _lock = PostfixLock::acquire().await;
    let app = crate::bounces::app_with_bounce_address(backend, |s| {
        s.mail.smtp_url = Some("smtp://127.0.0.1:25".to_string().into());
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    if start_postfix(logs.path(), app.smtp.port).is_none() {
        return;
    }
    let gone = format!("gone-{}@bounce.test", uuid::Uuid::new_v4().simple());
    let full = format!("full-{}@soft.test", uuid::Uuid::new_v4().simple());
    let fine = "fine@example.org";
    for (i, email) in [gone.as_str(), full.as_str(), fine].iter().enumerate() {
        sqlx::query(
            "insert into subscribers (email, name, status, created_at, confirmed_at) \
             values ($1, $2, 'confirmed', 0, 0)",
        )
        .bind(*email)
        .bind(format!("Reader {i}"))
        .execute(app.store().pool())
        .await
        .unwrap();
    }
    let report = app
        .create_report(&crate::sending::report_source("through-postfix"))
        .await;
    assert!(app
        .trigger_send(report, "through-postfix")
        .await
        .status()
        .is_success());
    app.dispatch_all_pending().await;

    // Postfix relays the good reader's copy and writes two reports back,
    // each to the envelope sender of the delivery it is about.
    let mut reports = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while reports.len() < 2 {
        reports = app
            .smtp
            .received()
            .into_iter()
            .filter(|m| m.to().starts_with("bounces+"))
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "Postfix sent {} of 2 bounces; see {}/postfix.log",
            reports.len(),
            logs.path().display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered = app.smtp.wait_for(3, Duration::from_secs(60)).await;
    let copy = delivered
        .iter()
        .find(|m| m.to() == fine)
        .expect("the good reader's copy");
    assert!(copy.mail_from.starts_with("bounces+"), "{}", copy.mail_from);

    let mut verdicts = Vec::new();
    for (i, dsn) in reports.iter().enumerate() {
        assert_eq!(dsn.mail_from, "", "a bounce has the null sender");
        let parsed = dsn.parsed();
        let content_type = parsed.content_type().unwrap();
        assert_eq!(
            content_type.attribute("report-type"),
            Some("delivery-status")
        );
        let raw = String::from_utf8_lossy(&dsn.data).into_owned();
        // Half as a pipe with ${original_recipient}, half from the headers.
        let args = ["--recipient", dsn.to()];
        let out = ingest(&app, &raw, if i == 0 { &args } else { &[] });
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        verdicts.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    verdicts.sort();
    assert_eq!(
        verdicts,
        vec![format!("hard {gone}, suppressed"), format!("soft {full}")]
    );
    assert_eq!(
        suppression_of(&app, &gone).await.as_deref(),
        Some("bounced")
    );
    assert_eq!(suppression_of(&app, &full).await, None);
    assert_eq!(suppression_of(&app, fine).await, None);
    let status: String = sqlx::query_scalar("select status_code from bounces where recipient = $1")
        .bind(&gone)
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(status, "5.1.1");
}
