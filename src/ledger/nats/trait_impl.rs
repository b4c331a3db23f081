//! [`Ledger`] for [`NatsLedger`]: each method is its inherent namesake.

use std::collections::{BTreeMap, HashSet};

use super::NatsLedger;
use crate::formation::Formation;
use crate::ledger::{App, AppChange, Build, Ledger, Result};
use crate::names::{AppName, ConfigKey, ProcessType};
use crate::release::{NewRelease, Release, Status};
use crate::slug::SlugId;

#[async_trait::async_trait]
impl Ledger for NatsLedger {
    async fn create_app(&self, name: &AppName) -> Result<App> {
        NatsLedger::create_app(self, name).await
    }
    async fn destroy_app(&self, name: &AppName) -> Result<()> {
        NatsLedger::destroy_app(self, name).await
    }
    async fn update_app(&self, name: &AppName, change: AppChange) -> Result<App> {
        NatsLedger::update_app(self, name, &change).await
    }
    async fn apps(&self) -> Result<Vec<App>> {
        NatsLedger::apps(self).await
    }
    async fn app(&self, name: &AppName) -> Result<App> {
        NatsLedger::app(self, name).await
    }
    async fn releases(&self, app: &AppName) -> Result<Vec<Release>> {
        NatsLedger::releases(self, app).await
    }
    async fn release(&self, app: &AppName, version: u64) -> Result<Release> {
        NatsLedger::release(self, app, version).await
    }
    async fn current(&self, app: &AppName) -> Result<Release> {
        NatsLedger::current(self, app).await
    }
    async fn create_release(
        &self,
        app: &AppName,
        new: NewRelease,
        activate: bool,
    ) -> Result<Release> {
        NatsLedger::create_release(self, app, new, activate).await
    }
    async fn finish_release(&self, app: &AppName, version: u64, ok: bool) -> Result<Release> {
        NatsLedger::finish_release(self, app, version, ok).await
    }
    async fn set_config(
        &self,
        app: &AppName,
        set: &BTreeMap<ConfigKey, String>,
        unset: &[ConfigKey],
    ) -> Result<Release> {
        NatsLedger::set_config(self, app, set, unset).await
    }
    async fn rollback(&self, app: &AppName, version: u64) -> Result<Release> {
        NatsLedger::rollback(self, app, version).await
    }
    async fn formation(&self, app: &AppName) -> Result<Formation> {
        NatsLedger::formation(self, app).await
    }
    async fn scale(
        &self,
        app: &AppName,
        changes: &BTreeMap<ProcessType, u32>,
    ) -> Result<Formation> {
        NatsLedger::scale(self, app, changes).await
    }
    async fn create_build(&self, app: &AppName, source: &str) -> Result<Build> {
        NatsLedger::create_build(self, app, source).await
    }
    async fn finish_build(&self, app: &AppName, build: &Build) -> Result<()> {
        NatsLedger::finish_build(self, app, build).await
    }
    async fn build(&self, app: &AppName, id: u64) -> Result<Build> {
        NatsLedger::build(self, app, id).await
    }
    async fn builds(&self, app: &AppName) -> Result<Vec<Build>> {
        NatsLedger::builds(self, app).await
    }
    async fn slugs_in_use(&self) -> Result<HashSet<SlugId>> {
        NatsLedger::slugs_in_use(self).await
    }
    /// A release phase that was running when its host died never finished:
    /// its release is marked failed.
    async fn recover(&self) -> Result<Vec<(AppName, u64)>> {
        let mut failed = Vec::new();
        for app in NatsLedger::apps(self).await? {
            for r in NatsLedger::releases(self, &app.name).await? {
                if r.status == Status::Pending {
                    NatsLedger::finish_release(self, &app.name, r.version, false).await?;
                    failed.push((app.name.clone(), r.version));
                }
            }
        }
        Ok(failed)
    }
}
