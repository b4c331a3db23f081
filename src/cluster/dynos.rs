//! Every host's dynos, as every host sees them: each host writes its
//! dynos of each app to `wdyno-dynos` under `APP.HOST` whenever they
//! change (what `ps` shows); every host follows the bucket and puts the
//! other up hosts' `up` web dynos in its route table as
//! [`DynoAddr::Remote`] backends, reached through their host's peer port.
//! A host that goes down takes its dynos out of every table at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;

use super::hosts::Membership;
use super::{Cluster, ClusterError};
use crate::manager::{DynoInfo, Manager};
use crate::placement::DynoAddr;
use crate::router::{Backend, RouteTable};

const BUCKET: &str = "wdyno-dynos";
/// How often a host looks whether its dynos changed.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// Remote backends' ids: apart from the manager's own (which count up
/// from 1).
const REMOTE_IDS: u64 = 1 << 62;

/// The cluster's dynos, kept current.
pub struct Dynos {
    membership: Arc<Membership>,
    kv: kv::Store,
    /// `(app, host)` → its dynos there.
    records: Mutex<HashMap<(String, String), Vec<DynoInfo>>>,
    /// A remote dyno instance's backend id (its host, name and start).
    ids: Mutex<HashMap<(String, String, String, i64), u64>>,
    next_id: AtomicU64,
}

impl Dynos {
    pub async fn open(
        cluster: &Cluster,
        membership: Arc<Membership>,
    ) -> Result<Arc<Self>, ClusterError> {
        Ok(Arc::new(Dynos {
            membership,
            kv: cluster.kv(BUCKET, Duration::ZERO).await?,
            records: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(REMOTE_IDS),
        }))
    }

    /// `app`'s dynos on the other up hosts, by host.
    pub fn elsewhere(&self, app: &str) -> BTreeMap<String, Vec<DynoInfo>> {
        let up = self.membership.up();
        let me = self.membership.me();
        self.records
            .lock()
            .expect("dynos lock")
            .iter()
            .filter(|((a, h), _)| a == app && h != me && up.contains_key(h))
            .map(|((_, h), d)| (h.clone(), d.clone()))
            .collect()
    }

    /// How many dynos each up host runs.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        for ((_, h), d) in self.records.lock().expect("dynos lock").iter() {
            *n.entry(h.clone()).or_default() += d.len();
        }
        n
    }

    /// Writes this host's dynos of each app whenever they change.
    pub async fn publish(self: Arc<Self>, manager: Arc<Manager>) {
        let me = self.membership.me().to_owned();
        let mut last: HashMap<String, Vec<u8>> = HashMap::new();
        let mut tick = tokio::time::interval(PUBLISH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut now: HashMap<String, Vec<u8>> = HashMap::new();
            for app in manager.apps() {
                let Ok(name) = crate::names::AppName::parse(&app) else {
                    continue;
                };
                let ps = manager.ps(&name);
                if !ps.is_empty() {
                    now.insert(app, serde_json::to_vec(&ps).expect("dynos serialize"));
                }
            }
            let mut failed = Vec::new();
            for (app, body) in &now {
                if last.get(app) != Some(body) {
                    let key = format!("{app}.{me}");
                    if self.kv.put(&key, body.clone().into()).await.is_err() {
                        failed.push(app.clone());
                    }
                }
            }
            for app in last.keys().filter(|a| !now.contains_key(*a)) {
                let _ = self.kv.delete(format!("{app}.{me}")).await;
            }
            // Not written: tried again next tick.
            for app in failed {
                match last.get(&app) {
                    Some(old) => now.insert(app, old.clone()),
                    None => now.remove(&app),
                };
            }
            last = now;
        }
    }

    /// Follows every host's dynos into this host's route table.
    pub async fn follow(self: Arc<Self>, routes: RouteTable) {
        let mut hosts = self.membership.changes();
        let mut watch = None;
        loop {
            if watch.is_none() {
                watch = self.kv.watch_all().await.ok();
                if watch.is_none() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            let w = watch.as_mut().expect("watch is set");
            tokio::select! {
                e = w.next() => match e {
                    Some(Ok(entry)) => {
                        let Some((app, host)) = entry.key.split_once('.') else { continue };
                        let key = (app.to_owned(), host.to_owned());
                        let dynos = match entry.operation {
                            kv::Operation::Put => serde_json::from_slice(&entry.value).unwrap_or_default(),
                            _ => Vec::new(),
                        };
                        self.records.lock().expect("dynos lock").insert(key, dynos);
                        self.route(&routes, app);
                    }
                    Some(Err(_)) => {}
                    None => watch = None,
                },
                r = hosts.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let apps: Vec<String> = self
                        .records
                        .lock()
                        .expect("dynos lock")
                        .keys()
                        .map(|(a, _)| a.clone())
                        .collect();
                    for app in apps {
                        self.route(&routes, &app);
                    }
                }
            }
        }
    }

    /// Sets `app`'s remote backends from every other host's records.
    fn route(&self, routes: &RouteTable, app: &str) {
        let up = self.membership.up();
        let me = self.membership.me();
        let per_host: Vec<(String, Vec<DynoInfo>)> = self
            .records
            .lock()
            .expect("dynos lock")
            .iter()
            .filter(|((a, h), _)| a == app && h != me)
            .map(|((_, h), d)| (h.clone(), d.clone()))
            .collect();
        for (host, dynos) in per_host {
            let backends = match up.get(&host) {
                Some(record) => dynos
                    .iter()
                    .filter(|d| d.process_type == "web" && d.state == "up")
                    .map(|d| Backend {
                        id: self.id_of(&host, d),
                        dyno: d.name.clone(),
                        addr: DynoAddr::Remote {
                            host: host.clone(),
                            peer: record.peer,
                        },
                        inflight: Arc::default(),
                        pool: Arc::default(),
                    })
                    .collect(),
                None => Vec::new(),
            };
            routes.set_remote(app, &host, backends);
        }
    }

    fn id_of(&self, host: &str, d: &DynoInfo) -> u64 {
        let key = (
            host.to_owned(),
            d.name.clone(),
            d.command.clone(),
            d.updated_at.timestamp_micros(),
        );
        *self
            .ids
            .lock()
            .expect("dynos lock")
            .entry(key)
            .or_insert_with(|| self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}
