//! The router's table: each app's `up` web dynos and how it spreads
//! requests over them, and whether it sleeps ([`Dormancy`]). The manager
//! writes it as dynos come up and go; the router never starts or stops
//! one (for a sleeping app it asks the manager for a wake).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::wake::Dormancy;
use crate::placement::DynoAddr;
pub use crate::routing::Routing;

/// One up web dyno.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Unique per dyno instance (a replacement `web.1` is another backend).
    pub id: u64,
    pub dyno: String,
    pub addr: DynoAddr,
    /// Requests the router has sent it and not yet had an answer to; the
    /// manager stops a dyno taken out of the table once they are answered.
    pub inflight: Arc<InFlight>,
    /// The router's connections to it when its `$PORT` is in memory.
    pub pool: Arc<super::pool::Pool>,
}

impl Backend {
    /// Requests sent to the dyno that it has not taken yet: connections
    /// queued for its `accept` (in memory). A proxy dyno takes every
    /// request at once, and a real port's queue is the kernel's, unseen:
    /// both count none.
    pub fn waiting(&self) -> usize {
        match &self.addr {
            DynoAddr::Memory(door) => door.waiting(),
            _ => 0,
        }
    }
}

/// A backend, its request counted in flight.
fn counted(b: &Backend) -> (Backend, Request) {
    (b.clone(), b.inflight.enter())
}

/// Requests in flight to one dyno, and a wake-up for whoever waits for
/// them all to be answered (a dyno leaving the router is drained by this
/// notification, not by polling).
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Counts one request until dropped.
pub struct Request(Arc<InFlight>);

impl InFlight {
    /// Counts a request from now until the guard drops.
    pub fn enter(self: &Arc<Self>) -> Request {
        self.count.fetch_add(1, Ordering::SeqCst);
        Request(self.clone())
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Returns once no request is in flight.
    pub async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AppRoutes {
    pub backends: Vec<Backend>,
    /// Web dynos are meant to run but have crashed (H10 rather than H14).
    pub web_crashed: bool,
    pub routing: Routing,
    /// Its idling: the last request's instant, asleep or not.
    pub dormancy: Arc<Dormancy>,
}

/// Apps with at most this many web dynos are routed to their least busy
/// one under least-connections; bigger ones by the power of two choices.
/// (Scanning 64 counters costs well under a microsecond.)
pub const EXACT_UP_TO: usize = 64;

/// Why [`RouteTable::pick`] found no dyno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No app by that name: the router answers 404 and keeps nothing.
    NoSuchApp,
    /// The app exists and runs no web dyno (H14).
    NoWebDynos,
    /// Its web dynos crashed (H10).
    Crashed,
    /// It sleeps and no web dyno is up yet: hold the request for a wake
    /// ([`super::wake::held_until_up`]).
    Asleep,
    /// Woken, but no web dyno came up within the boot timeout (H20).
    BootTimeout,
    /// Too many requests already held for its wake (H11).
    Backlog,
}

/// Apps are in the table from the moment they exist ([`RouteTable::open`])
/// until they are destroyed ([`RouteTable::forget`]), so the router can
/// tell an app with no dynos up (503) from a name that is no app (404).
#[derive(Clone, Default)]
pub struct RouteTable {
    inner: Arc<RwLock<HashMap<String, AppRoutes>>>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Enters an app that exists (created, or found in the ledger at start).
    pub fn open(&self, app: &str) {
        let mut t = self.inner.write().expect("route table lock");
        t.entry(app.to_owned()).or_default();
    }

    /// Whether `app` is an app (it may have no dynos up).
    pub fn exists(&self, app: &str) -> bool {
        self.inner
            .read()
            .expect("route table lock")
            .contains_key(app)
    }

    pub fn add(&self, app: &str, backend: Backend) {
        let mut t = self.inner.write().expect("route table lock");
        let routes = t.entry(app.to_owned()).or_default();
        routes.backends.retain(|b| b.id != backend.id);
        routes.backends.push(backend);
        routes.web_crashed = false;
        if routes.dormancy.is_asleep() {
            routes.dormancy.awake();
        }
    }

    pub fn remove(&self, app: &str, id: u64) {
        let mut t = self.inner.write().expect("route table lock");
        if let Some(routes) = t.get_mut(app) {
            routes.backends.retain(|b| b.id != id);
        }
    }

    /// Sets the web dynos of `app` that run on cluster host `host` (every
    /// [`DynoAddr::Remote`] backend of that host is replaced; a backend
    /// keeping its id keeps its in-flight count).
    pub fn set_remote(&self, app: &str, host: &str, backends: Vec<Backend>) {
        let mut t = self.inner.write().expect("route table lock");
        let Some(routes) = t.get_mut(app) else {
            return;
        };
        routes.backends.retain(|b| {
            !matches!(&b.addr, DynoAddr::Remote { host: h, .. } if h == host)
                || backends.iter().any(|n| n.id == b.id)
        });
        for b in backends {
            if !routes.backends.iter().any(|o| o.id == b.id) {
                routes.backends.push(b);
            }
        }
        if !routes.backends.is_empty() {
            routes.web_crashed = false;
        }
    }

    /// Takes out every [`DynoAddr::Remote`] backend of `app` whose host
    /// `keep` refuses (a host gone down).
    pub fn keep_remote(&self, app: &str, keep: impl Fn(&str) -> bool) {
        let mut t = self.inner.write().expect("route table lock");
        if let Some(routes) = t.get_mut(app) {
            routes
                .backends
                .retain(|b| !matches!(&b.addr, DynoAddr::Remote { host, .. } if !keep(host)));
        }
    }

    /// The up web dyno `dyno` of `app` that runs on this host (a request
    /// another host's router handed over), its request counted in flight
    /// (as [`RouteTable::pick`] counts it).
    pub fn local(&self, app: &str, dyno: &str) -> Option<(Backend, Request)> {
        let t = self.inner.read().expect("route table lock");
        t.get(app)?
            .backends
            .iter()
            .find(|b| b.dyno == dyno && !matches!(b.addr, DynoAddr::Remote { .. }))
            .map(counted)
    }

    /// How `app`'s requests are spread from now on.
    pub fn set_routing(&self, app: &str, routing: Routing) {
        let mut t = self.inner.write().expect("route table lock");
        if let Some(routes) = t.get_mut(app) {
            routes.routing = routing;
        }
    }

    /// Whether its web dynos crashed; a crash ends a wake (its held
    /// requests answer H10).
    pub fn set_crashed(&self, app: &str, crashed: bool) {
        let mut t = self.inner.write().expect("route table lock");
        let routes = t.entry(app.to_owned()).or_default();
        routes.web_crashed = crashed;
        if crashed && routes.dormancy.is_asleep() {
            routes.dormancy.awake();
        }
    }

    /// The manager is putting `app`'s web dynos to sleep: from now on a
    /// request that finds none up is held for a wake, not answered H14,
    /// and a crash before the sleep is forgotten.
    pub fn set_asleep(&self, app: &str) {
        let mut t = self.inner.write().expect("route table lock");
        if let Some(routes) = t.get_mut(app) {
            routes.web_crashed = false;
            routes.dormancy.fall_asleep();
        }
    }

    /// `app` is awake with no web dyno to wait for (scaled to none while it
    /// slept): held requests stop waiting.
    pub fn set_awake(&self, app: &str) {
        if let Some(d) = self.dormancy(app).filter(|d| d.is_asleep()) {
            d.awake();
        }
    }

    /// `app`'s idling, shared with the manager's sleeper.
    pub fn dormancy(&self, app: &str) -> Option<Arc<Dormancy>> {
        let t = self.inner.read().expect("route table lock");
        t.get(app).map(|r| r.dormancy.clone())
    }

    pub fn forget(&self, app: &str) {
        let gone = self.inner.write().expect("route table lock").remove(app);
        // Requests held for its wake find it gone.
        if let Some(routes) = gone {
            routes.dormancy.changed.notify_waiters();
        }
    }

    /// The up web dyno of `app` with the fewest requests waiting for it
    /// to take them ([`Backend::waiting`]), its request counted in flight
    /// (as [`RouteTable::pick`] counts it).
    pub fn least_waiting(&self, app: &str) -> Option<(Backend, Request)> {
        let table = self.inner.read().expect("route table lock");
        table
            .get(app)?
            .backends
            .iter()
            .min_by_key(|b| b.waiting())
            .map(counted)
    }

    /// One up web dyno of `app`, cloning only that one. `random(n)` is a
    /// uniform index below `n` (the router's seedable generator): one draw
    /// picks the dyno under [`Routing::Random`]. Under
    /// [`Routing::LeastConnections`] an app of up to [`EXACT_UP_TO`] web
    /// dynos gets the one with the fewest requests in flight (counted from
    /// a random one, so ties spread); a bigger one the less busy of two
    /// distinct random dynos (the power of two choices), where a scan would
    /// cost more than it gains.
    /// Every pick of a known app stamps its idle clock; a sleeping app
    /// with no dyno up yet is [`NoRoute::Asleep`].
    ///
    /// The request is counted in flight to the dyno before the table's
    /// lock is let go: a dyno taken out of the table (under its write
    /// lock) and then drained sees every request the router picked it
    /// for, however soon after the pick it is retired.
    pub fn pick(
        &self,
        app: &str,
        mut random: impl FnMut(usize) -> usize,
    ) -> Result<(Backend, Request), NoRoute> {
        let table = self.inner.read().expect("route table lock");
        let routes = table.get(app);
        if let Some(r) = routes {
            r.dormancy.touch();
        }
        match routes {
            Some(r) if !r.backends.is_empty() => {
                let b = &r.backends;
                let i = random(b.len());
                let chosen = match r.routing {
                    Routing::LeastConnections if b.len() <= EXACT_UP_TO => {
                        // Every dyno, from a random one on (ties spread).
                        let (mut best, mut least) = (i, b[i].inflight.count());
                        for k in 1..b.len() {
                            if least == 0 {
                                break;
                            }
                            let j = (i + k) % b.len();
                            let n = b[j].inflight.count();
                            if n < least {
                                (best, least) = (j, n);
                            }
                        }
                        best
                    }
                    Routing::LeastConnections => {
                        // A second, different dyno: one of the others.
                        let j = (i + 1 + random(b.len() - 1)) % b.len();
                        if b[j].inflight.count() < b[i].inflight.count() {
                            j
                        } else {
                            i
                        }
                    }
                    _ => i,
                };
                Ok(counted(&b[chosen]))
            }
            Some(r) if r.dormancy.is_asleep() => Err(NoRoute::Asleep),
            Some(r) if r.web_crashed => Err(NoRoute::Crashed),
            Some(_) => Err(NoRoute::NoWebDynos),
            None => Err(NoRoute::NoSuchApp),
        }
    }
}

/// A backend on a real port nothing listens on, for the router's unit
/// tests.
#[cfg(test)]
pub(super) fn test_backend(id: u64) -> Backend {
    Backend {
        id,
        dyno: format!("web.{id}"),
        addr: DynoAddr::Tcp {
            port: 5000 + id as u16,
            v6: Arc::default(),
        },
        inflight: Arc::default(),
        pool: Arc::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn backend(id: u64) -> Backend {
        test_backend(id)
    }

    #[test]
    fn least_connections_never_picks_the_busier_of_two() {
        let t = RouteTable::new();
        t.open("a");
        t.set_routing("a", Routing::LeastConnections);
        t.add("a", backend(1));
        t.add("a", backend(2));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut held = Vec::new();
        for _ in 0..1000 {
            let (b, _) = t.pick("a", |n| rng.random_range(0..n)).unwrap();
            let routes = t.inner.read().unwrap()["a"].backends.clone();
            let other = routes.iter().find(|o| o.id != b.id).unwrap();
            assert!(
                b.inflight.count() <= other.inflight.count(),
                "sent to {} with {} in flight while {} had {}",
                b.dyno,
                b.inflight.count(),
                other.dyno,
                other.inflight.count()
            );
            held.push(b.inflight.enter());
            // Answers come back out of order, some dynos faster.
            if rng.random_range(0..3) == 0 {
                let k = rng.random_range(0..held.len());
                held.swap_remove(k);
            }
        }
    }

    #[test]
    fn least_connections_finds_the_one_free_dyno_and_spreads_ties() {
        let t = RouteTable::new();
        t.open("a");
        t.set_routing("a", Routing::LeastConnections);
        for id in 1..=10 {
            t.add("a", backend(id));
        }
        let routes = t.inner.read().unwrap()["a"].backends.clone();
        // Every dyno but web.7 has a request in flight.
        let held: Vec<_> = routes
            .iter()
            .filter(|b| b.id != 7)
            .map(|b| b.inflight.enter())
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let (b, _) = t.pick("a", |n| rng.random_range(0..n)).unwrap();
            assert_eq!(b.id, 7);
        }
        drop(held);
        // All idle: the picks spread over all ten.
        let mut hits = [0u32; 11];
        for _ in 0..2000 {
            hits[t.pick("a", |n| rng.random_range(0..n)).unwrap().0.id as usize] += 1;
        }
        assert!(
            hits[1..].iter().all(|&h| (120..280).contains(&h)),
            "{hits:?}"
        );
    }

    #[test]
    fn random_spreads_uniformly() {
        let t = RouteTable::new();
        t.open("a");
        for id in 1..=4 {
            t.add("a", backend(id));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut hits = [0u32; 5];
        for _ in 0..4000 {
            let (b, _) = t.pick("a", |n| rng.random_range(0..n)).unwrap();
            hits[b.id as usize] += 1;
        }
        for h in &hits[1..] {
            assert!((850..1150).contains(h), "{hits:?}");
        }
    }
}
