//! A loopback proxy that counts the protocol messages clients send, by
//! type: `Q` (a simple query), `S` (a Sync: the end of an extended-protocol
//! request, one answer from the server), `P` (Parse: a statement prepared
//! or sent unnamed). Unlike round trips seen on the wire, the counts do not
//! depend on how packets happen to be split, so a test can pin them.
//!
//! It also counts round trips: requests sent when every earlier one was
//! answered (a ReadyForQuery, `Z`, ends each answer), that is, after the
//! client waited. Requests pipelined in one write count once; a client that
//! writes pipelined requests in several writes could be counted more than
//! once if the server answers in between, so a test that pins round trips
//! runs on a current-thread runtime, where the driver writes what a poll
//! queued at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The proxy; it stops accepting when dropped.
pub struct MessageCounter {
    port: u16,
    counts: Arc<Mutex<HashMap<u8, u64>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for MessageCounter {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Messages sent between two readings of the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Requests the server answers: simple queries and Syncs.
    pub requests: u64,
    /// Statements parsed (prepared, or sent unnamed).
    pub parses: u64,
    /// Round trips: requests sent with no earlier one left unanswered.
    pub trips: u64,
}

/// The key of the round-trip count among the message counts (no message
/// type is 0).
const TRIPS: u8 = 0;

impl MessageCounter {
    /// A proxy in front of the server `url` names; `url_through` gives the
    /// URL to connect to it (with `sslmode=disable`: the messages must be
    /// readable).
    pub async fn in_front_of(url: &str) -> MessageCounter {
        let parsed = url::Url::parse(url).unwrap();
        let upstream = (
            parsed.host_str().unwrap_or("127.0.0.1").to_owned(),
            parsed.port().unwrap_or(5432),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let shared = Arc::clone(&counts);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream.clone()).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let counts = Arc::clone(&shared);
                // Requests of this connection not answered yet.
                let unanswered = Arc::new(AtomicU64::new(0));
                let answers = Arc::clone(&unanswered);
                tokio::spawn(relay(cr, sw, Parser::default(), move |kind| {
                    let mut counts = counts.lock().unwrap();
                    *counts.entry(kind).or_insert(0) += 1;
                    if matches!(kind, b'Q' | b'S') && unanswered.fetch_add(1, Ordering::SeqCst) == 0
                    {
                        *counts.entry(TRIPS).or_insert(0) += 1;
                    }
                }));
                // The server's messages are all typed (no SSL answer: the
                // URL says sslmode=disable). The first `Z` ends the
                // start-up, which no request asked for.
                let server = Parser {
                    started: true,
                    ..Parser::default()
                };
                tokio::spawn(relay(sr, cw, server, move |kind| {
                    if kind == b'Z' {
                        let _ = answers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            Some(n.saturating_sub(1))
                        });
                    }
                }));
            }
        });
        MessageCounter {
            port,
            counts,
            accept,
        }
    }

    /// `url` pointed at the proxy, in plain text.
    pub fn url_through(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).unwrap();
        parsed.set_host(Some("127.0.0.1")).unwrap();
        parsed.set_port(Some(self.port)).unwrap();
        let others: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| k != "sslmode")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("sslmode", "disable");
        parsed.into()
    }

    /// The counts so far.
    pub fn sent(&self) -> Sent {
        let counts = self.counts.lock().unwrap();
        let n = |t: u8| counts.get(&t).copied().unwrap_or(0);
        Sent {
            requests: n(b'Q') + n(b'S'),
            parses: n(b'P'),
            trips: n(TRIPS),
        }
    }
}

/// Copies one direction of a connection, handing `seen` the type of each
/// message before it is forwarded; shuts the other side down at the end.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut parser: Parser,
    mut seen: impl FnMut(u8),
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        parser.feed(&buf[..n], &mut seen);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// One direction of one connection, split into messages. The client's side
/// sends untyped start-up messages first (an SSL or GSS request, then the
/// StartupMessage), typed ones after.
#[derive(Default)]
struct Parser {
    pending: Vec<u8>,
    started: bool,
}

impl Parser {
    /// Takes the next bytes; `seen` gets the type of each whole typed message.
    fn feed(&mut self, bytes: &[u8], mut seen: impl FnMut(u8)) {
        self.pending.extend_from_slice(bytes);
        loop {
            if !self.started {
                if self.pending.len() < 8 {
                    return;
                }
                let len = u32::from_be_bytes(self.pending[..4].try_into().unwrap()) as usize;
                if self.pending.len() < len {
                    return;
                }
                let code = u32::from_be_bytes(self.pending[4..8].try_into().unwrap());
                // SSLRequest and GSSENCRequest come before the StartupMessage.
                if code != 80_877_103 && code != 80_877_104 {
                    self.started = true;
                }
                self.pending.drain(..len);
                continue;
            }
            if self.pending.len() < 5 {
                return;
            }
            let kind = self.pending[0];
            let len = u32::from_be_bytes(self.pending[1..5].try_into().unwrap()) as usize;
            if self.pending.len() < 1 + len {
                return;
            }
            seen(kind);
            self.pending.drain(..1 + len);
        }
    }
}
