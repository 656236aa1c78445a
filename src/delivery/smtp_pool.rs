//! A small pool of SMTP connections with a deadline on every send.
//!
//! lettre's own async pool bounds only the connect, and when a send is
//! abandoned (our timeout fires) it puts the connection back in the pool in
//! the middle of a transaction, where the next message would read the old
//! replies. Here a connection goes back to the pool only after a clean
//! success; after any error or timeout it is closed.
//!
//! A sender keeps its connection for a run of messages (a [`Session`]), so
//! that each message's data can ride in the same write as the next one's
//! envelope.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Mutex;
use url::Url;

use super::smtp_transaction::{self, Capabilities, Deadlines, Failure, Handover, Held};
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

/// A connection and what its relay can do.
struct Connection {
    smtp: AsyncSmtpConnection,
    caps: Capabilities,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

pub struct SmtpPool {
    target: Target,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    /// For connecting and greeting, and for each reply.
    timeout: Duration,
    deadlines: Deadlines,
}

impl SmtpPool {
    /// Accepts `smtp://[user:pass@]host[:port][?tls=required|opportunistic]`
    /// and `smtps://…`, as lettre documents them.
    /// `hello` is the EHLO name unless the URL's path gives one. Each reply
    /// may take `timeout`, the verdict on a message's data `data_timeout`.
    pub fn from_url(
        url: &str,
        max_idle: usize,
        timeout: Duration,
        data_timeout: Duration,
        hello: &str,
    ) -> Result<SmtpPool, String> {
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
            ClientId::Domain(hello.to_string())
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
            deadlines: Deadlines {
                command: timeout,
                end_of_data: data_timeout,
            },
        })
    }

    /// A run of messages over one connection.
    pub fn session(&self) -> Session<'_> {
        Session {
            pool: self,
            conn: None,
            held: None,
        }
    }

    /// Connects and greets, for a configuration check.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        let conn = self.connect().await?;
        self.checkin(conn);
        Ok(())
    }

    async fn checkout(&self) -> Result<Connection, MailError> {
        loop {
            let candidate = self.idle.lock().expect("not poisoned").pop();
            let Some(Idle { mut conn, since }) = candidate else {
                return self.connect().await;
            };
            if since.elapsed() < CHECK_AFTER_IDLE {
                return Ok(conn);
            }
            let alive = tokio::time::timeout(self.timeout, conn.smtp.test_connected()).await;
            if matches!(alive, Ok(true)) {
                return Ok(conn);
            }
            close(conn);
        }
    }

    fn checkin(&self, conn: Connection) {
        if conn.smtp.has_broken() {
            return close(conn);
        }
        let mut idle = self.idle.lock().expect("not poisoned");
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

    async fn connect(&self) -> Result<Connection, MailError> {
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
                    // A message's end (".") is written apart from its body;
                    // with Nagle's algorithm that small write waits for the
                    // relay's delayed ACK, about 40 ms per message.
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
            // Before AUTH: some relays forget a login on a new EHLO.
            let caps = Capabilities::probe(&mut conn, &t.hello)
                .await
                .map_err(super::transport::classify)?;
            if let Some(credentials) = &t.credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await
                    .map_err(super::transport::classify)?;
            }
            Ok(Connection { smtp: conn, caps })
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

/// Outcomes a [`Session::send`] learned.
pub struct Outcomes {
    /// The message held before, when there was one.
    pub before: Option<Result<(), MailError>>,
    /// This message, unless its data is held for the next one.
    pub this: Option<Result<(), MailError>>,
}

/// One sender's connection, kept while its messages follow each other.
/// The last message's data may be held: [`Session::finish`] writes it and
/// hands the connection back. A session dropped with a message held has
/// not delivered it, and closes the connection.
pub struct Session<'p> {
    pool: &'p SmtpPool,
    conn: Option<Connection>,
    held: Option<Held>,
}

impl Session<'_> {
    /// Sends one message within the deadline, with the data of the message
    /// held before it.
    pub async fn send(&mut self, envelope: &Envelope, email: &[u8]) -> Outcomes {
        let held = self.held.take();
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => match self.pool.checkout().await {
                Ok(conn) => conn,
                Err(e) => {
                    return Outcomes {
                        before: None,
                        this: Some(Err(e)),
                    }
                }
            },
        };
        // Each reply has its own deadline inside the transaction, so the
        // verdict on the message held before is kept even when this one's
        // envelope is slow to be answered.
        let sent = smtp_transaction::send(
            &mut conn.smtp,
            conn.caps,
            self.pool.deadlines,
            held,
            envelope,
            email,
        )
        .await;
        let broken = matches!(sent.this, Err(Failure::Broken(_)))
            || matches!(sent.before, Some(Err(Failure::Broken(_))));
        if broken {
            close(conn);
        } else {
            self.conn = Some(conn);
        }
        let this = match sent.this {
            Ok(Handover::Held(held)) if !broken => {
                self.held = Some(held);
                None
            }
            Ok(Handover::Held(_)) => Some(Err(MailError::Transient(
                "the connection broke before this message's data".into(),
            ))),
            Ok(Handover::Accepted) => Some(Ok(())),
            Err(failure) => Some(Err(failure.into_error())),
        };
        Outcomes {
            before: sent.before.map(|r| r.map_err(Failure::into_error)),
            this,
        }
    }

    /// Writes the held message's data, if any, and returns its outcome;
    /// the connection goes back to the pool either way.
    pub async fn finish(&mut self) -> Option<Result<(), MailError>> {
        let held = self.held.take();
        let mut conn = self.conn.take()?;
        let Some(held) = held else {
            self.pool.checkin(conn);
            return None;
        };
        Some(
            match smtp_transaction::finish(&mut conn.smtp, self.pool.deadlines, held).await {
                Ok(()) => {
                    self.pool.checkin(conn);
                    Ok(())
                }
                Err(Failure::Refused(e)) => {
                    self.pool.checkin(conn);
                    Err(e)
                }
                Err(Failure::Broken(e)) => {
                    close(conn);
                    Err(e)
                }
            },
        )
    }
}

impl Session<'_> {
    /// Drops the held message, if any: the connection closes with its data
    /// unwritten, so the relay discards that transaction.
    pub fn abandon(&mut self) {
        if self.held.take().is_some() {
            if let Some(conn) = self.conn.take() {
                close(conn);
            }
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.held.is_some() {
                close(conn);
            } else {
                self.pool.checkin(conn);
            }
        }
    }
}

/// Says goodbye in the background; nothing waits for a dying connection.
fn close(mut conn: Connection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.smtp.abort()).await;
    });
}

fn percent_encoding_decode(s: &str) -> Result<String, std::str::Utf8Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(Cow::into_owned)
}
