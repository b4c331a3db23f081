//! The host side of `wdyno:dyno/lifecycle` (see `wit/lifecycle.wit`): how a
//! dyno learns it is being stopped, and the shared flags the stop sequence
//! reads back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::watch;
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

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
    /// When the guest was last seen running wasm at an epoch tick, in
    /// nanoseconds since `born`.
    busy_at: AtomicU64,
    born: Instant,
    /// A memory grow went past the quota.
    pub(crate) over_quota: AtomicBool,
    /// The guest has put a socket on `$PORT` in listening mode.
    pub(crate) listening: watch::Sender<bool>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            stop: watch::channel(None).0,
            drains: AtomicBool::new(false),
            busy_at: AtomicU64::new(0),
            born: Instant::now(),
            over_quota: AtomicBool::new(false),
            listening: watch::channel(false).0,
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

    /// Records that the guest was running wasm at an epoch tick.
    pub(crate) fn saw_busy(&self) {
        let nanos = self.born.elapsed().as_nanos() as u64;
        self.busy_at.store(nanos.max(1), Ordering::Relaxed);
    }

    /// Whether the guest has not been seen computing for `quiet`: it is
    /// parked in the host (waiting on a socket, a timer, stdin).
    pub fn idle_for(&self, quiet: std::time::Duration) -> bool {
        let busy = self.busy_at.load(Ordering::Relaxed);
        let now = self.born.elapsed().as_nanos() as u64;
        busy == 0 || now.saturating_sub(busy) > quiet.as_nanos() as u64
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
