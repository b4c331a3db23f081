//! The composition root: builds a whole platform from `$WDYNO_HOME` —
//! ledger, slug store, log bus, wasm runtime, dyno host, manager, service
//! layer — and runs it: the control API, the router (on a thread of its
//! own) and the reconcile loops, until shutdown stops every dyno.
//!
//! This is the only module that names the implementations behind the
//! seams ([`SledLedger`], [`SlugDir`], [`LocalBus`], [`LocalHost`]); the
//! rest of the platform holds them as traits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::cluster::hosts::cluster_token;
use crate::cluster::peers::ClusterPeers;
use crate::cluster::tee::Tee;
use crate::cluster::{Cluster, ClusterConfig};
use crate::deploy::Builder;
use crate::drain::{Drains, tls_config};
use crate::dyno::{PortBook, Runtime, RuntimeConfig};
use crate::ledger::{Ledger, NatsLedger};
use crate::logbus::{Bus, LocalBus, StreamBus};
use crate::manager::{Manager, ManagerConfig};
use crate::placement::LocalHost;
use crate::router::{RouteTable, RouterConfig};
use crate::service::{Parts, Peers, Service};
use crate::slug::{Limits, ObjectSlugs, SlugStore};

#[path = "platform/cluster.rs"]
mod cluster;
#[path = "platform/home.rs"]
mod home;

use cluster::ClusterParts;
use home::{host_name, open_home, owner_email, write_private};

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
        let (manager, parts) = match (&cluster, nats_ledger) {
            (Some(c), Some(nats)) => {
                let (manager, parts) = ClusterParts::join(
                    c,
                    &cfg,
                    nats,
                    host,
                    ledger.clone(),
                    bus.clone(),
                    routes.clone(),
                )
                .await?;
                (manager, Some(parts))
            }
            _ => (
                Manager::new(
                    host,
                    ledger.clone(),
                    bus.clone(),
                    cfg.manager.clone(),
                    routes.clone(),
                ),
                None,
            ),
        };
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
