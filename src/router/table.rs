//! The router's table: each app's `up` web dynos. The manager writes it
//! as dynos come up and go; the router never starts or stops one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::placement::DynoAddr;

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
}

impl Backend {
    /// Where the dyno listens: its `$PORT` on the loopback address of the
    /// family it bound.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr.socket_addr()
    }
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
}

/// Why [`RouteTable::pick`] found no dyno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No app by that name: the router answers 404 and keeps nothing.
    NoSuchApp,
    /// The app exists and runs no web dyno (H14).
    NoWebDynos,
    /// Its web dynos crashed (H10).
    Crashed,
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
    }

    pub fn remove(&self, app: &str, id: u64) {
        let mut t = self.inner.write().expect("route table lock");
        if let Some(routes) = t.get_mut(app) {
            routes.backends.retain(|b| b.id != id);
        }
    }

    pub fn set_crashed(&self, app: &str, crashed: bool) {
        let mut t = self.inner.write().expect("route table lock");
        t.entry(app.to_owned()).or_default().web_crashed = crashed;
    }

    pub fn forget(&self, app: &str) {
        self.inner.write().expect("route table lock").remove(app);
    }

    /// One up web dyno of `app`, the `choose`n of however many there are
    /// (the router passes a uniform random index), cloning only that one.
    pub fn pick(&self, app: &str, choose: impl FnOnce(usize) -> usize) -> Result<Backend, NoRoute> {
        let table = self.inner.read().expect("route table lock");
        match table.get(app) {
            Some(r) if !r.backends.is_empty() => Ok(r.backends[choose(r.backends.len())].clone()),
            Some(r) if r.web_crashed => Err(NoRoute::Crashed),
            Some(_) => Err(NoRoute::NoWebDynos),
            None => Err(NoRoute::NoSuchApp),
        }
    }
}
