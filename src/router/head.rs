//! What hyper does not tell the router about a request's framing. When a
//! request carries both `Content-Length` and `Transfer-Encoding`, hyper 1
//! drops `Content-Length` from the parsed headers (and closes after the
//! answer), so the handler cannot see the conflict RFC 9112 §6.1 says to
//! refuse. [`Sniff`] sits between the socket and hyper: it follows the raw
//! bytes of the connection (each head, then the body by its framing, to
//! find the next head) and counts the heads it found clean. The handler
//! numbers the requests hyper gives it and refuses any whose head was not
//! counted: the one with both framings, and anything after a point the
//! scanner could not follow (hyper rejects such heads itself, or the
//! connection stopped being HTTP after an upgrade).
//!
//! Cost: one pass over head bytes with no copying beyond the first
//! [`LINE_KEEP`] bytes of a line, and none over body bytes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of a line kept for a look at it: header names and the values of
/// the framing headers fit (a longer framing line stops the scan).
const LINE_KEEP: usize = 256;

/// What the scanner has found on one connection; shared with the handler.
#[derive(Default)]
pub struct Framing {
    /// Heads read and found clean; head `i` (from 0) is clean iff `i <`
    /// this. It stops growing at the first head that is not.
    clean: AtomicU64,
    /// The head that stopped the count had both framings.
    both: AtomicBool,
    /// Requests the handler has taken (its own count).
    taken: AtomicU64,
}

/// The length of a request target as it was sent (without the string).
pub fn uri_len(uri: &http::Uri) -> usize {
    let origin = uri.path_and_query().map_or(0, |p| p.as_str().len());
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => s.len() + 3 + a.as_str().len() + origin,
        (None, Some(a)) => a.as_str().len() + origin,
        _ => origin.max(1),
    }
}

/// Why the handler must refuse a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Content-Length` and `Transfer-Encoding` together.
    BothFramings,
    /// A head the scanner could not follow: not one hyper would accept
    /// either, or bytes after the connection switched protocols.
    Unreadable,
}

impl Framing {
    /// Called once per request, in order: whether its head was clean.
    pub fn next_request(&self) -> Result<(), Refusal> {
        let i = self.taken.fetch_add(1, Ordering::Relaxed);
        if i < self.clean.load(Ordering::Acquire) {
            Ok(())
        } else if self.both.load(Ordering::Acquire) {
            Err(Refusal::BothFramings)
        } else {
            Err(Refusal::Unreadable)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Stopped,
}

#[derive(Default)]
struct HeadFacts {
    lines: usize,
    bytes: usize,
    content_length: Option<u64>,
    bad_length: bool,
    transfer_encoding: bool,
    chunked: bool,
    upgrade: bool,
}

/// The scanner: feed it every byte read from the client, in order.
pub struct HeadScan {
    state: State,
    line: Vec<u8>,
    line_len: usize,
    head: HeadFacts,
    max_head: usize,
    framing: Arc<Framing>,
}

impl HeadScan {
    /// `max_head` is the most head bytes hyper buffers; a longer head is
    /// one hyper refuses, and the scan stops there.
    pub fn new(max_head: usize, framing: Arc<Framing>) -> Self {
        HeadScan {
            state: State::Head,
            line: Vec::with_capacity(64),
            line_len: 0,
            head: HeadFacts::default(),
            max_head,
            framing,
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Stopped => return,
                State::Body(n) | State::ChunkData(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                }
                _ => {
                    let (part, rest, done) = match bytes.iter().position(|&b| b == b'\n') {
                        Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                        None => (bytes, &[][..], false),
                    };
                    bytes = rest;
                    let room = LINE_KEEP.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&part[..part.len().min(room)]);
                    self.line_len += part.len() + done as usize;
                    if self.state == State::Head {
                        self.head.bytes += part.len() + done as usize;
                        if self.head.bytes > self.max_head {
                            self.stop(false);
                            return;
                        }
                    } else if self.line_len > self.max_head {
                        self.stop(false);
                        return;
                    }
                    if done {
                        if self.line.last() == Some(&b'\r') {
                            self.line.pop();
                            self.line_len -= 1;
                        }
                        self.line_done();
                        self.line.clear();
                        self.line_len = 0;
                    }
                }
            }
        }
    }

    fn stop(&mut self, both: bool) {
        if both {
            self.framing.both.store(true, Ordering::Release);
        }
        self.state = State::Stopped;
    }

    fn line_done(&mut self) {
        let truncated = self.line_len - 1 > self.line.len();
        match self.state {
            State::Head if self.line.is_empty() => {
                // Empty lines before a request line are skipped (so does
                // httparse); after one, the head ends.
                if self.head.lines > 0 {
                    self.end_head();
                } else {
                    self.head.bytes = 0;
                }
            }
            State::Head if self.head.lines == 0 => {
                // CONNECT turns the connection into a tunnel in hyper.
                self.head.upgrade = self.line.starts_with(b"CONNECT ");
                self.head.lines = 1;
            }
            State::Head => {
                self.head.lines += 1;
                let Some(colon) = self.line.iter().position(|&b| b == b':') else {
                    return;
                };
                let (name, value) = (&self.line[..colon], trim(&self.line[colon + 1..]));
                if name.eq_ignore_ascii_case(b"content-length") {
                    let len = parse_digits(value).filter(|_| !truncated);
                    match (len, self.head.content_length) {
                        (Some(n), None) => self.head.content_length = Some(n),
                        (Some(n), Some(m)) if n == m => {}
                        _ => self.head.bad_length = true,
                    }
                } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    self.head.transfer_encoding = true;
                    let last = value.rsplit(|&b| b == b',').next().map(trim);
                    self.head.chunked =
                        !truncated && last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
                } else if name.eq_ignore_ascii_case(b"upgrade") {
                    self.head.upgrade = true;
                }
            }
            State::ChunkSize => {
                let size = self
                    .line
                    .split(|&b| b == b';' || b == b' ' || b == b'\t')
                    .next()
                    .and_then(parse_hex);
                match size {
                    Some(0) => self.state = State::Trailers,
                    Some(n) => self.state = State::ChunkData(n),
                    None => self.stop(false),
                }
            }
            State::ChunkEnd => self.state = State::ChunkSize,
            State::Trailers if self.line.is_empty() => self.next_head(),
            _ => {}
        }
    }

    fn end_head(&mut self) {
        let h = &self.head;
        if h.transfer_encoding && h.content_length.is_some() {
            return self.stop(true);
        }
        if h.bad_length || (h.transfer_encoding && !h.chunked) {
            // hyper answers these 400 itself and closes.
            return self.stop(false);
        }
        self.framing.clean.fetch_add(1, Ordering::Release);
        let next = if h.upgrade {
            State::Stopped
        } else if h.transfer_encoding {
            State::ChunkSize
        } else {
            match h.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        };
        self.next_head();
        self.state = next;
    }

    fn next_head(&mut self) {
        self.head = HeadFacts::default();
        self.state = State::Head;
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

/// A client socket whose reads pass through a [`HeadScan`] on their way to
/// hyper. Writes are untouched.
pub struct Sniff<T> {
    io: T,
    scan: HeadScan,
}

impl<T> Sniff<T> {
    pub fn new(io: T, scan: HeadScan) -> Self {
        Sniff { io, scan }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniff<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.scan.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniff<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` in pieces of `step` and answers each request in turn.
    fn verdicts(bytes: &[u8], step: usize, requests: usize) -> Vec<Result<(), Refusal>> {
        let framing = Arc::new(Framing::default());
        let mut scan = HeadScan::new(16 * 1024, framing.clone());
        for piece in bytes.chunks(step) {
            scan.feed(piece);
        }
        (0..requests).map(|_| framing.next_request()).collect()
    }

    fn each_step(bytes: &[u8], requests: usize, want: &[Result<(), Refusal>]) {
        for step in [1, 2, 3, 7, 64, bytes.len()] {
            assert_eq!(verdicts(bytes, step, requests), want, "step {step}");
        }
    }

    #[test]
    fn pipelined_requests_with_bodies_are_followed() {
        let bytes = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\
            POST /x HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n\r\nhello\
            POST /y HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n\
            5;ext=1\r\nGET /\r\n0\r\nX-Trailer: 1\r\n\r\n\
            GET /z HTTP/1.1\r\nHost: a\r\n\r\n";
        each_step(bytes, 4, &[Ok(()), Ok(()), Ok(()), Ok(())]);
    }

    #[test]
    fn both_framings_are_caught_in_either_order() {
        for head in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING:  gzip, chunked \r\nContent-Length:0\r\n\r\n",
        ] {
            let bytes = format!(
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n{head}0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
            );
            each_step(
                bytes.as_bytes(),
                3,
                &[
                    Ok(()),
                    Err(Refusal::BothFramings),
                    Err(Refusal::BothFramings),
                ],
            );
        }
    }

    #[test]
    fn a_body_that_looks_like_a_head_is_only_a_body() {
        let inner = "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let bytes = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{inner}GET / HTTP/1.1\r\n\r\n",
            inner.len()
        );
        each_step(bytes.as_bytes(), 2, &[Ok(()), Ok(())]);
    }

    #[test]
    fn what_hyper_refuses_stops_the_count() {
        let bad = [
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ];
        for head in bad {
            let bytes = format!("{head}GET / HTTP/1.1\r\n\r\n");
            let got = verdicts(bytes.as_bytes(), 5, 1);
            let want = if head.ends_with("zz\r\n") {
                Ok(())
            } else {
                Err(Refusal::Unreadable)
            };
            assert_eq!(got, [want], "{head:?}");
            assert_eq!(
                verdicts(bytes.as_bytes(), 5, 2)[1],
                Err(Refusal::Unreadable)
            );
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        assert_eq!(
            verdicts(huge.as_bytes(), 4096, 1),
            [Err(Refusal::Unreadable)]
        );
    }

    #[test]
    fn nothing_is_read_as_http_after_an_upgrade() {
        let bytes = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\
            GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        each_step(bytes, 2, &[Ok(()), Err(Refusal::Unreadable)]);
    }
}
