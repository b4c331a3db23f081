//! HTTP/1.1 between the router and a dyno whose `$PORT` is in memory,
//! spoken inline by the task that has the client's request: the head is
//! written into the connection's pipe as one buffer, the request body's
//! frames follow as they come (framed by their `Content-Length`, else
//! chunked), and the answer's head is parsed from the bytes the dyno
//! wrote. Its body ([`AnswerBody`]) reads the pipe as the client's
//! connection asks for more, by `Content-Length`, chunked coding, or to
//! the close (RFC 9112 §6.3); no task sits between the two, and a
//! connection read to the end goes back to its dyno's pool from the
//! body's last poll.

mod answer;
mod request;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{Method, Response, StatusCode};
use hyper::body::Body;

use super::pool::Pool;
use crate::dyno::pipe::{MemStream, ReadEnd, WriteEnd};
pub use answer::{AnswerBody, Upgraded};
use answer::{Head, answer, parse_head};
use request::{BoxError, Pump, Pumped, encode_head};

/// An answer's head may be this long; a longer one is malformed (hyper's
/// client allows about as much).
const MAX_HEAD: usize = 256 * 1024;
/// A chunk-size line, with its extensions, may be this long.
const MAX_CHUNK_LINE: usize = 4096;

/// What went wrong between the router and the dyno.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The dyno closed the connection before a byte of an answer (`H13`).
    #[error("the dyno closed the connection without answering")]
    Closed,
    /// It closed inside its answer, or sent what is not HTTP/1.
    #[error("the dyno's answer is malformed: {0}")]
    Malformed(&'static str),
    /// The client's request body failed (it went away, or passed the
    /// router's limit).
    #[error("the request body: {0}")]
    Body(BoxError),
}

/// One keep-alive connection to a dyno.
pub struct Conn {
    rx: ReadEnd,
    /// Taken by a request body still being sent once the answer's head
    /// is in: the connection then serves no other request.
    tx: Option<WriteEnd>,
    /// What the dyno sent that is not read yet.
    cur: Bytes,
}

impl Conn {
    pub fn new(stream: MemStream) -> Self {
        let (rx, tx) = stream.into_halves();
        Conn {
            rx,
            tx: Some(tx),
            cur: Bytes::new(),
        }
    }

    /// Idle and still open both ways: it may carry a request.
    pub fn is_reusable(&self) -> bool {
        self.cur.is_empty() && self.rx.is_quiet() && self.tx.as_ref().is_some_and(|t| t.is_open())
    }

    /// Reads what the dyno sent next onto what is unread. `false` at the
    /// end of its stream.
    fn poll_more(&mut self, cx: &Context<'_>) -> Poll<bool> {
        match ready!(self.rx.poll_chunk(cx)) {
            Some(chunk) if self.cur.is_empty() => self.cur = chunk,
            Some(chunk) => {
                let mut joined = BytesMut::with_capacity(self.cur.len() + chunk.len());
                joined.extend_from_slice(&self.cur);
                joined.extend_from_slice(&chunk);
                self.cur = joined.freeze();
            }
            None => return Poll::Ready(false),
        }
        Poll::Ready(true)
    }

    /// The answer's head; interim (1xx) answers other than 101 are
    /// skipped.
    fn poll_head(&mut self, cx: &Context<'_>) -> Poll<Result<Head, WireError>> {
        loop {
            if !self.cur.is_empty() {
                if let Some((head, used)) = parse_head(&self.cur)? {
                    self.cur = self.cur.slice(used..);
                    if head.status.is_informational()
                        && head.status != StatusCode::SWITCHING_PROTOCOLS
                    {
                        continue;
                    }
                    return Poll::Ready(Ok(head));
                }
                if self.cur.len() > MAX_HEAD {
                    return Poll::Ready(Err(WireError::Malformed("its head is too long")));
                }
            }
            let had = !self.cur.is_empty();
            if !ready!(self.poll_more(cx)) {
                return Poll::Ready(Err(match had {
                    false => WireError::Closed,
                    true => WireError::Malformed("the connection closed inside its head"),
                }));
            }
        }
    }

    /// Takes at most `max` unread bytes, reading more if none are; `None`
    /// at the end of the dyno's stream.
    fn poll_take(&mut self, cx: &Context<'_>, max: usize) -> Poll<Option<Bytes>> {
        if self.cur.is_empty() && !ready!(self.poll_more(cx)) {
            return Poll::Ready(None);
        }
        let n = self.cur.len().min(max);
        Poll::Ready(Some(self.cur.split_to(n)))
    }

    /// One line (without its CRLF), reading until it is whole.
    fn poll_line(&mut self, cx: &Context<'_>) -> Poll<Result<Bytes, WireError>> {
        loop {
            if let Some(end) = self.cur.windows(2).position(|w| w == b"\r\n") {
                let line = self.cur.split_to(end);
                self.cur = self.cur.slice(2..);
                return Poll::Ready(Ok(line));
            }
            if self.cur.len() > MAX_CHUNK_LINE {
                return Poll::Ready(Err(WireError::Malformed("a chunk line is too long")));
            }
            if !ready!(self.poll_more(cx)) {
                return Poll::Ready(Err(WireError::Malformed(
                    "the connection closed inside a chunk",
                )));
            }
        }
    }
}

/// A request whose head went out and whose answer's head came back.
// Returned once per request, by value: boxing the answer would cost an
// allocation each time to save stack on the rare stale case.
#[allow(clippy::large_enum_variant)]
enum Exchanged<B> {
    Answer(Response<AnswerBody>),
    /// A connection that had served before was found closed before the
    /// request could be read, or closed on an idempotent bodiless request
    /// without a byte of answer (RFC 9110 §9.2.2 lets a proxy send that
    /// again): the request, with its body unsent, may go on another.
    Stale(Option<Pump<B>>),
}

/// Sends the request on `conn` and reads the answer's head. `pooled`
/// says the connection served before (it may have been closed since).
async fn exchange<B>(
    mut conn: Conn,
    pool: &Arc<Pool>,
    head: Bytes,
    method: &Method,
    pump: Option<Pump<B>>,
    pooled: bool,
) -> Result<Exchanged<B>, WireError>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let tx = conn.tx.as_ref().expect("an idle connection can write");
    if !tx.is_open() {
        return match pooled {
            true => Ok(Exchanged::Stale(pump)),
            false => Err(WireError::Closed),
        };
    }
    let may_retry = pooled && pump.is_none() && is_idempotent(method);
    tx.push(head);
    let mut pump = pump;
    let got = std::future::poll_fn(|cx| {
        if let Some(p) = pump.as_mut() {
            let tx = conn.tx.as_ref().expect("a connection sending a body");
            match p.poll(tx, cx) {
                Poll::Ready(Ok(Pumped::Sent)) => pump = None,
                Poll::Ready(Ok(Pumped::Refused)) => {
                    pump = None;
                    // Nothing more goes to a dyno that stopped reading.
                    drop(conn.tx.take());
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        conn.poll_head(cx)
    })
    .await;
    let head = match got {
        Ok(head) => head,
        Err(WireError::Closed) if may_retry => return Ok(Exchanged::Stale(None)),
        Err(e) => return Err(e),
    };
    if let Some(mut p) = pump {
        // The dyno answered before it had the whole body: the rest goes
        // on beside the answer, and the connection serves nothing after.
        if let Some(tx) = conn.tx.take() {
            tokio::spawn(async move {
                let _ = std::future::poll_fn(|cx| p.poll(&tx, cx)).await;
            });
        }
    }
    Ok(Exchanged::Answer(answer(conn, pool, head, method)))
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Sends `req` to the dyno on `conn`, an idle connection of its pool,
/// or on a new one from `open` (also when `conn` was found closed).
pub(super) async fn send<B, F, Fut, E>(
    pool: &Arc<Pool>,
    conn: Option<Conn>,
    open: F,
    req: http::Request<B>,
) -> Result<Response<AnswerBody>, SendFailed<E>>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Conn, E>>,
{
    let (parts, body) = req.into_parts();
    let (head, sending) = encode_head(&parts, &body);
    let mut pump = sending.map(|sending| Pump::new(body, sending));
    if let Some(conn) = conn {
        match exchange(conn, pool, head.clone(), &parts.method, pump, true).await {
            Ok(Exchanged::Answer(resp)) => return Ok(resp),
            Ok(Exchanged::Stale(unsent)) => pump = unsent,
            Err(e) => return Err(SendFailed::Wire(e)),
        }
    }
    let conn = open().await.map_err(SendFailed::Connect)?;
    match exchange(conn, pool, head, &parts.method, pump, false).await {
        Ok(Exchanged::Answer(resp)) => Ok(resp),
        Ok(Exchanged::Stale(_)) => Err(SendFailed::Wire(WireError::Closed)),
        Err(e) => Err(SendFailed::Wire(e)),
    }
}

/// Why [`send`] got no answer.
pub(super) enum SendFailed<E> {
    Connect(E),
    Wire(WireError),
}
