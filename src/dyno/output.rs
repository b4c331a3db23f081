//! A dyno's stdout and stderr: bytes in, log lines out.
//!
//! Each stream keeps its own partial line; a line is published to the log
//! bus the moment its newline arrives, synchronously inside the guest's
//! write, so the order in which a guest interleaves stdout and stderr is the
//! order of its lines on the bus. A dyno that floods is rate limited: lines
//! past its budget are counted and reported as one `Error L10` line, and
//! never slow the host down.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::logbus::{Bus, LogLine, MAX_LINE_BYTES, Source};

/// Sustained lines per second a dyno may log before lines are dropped.
pub const LINES_PER_SECOND: f64 = 2_000.0;
/// Lines a dyno may log in one burst above the sustained rate.
pub const LINE_BURST: f64 = 10_000.0;
/// Most bytes the guest may hand us in one write: it bounds host memory per
/// call, not the line length (long lines are cut at [`MAX_LINE_BYTES`]).
const WRITE_BUDGET: usize = 64 * 1024;

/// The shared sink of one dyno: where its two streams' lines go.
#[derive(Clone)]
pub struct DynoOutput {
    inner: Arc<Mutex<Sink>>,
}

struct Sink {
    bus: Bus,
    app: String,
    dyno: String,
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    /// Whether this dyno's [`super::hints`] line was logged (once is enough).
    hinted: bool,
}

impl DynoOutput {
    pub fn new(bus: Bus, app: &str, dyno: &str) -> Self {
        DynoOutput {
            inner: Arc::new(Mutex::new(Sink {
                bus,
                app: app.to_owned(),
                dyno: dyno.to_owned(),
                tokens: LINE_BURST,
                refilled: Instant::now(),
                dropped: 0,
                hinted: false,
            })),
        }
    }

    /// The log bus the lines go to.
    pub fn bus(&self) -> Bus {
        self.inner
            .lock()
            .expect("dyno output lock poisoned")
            .bus
            .clone()
    }

    /// A stream for stdout or stderr; both share this dyno's rate budget.
    pub fn stream(&self) -> LineStream {
        LineStream {
            sink: self.inner.clone(),
            partial: Vec::new(),
        }
    }
}

impl Sink {
    fn emit(&mut self, bytes: &[u8]) {
        self.emit_at(bytes, Instant::now());
    }

    fn emit_at(&mut self, bytes: &[u8], now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * LINES_PER_SECOND).min(LINE_BURST);
        if self.tokens < 1.0 {
            self.dropped += 1;
            return;
        }
        self.tokens -= 1.0;
        if self.dropped > 0 {
            let text = format!(
                "Error L10 (output buffer overflow): {} log lines dropped: {} logs faster than {} lines/s",
                self.dropped, self.dyno, LINES_PER_SECOND
            );
            self.bus
                .publish(LogLine::now(&self.app, Source::Wdyno, &self.dyno, &text));
            self.dropped = 0;
        }
        let text = String::from_utf8_lossy(bytes);
        self.bus
            .publish(LogLine::now(&self.app, Source::App, &self.dyno, &text));
        if !self.hinted
            && let Some(hint) = super::hints::for_output(&text)
        {
            self.hinted = true;
            self.bus
                .publish(LogLine::now(&self.app, Source::Wdyno, &self.dyno, hint));
        }
    }
}

/// One of a dyno's output streams, splitting bytes into lines.
pub struct LineStream {
    sink: Arc<Mutex<Sink>>,
    partial: Vec<u8>,
}

impl LineStream {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(nl);
            self.take_line(line);
            bytes = &rest[1..];
        }
        // Keep at most one line's worth; the excess of an endless line is
        // cut here rather than buffered.
        let room = (MAX_LINE_BYTES + 4).saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn take_line(&mut self, tail: &[u8]) {
        if self.partial.is_empty() {
            self.emit(strip_cr(tail));
        } else {
            let room = (MAX_LINE_BYTES + 4).saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&tail[..tail.len().min(room)]);
            let line = std::mem::take(&mut self.partial);
            self.emit(strip_cr(&line));
        }
    }

    fn emit(&self, line: &[u8]) {
        self.sink.lock().expect("output lock").emit(line);
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl Drop for LineStream {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line);
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LineStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

/// What the WASI context is given as stdout or stderr.
#[derive(Clone)]
pub struct OutputPipe(pub DynoOutput);

impl IsTerminal for OutputPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.0.stream())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(AsyncLines(self.0.stream()))
    }
}

/// The same line splitting behind tokio's `AsyncWrite`, for WASIp3 users.
struct AsyncLines(LineStream);

impl tokio::io::AsyncWrite for AsyncLines {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A one-off dyno's stdin: bytes from whoever attached to it.
#[derive(Clone)]
pub struct AttachedStdin(Arc<wasmtime_wasi::cli::AsyncStdinStream>);

impl AttachedStdin {
    pub fn new(reader: impl tokio::io::AsyncRead + Send + Sync + 'static) -> Self {
        AttachedStdin(Arc::new(wasmtime_wasi::cli::AsyncStdinStream::new(reader)))
    }
}

impl IsTerminal for AttachedStdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdinStream for AttachedStdin {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::InputStream> {
        self.0.p2_stream()
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        self.0.async_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logbus::LocalBus;

    fn texts(bus: &Bus) -> Vec<String> {
        bus.recent("app", 100)
            .iter()
            .map(|l| l.text.clone())
            .collect()
    }

    #[test]
    fn splits_lines_across_writes_and_streams() {
        let bus = LocalBus::shared();
        bus.open("app");
        let out = DynoOutput::new(bus.clone(), "app", "web.1");
        let mut a = out.stream();
        let mut b = out.stream();
        a.push(b"one\ntw");
        b.push(b"err\r\n");
        a.push(b"o\n");
        a.push(b"tail");
        drop(a);
        assert_eq!(texts(&bus), ["one", "err", "two", "tail"]);
    }

    #[test]
    fn cuts_long_lines() {
        let bus = LocalBus::shared();
        bus.open("app");
        let out = DynoOutput::new(bus.clone(), "app", "web.1");
        let mut s = out.stream();
        s.push(&vec![b'x'; 50_000]);
        s.push(&vec![b'y'; 50_000]);
        s.push(b"\nnext\n");
        assert_eq!(texts(&bus)[0].len(), MAX_LINE_BYTES);
        assert_eq!(texts(&bus)[1], "next");
    }

    #[test]
    fn floods_are_rate_limited_and_reported() {
        let bus = LocalBus::shared();
        bus.open("app");
        let out = DynoOutput::new(bus.clone(), "app", "web.1");
        let mut sink = out.inner.lock().unwrap();
        let t0 = sink.refilled;
        for _ in 0..LINE_BURST as usize + 100 {
            sink.emit_at(b"x", t0);
        }
        assert_eq!(sink.dropped, 100);
        sink.emit_at(b"after", t0 + std::time::Duration::from_secs(1));
        let last = bus.recent("app", 2);
        assert_eq!(
            last[0].text,
            "Error L10 (output buffer overflow): 100 log lines dropped: web.1 logs faster than 2000 lines/s"
        );
        assert_eq!(last[1].text, "after");
    }
}
