//! The platform's hosts: `wdyno hosts`, and what a cluster host does
//! when the ledger changes through another host.

use super::Service;
use crate::ledger::LedgerError;
use crate::manager::{CapacityUse, DynoInfo};
use crate::names::AppName;

/// A host of the platform, as `wdyno hosts` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostInfo {
    pub name: String,
    pub state: &'static str,
    /// Dynos it runs.
    pub dynos: usize,
    /// Where other hosts reach it (a cluster's hosts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<HostAddresses>,
    pub heartbeat_at: chrono::DateTime<chrono::Utc>,
    pub capacity: CapacityUse,
}

/// The other hosts of a cluster, as the service shows them.
pub trait Peers: Send + Sync {
    /// Every host, this one included.
    fn hosts(&self) -> Vec<HostInfo>;
    /// `app`'s dynos on the other hosts that are up.
    fn dynos_elsewhere(&self, app: &AppName) -> Vec<DynoInfo>;
}

/// A cluster host's ports, as the others reach them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostAddresses {
    pub router: std::net::SocketAddr,
    pub peer: std::net::SocketAddr,
    pub api: std::net::SocketAddr,
}

impl Service {
    /// The ledger says `app` changed, perhaps through another host of a
    /// cluster: a new app is opened here, a destroyed one's dynos stop, and
    /// this host's share of its formation is reconciled.
    pub async fn changed_elsewhere(&self, app: &AppName) {
        match self.ledger.app(app).await {
            Ok(record) => {
                if !self.manager.routes().exists(app.as_str()) {
                    self.restore(&record);
                }
                self.manager
                    .routes()
                    .set_routing(app.as_str(), record.routing);
                self.start_drains(&record);
                self.manager.request(app);
            }
            Err(LedgerError::AppNotFound(_)) => {
                self.manager.remove_app(app).await;
                self.drains.sync(app.as_str(), &[]);
            }
            Err(e) => tracing::warn!("{app} changed, but reading it failed: {e}"),
        }
    }

    /// This host, as `wdyno hosts` shows it.
    pub fn hosts(&self) -> Vec<HostInfo> {
        if let Some(peers) = &self.peers {
            return peers.hosts();
        }
        vec![HostInfo {
            name: self.manager.host().name(),
            state: "up",
            dynos: self.manager.capacity().running as usize,
            addresses: None,
            heartbeat_at: chrono::Utc::now(),
            capacity: self.manager.capacity(),
        }]
    }
}
