//! Which formation dynos this manager runs: all of them on a single host;
//! in a cluster, this host's share ([`crate::cluster`]), shed at once when
//! the host is cut off.

use std::sync::Arc;

use super::Manager;
use crate::names::{AppName, DynoName};

/// Which formation dynos this host runs: every one on a single host; in a
/// cluster, those the scheduler assigned to it ([`crate::cluster`]).
pub trait Scope: Send + Sync {
    /// Whether `dyno` of `app` runs here.
    fn runs_here(&self, app: &AppName, dyno: &DynoName) -> bool;
    /// How many hosts share the apps' formations (admission checks this
    /// host's share of a formation against its capacity).
    fn hosts(&self) -> u32 {
        1
    }
}

/// A single host's scope: it runs every dyno.
pub struct Everything;

impl Scope for Everything {
    fn runs_here(&self, _: &AppName, _: &DynoName) -> bool {
        true
    }
}

impl Manager {
    /// Stops every formation dyno of `app` that its scope no longer
    /// holds, without reading the ledger: what a cluster host cut off from
    /// it does when its heartbeat lapses.
    pub fn shed(self: &Arc<Self>, app: &AppName) {
        let Some(lp) = self.existing_loop(app) else {
            return;
        };
        let mut state = lp.lock();
        let out: Vec<DynoName> = state
            .dynos
            .keys()
            .filter(|n| !self.scope.runs_here(app, n))
            .cloned()
            .collect();
        for name in out {
            if let Some(slot) = state.dynos.remove(&name) {
                state.leaving.push(slot.dyno.clone());
                self.retire(app, slot);
            }
        }
    }
}
