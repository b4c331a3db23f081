//! Admission: whether a formation fits the host before it is written.
//!
//! The host's capacity (see [`crate::dyno::capacity`]) is counted in slots;
//! every app's formation takes its dynos' slots on its current release,
//! one-off dynos theirs while they run. A scale that does not fit, or that
//! would give one app more than its share, is refused with the limit, the
//! use and what is free, before the ledger changes or a dyno starts.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Manager, ManagerError, ReleaseFiles};
use crate::names::{AppName, ProcessType};

impl Manager {
    /// `ps:scale`: admits the new formation against the host's capacity
    /// and the app's share of it, writes it to the ledger and converges.
    /// A formation that does not fit is refused before anything changes.
    pub async fn scale(
        self: &Arc<Self>,
        app: &AppName,
        changes: &BTreeMap<ProcessType, u32>,
    ) -> Result<BTreeMap<String, u32>, ManagerError> {
        if let Some(ty) = changes.keys().find(|t| !scalable(t)) {
            return Err(ManagerError::NotScalable(format!(
                "Cannot scale {ty}: the {ty} process type is the release phase; it runs once per deploy, before the release goes live, and has no dynos to scale"
            )));
        }
        let admitted = self.admission.lock().await;
        let release = self.ledger.current(app)?;
        let mut next = self.ledger.formation(app)?;
        for (ty, n) in changes {
            next.insert(ty.to_string(), *n);
        }
        if release.slug.is_some() {
            let files = self.release_files(app, &release).await?;
            let (want, dynos) = formation_slots(&next, &files);
            self.admit(app, want, dynos, &next)?;
        }
        let formation = self.ledger.scale(app, changes)?;
        drop(admitted);
        self.converge(app).await?;
        Ok(formation)
    }

    /// Whether `app` may have a formation of `dynos` dynos taking `want`
    /// slots; the error names the limit, the use and what fits.
    fn admit(
        &self,
        app: &AppName,
        want: u32,
        dynos: u32,
        formation: &BTreeMap<String, u32>,
    ) -> Result<(), ManagerError> {
        let cap = self.runtime.slots().capacity();
        let shown: Vec<String> = formation
            .iter()
            .filter(|(ty, _)| ty.as_str() != "release")
            .map(|(ty, n)| format!("{ty}={n}"))
            .collect();
        let shown = shown.join(" ");
        if dynos > cap.per_app {
            return Err(ManagerError::Capacity(format!(
                "Cannot scale {app} to {shown}: an app may run at most {} dynos on this host \
                 (half its capacity of {}, so one app cannot take all of it). \
                 The operator can allow more with `wdyno daemon --max-app-dynos N`.",
                cap.per_app, cap.dynos
            )));
        }
        let others: u32 = {
            let apps = self.lock();
            apps.iter()
                .map(|(name, st)| {
                    let formation = if name == app.as_str() { 0 } else { st.slots };
                    formation
                        + st.one_offs
                            .iter()
                            .filter(|o| !o.0.state().is_final())
                            .count() as u32
                })
                .sum()
        };
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
        let cap = self.runtime.slots().capacity();
        let apps = self.lock();
        let formations = apps.values().map(|s| s.slots).sum();
        CapacityUse {
            capacity: cap.dynos,
            formations,
            running: self.runtime.slots().dynos_in_use(),
            proxy_reserve: cap.proxy,
            per_app: cap.per_app,
            limit: cap.limit.name().to_owned(),
            how_to_raise: cap.limit.how_to_raise().to_owned(),
        }
    }
}

/// The host's dyno capacity and its use, as `ps` and `hosts` show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// Slots and dynos a formation takes on a release: the types the release
/// runs (not `release`), each dyno as many slots as its component's weight.
pub(super) fn formation_slots(
    formation: &BTreeMap<String, u32>,
    files: &ReleaseFiles,
) -> (u32, u32) {
    let mut slots = 0u32;
    let mut dynos = 0u32;
    for (ty, n) in formation {
        let Some(command) = files.procfile.get(ty) else {
            continue;
        };
        if ty == "release" {
            continue;
        }
        let weight = files
            .component(&command.component_path())
            .map_or(1, |p| p.weight);
        slots = slots.saturating_add(n.saturating_mul(weight));
        dynos = dynos.saturating_add(*n);
    }
    (slots, dynos)
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
