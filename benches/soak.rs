//! Soak: one large send through everything that goes wrong, counted at the
//! sink.
//!
//!   cargo bench --bench soak -- [--readers 100000] [--minutes 20]
//!       [--postgres postgres://postgres@127.0.0.1:5432/test]
//!
//! Two `newsletter worker` processes send a report to N readers on
//! PostgreSQL, reached through a TCP proxy this program controls, to a
//! counting SMTP sink of its own. Until the queue is empty it does, at
//! random, one thing at a time: kill -9 a worker and start another; pause
//! the send and resume it; cut the database off for longer than the lease
//! (an outage, as the workers see a restart); make the relay slow for a
//! while. Then it prints, per reader: lost (never received), duplicates
//! (received more than once), and the bounds those are held to.
//!
//! Not a test: it takes minutes and its numbers go to README's
//! "Guarantees".

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use newsletter::store::{now_ms, Store, TriggerOutcome};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const WORKERS: usize = 2;
const CONCURRENCY: usize = 8;
const LEASE_SECS: u64 = 2;

struct Args {
    readers: usize,
    minutes: u64,
    postgres: String,
}

fn args() -> Args {
    let mut args = Args {
        readers: 100_000,
        minutes: 30,
        postgres: "postgres://postgres@127.0.0.1:5432/test".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--readers" => args.readers = value().parse().expect("a number"),
            "--minutes" => args.minutes = value().parse().expect("a number"),
            "--postgres" => args.postgres = value(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// An SMTP sink that counts every accepted message per recipient.
#[derive(Default)]
struct Sink {
    per_reader: Mutex<HashMap<String, u32>>,
    accepted: AtomicU64,
    /// Milliseconds to wait before answering the end of DATA.
    delay_ms: AtomicU64,
}

impl Sink {
    async fn start(self: &Arc<Self>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let _ = sink.session(stream).await;
                });
            }
        });
        port
    }

    async fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 soak ESMTP\r\n").await?;
        let mut rcpt = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => write.write_all(b"250-soak\r\n250 8BITMIME\r\n").await?,
                "MAIL" => {
                    rcpt.clear();
                    write.write_all(b"250 ok\r\n").await?
                }
                "RCPT" => {
                    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
                    let end = line.rfind('>').unwrap_or(line.len());
                    rcpt.push(line[start..end].to_string());
                    write.write_all(b"250 ok\r\n").await?
                }
                "DATA" => {
                    write.write_all(b"354 go\r\n").await?;
                    let mut body = Vec::new();
                    loop {
                        body.clear();
                        if lines.read_until(b'\n', &mut body).await? == 0 {
                            return Ok(());
                        }
                        if body == b".\r\n" {
                            break;
                        }
                    }
                    let delay = self.delay_ms.load(Ordering::Relaxed);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    {
                        let mut counts = self.per_reader.lock().unwrap();
                        for to in rcpt.drain(..) {
                            *counts.entry(to).or_insert(0) += 1;
                        }
                    }
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    write.write_all(b"250 queued\r\n").await?
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                _ => write.write_all(b"250 ok\r\n").await?,
            }
        }
    }

    fn count(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// A TCP proxy to PostgreSQL that can be cut.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (cuts, watcher) = watch::channel(0u64);
        let gate = down.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if gate.load(Ordering::SeqCst) {
                    continue;
                }
                let (upstream, mut cut) = (upstream.clone(), watcher.clone());
                cut.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy { port, down, cuts }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn worker(database_url: &str, smtp_port: u16) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .arg("worker")
        .env("NEWSLETTER_DATABASE_URL", database_url)
        .env(
            "NEWSLETTER_MAIL__SMTP_URL",
            format!("smtp://127.0.0.1:{smtp_port}"),
        )
        .env("NEWSLETTER_MAIL__FROM", "Soak <soak@example.com>")
        .env("NEWSLETTER_MAIL__TIMEOUT_SECS", "5")
        .env("NEWSLETTER_DELIVERY__LEASE_SECS", LEASE_SECS.to_string())
        .env("NEWSLETTER_DELIVERY__CONCURRENCY", CONCURRENCY.to_string())
        .env("NEWSLETTER_DELIVERY__BATCH_SIZE", "200")
        .env("NEWSLETTER_DELIVERY__POLL_INTERVAL_MS", "50")
        .env("NEWSLETTER_DELIVERY__RETRY_BASE_SECS", "1")
        .env("NEWSLETTER_DELIVERY__RETRY_MAX_SECS", "2")
        // The slow relay and the outages must not pause the send.
        .env("NEWSLETTER_DELIVERY__PAUSE_AFTER_RELAY_FAILURES", "0")
        .env("NEWSLETTER_LOG__FILTER", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start a worker")
}

async fn queued(store: &Store) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where status in ('queued', 'paused')")
        .fetch_one(store.pool())
        .await
        .unwrap_or(i64::MAX)
}

/// Waits until no row is leased any more (every worker let go).
async fn wait_unleased(store: &Store, report: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let leased: i64 = sqlx::query_scalar(&format!(
            "select count(*) from outbox where report_id = {report} and leased_by is not null"
        ))
        .fetch_one(store.pool())
        .await
        .unwrap_or(1);
        if leased == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    sqlx::any::install_default_drivers();
    let name = format!("nl_soak_{}", uuid::Uuid::new_v4().simple());
    let admin = Store::connect(&args.postgres, 2).await.expect("PostgreSQL");
    sqlx::query(&format!("create database {name}"))
        .execute(admin.pool())
        .await
        .unwrap();
    let mut direct = url::Url::parse(&args.postgres).unwrap();
    direct.set_path(&name);
    let store = Store::connect(direct.as_str(), 4).await.unwrap();
    store.migrate().await.unwrap();

    for start in (0..args.readers).step_by(1000) {
        let end = (start + 1000).min(args.readers);
        let values: Vec<String> = (start..end)
            .map(|i| format!("('reader{i}@example.com', 'Reader {i}', 'confirmed', 0, 0)"))
            .collect();
        sqlx::query(&format!(
            "insert into subscribers (email, name, status, created_at, confirmed_at) values {}",
            values.join(", ")
        ))
        .execute(store.pool())
        .await
        .unwrap();
    }
    let source = "---\ntitle: Soak\nslug: soak\ndate: 2026-11-20\nbyline: Ana Editor\n\
                  editor: Bo Desk\nsummary: A long send.\n---\n\n# News\n\n## A headline\n\n\
                  The body.\n\nSource: Wire\n\nComment: Why.\n";
    let report = match store.save_report("soak", "Soak", source).await.unwrap() {
        newsletter::store::SaveOutcome::Created(id) => id,
        other => panic!("{other:?}"),
    };
    let now = now_ms();
    let TriggerOutcome::Created(_) = store.trigger_send(report, "soak", now, now).await.unwrap()
    else {
        panic!("the send did not start");
    };

    let sink = Arc::new(Sink::default());
    let smtp_port = sink.start().await;
    let proxy = Proxy::start("127.0.0.1:5432".into()).await;
    let mut through_proxy = direct.clone();
    through_proxy.set_port(Some(proxy.port)).unwrap();
    let through_proxy = through_proxy.to_string();
    let mut workers: Vec<_> = (0..WORKERS)
        .map(|_| worker(&through_proxy, smtp_port))
        .collect();

    let started = Instant::now();
    let limit = Duration::from_secs(args.minutes * 60);
    let (mut kills, mut pauses, mut outages, mut slow_spells) = (0usize, 0usize, 0usize, 0usize);
    let mut worst_after_pause = 0u64;
    let mut worst_during_outage = 0u64;
    let mut rng = rand::rngs::StdRng::from_entropy();
    while queued(&store).await > 0 && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3000))).await;
        match rng.gen_range(0..4) {
            0 => {
                let victim = rng.gen_range(0..workers.len());
                let _ = workers[victim].start_kill();
                let _ = workers[victim].wait().await;
                workers[victim] = worker(&through_proxy, smtp_port);
                kills += 1;
            }
            1 => {
                if store.pause_send(report).await.unwrap_or(false) {
                    let at_pause = sink.count();
                    wait_unleased(&store, report).await;
                    worst_after_pause = worst_after_pause.max(sink.count() - at_pause);
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(200..2000))).await;
                    let _ = store.resume_send(report).await;
                    pauses += 1;
                }
            }
            2 => {
                proxy.cut();
                let at_cut = sink.count();
                let secs = rng.gen_range(LEASE_SECS * 2..LEASE_SECS * 5);
                tokio::time::sleep(Duration::from_secs(secs)).await;
                worst_during_outage = worst_during_outage.max(sink.count() - at_cut);
                proxy.restore();
                outages += 1;
            }
            _ => {
                sink.delay_ms
                    .store(rng.gen_range(100..800), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(rng.gen_range(2..6))).await;
                sink.delay_ms.store(0, Ordering::Relaxed);
                slow_spells += 1;
            }
        }
        eprintln!(
            "{:>5.0} s: {} accepted, {} left",
            started.elapsed().as_secs_f64(),
            sink.count(),
            queued(&store).await
        );
    }
    let finished = queued(&store).await == 0;
    for mut w in workers {
        let _ = w.start_kill();
        let _ = w.wait().await;
    }

    let counts = sink.per_reader.lock().unwrap().clone();
    let lost = args.readers - counts.len();
    let duplicates: u64 = counts.values().map(|n| u64::from(n - 1)).sum();
    let sent: i64 = sqlx::query_scalar(&format!(
        "select count(*) from outbox where report_id = {report} and status = 'sent'"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    let on_the_wire = (WORKERS * CONCURRENCY) as u64;
    let per_kill = (3 * CONCURRENCY) as u64;
    println!(
        "readers {} · {:.0} s · finished {finished}",
        args.readers,
        started.elapsed().as_secs_f64()
    );
    println!("kills {kills} · pauses {pauses} · database outages {outages} · slow-relay spells {slow_spells}");
    println!("lost {lost} · rows recorded sent {sent}");
    println!(
        "duplicates {duplicates} (bound: {per_kill} per kill + {on_the_wire} per outage = {})",
        per_kill * kills as u64 + on_the_wire * outages as u64
    );
    println!(
        "most messages accepted after a pause returned: {worst_after_pause} (bound: {on_the_wire} on the wire)"
    );
    println!(
        "most messages accepted during an outage: {worst_during_outage} (bound: {on_the_wire} on the wire)"
    );
    store.close().await;
    let _ = sqlx::query(&format!("drop database {name} with (force)"))
        .execute(admin.pool())
        .await;
}
