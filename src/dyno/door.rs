//! A web dyno's `$PORT` in memory: the router and the dyno live in one
//! process, so a request need not cross loopback TCP twice.
//!
//! A [`MemPort`] is the dyno's listening socket without a socket. The
//! guest binds and listens on `$PORT` as always ([`super::vsock`] shadows
//! those calls); the router calls [`MemPort::connect`], which queues a
//! connection for the guest's next `accept` (waiting, as a SYN would,
//! while the backlog is full) and hands back the router's end, a
//! [`MemStream`]: the connection's pipes are [`super::pipe`]'s.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use wasmtime_wasi::p2::Pollable;

use super::pipe::{MemStream, Pipe, park, wake};

/// The backlog a listener has until the guest sets one (Rust's, as
/// wasmtime-wasi's).
pub const DEFAULT_BACKLOG: usize = 128;

/// The dyno's end of a connection, before the guest takes it.
pub struct Accepted {
    /// Router to dyno: the guest's input stream.
    pub rx: Arc<Pipe>,
    /// Dyno to router: the guest's output stream.
    pub tx: Arc<Pipe>,
    /// What the guest's `remote-address` says: the router, on loopback.
    pub peer: SocketAddr,
}

/// A web dyno's `$PORT` in memory. Cheap to share.
pub struct MemPort {
    port: u16,
    state: Mutex<PortState>,
    /// Wakes routers waiting for a listener or for room in the backlog.
    room: tokio::sync::Notify,
    /// Numbers the router's ends as loopback source ports do.
    next_peer: AtomicU16,
}

struct PortState {
    listening: bool,
    /// The guest's listener is gone: connections are refused.
    closed: bool,
    backlog: usize,
    queue: VecDeque<Accepted>,
    acceptor: Option<Waker>,
}

impl std::fmt::Debug for MemPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemPort({})", self.port)
    }
}

impl MemPort {
    pub fn new(port: u16) -> Arc<Self> {
        Arc::new(MemPort {
            port,
            state: Mutex::new(PortState {
                listening: false,
                closed: false,
                backlog: DEFAULT_BACKLOG,
                queue: VecDeque::new(),
                acceptor: None,
            }),
            room: tokio::sync::Notify::new(),
            next_peer: AtomicU16::new(32768),
        })
    }

    /// The `$PORT` number the guest was given.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PortState> {
        self.state.lock().expect("port lock poisoned")
    }

    /// The guest listens; `backlog` connections may wait for its accept.
    pub fn listen(&self, backlog: usize) {
        let mut s = self.lock();
        s.listening = true;
        s.closed = false;
        s.backlog = backlog.max(1);
        drop(s);
        self.room.notify_waiters();
    }

    pub fn set_backlog(&self, backlog: usize) {
        self.lock().backlog = backlog.max(1);
        self.room.notify_waiters();
    }

    /// The guest's listener is gone: waiting and queued connections are
    /// refused (their router ends see the stream end at once).
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.listening = false;
        let queued = std::mem::take(&mut s.queue);
        wake(&mut s.acceptor);
        drop(s);
        drop(queued);
        self.room.notify_waiters();
    }

    /// Connections waiting for the guest's accept: the router's backlog
    /// for this dyno.
    pub fn waiting(&self) -> usize {
        self.lock().queue.len()
    }

    /// A connection the router opened, if one waits.
    pub fn try_accept(&self) -> Option<Accepted> {
        let mut s = self.lock();
        let got = s.queue.pop_front();

        if got.is_some() {
            drop(s);
            self.room.notify_one();
        }
        got
    }

    /// Ready once a connection waits, the listener was closed, or while
    /// it does not listen (a socket being bound has nothing to wait for).
    pub fn poll_acceptable(&self, cx: &Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if !s.queue.is_empty() || s.closed || !s.listening {
            Poll::Ready(())
        } else {
            park(&mut s.acceptor, cx);
            Poll::Pending
        }
    }

    /// Opens a connection to the guest: queued for its accept, waiting
    /// while the backlog is full. Refused when the guest is not listening.
    pub async fn connect(&self) -> io::Result<MemStream> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut s = self.lock();
                if s.closed || !s.listening {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("nothing listens on $PORT {} (in memory)", self.port),
                    ));
                }
                if s.queue.len() < s.backlog {
                    let (router, rx, tx) = MemStream::open();
                    let peer_port = self.next_peer.fetch_add(1, Ordering::Relaxed) | 32768;
                    s.queue.push_back(Accepted {
                        rx,
                        tx,
                        peer: SocketAddr::from(([127, 0, 0, 1], peer_port)),
                    });
                    wake(&mut s.acceptor);
                    return Ok(router);
                }
            }
            room.await;
        }
    }
}

/// A pollable for a listener: ready when a connection waits.
pub struct Acceptable(pub Arc<MemPort>);

#[async_trait::async_trait]
impl Pollable for Acceptable {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.0.poll_acceptable(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dyno::pipe::{PIPE_BYTES, PipeReader, PipeWriter};
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wasmtime_wasi::p2::{InputStream, OutputStream, StreamError};

    #[tokio::test]
    async fn bytes_flow_both_ways_with_half_close_and_backpressure() {
        let port = MemPort::new(5000);
        assert!(port.connect().await.is_err(), "not listening yet");
        port.listen(1);
        let mut router = port.connect().await.unwrap();
        let conn = port.try_accept().unwrap();
        let (mut input, mut output) = (PipeReader(conn.rx), PipeWriter(conn.tx));

        // The router sends more than a pipe holds: it waits for the reader.
        let big = vec![7u8; PIPE_BYTES * 3];
        let sender = tokio::spawn(async move {
            router.write_all(&big).await.unwrap();
            router.shutdown().await.unwrap();
            router
        });
        let mut got = 0;
        loop {
            input.ready().await;
            match input.read(100_000) {
                Ok(b) => {
                    assert!(b.iter().all(|&x| x == 7));
                    got += b.len();
                }
                Err(StreamError::Closed) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(got, PIPE_BYTES * 3);
        let mut router = sender.await.unwrap();

        // After the router's half-close the dyno still answers.
        assert_eq!(output.check_write().unwrap(), PIPE_BYTES);
        output.write(Bytes::from_static(b"answer")).unwrap();
        drop(output);
        let mut back = Vec::new();
        router.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"answer");
    }

    #[tokio::test]
    async fn a_full_backlog_holds_connects_and_a_closed_port_refuses() {
        let port = MemPort::new(5001);
        port.listen(1);
        let _first = port.connect().await.unwrap();
        let p = port.clone();
        let second = tokio::spawn(async move { p.connect().await.map(drop) });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "the backlog of 1 is full");
        assert!(port.try_accept().is_some());
        tokio::time::timeout(std::time::Duration::from_secs(5), second)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        port.close();
        assert_eq!(
            port.connect().await.err().map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
    }

    #[tokio::test]
    async fn a_dropped_router_end_ends_the_guests_stream() {
        let port = MemPort::new(5002);
        port.listen(4);
        let router = port.connect().await.unwrap();
        let conn = port.try_accept().unwrap();
        let (mut input, mut output) = (PipeReader(conn.rx), PipeWriter(conn.tx));
        drop(router);
        input.ready().await;
        assert!(matches!(input.read(10), Err(StreamError::Closed)));
        assert!(matches!(output.check_write(), Err(StreamError::Closed)));
    }
}
