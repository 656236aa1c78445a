//! Clients that open connections and then say nothing, or say it one byte
//! at a time, must not take the service from everybody else.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with, Backend, TestApp};

crate::on_both_backends!(
    idle_and_trickling_connections_are_closed_while_others_are_served,
    connections_over_the_cap_are_closed_at_once,
);

/// Waits until the server closes `stream` (end of stream or a reset),
/// reading and discarding whatever it sends; false if `limit` passes first.
async fn closed_by_server(mut stream: TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(limit, read_to_end).await.is_ok()
}

fn host_port(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

async fn health_answers(app: &TestApp) {
    // A fresh client each time: nothing rides on a pooled connection.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client
        .get(app.url("/health"))
        .send()
        .await
        .expect("/health");
    assert_eq!(response.status(), 200);
}

async fn idle_and_trickling_connections_are_closed_while_others_are_served(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.http.header_timeout_secs = 1;
        s.http.idle_timeout_secs = 2;
    })
    .await;
    let address = host_port(&app);
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    // Request heads sent a byte every 100 ms, for as long as the server
    // listens; each task reports whether the server hung up on it.
    let tricklers: Vec<_> = (0..20)
        .map(|i| {
            let address = address.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(&address).await.unwrap();
                let head = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Pad-{i}: ");
                stream.write_all(head.as_bytes()).await.unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while tokio::time::Instant::now() < deadline {
                    if stream.write_all(b"a").await.is_err() {
                        return true;
                    }
                    let mut byte = [0u8; 1];
                    match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => return true,
                        // A 408 or similar before the close: keep reading.
                        Ok(Ok(_)) | Err(_) => continue,
                    }
                }
                false
            })
        })
        .collect();

    for _ in 0..5 {
        health_answers(&app).await;
    }
    let signup = app
        .post_json(
            "/subscriptions",
            &serde_json::json!({ "email": "busy@example.com" }),
        )
        .await;
    assert_eq!(signup.status(), 200, "sign-up works beside the idle crowd");

    for (i, stream) in idle.into_iter().enumerate() {
        assert!(
            closed_by_server(stream, Duration::from_secs(20)).await,
            "idle connection {i} was never closed"
        );
    }
    for (i, trickler) in tricklers.into_iter().enumerate() {
        assert!(
            trickler.await.unwrap(),
            "trickling connection {i} was never closed"
        );
    }
    health_answers(&app).await;
}

async fn connections_over_the_cap_are_closed_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.http.max_connections = 20;
        // Long enough that only the cap can explain a closed connection.
        s.http.header_timeout_secs = 60;
    })
    .await;
    let address = host_port(&app);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    let extra = TcpStream::connect(&address).await.unwrap();
    assert!(
        closed_by_server(extra, Duration::from_secs(20)).await,
        "the 21st connection is closed, not left waiting"
    );
    drop(held);
    // The slots come back as the server notices the closed connections.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let client = reqwest::Client::new();
        match client.get(app.url("/health")).send().await {
            Ok(r) if r.status() == 200 => break,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "/health never answered again: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
