//! What the benchmarks share: fresh databases and memory readings.

/// The peak resident set size of process `pid` (`"self"` for this one)
/// in MB, from its `VmHWM`; `None` once the process has exited.
pub fn peak_rss_mb(pid: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// A database URL of a fresh database: an SQLite file in `dir`, or a new
/// PostgreSQL database on the server at `postgres`.
pub async fn fresh_database(
    backend: &str,
    postgres: &str,
    dir: &std::path::Path,
    name: &str,
) -> String {
    match backend {
        "sqlite" => format!("sqlite://{}/{name}.db", dir.display()),
        _ => {
            use sqlx::Connection;
            let name = format!("nl_{name}_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(postgres)
                .await
                .expect("postgres for the bench");
            sqlx::query(&format!("create database {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let mut url = url::Url::parse(postgres).unwrap();
            url.set_path(&name);
            url.to_string()
        }
    }
}

/// Drops the PostgreSQL databases that earlier runs of a bench made under
/// the names `nl_<kind>_…` (each run makes its own, up to gigabytes at a
/// million readers). Run before this run makes any.
pub async fn drop_earlier_databases(postgres: &str, kinds: &[&str]) {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(postgres).await else {
        // No PostgreSQL: nothing was left there either.
        return;
    };
    for kind in kinds {
        let names: Vec<String> =
            sqlx::query_scalar("select datname from pg_database where datname like $1")
                .bind(format!("nl\\_{kind}\\_%"))
                .fetch_all(&mut conn)
                .await
                .unwrap();
        for name in names {
            sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}
