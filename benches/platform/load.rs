//! The harness's own load generator: hyper's HTTP/1 client, a fixed number
//! of connections, each sending requests back to back for a fixed time.
//!
//! A connection is kept alive while the server allows it; when the server
//! answers `Connection: close` (the hello app does), the next request opens
//! a new connection, and its latency includes the connect.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the load goes: requests are spread over `addrs` (connection `i`
/// starts at address `i` and moves on with each new connection).
#[derive(Clone)]
pub struct Target {
    pub addrs: Vec<SocketAddr>,
    /// The `Host` header (the router routes on it).
    pub host: String,
    pub path: String,
}

impl Target {
    pub fn new(addrs: Vec<SocketAddr>, host: &str, path: &str) -> Target {
        assert!(!addrs.is_empty(), "a load target needs an address");
        Target {
            addrs,
            host: host.to_owned(),
            path: path.to_owned(),
        }
    }

    pub fn local(port: u16, host: &str, path: &str) -> Target {
        Target::new(vec![SocketAddr::from(([127, 0, 0, 1], port))], host, path)
    }
}

/// What one run of load measured.
pub struct Load {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latency of every successful request, sorted.
    pub latencies: Vec<Duration>,
}

impl Load {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        super::percentile(&self.latencies, p)
    }
}

/// Sends `concurrency` streams of requests at `target` for `duration`.
pub async fn run(target: &Target, concurrency: usize, duration: Duration) -> Load {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..concurrency {
        let target = target.clone();
        tasks.spawn(async move { stream(&target, i, deadline).await });
    }
    let mut load = Load {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    while let Some(done) = tasks.join_next().await {
        let (ok, failed, mut latencies) = done.expect("load task panicked");
        load.ok += ok;
        load.failed += failed;
        load.latencies.append(&mut latencies);
    }
    load.elapsed = started.elapsed();
    load.latencies.sort_unstable();
    load
}

/// One connection's worth of requests: (ok, failed, latencies).
async fn stream(target: &Target, first: usize, deadline: Instant) -> (u64, u64, Vec<Duration>) {
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
    let mut next_addr = first;
    let mut conn: Option<SendRequest<Empty<Bytes>>> = None;
    while Instant::now() < deadline {
        let t = Instant::now();
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            let addr = target.addrs[next_addr % target.addrs.len()];
            next_addr += 1;
            conn = connect(addr).await;
        }
        let Some(sender) = conn.as_mut() else {
            failed += 1;
            continue;
        };
        if sender.ready().await.is_err() {
            conn = None;
            failed += 1;
            continue;
        }
        let req = http::Request::get(&target.path)
            .header(http::header::HOST, &target.host)
            .body(Empty::new())
            .expect("a valid request");
        match sender.send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                let closes = resp
                    .headers()
                    .get(http::header::CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                let body = resp.into_body().collect().await;
                if status == http::StatusCode::OK && body.is_ok() {
                    ok += 1;
                    latencies.push(t.elapsed());
                } else {
                    failed += 1;
                }
                if closes || body.is_err() {
                    conn = None;
                }
            }
            Err(_) => {
                failed += 1;
                conn = None;
            }
        }
    }
    (ok, failed, latencies)
}

async fn connect(addr: SocketAddr) -> Option<SendRequest<Empty<Bytes>>> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    tcp.set_nodelay(true).ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// The trivial native server the load generator's ceiling is measured
/// against: hyper, keep-alive, answers `ok` to everything.
pub async fn trivial_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"ok\n")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    port
}
