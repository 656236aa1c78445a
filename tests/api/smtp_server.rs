//! A small SMTP server for tests: it speaks real SMTP on a random port,
//! records what it receives, and misbehaves on demand.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// One message as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("the received message parses")
    }

    pub fn to(&self) -> &str {
        &self.rcpt_to[0]
    }

    /// The display name in the To header, decoded.
    pub fn to_name(&self) -> Option<String> {
        let parsed = self.parsed();
        let name = parsed.to()?.first()?.name()?.to_string();
        Some(name)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().header_raw(name).map(|v| v.trim().to_string())
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    /// Every link in the text part that starts with `prefix`.
    pub fn links_starting_with(&self, prefix: &str) -> Vec<String> {
        let text = self.text();
        text.match_indices(prefix)
            .map(|(start, _)| {
                text[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '>' && *c != ')')
                    .collect()
            })
            .collect()
    }

    /// The first link in the text part that starts with `prefix`.
    pub fn link_starting_with(&self, prefix: &str) -> Option<String> {
        let text = self.text();
        let start = text.find(prefix)?;
        let link: String = text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != ')')
            .collect();
        Some(link)
    }
}

/// What the server does wrong, once, for the next message transaction.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer RCPT TO with this reply (e.g. 451 or 550).
    RcptReply(u16, &'static str),
    /// Answer the end of DATA with this reply (e.g. 452 or 554).
    DataReply(u16, &'static str),
    /// Close the connection in the middle of DATA, with no reply.
    DropInData,
    /// Wait this long before answering the end of DATA.
    SlowData(Duration),
    /// Answer MAIL FROM with 421 and close the connection.
    CloseAtMail,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    faults: Mutex<VecDeque<Fault>>,
    arrived: Notify,
    /// Delay before every end-of-DATA reply, to make sends take time.
    data_delay: Mutex<Duration>,
    /// Connections accepted so far.
    connections: std::sync::atomic::AtomicUsize,
    /// Answer every AUTH with 535, as a relay does with a wrong password.
    refuse_auth: std::sync::atomic::AtomicBool,
}

/// The running server. Dropping it stops it.
pub struct TestSmtp {
    pub port: u16,
    shared: Arc<Shared>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl TestSmtp {
    pub async fn start() -> TestSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().unwrap().port();
        let smtp = TestSmtp {
            port,
            shared: Arc::new(Shared::default()),
            server: Mutex::new(None),
        };
        smtp.serve(listener);
        smtp
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let handle = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) ends every session.
            let mut sessions = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                shared
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let shared = shared.clone();
                sessions.spawn(async move {
                    let _ = session(stream, shared).await;
                });
            }
        });
        *self.server.lock().unwrap() = Some(handle);
    }

    /// Stops listening and drops every open connection: clients now get
    /// "connection refused".
    pub async fn stop(&self) {
        let handle = self.server.lock().unwrap().take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind smtp");
        self.serve(listener);
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn push_fault(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().push_back(fault);
    }

    /// Makes every message take at least `delay` to be accepted.
    pub fn set_data_delay(&self, delay: Duration) {
        *self.shared.data_delay.lock().unwrap() = delay;
    }

    /// Refuses (or accepts again) every login with 535.
    pub fn refuse_auth(&self, refuse: bool) {
        self.shared
            .refuse_auth
            .store(refuse, std::sync::atomic::Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn received_for(&self, address: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|m| m.to() == address)
            .collect()
    }

    /// Waits until at least `n` messages have arrived, or panics after `limit`.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("expected {n} messages, got {}", self.received().len());
            }
        }
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        if let Some(h) = self.server.lock().unwrap().take() {
            h.abort();
        }
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 test.invalid ESMTP ready\r\n").await?;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut fault: Option<Fault> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => write
                .write_all(
                    b"250-test.invalid\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 52428800\r\n",
                )
                .await?,
            "HELO" => write.write_all(b"250 test.invalid\r\n").await?,
            // Any credentials will do; the point is that a relay asking for
            // them gets them.
            "AUTH" if shared.refuse_auth.load(std::sync::atomic::Ordering::SeqCst) => {
                write
                    .write_all(b"535 5.7.8 authentication credentials invalid\r\n")
                    .await?
            }
            "AUTH" => write.write_all(b"235 2.7.0 authenticated\r\n").await?,
            "MAIL" => {
                fault = shared.faults.lock().unwrap().pop_front();
                if let Some(Fault::CloseAtMail) = fault {
                    write.write_all(b"421 4.3.2 shutting down\r\n").await?;
                    return Ok(());
                }
                mail_from = address_in(&command);
                rcpt_to.clear();
                write.write_all(b"250 2.1.0 ok\r\n").await?;
            }
            "RCPT" => {
                if let Some(Fault::RcptReply(code, text)) = &fault {
                    let reply = format!("{code} {text}\r\n");
                    fault = None;
                    write.write_all(reply.as_bytes()).await?;
                    continue;
                }
                rcpt_to.push(address_in(&command));
                write.write_all(b"250 2.1.5 ok\r\n").await?;
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let data = read_data(&mut lines).await?;
                match fault.take() {
                    Some(Fault::DropInData) => return Ok(()),
                    Some(Fault::DataReply(code, text)) => {
                        write
                            .write_all(format!("{code} {text}\r\n").as_bytes())
                            .await?;
                    }
                    other => {
                        if let Some(Fault::SlowData(d)) = other {
                            tokio::time::sleep(d).await;
                        }
                        let delay = *shared.data_delay.lock().unwrap();
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        shared.received.lock().unwrap().push(Received {
                            mail_from: mail_from.clone(),
                            rcpt_to: rcpt_to.clone(),
                            data,
                        });
                        shared.arrived.notify_waiters();
                        write.write_all(b"250 2.0.0 queued\r\n").await?;
                    }
                }
            }
            "RSET" => {
                rcpt_to.clear();
                write.write_all(b"250 2.0.0 ok\r\n").await?
            }
            "NOOP" => write.write_all(b"250 2.0.0 ok\r\n").await?,
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => {
                write
                    .write_all(b"502 5.5.2 command not recognised\r\n")
                    .await?
            }
        }
    }
}

fn address_in(command: &str) -> String {
    let start = command.find('<').map(|i| i + 1).unwrap_or(0);
    let end = command[start..]
        .find('>')
        .map(|i| start + i)
        .unwrap_or(command.len());
    command[start..end].to_string()
}

/// Reads the DATA section up to the lone dot, undoing dot-stuffing.
async fn read_data<R: AsyncBufReadExt + Unpin>(lines: &mut R) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let content = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(content);
    }
}
