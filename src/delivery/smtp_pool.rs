//! A small pool of SMTP connections with a deadline on every send.
//!
//! lettre's own async pool bounds only the connect, and when a send is
//! abandoned (our timeout fires) it puts the connection back in the pool in
//! the middle of a transaction, where the next message would read the old
//! replies. Here a connection goes back to the pool only after a clean
//! success; after any error or timeout it is closed.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::Mutex;
use url::Url;

use super::transport::MailError;

/// An idle connection older than this is checked with NOOP before reuse:
/// servers close idle connections, and a message should not pay for that.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(5);

#[derive(Clone)]
enum Security {
    Plain,
    StartTls { required: bool },
    Wrapper,
}

/// Where and how to connect, from an `smtp://` or `smtps://` URL.
struct Target {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

pub struct SmtpPool {
    target: Target,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    timeout: Duration,
}

impl SmtpPool {
    /// Accepts `smtp://[user:pass@]host[:port][?tls=required|opportunistic]`
    /// and `smtps://…`, as lettre documents them.
    pub fn from_url(url: &str, max_idle: usize, timeout: Duration) -> Result<SmtpPool, String> {
        let url = Url::parse(url).map_err(|e| format!("invalid smtp url: {e}"))?;
        let host = url
            .host_str()
            .ok_or("the smtp url has no host")?
            .to_string();
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::StartTls { required: true }, 587),
            ("smtp", Some("opportunistic")) => (Security::StartTls { required: false }, 587),
            ("smtps", _) => (Security::Wrapper, 465),
            (scheme, tls) => {
                return Err(format!(
                    "unsupported smtp url: scheme {scheme:?}, tls {tls:?}"
                ))
            }
        };
        let decode = |s: &str| -> Result<String, String> {
            percent_encoding_decode(s)
                .map_err(|_| "the smtp url's credentials are not valid UTF-8".to_string())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        let path = url.path().trim_matches('/');
        let hello = if path.is_empty() {
            ClientId::default()
        } else {
            ClientId::Domain(path.to_string())
        };
        Ok(SmtpPool {
            target: Target {
                host,
                port: url.port().unwrap_or(default_port),
                security,
                credentials,
                hello,
            },
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
            timeout,
        })
    }

    /// Sends one message within the deadline.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), MailError> {
        let mut conn = self.checkout().await?;
        match tokio::time::timeout(self.timeout, conn.send(envelope, email)).await {
            Ok(Ok(_)) => {
                self.checkin(conn).await;
                Ok(())
            }
            Ok(Err(e)) => {
                close(conn);
                Err(super::transport::classify(e))
            }
            Err(_) => {
                close(conn);
                Err(MailError::Transient(format!(
                    "no answer from the relay within {} s",
                    self.timeout.as_secs_f32()
                )))
            }
        }
    }

    /// Connects and greets, for a configuration check.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        let conn = self.connect().await?;
        self.checkin(conn).await;
        Ok(())
    }

    async fn checkout(&self) -> Result<AsyncSmtpConnection, MailError> {
        loop {
            let candidate = self.idle.lock().await.pop();
            let Some(Idle { mut conn, since }) = candidate else {
                return self.connect().await;
            };
            if since.elapsed() < CHECK_AFTER_IDLE {
                return Ok(conn);
            }
            let alive = tokio::time::timeout(self.timeout, conn.test_connected()).await;
            if matches!(alive, Ok(true)) {
                return Ok(conn);
            }
            close(conn);
        }
    }

    async fn checkin(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return close(conn);
        }
        let mut idle = self.idle.lock().await;
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        } else {
            drop(idle);
            close(conn);
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let t = &self.target;
        let connecting = async {
            let tls = |host: &str| {
                TlsParameters::new(host.to_string())
                    .map_err(|e| MailError::Permanent(format!("TLS setup: {e}")))
            };
            let mut conn = match t.security {
                Security::Wrapper => AsyncSmtpConnection::connect_tokio1(
                    (t.host.as_str(), t.port),
                    Some(self.timeout),
                    &t.hello,
                    Some(tls(&t.host)?),
                    None,
                )
                .await
                .map_err(super::transport::classify)?,
                _ => {
                    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
                        .await
                        .map_err(|e| {
                            MailError::Transient(format!(
                                "cannot connect to {}:{}: {e}",
                                t.host, t.port
                            ))
                        })?;
                    // lettre writes a message's end (".") apart from its
                    // body; with Nagle's algorithm that small write waits
                    // for the relay's delayed ACK, about 40 ms per message.
                    tcp.set_nodelay(true).map_err(|e| {
                        MailError::Transient(format!("cannot set up the connection: {e}"))
                    })?;
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &t.hello)
                        .await
                        .map_err(super::transport::classify)?
                }
            };
            if let Security::StartTls { required } = t.security {
                if conn.can_starttls() {
                    conn.starttls(tls(&t.host)?, &t.hello)
                        .await
                        .map_err(super::transport::classify)?;
                } else if required {
                    return Err(MailError::Transient(
                        "the relay does not offer STARTTLS".into(),
                    ));
                }
            }
            if let Some(credentials) = &t.credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await
                    .map_err(super::transport::classify)?;
            }
            Ok(conn)
        };
        // Whatever fails before a message is handed over fails for every
        // message alike.
        match tokio::time::timeout(self.timeout, connecting).await {
            Ok(result) => result.map_err(MailError::at_relay),
            Err(_) => Err(MailError::Relay(format!(
                "connecting to the relay took longer than {} s",
                self.timeout.as_secs_f32()
            ))),
        }
    }
}

/// Says goodbye in the background; nothing waits for a dying connection.
fn close(mut conn: AsyncSmtpConnection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.abort()).await;
    });
}

fn percent_encoding_decode(s: &str) -> Result<String, std::str::Utf8Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(Cow::into_owned)
}
