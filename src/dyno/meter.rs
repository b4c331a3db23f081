//! What a dyno uses, as `log-runtime-metrics` reports it: the bytes of its
//! instances' linear memories and tables, and the time its guest futures
//! spent being polled (wasm, and the WASI calls it makes on the way).
//!
//! Both are kept by counters the dyno's own paths already pass through:
//! the memory by the store's resource limiter on each grow (and on the
//! store's end), the time by the wrapper each guest future is polled in
//! ([`super::lifecycle::Watched`]): two clock reads per poll, no work per
//! wasm instruction or host call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A dyno's counters, shared by all of its instances (a proxy dyno has one
/// per request in flight).
#[derive(Debug, Default)]
pub struct Meter {
    /// Bytes of linear memory and table storage held by live instances.
    memory: AtomicU64,
    /// The most `memory` ever was (what an R14 line reports: by the time
    /// it is written the instance is gone).
    peak: AtomicU64,
    /// Nanoseconds spent polling the guest's futures.
    cpu_ns: AtomicU64,
    /// The memory quota of each of its instances.
    quota: AtomicU64,
}

/// A reading of a [`Meter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub memory_bytes: u64,
    pub quota_bytes: u64,
    pub cpu: Duration,
}

impl Meter {
    pub fn usage(&self) -> Usage {
        Usage {
            memory_bytes: self.memory.load(Ordering::Relaxed),
            quota_bytes: self.quota.load(Ordering::Relaxed),
            cpu: Duration::from_nanos(self.cpu_ns.load(Ordering::Relaxed)),
        }
    }

    /// The reading with the most memory the dyno ever held.
    pub fn at_peak(&self) -> Usage {
        Usage {
            memory_bytes: self.peak.load(Ordering::Relaxed),
            ..self.usage()
        }
    }

    pub(crate) fn set_quota(&self, bytes: u64) {
        self.quota.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn grew(&self, bytes: u64) {
        let now = self.memory.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn released(&self, bytes: u64) {
        // Saturating: a store's own total is all it ever gives back.
        let _ = self
            .memory
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                Some(m.saturating_sub(bytes))
            });
    }

    pub(crate) fn ran(&self, for_: Duration) {
        let ns = u64::try_from(for_.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// One store's share of its dyno's memory: what its limiter let grow,
/// given back when the store goes.
#[derive(Debug)]
pub(crate) struct Held {
    meter: Arc<Meter>,
    bytes: u64,
}

impl Held {
    pub(crate) fn new(meter: Arc<Meter>) -> Self {
        Held { meter, bytes: 0 }
    }

    /// A memory or table went from `current` to `desired` bytes.
    pub(crate) fn grow(&mut self, current: usize, desired: usize) {
        let more = desired.saturating_sub(current) as u64;
        self.bytes += more;
        self.meter.grew(more);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.meter.released(self.bytes);
    }
}

/// A guest future whose polls are timed into its dyno's [`Meter`].
pub(crate) struct Timed<F> {
    inner: Pin<Box<F>>,
    meter: Arc<Meter>,
}

impl<F> Timed<F> {
    pub(crate) fn new(inner: F, meter: Arc<Meter>) -> Self {
        Timed {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let began = Instant::now();
        let poll = self.inner.as_mut().poll(cx);
        self.meter.ran(began.elapsed());
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_gives_back_what_it_held() {
        let meter = Arc::new(Meter::default());
        let mut a = Held::new(meter.clone());
        let mut b = Held::new(meter.clone());
        a.grow(0, 64 << 10);
        a.grow(64 << 10, 192 << 10);
        b.grow(0, 64 << 10);
        assert_eq!(meter.usage().memory_bytes, 256 << 10);
        drop(a);
        assert_eq!(meter.usage().memory_bytes, 64 << 10);
        drop(b);
        assert_eq!(meter.usage().memory_bytes, 0);
        assert_eq!(meter.at_peak().memory_bytes, 256 << 10);
    }

    #[tokio::test]
    async fn polls_are_timed() {
        let meter = Arc::new(Meter::default());
        Timed::new(
            async { std::thread::sleep(Duration::from_millis(20)) },
            meter.clone(),
        )
        .await;
        // A timer the future waits on is not counted: only its polls are.
        Timed::new(
            tokio::time::sleep(Duration::from_millis(200)),
            meter.clone(),
        )
        .await;
        let cpu = meter.usage().cpu;
        assert!(cpu >= Duration::from_millis(20), "{cpu:?}");
        assert!(cpu < Duration::from_millis(150), "{cpu:?}");
    }
}
