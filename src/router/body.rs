//! The request body on its way to the dyno, cut off at the router's limit.
//! `http_body_util::Limited` does the same but only says so inside an
//! error that reaches the router wrapped in hyper's; this one also raises
//! a flag, so a chunked body that grows past the limit is answered 413
//! (the client's fault), not `H13` (the app's).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

#[derive(Debug, thiserror::Error)]
#[error("request body over the router's limit of {0} bytes")]
pub struct TooLarge(u64);

pub struct Capped {
    inner: Incoming,
    limit: u64,
    left: u64,
    over: Arc<AtomicBool>,
}

impl Capped {
    /// The body, and the flag it raises when it passes `limit` bytes.
    pub fn new(inner: Incoming, limit: u64) -> (Self, Arc<AtomicBool>) {
        let over = Arc::new(AtomicBool::new(false));
        let body = Capped {
            inner,
            limit,
            left: limit,
            over: over.clone(),
        };
        (body, over)
    }
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            if n > self.left {
                self.over.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(TooLarge(self.limit).into())));
            }
            self.left -= n;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
