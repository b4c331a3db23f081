//! The HTTP front door: picks a random up web dyno of the app the Host
//! header names, forwards the request over a pooled keep-alive connection,
//! and logs one Heroku-format line per request.
//!
//! Errors answer 503 with a short page and an `H` code in the log: `H14` no
//! web dynos up, `H10` they crashed, `H12` no response in time, `H13` the
//! dyno closed the connection without answering, `H19` it could not be
//! reached, `H99` the platform failed. Requests with both `Content-Length`
//! and `Transfer-Encoding` are refused (request smuggling); headers are
//! capped and slow clients timed out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rand::{RngExt, SeedableRng};
use tokio::net::TcpListener;

use crate::logbus::LogBus;
use crate::routes::{Backend, RouteTable};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Router settings; the defaults are Heroku's.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Time for a dyno to start answering (H12).
    pub request_timeout: Duration,
    /// Time to connect to a dyno (H19).
    pub connect_timeout: Duration,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Largest request body forwarded.
    pub max_body: usize,
    /// Largest request head (request line and headers).
    pub max_head: usize,
    /// Seed for the dyno pick, for tests.
    pub seed: Option<u64>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            max_body: 100 << 20,
            max_head: 16 * 1024,
            seed: None,
        }
    }
}

struct Router {
    table: RouteTable,
    bus: LogBus,
    cfg: RouterConfig,
    client: Client<HttpConnector, Limited<Incoming>>,
    rng: Mutex<rand::rngs::StdRng>,
    port: u16,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    table: RouteTable,
    bus: LogBus,
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
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let router = router.clone();
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(router.cfg.header_timeout)
                    .max_buf_size(router.cfg.max_head.max(8192))
                    .keep_alive(true)
                    .serve_connection(
                        TokioIo::new(tcp),
                        hyper::service::service_fn(move |req| {
                            let router = router.clone();
                            async move { Ok::<_, Infallible>(router.handle(req, peer).await) }
                        }),
                    );
                let conn = graceful.watch(conn);
                tokio::spawn(async move { let _ = conn.await; });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

const ERROR_PAGE: &str = "<!DOCTYPE html><html><head><title>Application Error</title></head><body><h1>Application error</h1><p>An error occurred in the application and your page could not be served. If you are the application owner, check your logs for details: <code>wdyno logs --tail</code></p></body></html>\n";

/// The app a Host header names: `app.localhost:5000`, `app.example.com`, `app`.
pub fn app_of_host(host: &str) -> Option<&str> {
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let app = host.split('.').next()?;
    (!app.is_empty()).then_some(app)
}

/// Whether a client's `X-Request-Id` is one to keep.
fn good_request_id(id: &str) -> bool {
    (20..=200).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=-".contains(&b))
}

fn new_request_id(rng: &mut rand::rngs::StdRng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Router {
    async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        if req.headers().contains_key(header::CONTENT_LENGTH)
            && req.headers().contains_key(header::TRANSFER_ENCODING)
        {
            let mut r = text(
                StatusCode::BAD_REQUEST,
                "Bad Request: Content-Length and Transfer-Encoding together\n",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        let head: usize = req.uri().to_string().len()
            + req
                .headers()
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if head > self.cfg.max_head {
            let mut r = text(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large\n",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        // hyper keeps only Transfer-Encoding when both framings are sent,
        // so a smuggled second request would follow in the same bytes:
        // such a connection is closed after this one answer.
        let close_after = req.headers().contains_key(header::TRANSFER_ENCODING);
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let Some(app) = app_of_host(&host).map(str::to_owned) else {
            return text(
                StatusCode::NOT_FOUND,
                "No such app: send a Host header naming one (APP.localhost)\n",
            );
        };
        let method = req.method().to_string();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into());
        let (request_id, backend) = {
            let mut rng = self.rng.lock().expect("router rng");
            let rid = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| good_request_id(v))
                .map(str::to_owned)
                .unwrap_or_else(|| new_request_id(&mut rng));
            let pick = self.table.pick(&app, |n| rng.random_range(0..n));
            (rid, pick)
        };
        let line = LineBits {
            app: &app,
            method: &method,
            path: &path,
            host: &host,
            request_id: &request_id,
            fwd: peer.ip().to_string(),
        };
        let backend = match backend {
            Ok(b) => b,
            Err(crashed) => {
                let (code, desc) = if crashed {
                    ("H10", "App crashed")
                } else {
                    ("H14", "No web processes running")
                };
                self.log_error(&line, code, desc, None, started);
                return text(StatusCode::SERVICE_UNAVAILABLE, ERROR_PAGE);
            }
        };
        // Counted until the dyno answers, so the manager can let a dyno it
        // takes out of service finish what it was sent.
        backend
            .inflight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _inflight = InFlight(backend.inflight.clone());
        let headers = req.headers_mut();
        headers.insert(
            "x-request-id",
            HeaderValue::from_str(&request_id).expect("request ids are ASCII"),
        );
        let fwd = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&fwd) {
            headers.insert("x-forwarded-for", v);
        }
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        headers.insert("x-forwarded-port", HeaderValue::from(self.port));
        headers.insert(header::VIA, HeaderValue::from_static("1.1 wdyno"));
        let uri = format!("http://127.0.0.1:{}{}", backend.port, path);
        let (mut parts, body) = req.into_parts();
        parts.uri = match uri.parse() {
            Ok(u) => u,
            Err(_) => {
                self.log_error(&line, "H99", "Platform error", Some(&backend), started);
                return text(StatusCode::SERVICE_UNAVAILABLE, ERROR_PAGE);
            }
        };
        let forwarded = Request::from_parts(parts, Limited::new(body, self.cfg.max_body));
        let connect_started = Instant::now();
        match tokio::time::timeout(self.cfg.request_timeout, self.client.request(forwarded)).await {
            Err(_) => {
                self.log_error(&line, "H12", "Request timeout", Some(&backend), started);
                text(StatusCode::SERVICE_UNAVAILABLE, ERROR_PAGE)
            }
            Ok(Err(e)) => {
                let (code, desc) = if e.is_connect() {
                    ("H19", "Backend connection timeout")
                } else {
                    ("H13", "Connection closed without response")
                };
                self.log_error(&line, code, desc, Some(&backend), started);
                text(StatusCode::SERVICE_UNAVAILABLE, ERROR_PAGE)
            }
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let bytes = resp
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let connect = connect_started.duration_since(started).as_millis();
                self.bus.publish(crate::logbus::LogLine::now(
                    &app,
                    crate::logbus::Source::Wdyno,
                    "router",
                    &format!(
                        "at=info method={} path=\"{}\" host={} request_id={} fwd=\"{}\" dyno={} connect={}ms service={}ms status={} bytes={} protocol=http",
                        line.method, line.path, line.host, line.request_id, line.fwd, backend.dyno, connect,
                        started.elapsed().as_millis(), status, bytes
                    ),
                ));
                let mut resp = resp;
                if close_after {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                resp.map(|b| {
                    b.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                        .boxed()
                })
            }
        }
    }

    fn log_error(
        &self,
        l: &LineBits<'_>,
        code: &str,
        desc: &str,
        backend: Option<&Backend>,
        started: Instant,
    ) {
        let dyno = backend.map_or("", |b| b.dyno.as_str());
        self.bus.publish(crate::logbus::LogLine::now(
            l.app,
            crate::logbus::Source::Wdyno,
            "router",
            &format!(
                "at=error code={code} desc=\"{desc}\" method={} path=\"{}\" host={} request_id={} fwd=\"{}\" dyno={dyno} connect=0ms service={}ms status=503 bytes=0 protocol=http",
                l.method, l.path, l.host, l.request_id, l.fwd, started.elapsed().as_millis()
            ),
        ));
    }
}

struct InFlight(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct LineBits<'a> {
    app: &'a str,
    method: &'a str,
    path: &'a str,
    host: &'a str,
    request_id: &'a str,
    fwd: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_apps() {
        assert_eq!(app_of_host("hello.localhost:5000"), Some("hello"));
        assert_eq!(app_of_host("hello.example.com"), Some("hello"));
        assert_eq!(app_of_host("hello"), Some("hello"));
        assert_eq!(app_of_host("hello:80"), Some("hello"));
        assert_eq!(app_of_host(""), None);
    }

    #[test]
    fn request_ids_are_vetted() {
        assert!(good_request_id("abcdefghij0123456789"));
        assert!(!good_request_id("short"));
        assert!(!good_request_id("has spaces in it, not allowed here"));
        assert!(!good_request_id(&"a".repeat(201)));
    }
}
