//! Accepting connections. Each one is bounded in time (the request head must
//! arrive promptly, and bytes must keep moving while a request is served)
//! and their number is capped, so idle or trickling clients cannot take the
//! service from everybody else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::config::HttpSettings;

/// How long connections may take and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// For the whole request head, from the connection's start or the
    /// previous response: covers idle keep-alive connections too.
    pub header_timeout: Duration,
    /// Longest wait for any byte either way while a request is served.
    pub idle_timeout: Duration,
}

impl From<&HttpSettings> for ConnectionLimits {
    fn from(settings: &HttpSettings) -> Self {
        ConnectionLimits {
            max_connections: settings.max_connections,
            header_timeout: Duration::from_secs(settings.header_timeout_secs),
            idle_timeout: Duration::from_secs(settings.idle_timeout_secs),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then lets the
/// requests in progress finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut refusing = false;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was taken: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed at once rather than left in the backlog, where it
            // would hold up the connections behind it.
            if !refusing {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached; new connections are closed"
                );
                refusing = true;
            }
            drop(stream);
            continue;
        };
        refusing = false;
        let _ = stream.set_nodelay(true);
        let mut io = TimeoutStream::new(stream);
        io.set_read_timeout(Some(limits.idle_timeout));
        io.set_write_timeout(Some(limits.idle_timeout));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(Box::pin(io)), service_for(&router, peer));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The router, told which peer it is serving (for `ConnectInfo`).
fn service_for(
    router: &Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    let router = router.clone();
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().call(request)
    })
}
