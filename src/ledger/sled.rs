//! The ledger in sled: one process, one directory (`$WDYNO_HOME/db`).
//!
//! Each operation is one sled transaction across the trees it touches,
//! flushed before it returns; the [`super::Ledger`] implementation runs
//! them on the blocking pool.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{App, AppChange, Build, LedgerError, MAX_CONFIG_BYTES, Result};
use crate::formation::Formation;
use crate::names::{AppName, ConfigKey, ProcessType};
use crate::release::{NewRelease, Release, Status};
use crate::slug::SlugId;

mod builds;
mod formation;
mod history;

pub use history::config_size;
pub(super) use history::{Activate, change_config, deployed, describe_config_change};

/// Per app: the numbers its next release and build follow.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Head {
    /// The newest version (0: none yet).
    last: u64,
    /// The version dynos run (0: none yet).
    current: u64,
    /// The newest build number.
    #[serde(default)]
    builds: u64,
}

/// The sled-backed ledger. Cheap to clone: clones share one database.
#[derive(Clone)]
pub struct SledLedger {
    db: sled::Db,
    apps: sled::Tree,
    heads: sled::Tree,
    releases: sled::Tree,
    formation: sled::Tree,
    builds: sled::Tree,
}

type Tx = sled::transaction::TransactionalTree;
type TxResult<T> = std::result::Result<T, ConflictableTransactionError<LedgerError>>;

fn abort<T>(e: LedgerError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| LedgerError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        why: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("ledger values serialize")
}

/// Keys of one app's records start with its name and a NUL, which no app
/// name contains, so one app's prefix never matches another's keys.
fn prefix(app: &AppName) -> Vec<u8> {
    format!("{app}\0").into_bytes()
}

/// Big-endian numbers sort like numbers, so a prefix scan is in order.
fn numbered_key(app: &AppName, n: u64) -> Vec<u8> {
    let mut k = prefix(app);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn release_key(app: &AppName, version: u64) -> Vec<u8> {
    numbered_key(app, version)
}

fn build_key(app: &AppName, id: u64) -> Vec<u8> {
    numbered_key(app, id)
}

/// Now, to the microsecond: what RFC 3339 in the API shows and what a
/// stored record reads back as.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn tx_get<T: for<'de> Deserialize<'de>>(tree: &Tx, key: &[u8]) -> TxResult<Option<T>> {
    match tree.get(key)? {
        None => Ok(None),
        Some(v) => decode(key, &v).map(Some).or_else(abort),
    }
}

fn head_of(heads: &Tx, app: &AppName) -> TxResult<Head> {
    match tx_get(heads, app.as_str().as_bytes())? {
        Some(h) => Ok(h),
        None => abort(LedgerError::AppNotFound(app.to_string())),
    }
}

fn flatten<T>(r: std::result::Result<T, TransactionError<LedgerError>>) -> Result<T> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => LedgerError::Storage(e),
    })
}

impl SledLedger {
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).open()?;
        Ok(SledLedger {
            apps: db.open_tree("apps")?,
            heads: db.open_tree("heads")?,
            releases: db.open_tree("releases")?,
            formation: db.open_tree("formation")?,
            builds: db.open_tree("builds")?,
            db,
        })
    }

    /// Makes every committed transaction durable; mutating calls do this
    /// before they return.
    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Creates an app. It has no release until its first deploy or config
    /// change (`v1`).
    pub fn create_app(&self, name: &AppName) -> Result<App> {
        let app = App {
            name: name.clone(),
            created_at: now(),
            buildpacks: Vec::new(),
            features: Default::default(),
            drains: Vec::new(),
            routing: Default::default(),
            sleep_after: Default::default(),
        };
        let r = (&self.apps, &self.heads).transaction(|(apps, heads)| {
            if apps.get(name.as_str())?.is_some() {
                return abort(LedgerError::AppExists(name.to_string()));
            }
            apps.insert(name.as_str(), encode(&app))?;
            heads.insert(name.as_str(), encode(&Head::default()))?;
            Ok(())
        });
        flatten(r)?;
        self.flush()?;
        Ok(app)
    }

    /// Removes an app and everything of it, in one transaction: its head
    /// says which release and build keys exist, so none is left behind.
    pub fn destroy_app(&self, name: &AppName) -> Result<()> {
        let r = (
            &self.apps,
            &self.heads,
            &self.releases,
            &self.formation,
            &self.builds,
        )
            .transaction(|(apps, heads, rels, form, builds)| {
                let head = head_of(heads, name)?;
                apps.remove(name.as_str())?;
                heads.remove(name.as_str())?;
                form.remove(name.as_str())?;
                for v in 1..=head.last {
                    rels.remove(release_key(name, v))?;
                }
                for id in 1..=head.builds {
                    builds.remove(build_key(name, id))?;
                }
                Ok(())
            });
        flatten(r)?;
        self.flush()
    }

    /// Changes an app's own record in one transaction.
    pub fn update_app(&self, name: &AppName, change: &AppChange) -> Result<App> {
        let r = self.apps.transaction(|apps| {
            let Some(mut app): Option<App> = tx_get(apps, name.as_str().as_bytes())? else {
                return abort(LedgerError::AppNotFound(name.to_string()));
            };
            match change {
                AppChange::Buildpacks(packs) => app.buildpacks = packs.clone(),
                AppChange::Feature {
                    name: feature,
                    enabled: true,
                } => {
                    app.features.insert(feature.clone());
                }
                AppChange::Feature {
                    name: feature,
                    enabled: false,
                } => {
                    app.features.remove(feature);
                }
                AppChange::AddDrain(drain) => {
                    if app.drains.iter().any(|d| d.url == drain.url) {
                        return abort(LedgerError::DrainExists {
                            app: name.to_string(),
                            url: drain.url.clone(),
                        });
                    }
                    app.drains.push(drain.clone());
                }
                AppChange::Routing(r) => app.routing = *r,
                AppChange::SleepAfter(v) => app.sleep_after = *v,
                AppChange::RemoveDrain(which) => {
                    let before = app.drains.len();
                    app.drains.retain(|d| d.id != *which);
                    if app.drains.len() == before {
                        return abort(LedgerError::NoSuchDrain {
                            app: name.to_string(),
                            which: which.clone(),
                        });
                    }
                }
            }
            apps.insert(name.as_str(), encode(&app))?;
            Ok(app)
        });
        let app = flatten(r)?;
        self.flush()?;
        Ok(app)
    }

    /// Every app, by name.
    pub fn apps(&self) -> Result<Vec<App>> {
        self.apps
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    pub fn app(&self, name: &AppName) -> Result<App> {
        match self.apps.get(name.as_str())? {
            Some(v) => decode(name.as_str().as_bytes(), &v),
            None => Err(LedgerError::AppNotFound(name.to_string())),
        }
    }

    /// Every slug some release refers to (the others are orphans).
    pub fn slugs_in_use(&self) -> Result<HashSet<SlugId>> {
        let mut used = HashSet::new();
        for kv in self.releases.iter() {
            let (k, v) = kv?;
            let r: Release = decode(&k, &v)?;
            used.extend(r.slug);
        }
        Ok(used)
    }
}

/// Runs a sled operation on the blocking pool: sled's flush waits on the
/// disk, which must never stall a runtime thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    crate::blocking::run(f, LedgerError::Task).await
}

#[async_trait::async_trait]
impl super::Ledger for SledLedger {
    async fn create_app(&self, name: &AppName) -> Result<App> {
        let (l, name) = (self.clone(), name.clone());
        blocking(move || l.create_app(&name)).await
    }
    async fn destroy_app(&self, name: &AppName) -> Result<()> {
        let (l, name) = (self.clone(), name.clone());
        blocking(move || l.destroy_app(&name)).await
    }
    async fn update_app(&self, name: &AppName, change: AppChange) -> Result<App> {
        let (l, name) = (self.clone(), name.clone());
        blocking(move || l.update_app(&name, &change)).await
    }
    async fn apps(&self) -> Result<Vec<App>> {
        SledLedger::apps(self)
    }
    async fn app(&self, name: &AppName) -> Result<App> {
        SledLedger::app(self, name)
    }
    async fn releases(&self, app: &AppName) -> Result<Vec<Release>> {
        SledLedger::releases(self, app)
    }
    async fn release(&self, app: &AppName, version: u64) -> Result<Release> {
        SledLedger::release(self, app, version)
    }
    async fn current(&self, app: &AppName) -> Result<Release> {
        SledLedger::current(self, app)
    }
    async fn create_release(
        &self,
        app: &AppName,
        new: NewRelease,
        activate: bool,
    ) -> Result<Release> {
        let (l, app) = (self.clone(), app.clone());
        blocking(move || l.create_release(&app, new, activate)).await
    }
    async fn finish_release(&self, app: &AppName, version: u64, ok: bool) -> Result<Release> {
        let (l, app) = (self.clone(), app.clone());
        blocking(move || l.finish_release(&app, version, ok)).await
    }
    async fn set_config(
        &self,
        app: &AppName,
        set: &BTreeMap<ConfigKey, String>,
        unset: &[ConfigKey],
    ) -> Result<Release> {
        let (l, app, set, unset) = (self.clone(), app.clone(), set.clone(), unset.to_vec());
        blocking(move || l.set_config(&app, &set, &unset)).await
    }
    async fn rollback(&self, app: &AppName, version: u64) -> Result<Release> {
        let (l, app) = (self.clone(), app.clone());
        blocking(move || l.rollback(&app, version)).await
    }
    async fn formation(&self, app: &AppName) -> Result<Formation> {
        SledLedger::formation(self, app)
    }
    async fn scale(
        &self,
        app: &AppName,
        changes: &BTreeMap<ProcessType, u32>,
    ) -> Result<Formation> {
        let (l, app, changes) = (self.clone(), app.clone(), changes.clone());
        blocking(move || l.scale(&app, &changes)).await
    }
    async fn create_build(&self, app: &AppName, source: &str) -> Result<Build> {
        let (l, app, source) = (self.clone(), app.clone(), source.to_owned());
        blocking(move || l.create_build(&app, &source)).await
    }
    async fn finish_build(&self, app: &AppName, build: &Build) -> Result<()> {
        let (l, app, build) = (self.clone(), app.clone(), build.clone());
        blocking(move || l.finish_build(&app, &build)).await
    }
    async fn build(&self, app: &AppName, id: u64) -> Result<Build> {
        SledLedger::build(self, app, id)
    }
    async fn builds(&self, app: &AppName) -> Result<Vec<Build>> {
        SledLedger::builds(self, app)
    }
    async fn slugs_in_use(&self) -> Result<HashSet<SlugId>> {
        SledLedger::slugs_in_use(self)
    }
    async fn recover(&self) -> Result<Vec<(AppName, u64)>> {
        let l = self.clone();
        blocking(move || {
            let mut failed = Vec::new();
            for app in l.apps()? {
                for r in l.releases(&app.name)? {
                    if r.status == Status::Pending {
                        l.finish_release(&app.name, r.version, false)?;
                        failed.push((app.name.clone(), r.version));
                    }
                }
            }
            Ok(failed)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
