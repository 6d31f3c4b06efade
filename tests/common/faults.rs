//! A TCP proxy on loopback in front of a server that injects the network
//! faults the call contract is about: a stall (both directions stop while
//! the sockets stay open: a hung proxy or pooler) and a cut (a message
//! reaches the server, and the connection dies before its answer comes
//! back: the server did the work, the client cannot know).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The proxy; it stops accepting when dropped (open connections live on
/// until their peers close them).
pub struct FaultProxy {
    /// The loopback port it listens on.
    pub port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    stalled: AtomicBool,
    /// Cut the connection whose next client message contains these bytes.
    cut_on: Mutex<Option<Vec<u8>>>,
    cuts: AtomicUsize,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FaultProxy {
    /// A proxy to `host:port`.
    pub async fn start(host: &str, port: u16) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let upstream = (host.to_owned(), port);
        let state = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream.clone()).await else {
                    continue;
                };
                let cut = Arc::new(AtomicBool::new(false));
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, state.clone(), cut.clone(), true));
                tokio::spawn(pump(sr, cw, state.clone(), cut, false));
            }
        });
        FaultProxy {
            port: local,
            shared,
            accept,
        }
    }

    /// A proxy in front of the server of `url` (a `postgres://` URL).
    pub async fn in_front_of(url: &str) -> FaultProxy {
        let url = url::Url::parse(url).unwrap();
        Self::start(url.host_str().unwrap(), url.port().unwrap_or(5432)).await
    }

    /// `url` with its host and port replaced by the proxy's, without TLS
    /// (the proxy reads the messages it cuts after).
    pub fn url_through(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.query_pairs_mut().append_pair("sslmode", "disable");
        url.to_string()
    }

    /// Stops (`true`) or resumes forwarding on every connection, new ones included.
    pub fn stall(&self, on: bool) {
        self.shared.stalled.store(on, Ordering::Relaxed);
    }

    /// The next client message that contains `marker` is forwarded to the
    /// server, and its connection is cut before any answer comes back (the
    /// server gets time to carry it out first). Once.
    pub fn cut_after(&self, marker: &str) {
        *self.shared.cut_on.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }

    /// How many connections were cut.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::Relaxed)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    cut: Arc<AtomicBool>,
    from_client: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(Duration::from_millis(50), from.read(&mut buf)).await {
            Err(_) if cut.load(Ordering::Relaxed) => break,
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
        };
        // Bytes read just as a stall began are held too.
        while shared.stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if cut.load(Ordering::Relaxed) {
            break;
        }
        let mut cutting = false;
        if from_client {
            let mut cut_on = shared.cut_on.lock().unwrap();
            if let Some(marker) = cut_on.as_ref()
                && buf[..n]
                    .windows(marker.len())
                    .any(|w| w == marker.as_slice())
            {
                *cut_on = None;
                cutting = true;
                // From now on nothing the server says reaches the client.
                cut.store(true, Ordering::Relaxed);
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if cutting {
            shared.cuts.fetch_add(1, Ordering::Relaxed);
            // Time for the server to carry the message out, then both ends
            // go: the client sees its connection closed with no answer.
            tokio::time::sleep(Duration::from_millis(300)).await;
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A loopback TCP balancer: each new connection goes to the next of its
/// upstreams in turn, as a load-balanced reader address spreads
/// connections over replicas. It stops accepting when dropped.
pub struct Balancer {
    /// The loopback port it listens on.
    pub port: u16,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Balancer {
    /// A balancer over the servers of `urls` (`postgres://` URLs).
    pub async fn over(urls: &[String]) -> Balancer {
        let upstreams: Vec<(String, u16)> = urls
            .iter()
            .map(|u| {
                let u = url::Url::parse(u).unwrap();
                (u.host_str().unwrap().to_owned(), u.port().unwrap_or(5432))
            })
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = tokio::spawn(async move {
            let mut next = 0;
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstreams[next % upstreams.len()].clone();
                next += 1;
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Balancer { port, accept }
    }

    /// `url` with its host and port replaced by the balancer's.
    pub fn url_to(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.query_pairs_mut().append_pair("sslmode", "disable");
        url.to_string()
    }
}
