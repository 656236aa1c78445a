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
    /// The name the client gave in EHLO or HELO.
    pub hello: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
    /// Times the server answered and then had to wait for the client, from
    /// the wait that brought this message's MAIL to its final reply.
    pub round_trips: usize,
    /// The commands of this transaction, by verb (MAIL, RCPT, DATA, BDAT).
    pub commands: Vec<String>,
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
    /// Nothing goes wrong: puts a later fault on a later transaction.
    Nothing,
    /// Answer RCPT TO with this reply (e.g. 451 or 550).
    RcptReply(u16, &'static str),
    /// Wait this long before answering RCPT TO (a relay checking the
    /// recipient, a tarpit).
    SlowRcpt(Duration),
    /// Answer the end of DATA with this reply (e.g. 452 or 554).
    DataReply(u16, &'static str),
    /// Close the connection in the middle of DATA, with no reply.
    DropInData,
    /// Wait this long before answering the end of DATA.
    SlowData(Duration),
    /// Answer MAIL FROM with 421 and close the connection.
    CloseAtMail,
    /// Answer MAIL FROM with this reply (our sender refused).
    MailReply(u16, &'static str),
}

/// The ESMTP extensions the server announces.
#[derive(Debug, Clone, Copy)]
pub struct Extensions {
    pub pipelining: bool,
    pub chunking: bool,
}

impl Default for Extensions {
    fn default() -> Self {
        Extensions {
            pipelining: true,
            chunking: false,
        }
    }
}

#[derive(Default)]
struct Shared {
    extensions: Mutex<Extensions>,
    /// Every command received, by verb, across connections.
    commands: Mutex<Vec<String>>,
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

    /// Forgets the faults not met yet.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
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

    /// What the next connections are offered in the EHLO reply.
    pub fn set_extensions(&self, extensions: Extensions) {
        *self.shared.extensions.lock().unwrap() = extensions;
    }

    /// Every command received so far, by verb, in order.
    pub fn commands(&self) -> Vec<String> {
        self.shared.commands.lock().unwrap().clone()
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

/// One connection. Commands are read line by line from a buffer, so a
/// client that pipelines gets its replies in order as RFC 2920 asks.
async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, write) = stream.into_split();
    let mut conn = Conn {
        lines: BufReader::new(read),
        write,
        answered: false,
        turns: 0,
    };
    let extensions = *shared.extensions.lock().unwrap();
    conn.reply("220 test.invalid ESMTP ready").await?;
    let mut mail_from: Option<String> = None;
    let mut hello = String::new();
    let mut rcpt_to = Vec::new();
    let mut commands = Vec::new();
    let mut transaction_start = 0;
    let mut fault: Option<Fault> = None;
    let mut line = String::new();
    loop {
        let turns_before = conn.turns;
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if verb == "EHLO" || verb == "HELO" {
            hello = command[4..].trim().to_string();
        }
        shared.commands.lock().unwrap().push(verb.clone());
        commands.push(verb.clone());
        match verb.as_str() {
            "EHLO" => {
                let mut reply =
                    String::from("250-test.invalid\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n");
                if extensions.pipelining {
                    reply.push_str("250-PIPELINING\r\n");
                }
                if extensions.chunking {
                    reply.push_str("250-CHUNKING\r\n");
                }
                reply.push_str("250-AUTH PLAIN LOGIN\r\n250 SIZE 52428800");
                conn.reply(&reply).await?
            }
            "HELO" => conn.reply("250 test.invalid").await?,
            // Any credentials will do; the point is that a relay asking for
            // them gets them.
            "AUTH" if shared.refuse_auth.load(std::sync::atomic::Ordering::SeqCst) => {
                conn.reply("535 5.7.8 authentication credentials invalid")
                    .await?
            }
            "AUTH" => conn.reply("235 2.7.0 authenticated").await?,
            "MAIL" => {
                transaction_start = turns_before;
                commands = vec![verb.clone()];
                if mail_from.is_some() {
                    conn.reply("503 5.5.1 nested MAIL command").await?;
                    continue;
                }
                fault = shared.faults.lock().unwrap().pop_front();
                if let Some(Fault::CloseAtMail) = fault {
                    conn.reply("421 4.3.2 shutting down").await?;
                    return Ok(());
                }
                if let Some(Fault::MailReply(code, text)) = fault {
                    fault = None;
                    conn.reply(&format!("{code} {text}")).await?;
                    continue;
                }
                mail_from = Some(address_in(&command));
                rcpt_to.clear();
                conn.reply("250 2.1.0 ok").await?;
            }
            "RCPT" => {
                if mail_from.is_none() {
                    conn.reply("503 5.5.1 need MAIL first").await?;
                    continue;
                }
                if let Some(Fault::RcptReply(code, text)) = &fault {
                    let reply = format!("{code} {text}");
                    fault = None;
                    conn.reply(&reply).await?;
                    continue;
                }
                if let Some(Fault::SlowRcpt(d)) = &fault {
                    tokio::time::sleep(*d).await;
                }
                rcpt_to.push(address_in(&command));
                conn.reply("250 2.1.5 ok").await?;
            }
            "DATA" | "BDAT" => {
                let bdat = verb == "BDAT";
                let size = bdat.then(|| bdat_size(&command));
                // Without a sender and a recipient there is no message to
                // take: RFC 2920 asks the server to refuse DATA here, and a
                // BDAT chunk is read and thrown away.
                let refusal = if mail_from.is_none() {
                    Some("503 5.5.1 need MAIL first")
                } else if rcpt_to.is_empty() {
                    Some("554 5.5.1 no valid recipients")
                } else {
                    None
                };
                if let Some(refusal) = refusal {
                    if let Some(size) = size {
                        conn.read_exact(size.unwrap_or(0)).await?;
                    }
                    mail_from = None;
                    rcpt_to.clear();
                    conn.reply(refusal).await?;
                    continue;
                }
                let data = match size {
                    Some(Some(size)) => conn.read_exact(size).await?,
                    Some(None) => {
                        conn.reply("501 5.5.4 only BDAT n LAST is understood here")
                            .await?;
                        continue;
                    }
                    None => {
                        conn.reply("354 end with <CRLF>.<CRLF>").await?;
                        conn.read_data().await?
                    }
                };
                let from = mail_from.take().unwrap_or_default();
                match fault.take() {
                    Some(Fault::DropInData) => return Ok(()),
                    Some(Fault::DataReply(code, text)) => {
                        conn.reply(&format!("{code} {text}")).await?;
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
                            hello: hello.clone(),
                            mail_from: from,
                            rcpt_to: std::mem::take(&mut rcpt_to),
                            data,
                            round_trips: conn.turns - transaction_start,
                            commands: std::mem::take(&mut commands),
                        });
                        shared.arrived.notify_waiters();
                        conn.reply("250 2.0.0 queued").await?;
                    }
                }
                rcpt_to.clear();
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                fault = None;
                conn.reply("250 2.0.0 ok").await?
            }
            "NOOP" => conn.reply("250 2.0.0 ok").await?,
            "QUIT" => {
                conn.reply("221 2.0.0 bye").await?;
                return Ok(());
            }
            _ => conn.reply("502 5.5.2 command not recognised").await?,
        }
    }
}

/// The two halves of a connection, counting the client's turns: each time
/// the server has answered and finds nothing more to read, the client is
/// waiting for that answer, and one round trip has passed.
struct Conn {
    lines: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
    answered: bool,
    turns: usize,
}

impl Conn {
    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        self.write
            .write_all(format!("{text}\r\n").as_bytes())
            .await?;
        self.answered = true;
        Ok(())
    }

    fn count_turn(&mut self) {
        if self.answered && self.lines.buffer().is_empty() {
            self.turns += 1;
            self.answered = false;
        }
    }

    async fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        self.count_turn();
        self.lines.read_line(line).await
    }

    async fn read_exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        self.count_turn();
        let mut data = vec![0; n];
        self.lines.read_exact(&mut data).await?;
        Ok(data)
    }

    /// Reads the DATA section up to the lone dot, undoing dot-stuffing.
    async fn read_data(&mut self) -> std::io::Result<Vec<u8>> {
        self.count_turn();
        let mut data = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.lines.read_until(b'\n', &mut line).await? == 0 {
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
}

/// The size of a `BDAT n LAST`; `None` for anything else (chunks that are
/// not the last are not needed by these tests).
fn bdat_size(command: &str) -> Option<usize> {
    let mut words = command.split_whitespace().skip(1);
    let size = words.next()?.parse().ok()?;
    let last = words.next()?.eq_ignore_ascii_case("LAST");
    last.then_some(size)
}

fn address_in(command: &str) -> String {
    let start = command.find('<').map(|i| i + 1).unwrap_or(0);
    let end = command[start..]
        .find('>')
        .map(|i| start + i)
        .unwrap_or(command.len());
    command[start..end].to_string()
}
