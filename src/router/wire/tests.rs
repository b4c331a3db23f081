//! The router's HTTP/1 client over real in-memory connections: a scripted
//! guest end writes answers byte by byte or whole, as apps do, and reads
//! what the router sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError};

use super::{AnswerBody, Conn, SendFailed, WireError};
use crate::dyno::door::MemPort;
use crate::dyno::pipe::{PipeReader, PipeWriter};
use crate::router::pool::Pool;

const DEADLINE: Duration = Duration::from_secs(10);

/// The guest's end of one accepted connection.
struct Guest {
    input: PipeReader,
    output: PipeWriter,
}

impl Guest {
    async fn accept(port: &MemPort) -> Guest {
        let conn = tokio::time::timeout(DEADLINE, async {
            loop {
                std::future::poll_fn(|cx| port.poll_acceptable(cx)).await;
                if let Some(c) = port.try_accept() {
                    return c;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the router connects");
        Guest {
            input: PipeReader(conn.rx),
            output: PipeWriter(conn.tx),
        }
    }

    /// Writes `bytes` in pieces of `step` bytes, each its own pipe chunk.
    fn write(&mut self, bytes: &[u8], step: usize) {
        for piece in bytes.chunks(step.max(1)) {
            self.output
                .write(Bytes::copy_from_slice(piece))
                .expect("the router reads");
        }
    }

    /// Reads until `want` bytes came, or the router closed.
    async fn read(&mut self, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        tokio::time::timeout(DEADLINE, async {
            while got.len() < want {
                self.input.ready().await;
                match self.input.read(want - got.len()) {
                    Ok(b) => got.extend_from_slice(&b),
                    Err(StreamError::Closed) => break,
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
        .await
        .expect("the router writes");
        got
    }

    /// Reads one bodiless request's head.
    async fn read_head(&mut self) -> String {
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n\r\n") {
            let more = self.read(1).await;
            assert!(!more.is_empty(), "the router closed inside a head");
            got.extend_from_slice(&more);
        }
        String::from_utf8(got).unwrap()
    }

    /// Reads everything until the router closes its side.
    async fn read_to_close(&mut self) -> String {
        String::from_utf8(self.read(usize::MAX).await).unwrap()
    }
}

fn port() -> Arc<MemPort> {
    let port = MemPort::new(5000);
    port.listen(16);
    port
}

type Sent = Result<http::Response<AnswerBody>, WireError>;

/// Starts sending `req` (on a pooled connection if there is one, else
/// on `conn`'s or a new one) and resolves to its answer's head.
fn send<B>(pool: &Arc<Pool>, port: &Arc<MemPort>, req: Request<B>) -> impl Future<Output = Sent>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = pool.checkout();
    send_on(pool, port, conn, req)
}

fn send_on<B>(
    pool: &Arc<Pool>,
    port: &Arc<MemPort>,
    conn: Option<Conn>,
    req: Request<B>,
) -> impl Future<Output = Sent>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (pool, port) = (pool.clone(), port.clone());
    let task = tokio::spawn(async move {
        let open = || async { port.connect().await.map(Conn::new) };
        match tokio::time::timeout(DEADLINE, super::send(&pool, conn, open, req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(SendFailed::Wire(e))) => Err(e),
            Ok(Err(SendFailed::Connect(e))) => panic!("connect: {e}"),
            Err(_) => panic!("no answer within {DEADLINE:?}"),
        }
    });
    async move { task.await.expect("the send task") }
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "app.localhost")
        .body(Empty::new())
        .unwrap()
}

/// The body's data and trailers, read to the end.
async fn read_body(
    resp: http::Response<AnswerBody>,
) -> Result<(String, Option<http::HeaderMap>), WireError> {
    let collected = tokio::time::timeout(DEADLINE, resp.into_body().collect())
        .await
        .expect("the body ends")?;
    let trailers = collected.trailers().cloned();
    Ok((
        String::from_utf8(collected.to_bytes().to_vec()).unwrap(),
        trailers,
    ))
}

fn idle(pool: &Pool) -> usize {
    pool.idle.lock().unwrap().len()
}

const SIZED: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\nhello world";
const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n";

#[tokio::test]
async fn sized_and_chunked_answers_read_whole_whatever_pieces_they_come_in() {
    for (raw, trailer) in [(SIZED, false), (CHUNKED, true)] {
        for step in [1, 2, 3, 7, 64, raw.len()] {
            let (port, pool) = (port(), Arc::new(Pool::default()));
            let resp = send(&pool, &port, get("/"));
            let mut guest = Guest::accept(&port).await;
            guest.write(raw, step);
            let resp = resp.await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let (body, trailers) = read_body(resp).await.unwrap();
            assert_eq!(body, "hello world", "pieces of {step}");
            assert_eq!(
                trailers.and_then(|t| t.get("x-checksum").cloned()),
                trailer.then(|| http::HeaderValue::from_static("abc")),
                "pieces of {step}"
            );
            assert_eq!(
                idle(&pool),
                1,
                "read to its end, the connection is pooled (pieces of {step})"
            );
        }
    }
}

/// Sends on a pooled connection once the guest answered `first`.
#[tokio::test]
async fn a_pooled_connection_carries_the_next_request_after_bodiless_answers() {
    let (port, pool) = (port(), Arc::new(Pool::default()));
    let mut guest = Guest::accept_after(
        &pool,
        &port,
        Request::head("/a")
            .header("host", "x")
            .body(Empty::<Bytes>::new())
            .unwrap(),
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
    )
    .await;
    assert_eq!(
        idle(&pool),
        1,
        "a HEAD answer has no body, whatever its length says"
    );
    for (raw, status) in [
        (&b"HTTP/1.1 204 No Content\r\n\r\n"[..], 204),
        (
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
            304,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            200,
        ),
    ] {
        let pending = send(&pool, &port, get("/next"));
        guest.write(raw, 5);
        let resp = pending.await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
        read_body(resp).await.unwrap();
        assert_eq!(
            idle(&pool),
            1,
            "status {status}: the one connection, back in the pool"
        );
    }
    assert!(
        port.try_accept().is_none(),
        "every request went on the first connection"
    );
    drop(pool);
    let sent = guest.read_to_close().await;
    assert_eq!(sent.matches("GET /next HTTP/1.1\r\n").count(), 3, "{sent}");
}

impl Guest {
    /// Sends `req`, accepts its connection, answers `raw` and reads the
    /// answer to its end.
    async fn accept_after<B>(
        pool: &Arc<Pool>,
        port: &Arc<MemPort>,
        req: Request<B>,
        raw: &[u8],
    ) -> Guest
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let pending = send(pool, port, req);
        let mut guest = Guest::accept(port).await;
        guest.read_head().await;
        guest.write(raw, raw.len());
        read_body(pending.await.unwrap()).await.unwrap();
        guest
    }
}

#[tokio::test]
async fn answers_that_end_their_connection_are_not_pooled() {
    for raw in [
        &b"HTTP/1.1 200 OK\r\n\r\nread to the close"[..],
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 17\r\n\r\nread to the close",
        b"HTTP/1.0 200 OK\r\ncontent-length: 17\r\n\r\nread to the close",
    ] {
        let (port, pool) = (port(), Arc::new(Pool::default()));
        let pending = send(&pool, &port, get("/"));
        let mut guest = Guest::accept(&port).await;
        guest.write(raw, 4);
        let resp = pending.await.unwrap();
        drop(guest);
        assert_eq!(read_body(resp).await.unwrap().0, "read to the close");
        assert_eq!(idle(&pool), 0, "{}", String::from_utf8_lossy(raw));
    }
}

#[tokio::test]
async fn a_keep_alive_http_1_0_answer_is_pooled() {
    let (port, pool) = (port(), Arc::new(Pool::default()));
    Guest::accept_after(
        &pool,
        &port,
        get("/"),
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\nx",
    )
    .await;
    assert_eq!(idle(&pool), 1);
}

#[tokio::test]
async fn malformed_answers_fail_and_close_their_connection() {
    for (raw, closes) in [
        (
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1x\r\n\r\nx"[..],
            false,
        ),
        (
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\xe9\r\n\r\nx"[..],
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nxyz",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            true,
        ),
    ] {
        let (port, pool) = (port(), Arc::new(Pool::default()));
        let pending = send(&pool, &port, get("/"));
        let mut guest = Guest::accept(&port).await;
        guest.write(raw, raw.len());
        if closes {
            drop(guest.output);
        }
        let resp = pending.await.unwrap();
        assert!(
            matches!(read_body(resp).await, Err(WireError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(idle(&pool), 0);
    }
}

#[tokio::test]
async fn a_connection_closed_before_an_answer_or_inside_its_head_is_an_error() {
    for (raw, want_closed) in [
        (&b""[..], true),
        (b"HTTP/1.1 200 OK\r\ncontent-le", false),
        (b"SSH-2.0-x\r\n\r\n", false),
    ] {
        let (port, pool) = (port(), Arc::new(Pool::default()));
        let pending = send(&pool, &port, get("/"));
        let mut guest = Guest::accept(&port).await;
        guest.write(raw, raw.len());
        drop(guest);
        match pending.await {
            Err(WireError::Closed) => assert!(want_closed),
            Err(WireError::Malformed(_)) => assert!(!want_closed),
            other => panic!("{:?}", other.map(|r| r.status())),
        }
    }
}

#[tokio::test]
async fn request_bodies_go_framed_by_their_length_or_chunked() {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-sum", "7".parse().unwrap());
    let cases: Vec<(
        Request<http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>>,
        &str,
    )> = vec![
        (
            Request::post("/empty")
                .header("host", "h")
                .body(Empty::new().boxed_unsync())
                .unwrap(),
            "POST /empty HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n",
        ),
        (
            Request::put("/sized")
                .header("host", "h")
                .header("content-length", "5")
                .body(Full::new(Bytes::from_static(b"12345")).boxed_unsync())
                .unwrap(),
            "PUT /sized HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\n12345",
        ),
        (
            Request::post("/known")
                .header("host", "h")
                .body(Full::new(Bytes::from_static(b"abc")).boxed_unsync())
                .unwrap(),
            "POST /known HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc",
        ),
        (
            Request::post("/stream")
                .header("host", "h")
                .body(
                    // No length known ahead: it goes chunked.
                    StreamBody::new(futures::stream::iter(
                        [
                            Frame::data(Bytes::from_static(b"hello ")),
                            Frame::data(Bytes::from_static(b"chunked world")),
                            Frame::trailers(trailers),
                        ]
                        .map(Ok),
                    ))
                    .boxed_unsync(),
                )
                .unwrap(),
            "POST /stream HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\nd\r\nchunked world\r\n0\r\nx-sum: 7\r\n\r\n",
        ),
    ];
    for (req, want) in cases {
        let (port, pool) = (port(), Arc::new(Pool::default()));
        let pending = send(&pool, &port, req);
        let mut guest = Guest::accept(&port).await;
        let sent = guest.read(want.len()).await;
        assert_eq!(String::from_utf8(sent).unwrap(), want);
        guest.write(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", 64);
        assert_eq!(pending.await.unwrap().status(), StatusCode::CREATED);
        assert_eq!(idle(&pool), 1);
    }
}

#[tokio::test]
async fn a_request_finding_its_pooled_connection_closed_goes_on_a_new_one() {
    // The app closed its idle connection: found closed at checkout.
    let (port, pool) = (port(), Arc::new(Pool::default()));
    let guest = Guest::accept_after(&pool, &port, get("/"), SIZED).await;
    drop(guest);
    assert!(pool.checkout().is_none(), "a closed connection is not lent");
    // It closed it as the request went out: the request goes on a new
    // connection, body and all, none of it having been read.
    let guest = Guest::accept_after(&pool, &port, get("/"), SIZED).await;
    let conn = pool.checkout().expect("the open connection");
    drop(guest);
    let post = Request::post("/x")
        .header("host", "h")
        .body(Full::new(Bytes::from_static(b"abc")))
        .unwrap();
    let pending = send_on(&pool, &port, Some(conn), post);
    let mut fresh = Guest::accept(&port).await;
    let want = "POST /x HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc";
    assert_eq!(
        String::from_utf8(fresh.read(want.len()).await).unwrap(),
        want
    );
    fresh.write(SIZED, 9);
    assert_eq!(
        read_body(pending.await.unwrap()).await.unwrap().0,
        "hello world"
    );
}

#[tokio::test]
async fn an_idempotent_bodiless_request_closed_on_unanswered_goes_again_and_a_post_does_not() {
    let (port, pool) = (port(), Arc::new(Pool::default()));
    let guest = Guest::accept_after(&pool, &port, get("/"), SIZED).await;
    let pending = send(&pool, &port, get("/x"));
    let mut guest = guest;
    assert!(guest.read_head().await.starts_with("GET /x "));
    drop(guest);
    let mut fresh = Guest::accept(&port).await;
    fresh.write(SIZED, 100);
    assert_eq!(
        read_body(pending.await.unwrap()).await.unwrap().0,
        "hello world"
    );
    let post = Request::post("/x")
        .header("host", "h")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let pending = send(&pool, &port, post);
    fresh.read_head().await;
    assert!(fresh.read_head().await.starts_with("POST /x "));
    drop(fresh);
    assert!(matches!(pending.await, Err(WireError::Closed)));
    assert!(port.try_accept().is_none(), "the POST went once");
}

#[tokio::test]
async fn after_a_101_the_connection_is_the_tunnels_with_what_came_after_the_head() {
    let (port, pool) = (port(), Arc::new(Pool::default()));
    let pending = send(&pool, &port, get("/ws"));
    let mut guest = Guest::accept(&port).await;
    guest.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nearly", 200);
    let mut resp = pending.await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let super::Upgraded { early, mut stream } = resp
        .body_mut()
        .take_upgrade()
        .expect("a 101 hands over its connection");
    guest.write(b" and late", 100);
    let mut late = vec![0u8; 9];
    stream.read_exact(&mut late).await.unwrap();
    assert_eq!([&early[..], &late[..]].concat(), b"early and late");
    stream.write_all(b"ping").await.unwrap();
    let want = "GET /ws HTTP/1.1\r\nhost: app.localhost\r\n\r\nping";
    assert_eq!(
        String::from_utf8(guest.read(want.len()).await).unwrap(),
        want
    );
    assert_eq!(idle(&pool), 0);
}
