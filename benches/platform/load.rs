//! The harness's own load generator: hyper's HTTP/1 client, a fixed number
//! of connections, each sending requests back to back for a fixed time.
//!
//! A connection is kept alive while the server allows it; when the server
//! answers `Connection: close` (the hello app does), the next request opens
//! a new connection, and its latency includes the connect. A target made
//! [`Target::closing`] sends `Connection: close` itself: a client that
//! connects for every request.
//!
//! [`open_loop`] is the other shape of load: requests sent at times fixed
//! in advance, whatever the answers, each latency counted from the time the
//! request was due.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
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
    /// Whether each request says `Connection: close`.
    pub close: bool,
}

impl Target {
    pub fn new(addrs: Vec<SocketAddr>, host: &str, path: &str) -> Target {
        assert!(!addrs.is_empty(), "a load target needs an address");
        Target {
            addrs,
            host: host.to_owned(),
            path: path.to_owned(),
            close: false,
        }
    }

    /// The same target, for a client that sends `Connection: close`.
    pub fn closing(mut self) -> Target {
        self.close = true;
        self
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
        match sender.send_request(request(target, &target.path)).await {
            Ok(resp) => {
                let status = resp.status();
                let closes = target.close
                    || resp
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

fn request(target: &Target, path: &str) -> http::Request<Empty<Bytes>> {
    let req = http::Request::get(path).header(http::header::HOST, &target.host);
    let req = match target.close {
        true => req.header(http::header::CONNECTION, "close"),
        false => req,
    };
    req.body(Empty::new()).expect("a valid request")
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

/// One request of an open-loop run: when it is due, from the start, and
/// what it asks for.
pub struct Arrival {
    pub at: Duration,
    pub path: String,
}

/// What an open-loop run measured.
pub struct OpenLoad {
    /// Each answered request's time from when it was due to its last
    /// byte, sorted.
    pub latencies: Vec<Duration>,
    pub failed: u64,
}

/// Sends each of `arrivals` at its time, on an idle keep-alive connection
/// to `target.addrs[0]` when one is free and on a new one otherwise, so no
/// request ever waits for another's answer (open loop). The schedule is
/// kept to tokio's timer (1 ms); a request sent late counts the lateness in
/// its latency, as a user would.
pub async fn open_loop(target: &Target, arrivals: &[Arrival]) -> OpenLoad {
    type Idle = Arc<Mutex<Vec<SendRequest<Empty<Bytes>>>>>;
    let idle: Idle = Arc::default();
    let addr = target.addrs[0];
    let start = Instant::now() + Duration::from_millis(10);
    let mut tasks = tokio::task::JoinSet::new();
    let mut out = OpenLoad {
        latencies: Vec::with_capacity(arrivals.len()),
        failed: 0,
    };
    let record = |out: &mut OpenLoad, done: Option<Duration>| match done {
        Some(latency) => out.latencies.push(latency),
        None => out.failed += 1,
    };
    for a in arrivals {
        let due = start + a.at;
        tokio::time::sleep_until(due.into()).await;
        let req = request(target, &a.path);
        let idle = idle.clone();
        tasks.spawn(async move {
            // An idle connection the server has not closed, else a new one
            // (an idle one has answered all it was sent: `ready` is its
            // connection task's turn, never another request's answer).
            let mut pooled = None;
            loop {
                let next = idle.lock().expect("pool lock").pop();
                let Some(mut c) = next else { break };
                if c.ready().await.is_ok() {
                    pooled = Some(c);
                    break;
                }
            }
            let mut sender = match pooled {
                Some(c) => c,
                None => connect(addr).await?,
            };
            let resp = sender.send_request(req).await.ok()?;
            let ok = resp.status() == http::StatusCode::OK;
            let body = resp.into_body().collect().await;
            let latency = due.elapsed();
            if body.is_ok() && !sender.is_closed() {
                idle.lock().expect("pool lock").push(sender);
            }
            (ok && body.is_ok()).then_some(latency)
        });
        while let Some(done) = tasks.try_join_next() {
            record(&mut out, done.expect("open-loop task panicked"));
        }
    }
    while let Some(done) = tasks.join_next().await {
        record(&mut out, done.expect("open-loop task panicked"));
    }
    out.latencies.sort_unstable();
    out
}

/// The trivial native server the load generator's ceiling is measured
/// against: hyper, keep-alive, answers `ok` to everything.
pub async fn trivial_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(answer_all(
        listener,
        b"ok\n",
        hyper::server::conn::http1::Builder::new(),
    ));
    port
}

/// Answers `body` to every request on every connection `listener` takes,
/// with hyper's server as `builder` makes it.
async fn answer_all(
    listener: tokio::net::TcpListener,
    body: &'static [u8],
    builder: hyper::server::conn::http1::Builder,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                    Bytes::from_static(body),
                )))
            });
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

/// The name of [`front_server`]'s thread, to read its CPU time by.
pub const FRONT_THREAD: &str = "wdyno-front";

/// What the router's front costs with nothing behind it: hyper's server
/// as the router builds it (a current-thread runtime on a thread of its
/// own, the same timer, header timeout and keep-alive), answering
/// `hello` itself: no route, no dyno. The router's CPU per request can
/// come no lower than this one's.
pub fn front_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::Builder::new()
        .name(FRONT_THREAD.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .keep_alive(true);
                answer_all(listener, b"hello\n", builder).await
            });
        })
        .unwrap();
    port
}
