//! [`LocalHost`]: dynos in this process's wasmtime engine.
//!
//! A release is unpacked once under `releases/APP/vN/` and its components
//! prepared once (the engine shares a component prepared by the build);
//! each dyno copies the files into its own `/app` and instantiates the
//! prepared component. Web dynos get a `$PORT` leased from the host's
//! [`PortBook`] for as long as they run; by default it is reached in
//! memory ([`DynoPorts`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{
    DynoAddr, DynoHost, DynoKind, DynoSpec, HostUse, PlacementError, ReleasePlan, RunningDyno,
};
use crate::dyno::door::MemPort;
use crate::dyno::proxy::ProxyDoor;
use crate::dyno::world::World;
use crate::dyno::{
    Determinism, Dyno, Exit, Launch, PortBook, PortLease, Prepared, Runtime, Sandbox, State, Usage,
};
use crate::logbus::Bus;
use crate::names::AppName;
use crate::procfile::{Command, Procfile};
use crate::release::Release;
use crate::slug::SlugStore;

/// Releases of one app kept ready at once: the current one, the one it
/// replaced (its dynos may still be draining) and two more for rollbacks.
const READY_RELEASES: usize = 4;
/// Marks a release directory whose unpack finished (the platform's file,
/// not the app's).
const COMPLETE: &str = ".wdyno-complete";

/// Settings for every dyno this host starts.
#[derive(Debug, Clone)]
pub struct LocalHostConfig {
    pub grace: Duration,
    pub boot_timeout: Duration,
    pub memory: usize,
    /// Disk quota per dyno (`/app` + `/tmp`), bytes; `None`: unbounded.
    /// Only a process in a private mount namespace may set it
    /// (`dyno::disk`).
    pub disk: Option<u64>,
    pub egress: bool,
    pub determinism: Determinism,
    /// How web dynos' `$PORT`s are reached.
    pub dyno_ports: DynoPorts,
}

/// How the router reaches web dynos (`wdyno daemon --dyno-ports`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DynoPorts {
    /// In memory: a command dyno's `$PORT` is a virtual listener the
    /// router hands connections to, a proxy dyno's handler is called
    /// directly. No request crosses a socket.
    #[default]
    Memory,
    /// Real loopback ports, reachable with curl on the host (debugging).
    Real,
}

impl Default for LocalHostConfig {
    fn default() -> Self {
        LocalHostConfig {
            grace: crate::dyno::DEFAULT_GRACE,
            boot_timeout: crate::dyno::DEFAULT_BOOT_TIMEOUT,
            memory: crate::dyno::DEFAULT_MEMORY,
            disk: None,
            egress: true,
            determinism: Determinism::default(),
            dyno_ports: DynoPorts::default(),
        }
    }
}

/// A release unpacked and prepared: what dynos of it start from.
struct ReleaseFiles {
    version: u64,
    dir: PathBuf,
    procfile: Procfile,
    components: HashMap<String, Arc<Prepared>>,
}

impl ReleaseFiles {
    fn plan(&self) -> ReleasePlan {
        let weights = self
            .procfile
            .iter()
            .map(|(ty, cmd)| {
                let w = self
                    .components
                    .get(&cmd.component_path())
                    .map_or(1, |p| p.weight);
                (ty.to_string(), w)
            })
            .collect::<BTreeMap<_, _>>();
        ReleasePlan {
            version: self.version,
            procfile: self.procfile.clone(),
            weights,
        }
    }
}

/// This process as a dyno host.
pub struct LocalHost {
    name: String,
    runtime: Arc<Runtime>,
    bus: Bus,
    ports: PortBook,
    slugs: Arc<dyn SlugStore>,
    releases_dir: PathBuf,
    dynos_dir: PathBuf,
    cfg: LocalHostConfig,
    ready: Mutex<HashMap<String, Vec<Arc<ReleaseFiles>>>>,
    /// One unpack at a time: two dynos of a new release must not both
    /// unpack it into the same directory.
    unpacking: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl LocalHost {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        runtime: Arc<Runtime>,
        bus: Bus,
        ports: PortBook,
        slugs: Arc<dyn SlugStore>,
        home: &std::path::Path,
        cfg: LocalHostConfig,
    ) -> Self {
        LocalHost {
            name,
            runtime,
            bus,
            ports,
            slugs,
            releases_dir: home.join("releases"),
            dynos_dir: home.join("dynos"),
            cfg,
            ready: Mutex::new(HashMap::new()),
            unpacking: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn cached(&self, app: &AppName, version: u64) -> Option<Arc<ReleaseFiles>> {
        let ready = self.ready.lock().expect("host lock poisoned");
        ready
            .get(app.as_str())?
            .iter()
            .find(|f| f.version == version)
            .cloned()
    }

    async fn files(
        &self,
        app: &AppName,
        release: &Release,
    ) -> Result<Arc<ReleaseFiles>, PlacementError> {
        if let Some(f) = self.cached(app, release.version) {
            return Ok(f);
        }
        let _one = self.unpacking.lock().await;
        if let Some(f) = self.cached(app, release.version) {
            return Ok(f);
        }
        let slug = release
            .slug
            .clone()
            .ok_or_else(|| PlacementError::NotDeployed(app.to_string()))?;
        let dir = self
            .releases_dir
            .join(app.as_str())
            .join(format!("v{}", release.version));
        if !dir.join(COMPLETE).exists() {
            let d = dir.clone();
            blocking(move || {
                let _ = std::fs::remove_dir_all(&d);
                if let Some(parent) = d.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| PlacementError::Io {
                        what: format!("creating {}", parent.display()),
                        source: e,
                    })?;
                }
                Ok(())
            })
            .await?;
            self.slugs.unpack(&slug, &dir).await?;
            let d = dir.clone();
            blocking(move || {
                std::fs::write(d.join(COMPLETE), b"").map_err(|e| PlacementError::Io {
                    what: "marking the release unpacked".into(),
                    source: e,
                })
            })
            .await?;
        }
        let (runtime, types, d) = (
            self.runtime.clone(),
            release.process_types.clone(),
            dir.clone(),
        );
        let (procfile, components) = blocking(move || {
            let procfile = Procfile::from_defaults(&types)?;
            let mut components = HashMap::new();
            for (_, cmd) in procfile.iter() {
                let path = cmd.component_path();
                if !components.contains_key(&path) {
                    components.insert(path.clone(), runtime.prepare(&d.join(&path))?);
                }
            }
            Ok((procfile, components))
        })
        .await?;
        let files = Arc::new(ReleaseFiles {
            version: release.version,
            dir,
            procfile,
            components,
        });
        let mut ready = self.ready.lock().expect("host lock poisoned");
        let list = ready.entry(app.to_string()).or_default();
        list.push(files.clone());
        list.sort_by_key(|f| std::cmp::Reverse(f.version));
        list.truncate(READY_RELEASES);
        Ok(files)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PlacementError> + Send + 'static,
) -> Result<T, PlacementError> {
    crate::blocking::run(f, |why| PlacementError::Io {
        what: "a release's files".into(),
        source: std::io::Error::other(why),
    })
    .await
}

#[async_trait::async_trait]
impl DynoHost for LocalHost {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn prepare(
        &self,
        app: &AppName,
        release: &Release,
    ) -> Result<ReleasePlan, PlacementError> {
        Ok(self.files(app, release).await?.plan())
    }

    async fn start(&self, spec: DynoSpec) -> Result<Arc<dyn RunningDyno>, PlacementError> {
        let files = self.files(&spec.app, &spec.release).await?;
        let command = Command::parse(&spec.command).map_err(PlacementError::Command)?;
        let path = command.component_path();
        let prepared = match files.components.get(&path) {
            Some(p) => p.clone(),
            // A one-off may run any component of the slug.
            None => {
                let full = files.dir.join(&path);
                if !full.is_file() {
                    return Err(PlacementError::Command(format!(
                        "{}: no component {path} in release v{} of {}",
                        command.program, files.version, spec.app
                    )));
                }
                let runtime = self.runtime.clone();
                blocking(move || Ok(runtime.prepare(&full)?)).await?
            }
        };
        let web = spec.kind == DynoKind::Web;
        let lease = match web {
            true => Some(self.ports.lease().map_err(|e| PlacementError::Io {
                what: "finding a port for a web dyno".into(),
                source: e,
            })?),
            false => None,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let in_memory = self.cfg.dyno_ports == DynoPorts::Memory;
        let (door, proxy_door) = match (&lease, prepared.world(), in_memory) {
            (Some(l), World::Command, true) => (Some(MemPort::new(l.port())), None),
            (Some(_), World::Proxy, true) => (None, Some(Arc::new(ProxyDoor::default()))),
            _ => (None, None),
        };
        let sandbox = Sandbox {
            app: spec.app.to_string(),
            dyno: spec.name.clone(),
            release_version: files.version,
            files: files.dir.clone(),
            work_dir: self
                .dynos_dir
                .join(spec.app.as_str())
                .join(format!("{}.{id}", spec.name)),
            config: spec.release.config.clone(),
            port: lease.as_ref().map(|l| l.port()),
            door: door.clone(),
            ports: self.ports.clone(),
            egress: self.cfg.egress,
            memory: self.cfg.memory,
            disk: self.cfg.disk,
            determinism: self.cfg.determinism,
        };
        let args = command.argv(&sandbox.env());
        let launch = Launch {
            sandbox,
            prepared,
            command_line: command.line.clone(),
            args,
            web,
            one_off: spec.kind == DynoKind::OneOff,
            boot_timeout: self.cfg.boot_timeout,
            grace: self.cfg.grace,
            stdin: spec.stdin,
            proxy_door: proxy_door.clone(),
        };
        let dyno = Dyno::start(self.runtime.clone(), self.bus.clone(), launch);
        let address = lease.as_ref().map(|l| match (door, proxy_door) {
            (Some(door), _) => DynoAddr::Memory(door),
            (_, Some(door)) => DynoAddr::Handler {
                port: l.port(),
                door,
            },
            _ => DynoAddr::Tcp {
                port: l.port(),
                v6: dyno.listens_v6(),
            },
        });
        Ok(Arc::new(LocalDyno {
            dyno,
            address,
            _lease: lease,
        }))
    }

    fn capacity(&self) -> HostUse {
        let slots = self.runtime.slots();
        HostUse {
            capacity: slots.capacity(),
            running: slots.dynos_in_use(),
        }
    }

    async fn forget(&self, app: &AppName) {
        self.ready
            .lock()
            .expect("host lock poisoned")
            .remove(app.as_str());
        self.runtime.slots().forget_app(app.as_str());
        let dir = self.releases_dir.join(app.as_str());
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }
}

/// A dyno of this process, with the `$PORT` it holds while it runs.
struct LocalDyno {
    dyno: Dyno,
    address: Option<DynoAddr>,
    _lease: Option<PortLease>,
}

#[async_trait::async_trait]
impl RunningDyno for LocalDyno {
    fn name(&self) -> &str {
        self.dyno.name()
    }
    fn state(&self) -> State {
        self.dyno.state()
    }
    fn watch_state(&self) -> watch::Receiver<State> {
        self.dyno.watch_state()
    }
    fn address(&self) -> Option<DynoAddr> {
        self.address.clone()
    }
    fn started(&self) -> Instant {
        self.dyno.started()
    }
    fn usage(&self) -> Usage {
        self.dyno.usage()
    }
    fn stop(&self) {
        self.dyno.stop()
    }
    async fn wait(&self) -> Exit {
        self.dyno.wait().await
    }
    async fn wait_up_or_queued(&self) {
        self.dyno.wait_up_or_queued().await
    }
}
