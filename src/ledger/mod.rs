//! The ledger: apps, their releases, config vars, formation and builds.
//!
//! [`Ledger`] is the platform's memory, at the level of Heroku's words: an
//! app's releases are append-only (`v1, v2, …` with no gaps; a config
//! change, a deploy and a rollback each add one), and `current` always
//! names the newest release that *succeeded*: a release whose release phase
//! fails is recorded, but never becomes current.
//!
//! Every method is one atomic change of one app, ordered by that app's
//! head (its last version, current version and build number): an
//! implementation must commit it as a compare-and-set on the head, so two
//! writers (two requests, or two hosts of a cluster) can never both take
//! the same version, and a crash at any instant leaves the last committed
//! release intact and usable. Writes are durable when the call returns.
//!
//! [`SledLedger`] is the single-host implementation. Its trees (values are
//! JSON):
//! - `apps`: app name → [`App`]
//! - `heads`: app name → its last version, current version and last build
//!   number: the one record every change of an app's history touches
//! - `releases`: `app\0` + version (u64 big-endian) → [`Release`]
//! - `formation`: app name → process type → dyno count
//! - `builds`: `app\0` + build number (u64 big-endian) → [`Build`]
//!
//! Its operations live in submodules, each an `impl SledLedger` block:
//! `history` (releases, config vars, rollback), `formation`, `builds`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::formation::Formation;
use crate::idling::SleepAfter;
use crate::names::{AppName, ConfigKey, ProcessType};
use crate::release::{NewRelease, Release, Status};
use crate::routing::Routing;
use crate::slug::SlugId;

mod nats;
mod sled;

pub use self::nats::NatsLedger;
pub use self::sled::{SledLedger, config_size};

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
    #[error("{app} already drains to {url}.")]
    DrainExists { app: String, url: String },
    #[error("{app} has no drain {which}. Run `wdyno drains -a {app}` to list them.")]
    NoSuchDrain { app: String, which: String },
    #[error("{app} has no build {id}. Run `wdyno builds -a {app}` to list them.")]
    BuildNotFound { app: String, id: u64 },
    #[error("ledger storage error: {0}")]
    Storage(#[from] ::sled::Error),
    #[error("ledger entry {key} is unreadable: {why}")]
    Corrupt { key: String, why: String },
    /// A cluster's ledger took no decision on a change: too few NATS servers
    /// answered (or writers kept racing) until the deadline. `hint` says
    /// whether the change may still land once they are back.
    #[error(
        "the cluster's ledger could not commit this change: {why}. {hint}Check that a majority \
         of the NATS servers are up (`wdyno hosts`)."
    )]
    NotCommitted { why: String, hint: &'static str },
    /// A cluster's ledger could not be read before the deadline.
    #[error(
        "the cluster's ledger could not be read: {0}. Check that a majority of the NATS \
         servers are up (`wdyno hosts`)."
    )]
    Unreadable(String),
    /// The blocking task that ran a ledger operation died (a panic).
    #[error("ledger task failed: {0}")]
    Task(String),
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
    /// Labs features turned on (`log-runtime-metrics`).
    #[serde(default)]
    pub features: BTreeSet<String>,
    /// Where its log lines are sent, besides its ring.
    #[serde(default)]
    pub drains: Vec<Drain>,
    /// How the router spreads its requests.
    #[serde(default)]
    pub routing: Routing,
    /// How long without a request before its web dynos sleep (`off`).
    #[serde(default)]
    pub sleep_after: SleepAfter,
}

/// A log drain: every line of the app goes to `url` too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// A UUID, as Heroku's.
    pub id: String,
    /// `https://…`, `http://…`, `syslog+tls://host:port`, `syslog://host:port`.
    pub url: String,
    /// `d.` + a UUID: the syslog hostname of its lines, and the
    /// `Logplex-Drain-Token` header of HTTP drains.
    pub token: String,
    pub created_at: DateTime<Utc>,
}

/// One change of an app's own record (not its history).
#[derive(Debug, Clone)]
pub enum AppChange {
    /// The buildpacks its builds use (empty: detect).
    Buildpacks(Vec<String>),
    /// Turns a labs feature on or off.
    Feature { name: String, enabled: bool },
    /// Adds a drain; a drain to the same URL is refused.
    AddDrain(Drain),
    /// Removes the drain with this id.
    RemoveDrain(String),
    /// How the router spreads its requests.
    Routing(Routing),
    /// How long without a request before its web dynos sleep.
    SleepAfter(SleepAfter),
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

/// The release ledger, at the domain level. See the module doc for what
/// every implementation promises.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync {
    /// A new app with no releases (`apps:create`).
    async fn create_app(&self, name: &AppName) -> Result<App>;
    /// Removes an app and every record of it (`apps:destroy`).
    async fn destroy_app(&self, name: &AppName) -> Result<()>;
    /// Changes an app's record (buildpacks, features, drains) and returns
    /// it as changed.
    async fn update_app(&self, name: &AppName, change: AppChange) -> Result<App>;
    /// Every app, by name.
    async fn apps(&self) -> Result<Vec<App>>;
    async fn app(&self, name: &AppName) -> Result<App>;

    /// Every release of an app, oldest first.
    async fn releases(&self, app: &AppName) -> Result<Vec<Release>>;
    async fn release(&self, app: &AppName, version: u64) -> Result<Release>;
    /// The release dynos run (version 0, with no slug, before any).
    async fn current(&self, app: &AppName) -> Result<Release>;
    /// Appends a deploy's release: current at once when `activate`, else
    /// pending until [`Ledger::finish_release`] (its release phase).
    async fn create_release(
        &self,
        app: &AppName,
        new: NewRelease,
        activate: bool,
    ) -> Result<Release>;
    /// Ends a pending release's release phase: `ok` makes it current.
    async fn finish_release(&self, app: &AppName, version: u64, ok: bool) -> Result<Release>;
    /// Appends a release of the current slug with these config changes;
    /// when it has a `release` process it is pending, as a deploy's, until
    /// [`Ledger::finish_release`].
    async fn set_config(
        &self,
        app: &AppName,
        set: &BTreeMap<ConfigKey, String>,
        unset: &[ConfigKey],
    ) -> Result<Release>;
    /// Appends a release with `version`'s slug and config (pending when it
    /// has a `release` process, as [`Ledger::set_config`]).
    async fn rollback(&self, app: &AppName, version: u64) -> Result<Release>;

    /// How many dynos of each type the app runs.
    async fn formation(&self, app: &AppName) -> Result<Formation>;
    /// Changes some types' counts (each must exist in the current release)
    /// and returns the whole formation.
    async fn scale(&self, app: &AppName, changes: &BTreeMap<ProcessType, u32>)
    -> Result<Formation>;

    /// Records a build that has started (`pending`).
    async fn create_build(&self, app: &AppName, source: &str) -> Result<Build>;
    /// Records how a build ended.
    async fn finish_build(&self, app: &AppName, build: &Build) -> Result<()>;
    async fn build(&self, app: &AppName, id: u64) -> Result<Build>;
    /// Every build of an app, oldest first.
    async fn builds(&self, app: &AppName) -> Result<Vec<Build>>;

    /// Every slug a release names (the slug store keeps only these).
    async fn slugs_in_use(&self) -> Result<HashSet<SlugId>>;
    /// After a crash: a release phase that was running never finished, so
    /// its release is marked failed. Returns `(app, version)` of each.
    async fn recover(&self) -> Result<Vec<(AppName, u64)>>;
}
