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
/// Every this many ticks a host writes all its records again.
const REWRITE_EVERY: u64 = 25;
/// Remote backends' ids: apart from the manager's own (which count up
/// from 1).
const REMOTE_IDS: u64 = 1 << 62;

/// One host's dynos of one app, and when the host wrote them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    at: chrono::DateTime<chrono::Utc>,
    dynos: Vec<DynoInfo>,
}

/// The cluster's dynos, kept current.
pub struct Dynos {
    membership: Arc<Membership>,
    kv: kv::Store,
    /// `(app, host)` → its dynos there.
    records: Mutex<HashMap<(String, String), Record>>,
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
            .filter(|((a, h), r)| {
                a == app && h != me && up.get(h).is_some_and(|u| r.at >= u.up_since)
            })
            .map(|((_, h), r)| (h.clone(), r.dynos.clone()))
            .collect()
    }

    /// How many dynos each up host runs.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        for ((_, h), r) in self.records.lock().expect("dynos lock").iter() {
            *n.entry(h.clone()).or_default() += r.dynos.len();
        }
        n
    }

    /// Writes this host's dynos of each app whenever they change, each
    /// record stamped with when it was written: a write queued while the
    /// host was cut off may reach the servers after it is back, and
    /// readers know it for stale by its stamp (older than the host's
    /// `up_since`).
    pub async fn publish(self: Arc<Self>, manager: Arc<Manager>) {
        let me = self.membership.me().to_owned();
        // What the bucket holds of this host, as far as it knows.
        let mut last: HashMap<String, Vec<u8>> = HashMap::new();
        let mut tick = tokio::time::interval(PUBLISH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewed = self.membership.renewed();
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            // Now and then, and whenever it renews after a lapse, this
            // host writes everything again, changed or not.
            if ticks.is_multiple_of(REWRITE_EVERY) || renewed.has_changed().unwrap_or(false) {
                renewed.borrow_and_update();
                for body in last.values_mut() {
                    body.clear();
                }
            }
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
            for (app, body) in &now {
                if last.get(app) == Some(body) {
                    continue;
                }
                let record = Record {
                    at: chrono::Utc::now(),
                    dynos: serde_json::from_slice(body).expect("dynos deserialize"),
                };
                let bytes = serde_json::to_vec(&record).expect("records serialize");
                match self.kv.put(format!("{app}.{me}"), bytes.into()).await {
                    Ok(_) => last.insert(app.clone(), body.clone()),
                    // Tried again next tick.
                    Err(_) => last.insert(app.clone(), Vec::new()),
                };
            }
            let gone: Vec<String> = last
                .keys()
                .filter(|a| !now.contains_key(*a))
                .cloned()
                .collect();
            for app in gone {
                if self.kv.delete(format!("{app}.{me}")).await.is_ok() {
                    last.remove(&app);
                }
            }
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
                        let record = match entry.operation {
                            kv::Operation::Put => serde_json::from_slice(&entry.value).ok(),
                            _ => None,
                        };
                        let dynos = record.unwrap_or(Record { at: chrono::DateTime::UNIX_EPOCH, dynos: Vec::new() });
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
                    // A host that went down forgets nothing it can tell:
                    // its records are dropped, and it writes them afresh
                    // once it is back (its dynos stopped when it lapsed).
                    let up = self.membership.up();
                    let me = self.membership.me().to_owned();
                    let apps: Vec<String> = {
                        let mut records = self.records.lock().expect("dynos lock");
                        let apps = records.keys().map(|(a, _)| a.clone()).collect();
                        records.retain(|(_, h), _| *h == me || up.contains_key(h));
                        apps
                    };
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
        let per_host: Vec<(String, Record)> = self
            .records
            .lock()
            .expect("dynos lock")
            .iter()
            .filter(|((a, h), _)| a == app && h != me)
            .map(|((_, h), r)| (h.clone(), r.clone()))
            .collect();
        routes.keep_remote(app, |h| up.contains_key(h));
        for (host, written) in per_host {
            let backends = match up.get(&host) {
                // Written before the host's latest lapse: stale.
                Some(record) if written.at >= record.up_since => written
                    .dynos
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
                _ => Vec::new(),
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
