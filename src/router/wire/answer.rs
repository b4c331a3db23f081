//! A dyno's answer as the router reads it: its head parsed from the
//! pipe's bytes, its body framed as RFC 9112 §6.3 says, and after a 101
//! the connection itself.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};
use hyper::body::{Body, Frame, SizeHint};

use super::{Conn, WireError};
use crate::dyno::pipe::MemStream;
use crate::router::hop::connection_has;
use crate::router::pool::Pool;

/// Header fields an answer may carry (hyper's default).
const MAX_HEADERS: usize = 100;

/// An answer's head, parsed.
pub(super) struct Head {
    pub(super) status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

/// The head at the start of `buf` and its length, or `None` if more
/// bytes are needed. Header values share `buf`'s memory.
pub(super) fn parse_head(buf: &Bytes) -> Result<Option<(Head, usize)>, WireError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let used = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(WireError::Malformed("it has too many header fields"));
        }
        Err(_) => return Err(WireError::Malformed("it is not an HTTP/1 answer")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(WireError::Malformed("its status code is not one"))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for f in resp.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| WireError::Malformed("a header name is not one"))?;
        let value = HeaderValue::from_maybe_shared(buf.slice_ref(f.value))
            .map_err(|_| WireError::Malformed("a header value is not one"))?;
        headers.append(name, value);
    }
    Ok(Some((
        Head {
            status,
            version,
            headers,
        },
        used,
    )))
}

/// The answer, its body framed as RFC 9112 §6.3 says.
pub(super) fn answer(
    conn: Conn,
    pool: &Arc<Pool>,
    head: Head,
    method: &Method,
) -> Response<AnswerBody> {
    let Head {
        status,
        version,
        headers,
    } = head;
    let keep = match version {
        Version::HTTP_10 => connection_has(&headers, "keep-alive"),
        _ => !connection_has(&headers, "close"),
    };
    let (reading, upgrade) = if status == StatusCode::SWITCHING_PROTOCOLS {
        (Reading::Done, true)
    } else if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        (Reading::Done, false)
    } else if let Some(te) = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let chunked = te
            .to_str()
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        match chunked {
            true => (Reading::Chunked(Chunk::Size), false),
            false => (Reading::ToClose, false),
        }
    } else {
        match content_length(&headers) {
            Some(Ok(0)) => (Reading::Done, false),
            Some(Ok(n)) => (Reading::Length(n), false),
            Some(Err(())) => (Reading::Failed, false),
            None => (Reading::ToClose, false),
        }
    };
    let keep = keep && !matches!(reading, Reading::ToClose | Reading::Failed) && !upgrade;
    let mut body = AnswerBody {
        conn: Some(conn),
        pool: pool.clone(),
        reading,
        keep,
        upgrade,
    };
    if body.reading.is_done() {
        body.ended();
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    resp
}

/// The answer's `Content-Length`: `Err` if its values are not one number.
fn content_length(headers: &HeaderMap) -> Option<Result<u64, ()>> {
    let mut found: Option<u64> = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        // Bytes past ASCII are no number either (before, they hid the
        // header and the body was read to the close).
        let Ok(v) = v.to_str() else {
            return Some(Err(()));
        };
        for part in v.split(',').map(str::trim) {
            let n = match part.bytes().all(|b| b.is_ascii_digit()) {
                true => part.parse::<u64>().map_err(drop),
                false => Err(()),
            };
            match (found, n) {
                (Some(f), Ok(n)) if f != n => return Some(Err(())),
                (_, Ok(n)) => found = Some(n),
                (_, Err(())) => return Some(Err(())),
            }
        }
    }
    found.map(Ok)
}

/// How the rest of an answer's body is read.
enum Reading {
    Length(u64),
    Chunked(Chunk),
    ToClose,
    /// Its framing could not be read: the first poll fails.
    Failed,
    Done,
}

impl Reading {
    fn is_done(&self) -> bool {
        matches!(self, Reading::Done)
    }
}

enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This much of a chunk's data is left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line.
    Trailers(Option<HeaderMap>),
}

/// The body of a dyno's answer, read from its connection as it is polled.
/// Read to its end, the connection goes back to the dyno's pool (unless
/// the dyno said `Connection: close` or framed it by the close); dropped
/// before that, the connection closes.
pub struct AnswerBody {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    reading: Reading,
    keep: bool,
    /// A 101: the connection is the tunnel's to take.
    upgrade: bool,
}

impl AnswerBody {
    /// The whole body is read.
    fn ended(&mut self) {
        self.reading = Reading::Done;
        if let Some(conn) = self.conn.take_if(|_| self.keep) {
            self.pool.put(conn);
        }
    }

    /// The connection after a 101, with what the dyno sent after its head.
    pub fn take_upgrade(&mut self) -> Option<Upgraded> {
        if !self.upgrade {
            return None;
        }
        let conn = self.conn.take()?;
        let tx = conn.tx?;
        Some(Upgraded {
            early: conn.cur,
            stream: MemStream::from_halves(conn.rx, tx),
        })
    }

    fn poll_chunked(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WireError>>> {
        let conn = self
            .conn
            .as_mut()
            .expect("a body being read has its connection");
        loop {
            let Reading::Chunked(state) = &mut self.reading else {
                unreachable!("polled as chunked")
            };
            match state {
                Chunk::Size => {
                    let line = ready!(conn.poll_line(cx))?;
                    let size = chunk_size(&line)?;
                    *state = match size {
                        0 => Chunk::Trailers(None),
                        n => Chunk::Data(n),
                    };
                }
                Chunk::Trailers(fields) => {
                    let line = ready!(conn.poll_line(cx))?;
                    if line.is_empty() {
                        let trailers = fields.take();
                        self.ended();
                        return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                    }
                    let (name, value) = trailer_field(line)?;
                    fields.get_or_insert_default().append(name, value);
                }
                Chunk::Data(left) => {
                    let max = usize::try_from(*left).unwrap_or(usize::MAX);
                    let Some(data) = ready!(conn.poll_take(cx, max)) else {
                        return Poll::Ready(Some(Err(WireError::Malformed(
                            "the connection closed inside a chunk",
                        ))));
                    };
                    *left -= data.len() as u64;
                    if *left == 0 {
                        *state = Chunk::DataEnd;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Chunk::DataEnd => {
                    let line = ready!(conn.poll_line(cx))?;
                    if !line.is_empty() {
                        return Poll::Ready(Some(Err(WireError::Malformed(
                            "a chunk is longer than its size",
                        ))));
                    }
                    *state = Chunk::Size;
                }
            }
        }
    }
}

/// A chunk-size line's size (its extensions ignored).
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = hex.trim_ascii();
    if hex.is_empty() || hex.len() > 16 {
        return Err(WireError::Malformed("a chunk size is not one"));
    }
    let mut n = 0u64;
    for &b in hex {
        let d = (b as char)
            .to_digit(16)
            .ok_or(WireError::Malformed("a chunk size is not one"))?;
        n = n << 4 | u64::from(d);
    }
    Ok(n)
}

/// One trailer field's line, parsed.
fn trailer_field(line: Bytes) -> Result<(HeaderName, HeaderValue), WireError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(WireError::Malformed("a trailer field has no colon"))?;
    let name = HeaderName::from_bytes(&line[..colon])
        .map_err(|_| WireError::Malformed("a trailer name is not one"))?;
    let value = &line[colon + 1..];
    let value = HeaderValue::from_maybe_shared(line.slice_ref(value.trim_ascii()))
        .map_err(|_| WireError::Malformed("a trailer value is not one"))?;
    Ok((name, value))
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = WireError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WireError>>> {
        let this = &mut *self;
        match &mut this.reading {
            Reading::Done => Poll::Ready(None),
            Reading::Failed => {
                this.reading = Reading::Done;
                this.conn = None;
                Poll::Ready(Some(Err(WireError::Malformed(
                    "its Content-Length is not one number",
                ))))
            }
            Reading::Length(left) => {
                let max = usize::try_from(*left).unwrap_or(usize::MAX);
                let conn = this
                    .conn
                    .as_mut()
                    .expect("a body being read has its connection");
                match ready!(conn.poll_take(cx, max)) {
                    Some(data) => {
                        *left -= data.len() as u64;
                        if *left == 0 {
                            this.ended();
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    None => {
                        this.reading = Reading::Done;
                        this.conn = None;
                        Poll::Ready(Some(Err(WireError::Malformed(
                            "the connection closed before its Content-Length",
                        ))))
                    }
                }
            }
            Reading::ToClose => {
                let conn = this
                    .conn
                    .as_mut()
                    .expect("a body being read has its connection");
                match ready!(conn.poll_take(cx, usize::MAX)) {
                    Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                    None => {
                        this.ended();
                        Poll::Ready(None)
                    }
                }
            }
            Reading::Chunked(_) => {
                let got = ready!(this.poll_chunked(cx));
                if matches!(got, Some(Err(_))) {
                    this.reading = Reading::Done;
                    this.conn = None;
                }
                Poll::Ready(got)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.reading {
            Reading::Length(n) => SizeHint::with_exact(n),
            Reading::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// A connection switched to another protocol after a 101.
pub struct Upgraded {
    /// What the dyno sent right after its head: the client's first.
    pub early: Bytes,
    pub stream: MemStream,
}
