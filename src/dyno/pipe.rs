//! One in-memory connection between the router and a dyno: two [`Pipe`]s,
//! one each way, each holding at most [`PIPE_BYTES`]. A writer finding its
//! pipe full waits for the reader (backpressure); closing the write side
//! of one is a half-close: the reader sees the end of the stream once it
//! has read what was sent. The router's end is a [`MemStream`] (tokio's
//! `AsyncRead`/`AsyncWrite`, for hyper), the guest's a [`PipeReader`] and
//! a [`PipeWriter`] (wasi:io streams).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// Bytes one direction of a connection holds before its writer waits.
pub const PIPE_BYTES: usize = 64 * 1024;

/// One direction of an in-memory connection.
#[derive(Default)]
pub struct Pipe {
    state: Mutex<PipeState>,
}

#[derive(Default)]
struct PipeState {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// The writer is done: the reader sees the end once `chunks` are read.
    write_closed: bool,
    /// The reader is gone: what is written is refused.
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

pub(super) fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

pub(super) fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

impl Pipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        self.state.lock().expect("pipe lock poisoned")
    }

    /// Up to `max` bytes; `None` at the end of the stream.
    fn poll_read(&self, cx: &Context<'_>, max: usize) -> Poll<Option<Bytes>> {
        let mut s = self.lock();
        match s.try_take(max) {
            Some(b) => Poll::Ready(Some(b)),
            None if s.write_closed || s.read_closed => Poll::Ready(None),
            None => {
                park(&mut s.reader, cx);
                Poll::Pending
            }
        }
    }

    /// Room for this many bytes (at least one), or the reader is gone.
    fn poll_room(&self, cx: &Context<'_>) -> Poll<io::Result<usize>> {
        let mut s = self.lock();
        if s.read_closed || s.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        match PIPE_BYTES.saturating_sub(s.len) {
            0 => {
                park(&mut s.writer, cx);
                Poll::Pending
            }
            n => Poll::Ready(Ok(n)),
        }
    }

    fn push(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let mut s = self.lock();
        s.len += bytes.len();
        s.chunks.push_back(bytes);
        wake(&mut s.reader);
    }

    /// The writer is done (shutdown, or its end dropped).
    pub fn close_write(&self) {
        let mut s = self.lock();
        s.write_closed = true;
        wake(&mut s.reader);
    }

    /// The reader is gone: buffered bytes are dropped, writes refused.
    pub fn close_read(&self) {
        let mut s = self.lock();
        s.read_closed = true;
        s.chunks.clear();
        s.len = 0;
        wake(&mut s.writer);
        wake(&mut s.reader);
    }
}

impl PipeState {
    fn try_take(&mut self, max: usize) -> Option<Bytes> {
        if self.read_closed || max == 0 {
            return None;
        }
        let front = self.chunks.front_mut()?;
        let bytes = if front.len() <= max {
            self.chunks.pop_front().expect("a front chunk")
        } else {
            front.split_to(max)
        };
        self.len -= bytes.len();
        wake(&mut self.writer);
        Some(bytes)
    }
}

/// The router's end of a connection.
pub struct MemStream {
    /// Dyno to router.
    rx: ReadEnd,
    /// Router to dyno.
    tx: WriteEnd,
}

/// The router's reading end of a connection: dropped, the dyno's writes
/// are refused.
pub struct ReadEnd(Arc<Pipe>);

/// The router's writing end of a connection: dropped (or closed), the
/// dyno reads the end of the stream.
pub struct WriteEnd(Arc<Pipe>);

impl MemStream {
    /// A new connection: the router's end, and the guest's input (what
    /// the router sends) and output (what it answers) pipes.
    pub fn open() -> (MemStream, Arc<Pipe>, Arc<Pipe>) {
        let (down, up) = (Arc::new(Pipe::default()), Arc::new(Pipe::default()));
        let router = MemStream {
            rx: ReadEnd(up.clone()),
            tx: WriteEnd(down.clone()),
        };
        (router, down, up)
    }

    /// The two directions, to be read and written apart.
    pub fn into_halves(self) -> (ReadEnd, WriteEnd) {
        (self.rx, self.tx)
    }

    pub fn from_halves(rx: ReadEnd, tx: WriteEnd) -> Self {
        MemStream { rx, tx }
    }
}

impl ReadEnd {
    /// What the dyno sent, as it was written; `None` at the end.
    pub fn poll_chunk(&self, cx: &Context<'_>) -> Poll<Option<Bytes>> {
        self.0.poll_read(cx, usize::MAX)
    }

    /// Nothing unread and the dyno's side still open: a connection that
    /// may carry another request.
    pub fn is_quiet(&self) -> bool {
        let s = self.0.lock();
        s.chunks.is_empty() && !s.write_closed && !s.read_closed
    }
}

impl WriteEnd {
    /// Room for this many bytes (at least one), or the dyno stopped
    /// reading (`BrokenPipe`).
    pub fn poll_room(&self, cx: &Context<'_>) -> Poll<io::Result<usize>> {
        self.0.poll_room(cx)
    }

    /// Queues `bytes` for the dyno, however many (callers wait for room
    /// first and write at most what it holds, or a head).
    pub fn push(&self, bytes: Bytes) {
        self.0.push(bytes)
    }

    /// The dyno still reads what is written.
    pub fn is_open(&self) -> bool {
        let s = self.0.lock();
        !s.read_closed && !s.write_closed
    }
}

impl Drop for ReadEnd {
    fn drop(&mut self) {
        self.0.close_read();
    }
}

impl Drop for WriteEnd {
    fn drop(&mut self) {
        self.0.close_write();
    }
}

impl AsyncRead for MemStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.rx.0.poll_read(cx, buf.remaining()) {
            Poll::Ready(Some(b)) => {
                buf.put_slice(&b);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(None) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let room = std::task::ready!(self.tx.0.poll_room(cx))?;
        let n = room.min(buf.len());
        self.tx.0.push(Bytes::copy_from_slice(&buf[..n]));
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // One copy of what fits, as writev would hand the kernel.
        let room = std::task::ready!(self.tx.0.poll_room(cx))?;
        let mut out = bytes::BytesMut::with_capacity(room.min(bufs.iter().map(|b| b.len()).sum()));
        for b in bufs {
            let take = (room - out.len()).min(b.len());
            out.extend_from_slice(&b[..take]);
            if out.len() == room {
                break;
            }
        }
        let n = out.len();
        self.tx.0.push(out.freeze());
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.0.close_write();
        Poll::Ready(Ok(()))
    }
}

/// The guest's input stream of a connection.
pub struct PipeReader(pub Arc<Pipe>);

/// The guest's output stream of a connection.
pub struct PipeWriter(pub Arc<Pipe>);

#[async_trait::async_trait]
impl Pollable for PipeReader {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| {
            let mut s = self.0.lock();
            if !s.chunks.is_empty() || s.write_closed || s.read_closed {
                Poll::Ready(())
            } else {
                park(&mut s.reader, cx);
                Poll::Pending
            }
        })
        .await
    }
}

impl InputStream for PipeReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut s = self.0.lock();
        match s.try_take(size) {
            Some(b) => Ok(b),
            None if s.read_closed || (s.write_closed && s.chunks.is_empty()) => {
                Err(StreamError::Closed)
            }
            None => Ok(Bytes::new()),
        }
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.0.close_read();
    }
}

#[async_trait::async_trait]
impl Pollable for PipeWriter {
    async fn ready(&mut self) {
        // Ready when there is room, or when writing would fail.
        let _ = std::future::poll_fn(|cx| self.0.poll_room(cx)).await;
    }
}

#[async_trait::async_trait]
impl OutputStream for PipeWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.check_write()?;
        self.0.push(bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written bytes are the reader's at once: nothing is held back.
        self.check_write().map(drop)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let s = self.0.lock();
        if s.read_closed || s.write_closed {
            return Err(StreamError::Closed);
        }
        Ok(PIPE_BYTES.saturating_sub(s.len))
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.0.close_write();
    }
}
