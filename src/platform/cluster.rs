//! A cluster host's own parts beside the platform's (see
//! [`crate::cluster`]): membership, assignments, the dynos of every host,
//! the scheduler, and the loops that run them.

use std::sync::Arc;

use super::{Platform, PlatformConfig, PlatformError};
use crate::cluster::Cluster;
use crate::cluster::assignments::Assignments;
use crate::cluster::dynos::Dynos;
use crate::cluster::hosts::{HostRecord, Membership};
use crate::cluster::schedule::Scheduler;
use crate::ledger::{Ledger, NatsLedger};
use crate::logbus::Bus;
use crate::manager::Manager;
use crate::placement::DynoHost;
use crate::router::RouteTable;

/// A cluster host's own parts (see [`crate::cluster`]).
pub(super) struct ClusterParts {
    pub(super) membership: Arc<Membership>,
    pub(super) assignments: Arc<Assignments>,
    pub(super) dynos: Arc<Dynos>,
    pub(super) scheduler: std::sync::Mutex<Option<Scheduler>>,
    pub(super) ledger: Arc<NatsLedger>,
    pub(super) addrs: Arc<std::sync::Mutex<Addrs>>,
    pub(super) peer_port: u16,
    pub(super) advertise: Option<std::net::IpAddr>,
    pub(super) servers: Vec<String>,
}

/// Where this host's ports are, as other hosts reach them.
#[derive(Clone, Copy)]
pub(super) struct Addrs {
    pub(super) router: std::net::SocketAddr,
    pub(super) peer: std::net::SocketAddr,
    pub(super) api: std::net::SocketAddr,
}

impl ClusterParts {
    /// Joins the cluster as `c`'s host: heartbeats (its record read from
    /// the manager and the addresses `advertise` and `run` fill in), then
    /// the manager of its share of the dynos.
    pub(super) async fn join(
        c: &Cluster,
        cfg: &PlatformConfig,
        nats: Arc<NatsLedger>,
        host: Arc<dyn DynoHost>,
        ledger: Arc<dyn Ledger>,
        bus: Bus,
        routes: RouteTable,
    ) -> Result<(Arc<Manager>, ClusterParts), PlatformError> {
        let addrs = Arc::new(std::sync::Mutex::new(Addrs {
            router: ([0, 0, 0, 0], 0).into(),
            peer: ([0, 0, 0, 0], 0).into(),
            api: ([0, 0, 0, 0], 0).into(),
        }));
        let manager_cell: Arc<std::sync::OnceLock<Arc<Manager>>> = Arc::default();
        let started_at = chrono::Utc::now();
        let (addrs2, cell, name) = (addrs.clone(), manager_cell.clone(), c.host().to_owned());
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
            bus,
            cfg.manager.clone(),
            routes,
        );
        let _ = manager_cell.set(manager.clone());
        let parts = ClusterParts {
            dynos: Dynos::open(c, membership.clone()).await?,
            scheduler: std::sync::Mutex::new(Some(
                Scheduler::open(c, membership.clone(), ledger).await?,
            )),
            membership,
            assignments,
            ledger: nats,
            addrs,
            peer_port: cfg.peer_port,
            advertise: cfg.advertise,
            servers: cfg
                .cluster
                .as_ref()
                .map(|c| c.servers.clone())
                .unwrap_or_default(),
        };
        Ok((manager, parts))
    }
}

impl Platform {
    /// A cluster host's loops: following its assignments, publishing its
    /// dynos, following the others', scheduling while it holds the lease,
    /// and following the ledger's changes made on other hosts.
    pub(super) async fn start_cluster(
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
