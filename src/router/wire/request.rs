//! The request as the router writes it to a dyno: its head in one
//! buffer, its body framed by its `Content-Length` or chunked.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, header};
use hyper::body::Body;

use super::WireError;
use crate::dyno::pipe::WriteEnd;

/// What a request body's errors become.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a request body goes on the wire.
#[derive(Clone, Copy)]
pub(super) enum Sending {
    Length(u64),
    Chunked,
}

/// The request's head, as bytes, and how its body (if any) is framed.
pub(super) fn encode_head<B: Body>(
    parts: &http::request::Parts,
    body: &B,
) -> (Bytes, Option<Sending>) {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let size: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let mut out = BytesMut::with_capacity(parts.method.as_str().len() + target.len() + size + 64);
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (k, v) in &parts.headers {
        out.put_slice(k.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let sending = match declared {
        Some(0) => None,
        Some(n) => Some(Sending::Length(n)),
        None if body.is_end_stream() => {
            // As hyper's client: a method that carries a body says it is
            // empty.
            if !matches!(
                parts.method,
                Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
            ) {
                out.put_slice(b"content-length: 0\r\n");
            }
            None
        }
        None => match body.size_hint().exact() {
            Some(n) => {
                out.put_slice(b"content-length: ");
                out.put_slice(n.to_string().as_bytes());
                out.put_slice(b"\r\n");
                (n > 0).then_some(Sending::Length(n))
            }
            None => {
                out.put_slice(b"transfer-encoding: chunked\r\n");
                Some(Sending::Chunked)
            }
        },
    };
    out.put_slice(b"\r\n");
    (out.freeze(), sending)
}

/// A request body on its way into the pipe, framed.
pub(super) struct Pump<B> {
    body: B,
    sending: Sending,
    /// Framed bytes waiting for room in the pipe.
    pending: Bytes,
    done: bool,
}

pub(super) enum Pumped {
    /// All of it is in the pipe.
    Sent,
    /// The dyno stopped reading (it may still answer, say with a 413).
    Refused,
}

impl<B> Pump<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    pub(super) fn new(body: B, sending: Sending) -> Self {
        Pump {
            body,
            sending,
            pending: Bytes::new(),
            done: false,
        }
    }

    pub(super) fn poll(
        &mut self,
        tx: &WriteEnd,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Pumped, WireError>> {
        loop {
            if !self.pending.is_empty() {
                let room = match ready!(tx.poll_room(cx)) {
                    Ok(n) => n,
                    Err(_) => return Poll::Ready(Ok(Pumped::Refused)),
                };
                let n = room.min(self.pending.len());
                tx.push(self.pending.split_to(n));
                continue;
            }
            if self.done {
                return Poll::Ready(Ok(Pumped::Sent));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) => self.frame_data(data)?,
                    // Trailers go with the last chunk of a chunked body.
                    Err(frame) => {
                        if let (Sending::Chunked, Ok(trailers)) =
                            (self.sending, frame.into_trailers())
                        {
                            self.finish(Some(&trailers))?;
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Err(WireError::Body(e.into()))),
                None => self.finish(None)?,
            }
        }
    }

    fn frame_data(&mut self, data: Bytes) -> Result<(), WireError> {
        match &mut self.sending {
            Sending::Length(left) => {
                if data.len() as u64 > *left {
                    return Err(WireError::Body("more body than its Content-Length".into()));
                }
                *left -= data.len() as u64;
                self.pending = data;
            }
            Sending::Chunked => {
                let mut out = BytesMut::with_capacity(data.len() + 20);
                out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.put_slice(&data);
                out.put_slice(b"\r\n");
                self.pending = out.freeze();
            }
        }
        Ok(())
    }

    fn finish(&mut self, trailers: Option<&HeaderMap>) -> Result<(), WireError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        match self.sending {
            Sending::Length(0) => Ok(()),
            Sending::Length(_) => Err(WireError::Body("less body than its Content-Length".into())),
            Sending::Chunked => {
                let mut out = BytesMut::from(&b"0\r\n"[..]);
                for (k, v) in trailers.into_iter().flatten() {
                    out.put_slice(k.as_str().as_bytes());
                    out.put_slice(b": ");
                    out.put_slice(v.as_bytes());
                    out.put_slice(b"\r\n");
                }
                out.put_slice(b"\r\n");
                self.pending = out.freeze();
                Ok(())
            }
        }
    }
}
