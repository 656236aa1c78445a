//! The whole send path against the bare SMTP limit.
//!
//! Run through `benches/run.sh`, which starts Postfix's `smtp-sink` on
//! loopback. For each backend and reader count this binary:
//! 1. creates N confirmed readers and the example report;
//! 2. triggers a send through the service's own code (durable queue,
//!    per-reader personalisation, per-message state) and runs the worker
//!    until the queue is empty;
//! 3. sends the same number of equally sized messages with bare lettre at
//!    the same concurrency to the same sink: once through lettre's pooled
//!    `AsyncSmtpTransport` as it ships, and once over lettre connections
//!    with TCP_NODELAY, as the service opens them (the baseline: the fastest
//!    that lettre itself goes), run once before the service and once after
//!    it and taken as their mean, since a shared machine's pace drifts;
//! 4. prints messages/s, wall time, CPU time and peak RSS, and the ratio
//!    service/baseline.
//!
//! It also times the stages on their own: enqueueing N readers,
//! personalising one message, and a claim/record round trip.
//!
//! With `--rtt-ms 20` it also runs a relay at a distance: a proxy on
//! loopback holds every chunk for half the round trip in each direction, and
//! the service and lettre's own client (one command, one wait) each send
//! `--rtt-readers` messages through it; the figure that matters there is
//! messages per second per connection.

// Settings are written field by field, as an operator would set them.
#![allow(clippy::field_reassign_with_default)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
#[path = "support/processes.rs"]
mod processes;
mod support;

use newsletter::config::Settings;
use newsletter::startup::Application;
use newsletter::store::{now_ms, JobOutcome, Store};
use tokio_util::sync::CancellationToken;

struct Args {
    smtp: String,
    readers: Vec<usize>,
    backends: Vec<String>,
    concurrency: usize,
    postgres: String,
    /// Readers for the DKIM comparison (0 skips it).
    dkim_readers: usize,
    rtt_ms: Option<u64>,
    rtt_readers: usize,
    /// Readers for the send through `newsletter serve` and `worker`
    /// processes (0 skips it).
    process_readers: usize,
    /// Seconds of sign-up load during the sends through the processes.
    signup_secs: u64,
}

fn args() -> Args {
    let mut args = Args {
        smtp: "127.0.0.1:2525".into(),
        readers: vec![10_000, 100_000],
        backends: vec!["sqlite".into(), "postgres".into()],
        concurrency: 16,
        postgres: "postgres://postgres@127.0.0.1:5432/test".into(),
        dkim_readers: 10_000,
        rtt_ms: None,
        rtt_readers: 2_000,
        process_readers: 20_000,
        signup_secs: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--smtp" => args.smtp = value(),
            "--readers" => {
                args.readers = value()
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(|n| n.parse().expect("a number"))
                    .collect()
            }
            "--backends" => args.backends = value().split(',').map(String::from).collect(),
            "--concurrency" => args.concurrency = value().parse().expect("a number"),
            "--postgres" => args.postgres = value(),
            "--dkim-readers" => args.dkim_readers = value().parse().expect("a number"),
            "--rtt-ms" => args.rtt_ms = Some(value().parse().expect("milliseconds")),
            "--rtt-readers" => args.rtt_readers = value().parse().expect("a number"),
            "--process-readers" => args.process_readers = value().parse().expect("a number"),
            "--signup-secs" => args.signup_secs = value().parse().expect("seconds"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// This process's resource use so far, all its threads together.
fn usage() -> libc::rusage {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete rusage into the pointer it gets.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    }
}

/// CPU time of this process (user + system).
fn cpu_time() -> Duration {
    let usage = usage();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Times this process's threads gave up a core, waiting or pre-empted. Much
/// of the service's CPU beyond the bare loop's is threads waking one
/// another, which this counts where CPU time only blurs it.
fn context_switches() -> u64 {
    let usage = usage();
    (usage.ru_nvcsw + usage.ru_nivcsw) as u64
}

/// Context switches of each live thread, by thread id: its name and its
/// count so far. Read from /proc, so only on Linux; elsewhere empty.
fn thread_switches() -> HashMap<String, (String, u64)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let switches: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum();
        // Numbered threads of one kind count as one group.
        let group = name
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        threads.insert(
            task.file_name().to_string_lossy().into_owned(),
            (group.to_string(), switches),
        );
    }
    threads
}

/// Switches per message by thread group between two readings, largest
/// first, for stderr: where a run's hand-overs happen.
fn switches_by_group(
    before: &HashMap<String, (String, u64)>,
    after: &HashMap<String, (String, u64)>,
    messages: usize,
) -> String {
    let mut groups: HashMap<&str, u64> = HashMap::new();
    for (tid, (group, n)) in after {
        let was = before.get(tid).map_or(0, |(_, n)| *n);
        *groups.entry(group).or_default() += n - was.min(*n);
    }
    let mut groups: Vec<_> = groups.into_iter().filter(|(_, n)| *n > 0).collect();
    groups.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    groups
        .iter()
        .map(|(g, n)| format!("{g} {:.2}", *n as f64 / messages.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CPU time of every PostgreSQL server process on this machine, by pid
/// (its backends, WAL writer and the rest): the database's own share of a
/// send, which the service's CPU leaves out. Zero where there is none.
fn server_cpu() -> HashMap<u32, Duration> {
    let mut cpu = HashMap::new();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return cpu;
    };
    for process in processes.flatten() {
        let Ok(pid) = process.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses and may hold spaces: fields count from
        // after it.
        let Some((name, rest)) = stat.split_once(") ") else {
            continue;
        };
        if !name.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(user), Some(system)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let ticks_used = user.parse::<u64>().unwrap_or(0) + system.parse::<u64>().unwrap_or(0);
        cpu.insert(pid, Duration::from_secs_f64(ticks_used as f64 / ticks));
    }
    cpu
}

/// The server CPU spent between two readings; a process that started in
/// between counts from zero.
fn server_cpu_since(before: &HashMap<u32, Duration>) -> Duration {
    server_cpu()
        .into_iter()
        .map(|(pid, used)| used.saturating_sub(before.get(&pid).copied().unwrap_or_default()))
        .sum()
}

struct Measure {
    wall: Duration,
    cpu: Duration,
    /// The PostgreSQL server's CPU meanwhile (see `server_cpu`).
    server_cpu: Duration,
    switches: u64,
    rss_mb: f64,
    messages: usize,
}

impl Measure {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.wall.as_secs_f64()
    }

    fn per_message(&self, count: u64) -> f64 {
        count as f64 / self.messages.max(1) as f64
    }

    /// Two runs of the same messages as one run: the mean of their times,
    /// which gives their messages over their time as the rate.
    fn joined(&self, other: &Measure) -> Measure {
        Measure {
            wall: (self.wall + other.wall) / 2,
            cpu: (self.cpu + other.cpu) / 2,
            server_cpu: (self.server_cpu + other.server_cpu) / 2,
            switches: (self.switches + other.switches) / 2,
            rss_mb: self.rss_mb.max(other.rss_mb),
            messages: (self.messages + other.messages) / 2,
        }
    }
}

async fn measured<F: std::future::Future<Output = usize>>(f: F) -> Measure {
    reset_peak_rss();
    let cpu = cpu_time();
    let switches = context_switches();
    let server = server_cpu();
    let threads = thread_switches();
    let start = Instant::now();
    let messages = f.await;
    // Read before anything else runs: the readings of /proc below are the
    // bench's own work, not the run's.
    let (wall, cpu, switches) = (
        start.elapsed(),
        cpu_time() - cpu,
        context_switches() - switches,
    );
    if messages > 0 {
        eprintln!(
            "context switches per message by thread: {}",
            switches_by_group(&threads, &thread_switches(), messages)
        );
    }
    Measure {
        wall,
        cpu,
        server_cpu: server_cpu_since(&server),
        switches,
        rss_mb: support::peak_rss_mb("self").unwrap_or(0.0),
        messages,
    }
}

async fn insert_readers(store: &Store, n: usize) {
    let mut tx = store.pool().begin().await.unwrap();
    for start in (0..n).step_by(1000) {
        let values: Vec<String> = (start..(start + 1000).min(n))
            .map(|i| format!("('reader{i}@example.com', 'Reader {i}', 'confirmed', 0, 0)"))
            .collect();
        let sql = format!(
            "insert into subscribers (email, name, status, created_at, confirmed_at) values {}",
            values.join(", ")
        );
        sqlx::query(&sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

fn example_report() -> String {
    std::fs::read_to_string("reports/example.md")
        .expect("run from the repository root: reports/example.md")
}

struct Row {
    backend: String,
    readers: usize,
    service: Measure,
    /// The bare loop run just before the service and just after it, as
    /// one: on a shared machine the pace drifts within a run, and a
    /// baseline on one side of the service alone would carry that drift
    /// into the ratio.
    baseline: Measure,
    /// The two runs of the baseline on their own (msg/s).
    baseline_before_after: (f64, f64),
    stock_pool: Measure,
    enqueue: Duration,
}

async fn run_one(backend: &str, readers: usize, args: &Args) -> Row {
    run_one_via(backend, readers, args, &args.smtp, true).await
}

/// One send of `readers` messages through the relay at `smtp`, with the
/// baselines; lettre's stock pool only when `stock_pool` is set.
async fn run_one_via(
    backend: &str,
    readers: usize,
    args: &Args,
    smtp: &str,
    with_stock_pool: bool,
) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let (app, report_id) = app_with_readers(backend, readers, args, smtp, None, dir.path()).await;
    let store = app.state.store.clone();

    // The baseline: the same bytes through bare lettre, once before.
    let sample = sample_message(&app, report_id).await;
    let before = measured(bare_connections(smtp, &sample, readers, args.concurrency)).await;

    // Enqueue: one snapshot of every confirmed reader.
    let started = Instant::now();
    let now = now_ms();
    store
        .trigger_send(report_id, "bench", now, now)
        .await
        .unwrap();
    let enqueue = started.elapsed();

    // The service: the worker loop of `newsletter worker`, until done.
    let service = measured(deliver_with_worker(&app, report_id)).await;
    assert_eq!(service.messages, readers, "every reader got the report");

    // And the baseline once after.
    let after = measured(bare_connections(smtp, &sample, readers, args.concurrency)).await;
    let baseline_before_after = (before.rate(), after.rate());
    let baseline = before.joined(&after);
    // lettre's stock pool runs at a fixed pace (see README), so 10,000
    // messages tell its rate as well as more would.
    let stock_pool = if with_stock_pool {
        measured(bare_lettre(
            smtp,
            &sample,
            readers.min(10_000),
            args.concurrency,
        ))
        .await
    } else {
        measured(async { 0 }).await
    };
    store.close().await;
    Row {
        backend: backend.into(),
        readers,
        service,
        baseline,
        baseline_before_after,
        stock_pool,
        enqueue,
    }
}

/// The service on a fresh database with `readers` confirmed readers, set
/// to send through `smtp`, and the example report saved (its id).
async fn app_with_readers(
    backend: &str,
    readers: usize,
    args: &Args,
    smtp: &str,
    dkim: Option<newsletter::config::DkimSettings>,
    dir: &std::path::Path,
) -> (Application, i64) {
    let mut settings = Settings::default();
    settings.database_url = support::fresh_database(backend, &args.postgres, dir, "bench").await;
    settings.mail.smtp_url = Some(format!("smtp://{smtp}").into());
    settings.mail.pool_size = args.concurrency as u32;
    settings.mail.dkim = dkim;
    settings.delivery.concurrency = args.concurrency;
    settings.delivery.batch_size = 500;
    settings.delivery.poll_interval_ms = 20;
    settings.log.filter = "warn".into();
    let app = Application::build(settings)
        .await
        .expect("build the service");
    insert_readers(&app.state.store, readers).await;
    let report_id = match app
        .state
        .newsletter()
        .save_report_source(&example_report())
        .await
    {
        Ok(newsletter::store::SaveOutcome::Created(id)) => id,
        other => panic!("saving the example report: {:?}", other.err()),
    };
    (app, report_id)
}

/// Runs the worker loop of `newsletter worker` until nothing is queued;
/// returns how many of the report's deliveries went out.
async fn deliver_with_worker(app: &Application, report_id: i64) -> usize {
    let store = &app.state.store;
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(app.dispatcher.clone().run(cancel.clone()));
    // Each look at the queue is a statement the database answers beside
    // the worker's own: often enough to time the send, rarely enough not to
    // weigh on it.
    while store.has_queued_jobs().await.unwrap() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    worker.await.unwrap();
    store.delivered_count(report_id).await.unwrap() as usize
}

/// One message as the service builds it, for the baseline to send.
async fn sample_message(app: &Application, report_id: i64) -> Vec<u8> {
    let stored = app.state.store.report(report_id).await.unwrap().unwrap();
    let report = newsletter::report::Report::parse(&stored.source).unwrap();
    let base = app.state.settings.base();
    let context = newsletter::report::SendContext {
        base_url: &base,
        site_name: &app.state.settings.site_name,
        archive_url: format!("{base}/archive/{}", stored.slug),
    };
    let rendered = newsletter::report::render_report(&app.state.tera, &report, &context).unwrap();
    let url = format!("{base}/unsubscribe?token=1.{}", "x".repeat(43));
    let reader = newsletter::report::Reader {
        name: Some("Reader 1"),
        unsubscribe_url: &url,
        feedback_yes_url: &url,
        feedback_no_url: &url,
    };
    let html = rendered.html.fill(&reader, true);
    let text = rendered.text.fill(&reader, false);
    lettre::Message::builder()
        .from("Bench <bench@example.com>".parse().unwrap())
        .to("reader1@example.com".parse().unwrap())
        .subject(rendered.subject.clone())
        .multipart(lettre::message::MultiPart::alternative_plain_html(
            text, html,
        ))
        .unwrap()
        .formatted()
}

async fn bare_lettre(smtp: &str, message: &[u8], n: usize, concurrency: usize) -> usize {
    let (host, port) = smtp.rsplit_once(':').unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port.parse().unwrap())
        .pool_config(PoolConfig::new().max_size(concurrency as u32))
        .build();
    let envelope = lettre::address::Envelope::new(
        Some("bench@example.com".parse().unwrap()),
        vec!["reader1@example.com".parse().unwrap()],
    )
    .unwrap();
    futures::stream::iter(0..n)
        .map(|_| transport.send_raw(&envelope, message))
        .buffer_unordered(concurrency)
        .filter(|r| futures::future::ready(r.is_ok()))
        .count()
        .await
}

/// `concurrency` lettre connections with TCP_NODELAY, each sending in a loop
/// until `n` messages are out: nothing but SMTP.
async fn bare_connections(smtp: &str, message: &[u8], n: usize, concurrency: usize) -> usize {
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    use lettre::transport::smtp::extension::ClientId;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let next = Arc::new(AtomicUsize::new(0));
    let message: Arc<[u8]> = message.into();
    let envelope = lettre::address::Envelope::new(
        Some("bench@example.com".parse().unwrap()),
        vec!["reader1@example.com".parse().unwrap()],
    )
    .unwrap();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, message, envelope) = (next.clone(), message.clone(), envelope.clone());
            let smtp = smtp.to_string();
            tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(&smtp).await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let mut conn = AsyncSmtpConnection::connect_with_transport(
                    Box::new(tcp),
                    &ClientId::default(),
                )
                .await
                .unwrap();
                let mut sent = 0;
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    if conn.send(&envelope, &message).await.is_ok() {
                        sent += 1;
                    }
                }
                let _ = conn.quit().await;
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        sent += task.await.unwrap();
    }
    sent
}

/// A TCP proxy on loopback that holds every chunk for half of `rtt` in each
/// direction, like a relay at a distance. Each chunk is held from its own
/// arrival, so chunks written back to back arrive back to back, as they
/// would over a long link.
async fn delaying_proxy(target: String, rtt: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(relay) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), relay.set_nodelay(true));
                let (from_client, to_client) = client.into_split();
                let (from_relay, to_relay) = relay.into_split();
                tokio::join!(
                    delayed_copy(from_client, to_relay, rtt / 2),
                    delayed_copy(from_relay, to_client, rtt / 2),
                );
            });
        }
    });
    address
}

async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (chunks, mut due) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        let at = tokio::time::Instant::now() + delay;
        if chunks.send((at, buffer[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(chunks);
    let _ = writer.await;
}

/// The relay at a distance: the service and lettre's one-command-at-a-time
/// client through the delaying proxy, per connection.
async fn relay_at_a_distance(args: &Args, rtt_ms: u64) {
    let proxy = delaying_proxy(args.smtp.clone(), Duration::from_millis(rtt_ms)).await;
    println!(
        "\nrelay at a distance: RTT {rtt_ms} ms through a delaying proxy, {} messages, {} connections\n",
        args.rtt_readers, args.concurrency
    );
    println!("| backend | service msg/s | per connection | lettre's client msg/s | per connection | service/lettre | round trips per message (service / lettre) |");
    println!("|---|---|---|---|---|---|---|");
    for backend in &args.backends {
        eprintln!("running {backend} at RTT {rtt_ms} ms…");
        let row = run_one_via(backend, args.rtt_readers, args, &proxy, false).await;
        let per_connection = |m: &Measure| m.rate() / args.concurrency as f64;
        let round_trips = |m: &Measure| 1000.0 / per_connection(m) / rtt_ms as f64;
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.2} × | {:.1} / {:.1} |",
            row.backend,
            row.service.rate(),
            per_connection(&row.service),
            row.baseline.rate(),
            per_connection(&row.baseline),
            row.service.rate() / row.baseline.rate(),
            round_trips(&row.service),
            round_trips(&row.baseline),
        );
    }
}

/// Per-message personalisation and claim/record round trips.
async fn stages(args: &Args) {
    let dir = tempfile::tempdir().unwrap();
    for backend in &args.backends {
        let mut settings = Settings::default();
        settings.database_url =
            support::fresh_database(backend, &args.postgres, dir.path(), "bench").await;
        settings.log.filter = "warn".into();
        let app = Application::build(settings).await.unwrap();
        let store = app.state.store.clone();
        insert_readers(&store, 20_000).await;
        let report_id = match app
            .state
            .newsletter()
            .save_report_source(&example_report())
            .await
            .unwrap()
        {
            newsletter::store::SaveOutcome::Created(id) => id,
            _ => unreachable!(),
        };
        let now = now_ms();
        store
            .trigger_send(report_id, "stages", now, now)
            .await
            .unwrap();
        let start = Instant::now();
        let mut rounds = 0;
        loop {
            let jobs = store
                .claim_due_jobs("bench", now_ms(), now_ms() + 60_000, 500)
                .await
                .unwrap();
            if jobs.is_empty() {
                break;
            }
            let outcomes: Vec<JobOutcome> = jobs
                .iter()
                .map(|j| JobOutcome::Sent {
                    id: j.id,
                    message_id: format!("<{}@bench>", j.id),
                    at: now_ms(),
                })
                .collect();
            store.record_outcomes(None, &outcomes).await.unwrap();
            rounds += 1;
        }
        let elapsed = start.elapsed();
        println!(
            "| {backend} | claim 500 + record 500, {rounds} rounds | {:.1} ms per round | {:.1} µs per message |",
            elapsed.as_secs_f64() * 1000.0 / rounds as f64,
            elapsed.as_secs_f64() * 1e6 / 20_000.0
        );
        store.close().await;
    }

    // Personalisation does not touch the database.
    let app = Application::build({
        let mut s = Settings::default();
        s.database_url = format!("sqlite://{}/p.db", dir.path().display());
        s.log.filter = "warn".into();
        s
    })
    .await
    .unwrap();
    let report = newsletter::report::Report::parse(&example_report()).unwrap();
    let context = newsletter::report::SendContext {
        base_url: "https://news.example.com",
        site_name: "The Weekly Report",
        archive_url: "https://news.example.com/archive/x".into(),
    };
    let render_start = Instant::now();
    let rendered = newsletter::report::render_report(&app.state.tera, &report, &context).unwrap();
    let render = render_start.elapsed();
    let n = 100_000;
    let signer = &app.state.signer;
    let start = Instant::now();
    let mut bytes = 0;
    let issue = uuid::Uuid::new_v4();
    for _ in 1..=n {
        let reader = uuid::Uuid::new_v4();
        let unsubscribe = format!(
            "https://news.example.com/unsubscribe?token={}",
            signer.unsubscribe_token(&reader).as_str()
        );
        let yes = format!(
            "https://news.example.com/feedback?token={}&answer=yes",
            signer.feedback_token(&issue, &reader)
        );
        let no = format!(
            "https://news.example.com/feedback?token={}&answer=no",
            signer.feedback_token(&issue, &reader)
        );
        let reader = newsletter::report::Reader {
            name: Some("Reader"),
            unsubscribe_url: &unsubscribe,
            feedback_yes_url: &yes,
            feedback_no_url: &no,
        };
        bytes += rendered.html.fill(&reader, true).len() + rendered.text.fill(&reader, false).len();
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "| - | full render once (Tera + Markdown + CSS inlining) | {:.1} ms | |",
        render.as_secs_f64() * 1000.0
    );
    println!("| - | personalise one message (3 signed links, HTML + text, {} bytes) | {per:.2} µs | ratio to full render: {:.5} |", bytes / n as usize, per / (render.as_secs_f64() * 1e6));
}

#[tokio::main]
async fn main() {
    let args = args();
    if args.backends.iter().any(|b| b == "postgres") {
        support::drop_earlier_databases(&args.postgres, &["bench", "proc"]).await;
    }
    let mut rows = Vec::new();
    for backend in &args.backends {
        for &n in &args.readers {
            eprintln!("running {backend} with {n} readers…");
            rows.push(run_one(backend, n, &args).await);
        }
    }
    if !rows.is_empty() {
        print_rows(&rows, &args);
    }
    if args.process_readers > 0 {
        through_processes(&args).await;
    }
    if let Some(rtt_ms) = args.rtt_ms {
        relay_at_a_distance(&args, rtt_ms).await;
    }
    if !args.readers.is_empty() {
        println!("\n| backend | stage | cost | |\n|---|---|---|---|");
        stages(&args).await;
    }
    dkim_modes(&args).await;
}

/// The same send in this process (the worker loop driven directly), through
/// the real `newsletter serve` (and `serve` beside a `newsletter worker` on
/// PostgreSQL), and over the bare lettre loop, one after the other; then
/// `serve` again with sign-ups under load (wrk, 64 connections) during the
/// send, unsigned and signed.
async fn through_processes(args: &Args) {
    let n = args.process_readers;
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_newsletter"));
    println!(
        "\nthe product: {n} readers, concurrency {c}, pool {c}, send triggered over HTTP, \
         timed from the send's start to its last delivery; CPU of the service processes \
         (from /proc) or of this process\n",
        c = args.concurrency
    );
    println!("| backend | how | msg/s | of the bare loop | wall | CPU | CPU per message, × bare | after the trigger | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut loads = Vec::new();
    for backend in &args.backends {
        eprintln!("running {backend}: in process, then as processes, {n} readers…");
        let row = run_one_via(backend, n, args, &args.smtp, false).await;
        let bare = &row.baseline;
        let bare_cpu = bare.cpu.as_secs_f64() / bare.messages as f64;
        let line = |how: &str, rate: f64, wall: Duration, cpu: Duration, done: String, rss: f64| {
            println!(
                "| {backend} | {how} | {rate:.0} | {:.0} % | {:.1} s | {:.1} s | {:.2} × | {done} | {rss:.0} MB |",
                100.0 * rate / bare.rate(),
                wall.as_secs_f64(),
                cpu.as_secs_f64(),
                cpu.as_secs_f64() / n as f64 / bare_cpu,
            )
        };
        line(
            "bare lettre loop",
            bare.rate(),
            bare.wall,
            bare.cpu,
            "-".into(),
            bare.rss_mb,
        );
        line(
            "in process (worker loop)",
            row.service.rate(),
            row.service.wall,
            row.service.cpu,
            "-".into(),
            row.service.rss_mb,
        );
        let mut modes: Vec<(&str, usize, Option<&str>, bool)> = vec![("serve", 0, None, false)];
        if backend == "postgres" {
            modes.push(("serve + worker, 8 + 8", 1, None, false));
        }
        if *backend == args.backends[0] {
            modes.push(("serve, sign-ups under load", 0, None, true));
            modes.push((
                "serve, RSA-2048 DKIM, sign-ups under load",
                0,
                Some("rsa"),
                true,
            ));
            modes.push((
                "serve, Ed25519 DKIM, sign-ups under load",
                0,
                Some("ed25519"),
                true,
            ));
        }
        for (how, workers, dkim, signups) in modes {
            eprintln!("running {backend}: {how}…");
            let dir = tempfile::tempdir().unwrap();
            let dkim = dkim.map(|kind| {
                let der = if kind == "rsa" {
                    rsa_key()
                } else {
                    ed25519_key()
                };
                (
                    "bench".to_string(),
                    "localhost.localdomain".to_string(),
                    key_file(dir.path(), kind, &der),
                )
            });
            let sent = processes::send(processes::Setup {
                binary,
                dir: dir.path(),
                database_url: support::fresh_database(backend, &args.postgres, dir.path(), "proc")
                    .await,
                smtp: &args.smtp,
                concurrency: args.concurrency,
                workers,
                readers: n,
                report_source: &example_report(),
                dkim,
                signup_load_secs: signups.then_some(args.signup_secs),
            })
            .await;
            assert_eq!(sent.messages, n, "every reader got the report");
            line(
                how,
                sent.rate(),
                sent.delivery_wall,
                sent.cpu,
                format!(
                    "first delivery {:.2} s, done {:.1} s",
                    sent.first_delivery.as_secs_f64(),
                    sent.send_wall.as_secs_f64()
                ),
                sent.rss_mb,
            );
            if let Some(load) = sent.signup {
                loads.push((backend.clone(), how.to_string(), load));
            }
        }
    }
    if loads.is_empty() {
        return;
    }
    println!(
        "\n| backend | sign-ups (wrk, 2 threads, 64 connections, {} s) during | req/s | p50 | p99 | non-2xx |\n|---|---|---|---|---|---|",
        args.signup_secs
    );
    for (backend, how, load) in loads {
        println!(
            "| {backend} | {how} | {:.0} | {:.1} ms | {:.1} ms | {} |",
            load.requests_per_sec, load.p50_ms, load.p99_ms, load.non_2xx
        );
    }
}

/// A PKCS#8 key as a PEM file in `dir`.
fn key_file(dir: &std::path::Path, name: &str, der: &[u8]) -> std::path::PathBuf {
    use x509_cert::der::pem::{encode_string, LineEnding};
    let file = dir.join(format!("{name}.pem"));
    std::fs::write(
        &file,
        encode_string("PRIVATE KEY", LineEnding::LF, der).unwrap(),
    )
    .unwrap();
    file
}

fn print_rows(rows: &[Row], args: &Args) {
    println!(
        "\nconcurrency {} (service workers and bare lettre alike)\n",
        args.concurrency
    );
    println!("| backend | readers | enqueue | service msg/s | baseline msg/s (before / after) | service/baseline | stock lettre pool msg/s | service wall / CPU | baseline wall / CPU | context switches per message, service / baseline | PostgreSQL server CPU per message | service peak RSS | baseline peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} s | {:.0} | {:.0} ({:.0} / {:.0}) | {:.0} % | {:.0} | {:.1} s / {:.1} s | {:.1} s / {:.1} s | {:.2} / {:.2} | {} | {:.0} MB | {:.0} MB |",
            r.backend,
            r.readers,
            r.enqueue.as_secs_f64(),
            r.service.rate(),
            r.baseline.rate(),
            r.baseline_before_after.0,
            r.baseline_before_after.1,
            100.0 * r.service.rate() / r.baseline.rate(),
            r.stock_pool.rate(),
            r.service.wall.as_secs_f64(),
            r.service.cpu.as_secs_f64(),
            r.baseline.wall.as_secs_f64(),
            r.baseline.cpu.as_secs_f64(),
            r.service.per_message(r.service.switches),
            r.baseline.per_message(r.baseline.switches),
            match r.backend == "sqlite" {
                true => "–".to_string(),
                false => format!(
                    "{:.0} µs",
                    r.service.per_message(r.service.server_cpu.as_micros() as u64)
                ),
            },
            r.service.rss_mb,
            r.baseline.rss_mb,
        );
    }
}

/// The same send unsigned, signed with RSA-2048 and signed with Ed25519,
/// one after the other in this run, as ratios to the unsigned rate.
async fn dkim_modes(args: &Args) {
    if args.dkim_readers == 0 {
        return;
    }
    let backend = args.backends[0].as_str();
    let dir = tempfile::tempdir().unwrap();
    let modes = [
        ("off", None),
        ("RSA-2048", Some(rsa_key())),
        ("Ed25519", Some(ed25519_key())),
    ];
    println!("\n| backend | readers | DKIM | service msg/s | service wall / CPU | ratio to DKIM off | ratio to the bare loop |\n|---|---|---|---|---|---|---|");
    let (mut off_rate, mut bare_rate) = (0.0, 0.0);
    let mut one_signature = Vec::new();
    for (i, (name, pkcs8)) in modes.into_iter().enumerate() {
        eprintln!(
            "running {backend} with {} readers, DKIM {name}…",
            args.dkim_readers
        );
        let dkim = pkcs8.map(|der| newsletter::config::DkimSettings {
            selector: "bench".into(),
            domain: "localhost.localdomain".into(),
            private_key_file: key_file(dir.path(), &format!("key{i}"), &der),
        });
        // A database of its own per mode: the modes run one after another.
        let mode_dir = dir.path().join(format!("dkim{i}"));
        std::fs::create_dir_all(&mode_dir).unwrap();
        let (app, report) = app_with_readers(
            backend,
            args.dkim_readers,
            args,
            &args.smtp,
            dkim.clone(),
            &mode_dir,
        )
        .await;
        let store = app.state.store.clone();
        store
            .trigger_send(report, "dkim", now_ms(), now_ms())
            .await
            .unwrap();
        if let Some(dkim) = &dkim {
            // One thread signing the same message over and over: what a
            // signature costs on its own, next to `openssl speed`.
            let signer = newsletter::delivery::dkim::Signer::load(dkim).unwrap();
            let message = sample_message(&app, report).await;
            let rounds = 400;
            let started = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(signer.sign(std::hint::black_box(&message)).unwrap());
            }
            one_signature.push((name, started.elapsed() / rounds, message.len()));
        }
        let run = measured(deliver_with_worker(&app, report)).await;
        assert_eq!(
            run.messages, args.dkim_readers,
            "every reader got the report"
        );
        if name == "off" {
            off_rate = run.rate();
            // The bare loop, in the same run, with the same bytes unsigned.
            let sample = sample_message(&app, report).await;
            let bare = measured(bare_connections(
                &args.smtp,
                &sample,
                args.dkim_readers,
                args.concurrency,
            ))
            .await;
            bare_rate = bare.rate();
            println!(
                "| {backend} | {} | bare lettre loop | {:.0} | {:.1} s / {:.1} s | | 100 % |",
                args.dkim_readers,
                bare.rate(),
                bare.wall.as_secs_f64(),
                bare.cpu.as_secs_f64(),
            );
        }
        println!(
            "| {backend} | {} | {name} | {:.0} | {:.1} s / {:.1} s | {:.0} % | {:.0} % |",
            args.dkim_readers,
            run.rate(),
            run.wall.as_secs_f64(),
            run.cpu.as_secs_f64(),
            100.0 * run.rate() / off_rate,
            100.0 * run.rate() / bare_rate,
        );
        store.close().await;
    }
    println!("\n| DKIM | one signature, one thread (message of the bench) |\n|---|---|");
    for (name, each, bytes) in one_signature {
        println!(
            "| {name} | {:.0} µs ({bytes} bytes) |",
            each.as_secs_f64() * 1e6
        );
    }
}

fn rsa_key() -> Vec<u8> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: Pkcs8V1Der = pair.as_der().unwrap();
    der.as_ref().to_vec()
}

fn ed25519_key() -> Vec<u8> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// Resets the peak resident set size, so each phase reports its own.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
