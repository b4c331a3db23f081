//! The ledger of a cluster: the `wdyno-ledger` KV bucket of NATS
//! JetStream, replicated on up to three servers, written by every host.
//!
//! Keys (values are JSON):
//! - `head.APP` → the app's [`Head`]: its [`App`] record, incarnation id,
//!   last and current version, build counter, formation, how release
//!   phases ended, and the ids of its last changes. Changed only by
//!   compare-and-set on its revision, so whatever must change together
//!   lives here.
//! - `release.APP.INC.V` → release `V` (an immutable record, written once
//!   with "create": it fails when the key exists).
//! - `build.APP.INC.ID` → build `ID` (created once, then rewritten by
//!   `finish_build`).
//!
//! `INC` is the app's incarnation, new at each `create_app`: a destroyed
//! app's records (purged, but possibly written late by a writer that raced
//! the destroy) can never be read as its successor's.
//!
//! **Appending release N+1** (deploy, config change, rollback): read the
//! head (revision `r`, last `N`) and roll it forward (below); build the
//! release from the current one; create `release.APP.INC.(N+1)`; then move
//! the head to `last = N+1` by compare-and-set at `r`. *The create is the
//! commit*: two writers can never both create one key, so versions are
//! unique, and a writer only creates `N+1` after seeing `N`, so they have
//! no gaps. The head is a cache of the history that anyone may bring up to
//! date: a writer that crashed (or lost its race) between its create and
//! its compare-and-set leaves a complete record at `last + 1`, and every
//! reader and writer **rolls forward** over such records (`last` and, for
//! a release that was current at once, `current`) before it uses a head —
//! readers in memory, writers in their next compare-and-set. So a release
//! is visible to every reader from the instant its create is acknowledged.
//!
//! **A release phase's end** (`finish_release`) changes the head, not the
//! record: the head's `ended` maps a version to how its phase ended, and
//! `current` moves in the same compare-and-set. A release's status is its
//! record's (`pending` or, when current at once, `succeeded`) unless
//! `ended` names it. Builds use the same create-then-roll-forward scheme
//! on the build counter.
//!
//! **Committed** means acknowledged by the stream, i.e. stored by a
//! majority of its servers: for a new release or build, its record's
//! create; for anything else (`finish_release`, `scale`, `update_app`,
//! `destroy_app`), the head's compare-and-set (a delete, for a destroy).
//! A call returns `Ok` only once its change is committed.
//!
//! **When the cluster does not answer** (a minority of servers left, a
//! leader election), a change retries for about one call timeout, then
//! fails with [`LedgerError::NotCommitted`]. Each change carries a random
//! id, stored in its record and in the head's `recent` list, so a writer
//! whose call timed out reads back and tells whether it landed rather than
//! doing it twice (a retried create of the same version, or compare-and-set
//! of the same revision, cannot land twice). A release's writer also looks
//! through the records from the first version it may have taken, so it
//! finds its own however many changes came since; other changes rely on
//! the head's last [`RECENT_CHANGES`]. Only a write whose answer was
//! lost and could not be read back before the deadline is left undecided
//! (a quorum that comes back may still apply it); the error then says so,
//! and otherwise says that nothing was changed.
//!
//! Limits: reads go to the stream's leader, so a leader cut off from the
//! others may answer stale reads until it steps down (writes stay
//! compare-and-set: never a fork). NATS takes seconds to elect a new
//! leader, and a change started during an election may fail as above.
//! The head's `ended` grows by one entry per release phase. `recover`
//! fails every pending release of every app: in a cluster only a caller
//! that knows no host runs a release phase (the scheduler, on start-up)
//! may call it.
//!
//! [`NatsLedger::watch`] yields an app's name whenever its head or one of
//! its releases changes, on any host.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use super::{App, LedgerError, Result};
use crate::cluster::Cluster;
use crate::formation::Formation;
use crate::names::AppName;
use crate::release::{Release, Status};

mod apps;
mod bucket;
mod builds;
mod history;
mod trait_impl;

use bucket::{Bucket, Fail, Tries};

/// The bucket every host's ledger shares.
pub const BUCKET: &str = "wdyno-ledger";
/// How many change ids a head remembers: enough for a writer whose call
/// timed out to find its own among the changes made since.
const RECENT_CHANGES: usize = 64;

/// One app's head: everything that must change together.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    /// New at each `create_app`; part of every record key of the app.
    incarnation: String,
    app: App,
    /// The newest version the head has taken in (0: none yet).
    last: u64,
    /// The version dynos run (0: none yet).
    current: u64,
    /// The newest build number.
    builds: u64,
    #[serde(default)]
    formation: Formation,
    /// How each release phase ended: version → succeeded or failed.
    #[serde(default)]
    ended: BTreeMap<u64, Status>,
    /// `(change id, number)` of the last changes, newest last: the number
    /// is the version or build a change made (0 for others).
    #[serde(default)]
    recent: VecDeque<(String, u64)>,
}

impl Head {
    fn remember(&mut self, change: &str, n: u64) {
        self.recent.push_back((change.to_owned(), n));
        while self.recent.len() > RECENT_CHANGES {
            self.recent.pop_front();
        }
    }

    /// The number a change made, if it is in this head.
    fn landed(&self, change: &str) -> Option<u64> {
        self.recent
            .iter()
            .find(|(c, _)| c == change)
            .map(|(_, n)| *n)
    }

    /// A release's status as this head knows it.
    fn status_of(&self, r: &Release) -> Status {
        self.ended.get(&r.version).copied().unwrap_or(r.status)
    }
}

/// A record as stored: the change that wrote it, then the record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored<T> {
    change: String,
    value: T,
}

/// A head as read, rolled forward in memory, with the revision a
/// compare-and-set of it must name.
struct Snapshot {
    head: Head,
    rev: u64,
    /// The records rolled forward over, by version.
    rolled: BTreeMap<u64, Release>,
}

fn head_key(app: &AppName) -> String {
    format!("head.{app}")
}

fn release_prefix(app: &AppName, inc: &str) -> String {
    format!("release.{app}.{inc}")
}

fn release_key(app: &AppName, inc: &str, version: u64) -> String {
    format!("{}.{version}", release_prefix(app, inc))
}

fn build_prefix(app: &AppName, inc: &str) -> String {
    format!("build.{app}.{inc}")
}

fn build_key(app: &AppName, inc: &str, id: u64) -> String {
    format!("{}.{id}", build_prefix(app, inc))
}

/// A fresh id for a change or an incarnation (letters and digits, safe
/// in a key).
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Now, to the microsecond, as [`super::SledLedger`] stores it.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| LedgerError::Corrupt {
        key: key.to_owned(),
        why: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("ledger values serialize")
}

/// The ledger of a cluster. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct NatsLedger {
    bucket: Bucket,
}

impl NatsLedger {
    /// The cluster's ledger, its bucket created when missing.
    pub async fn open(cluster: &Cluster) -> Result<NatsLedger> {
        let kv = cluster
            .kv(BUCKET, Duration::ZERO)
            .await
            .map_err(|e| LedgerError::Unreadable(e.to_string()))?;
        Ok(NatsLedger {
            bucket: Bucket::new(kv),
        })
    }

    /// The name of an app each time its head or one of its releases
    /// changes, on any host (not the changes before the call). Hosts
    /// reconcile the app when it yields; names may repeat.
    pub async fn watch(&self) -> Result<BoxStream<'static, AppName>> {
        let watch = self
            .bucket
            .store()
            .watch_many(["head.>", "release.>"])
            .await
            .map_err(|e| LedgerError::Unreadable(e.to_string()))?;
        Ok(watch
            .filter_map(|entry| async move {
                let entry = entry.ok()?;
                let name = entry.key.split('.').nth(1)?;
                AppName::parse(name).ok()
            })
            .boxed())
    }

    /// The app's head, rolled forward over every record created after it.
    async fn load(&self, app: &AppName) -> Result<Snapshot, Fail> {
        self.load_with(app, true).await
    }

    /// [`NatsLedger::load`], rolling the build counter forward too when
    /// `builds` (an append need not: a head whose counter lags is rolled
    /// forward by the next build).
    async fn load_with(&self, app: &AppName, builds: bool) -> Result<Snapshot, Fail> {
        let key = head_key(app);
        let found = self.bucket.get(&key).await?;
        let Some(bytes) = found.value else {
            return Err(LedgerError::AppNotFound(app.to_string()).into());
        };
        let mut head: Head = decode(&key, &bytes)?;
        let inc = head.incarnation.clone();
        let mut rolled = BTreeMap::new();
        while let Some(next) = self.stored_release(app, &inc, head.last + 1).await? {
            head.last = next.value.version;
            if next.value.status == Status::Succeeded {
                head.current = head.last;
            }
            head.remember(&next.change, head.last);
            rolled.insert(head.last, next.value);
        }
        while builds && let Some(next) = self.stored_build(app, &inc, head.builds + 1).await? {
            head.builds = next.value.id;
            head.remember(&next.change, head.builds);
        }
        Ok(Snapshot {
            head,
            rev: found.rev,
            rolled,
        })
    }

    async fn stored<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, Fail> {
        match self.bucket.get(key).await?.value {
            Some(bytes) => Ok(Some(decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn stored_release(
        &self,
        app: &AppName,
        inc: &str,
        version: u64,
    ) -> Result<Option<Stored<Release>>, Fail> {
        self.stored(&release_key(app, inc, version)).await
    }

    async fn stored_build(
        &self,
        app: &AppName,
        inc: &str,
        id: u64,
    ) -> Result<Option<Stored<super::Build>>, Fail> {
        self.stored(&build_key(app, inc, id)).await
    }

    /// Release `version` of the snapshot's app, its status as its head says.
    async fn release_in(&self, s: &Snapshot, app: &AppName, version: u64) -> Result<Release, Fail> {
        let missing = || LedgerError::ReleaseNotFound {
            app: app.to_string(),
            version: format!("v{version}"),
        };
        if version == 0 || version > s.head.last {
            return Err(missing().into());
        }
        if let Some(r) = s.rolled.get(&version) {
            let mut r = r.clone();
            r.status = s.head.status_of(&r);
            return Ok(r);
        }
        let Some(stored) = self
            .stored_release(app, &s.head.incarnation, version)
            .await?
        else {
            return Err(LedgerError::Corrupt {
                key: release_key(app, &s.head.incarnation, version),
                why: format!(
                    "the head names v{} but this release is missing",
                    s.head.last
                ),
            }
            .into());
        };
        let mut r = stored.value;
        r.status = s.head.status_of(&r);
        Ok(r)
    }

    /// Runs `step` until it finishes or its [`Tries`] run out.
    async fn read<T, F, Fut>(&self, step: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Fail>>,
    {
        let mut tries = Tries::read();
        loop {
            match step().await {
                Ok(v) => return Ok(v),
                Err(f) => tries.after(f).await?,
            }
        }
    }
}
