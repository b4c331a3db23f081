//! Sleeping apps: what the router knows of an app's idling, and how it
//! holds a request for a sleeping app until a web dyno is up.
//!
//! Each app in the [`RouteTable`] has a [`Dormancy`], shared with the
//! manager's sleeper for that app: the router stamps the instant of every
//! request on it (one relaxed atomic, written at most once a millisecond),
//! the sleeper reads that to decide when the app has been idle for its
//! `sleep_after`, and marks it asleep before it stops the web dynos.
//!
//! A request that finds the app asleep and no dyno up asks for a wake
//! (the first one of a sleep notifies the sleeper, which starts the web
//! dynos at once, not at a reconcile tick) and is held ([`held_until_up`])
//! until one of these happens, each told by the table's `changed`
//! notification, never by polling:
//! - a web dyno is up: the request is served by it, as any other;
//! - the web dynos crashed while booting: `H10 App crashed`;
//! - the router's boot timeout (Heroku's H20, 75 s) passed first:
//!   `H20 App boot timeout`;
//! - the app was destroyed or scaled to no web dynos: `H14`.
//!
//! At most [`MAX_HELD`] requests are held per app; past it a request is
//! answered at once with `H11 Backlog too deep`, Heroku's code for a
//! router queue that is full, so a flood at a sleeping app holds a bounded
//! number of connections and tasks.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::table::{NoRoute, RouteTable};

/// Requests held per sleeping app while it wakes: a wake takes
/// milliseconds, so 200 covers a burst at a busy app's first second
/// without letting a flood hold the router's connections.
pub const MAX_HELD: usize = 200;

/// How long a request waits for a sleeping app's dyno to come up (H20):
/// Heroku's router holds requests 75 s for a starting app.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(75);

const AWAKE: u8 = 0;
const ASLEEP: u8 = 1;
/// Asleep, and a request asked for a wake.
const WAKING: u8 = 2;

/// One app's idling, shared by the router (which stamps requests and asks
/// for wakes) and the manager's sleeper (which puts it to sleep and
/// answers wakes).
#[derive(Debug)]
pub struct Dormancy {
    epoch: Instant,
    /// When the router last had a request for the app, ms after `epoch`.
    last_request: AtomicU64,
    /// [`AWAKE`], [`ASLEEP`] or [`WAKING`].
    state: AtomicU8,
    /// Router → sleeper: a request came for the sleeping app (one
    /// notification per sleep: the one that turned it `WAKING`).
    wake: Notify,
    /// Table → held requests: a dyno came up, the app crashed, woke with
    /// no web dynos, or went.
    pub(super) changed: Notify,
    /// Requests held now.
    held: AtomicUsize,
}

impl Default for Dormancy {
    fn default() -> Self {
        Dormancy {
            epoch: Instant::now(),
            last_request: AtomicU64::new(0),
            state: AtomicU8::new(AWAKE),
            wake: Notify::new(),
            changed: Notify::new(),
            held: AtomicUsize::new(0),
        }
    }
}

/// One held request, counted until dropped.
struct Held<'a>(&'a Dormancy);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Dormancy {
    /// Stamps a request for the app (or its wake by a change): its idle
    /// time starts again.
    pub fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        // Written once a millisecond at most: no cache line passed between
        // cores on every request of a busy app.
        if self.last_request.load(Ordering::Relaxed) != now {
            self.last_request.store(now, Ordering::Relaxed);
        }
    }

    /// Time since the last request (since the app entered the table, if
    /// none yet).
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_request.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Whether a request now would be held for a wake.
    pub fn is_asleep(&self) -> bool {
        self.state.load(Ordering::Acquire) != AWAKE
    }

    /// The manager is stopping the app's web dynos: from now on a request
    /// that finds none up asks for a wake and is held.
    pub(super) fn fall_asleep(&self) {
        self.state.store(ASLEEP, Ordering::Release);
    }

    /// Requests are no longer held (a dyno is up, or the app crashed, or
    /// runs no web dynos); the held ones look again.
    pub(super) fn awake(&self) {
        self.state.store(AWAKE, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Asks the sleeper for a wake; only the first request of a sleep
    /// notifies it.
    fn ask_wake(&self) {
        if self
            .state
            .compare_exchange(ASLEEP, WAKING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.wake.notify_one();
        }
    }

    /// Returns once a request has asked this sleep for a wake (the
    /// manager's sleeper waits on it). A notification left over from an
    /// earlier sleep is ignored: only a `WAKING` app is woken.
    pub async fn wake_asked(&self) {
        loop {
            self.wake.notified().await;
            if self.state.load(Ordering::Acquire) == WAKING {
                return;
            }
        }
    }

    /// Requests held for a wake now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn hold(&self) -> Option<Held<'_>> {
        let before = self.held.fetch_add(1, Ordering::Relaxed);
        let held = Held(self);
        (before < MAX_HELD).then_some(held)
    }
}

/// Holds a request for `app`, found asleep, until one of its web dynos is
/// up (then the one `pick` chooses), or answers why not (see the module
/// doc): `Crashed`, `BootTimeout`, `Backlog`, `NoWebDynos` or `NoSuchApp`.
pub async fn held_until_up<T>(
    table: &RouteTable,
    app: &str,
    boot_timeout: Duration,
    mut pick: impl FnMut() -> Result<T, NoRoute>,
) -> Result<T, NoRoute> {
    let Some(dormancy) = table.dormancy(app) else {
        return Err(NoRoute::NoSuchApp);
    };
    let Some(_held) = dormancy.hold() else {
        return Err(NoRoute::Backlog);
    };
    dormancy.ask_wake();
    let deadline = tokio::time::Instant::now() + boot_timeout;
    loop {
        // Armed before the look, so a change between the two is not lost.
        let changed = dormancy.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match pick() {
            Err(NoRoute::Asleep) => {}
            other => return other,
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Err(NoRoute::BootTimeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn backend(id: u64) -> super::super::table::Backend {
        super::super::table::test_backend(id)
    }

    fn asleep_app(t: &RouteTable) -> Arc<Dormancy> {
        t.open("a");
        t.set_asleep("a");
        t.dormancy("a").unwrap()
    }

    #[tokio::test]
    async fn a_held_request_gets_the_dyno_that_comes_up() {
        let t = RouteTable::new();
        let d = asleep_app(&t);
        let held = {
            let t = t.clone();
            tokio::spawn(async move {
                held_until_up(&t, "a", Duration::from_secs(10), || {
                    t.pick("a", |_| 0).map(|(b, _)| b)
                })
                .await
            })
        };
        // The sleeper is asked once, then the dyno comes up.
        tokio::time::timeout(Duration::from_secs(5), d.wake_asked())
            .await
            .expect("a wake asked");
        t.add("a", backend(1));
        let got = held.await.unwrap().expect("served");
        assert_eq!(got.dyno, "web.1");
        assert!(!d.is_asleep());
    }

    #[tokio::test]
    async fn a_crash_while_waking_is_h10_and_no_dyno_in_time_is_h20() {
        let t = RouteTable::new();
        asleep_app(&t);
        let held = {
            let t = t.clone();
            tokio::spawn(async move {
                held_until_up(&t, "a", Duration::from_secs(10), || {
                    t.pick("a", |_| 0).map(|(b, _)| b)
                })
                .await
            })
        };
        // Crashing is seen by a request held before or after it.
        tokio::task::yield_now().await;
        t.set_crashed("a", true);
        assert_eq!(held.await.unwrap().unwrap_err(), NoRoute::Crashed);

        t.set_asleep("a");
        let r = held_until_up(&t, "a", Duration::from_millis(50), || {
            t.pick("a", |_| 0).map(|(b, _)| b)
        })
        .await;
        assert_eq!(r.unwrap_err(), NoRoute::BootTimeout);
    }

    #[tokio::test]
    async fn past_the_bound_requests_are_not_held() {
        let t = RouteTable::new();
        let d = asleep_app(&t);
        let holds: Vec<_> = (0..MAX_HELD).map(|_| d.hold().unwrap()).collect();
        let r = held_until_up(&t, "a", Duration::from_secs(10), || {
            t.pick("a", |_| 0).map(|(b, _)| b)
        })
        .await;
        assert_eq!(r.unwrap_err(), NoRoute::Backlog);
        drop(holds);
        assert!(d.hold().is_some());
    }

    #[tokio::test]
    async fn a_wake_left_from_an_earlier_sleep_wakes_nothing() {
        let t = RouteTable::new();
        let d = asleep_app(&t);
        d.ask_wake();
        // Woken some other way (a deploy) before the sleeper looked.
        t.add("a", backend(1));
        t.remove("a", 1);
        t.set_asleep("a");
        let waited = tokio::time::timeout(Duration::from_millis(50), d.wake_asked()).await;
        assert!(waited.is_err(), "an old notification woke a new sleep");
    }

    #[test]
    fn a_pick_stamps_the_request() {
        let t = RouteTable::new();
        t.open("a");
        let d = t.dormancy("a").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(d.idle_for() >= Duration::from_millis(20));
        let _ = t.pick("a", |_| 0);
        assert!(d.idle_for() < Duration::from_millis(20));
    }
}
