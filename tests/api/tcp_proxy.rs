//! A TCP proxy the test controls, put between the service and the shared
//! PostgreSQL server: cutting it is a database outage for the service alone,
//! without touching the server other tests use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    port: u16,
    /// While set, new connections are closed at once.
    down: Arc<AtomicBool>,
    /// Bumped on every cut: open connections end when it changes.
    cuts: watch::Sender<u64>,
    server: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let (upstream, gate, watcher) = (upstream.to_string(), down.clone(), cuts.subscribe());
        let server = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if gate.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (upstream, mut cut) = (upstream.clone(), watcher.clone());
                // Only cuts from now on end this connection.
                cut.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpProxy {
            port,
            down,
            cuts,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}
