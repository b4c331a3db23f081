//! Seeing into an app: labs features (runtime metrics) and log drains.

use std::time::Duration;

use super::{Result, Service, ServiceError};
use crate::ledger::{App, AppChange, Drain, LedgerError};
use crate::metrics::{RUNTIME_METRICS, Sampler};
use crate::names::AppName;

/// A labs feature an app may turn on.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    pub name: &'static str,
    pub description: &'static str,
    pub doc_url: &'static str,
}

/// Every labs feature wdyno has.
pub const FEATURES: &[Feature] = &[Feature {
    name: RUNTIME_METRICS,
    description: "Emit dyno memory, CPU and load figures into the app's log every 20 seconds",
    doc_url: "https://devcenter.heroku.com/articles/log-runtime-metrics",
}];

/// `labs`: every feature, with whether `app` has it on.
pub fn features_of(app: &App) -> Vec<(Feature, bool)> {
    FEATURES
        .iter()
        .map(|f| (*f, app.features.contains(f.name)))
        .collect()
}

impl Service {
    /// `labs:enable` / `labs:disable`: the feature, and the app as changed.
    pub async fn set_feature(
        &self,
        app: &AppName,
        name: &str,
        enabled: bool,
    ) -> Result<(App, Feature)> {
        let Some(feature) = FEATURES.iter().find(|f| f.name == name) else {
            let known: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
            return Err(ServiceError::Invalid(format!(
                "No such feature: {name}. wdyno's labs features: {}.",
                known.join(", ")
            )));
        };
        let change = AppChange::Feature {
            name: name.to_owned(),
            enabled,
        };
        let record = self.ledger.update_app(app, change).await?;
        self.api_line(
            app,
            &format!("{} {name}", if enabled { "Enable" } else { "Disable" }),
        );
        Ok((record, *feature))
    }

    /// `drains:add URL`: recorded, then started with the lines from now;
    /// the app as changed, and the drain.
    pub async fn add_drain(&self, app: &AppName, url: &str) -> Result<(App, Drain)> {
        crate::drain::Target::parse(url).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let drain = Drain {
            id: crate::drain::new_id(),
            url: url.to_owned(),
            token: format!("d.{}", crate::drain::new_id()),
            created_at: chrono::Utc::now(),
        };
        let record = self
            .ledger
            .update_app(app, AppChange::AddDrain(drain.clone()))
            .await?;
        self.start_drains(&record);
        self.api_line(app, &format!("Add drain {}", drain.token));
        Ok((record, drain))
    }

    /// `drains:remove URL|ID|TOKEN`: the app as changed, and the drain
    /// that was removed.
    pub async fn remove_drain(&self, app: &AppName, which: &str) -> Result<(App, Drain)> {
        let Some(gone) = self
            .ledger
            .app(app)
            .await?
            .drains
            .into_iter()
            .find(|d| d.id == which || d.url == which || d.token == which)
        else {
            return Err(LedgerError::NoSuchDrain {
                app: app.to_string(),
                which: which.to_owned(),
            }
            .into());
        };
        let record = self
            .ledger
            .update_app(app, AppChange::RemoveDrain(gone.id.clone()))
            .await?;
        self.start_drains(&record);
        self.api_line(app, &format!("Remove drain {}", gone.token));
        Ok((record, gone))
    }

    /// Runs exactly the drains `app` records (at start, and on a change).
    pub fn start_drains(&self, app: &App) {
        self.drains.sync(app.name.as_str(), &app.drains);
    }

    /// Writes the runtime-metrics line of every dyno of every app with the
    /// feature, every `every`, until the platform stops.
    pub async fn sample_metrics(&self, every: Duration) {
        let mut sampler = Sampler::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: a dyno's first sample is one period in.
        tick.tick().await;
        loop {
            tick.tick().await;
            let apps = match self.ledger.apps().await {
                Ok(apps) => apps,
                Err(e) => {
                    tracing::warn!("runtime metrics: reading the apps: {e}");
                    continue;
                }
            };
            sampler.round();
            for app in apps.iter().filter(|a| a.features.contains(RUNTIME_METRICS)) {
                for d in self.manager.ps(&app.name) {
                    if d.state != "up" {
                        continue;
                    }
                    let line = sampler.line(app.name.as_str(), &d.name, d.updated_at, &d.usage);
                    self.bus.platform(app.name.as_str(), &d.name, &line);
                }
            }
        }
    }
}
