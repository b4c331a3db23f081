//! The dyno manager: keeps each app's running dynos equal to its formation
//! on its current release, restarts crashed dynos with a doubling backoff,
//! replaces dynos on a new release without a gap in service, and keeps the
//! router's table of up web dynos.
//!
//! Each app has one reconcile loop ([`reconcile`]): every change (scale,
//! config, deploy, rollback, restart, a crash whose backoff ran out) wakes
//! it, and one pass at a time compares the desired state, read from the
//! ledger, with the dynos it runs. Nothing else starts a formation dyno,
//! so concurrent changes cannot leave a dyno of an old release behind.
//!
//! The manager owns no state that matters across a restart: formation and
//! releases are read from the ledger, so a restarted daemon reconciles to
//! the same dynos. It decides what runs; a [`DynoHost`] runs it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::task::TaskTracker;

use crate::dyno::Exit;
use crate::ledger::Ledger;
use crate::logbus::Bus;
use crate::names::{AppName, DynoName};
use crate::placement::{DynoHost, DynoKind, DynoSpec, LocalHostConfig, ReleasePlan, RunningDyno};
use crate::release::Release;
use crate::router::RouteTable;
use crate::router::table::InFlight;

mod admission;
mod backoff;
mod boot;
mod idle;
mod reconcile;
mod scope;
mod supervise;

pub use admission::CapacityUse;
pub use backoff::{MAX_BACKOFF, backoff};
pub use boot::BootFailure;
pub use scope::{Everything, Scope};

/// A dyno up this long has its crash count forgotten.
pub const BACKOFF_RESET: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Placement(#[from] crate::placement::PlacementError),
    #[error("{app} has no dyno {dyno}. Run `wdyno ps -a {app}` to list them.")]
    NoSuchDyno { app: String, dyno: String },
    #[error("{0}")]
    Command(String),
    /// A process type that has no formation (`release`).
    #[error("{0}")]
    NotScalable(String),
    /// A formation or one-off the host (or the app's share of it) cannot
    /// hold; nothing was changed.
    #[error("{0}")]
    Capacity(String),
    /// The app's reconcile pass failed (the message is the pass's error).
    #[error("{0}")]
    Reconcile(String),
}

/// Settings for every dyno the manager starts.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub grace: Duration,
    pub boot_timeout: Duration,
    pub memory: usize,
    /// Disk quota per dyno (`/app` + `/tmp`), bytes; `None`: unbounded.
    /// Only a process in a private mount namespace may set it
    /// (`dyno::disk`).
    pub disk: Option<u64>,
    pub egress: bool,
    /// The second restart of a crashing dyno waits this long; each further
    /// one twice as long, up to [`MAX_BACKOFF`].
    pub restart_base: Duration,
    pub determinism: crate::dyno::Determinism,
    /// How web dynos' `$PORT`s are reached.
    pub dyno_ports: crate::placement::DynoPorts,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        let host = LocalHostConfig::default();
        ManagerConfig {
            grace: host.grace,
            boot_timeout: host.boot_timeout,
            memory: host.memory,
            disk: host.disk,
            egress: host.egress,
            restart_base: Duration::from_secs(1),
            determinism: host.determinism,
            dyno_ports: host.dyno_ports,
        }
    }
}

impl ManagerConfig {
    /// The part a [`crate::placement::LocalHost`] applies to each dyno.
    pub fn host(&self) -> LocalHostConfig {
        LocalHostConfig {
            grace: self.grace,
            boot_timeout: self.boot_timeout,
            memory: self.memory,
            disk: self.disk,
            egress: self.egress,
            determinism: self.determinism,
            dyno_ports: self.dyno_ports,
        }
    }
}

/// A dyno as `ps` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DynoInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub process_type: String,
    pub state: String,
    pub command: String,
    pub release: u64,
    pub updated_at: DateTime<Utc>,
    pub port: Option<u16>,
    /// The host it runs on.
    #[serde(default)]
    pub host: String,
    /// Its memory and CPU time, for runtime metrics and the dashboard.
    #[serde(skip)]
    pub usage: crate::dyno::Usage,
}

/// A formation dyno the manager runs, and what it knows of its history.
struct Slot {
    dyno: Arc<dyn RunningDyno>,
    id: u64,
    release: u64,
    command: String,
    since: DateTime<Utc>,
    crashes: u32,
    /// Set when the dyno crashed: when it may be started again.
    retry_at: Option<Instant>,
    /// `ps:restart` asked for a fresh dyno.
    restart: bool,
    /// Stopped because the app sleeps (`ps` shows it `idle`); started
    /// again at its wake.
    idle: bool,
    inflight: Arc<InFlight>,
}

/// What the manager runs for one app. Only the app's reconcile pass adds
/// formation dynos.
#[derive(Default)]
struct AppState {
    dynos: BTreeMap<DynoName, Slot>,
    /// Dynos being replaced or scaled away, until they are down.
    leaving: Vec<Arc<dyn RunningDyno>>,
    /// One-off dynos (`run.N`, `release.N`), their command and release.
    one_offs: Vec<(Arc<dyn RunningDyno>, String, u64)>,
    /// Slots the formation takes on the current release (admitted by
    /// [`Manager::scale`], recomputed at each pass).
    slots: u32,
    /// Its web dynos sleep ([`idle`]): passes start none.
    asleep: bool,
}

/// Decides what runs (see the module doc); one per platform.
pub struct Manager {
    host: Arc<dyn DynoHost>,
    scope: Arc<dyn Scope>,
    ledger: Arc<dyn Ledger>,
    bus: Bus,
    cfg: ManagerConfig,
    routes: RouteTable,
    apps: Mutex<HashMap<String, Arc<reconcile::AppLoop>>>,
    next_id: AtomicU64,
    next_run: AtomicU32,
    tasks: TaskTracker,
    /// Held from the capacity check of a scale to its ledger write, so two
    /// scales cannot both fit into the last free slots.
    admission: tokio::sync::Mutex<()>,
}

impl Manager {
    /// A manager of the dynos `host` runs, for the apps in `ledger`.
    pub fn new(
        host: Arc<dyn DynoHost>,
        ledger: Arc<dyn Ledger>,
        bus: Bus,
        cfg: ManagerConfig,
        routes: RouteTable,
    ) -> Arc<Self> {
        Self::scoped(host, Arc::new(Everything), ledger, bus, cfg, routes)
    }

    /// A manager of the dynos of `scope` (a cluster host's share).
    pub fn scoped(
        host: Arc<dyn DynoHost>,
        scope: Arc<dyn Scope>,
        ledger: Arc<dyn Ledger>,
        bus: Bus,
        cfg: ManagerConfig,
        routes: RouteTable,
    ) -> Arc<Self> {
        Arc::new(Manager {
            host,
            scope,
            ledger,
            bus,
            cfg,
            routes,
            apps: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_run: AtomicU32::new(1000 + (std::process::id() % 9000)),
            tasks: TaskTracker::new(),
            admission: tokio::sync::Mutex::new(()),
        })
    }

    /// The table the router reads.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Where the manager's dynos run.
    pub fn host(&self) -> &Arc<dyn DynoHost> {
        &self.host
    }

    /// Reconciles every app in the ledger (platform start).
    pub async fn reconcile_all(self: &Arc<Self>) -> Result<(), ManagerError> {
        for app in self.ledger.apps().await? {
            // A failed pass is logged to the app by its loop.
            let _ = self.reconcile(&app.name).await;
        }
        Ok(())
    }

    /// `ps`: the app's dynos, formation ones then one-offs, by name.
    pub fn ps(&self, app: &AppName) -> Vec<DynoInfo> {
        let Some(lp) = self.existing_loop(app) else {
            return Vec::new();
        };
        let host = self.host.name();
        let state = lp.lock();
        state
            .dynos
            .iter()
            .map(|(name, slot)| DynoInfo {
                name: name.to_string(),
                process_type: name.process.to_string(),
                state: match slot.dyno.state() {
                    // As Heroku's `ps` shows a sleeping eco dyno.
                    s if slot.idle && s.is_final() => "idle".to_owned(),
                    s => s.to_string(),
                },
                command: slot.command.clone(),
                release: slot.release,
                updated_at: slot.since,
                port: slot.dyno.address().map(|a| a.port()),
                host: host.clone(),
                usage: slot.dyno.usage(),
            })
            .chain(
                state
                    .one_offs
                    .iter()
                    .filter(|(d, _, _)| !d.state().is_final())
                    .map(|(d, command, release)| DynoInfo {
                        name: d.name().to_owned(),
                        process_type: d.name().split('.').next().unwrap_or("run").to_owned(),
                        state: d.state().to_string(),
                        command: command.clone(),
                        release: *release,
                        updated_at: Utc::now() - (Instant::now() - d.started()),
                        port: None,
                        host: host.clone(),
                        usage: d.usage(),
                    }),
            )
            .collect()
    }

    /// `ps:restart`: all dynos, a type, or one dyno, each replaced by a
    /// fresh one (the old one serves until its replacement is up).
    pub async fn restart(
        self: &Arc<Self>,
        app: &AppName,
        which: Option<&str>,
    ) -> Result<usize, ManagerError> {
        let lp = self.app_loop(app);
        let n = {
            let mut state = lp.lock();
            let mut n = 0;
            for (name, slot) in state.dynos.iter_mut() {
                let hit = match which {
                    None => true,
                    Some(w) if w.contains('.') => name.to_string() == w,
                    Some(w) => name.process.as_str() == w,
                };
                if hit {
                    slot.restart = true;
                    n += 1;
                }
            }
            n
        };
        if let (0, Some(w)) = (n, which) {
            return Err(ManagerError::NoSuchDyno {
                app: app.to_string(),
                dyno: w.to_owned(),
            });
        }
        self.reconcile(app).await?;
        Ok(n)
    }

    /// `ps:stop`: stops one dyno. A formation dyno is started again by
    /// the app's reconcile loop, as Heroku's runtime does; a one-off dyno
    /// just ends.
    pub async fn stop_dyno(
        self: &Arc<Self>,
        app: &AppName,
        dyno: &str,
    ) -> Result<(), ManagerError> {
        let lp = self.app_loop(app);
        let found = {
            let mut state = lp.lock();
            let formation = DynoName::parse(dyno)
                .ok()
                .and_then(|name| state.dynos.remove(&name));
            match formation {
                Some(slot) => {
                    state.leaving.push(slot.dyno.clone());
                    self.retire(app, slot);
                    true
                }
                None => match state.one_offs.iter().find(|(d, _, _)| d.name() == dyno) {
                    Some((d, _, _)) => {
                        d.stop();
                        true
                    }
                    None => false,
                },
            }
        };
        if !found {
            return Err(ManagerError::NoSuchDyno {
                app: app.to_string(),
                dyno: dyno.to_owned(),
            });
        }
        self.request(app);
        Ok(())
    }

    /// Runs a one-off dyno (`run.N`, or `release.N` for the release phase)
    /// of `release` and returns it; it ends `down`.
    pub async fn run_one_off(
        self: &Arc<Self>,
        app: &AppName,
        release: &Release,
        kind: &str,
        command_line: &str,
        stdin: Option<crate::dyno::output::AttachedStdin>,
    ) -> Result<Arc<dyn RunningDyno>, ManagerError> {
        let cap = self.capacity();
        if cap.formations.max(cap.running) >= cap.capacity {
            return Err(ManagerError::Capacity(format!(
                "Cannot run a one-off dyno of {app}: this host's dyno capacity of {} (set by {}) \
                 is taken by formations. Scale something down, or {}.",
                cap.capacity, cap.limit, cap.how_to_raise
            )));
        }
        let n = self.next_run.fetch_add(1, Ordering::Relaxed);
        let dyno = self
            .host
            .start(DynoSpec {
                app: app.clone(),
                name: format!("{kind}.{n}"),
                release: Arc::new(release.clone()),
                command: command_line.to_owned(),
                kind: DynoKind::OneOff,
                stdin,
            })
            .await?;
        let lp = self.app_loop(app);
        let mut state = lp.lock();
        state.one_offs.retain(|(d, _, _)| !d.state().is_final());
        state
            .one_offs
            .push((dyno.clone(), command_line.to_owned(), release.version));
        Ok(dyno)
    }

    /// Stops every dyno of an app (destroy) and forgets it.
    pub async fn remove_app(&self, app: &AppName) {
        let lp = self
            .apps
            .lock()
            .expect("manager lock poisoned")
            .remove(app.as_str());
        if let Some(lp) = lp {
            for d in lp.close().await {
                d.wait().await;
            }
        }
        self.routes.forget(app.as_str());
        self.host.forget(app).await;
    }

    /// Stops every dyno through the stop sequence and waits for them.
    pub async fn shutdown(&self) -> Vec<(String, Exit)> {
        let loops: Vec<_> = self
            .apps
            .lock()
            .expect("manager lock poisoned")
            .drain()
            .map(|(_, lp)| lp)
            .collect();
        let mut dynos = Vec::new();
        for lp in loops {
            dynos.extend(lp.close().await);
        }
        let mut exits = Vec::new();
        for d in &dynos {
            exits.push((d.name().to_owned(), d.wait().await));
        }
        self.tasks.close();
        exits
    }

    fn existing_loop(&self, app: &AppName) -> Option<Arc<reconcile::AppLoop>> {
        self.apps
            .lock()
            .expect("manager lock poisoned")
            .get(app.as_str())
            .cloned()
    }

    /// The apps this manager keeps a loop for.
    pub fn apps(&self) -> Vec<String> {
        self.loops().into_iter().map(|(a, _)| a).collect()
    }

    /// Every app's loop, at this instant.
    fn loops(&self) -> Vec<(String, Arc<reconcile::AppLoop>)> {
        self.apps
            .lock()
            .expect("manager lock poisoned")
            .iter()
            .map(|(a, lp)| (a.clone(), lp.clone()))
            .collect()
    }

    fn dyno_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// The capacity slots and dynos a formation takes on a release: the types
/// the release runs (not `release`), each dyno its component's weight.
pub(crate) fn formation_slots(
    formation: &crate::formation::Formation,
    plan: &ReleasePlan,
) -> (u32, u32) {
    let mut slots = 0u32;
    let mut dynos = 0u32;
    for (ty, n) in formation.iter() {
        if ty.as_str() == "release" || plan.procfile.get(ty.as_str()).is_none() {
            continue;
        }
        let weight = plan.weights.get(ty.as_str()).copied().unwrap_or(1);
        slots = slots.saturating_add(n.saturating_mul(weight));
        dynos = dynos.saturating_add(n);
    }
    (slots, dynos)
}
