//! A dyno's answer on its way to the client. Its bytes are counted, its
//! request stays counted in flight until the last byte (so draining and
//! least-connections see a streaming dyno as busy), a stream that sends
//! nothing for the idle timeout is cut (`H15`), and an answer without a
//! `Content-Length` (chunked, or ended by close) gets its router line when
//! it ends, with the bytes it really sent.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::time::Sleep;

use http::{Response, header};
use http_body_util::BodyExt;

use super::log::LineBits;
use super::table;
use super::{Backend, Router};

#[derive(Debug, thiserror::Error)]
#[error("the dyno sent nothing for {0:?} (H15 idle connection)")]
pub struct Idle(Duration);

/// What the router line of a streamed answer needs.
pub(super) struct Line {
    pub router: Arc<Router>,
    pub bits: LineBits,
    pub dyno: String,
    pub connect: u128,
    pub status: u16,
    pub started: Instant,
    /// Written already, at the answer's head (a sized answer).
    pub written: bool,
}

/// `B` is the dyno's answer: hyper's from a connection, or a proxy
/// dyno's handler's own.
pub(super) struct Streamed<B> {
    inner: B,
    sent: u64,
    idle_after: Duration,
    /// Armed the first time the dyno has nothing ready: most answers are
    /// whole at the first poll and never need a timer.
    idle: Option<Pin<Box<Sleep>>>,
    line: Option<Line>,
    _inflight: table::Request,
}

impl<B> Streamed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub(super) fn new(
        inner: B,
        idle_after: Duration,
        line: Line,
        inflight: table::Request,
    ) -> Self {
        Streamed {
            inner,
            sent: 0,
            idle_after,
            idle: None,
            line: Some(line),
            _inflight: inflight,
        }
    }
}

impl<B> Streamed<B> {
    /// Writes the line once: `H15` when the stream went idle, else the
    /// ordinary line if it was not written at the head.
    fn finish(&mut self, idle: bool) {
        let Some(l) = self.line.take() else { return };
        if idle {
            l.router.log_line(
                &l.bits,
                "at=error code=H15 desc=\"Idle connection\"",
                &l.dyno,
                l.connect,
                503,
                self.sent,
                l.started,
            );
        } else if !l.written {
            l.router.log_line(
                &l.bits, "at=info", &l.dyno, l.connect, l.status, self.sent, l.started,
            );
        }
    }
}

impl<B> Body for Streamed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                let after = self.idle_after;
                if let Some(idle) = self.idle.as_mut() {
                    idle.as_mut().reset(tokio::time::Instant::now() + after);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.finish(false);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.finish(false);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let after = self.idle_after;
                let idle = self
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                if idle.as_mut().poll(cx).is_ready() {
                    self.finish(true);
                    return Poll::Ready(Some(Err(Box::new(Idle(after)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Streamed<B> {
    /// The client went away (or hyper is done with a sized body it never
    /// polled to the end): the line says what was sent.
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl Router {
    /// The dyno's answer on its way back, with its router line.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer<B>(
        self: &Arc<Self>,
        resp: Response<B>,
        line: LineBits,
        backend: &Backend,
        connect: u128,
        started: Instant,
        inflight: table::Request,
    ) -> Response<super::Body>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let status = resp.status();
        // A sized answer is logged now, with its length; a streamed one
        // when it ends, with what it sent (see `stream`).
        let sized = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(bytes) = sized {
            self.log_line(
                &line,
                "at=info",
                &backend.dyno,
                connect,
                status.as_u16(),
                bytes,
                started,
            );
        }
        let line = Line {
            router: self.clone(),
            bits: line,
            dyno: backend.dyno.clone(),
            connect,
            status: status.as_u16(),
            started,
            written: sized.is_some(),
        };
        let idle = self.cfg.idle_timeout;
        resp.map(|b| Streamed::new(b, idle, line, inflight).boxed_unsync())
    }
}
