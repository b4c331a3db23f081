//! The service layer: the one place that orchestrates. Every front end —
//! the control API, `wdyno local`, a dashboard — parses its input, calls
//! one method here and maps the result; none of them touches the ledger,
//! the manager or the log bus itself.
//!
//! A change is always "write the ledger, then wake the app's reconcile
//! loop and wait for its pass", so the API answers once the dynos of the
//! change are started (or the pass's error is known).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::deploy::{BuildError, Builder};
use crate::drain::Drains;
use crate::formation::Formation;
use crate::idling::SleepAfter;
use crate::ledger::{App, AppChange, Build, Ledger, LedgerError};
use crate::logbus::Bus;
use crate::manager::{DynoInfo, Manager, ManagerError};
use crate::names::{AppName, ConfigKey, ProcessType};
use crate::release::{Release, Status};
use crate::routing::Routing;

mod deploy;
mod hosts;
mod logs;
mod visibility;

pub use hosts::{HostAddresses, HostInfo, Peers};
pub use logs::{Attached, AttachedEvent};
pub use visibility::{FEATURES, Feature, features_of};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Manager(#[from] ManagerError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(
        "release phase failed ({0}): v{1} was recorded as failed and is not live; dynos stay on the previous release"
    )]
    ReleasePhase(String, u64),
    /// The request itself is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::placement::PlacementError> for ServiceError {
    fn from(e: crate::placement::PlacementError) -> Self {
        ServiceError::Manager(e.into())
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The platform's operations. Cheap to share (`Arc<Service>`).
pub struct Service {
    /// In a cluster: the other hosts.
    peers: Option<Arc<dyn Peers>>,
    ledger: Arc<dyn Ledger>,
    bus: Bus,
    manager: Arc<Manager>,
    builder: Builder,
    /// The apps' log drains, running.
    drains: Arc<Drains>,
    /// `$WDYNO_HOME`: the apps' git repos live under it.
    home: PathBuf,
    /// Who changes apps (the API token's holder), for `app[api]` lines.
    owner: String,
}

/// The parts a [`Service`] orchestrates (the composition root makes them).
pub struct Parts {
    pub ledger: Arc<dyn Ledger>,
    pub bus: Bus,
    pub manager: Arc<Manager>,
    pub builder: Builder,
    pub drains: Arc<Drains>,
    /// `$WDYNO_HOME`.
    pub home: PathBuf,
    /// Who changes apps, for `app[api]` lines.
    pub owner: String,
    /// In a cluster: the other hosts.
    pub peers: Option<Arc<dyn Peers>>,
}

impl Service {
    /// The service over the platform's parts (the composition root makes
    /// one).
    pub fn new(p: Parts) -> Self {
        Service {
            ledger: p.ledger,
            bus: p.bus,
            manager: p.manager,
            builder: p.builder,
            drains: p.drains,
            home: p.home,
            owner: p.owner,
            peers: p.peers,
        }
    }

    /// An `app[api]` line of the app's log, as Heroku writes one for each
    /// change: `Set FOO config vars by user me@example.com`.
    pub(crate) fn api_line(&self, app: &AppName, what: &str) {
        self.bus.publish(crate::logbus::LogLine::now(
            app.as_str(),
            crate::logbus::Source::App,
            "api",
            &format!("{what} by user {}", self.owner),
        ));
    }

    /// The log bus, for front ends that follow every line of their app
    /// (`wdyno local`).
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Where uploaded sources wait for their build.
    pub fn builds_dir(&self) -> PathBuf {
        self.home.join("builds")
    }

    /// The manager, for front ends that show dynos and capacity.
    pub fn manager(&self) -> &Arc<Manager> {
        &self.manager
    }

    // Apps.

    /// `apps`: every app, by name.
    pub async fn apps(&self) -> Result<Vec<App>> {
        Ok(self.ledger.apps().await?)
    }

    /// `apps:info`: one app (not found is an error the user can act on).
    pub async fn app(&self, app: &AppName) -> Result<App> {
        Ok(self.ledger.app(app).await?)
    }

    /// `apps:create`: the app, its log and its entry in the router's table
    /// (only apps that exist get either, so unknown names cost nothing).
    pub async fn create_app(&self, name: &AppName) -> Result<App> {
        let app = self.ledger.create_app(name).await?;
        self.opened(&app.name);
        Ok(app)
    }

    /// `apps:create` without a name: one is made up, as Heroku does,
    /// until one is free.
    pub async fn create_generated_app(&self) -> Result<App> {
        let mut tries = 0;
        loop {
            match self.create_app(&AppName::generate()).await {
                Err(ServiceError::Ledger(LedgerError::AppExists(_))) if tries < 16 => tries += 1,
                other => return other,
            }
        }
    }

    /// Makes an app in the ledger known to the log bus and the router
    /// (at start, for every app).
    pub fn opened(&self, app: &AppName) {
        self.bus.open(app.as_str());
        self.manager.routes().open(app.as_str());
    }

    /// `apps:destroy`: stops its dynos, then removes every record, its
    /// log, its git repo and its build cache.
    pub async fn destroy_app(&self, app: &AppName) -> Result<()> {
        self.ledger.app(app).await?;
        self.manager.remove_app(app).await;
        self.drains.sync(app.as_str(), &[]);
        self.ledger.destroy_app(app).await?;
        self.bus.forget(app.as_str());
        let dirs = [
            self.home.join("repos").join(format!("{app}.git")),
            self.builder.cache.join(app.as_str()),
        ];
        let _ = tokio::task::spawn_blocking(move || {
            for d in dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        })
        .await;
        Ok(())
    }

    /// An app found in the ledger at start: known to the log bus and the
    /// router (with its routing), its sleeper following its
    /// `sleep_after`, its drains running.
    pub fn restore(&self, app: &App) {
        self.opened(&app.name);
        self.manager
            .routes()
            .set_routing(app.name.as_str(), app.routing);
        // A cluster host sees only its own share of an app's requests, so
        // it cannot tell the app is idle: apps sleep on a single host only.
        if !app.sleep_after.is_off() && self.peers.is_none() {
            self.manager.set_sleep_after(&app.name, app.sleep_after);
        }
        self.start_drains(app);
    }

    /// `apps:update --routing`: how the router spreads the app's requests,
    /// from its next request on.
    pub async fn set_routing(&self, app: &AppName, routing: Routing) -> Result<App> {
        let record = self
            .ledger
            .update_app(app, AppChange::Routing(routing))
            .await?;
        self.manager.routes().set_routing(app.as_str(), routing);
        self.api_line(app, &format!("Set routing to {}", routing.as_str()));
        Ok(record)
    }

    /// `apps:update --sleep-after`: how long without a request before the
    /// app's web dynos sleep (`off`: never, and a sleeping app wakes).
    pub async fn set_sleep_after(&self, app: &AppName, after: SleepAfter) -> Result<App> {
        if self.peers.is_some() && !after.is_off() {
            return Err(ServiceError::Invalid(format!(
                "Apps do not sleep on a cluster of hosts yet (each host sees only its share of \
                 {app}'s requests, so none can tell the app is idle): {app} keeps its web dynos \
                 running. Use `--sleep-after off`, or run {app} on a single-host daemon."
            )));
        }
        let record = self
            .ledger
            .update_app(app, AppChange::SleepAfter(after))
            .await?;
        self.manager.set_sleep_after(app, after);
        self.api_line(app, &format!("Set sleep after to {after}"));
        Ok(record)
    }

    /// `buildpacks:set`: each must be a built-in name or a buildpack dir.
    pub async fn set_buildpacks(&self, app: &AppName, packs: &[String]) -> Result<App> {
        crate::buildpack::resolve(&self.home.join("buildpacks"), packs)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        Ok(self
            .ledger
            .update_app(app, AppChange::Buildpacks(packs.to_vec()))
            .await?)
    }

    /// The app's bare git repo (made on first use), for `git push`.
    pub async fn git_repo(&self, app: &AppName) -> Result<PathBuf> {
        self.ledger.app(app).await?;
        let (home, name) = (self.home.clone(), app.clone());
        tokio::task::spawn_blocking(move || crate::git::ensure_repo(&home, &name))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(|source| ServiceError::Io {
                what: format!("making the git repo of {app}"),
                source,
            })
    }

    // Releases and config.

    /// `releases`: the app's history, oldest first.
    pub async fn releases(&self, app: &AppName) -> Result<Vec<Release>> {
        Ok(self.ledger.releases(app).await?)
    }

    /// `releases:info vN`.
    pub async fn release(&self, app: &AppName, version: u64) -> Result<Release> {
        Ok(self.ledger.release(app, version).await?)
    }

    /// The release the app's dynos run (its config vars are `config`).
    pub async fn current(&self, app: &AppName) -> Result<Release> {
        Ok(self.ledger.current(app).await?)
    }

    /// `config:set` / `config:unset`: a new release, then its dynos.
    pub async fn set_config(
        &self,
        app: &AppName,
        set: &BTreeMap<ConfigKey, String>,
        unset: &[ConfigKey],
    ) -> Result<Release> {
        let release = self.ledger.set_config(app, set, unset).await?;
        self.api_line(app, &release.description);
        self.go_live(app, release).await
    }

    /// `releases:rollback [vN]`: a new release with vN's slug and config
    /// (without a version: the last succeeded release before the current).
    pub async fn rollback(&self, app: &AppName, target: Option<u64>) -> Result<Release> {
        let target = match target {
            Some(v) => v,
            None => {
                let current = self.ledger.current(app).await?.version;
                self.ledger
                    .releases(app)
                    .await?
                    .iter()
                    .rev()
                    .find(|r| r.version < current && r.status == Status::Succeeded)
                    .map(|r| r.version)
                    .ok_or_else(|| {
                        ServiceError::Invalid("there is no earlier release to roll back to".into())
                    })?
            }
        };
        let release = self.ledger.rollback(app, target).await?;
        self.api_line(app, &release.description);
        self.go_live(app, release).await
    }

    /// A new release of config or rollback: its release phase first when
    /// it is pending (Heroku runs it on these too), then its dynos.
    async fn go_live(&self, app: &AppName, release: Release) -> Result<Release> {
        let release = match release.status {
            Status::Pending => {
                let command = release
                    .process_types
                    .get("release")
                    .cloned()
                    .unwrap_or_default();
                self.release_phase(app, &release, &command).await?;
                self.ledger.release(app, release.version).await?
            }
            _ => release,
        };
        self.api_line(app, &format!("Release v{} created", release.version));
        self.manager.reconcile(app).await?;
        Ok(release)
    }

    /// `builds`: every build of the app, oldest first.
    pub async fn builds(&self, app: &AppName) -> Result<Vec<Build>> {
        Ok(self.ledger.builds(app).await?)
    }

    // Formation and dynos.

    /// `ps:scale` with no arguments: the dynos each type should have.
    pub async fn formation(&self, app: &AppName) -> Result<Formation> {
        Ok(self.ledger.formation(app).await?)
    }

    /// `ps:scale`: admitted against the host's capacity first.
    pub async fn scale(
        &self,
        app: &AppName,
        changes: &BTreeMap<ProcessType, u32>,
    ) -> Result<Formation> {
        let formation = self.manager.scale(app, changes).await?;
        let to: Vec<String> = changes
            .keys()
            .map(|ty| {
                format!(
                    "{ty}@{}:{}",
                    formation.get(ty.as_str()),
                    crate::formation::DYNO_SIZE
                )
            })
            .collect();
        self.api_line(app, &format!("Scaled to {}", to.join(" ")));
        Ok(formation)
    }

    /// `ps`: the dynos running now.
    pub async fn ps(&self, app: &AppName) -> Result<Vec<DynoInfo>> {
        self.ledger.app(app).await?;
        let mut dynos = self.manager.ps(app);
        if let Some(peers) = &self.peers {
            dynos.extend(peers.dynos_elsewhere(app));
            dynos.sort_by_key(|d| match crate::names::DynoName::parse(&d.name) {
                Ok(n) => (0, n.process.to_string(), n.number, String::new()),
                Err(_) => (1, String::new(), 0, d.name.clone()),
            });
        }
        Ok(dynos)
    }

    /// `ps:restart [TYPE | DYNO]`: how many dynos were replaced.
    pub async fn restart(&self, app: &AppName, which: Option<&str>) -> Result<usize> {
        self.ledger.app(app).await?;
        let n = self.manager.restart(app, which).await?;
        self.api_line(app, &format!("Restart {}", which.unwrap_or("all dynos")));
        Ok(n)
    }

    /// `ps:stop DYNO`.
    pub async fn stop(&self, app: &AppName, dyno: &str) -> Result<()> {
        self.ledger.app(app).await?;
        self.manager.stop_dyno(app, dyno).await?;
        self.api_line(app, &format!("Stop {dyno}"));
        Ok(())
    }

    /// `ps:stop --process-type TYPE`: every dyno of the type; formation
    /// dynos are started again, as on Heroku. How many were stopped.
    pub async fn stop_type(&self, app: &AppName, ty: &ProcessType) -> Result<usize> {
        let names: Vec<String> = self
            .ps(app)
            .await?
            .into_iter()
            .filter(|d| d.process_type == ty.as_str())
            .map(|d| d.name)
            .collect();
        for name in &names {
            match self.manager.stop_dyno(app, name).await {
                // It ended on its own meanwhile.
                Err(ManagerError::NoSuchDyno { .. }) => {}
                other => other?,
            }
        }
        Ok(names.len())
    }

    /// `run:detached`: a one-off dyno of the current release, with `env`
    /// over its config vars (the Heroku CLI sends the terminal's size);
    /// its name.
    pub async fn run_detached(
        &self,
        app: &AppName,
        command: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<String> {
        let mut release = self.ledger.current(app).await?;
        for (k, v) in env {
            let key = ConfigKey::parse(k).map_err(|e| ServiceError::Invalid(e.to_string()))?;
            release.config.insert(key.to_string(), v.clone());
        }
        let dyno = self
            .manager
            .run_one_off(app, &release, "run", command, None)
            .await?;
        Ok(dyno.name().to_owned())
    }
}
