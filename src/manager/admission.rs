//! Admission: whether a formation fits the host before it is written.
//!
//! The host's capacity (see [`crate::dyno::capacity`]) is counted in slots;
//! every app's formation takes its dynos' slots on its current release,
//! one-off dynos theirs while they run. A scale that does not fit, or that
//! would give one app more than its share, is refused with the limit, the
//! use and what is free, before the ledger changes or a dyno starts.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Manager, ManagerError, formation_slots};
use crate::formation::Formation;
use crate::names::{AppName, ProcessType};

impl Manager {
    /// `ps:scale`: admits the new formation against the host's capacity
    /// and the app's share of it, writes it to the ledger and reconciles.
    /// A formation that does not fit is refused before anything changes.
    pub async fn scale(
        self: &Arc<Self>,
        app: &AppName,
        changes: &BTreeMap<ProcessType, u32>,
    ) -> Result<Formation, ManagerError> {
        if let Some(ty) = changes.keys().find(|t| !scalable(t)) {
            return Err(ManagerError::NotScalable(format!(
                "Cannot scale {ty}: the {ty} process type is the release phase; it runs once per deploy, before the release goes live, and has no dynos to scale"
            )));
        }
        let admitted = self.admission.lock().await;
        let release = self.ledger.current(app).await?;
        let next = self.ledger.formation(app).await?.with(changes);
        if release.slug.is_some() {
            let plan = self.host.prepare(app, &release).await?;
            let (want, dynos) = formation_slots(&next, &plan);
            self.admit(app, want, dynos, &next)?;
        }
        let formation = self.ledger.scale(app, changes).await?;
        drop(admitted);
        self.reconcile(app).await?;
        Ok(formation)
    }

    /// Whether `app` may have a formation of `dynos` dynos taking `want`
    /// slots; the error names the limit, the use and what fits.
    fn admit(
        &self,
        app: &AppName,
        want: u32,
        dynos: u32,
        formation: &Formation,
    ) -> Result<(), ManagerError> {
        let cap = self.host.capacity().capacity;
        let shown = formation.to_string();
        // In a cluster the scheduler spreads each type over the hosts:
        // this host takes its share.
        let hosts = self.scope.hosts().max(1);
        let (want, dynos) = (want.div_ceil(hosts), dynos.div_ceil(hosts));
        if dynos > cap.per_app {
            return Err(ManagerError::Capacity(format!(
                "Cannot scale {app} to {shown}: an app may run at most {} dynos on this host \
                 (half its capacity of {}, so one app cannot take all of it). \
                 The operator can allow more with `wdyno daemon --max-app-dynos N`.",
                cap.per_app, cap.dynos
            )));
        }
        let others: u32 = self
            .loops()
            .iter()
            .map(|(name, lp)| {
                let st = lp.lock();
                let formation = if name == app.as_str() { 0 } else { st.slots };
                formation
                    + st.one_offs
                        .iter()
                        .filter(|o| !o.0.state().is_final())
                        .count() as u32
            })
            .sum();
        if others + want > cap.dynos {
            let free = cap.dynos.saturating_sub(others);
            return Err(ManagerError::Capacity(format!(
                "Cannot scale {app} to {shown}: this host holds {} dynos (its capacity, set by {}); \
                 other apps and one-off dynos take {others}, and {app} would need {want} \
                 ({free} free). Scale something down, or {}.",
                cap.dynos,
                cap.limit.name(),
                cap.limit.how_to_raise()
            )));
        }
        Ok(())
    }

    /// The host's capacity and how much of it is in use (`ps`, `hosts`).
    pub fn capacity(&self) -> CapacityUse {
        let host = self.host.capacity();
        let cap = host.capacity;
        let formations = self.loops().iter().map(|(_, lp)| lp.lock().slots).sum();
        CapacityUse {
            capacity: cap.dynos,
            formations,
            running: host.running,
            proxy_reserve: cap.proxy,
            per_app: cap.per_app,
            limit: cap.limit.name().to_owned(),
            how_to_raise: cap.limit.how_to_raise().to_owned(),
        }
    }
}

/// The host's dyno capacity and its use, as `ps` and `hosts` show it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CapacityUse {
    /// Slots for formation and one-off dynos.
    pub capacity: u32,
    /// Slots the formations of all apps take.
    pub formations: u32,
    /// Slots held by running command dynos.
    pub running: u32,
    /// Slots kept for `wasi:http/proxy` requests.
    pub proxy_reserve: u32,
    /// Most dynos one app may have.
    pub per_app: u32,
    /// The host limit that sets the capacity, and how to raise it.
    pub limit: String,
    pub how_to_raise: String,
}

/// Whether a process type can have dynos in a formation: `release` is the
/// release phase, run once per deploy (as on Heroku, it cannot be scaled).
pub(super) fn scalable(ty: &ProcessType) -> bool {
    ty.as_str() != "release"
}

#[cfg(test)]
mod scalable_tests {
    use super::*;

    #[test]
    fn the_release_phase_cannot_be_scaled() {
        assert!(!scalable(&ProcessType::parse("release").unwrap()));
        assert!(scalable(&ProcessType::parse("web").unwrap()));
        assert!(scalable(&ProcessType::parse("releaser").unwrap()));
    }
}
