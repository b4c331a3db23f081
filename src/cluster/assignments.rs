//! Each host's view of `wdyno-assign` (which host runs each dyno, as the
//! scheduler of [`super::schedule`] wrote it): the manager's [`Scope`].
//! It follows the bucket's watch and reloads it whole on a timer too (a
//! watch can go quiet on a degraded connection: reconcile from state on a
//! loop, as wasmCloud learnt), and sheds this host's dynos the moment its
//! heartbeat lapses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;

use super::hosts::Membership;
use super::{Cluster, ClusterError};
use crate::manager::{Manager, Scope};
use crate::names::{AppName, DynoName};

/// How often a host reloads every assignment, watch or not.
const RELOAD: Duration = Duration::from_secs(5);

pub(super) const BUCKET: &str = "wdyno-assign";

/// One app's dynos and the host each runs on.
pub type Assignment = BTreeMap<String, String>;

/// The assignments, as this host knows them: the manager's [`Scope`].
pub struct Assignments {
    membership: Arc<Membership>,
    map: RwLock<HashMap<String, Assignment>>,
    kv: kv::Store,
}

impl Scope for Assignments {
    fn runs_here(&self, app: &AppName, dyno: &DynoName) -> bool {
        // A host that lapsed runs nothing: its dynos are being placed
        // elsewhere.
        self.membership.is_renewed()
            && self
                .map
                .read()
                .expect("assignments lock")
                .get(app.as_str())
                .and_then(|a| a.get(&dyno.to_string()))
                .is_some_and(|h| h == self.membership.me())
    }

    fn hosts(&self) -> u32 {
        self.membership.up().len().max(1) as u32
    }
}

impl Assignments {
    pub async fn open(
        cluster: &Cluster,
        membership: Arc<Membership>,
    ) -> Result<Arc<Self>, ClusterError> {
        let kv = cluster.kv(BUCKET, Duration::ZERO).await?;
        let me = Arc::new(Assignments {
            membership,
            map: RwLock::new(HashMap::new()),
            kv,
        });
        me.reload().await;
        Ok(me)
    }

    /// An app's assignment.
    pub fn of(&self, app: &str) -> Assignment {
        self.map
            .read()
            .expect("assignments lock")
            .get(app)
            .cloned()
            .unwrap_or_default()
    }

    /// Reads every assignment; returns the apps whose changed.
    async fn reload(&self) -> Vec<String> {
        let Ok(Ok(keys)) = tokio::time::timeout(super::CALL_TIMEOUT, self.kv.keys()).await else {
            return Vec::new();
        };
        let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
        let mut fresh = HashMap::new();
        for k in keys {
            if let Ok(Some(v)) = self.kv.get(&k).await
                && let Ok(a) = serde_json::from_slice::<Assignment>(&v)
            {
                fresh.insert(k, a);
            }
        }
        let mut map = self.map.write().expect("assignments lock");
        let changed: Vec<String> = fresh
            .iter()
            .filter(|(k, v)| map.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(map.keys().filter(|k| !fresh.contains_key(*k)).cloned())
            .collect();
        *map = fresh;
        changed
    }

    /// Keeps the assignments current and wakes the manager's loop of each
    /// app whose changed; wakes every app when this host lapses or
    /// renews.
    pub async fn follow(self: Arc<Self>, manager: Arc<Manager>) {
        tokio::spawn(self.clone().shed_on_lapse(manager.clone()));
        let mut renewed = self.membership.renewed();
        let mut reload = tokio::time::interval(RELOAD);
        let mut watch = None;
        loop {
            if watch.is_none() {
                watch = self.kv.watch_all().await.ok();
            }
            let event = async {
                match watch.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            };
            let changed: Vec<String> = tokio::select! {
                e = event => match e {
                    Some(Ok(entry)) => {
                        let mut map = self.map.write().expect("assignments lock");
                        match serde_json::from_slice::<Assignment>(&entry.value) {
                            Ok(a) if entry.operation == kv::Operation::Put => {
                                map.insert(entry.key.clone(), a);
                            }
                            _ => {
                                map.remove(&entry.key);
                            }
                        }
                        vec![entry.key]
                    }
                    Some(Err(_)) => Vec::new(),
                    None => {
                        watch = None;
                        Vec::new()
                    }
                },
                _ = reload.tick() => self.reload().await,
                r = renewed.changed() => {
                    if r.is_err() {
                        return;
                    }
                    // Back after a lapse: only what is assigned here now.
                    if *renewed.borrow_and_update() {
                        self.reload().await;
                    }
                    self.map.read().expect("assignments lock").keys().cloned().collect()
                }
            };
            for app in changed {
                if let Ok(app) = AppName::parse(&app) {
                    manager.request(&app);
                }
            }
        }
    }
}

impl Assignments {
    /// The moment this host lapses, nothing here is its any more (its
    /// dynos are being placed elsewhere) and the ledger may be out of
    /// reach: its dynos stop at once, whatever the other loops wait on.
    async fn shed_on_lapse(self: Arc<Self>, manager: Arc<Manager>) {
        let mut renewed = self.membership.renewed();
        while renewed.changed().await.is_ok() {
            if *renewed.borrow_and_update() {
                continue;
            }
            self.map.write().expect("assignments lock").clear();
            for app in manager.apps() {
                if let Ok(app) = AppName::parse(&app) {
                    manager.shed(&app);
                }
            }
        }
    }
}
