//! The host side of `wdyno:dyno/lifecycle` (see `wit/lifecycle.wit`): how a
//! dyno learns it is being stopped, and the shared flags the stop sequence
//! reads back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::watch;
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::meter::{Meter, Timed};
use super::sandbox::DynoData;

wasmtime::component::bindgen!({
    path: "wit",
    world: "wdyno:dyno/dyno",
    imports: { default: trappable },
    require_store_data_send: true,
    with: {
        "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
    },
});

/// State shared between a running dyno's store and whoever supervises it.
#[derive(Debug)]
pub struct Signals {
    /// `Some(grace deadline)` once a stop is asked for.
    stop: watch::Sender<Option<Instant>>,
    /// The guest subscribed to stop: it drains, so it gets the whole grace.
    pub(crate) drains: AtomicBool,
    /// The guest hit an epoch deadline during the current poll of its
    /// future: it gave up the thread while computing.
    yielded: AtomicBool,
    /// The last poll of the guest's future returned pending without an
    /// epoch yield: the guest is parked in the host (a socket, a timer,
    /// stdin).
    parked: AtomicBool,
    /// A memory grow went past the quota.
    pub(crate) over_quota: AtomicBool,
    /// The guest has put a socket on `$PORT` in listening mode.
    pub(crate) listening: watch::Sender<bool>,
    /// The dyno waits for a free slot: the host's capacity is in use.
    pub(crate) queued: watch::Sender<bool>,
    /// That socket is IPv6 (a bind of `[::]` lands on `[::1]`, which
    /// `127.0.0.1` does not reach): the router must connect to `[::1]`.
    pub(crate) listens_v6: Arc<AtomicBool>,
    /// What the dyno's instances hold and how long they ran.
    pub(crate) meter: Arc<Meter>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            stop: watch::channel(None).0,
            drains: AtomicBool::new(false),
            yielded: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            over_quota: AtomicBool::new(false),
            listening: watch::channel(false).0,
            queued: watch::channel(false).0,
            listens_v6: Arc::default(),
            meter: Arc::default(),
        }
    }
}

impl Signals {
    pub fn request_stop(&self, deadline: Instant) {
        self.stop.send_if_modified(|s| {
            let first = s.is_none();
            if first {
                *s = Some(deadline);
            }
            first
        });
    }

    pub fn stop_deadline(&self) -> Option<Instant> {
        *self.stop.borrow()
    }

    /// Records, from the epoch deadline callback, that the guest is giving
    /// up the thread while running wasm.
    pub(crate) fn saw_yield(&self) {
        self.yielded.store(true, Ordering::Relaxed);
    }

    /// Whether the guest is parked in the host rather than computing, as of
    /// the last poll of its future (see [`Watched`]). This does not depend
    /// on how promptly the thread or the epoch ticker were scheduled.
    pub fn parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }

    pub fn drains(&self) -> bool {
        self.drains.load(Ordering::SeqCst)
    }

    pub fn over_quota(&self) -> bool {
        self.over_quota.load(Ordering::SeqCst)
    }

    pub fn watch_stop(&self) -> watch::Receiver<Option<Instant>> {
        self.stop.subscribe()
    }

    pub fn watch_listening(&self) -> watch::Receiver<bool> {
        self.listening.subscribe()
    }

    pub fn watch_queued(&self) -> watch::Receiver<bool> {
        self.queued.subscribe()
    }

    pub fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }
}

/// A guest's future, watched: after each poll that returns pending it
/// records whether the guest yielded at an epoch deadline (computing) or is
/// waiting on a host future (parked). Its polls are [`Timed`] into the
/// dyno's [`Meter`].
pub(crate) struct Watched<F> {
    inner: Timed<F>,
    signals: Arc<Signals>,
}

impl<F> Watched<F> {
    pub(crate) fn new(inner: F, signals: Arc<Signals>) -> Self {
        Watched {
            inner: Timed::new(inner, signals.meter.clone()),
            signals,
        }
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.signals.yielded.store(false, Ordering::Relaxed);
        let poll = Pin::new(&mut self.inner).poll(cx);
        if poll.is_pending() {
            let computing = self.signals.yielded.load(Ordering::Relaxed);
            self.signals.parked.store(!computing, Ordering::Relaxed);
        }
        poll
    }
}

/// The pollable behind `subscribe-stop`.
struct StopWait(watch::Receiver<Option<Instant>>);

#[async_trait::async_trait]
impl Pollable for StopWait {
    async fn ready(&mut self) {
        // An error means the supervisor is gone: treat as stopped.
        let _ = self.0.wait_for(Option::is_some).await;
    }
}

impl wdyno::dyno::lifecycle::Host for DynoData {
    fn subscribe_stop(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        self.signals.drains.store(true, Ordering::SeqCst);
        let wait = StopWait(self.signals.watch_stop());
        // The table is capped per dyno: running out of slots is the
        // guest's own doing and traps it.
        let res = self.table.push(wait)?;
        subscribe(&mut self.table, res)
    }

    fn stop_requested(&mut self) -> wasmtime::Result<bool> {
        Ok(self.signals.stop_deadline().is_some())
    }

    fn grace_remaining_ms(&mut self) -> wasmtime::Result<Option<u64>> {
        Ok(self
            .signals
            .stop_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64))
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<DynoData>) -> wasmtime::Result<()> {
    wdyno::dyno::lifecycle::add_to_linker::<_, HasSelf<DynoData>>(linker, |d| d)
}

pub(crate) type SharedSignals = Arc<Signals>;
