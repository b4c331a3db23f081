//! The ledger: apps, their releases, config vars, formation and builds, in
//! sled.
//!
//! Releases are append-only: `v1, v2, …` with no gaps; a config change, a
//! deploy and a rollback each add one. Every change is one sled transaction
//! across the trees it touches, flushed before the call returns, so a crash
//! at any instant leaves the last committed release intact and usable.
//! `current` always names the newest release that *succeeded*: a release
//! whose release phase fails is recorded, but never becomes current.
//!
//! Trees (values are JSON):
//! - `apps`: app name → [`App`]
//! - `heads`: app name → its last version, current version and last build
//!   number: the one record every change of an app's history touches
//! - `releases`: `app\0` + version (u64 big-endian) → [`Release`]
//! - `formation`: app name → process type → dyno count
//! - `builds`: `app\0` + build number (u64 big-endian) → [`Build`]
//!
//! The operations live in submodules, each an `impl Ledger` block:
//! `history` (releases, config vars, rollback), `formation`, `builds`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::names::AppName;
use crate::slug::SlugId;

#[path = "release/builds.rs"]
mod builds;
#[path = "release/formation.rs"]
mod formation;
#[path = "release/history.rs"]
mod history;

pub use history::config_size;

/// Total size of an app's config vars (keys and values), as Heroku.
pub const MAX_CONFIG_BYTES: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("Couldn't find that app: {0}. Run `wdyno apps` to list yours.")]
    AppNotFound(String),
    #[error("Name {0} is already taken: pick another app name.")]
    AppExists(String),
    #[error("{app} has no release {version}. Run `wdyno releases -a {app}` to list them.")]
    ReleaseNotFound { app: String, version: String },
    #[error("Cannot roll back to v{version}: that release {why}.")]
    BadRollback { version: u64, why: &'static str },
    #[error("Release v{version} is {status}, not pending: its release phase already ended.")]
    NotPending { version: u64, status: Status },
    #[error("No such process type {ty} defined in the Procfile of {app} (it has: {known}).")]
    UnknownProcessType {
        app: String,
        ty: String,
        known: String,
    },
    #[error("Config var {0} is not set on this app.")]
    NoSuchConfig(String),
    #[error("No config vars given: use KEY=value to set one, or name a KEY to unset.")]
    NothingToChange,
    #[error("Release v{0} is still running its release command: try again when it has finished.")]
    ReleaseInProgress(u64),
    #[error("Config vars would total {0} bytes, over the limit of 32 kB.")]
    ConfigTooBig(usize),
    #[error("{app} has no build {id}. Run `wdyno builds -a {app}` to list them.")]
    BuildNotFound { app: String, id: u64 },
    #[error("ledger storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("ledger entry {key} is unreadable: {why}")]
    Corrupt { key: String, why: String },
}

type Result<T, E = LedgerError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub name: AppName,
    pub created_at: DateTime<Utc>,
    /// Buildpacks named by the app (built-in names or paths); empty means
    /// detect.
    #[serde(default)]
    pub buildpacks: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its release phase (or build) is running.
    Pending,
    Succeeded,
    Failed,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: u64,
    /// `None` for a release made by a config change before any deploy.
    pub slug: Option<SlugId>,
    pub config: BTreeMap<String, String>,
    /// Process type → command line.
    pub process_types: BTreeMap<String, String>,
    pub description: String,
    /// RFC 3339, microseconds.
    pub created_at: DateTime<Utc>,
    pub status: Status,
}

impl Release {
    /// What an app without releases runs: nothing.
    fn none() -> Self {
        Release {
            version: 0,
            slug: None,
            config: BTreeMap::new(),
            process_types: BTreeMap::new(),
            description: String::new(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            status: Status::Succeeded,
        }
    }
}

/// What a deploy asks to record.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub slug: SlugId,
    pub process_types: BTreeMap<String, String>,
    pub description: String,
}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// 1, 2, … per app.
    pub id: u64,
    pub status: Status,
    /// Where the source came from (a commit, a directory), for people.
    pub source: String,
    pub slug: Option<SlugId>,
    pub release: Option<u64>,
    pub created_at: DateTime<Utc>,
    /// The last lines of its output.
    pub output_tail: String,
}

/// The sled-backed ledger. Cheap to clone: clones share one database.
#[derive(Clone)]
pub struct Ledger {
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

impl Ledger {
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).open()?;
        Ok(Ledger {
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

    /// Names the buildpacks an app is built with (empty: detect).
    pub fn set_buildpacks(&self, name: &AppName, buildpacks: &[String]) -> Result<App> {
        let r = self.apps.transaction(|apps| {
            let Some(mut app): Option<App> = tx_get(apps, name.as_str().as_bytes())? else {
                return abort(LedgerError::AppNotFound(name.to_string()));
            };
            app.buildpacks = buildpacks.to_vec();
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

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;
