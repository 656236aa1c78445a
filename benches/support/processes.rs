//! The product as an operator runs it: `newsletter serve` (and, when asked,
//! `newsletter worker` processes beside it) started from the release binary
//! with a settings file pointing at the sink, readers imported with
//! `newsletter subscribers import`, an API token made with `newsletter admin
//! token`, the report stored and its send triggered over the HTTP API, and
//! the send's own state polled until it is done.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// What one send through the processes took.
pub struct ProcessSend {
    pub messages: usize,
    /// From the send's `started_at` to its `finished_at`, as the API shows
    /// them (the worker marks a send done on its next pass, at most a second
    /// after the last delivery).
    pub send_wall: Duration,
    /// From the send's `started_at` to the last delivery's `sent_at`.
    pub delivery_wall: Duration,
    /// From the send's `started_at` to the first delivery's `sent_at`.
    pub first_delivery: Duration,
    /// User and system CPU of every service process over the send.
    pub cpu: Duration,
    /// Peak RSS of the `serve` process.
    pub rss_mb: f64,
    /// Sign-ups under load while the send ran, when asked for.
    pub signup: Option<Load>,
}

impl ProcessSend {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.delivery_wall.as_secs_f64()
    }
}

/// A wrk run's figures.
pub struct Load {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
}

pub struct Setup<'a> {
    pub binary: &'a Path,
    pub dir: &'a Path,
    pub database_url: String,
    pub smtp: &'a str,
    /// Messages at once over all processes, and SMTP connections.
    pub concurrency: usize,
    /// `newsletter worker` processes beside `serve`; the concurrency is
    /// shared out among all processes.
    pub workers: usize,
    pub readers: usize,
    pub report_source: &'a str,
    /// `[mail.dkim]`: selector, domain, key file.
    pub dkim: Option<(String, String, PathBuf)>,
    /// Seconds of sign-up load (wrk, 64 connections) started with the send.
    pub signup_load_secs: Option<u64>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn settings_file(setup: &Setup, port: u16, concurrency: usize, name: &str) -> PathBuf {
    let mut toml = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         database_url = \"{db}\"\n\
         base_url = \"http://127.0.0.1:{port}\"\n\
         [mail]\n\
         smtp_url = \"smtp://{smtp}\"\n\
         pool_size = {concurrency}\n\
         from = \"Bench <bench@example.com>\"\n\
         [delivery]\n\
         concurrency = {concurrency}\n\
         batch_size = 500\n\
         [subscription]\n\
         signups_per_ip_per_hour = 0\n\
         [log]\n\
         filter = \"warn\"\n",
        db = setup.database_url,
        smtp = setup.smtp,
    );
    if let Some((selector, domain, key)) = &setup.dkim {
        toml.push_str(&format!(
            "[mail.dkim]\nselector = \"{selector}\"\ndomain = \"{domain}\"\nprivate_key_file = \"{}\"\n",
            key.display()
        ));
    }
    let path = setup.dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

/// Runs a command of the binary to its end and returns its standard output.
async fn command(binary: &Path, config: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the release binary (cargo build --release)");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .await
        .unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "newsletter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn spawn(binary: &Path, config: &Path, what: &str, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join(format!("{what}.log"))).unwrap();
    Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg(what)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// User + system CPU of a process, from /proc/PID/stat.
pub fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses: state is
    // the first, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a constant of the system.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / per_sec)
}

/// Sends the report to `setup.readers` readers through the processes.
pub async fn send(setup: Setup<'_>) -> ProcessSend {
    let port = free_port();
    let processes = 1 + setup.workers;
    let share = setup.concurrency.div_ceil(processes);
    let serve_config = settings_file(&setup, port, share, "serve");
    let binary = setup.binary;

    command(binary, &serve_config, &["migrate"], None).await;
    let csv = setup.dir.join("readers.csv");
    let mut rows = String::from("email,name,confirmed_at\n");
    for i in 0..setup.readers {
        rows.push_str(&format!("reader{i}@example.com,Reader {i},2026-11-02\n"));
    }
    std::fs::write(&csv, rows).unwrap();
    command(
        binary,
        &serve_config,
        &[
            "subscribers",
            "import",
            csv.to_str().unwrap(),
            "--status",
            "confirmed",
        ],
        None,
    )
    .await;
    let editor = "bench-editor@example.com";
    let password = format!("{}-Lantern-Harbour", uuid::Uuid::new_v4().simple());
    command(
        binary,
        &serve_config,
        &["admin", "add", editor],
        Some(&format!("{password}\n")),
    )
    .await;
    let token = command(binary, &serve_config, &["admin", "token", editor], None)
        .await
        .trim()
        .to_string();

    let mut children = vec![spawn(binary, &serve_config, "serve", setup.dir)];
    for i in 0..setup.workers {
        let config = settings_file(&setup, port, share, &format!("worker{i}"));
        children.push(spawn(binary, &config, "worker", setup.dir));
    }
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started_waiting = Instant::now();
    while http
        .get(format!("{base}/health"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(
            started_waiting.elapsed() < Duration::from_secs(60),
            "newsletter serve did not come up; see {}",
            setup.dir.join("serve.log").display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let created: serde_json::Value = http
        .post(format!("{base}/api/reports"))
        .bearer_auth(&token)
        .header("content-type", "text/markdown")
        .body(setup.report_source.to_string())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let report = created["id"].as_i64().expect("the report's id");

    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    let cpu_before: Duration = pids.iter().map(|&p| process_cpu(p)).sum();
    let triggered = http
        .post(format!("{base}/api/reports/{report}/send"))
        .bearer_auth(&token)
        .header("idempotency-key", "bench")
        .send()
        .await
        .unwrap();
    assert_eq!(triggered.status(), 202, "the send was accepted");
    let load = setup.signup_load_secs.map(|secs| {
        Command::new("wrk")
            .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", "-s"])
            .arg("benches/signup.lua")
            .arg(&base)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("wrk")
    });

    let send = loop {
        let shown = api_json(&http, &format!("{base}/api/reports/{report}"), &token).await;
        let send = shown["send"].clone();
        match send["state"].as_str() {
            Some("done") => break send,
            Some("sending") | Some("scheduled") => {}
            other => panic!("the send is {other:?}: {send}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cpu = pids.iter().map(|&p| process_cpu(p)).sum::<Duration>() - cpu_before;
    let rss_mb = crate::support::peak_rss_mb(&pids[0].to_string()).unwrap_or(0.0);
    let signup = match load {
        Some(wrk) => Some(parse_wrk(&wrk.wait_with_output().await.unwrap().stdout)),
        None => None,
    };
    let stats = api_json(&http, &format!("{base}/api/reports/{report}/stats"), &token).await;
    for child in &mut children {
        if let Some(pid) = child.id() {
            // SAFETY: a plain signal to a child this function started.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = child.wait().await;
    }

    let started = send["started_at"].as_i64().expect("started_at");
    let finished = send["finished_at"].as_i64().expect("finished_at");
    let store = newsletter::store::Store::connect(&setup.database_url, 1)
        .await
        .unwrap();
    let (first, last): (i64, i64) = sqlx::query_as(
        "select min(sent_at), max(sent_at) from outbox where report_id = $1 and kind = 'report'",
    )
    .bind(report)
    .fetch_one(store.pool())
    .await
    .unwrap();
    store.close().await;
    let ms = |ms: i64| Duration::from_millis(ms.max(1) as u64);
    ProcessSend {
        messages: stats["sent"].as_i64().unwrap_or(0) as usize,
        send_wall: ms(finished - started),
        delivery_wall: ms(last - started),
        first_delivery: ms(first - started),
        cpu,
        rss_mb,
        signup,
    }
}

/// Requests/sec, the 50th and 99th percentiles and non-2xx answers from
/// wrk's `--latency` output.
pub fn parse_wrk(out: &[u8]) -> Load {
    let text = String::from_utf8_lossy(out);
    let millis = |v: &str| {
        let v = v.trim();
        if let Some(us) = v.strip_suffix("us") {
            us.parse::<f64>().unwrap_or(0.0) / 1000.0
        } else if let Some(ms) = v.strip_suffix("ms") {
            ms.parse().unwrap_or(0.0)
        } else if let Some(s) = v.strip_suffix('s') {
            s.parse::<f64>().unwrap_or(0.0) * 1000.0
        } else {
            0.0
        }
    };
    let mut load = Load {
        requests_per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        non_2xx: 0,
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            load.requests_per_sec = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("50%") {
            load.p50_ms = millis(v);
        } else if let Some(v) = line.strip_prefix("99%") {
            load.p99_ms = millis(v);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.non_2xx = v.trim().parse().unwrap_or(0);
        }
    }
    load
}

/// An API answer as JSON.
async fn api_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
