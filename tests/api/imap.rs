//! The bounce mailbox, read over IMAP with TLS from a real Dovecot (Debian's
//! dovecot-imapd) with a certificate from a CA made for the test. What the
//! poller did is checked in the Maildir on disk, not through the poller.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use newsletter::bounces::{BounceMailbox, PollSummary};
use newsletter::config::ImapSettings;

use crate::bounces::{
    app_with_bounces, envelope_sender_to, sample, send_report_to, suppression_of, token_moved,
};
use crate::helpers::Backend;

crate::on_both_backends!(the_bounce_mailbox_is_read_and_only_understood_mail_removed);

/// A Dovecot serving one Maildir user over implicit TLS; killed when dropped.
struct Dovecot {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dovecot {
    fn maildir(&self) -> PathBuf {
        self.dir.path().join("home/bounces/Maildir")
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Files in the Maildir: (name, in `new`).
    fn messages(&self) -> Vec<String> {
        let mut names = Vec::new();
        for sub in ["new", "cur"] {
            for entry in std::fs::read_dir(self.maildir().join(sub)).unwrap() {
                names.push(entry.unwrap().file_name().into_string().unwrap());
            }
        }
        names
    }

    fn deliver(&self, name: &str, message: &str) {
        let path = self.maildir().join("new").join(name);
        std::fs::write(&path, message.replace('\n', "\r\n")).unwrap();
        run(
            "chown",
            &[
                "-R",
                "65534:65534",
                self.dir.path().join("home").to_str().unwrap(),
            ],
        );
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_dovecot() -> Option<Dovecot> {
    if !Path::new("/usr/sbin/dovecot").exists() {
        let reason = "Dovecot is not installed (apt-get install dovecot-imapd)";
        if std::env::var("CI").is_ok() {
            panic!("{reason}");
        }
        eprintln!("skipping: {reason}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    // Dovecot's processes run as other users and must reach the files.
    run("chmod", &["755", &d]);
    std::fs::write(
        dir.path().join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let p = |f: &str| format!("{d}/{f}");
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-subj",
            "/CN=Test CA",
            "-days",
            "2",
        ],
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("leaf.csr"),
            "-subj",
            "/CN=localhost",
        ],
    );
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("leaf.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("cert.pem"),
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
        ],
    );
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.path().join("home/bounces/Maildir").join(sub)).unwrap();
    }
    std::fs::write(
        dir.path().join("passwd"),
        "bounces:{PLAIN}mailbox-password\n",
    )
    .unwrap();
    run("chown", &["-R", "65534:65534", &p("home")]);
    // A port found free may be taken before Dovecot binds it: Dovecot then
    // exits, and another port is tried. Only a Dovecot still running once
    // its port answers is ours.
    for _ in 0..5 {
        let port = free_port();
        let config = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\nssl = required\n\
             ssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\nauth_mechanisms = plain login\n\
             service imap-login {{\n inet_listener imap {{\n  port = 0\n }}\n inet_listener imaps {{\n  port = {port}\n  ssl = yes\n }}\n}}\n\
             service stats {{\n unix_listener stats-reader {{\n  mode = 0666\n }}\n unix_listener stats-writer {{\n  mode = 0666\n }}\n}}\n\
             passdb {{\n driver = passwd-file\n args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n driver = static\n args = uid=65534 gid=65534 home={d}/home/%u\n}}\n\
             mail_location = maildir:~/Maildir\nfirst_valid_uid = 1\n"
        );
        std::fs::write(dir.path().join("dovecot.conf"), config).unwrap();
        let mut child = Command::new("/usr/sbin/dovecot")
            .args(["-F", "-c", &p("dovecot.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Long enough for a Dovecot that could not bind to exit.
                std::thread::sleep(Duration::from_millis(300));
                if child.try_wait().unwrap().is_none() {
                    return Some(Dovecot { child, port, dir });
                }
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Dovecot did not start; see {d}/dovecot.log"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("Dovecot could not listen on a free port; see {d}/dovecot.log");
}

async fn the_bounce_mailbox_is_read_and_only_understood_mail_removed(backend: Backend) {
    let Some(dovecot) = start_dovecot() else {
        return;
    };
    let app = app_with_bounces(backend).await;
    send_report_to(
        &app,
        &[
            "imap-gone@example.org",
            "imap-away@example.org",
            "imap-victim@example.org",
        ],
        "imap",
    )
    .await;
    let gone = envelope_sender_to(&app, "imap-gone@example.org", "");
    let away = envelope_sender_to(&app, "imap-away@example.org", "");
    let forger = envelope_sender_to(&app, "imap-away@example.org", "");
    let victim = envelope_sender_to(&app, "imap-victim@example.org", "");
    let forged = token_moved(&forger, &victim);

    dovecot.deliver(
        "1.bounce",
        &sample("gmail-no-such-user.eml", &gone, "imap-gone@example.org"),
    );
    dovecot.deliver(
        "2.vacation",
        &sample("vacation-auto-reply.eml", &away, "imap-away@example.org"),
    );
    dovecot.deliver(
        "3.forged",
        &sample("qmail-permanent.eml", &forged, "imap-victim@example.org"),
    );

    let settings = ImapSettings {
        host: "localhost".into(),
        port: dovecot.port,
        username: "bounces".into(),
        password: "mailbox-password".to_string().into(),
        mailbox: "INBOX".into(),
        poll_secs: 60,
        ca_file: Some(dovecot.ca()),
    };
    let intake = app.app.intake().unwrap();
    let mailbox = BounceMailbox::new(settings.clone(), intake.clone()).unwrap();
    let summary = mailbox.poll_once().await.unwrap();
    assert_eq!(summary, PollSummary { taken: 2, left: 1 });
    assert_eq!(
        suppression_of(&app, "imap-gone@example.org")
            .await
            .as_deref(),
        Some("bounced")
    );
    assert_eq!(suppression_of(&app, "imap-away@example.org").await, None);
    assert_eq!(suppression_of(&app, "imap-victim@example.org").await, None);

    // Only the auto-reply is left, marked read (the Maildir "S" flag).
    let left = dovecot.messages();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with("2.vacation") && left[0].ends_with(":2,S"),
        "{left:?}"
    );
    // A second poll finds nothing new.
    assert_eq!(mailbox.poll_once().await.unwrap(), PollSummary::default());

    // A wrong password or a server certificate from another CA fails the
    // poll without touching anything.
    let mut wrong = settings.clone();
    wrong.password = "guess".to_string().into();
    assert!(BounceMailbox::new(wrong, intake.clone())
        .unwrap()
        .poll_once()
        .await
        .is_err());
    let mut untrusted = settings;
    untrusted.ca_file = None;
    let err = BounceMailbox::new(untrusted, intake)
        .unwrap()
        .poll_once()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("certificate") || err.to_string().contains("Unknown"),
        "{err}"
    );
    assert_eq!(dovecot.messages().len(), 1);
}
