//! The ledger: apps, their releases, config vars, formation and builds, in
//! sled.
//!
//! Releases are append-only: `v1, v2, …` with no gaps; a config change, a
//! deploy and a rollback each add one. Every change is one sled transaction
//! across the trees it touches, flushed before the call returns, so a crash
//! at any instant leaves the last committed release intact and usable.
//! `current` always names the newest release that *succeeded*: a release
//! whose release phase fails is recorded, but never becomes current.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::names::{AppName, ConfigKey, ProcessType};
use crate::slug::SlugId;

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
    #[error("No such process type {ty} defined in the Procfile of {app} (it has: {known}).")]
    UnknownProcessType {
        app: String,
        ty: String,
        known: String,
    },
    #[error("Config var {0} is not set on this app.")]
    NoSuchConfig(String),
    #[error("Config vars would total {0} bytes, over the limit of 32 kB.")]
    ConfigTooBig(usize),
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
    /// Its release phase is running.
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: u64,
    pub slug: Option<SlugId>,
    pub config: BTreeMap<String, String>,
    /// Process type → command line.
    pub process_types: BTreeMap<String, String>,
    pub description: String,
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Head {
    last: u64,
    current: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub id: u64,
    pub status: Status,
    pub source: String,
    pub slug: Option<SlugId>,
    pub release: Option<u64>,
    pub created_at: DateTime<Utc>,
    /// The last lines of its output.
    pub output_tail: String,
}

/// The sled-backed ledger.
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

fn release_key(app: &AppName, version: u64) -> Vec<u8> {
    let mut k = format!("{app}\0").into_bytes();
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn prefix(app: &AppName) -> Vec<u8> {
    format!("{app}\0").into_bytes()
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

fn config_size(config: &BTreeMap<String, String>) -> usize {
    config.iter().map(|(k, v)| k.len() + v.len()).sum()
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

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Creates an app. It has no release until its first deploy or config
    /// change (`v1`).
    pub fn create_app(&self, name: &AppName) -> Result<App> {
        let app = App {
            name: name.clone(),
            created_at: Utc::now(),
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

    /// Removes an app and everything of it.
    pub fn destroy_app(&self, name: &AppName) -> Result<()> {
        self.app(name)?;
        let rel_keys: Vec<_> = self
            .releases
            .scan_prefix(prefix(name))
            .keys()
            .collect::<Result<_, _>>()?;
        let build_keys: Vec<_> = self
            .builds
            .scan_prefix(prefix(name))
            .keys()
            .collect::<Result<_, _>>()?;
        let r = (
            &self.apps,
            &self.heads,
            &self.releases,
            &self.formation,
            &self.builds,
        )
            .transaction(|(apps, heads, rels, form, builds)| {
                apps.remove(name.as_str())?;
                heads.remove(name.as_str())?;
                form.remove(name.as_str())?;
                for k in &rel_keys {
                    rels.remove(k.clone())?;
                }
                for k in &build_keys {
                    builds.remove(k.clone())?;
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

    /// Every release of an app, oldest first.
    pub fn releases(&self, app: &AppName) -> Result<Vec<Release>> {
        self.app(app)?;
        self.releases
            .scan_prefix(prefix(app))
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    pub fn release(&self, app: &AppName, version: u64) -> Result<Release> {
        self.app(app)?;
        match self.releases.get(release_key(app, version))? {
            Some(v) => decode(&release_key(app, version), &v),
            None => Err(LedgerError::ReleaseNotFound {
                app: app.to_string(),
                version: format!("v{version}"),
            }),
        }
    }

    /// The release dynos run: the newest that succeeded. An app with no
    /// release yet has an empty `v0` (no slug, no config), never stored.
    pub fn current(&self, app: &AppName) -> Result<Release> {
        let head: Head = match self.heads.get(app.as_str())? {
            Some(v) => decode(app.as_str().as_bytes(), &v)?,
            None => return Err(LedgerError::AppNotFound(app.to_string())),
        };
        match head.current {
            0 => Ok(Release::none()),
            v => self.release(app, v),
        }
    }

    /// Appends a release built from `make(current)`; it becomes current at
    /// once when `activate` (else it is `Pending` until `finish_release`).
    fn append(
        &self,
        app: &AppName,
        activate: bool,
        make: impl Fn(&Release) -> std::result::Result<Release, LedgerError>,
    ) -> Result<Release> {
        let r = (&self.heads, &self.releases).transaction(|(heads, rels)| {
            let mut head = head_of(heads, app)?;
            let current: Release = match tx_get(rels, &release_key(app, head.current))? {
                Some(r) => r,
                None if head.current == 0 => Release::none(),
                None => {
                    return abort(LedgerError::Corrupt {
                        key: format!("{app} v{}", head.current),
                        why: "the current release is missing".into(),
                    });
                }
            };
            let mut next = make(&current).or_else(abort)?;
            head.last += 1;
            next.version = head.last;
            next.created_at = Utc::now();
            next.status = if activate {
                head.current = head.last;
                Status::Succeeded
            } else {
                Status::Pending
            };
            rels.insert(release_key(app, next.version), encode(&next))?;
            heads.insert(app.as_str(), encode(&head))?;
            Ok(next)
        });
        let release = flatten(r)?;
        self.flush()?;
        Ok(release)
    }

    /// Records a deploy: the new slug and process types with the current
    /// config vars.
    pub fn create_release(
        &self,
        app: &AppName,
        new: NewRelease,
        activate: bool,
    ) -> Result<Release> {
        self.append(app, activate, |current| {
            Ok(Release {
                slug: Some(new.slug.clone()),
                config: current.config.clone(),
                process_types: new.process_types.clone(),
                description: new.description.clone(),
                ..current.clone()
            })
        })
    }

    /// Ends a pending release's release phase: success makes it current.
    pub fn finish_release(&self, app: &AppName, version: u64, ok: bool) -> Result<Release> {
        let r = (&self.heads, &self.releases).transaction(|(heads, rels)| {
            let mut head = head_of(heads, app)?;
            let key = release_key(app, version);
            let Some(mut rel): Option<Release> = tx_get(rels, &key)? else {
                return abort(LedgerError::ReleaseNotFound {
                    app: app.to_string(),
                    version: format!("v{version}"),
                });
            };
            rel.status = if ok {
                Status::Succeeded
            } else {
                Status::Failed
            };
            if ok && version > head.current {
                head.current = version;
                heads.insert(app.as_str(), encode(&head))?;
            }
            rels.insert(key, encode(&rel))?;
            Ok(rel)
        });
        let rel = flatten(r)?;
        self.flush()?;
        Ok(rel)
    }

    /// `config:set` / `config:unset`: a new release with the changed vars.
    pub fn set_config(
        &self,
        app: &AppName,
        set: &BTreeMap<ConfigKey, String>,
        unset: &[ConfigKey],
    ) -> Result<Release> {
        self.append(app, true, |current| {
            let mut config = current.config.clone();
            for k in unset {
                if config.remove(k.as_str()).is_none() {
                    return Err(LedgerError::NoSuchConfig(k.to_string()));
                }
            }
            for (k, v) in set {
                config.insert(k.to_string(), v.clone());
            }
            let size = config_size(&config);
            if size > MAX_CONFIG_BYTES {
                return Err(LedgerError::ConfigTooBig(size));
            }
            let names = |keys: Vec<&str>| keys.join(", ");
            let description = match (set.is_empty(), unset.is_empty()) {
                (false, true) => format!(
                    "Set {} config vars",
                    names(set.keys().map(|k| k.as_str()).collect())
                ),
                (true, false) => format!(
                    "Remove {} config vars",
                    names(unset.iter().map(|k| k.as_str()).collect())
                ),
                _ => format!(
                    "Set {} and remove {} config vars",
                    names(set.keys().map(|k| k.as_str()).collect()),
                    names(unset.iter().map(|k| k.as_str()).collect())
                ),
            };
            Ok(Release {
                config,
                description,
                ..current.clone()
            })
        })
    }

    /// `releases:rollback vN`: a new release with vN's slug, config and
    /// process types.
    pub fn rollback(&self, app: &AppName, version: u64) -> Result<Release> {
        let target = self.release(app, version)?;
        if target.status != Status::Succeeded {
            return Err(LedgerError::BadRollback {
                version,
                why: "did not succeed",
            });
        }
        self.append(app, true, |current| {
            Ok(Release {
                slug: target.slug.clone(),
                config: target.config.clone(),
                process_types: target.process_types.clone(),
                description: format!("Rollback to v{version}"),
                ..current.clone()
            })
        })
    }

    /// How many dynos of each process type should run.
    pub fn formation(&self, app: &AppName) -> Result<BTreeMap<String, u32>> {
        self.app(app)?;
        match self.formation.get(app.as_str())? {
            Some(v) => decode(app.as_str().as_bytes(), &v),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Changes the formation; every type must exist in the current release.
    pub fn scale(
        &self,
        app: &AppName,
        changes: &BTreeMap<ProcessType, u32>,
    ) -> Result<BTreeMap<String, u32>> {
        let current = self.current(app)?;
        for ty in changes.keys() {
            if !current.process_types.contains_key(ty.as_str()) {
                let known: Vec<&str> = current.process_types.keys().map(String::as_str).collect();
                return Err(LedgerError::UnknownProcessType {
                    app: app.to_string(),
                    ty: ty.to_string(),
                    known: if known.is_empty() {
                        "none yet: deploy first".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
        let r = self.formation.transaction(|form| {
            let mut f: BTreeMap<String, u32> =
                tx_get(form, app.as_str().as_bytes())?.unwrap_or_default();
            for (ty, n) in changes {
                f.insert(ty.to_string(), *n);
            }
            form.insert(app.as_str(), encode(&f))?;
            Ok(f)
        });
        let f = flatten(r)?;
        self.flush()?;
        Ok(f)
    }

    /// Starts recording a build; returns its id.
    pub fn create_build(&self, app: &AppName, source: &str) -> Result<Build> {
        self.app(app)?;
        let id = self.db.generate_id()?;
        let build = Build {
            id,
            status: Status::Pending,
            source: source.to_owned(),
            slug: None,
            release: None,
            created_at: Utc::now(),
            output_tail: String::new(),
        };
        let mut key = prefix(app);
        key.extend_from_slice(&id.to_be_bytes());
        self.builds.insert(key, encode(&build))?;
        self.flush()?;
        Ok(build)
    }

    pub fn finish_build(&self, app: &AppName, build: &Build) -> Result<()> {
        let mut key = prefix(app);
        key.extend_from_slice(&build.id.to_be_bytes());
        self.builds.insert(key, encode(build))?;
        self.flush()
    }

    pub fn builds(&self, app: &AppName) -> Result<Vec<Build>> {
        self.app(app)?;
        self.builds
            .scan_prefix(prefix(app))
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
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
