//! The cluster's hosts and their dynos, as the service layer shows them
//! (`wdyno hosts`, `ps`).

use std::sync::Arc;
use std::time::Instant;

use super::dynos::Dynos;
use super::hosts::Membership;
use crate::manager::DynoInfo;
use crate::names::AppName;
use crate::service::{HostAddresses, HostInfo, Peers};

pub struct ClusterPeers {
    pub membership: Arc<Membership>,
    pub dynos: Arc<Dynos>,
}

impl Peers for ClusterPeers {
    fn hosts(&self) -> Vec<HostInfo> {
        let now = Instant::now();
        let counts = self.dynos.counts();
        self.membership
            .hosts()
            .into_iter()
            .map(|(name, seen)| HostInfo {
                state: if seen.is_up(now) { "up" } else { "down" },
                dynos: match seen.is_up(now) {
                    true => counts.get(&name).copied().unwrap_or(0),
                    false => 0,
                },
                addresses: Some(HostAddresses {
                    router: seen.record.router,
                    peer: seen.record.peer,
                    api: seen.record.api,
                }),
                heartbeat_at: seen.record.heartbeat_at,
                capacity: seen.record.capacity,
                name,
            })
            .collect()
    }

    fn dynos_elsewhere(&self, app: &AppName) -> Vec<DynoInfo> {
        self.dynos
            .elsewhere(app.as_str())
            .into_values()
            .flatten()
            .collect()
    }
}
