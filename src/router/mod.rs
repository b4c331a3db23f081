//! The HTTP front door: picks an up web dyno of the app the Host header
//! names (at random, or the less busy of two: the app's
//! [`Routing`](crate::routing::Routing)), forwards the request over a
//! pooled keep-alive connection (in memory unless the dynos have real
//! ports: [`pool`]; a proxy dyno's handler is called directly: [`forward`]) with
//! `X-Request-Start` (when the router
//! had it, in ms) for the app's APM, and logs one Heroku-format line per
//! request: at the answer's head when it has a `Content-Length`, else when
//! the stream ends, with the bytes it sent ([`stream`]).
//!
//! Errors answer 503 with a short page and an `H` code in the log: `H14` no
//! web dynos up, `H10` they crashed, `H11` every dyno has the backlog's
//! worth of requests (50) waiting for it to take them, `H12` no response in time, `H13` the
//! dyno closed the connection without answering, `H19` it could not be
//! reached, `H99` the platform failed; `H17` (502) the dyno's answer had
//! both `Content-Length` and `Transfer-Encoding`; `H15` an answer that
//! sent nothing for the idle timeout (55 s) is cut. Requests the router
//! refuses get their own status and line: 400 for a Host that is not a
//! `host[:port]` ([`host`]) and for `Content-Length` with
//! `Transfer-Encoding` (request smuggling; [`head`]), then the connection
//! closes; 413 for a body over the limit; 404 for a host that names no app,
//! logged to tracing, never to an app's ring (no app, no ring). Hop-by-hop
//! headers are dropped both ways ([`hop`]); WebSocket upgrades are
//! tunnelled ([`tunnel`]). Headers are capped and slow clients timed out.
//! A request for a sleeping app is held until a web dyno is up ([`wake`]):
//! `H20` if none is within the boot timeout, `H11` past the bound of
//! held requests.

mod answer;
mod body;
mod config;
mod forward;
mod head;
mod hop;
pub mod host;
mod log;
mod pool;
mod stream;
pub mod table;
mod tunnel;
pub mod wake;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rand::{RngExt, SeedableRng};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::logbus::Bus;
use answer::{ERROR_PAGE, NO_SUCH_APP, closing, text};
use body::Capped;
pub use config::{MAX_CONNECTIONS, RouterConfig};
use forward::{Answer, Failed};
use head::{Framing, HeadScan, Refusal, Sniff};
use log::{LineBits, good_request_id, new_request_id, path_field};
pub use table::{Backend, NoRoute, RouteTable};

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

struct Router {
    table: RouteTable,
    bus: Bus,
    cfg: RouterConfig,
    client: Client<HttpConnector, Capped>,
    rng: Mutex<rand::rngs::StdRng>,
    port: u16,
    /// This is a cluster host's peer port: it takes requests other hosts'
    /// routers hand it (with the cluster's token) for its own dynos, and
    /// logs none of them (the router that had the request does).
    peer: bool,
    /// Ends tunnels and idle connections at shutdown.
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// Connections past the cap being answered 503 at once.
const REFUSALS_AT_ONCE: usize = 64;

/// Serves until `shutdown` resolves, at most
/// [`RouterConfig::max_connections`] client connections at once.
pub async fn serve(
    listener: TcpListener,
    table: RouteTable,
    bus: Bus,
    cfg: RouterConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    serve_as(false, listener, table, bus, cfg, shutdown).await
}

/// Serves a cluster host's peer port until `shutdown` resolves: requests
/// other hosts' routers hand over, each for a dyno of this host named in
/// its `Wdyno-Dyno` header, refused (403) without the cluster's token.
pub async fn serve_peer(
    listener: TcpListener,
    table: RouteTable,
    bus: Bus,
    cfg: RouterConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    serve_as(true, listener, table, bus, cfg, shutdown).await
}

async fn serve_as(
    peer: bool,
    listener: TcpListener,
    table: RouteTable,
    bus: Bus,
    cfg: RouterConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(cfg.connect_timeout));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(connector);
    let rng = match cfg.seed {
        Some(s) => rand::rngs::StdRng::seed_from_u64(s),
        None => rand::make_rng(),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let router = Arc::new(Router {
        table,
        bus,
        cfg,
        client,
        rng: Mutex::new(rng),
        port,
        peer,
        stop: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    tokio::pin!(shutdown);
    let open = Arc::new(tokio::sync::Semaphore::new(router.cfg.max_connections));
    let refusing = Arc::new(tokio::sync::Semaphore::new(REFUSALS_AT_ONCE));
    let mut refused = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                match open.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let conn = router.clone().connection(tcp, peer);
                        router.tasks.spawn(async move {
                            conn.await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        refused += 1;
                        if refused.is_power_of_two() {
                            tracing::warn!(
                                "router: {} connections open, its cap: answered 503 and closed ({refused} so far)",
                                router.cfg.max_connections
                            );
                        }
                        // Past even the refusals' own bound: just closed.
                        if let Ok(p) = refusing.clone().try_acquire_owned() {
                            router.tasks.spawn(async move {
                                answer::refuse(tcp).await;
                                drop(p);
                            });
                        }
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    router.stop.cancel();
    router.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), router.tasks.wait()).await;
}

impl Router {
    /// One client connection: hyper over a socket whose request heads are
    /// scanned for conflicting framing on the way in.
    async fn connection(self: Arc<Self>, tcp: tokio::net::TcpStream, peer: SocketAddr) {
        let framing = Arc::new(Framing::default());
        // hyper buffers at most this much of a head (see max_buf_size).
        let buffered = self.cfg.max_head.max(8192);
        let io = Sniff::new(tcp, HeadScan::new(buffered, framing.clone()));
        let router = self.clone();
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.cfg.header_timeout)
            .max_buf_size(buffered)
            .keep_alive(true)
            .serve_connection(
                TokioIo::new(io),
                hyper::service::service_fn(move |req| {
                    let (router, framing) = (router.clone(), framing.clone());
                    async move { Ok::<_, Infallible>(router.handle(req, peer, &framing).await) }
                }),
            )
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = self.stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

impl Router {
    async fn handle(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        framing: &Framing,
    ) -> Response<Body> {
        let started = Instant::now();
        // For the app's APM: when the router had the request (ms).
        let received_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let framed = framing.next_request();
        let raw_host = req
            .headers()
            .get(header::HOST)
            .map(|h| h.as_bytes().to_vec())
            .or_else(|| {
                req.uri()
                    .authority()
                    .map(|a| a.as_str().as_bytes().to_vec())
            })
            .unwrap_or_default();
        let checked = host::parse(&raw_host);
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into());
        let request_id = {
            let mut rng = self.rng.lock().expect("router rng");
            req.headers()
                .get(forward::X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .filter(|v| good_request_id(v))
                .map(str::to_owned)
                .unwrap_or_else(|| new_request_id(&mut rng))
        };
        let mut line = LineBits {
            app: checked.and_then(|h| match &self.cfg.default_app {
                Some(app) if host::names_no_app(h) => Some(app.clone()),
                _ => host::app_of_host(h),
            }),
            known: false,
            method: req.method().to_string(),
            path: path_field(&path),
            host: checked.map_or_else(|| host::quoted(&raw_host), str::to_owned),
            request_id,
            fwd: peer.ip().to_string(),
            quiet: self.peer,
        };
        match framed {
            Ok(()) => {}
            Err(Refusal::BothFramings) => {
                self.refused(&line, "Content-Length with Transfer-Encoding", 400, started);
                return closing(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: Content-Length and Transfer-Encoding together\n",
                );
            }
            Err(Refusal::Unreadable) => {
                self.refused(&line, "Unreadable request framing", 400, started);
                return closing(StatusCode::BAD_REQUEST, "Bad Request\n");
            }
        }
        let head: usize = head::uri_len(req.uri())
            + req
                .headers()
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if head > self.cfg.max_head {
            self.refused(&line, "Request header fields too large", 431, started);
            return closing(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large\n",
            );
        }
        if checked.is_none() {
            self.refused(&line, "Invalid Host header", 400, started);
            return closing(
                StatusCode::BAD_REQUEST,
                "Bad Request: the Host header is not a host[:port]\n",
            );
        }
        if req.method() == Method::CONNECT {
            self.refused(&line, "CONNECT is not routed", 405, started);
            return closing(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        }
        let app = line.app.clone().unwrap_or_default();
        let backend = match self.peer {
            true => {
                if !self.shows_cluster_token(req.headers()) {
                    return closing(
                        StatusCode::FORBIDDEN,
                        "Forbidden: this port takes requests from the cluster's routers only\n",
                    );
                }
                req.headers()
                    .get(forward::PEER_DYNO)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|d| self.table.local(&app, d))
                    .ok_or(NoRoute::NoWebDynos)
            }
            false => {
                let mut rng = self.rng.lock().expect("router rng");
                self.table.pick(&app, |n| rng.random_range(0..n))
            }
        };
        line.known = !matches!(backend, Err(NoRoute::NoSuchApp));
        if !line.known {
            tracing::info!(
                target: "wdyno::router",
                "at=info desc=\"No such app\" method={} path={} host={} request_id={} fwd=\"{}\" status=404 protocol=http",
                line.method, line.path, line.host, line.request_id, line.fwd
            );
            return text(StatusCode::NOT_FOUND, NO_SUCH_APP);
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.cfg.max_body as u64) {
            self.refused(&line, "Request body too large", 413, started);
            return closing(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n");
        }
        let backend = match backend {
            Err(NoRoute::Asleep) => {
                wake::held_until_up(&self.table, &app, self.cfg.boot_timeout, || {
                    let mut rng = self.rng.lock().expect("router rng");
                    self.table.pick(&app, |n| rng.random_range(0..n))
                })
                .await
            }
            picked => picked,
        };
        // Counted in flight from the pick on (inside the table's lock), so
        // the manager can let a dyno it takes out of service finish what
        // it was sent, and least-connections sees it busy; the guard goes
        // with the answer's body, to its last byte.
        let (backend, inflight) = match backend {
            Ok((b, _)) if b.waiting() >= self.cfg.backlog => {
                // Past its backlog: the dyno with the shortest, if any is
                // shorter.
                match self.table.least_waiting(&app) {
                    Some(o) if o.0.waiting() < self.cfg.backlog => o,
                    _ => {
                        self.log_error(&line, "H11", "Backlog too deep", None, started);
                        return text(StatusCode::SERVICE_UNAVAILABLE, ERROR_PAGE);
                    }
                }
            }
            Ok(b) => b,
            Err(why) => {
                let (code, desc) = match why {
                    NoRoute::Crashed => ("H10", "App crashed"),
                    NoRoute::NoWebDynos | NoRoute::NoSuchApp => ("H14", "No web processes running"),
                    NoRoute::Asleep | NoRoute::BootTimeout => ("H20", "App boot timeout"),
                    NoRoute::Backlog => ("H11", "Backlog too deep"),
                };
                self.log_error(&line, code, desc, None, started);
                return text(StatusCode::SERVICE_UNAVAILABLE, ERROR_PAGE);
            }
        };
        let upgrade = hop::wants_upgrade(req.headers());
        // Any `Upgrade` header stops the head scan (hyper may switch
        // protocols on it): unless tunnelled, the connection then closes.
        let asked_upgrade = req.headers().contains_key(header::UPGRADE);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let headers = req.headers_mut();
        hop::strip(headers, upgrade);
        // The cluster's token never reaches a dyno.
        headers.remove(forward::PEER_TOKEN);
        headers.remove(forward::PEER_DYNO);
        headers.insert(
            forward::X_REQUEST_ID,
            HeaderValue::from_str(&line.request_id).expect("request ids are ASCII"),
        );
        // A handed-over request has them from the router that had it.
        if !self.peer {
            let fwd = match headers
                .get(forward::X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", line.fwd)),
                None => HeaderValue::from_str(&line.fwd),
            };
            if let Ok(v) = fwd {
                headers.insert(forward::X_FORWARDED_FOR, v);
            }
            headers.insert(forward::X_FORWARDED_PROTO, HeaderValue::from_static("http"));
            headers.insert(forward::X_FORWARDED_PORT, HeaderValue::from(self.port));
            headers.insert(header::VIA, HeaderValue::from_static("1.1 wdyno"));
            // Set, never passed on: a client cannot fake its queue time.
            headers.insert(
                forward::X_REQUEST_START,
                HeaderValue::from(received_ms as u64),
            );
        }
        let (parts, body) = req.into_parts();
        let (body, overflow) = Capped::new(body, self.cfg.max_body as u64);
        let forwarded = Request::from_parts(parts, body);
        let connect_started = Instant::now();
        let answer = tokio::time::timeout(
            self.cfg.request_timeout,
            self.send(&backend, &path, forwarded),
        )
        .await;
        if overflow.load(Ordering::Acquire) && !matches!(answer, Ok(Ok(_))) {
            self.refused(&line, "Request body too large", 413, started);
            return closing(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n");
        }
        let answer = match answer {
            Err(_) => {
                self.log_error(&line, "H12", "Request timeout", Some(&backend), started);
                return text(StatusCode::SERVICE_UNAVAILABLE, ERROR_PAGE);
            }
            Ok(Err(failed)) => {
                let (code, desc) = match failed {
                    Failed::Connect => ("H19", "Backend connection timeout"),
                    Failed::Closed => ("H13", "Connection closed without response"),
                    Failed::Platform => ("H99", "Platform error"),
                };
                self.log_error(&line, code, desc, Some(&backend), started);
                return text(StatusCode::SERVICE_UNAVAILABLE, ERROR_PAGE);
            }
            Ok(Ok(answer)) => answer,
        };
        let connect = connect_started.duration_since(started).as_millis();
        let headers = match &answer {
            Answer::Http(resp) => resp.headers(),
            Answer::Memory(resp) => resp.headers(),
            Answer::Handler(resp) => resp.headers(),
        };
        // Looked at before hop-by-hop headers (`Transfer-Encoding`) go.
        if headers.contains_key(header::CONTENT_LENGTH)
            && headers.contains_key(header::TRANSFER_ENCODING)
        {
            self.log_line(
                &line,
                "at=error code=H17 desc=\"Poorly formatted HTTP response\"",
                &backend.dyno,
                0,
                502,
                0,
                started,
            );
            return text(StatusCode::BAD_GATEWAY, ERROR_PAGE);
        }
        match answer {
            Answer::Http(resp) => {
                let resp = self.tunnel(resp, client_upgrade, asked_upgrade, |r| {
                    tunnel::DynoSide::Hyper(hyper::upgrade::on(r))
                });
                self.answer(resp, line, &backend, connect, started, inflight)
            }
            Answer::Memory(resp) => {
                let resp = self.tunnel(resp, client_upgrade, asked_upgrade, |r| {
                    r.body_mut()
                        .take_upgrade()
                        .map_or(tunnel::DynoSide::Gone, tunnel::DynoSide::Memory)
                });
                self.answer(resp, line, &backend, connect, started, inflight)
            }
            Answer::Handler(mut resp) => {
                hop::strip(resp.headers_mut(), false);
                let resp =
                    resp.map(|b| b.map_err(Box::<dyn std::error::Error + Send + Sync>::from));
                self.answer(resp, line, &backend, connect, started, inflight)
            }
        }
    }
}
