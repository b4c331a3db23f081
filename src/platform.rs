//! The composition root: builds a whole platform from `$WDYNO_HOME` —
//! ledger, slug store, log bus, wasm runtime, dyno host, manager, service
//! layer — and runs it: the control API, the router (on a thread of its
//! own) and the reconcile loops, until shutdown stops every dyno.
//!
//! This is the only module that names the implementations behind the
//! seams ([`SledLedger`], [`SlugDir`], [`LocalBus`], [`LocalHost`]); the
//! rest of the platform holds them as traits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio::net::TcpListener;

use crate::cluster::dynos::Dynos;
use crate::cluster::hosts::{HostRecord, Membership, cluster_token};
use crate::cluster::peers::ClusterPeers;
use crate::cluster::schedule::{Assignments, Scheduler};
use crate::cluster::tee::Tee;
use crate::cluster::{Cluster, ClusterConfig};
use crate::deploy::Builder;
use crate::drain::{Drains, tls_config};
use crate::dyno::{PortBook, Runtime, RuntimeConfig};
use crate::ledger::{Ledger, NatsLedger, SledLedger};
use crate::logbus::{Bus, LocalBus, StreamBus};
use crate::manager::{Manager, ManagerConfig};
use crate::placement::LocalHost;
use crate::router::{RouteTable, RouterConfig};
use crate::service::{Parts, Peers, Service};
use crate::slug::{Limits, ObjectSlugs, SlugDir, SlugStore};

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Slug(#[from] crate::slug::SlugError),
    #[error(transparent)]
    Dyno(#[from] crate::dyno::DynoError),
    #[error(transparent)]
    Manager(#[from] crate::manager::ManagerError),
    #[error(transparent)]
    Drain(#[from] crate::drain::DrainError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PlatformError {
    let what = what.into();
    move |source| PlatformError::Io { what, source }
}

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub home: PathBuf,
    pub manager: ManagerConfig,
    pub router: RouterConfig,
    pub compile_timeout: Duration,
    pub slug_limits: Limits,
    /// Buildpack caches (default `$WDYNO_HOME/cache/build`).
    pub build_cache: Option<PathBuf>,
    /// The operator's narrowing of the host's dyno capacity.
    pub capacity: crate::dyno::CapacityConfig,
    /// Host-only ports (loopback, link-local) opened to dynos.
    pub allow_host_ports: Vec<u16>,
    /// Run buildpacks in the build sandbox (the default). `false` only for
    /// `wdyno local` and `wdyno daemon --unsafe-builds`: a build then runs
    /// as this process, with its files and environment.
    pub sandbox_builds: bool,
    /// Largest number of open connections the API serves at once.
    pub max_api_connections: usize,
    /// CA certificates (PEM) TLS drains trust besides the Mozilla roots.
    pub drain_ca: Option<PathBuf>,
    /// How often runtime metrics are written (Heroku's 20 s).
    pub metrics_every: Duration,
    /// Join this cluster (`--cluster`, `--host`) instead of running alone.
    pub cluster: Option<ClusterConfig>,
    /// In a cluster: the router's peer port (0: any free port).
    pub peer_port: u16,
    /// In a cluster: the address other hosts reach this one's ports at
    /// (default: the address they are bound to).
    pub advertise: Option<std::net::IpAddr>,
}

impl PlatformConfig {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        PlatformConfig {
            home: home.into(),
            manager: ManagerConfig::default(),
            router: RouterConfig::default(),
            compile_timeout: crate::buildpack::DEFAULT_COMPILE_TIMEOUT,
            slug_limits: Limits::default(),
            build_cache: None,
            capacity: Default::default(),
            allow_host_ports: Vec::new(),
            sandbox_builds: true,
            max_api_connections: crate::api::MAX_CONNECTIONS,
            drain_ca: None,
            metrics_every: crate::metrics::SAMPLE_EVERY,
            cluster: None,
            peer_port: 0,
            advertise: None,
        }
    }
}

/// A platform, built and ready to [`run`](Platform::run).
pub struct Platform {
    home: PathBuf,
    service: Arc<Service>,
    runtime: Arc<Runtime>,
    bus: Bus,
    ports: PortBook,
    routes: RouteTable,
    token: String,
    router: RouterConfig,
    max_api_connections: usize,
    metrics_every: Duration,
    /// In a cluster: what this host runs beside the platform's parts.
    cluster: Option<ClusterParts>,
}

/// A cluster host's own parts (see [`crate::cluster`]).
struct ClusterParts {
    membership: Arc<Membership>,
    assignments: Arc<Assignments>,
    dynos: Arc<Dynos>,
    scheduler: std::sync::Mutex<Option<Scheduler>>,
    ledger: Arc<NatsLedger>,
    addrs: Arc<std::sync::Mutex<Addrs>>,
    peer_port: u16,
    advertise: Option<std::net::IpAddr>,
    servers: Vec<String>,
}

/// What keeps the platform's state: this home's, or the cluster's.
struct Stores {
    ledger: Arc<dyn Ledger>,
    /// The cluster's ledger, followed for changes other hosts make.
    nats_ledger: Option<Arc<NatsLedger>>,
    slugs: Arc<dyn SlugStore>,
    bus: Bus,
    /// The API token.
    token: String,
}

/// Where this host's ports are, as other hosts reach them.
#[derive(Clone, Copy)]
struct Addrs {
    router: std::net::SocketAddr,
    peer: std::net::SocketAddr,
    api: std::net::SocketAddr,
}

impl Platform {
    /// Opens (or creates) `$WDYNO_HOME`: the ledger (release phases a
    /// crash cut short marked failed), the slug store (orphan slugs
    /// removed), the built-in buildpacks, the API token.
    pub async fn open(cfg: PlatformConfig) -> Result<Arc<Self>, PlatformError> {
        let home = cfg.home.clone();
        let cluster = match &cfg.cluster {
            Some(cc) => Some(Cluster::connect(cc).await?),
            None => None,
        };
        let (sled, slug_dir, token) = {
            let (home, limits, alone) = (home.clone(), cfg.slug_limits, cluster.is_none());
            tokio::task::spawn_blocking(move || open_home(&home, limits, alone))
                .await
                .map_err(|e| io("opening the home")(std::io::Error::other(e.to_string())))??
        };
        let own_bus = LocalBus::shared();
        let Stores {
            ledger,
            nats_ledger,
            slugs,
            bus,
            token,
        } = match (&cluster, sled) {
            (Some(c), _) => {
                // Every host serves the API with the cluster's token.
                let token = cluster_token(c, &token).await?;
                write_private(&home.join("api-token"), &format!("{token}\n"))?;
                let nats = Arc::new(NatsLedger::open(c).await?);
                let bus: Bus = Arc::new(Tee {
                    cluster: StreamBus::open(c).await?,
                    own: own_bus.clone(),
                });
                let slugs = Arc::new(ObjectSlugs::open(c, slug_dir).await?);
                Stores {
                    ledger: nats.clone(),
                    nats_ledger: Some(nats),
                    slugs,
                    bus,
                    token,
                }
            }
            (None, Some(sled)) => {
                let ledger: Arc<dyn Ledger> = Arc::new(sled);
                // A crash cut these short; in a cluster another host may
                // be running its release phase right now.
                for (app, version) in ledger.recover().await? {
                    tracing::warn!("{app} v{version}: release phase interrupted, marked failed");
                }
                Stores {
                    ledger,
                    nats_ledger: None,
                    slugs: Arc::new(slug_dir),
                    bus: own_bus.clone(),
                    token,
                }
            }
            (None, None) => unreachable!("a home opened alone has its sled ledger"),
        };
        let orphans = slugs.retain(&ledger.slugs_in_use().await?).await?;
        if orphans > 0 {
            tracing::info!("removed {orphans} orphan slug files");
        }
        let runtime = {
            let rc = RuntimeConfig {
                cache_dir: home.join("cache/compiled"),
                max_memory: cfg.manager.memory,
                pooling: true,
                epochs: true,
                capacity: cfg.capacity,
            };
            tokio::task::spawn_blocking(move || Runtime::new(&rc))
                .await
                .map_err(|e| {
                    io("starting the wasm runtime")(std::io::Error::other(e.to_string()))
                })??
        };
        let runtime = Arc::new(runtime);
        tracing::info!("{}", runtime.slots().capacity().describe());
        let routes = RouteTable::new();
        let ports = PortBook::new();
        for &port in &cfg.allow_host_ports {
            ports.allow_host_port(port);
        }
        let host_name = match &cfg.cluster {
            Some(cc) => cc.host.clone(),
            None => host_name(),
        };
        let host = Arc::new(LocalHost::new(
            host_name,
            runtime.clone(),
            bus.clone(),
            ports.clone(),
            slugs.clone(),
            &home,
            cfg.manager.host(),
        ));
        let addrs = Arc::new(std::sync::Mutex::new(Addrs {
            router: ([0, 0, 0, 0], 0).into(),
            peer: ([0, 0, 0, 0], 0).into(),
            api: ([0, 0, 0, 0], 0).into(),
        }));
        let manager_cell: Arc<std::sync::OnceLock<Arc<Manager>>> = Arc::default();
        let mut parts = None;
        let manager = match (&cluster, nats_ledger) {
            (Some(c), Some(nats)) => {
                let started_at = chrono::Utc::now();
                let (addrs2, cell, name) =
                    (addrs.clone(), manager_cell.clone(), c.host().to_owned());
                let membership = Membership::join(c, move || {
                    let a = *addrs2.lock().expect("addresses lock");
                    HostRecord {
                        name: name.clone(),
                        router: a.router,
                        peer: a.peer,
                        api: a.api,
                        capacity: cell.get().map(|m| m.capacity()).unwrap_or_default(),
                        started_at,
                        heartbeat_at: chrono::Utc::now(),
                        up_since: started_at,
                    }
                })
                .await?;
                let assignments = Assignments::open(c, membership.clone()).await?;
                let manager = Manager::scoped(
                    host,
                    assignments.clone(),
                    ledger.clone(),
                    bus.clone(),
                    cfg.manager.clone(),
                    routes.clone(),
                );
                parts = Some(ClusterParts {
                    dynos: Dynos::open(c, membership.clone()).await?,
                    scheduler: std::sync::Mutex::new(Some(
                        Scheduler::open(c, membership.clone(), ledger.clone()).await?,
                    )),
                    membership,
                    assignments,
                    ledger: nats,
                    addrs: addrs.clone(),
                    peer_port: cfg.peer_port,
                    advertise: cfg.advertise,
                    servers: cfg
                        .cluster
                        .as_ref()
                        .map(|c| c.servers.clone())
                        .unwrap_or_default(),
                });
                manager
            }
            _ => Manager::new(
                host,
                ledger.clone(),
                bus.clone(),
                cfg.manager.clone(),
                routes.clone(),
            ),
        };
        let _ = manager_cell.set(manager.clone());
        let builder = Builder {
            slugs,
            runtime: runtime.clone(),
            home: home.clone(),
            cache: cfg
                .build_cache
                .clone()
                .unwrap_or_else(|| home.join("cache/build")),
            compile_timeout: cfg.compile_timeout,
            isolation: if cfg.sandbox_builds {
                crate::buildpack::Isolation::sandboxed(&home)
            } else {
                crate::buildpack::Isolation::Unsandboxed
            },
        };
        let ca = match &cfg.drain_ca {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(io(format!("reading the drain CA file {}", path.display())))?,
            ),
            None => None,
        };
        // A cluster host's drains send the lines made here, so each line
        // leaves the cluster once.
        let drains = Arc::new(Drains::new(own_bus, tls_config(ca.as_deref())?));
        let peers: Option<Arc<dyn Peers>> = parts.as_ref().map(|p| {
            Arc::new(ClusterPeers {
                membership: p.membership.clone(),
                dynos: p.dynos.clone(),
            }) as Arc<dyn Peers>
        });
        let service = Arc::new(Service::new(Parts {
            ledger: ledger.clone(),
            bus: bus.clone(),
            manager,
            builder,
            drains,
            home: home.clone(),
            owner: owner_email(),
            peers,
        }));
        for app in ledger.apps().await? {
            service.restore(&app);
        }
        Ok(Arc::new(Platform {
            home,
            service,
            runtime,
            bus,
            ports,
            routes,
            router: RouterConfig {
                peer_token: parts.as_ref().map(|_| token.clone()),
                ..cfg.router
            },
            token,
            max_api_connections: cfg.max_api_connections,
            metrics_every: cfg.metrics_every,
            cluster: parts,
        }))
    }

    /// The service layer every front end calls.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The API's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Reserves the platform's ports and writes `api` and `router` for the
    /// CLI. Idempotent; `run` does it too.
    pub fn advertise(
        &self,
        api: std::net::SocketAddr,
        router: std::net::SocketAddr,
    ) -> Result<(), PlatformError> {
        self.ports.reserve(api.port());
        self.ports.reserve(router.port());
        if let Some(c) = &self.cluster {
            let ip = c.advertise.unwrap_or(router.ip());
            let mut a = c.addrs.lock().expect("addresses lock");
            a.router = (ip, router.port()).into();
            a.api = (ip, api.port()).into();
        }
        write_private(&self.home.join("api"), &format!("http://{api}\n"))?;
        write_private(&self.home.join("router"), &format!("http://{router}\n"))
    }

    /// What the API adds to records on this host: the owner, the router's
    /// port, the home.
    pub fn site(&self, router_port: u16) -> crate::api::Site {
        let owner = owner_email();
        let since = std::fs::metadata(self.home.join("api-token"))
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_else(|_| chrono::Utc::now());
        crate::api::Site {
            owner,
            router_port,
            home: self.home.clone(),
            since,
        }
    }

    /// Runs the API and the router on the given listeners, reconciles every
    /// app, and on `shutdown` stops every dyno through the stop sequence
    /// before returning.
    pub async fn run(
        self: Arc<Self>,
        api: TcpListener,
        router: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), PlatformError> {
        let api_addr = api.local_addr().map_err(io("reading the API address"))?;
        let router_addr = router
            .local_addr()
            .map_err(io("reading the router address"))?;
        self.advertise(api_addr, router_addr)?;
        let peer = match &self.cluster {
            Some(c) => {
                let l = TcpListener::bind((router_addr.ip(), c.peer_port))
                    .await
                    .map_err(io(format!(
                        "binding the router's peer port {}",
                        c.peer_port
                    )))?;
                let at = l.local_addr().map_err(io("reading the peer address"))?;
                self.ports.reserve(at.port());
                c.addrs.lock().expect("addresses lock").peer =
                    (c.advertise.unwrap_or(at.ip()), at.port()).into();
                Some(
                    l.into_std()
                        .map_err(io("handing the peer port to the router's thread"))?,
                )
            }
            None => None,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let api_task = tokio::spawn(crate::api::serve(
            api,
            crate::api::Api::new(
                self.service.clone(),
                self.token.clone(),
                self.site(router_addr.port()),
            ),
            self.max_api_connections,
            wait(stop_rx.clone()),
        ));
        // The router has a thread of its own: dynos busy on every worker
        // thread cannot delay routing, and its CPU is its own to measure.
        let router = router
            .into_std()
            .map_err(io("handing the router's socket to its thread"))?;
        let (routes, bus, cfg) = (self.routes.clone(), self.bus.clone(), self.router.clone());
        let stop = wait(stop_rx.clone());
        let peer_serve = peer.map(|p| {
            let (routes, bus, cfg) = (routes.clone(), bus.clone(), cfg.clone());
            let stop = wait(stop_rx.clone());
            async move {
                match TcpListener::from_std(p) {
                    Ok(l) => crate::router::serve_peer(l, routes, bus, cfg, stop).await,
                    Err(e) => tracing::error!("router peer socket: {e}"),
                }
            }
        });
        let (router_done, router_task) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("wdyno-router".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return tracing::error!("starting the router's runtime: {e}"),
                };
                rt.block_on(async move {
                    let serve = async move {
                        match TcpListener::from_std(router) {
                            Ok(l) => crate::router::serve(l, routes, bus, cfg, stop).await,
                            Err(e) => tracing::error!("router socket: {e}"),
                        }
                    };
                    match peer_serve {
                        Some(peer) => {
                            tokio::join!(serve, peer);
                        }
                        None => serve.await,
                    }
                });
                let _ = router_done.send(());
            })
            .map_err(io("starting the router's thread"))?;
        let metrics = {
            let (service, every) = (self.service.clone(), self.metrics_every);
            tokio::spawn(async move { service.sample_metrics(every).await })
        };
        tracing::info!("API on http://{api_addr}, router on http://{router_addr}");
        self.service.manager().reconcile_all().await?;
        let cluster_tasks = match &self.cluster {
            Some(c) => self.start_cluster(c).await?,
            None => Vec::new(),
        };
        shutdown.await;
        if let Some(c) = &self.cluster {
            // Others place this host's dynos as soon as it is gone.
            c.membership.leave();
        }
        for t in cluster_tasks {
            t.abort();
        }
        tracing::info!("stopping every dyno");
        metrics.abort();
        let _ = stop_tx.send(true);
        self.service.manager().shutdown().await;
        let _ = api_task.await;
        let _ = router_task.await;
        let _ = std::fs::remove_file(self.home.join("api"));
        let _ = std::fs::remove_file(self.home.join("router"));
        Ok(())
    }
}

impl Platform {
    /// A cluster host's loops: following its assignments, publishing its
    /// dynos, following the others', scheduling while it holds the lease,
    /// and following the ledger's changes made on other hosts.
    async fn start_cluster(
        &self,
        c: &ClusterParts,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, PlatformError> {
        // Dynos reach no NATS server's and no host's port: their
        // addresses are fenced as this host's own are.
        for s in &c.servers {
            let Some((host, port)) = url::Url::parse(s)
                .ok()
                .and_then(|u| Some((u.host_str()?.to_owned(), u.port().unwrap_or(4222))))
            else {
                continue;
            };
            self.ports.reserve(port);
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(addrs) => addrs.for_each(|a| self.ports.fence(a.ip())),
                Err(e) => tracing::warn!("resolving the NATS server {s}: {e}"),
            }
        }
        let manager = self.service.manager().clone();
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let changes = c.ledger.watch().await?;
        let mut tasks = vec![
            tokio::spawn(c.assignments.clone().follow(manager.clone())),
            tokio::spawn(c.dynos.clone().publish(manager)),
            tokio::spawn(c.dynos.clone().follow(self.routes.clone())),
        ];
        if let Some(s) = c.scheduler.lock().expect("scheduler lock").take() {
            tasks.push(tokio::spawn(s.run(events.subscribe())));
        }
        let (ports, membership) = (self.ports.clone(), c.membership.clone());
        tasks.push(tokio::spawn(async move {
            let mut changed = membership.changes();
            loop {
                for (_, h) in membership.hosts() {
                    for a in [h.record.router, h.record.peer, h.record.api] {
                        ports.reserve(a.port());
                        if !a.ip().is_unspecified() {
                            ports.fence(a.ip());
                        }
                    }
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        }));
        let service = self.service.clone();
        tasks.push(tokio::spawn(async move {
            use futures::StreamExt;
            let mut changes = changes;
            while let Some(app) = changes.next().await {
                let _ = events.send(app.clone());
                service.changed_elsewhere(&app).await;
            }
            tracing::warn!("the ledger's watch ended");
        }));
        Ok(tasks)
    }
}

/// This host's name, as `wdyno hosts` shows it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The files of the home: private dirs, buildpacks, ledger (`alone`: a
/// cluster host's is the cluster's), slugs (a cluster host's cache of
/// them), token.
fn open_home(
    home: &Path,
    limits: Limits,
    alone: bool,
) -> Result<(Option<SledLedger>, SlugDir, String), PlatformError> {
    make_private_dir(home)?;
    let token = api_token(home)?;
    crate::buildpack::install_builtins(&home.join("buildpacks"))
        .map_err(io("writing the built-in buildpacks"))?;
    let ledger = match alone {
        true => Some(SledLedger::open(&home.join("db"))?),
        false => None,
    };
    let slugs = SlugDir::open(home.join("slugs"), limits)?;
    // A home made by an older wdyno (or under a lax umask) keeps no
    // secret readable by other users: the config vars are in db/.
    for dir in ["db", "slugs"].iter().filter(|d| home.join(d).exists()) {
        restrict_tree(&home.join(dir))
            .map_err(io(format!("making {} private", home.join(dir).display())))?;
    }
    // Dyno dirs of a previous run are all stale.
    let _ = std::fs::remove_dir_all(home.join("dynos"));
    Ok((ledger, slugs, token))
}

/// Creates `home` (mode 0700) or takes an existing one's group and other
/// permissions away: it holds the API token and every app's config.
fn make_private_dir(home: &Path) -> Result<(), PlatformError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .and_then(|()| std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)))
        .map_err(io(format!("creating {}", home.display())))
}

/// Takes group and other permissions off everything under `dir`.
fn restrict_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(dir)?;
    if md.file_type().is_symlink() {
        return Ok(());
    }
    let mode = md.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & !0o077))?;
    }
    if md.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            restrict_tree(&entry?.path())?;
        }
    }
    Ok(())
}

/// The API token: kept across restarts in `api-token` (mode 0600).
fn api_token(home: &Path) -> Result<String, PlatformError> {
    let path = home.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let bytes: [u8; 32] = rand::rng().random();
    let token = hex::encode(bytes);
    write_private(&path, &format!("{token}\n"))?;
    Ok(token)
}

fn write_private(path: &Path, text: &str) -> Result<(), PlatformError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("writing {}", tmp.display())))?;
    f.write_all(text.as_bytes())
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))
}

/// The email of the account a daemon serves: `WDYNO_OWNER_EMAIL`, else
/// `$USER@localhost`.
pub fn owner_email() -> String {
    std::env::var("WDYNO_OWNER_EMAIL").unwrap_or_else(|_| {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "wdyno".into());
        format!("{user}@localhost")
    })
}
