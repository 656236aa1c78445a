//! A million readers: seeds a list and a finished send of that size, then
//! times what editors and the API ask of it.
//!
//!   cargo bench --bench million -- [--readers 1000000] [--backends sqlite,postgres]
//!
//! For each backend it:
//! 1. imports `--import-rows` readers from a CSV file with the release
//!    binary's `newsletter subscribers import`, with that process's peak RSS;
//! 2. seeds the rest of the list in SQL (spread over two years, some pending
//!    and unsubscribed) and times the enqueue of a send to every reader;
//! 3. marks that send delivered (a few failures), adds votes, and starts the
//!    HTTP app on a random port;
//! 4. times the dashboard, the readers page and a search, the report page,
//!    the stats API and the archive: each asked several times, the median
//!    and the slowest shown.

#![allow(clippy::field_reassign_with_default)]

use std::time::{Duration, Instant};

mod support;

use newsletter::config::Settings;
use newsletter::startup::Application;
use newsletter::store::now_ms;
use tokio_util::sync::CancellationToken;

struct Args {
    readers: usize,
    import_rows: usize,
    backends: Vec<String>,
    postgres: String,
    repeat: usize,
}

fn args() -> Args {
    let mut args = Args {
        readers: 1_000_000,
        import_rows: 1_000_000,
        backends: vec!["sqlite".into(), "postgres".into()],
        postgres: "postgres://postgres@127.0.0.1:5432/test".into(),
        repeat: 7,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--readers" => args.readers = value().parse().expect("a number"),
            "--import-rows" => args.import_rows = value().parse().expect("a number"),
            "--backends" => args.backends = value().split(',').map(String::from).collect(),
            "--postgres" => args.postgres = value(),
            "--repeat" => args.repeat = value().parse().expect("a number"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

const DAY_MS: i64 = 86_400_000;

/// A CSV of `n` readers as another tool would export them.
fn write_csv(path: &std::path::Path, n: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "email,name,status,confirmed_at").unwrap();
    for i in 0..n {
        let day = 1 + i % 28;
        writeln!(
            out,
            "imported{i}@example.com,Imported Reader {i},confirmed,2024-03-{day:02}"
        )
        .unwrap();
    }
}

/// `n` more readers in one statement: created over two years, one in
/// twenty unsubscribed, one in fifty still pending.
async fn seed_readers(app: &Application, n: usize, now: i64) {
    if n == 0 {
        return;
    }
    let span = 730 * DAY_MS;
    let sql = format!(
        "insert into subscribers (email, name, status, created_at, confirmed_at, unsubscribed_at) \
         select 'reader' || i || '@example.com', 'Reader ' || i, \
           case when i % 20 = 0 then 'unsubscribed' when i % 50 = 1 then 'pending' else 'confirmed' end, \
           {start} + i * {step}, \
           case when i % 50 = 1 then null else {start} + i * {step} + 3600000 end, \
           case when i % 20 = 0 then {start} + i * {step} + {month} else null end \
         from (with recursive n(i) as (select cast(0 as bigint) union all select i + 1 from n where i < {last}) select i from n) as numbers",
        start = now - span,
        step = span / n.max(1) as i64,
        month = 30 * DAY_MS,
        last = n as i64 - 1,
    );
    sqlx::query(&sql)
        .execute(app.state.store.pool())
        .await
        .expect("seeding readers");
}

/// The send is over: nearly everything delivered, a few refused, and one
/// reader in a hundred voted.
async fn finish_send(app: &Application, report_id: i64, now: i64) {
    let pool = app.state.store.pool();
    sqlx::query(
        "update outbox set status = case when id % 500 = 0 then 'failed' else 'sent' end, \
         attempts = 1, sent_at = $2, message_id = '<' || id || '@bench>', \
         last_error = case when id % 500 = 0 then 'permanent error (550): 5.1.1 no such user' else null end \
         where report_id = $1 and kind = 'report'",
    )
    .bind(report_id)
    .bind(now)
    .execute(pool)
    .await
    .expect("finishing the send");
    sqlx::query(
        "insert into votes (report_id, subscriber_id, helpful, comment, created_at, updated_at) \
         select report_id, subscriber_id, case when id % 3 = 0 then 0 else 1 end, \
         case when id % 7 = 0 then 'A comment from a reader' else null end, $2, $2 \
         from outbox where report_id = $1 and kind = 'report' and id % 100 = 0",
    )
    .bind(report_id)
    .bind(now)
    .execute(pool)
    .await
    .expect("adding votes");
    sqlx::query("update sends set state = 'done', finished_at = $2 where report_id = $1")
        .bind(report_id)
        .bind(now)
        .execute(pool)
        .await
        .expect("closing the send");
}

/// Imports `csv` with `newsletter subscribers import`, as an operator
/// would; returns its wall time and the process's peak RSS in MB.
///
/// The peak is read from the process's own `VmHWM` while it runs: the
/// kernel's figure for a reaped child also counts this bench's memory,
/// which the child shared until it started the binary.
fn import_with_cli(database_url: &str, csv: &std::path::Path) -> (Duration, f64) {
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .args(["subscribers", "import"])
        .arg(csv)
        .env("NEWSLETTER_DATABASE_URL", database_url)
        .env("NEWSLETTER_LOG__FILTER", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting newsletter subscribers import");
    let pid = child.id().to_string();
    let mut peak_mb: f64 = 0.0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the import") {
            break status;
        }
        if let Some(reading) = support::peak_rss_mb(&pid) {
            peak_mb = peak_mb.max(reading);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "newsletter subscribers import failed");
    (started.elapsed(), peak_mb)
}

struct Timing {
    page: String,
    median: Duration,
    slowest: Duration,
}

async fn time_get(
    client: &reqwest::Client,
    url: &str,
    auth: &Auth,
    page: &str,
    repeat: usize,
) -> Timing {
    let mut times = Vec::new();
    for _ in 0..repeat {
        let request = match auth {
            Auth::Cookie(cookie) => client.get(url).header("cookie", cookie),
            Auth::Bearer(token) => client.get(url).bearer_auth(token),
            Auth::None => client.get(url),
        };
        let start = Instant::now();
        let response = request.send().await.expect("request");
        let status = response.status();
        let body = response.bytes().await.expect("body");
        times.push(start.elapsed());
        assert!(status.is_success(), "{page}: {status} {body:?}");
    }
    times.sort();
    Timing {
        page: page.to_string(),
        median: times[times.len() / 2],
        slowest: *times.last().unwrap(),
    }
}

enum Auth {
    Cookie(String),
    Bearer(String),
    None,
}

struct Row {
    backend: String,
    import_rows: usize,
    import: Duration,
    import_rss: f64,
    enqueue: Duration,
    enqueued: i64,
    pages: Vec<Timing>,
}

async fn run(backend: &str, args: &Args) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.database_url =
        support::fresh_database(backend, &args.postgres, dir.path(), "million").await;
    settings.log.filter = "warn".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    settings.base_url = address.parse().unwrap();
    let app = Application::build(settings).await.expect("build");
    let store = app.state.store.clone();
    let now = now_ms();

    eprintln!(
        "{backend}: importing {} readers from CSV…",
        args.import_rows
    );
    let csv = dir.path().join("readers.csv");
    write_csv(&csv, args.import_rows);
    let (import, import_rss) = import_with_cli(&app.state.settings.database_url, &csv);
    let imported: i64 = sqlx::query_scalar("select count(*) from subscribers")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(imported as usize, args.import_rows);

    let seeded = args.readers.saturating_sub(args.import_rows);
    eprintln!("{backend}: seeding {seeded} more readers…");
    seed_readers(&app, seeded, now).await;
    let source = std::fs::read_to_string("reports/example.md")
        .expect("run from the repository root: reports/example.md");
    let report_id = match app.state.newsletter().save_report_source(&source).await {
        Ok(newsletter::store::SaveOutcome::Created(id)) => id,
        other => panic!("saving the example report: {:?}", other.err()),
    };
    eprintln!("{backend}: enqueueing…");
    let started = Instant::now();
    store
        .trigger_send(report_id, "million", now, now)
        .await
        .unwrap();
    let enqueue = started.elapsed();
    let enqueued = store
        .send_of_report(report_id)
        .await
        .unwrap()
        .unwrap()
        .total;
    finish_send(&app, report_id, now).await;
    if backend == "postgres" {
        // A real send of a million takes minutes, in which autovacuum
        // analyses the changed outbox; the bench's one update does not
        // wait for it.
        sqlx::query("analyze")
            .execute(store.pool())
            .await
            .expect("analyze");
    }

    let cancel = CancellationToken::new();
    let server = Application {
        state: app.state.clone(),
        dispatcher: app.dispatcher.clone(),
    };
    let server_cancel = cancel.clone();
    tokio::spawn(async move {
        let _ = server.serve_http(listener, server_cancel).await;
    });
    newsletter::commands::admin::add_editor(
        &store,
        "editor@example.com",
        "a long enough password".into(),
    )
    .await
    .unwrap();
    let token = newsletter::commands::admin::create_token(&store, "editor@example.com")
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{address}/admin/login"))
        .form(&[
            ("email", "editor@example.com"),
            ("password", "a long enough password"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let session = Auth::Cookie(cookie);
    let bearer = Auth::Bearer(token);
    let pages = [
        ("dashboard", "/admin".to_string(), &session),
        (
            "readers, first page",
            "/admin/readers".to_string(),
            &session,
        ),
        (
            "readers, search by address",
            "/admin/readers?q=reader123457%40example.com".to_string(),
            &session,
        ),
        (
            "readers, search by part",
            "/admin/readers?q=reader99999".to_string(),
            &session,
        ),
        (
            "report page",
            format!("/admin/reports/{report_id}"),
            &session,
        ),
        (
            "stats API",
            format!("/api/reports/{report_id}/stats"),
            &bearer,
        ),
        ("archive", "/archive".to_string(), &Auth::None),
    ];
    let mut timings = Vec::new();
    for (name, path, auth) in pages {
        eprintln!("{backend}: {name}…");
        let url = format!("{address}{path}");
        timings.push(time_get(&client, &url, auth, name, args.repeat).await);
    }
    cancel.cancel();
    store.close().await;
    Row {
        backend: backend.into(),
        import_rows: args.import_rows,
        import,
        import_rss,
        enqueue,
        enqueued,
        pages: timings,
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    if args.backends.iter().any(|b| b == "postgres") {
        support::drop_earlier_databases(&args.postgres, &["million"]).await;
    }
    let mut rows = Vec::new();
    for backend in &args.backends {
        rows.push(run(backend, &args).await);
    }
    println!(
        "\n{} readers, a finished send to every confirmed one; each page asked {} times\n",
        args.readers, args.repeat
    );
    println!("| backend | import (rows, time, peak RSS) | enqueue |");
    println!("|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} rows, {:.1} s, {:.0} MB | {} deliveries, {:.2} s |",
            r.backend,
            r.import_rows,
            r.import.as_secs_f64(),
            r.import_rss,
            r.enqueued,
            r.enqueue.as_secs_f64()
        );
    }
    println!("\n| backend | page | median | slowest |\n|---|---|---|---|");
    for r in &rows {
        for t in &r.pages {
            println!(
                "| {} | {} | {:.1} ms | {:.1} ms |",
                r.backend,
                t.page,
                t.median.as_secs_f64() * 1000.0,
                t.slowest.as_secs_f64() * 1000.0
            );
        }
    }
}
