//! What the benchmarks share: fresh databases and memory readings.

/// Resets the peak resident set size, so each phase reports its own.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
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
