//! The dyno manager: keeps each app's running dynos equal to its formation
//! on its current release, restarts crashed dynos with a doubling backoff,
//! replaces dynos on a new release without a gap in service, and keeps the
//! router's table of up web dynos.
//!
//! It owns no state of its own that matters across a restart: formation and
//! releases are read from the ledger, so a restarted daemon converges to the
//! same dynos.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::task::TaskTracker;

use crate::dyno::{Determinism, Dyno, Exit, Launch, PortBook, PortLease, Runtime, Sandbox, State};
use crate::logbus::LogBus;
use crate::names::{AppName, DynoName, ProcessType};
use crate::procfile::Command;
use crate::release::{Ledger, Release};
use crate::routes::{Backend, RouteTable};
use crate::slug::SlugStore;

mod admission;
mod backoff;
mod boot;
mod release_files;

pub use admission::CapacityUse;
pub use backoff::{MAX_BACKOFF, backoff};
pub use boot::BootFailure;
pub use release_files::ReleaseFiles;

/// A dyno up this long has its crash count forgotten.
pub const BACKOFF_RESET: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Ledger(#[from] crate::release::LedgerError),
    #[error(transparent)]
    Slug(#[from] crate::slug::SlugError),
    #[error(transparent)]
    Dyno(#[from] crate::dyno::DynoError),
    #[error(transparent)]
    Procfile(#[from] crate::procfile::ProcfileError),
    #[error("{app} has no dyno {dyno}. Run `wdyno ps -a {app}` to list them.")]
    NoSuchDyno { app: String, dyno: String },
    #[error("{0} has no release with code yet: deploy it first (`wdyno deploy`)")]
    NotDeployed(String),
    #[error("{0}")]
    Command(String),
    /// A process type that has no formation (`release`).
    #[error("{0}")]
    NotScalable(String),
    /// A formation or one-off the host (or the app's share of it) cannot
    /// hold; nothing was changed.
    #[error("{0}")]
    Capacity(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
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
    pub determinism: Determinism,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            grace: crate::dyno::DEFAULT_GRACE,
            boot_timeout: crate::dyno::DEFAULT_BOOT_TIMEOUT,
            memory: crate::dyno::DEFAULT_MEMORY,
            disk: None,
            egress: true,
            restart_base: Duration::from_secs(1),
            determinism: Determinism::default(),
        }
    }
}

/// A dyno as `ps` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DynoInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub process_type: String,
    pub state: String,
    pub command: String,
    pub release: u64,
    pub updated_at: DateTime<Utc>,
    pub port: Option<u16>,
}

struct Slot {
    dyno: Arc<Dyno>,
    id: u64,
    release: u64,
    command: String,
    since: DateTime<Utc>,
    crashes: u32,
    port: Option<u16>,
    inflight: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Default)]
struct AppState {
    files: Option<Arc<ReleaseFiles>>,
    dynos: BTreeMap<DynoName, Slot>,
    /// Dynos being replaced or scaled away, until they are down.
    leaving: Vec<Arc<Dyno>>,
    /// One-off dynos (`run.N`, `release.N`), their command and release.
    one_offs: Vec<(Arc<Dyno>, String, u64)>,
    /// Slots the formation takes on the current release (admitted by
    /// [`Manager::scale`], recomputed at each converge).
    slots: u32,
}

pub struct Manager {
    runtime: Arc<Runtime>,
    bus: LogBus,
    ports: PortBook,
    ledger: Ledger,
    slugs: SlugStore,
    releases_dir: PathBuf,
    dynos_dir: PathBuf,
    cfg: ManagerConfig,
    routes: RouteTable,
    apps: Mutex<HashMap<String, AppState>>,
    next_id: AtomicU64,
    next_run: AtomicU32,
    tasks: TaskTracker,
    /// Held from the capacity check of a scale to its ledger write, so two
    /// scales cannot both fit into the last free slots.
    admission: tokio::sync::Mutex<()>,
}

impl Manager {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runtime: Arc<Runtime>,
        bus: LogBus,
        ports: PortBook,
        ledger: Ledger,
        slugs: SlugStore,
        home: &std::path::Path,
        cfg: ManagerConfig,
        routes: RouteTable,
    ) -> Arc<Self> {
        Arc::new(Manager {
            runtime,
            bus,
            ports,
            ledger,
            slugs,
            releases_dir: home.join("releases"),
            dynos_dir: home.join("dynos"),
            cfg,
            routes,
            apps: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_run: AtomicU32::new(1000 + (std::process::id() % 9000)),
            tasks: TaskTracker::new(),
            admission: tokio::sync::Mutex::new(()),
        })
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppState>> {
        self.apps.lock().expect("manager lock poisoned")
    }

    /// Brings `app`'s dynos in line with its formation and current release.
    pub async fn converge(self: &Arc<Self>, app: &AppName) -> Result<(), ManagerError> {
        let release = self.ledger.current(app)?;
        let formation = self.ledger.formation(app)?;
        if release.slug.is_none() {
            return Ok(());
        }
        let files = self.release_files(app, &release).await?;
        let mut to_start: Vec<(DynoName, Option<Slot>)> = Vec::new();
        {
            let mut apps = self.lock();
            let state = apps.entry(app.to_string()).or_default();
            state.files = Some(files.clone());
            state.slots = admission::formation_slots(&formation, &files).0;
            // Scale down: types gone or numbers past the count, highest first.
            let excess: Vec<DynoName> = state
                .dynos
                .keys()
                .filter(|n| {
                    let want = formation.get(n.process.as_str()).copied().unwrap_or(0);
                    n.number > want || files.procfile.get(n.process.as_str()).is_none()
                })
                .cloned()
                .collect();
            for name in excess.into_iter().rev() {
                if let Some(slot) = state.dynos.remove(&name) {
                    state.leaving.push(slot.dyno.clone());
                    self.retire(app, slot);
                }
            }
            for (ty, count) in &formation {
                let Ok(process) = ProcessType::parse(ty) else {
                    continue;
                };
                if files.procfile.get(ty).is_none() || process.as_str() == "release" {
                    continue;
                }
                for n in 1..=*count {
                    let name = DynoName::new(process.clone(), n);
                    match state.dynos.get(&name) {
                        Some(slot) if slot.release == files.version => {}
                        Some(_) => {
                            let old = state.dynos.remove(&name);
                            to_start.push((name, old));
                        }
                        None => to_start.push((name, None)),
                    }
                }
            }
        }
        for (name, old) in to_start {
            let slot =
                self.start_dyno(app, &files, &name, old.as_ref().map_or(0, |o| o.crashes))?;
            let new = slot.dyno.clone();
            let mut apps = self.lock();
            let state = apps.entry(app.to_string()).or_default();
            state.dynos.insert(name, slot);
            if let Some(old) = old {
                // The old dyno serves until its replacement is up.
                state.leaving.push(old.dyno.clone());
                let (me, app) = (self.clone(), app.clone());
                self.tasks.spawn(async move {
                    // On a full host the replacement waits for a slot that
                    // only the old dyno can free: replace it in place.
                    new.wait_up_or_queued().await;
                    me.retire(&app, old);
                });
            }
        }
        Ok(())
    }

    /// Converges every app in the ledger (platform start).
    pub async fn converge_all(self: &Arc<Self>) -> Result<(), ManagerError> {
        for app in self.ledger.apps()? {
            if let Err(e) = self.converge(&app.name).await {
                self.bus.platform(
                    app.name.as_str(),
                    "api",
                    &format!("Could not start dynos: {e}"),
                );
            }
        }
        Ok(())
    }

    fn launch(
        &self,
        app: &AppName,
        files: &ReleaseFiles,
        name: &str,
        command: &Command,
        lease: Option<&PortLease>,
        one_off: bool,
    ) -> Result<Launch, ManagerError> {
        let path = command.component_path();
        let prepared = match files.component(&path) {
            Some(p) => p,
            None => {
                let full = files.dir.join(&path);
                if !full.is_file() {
                    return Err(ManagerError::Command(format!(
                        "{}: no component {path} in release v{} of {app}",
                        command.program, files.version
                    )));
                }
                self.runtime.prepare(&full)?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sandbox = Sandbox {
            app: app.to_string(),
            dyno: name.to_owned(),
            release_version: files.version,
            files: files.dir.clone(),
            work_dir: self
                .dynos_dir
                .join(app.as_str())
                .join(format!("{name}.{id}")),
            config: files.release.config.clone(),
            port: lease.map(|l| l.port()),
            ports: self.ports.clone(),
            egress: self.cfg.egress,
            memory: self.cfg.memory,
            disk: self.cfg.disk,
            determinism: self.cfg.determinism,
        };
        let args = command.argv(&sandbox.env());
        Ok(Launch {
            sandbox,
            prepared,
            command_line: command.line.clone(),
            args,
            web: lease.is_some() && !one_off,
            one_off,
            boot_timeout: self.cfg.boot_timeout,
            grace: self.cfg.grace,
            stdin: None,
        })
    }

    fn start_dyno(
        self: &Arc<Self>,
        app: &AppName,
        files: &Arc<ReleaseFiles>,
        name: &DynoName,
        crashes: u32,
    ) -> Result<Slot, ManagerError> {
        let command = files
            .procfile
            .get(name.process.as_str())
            .ok_or_else(|| ManagerError::Command(format!("no process type {}", name.process)))?
            .clone();
        let web = name.process.is_web();
        let lease = if web {
            Some(self.ports.lease().map_err(|e| ManagerError::Io {
                what: "finding a port for a web dyno".into(),
                source: e,
            })?)
        } else {
            None
        };
        let launch = self.launch(
            app,
            files,
            &name.to_string(),
            &command,
            lease.as_ref(),
            false,
        )?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let port = lease.as_ref().map(|l| l.port());
        let dyno = Arc::new(Dyno::start(self.runtime.clone(), self.bus.clone(), launch));
        let inflight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let backend = port.map(|port| Backend {
            id,
            dyno: name.to_string(),
            port,
            inflight: inflight.clone(),
            v6: dyno.listens_v6(),
        });
        self.watch(app.clone(), name.clone(), id, dyno.clone(), backend, lease);
        Ok(Slot {
            dyno,
            id,
            release: files.version,
            command: command.line.clone(),
            since: Utc::now(),
            crashes,
            port,
            inflight,
        })
    }

    /// Takes a dyno out of service: out of the router's table at once, then
    /// stopped as soon as the requests already sent to it are answered (or
    /// the grace period runs out), so no request is cut off.
    fn retire(&self, app: &AppName, slot: Slot) {
        self.routes.remove(app.as_str(), slot.id);
        let grace = self.cfg.grace;
        self.tasks.spawn(async move {
            let deadline = tokio::time::Instant::now() + grace;
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            while slot.inflight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline
            {
                tick.tick().await;
            }
            slot.dyno.stop();
        });
    }

    /// Follows one dyno: routes it while up, and restarts it if it crashes.
    fn watch(
        self: &Arc<Self>,
        app: AppName,
        name: DynoName,
        id: u64,
        dyno: Arc<Dyno>,
        backend: Option<Backend>,
        lease: Option<PortLease>,
    ) {
        let me = self.clone();
        self.tasks.spawn(async move {
            let _lease = lease;
            let mut state = dyno.watch_state();
            let mut up_since: Option<Instant> = None;
            loop {
                let s = *state.borrow_and_update();
                match (s, &backend) {
                    (State::Up, Some(backend)) => {
                        up_since.get_or_insert_with(Instant::now);
                        me.routes.add(app.as_str(), backend.clone());
                    }
                    (State::Up, None) => {
                        up_since.get_or_insert_with(Instant::now);
                    }
                    _ => me.routes.remove(app.as_str(), id),
                }
                if s.is_final() {
                    break;
                }
                if state.changed().await.is_err() {
                    break;
                }
            }
            me.routes.remove(app.as_str(), id);
            let crashed = dyno.state() == State::Crashed;
            me.ended(&app, &name, id, crashed, up_since.map(|t| t.elapsed()));
        });
    }

    fn ended(
        self: &Arc<Self>,
        app: &AppName,
        name: &DynoName,
        id: u64,
        crashed: bool,
        up_for: Option<Duration>,
    ) {
        let mut apps = self.lock();
        let Some(state) = apps.get_mut(app.as_str()) else {
            return;
        };
        state.leaving.retain(|d| !d.state().is_final());
        if !crashed || state.dynos.get(name).is_none_or(|s| s.id != id) {
            return;
        }
        if name.process.is_web() {
            let any_up = state
                .dynos
                .iter()
                .any(|(n, s)| n.process.is_web() && s.dyno.state() == State::Up);
            self.routes.set_crashed(app.as_str(), !any_up);
        }
        let Some(slot) = state.dynos.get_mut(name) else {
            return;
        };
        if up_for.is_some_and(|d| d >= BACKOFF_RESET) {
            slot.crashes = 0;
        }
        let delay = backoff(self.cfg.restart_base, slot.crashes);
        slot.crashes += 1;
        slot.since = Utc::now();
        let crashes = slot.crashes;
        let (me, app, name) = (self.clone(), app.clone(), name.clone());
        self.tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            me.restart_crashed(&app, &name, id, crashes);
        });
    }

    fn restart_crashed(self: &Arc<Self>, app: &AppName, name: &DynoName, id: u64, crashes: u32) {
        let files = {
            let apps = self.lock();
            let Some(state) = apps.get(app.as_str()) else {
                return;
            };
            match state.dynos.get(name) {
                Some(slot) if slot.id == id => state.files.clone(),
                _ => return,
            }
        };
        let Some(files) = files else { return };
        match self.start_dyno(app, &files, name, crashes) {
            Ok(slot) => {
                let mut apps = self.lock();
                if let Some(state) = apps.get_mut(app.as_str())
                    && state.dynos.get(name).is_some_and(|s| s.id == id)
                {
                    state.dynos.insert(name.clone(), slot);
                    return;
                }
                drop(apps);
            }
            Err(e) => self.bus.platform(
                app.as_str(),
                &name.to_string(),
                &format!("Could not restart: {e}"),
            ),
        }
    }

    /// `ps`: the app's dynos, formation ones then one-offs, by name.
    pub fn ps(&self, app: &AppName) -> Vec<DynoInfo> {
        let apps = self.lock();
        let Some(state) = apps.get(app.as_str()) else {
            return Vec::new();
        };
        state
            .dynos
            .iter()
            .map(|(name, slot)| DynoInfo {
                name: name.to_string(),
                process_type: name.process.to_string(),
                state: slot.dyno.state().to_string(),
                command: slot.command.clone(),
                release: slot.release,
                updated_at: slot.since,
                port: slot.port,
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
                    }),
            )
            .collect()
    }

    /// `ps:restart`: all dynos, a type, or one dyno.
    pub async fn restart(
        self: &Arc<Self>,
        app: &AppName,
        which: Option<&str>,
    ) -> Result<usize, ManagerError> {
        let victims: Vec<DynoName> = {
            let apps = self.lock();
            let state = apps.get(app.as_str());
            state
                .map(|s| {
                    s.dynos
                        .keys()
                        .filter(|n| match which {
                            None => true,
                            Some(w) if w.contains('.') => n.to_string() == w,
                            Some(w) => n.process.as_str() == w,
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        if let (true, Some(w)) = (victims.is_empty(), which) {
            return Err(ManagerError::NoSuchDyno {
                app: app.to_string(),
                dyno: w.to_owned(),
            });
        }
        {
            let mut apps = self.lock();
            if let Some(state) = apps.get_mut(app.as_str()) {
                for v in &victims {
                    if let Some(slot) = state.dynos.get_mut(v) {
                        // A release of 0 makes converge replace it.
                        slot.release = 0;
                    }
                }
            }
        }
        self.converge(app).await?;
        Ok(victims.len())
    }

    /// `ps:stop`: stops one dyno (the formation starts it again later only
    /// on the next converge, as Heroku restarts stopped dynos on demand).
    pub fn stop_dyno(&self, app: &AppName, dyno: &str) -> Result<(), ManagerError> {
        let name = DynoName::parse(dyno).map_err(|e| ManagerError::Command(e.to_string()))?;
        let mut apps = self.lock();
        let state = apps.get_mut(app.as_str());
        let slot = state.and_then(|s| s.dynos.remove(&name).map(|slot| (s, slot)));
        match slot {
            Some((state, slot)) => {
                state.leaving.push(slot.dyno.clone());
                self.retire(app, slot);
                Ok(())
            }
            None => Err(ManagerError::NoSuchDyno {
                app: app.to_string(),
                dyno: dyno.to_owned(),
            }),
        }
    }

    /// Runs a one-off dyno (`run.N`, or `release.N` for the release phase)
    /// of `release` and returns it; it ends `down`.
    pub async fn run_one_off(
        &self,
        app: &AppName,
        release: &Release,
        kind: &str,
        command_line: &str,
        stdin: Option<crate::dyno::output::AttachedStdin>,
    ) -> Result<Arc<Dyno>, ManagerError> {
        let files = self.release_files(app, release).await?;
        let command = Command::parse(command_line).map_err(ManagerError::Command)?;
        let cap = self.capacity();
        if cap.formations.max(cap.running) >= cap.capacity {
            return Err(ManagerError::Capacity(format!(
                "Cannot run a one-off dyno of {app}: this host's dyno capacity of {} (set by {}) \
                 is taken by formations. Scale something down, or {}.",
                cap.capacity, cap.limit, cap.how_to_raise
            )));
        }
        let n = self.next_run.fetch_add(1, Ordering::Relaxed);
        let name = format!("{kind}.{n}");
        let mut launch = self.launch(app, &files, &name, &command, None, true)?;
        launch.stdin = stdin;
        let dyno = Arc::new(Dyno::start(self.runtime.clone(), self.bus.clone(), launch));
        let mut apps = self.lock();
        let state = apps.entry(app.to_string()).or_default();
        state.one_offs.retain(|(d, _, _)| !d.state().is_final());
        state
            .one_offs
            .push((dyno.clone(), command.line.clone(), release.version));
        Ok(dyno)
    }

    /// Stops every dyno of an app (destroy) and forgets it.
    pub async fn remove_app(&self, app: &AppName) {
        let dynos: Vec<Arc<Dyno>> = {
            let mut apps = self.lock();
            let Some(state) = apps.remove(app.as_str()) else {
                return;
            };
            state
                .dynos
                .into_values()
                .map(|s| s.dyno)
                .chain(state.leaving)
                .chain(state.one_offs.into_iter().map(|o| o.0))
                .collect()
        };
        for d in &dynos {
            d.stop();
        }
        for d in &dynos {
            d.wait().await;
        }
        self.routes.forget(app.as_str());
        let _ = std::fs::remove_dir_all(self.releases_dir.join(app.as_str()));
    }

    /// Stops every dyno through the stop sequence and waits for them.
    pub async fn shutdown(&self) -> Vec<(String, Exit)> {
        let dynos: Vec<Arc<Dyno>> = {
            let mut apps = self.lock();
            apps.drain()
                .flat_map(|(_, s)| {
                    s.dynos
                        .into_values()
                        .map(|s| s.dyno)
                        .chain(s.leaving)
                        .chain(s.one_offs.into_iter().map(|o| o.0))
                })
                .collect()
        };
        for d in &dynos {
            d.stop();
        }
        let mut exits = Vec::new();
        for d in &dynos {
            exits.push((d.name().to_owned(), d.wait().await));
        }
        self.tasks.close();
        exits
    }
}
