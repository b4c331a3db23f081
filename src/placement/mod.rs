//! Dyno placement: the seam between deciding what should run (the
//! [`crate::manager`]) and running it. A [`DynoHost`] takes a
//! [`DynoSpec`] (an app, a dyno name, a release, a command), starts the
//! dyno and hands back a [`RunningDyno`] that reports its state and where
//! it listens. [`LocalHost`] runs dynos in this process's wasmtime engine;
//! a cluster's host runs them on another machine.
//!
//! A host is also where a release is made ready to run (its slug fetched,
//! verified and unpacked, its components prepared): once per release per
//! host, shared by every dyno of that release there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::watch;

use crate::dyno::capacity::Capacity;
use crate::dyno::output::AttachedStdin;
use crate::dyno::{Exit, State, Usage};
use crate::names::AppName;
use crate::procfile::Procfile;
use crate::release::Release;

mod local;

pub use local::{DynoPorts, LocalHost, LocalHostConfig};

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(transparent)]
    Slug(#[from] crate::slug::SlugError),
    #[error(transparent)]
    Dyno(#[from] crate::dyno::DynoError),
    #[error(transparent)]
    Procfile(#[from] crate::procfile::ProcfileError),
    #[error("{0} has no release with code yet: deploy it first (`wdyno deploy`)")]
    NotDeployed(String),
    /// A command that names what the release does not have.
    #[error("{0}")]
    Command(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// What kind of dyno a spec asks for: it decides the port, the end state
/// and whether the router sends it requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynoKind {
    /// A formation dyno of the `web` type: gets `$PORT`, is `up` once it
    /// listens, serves the router.
    Web,
    /// Any other formation dyno (`worker.1`).
    Worker,
    /// `run.N` or `release.N`: ends `down`, never `crashed`, never
    /// restarted.
    OneOff,
}

/// One dyno to run: everything a host needs, nothing it must look up.
pub struct DynoSpec {
    pub app: AppName,
    /// `web.1`, `run.4711`, `release.4712`.
    pub name: String,
    /// The release it runs: its slug, config vars and process types.
    pub release: Arc<Release>,
    /// The command line (the Procfile's, or a one-off's).
    pub command: String,
    pub kind: DynoKind,
    /// Stdin of an attached one-off (`wdyno run`); others read EOF.
    pub stdin: Option<AttachedStdin>,
}

/// What the manager needs to know of a release a host made ready: its
/// process types and the capacity slots one dyno of each takes.
#[derive(Debug, Clone)]
pub struct ReleasePlan {
    pub version: u64,
    pub procfile: Procfile,
    /// Process type → slots one of its dynos takes (see
    /// [`crate::dyno::capacity`]).
    pub weights: BTreeMap<String, u32>,
}

/// How the router reaches a web dyno.
#[derive(Debug, Clone)]
pub enum DynoAddr {
    /// A real `$PORT` on loopback (`--dyno-ports real`). The family is
    /// known only once the dyno has bound (`[::]` makes it `[::1]`), so it
    /// is read at connect time.
    Tcp { port: u16, v6: Arc<AtomicBool> },
    /// A command dyno's `$PORT` in memory: connections without a socket.
    Memory(Arc<crate::dyno::door::MemPort>),
    /// A `wasi:http/proxy` dyno's handler, called in memory.
    Handler {
        port: u16,
        door: Arc<crate::dyno::proxy::ProxyDoor>,
    },
    /// A dyno on another host of a cluster: its requests go to that host's
    /// router peer port, which hands them to the dyno.
    Remote { host: String, peer: SocketAddr },
}

impl DynoAddr {
    /// The `$PORT` the dyno was given (`ps` shows it).
    pub fn port(&self) -> u16 {
        match self {
            DynoAddr::Tcp { port, .. } | DynoAddr::Handler { port, .. } => *port,
            DynoAddr::Memory(door) => door.port(),
            DynoAddr::Remote { .. } => 0,
        }
    }

    /// Where a real-port dyno listens.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let DynoAddr::Tcp { port, v6 } = self else {
            return None;
        };
        let ip: std::net::IpAddr = match v6.load(Ordering::SeqCst) {
            true => std::net::Ipv6Addr::LOCALHOST.into(),
            false => std::net::Ipv4Addr::LOCALHOST.into(),
        };
        Some((ip, *port).into())
    }
}

/// A host's capacity and its use, for admission and `wdyno hosts`.
#[derive(Debug, Clone)]
pub struct HostUse {
    pub capacity: Capacity,
    /// Slots held by running command dynos.
    pub running: u32,
}

/// A dyno a host started. Dropping the handle does not stop the dyno.
#[async_trait::async_trait]
pub trait RunningDyno: Send + Sync {
    fn name(&self) -> &str;
    fn state(&self) -> State;
    /// Follows the state: `starting`, `up`, then `down` or `crashed`.
    fn watch_state(&self) -> watch::Receiver<State>;
    /// Where a web dyno listens (`None` for others).
    fn address(&self) -> Option<DynoAddr>;
    fn started(&self) -> Instant;
    /// The memory its instances hold and the time they ran.
    fn usage(&self) -> Usage;
    /// Asks the dyno to stop (SIGTERM, then SIGKILL after the grace
    /// period). Idempotent.
    fn stop(&self);
    /// Waits for the end and returns how it ended.
    async fn wait(&self) -> Exit;
    /// Waits until the dyno is `up`, or waits for a free slot on a full
    /// host (a dyno it replaces may then go, to free that slot), or ended.
    async fn wait_up_or_queued(&self);
}

/// A place dynos run. See the module doc.
#[async_trait::async_trait]
pub trait DynoHost: Send + Sync {
    /// This host's name, as `wdyno hosts` shows it.
    fn name(&self) -> String;
    /// Makes `release` of `app` ready to run here (idempotent; the newest
    /// releases stay ready) and says what its dynos weigh.
    async fn prepare(
        &self,
        app: &AppName,
        release: &Release,
    ) -> Result<ReleasePlan, PlacementError>;
    /// Starts a dyno. The release is prepared first if it is not yet.
    async fn start(&self, spec: DynoSpec) -> Result<Arc<dyn RunningDyno>, PlacementError>;
    fn capacity(&self) -> HostUse;
    /// Forgets what it keeps for `app` (the app was destroyed, and its
    /// dynos have stopped).
    async fn forget(&self, app: &AppName);
}
