//! Membership: every host heartbeats its record into `wdyno-hosts` each
//! [`BEAT_EVERY`]; a host not heard from for [`HOST_TTL`] is down, and
//! its dynos are placed elsewhere. A host that could not renew its own
//! heartbeat for [`LAPSE`] (shorter than the TTL) has *lapsed*: it stops
//! its dynos before the others start theirs, so a cut-off host never
//! serves beside its replacements.
//!
//! Liveness is judged by when a host's record was last seen here (the
//! bucket's watch), not by the clocks in it, so hosts' clocks may differ.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Cluster, ClusterError};
use crate::manager::CapacityUse;

/// How often a host renews its record.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);
/// A host not heard from for this long is down.
pub const HOST_TTL: Duration = Duration::from_secs(5);
/// A host that could not renew for this long stops its dynos.
pub const LAPSE: Duration = Duration::from_secs(4);
/// How long a down host's record stays for `wdyno hosts` to show.
const RECORD_AGE: Duration = Duration::from_secs(60);

const BUCKET: &str = "wdyno-hosts";

/// What a host says of itself in each heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    /// Its router, as clients reach it.
    pub router: SocketAddr,
    /// Its router's peer port: other hosts' routers hand it requests for
    /// its dynos.
    pub peer: SocketAddr,
    pub api: SocketAddr,
    pub capacity: CapacityUse,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Since when it takes part without a lapse: what it wrote before is
    /// stale (set by [`Membership`]).
    #[serde(default)]
    pub up_since: DateTime<Utc>,
}

/// A host as this one sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub record: HostRecord,
    /// When its latest record reached this host.
    pub at: Instant,
}

impl Seen {
    pub fn is_up(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) < HOST_TTL
    }
}

/// This host's view of the cluster's hosts, kept current.
pub struct Membership {
    me: String,
    hosts: Mutex<BTreeMap<String, Seen>>,
    /// Bumped on every record seen and every host going down: followers
    /// (the scheduler, the route feed) look again.
    changed: watch::Sender<u64>,
    /// Whether this host renewed its heartbeat within [`LAPSE`].
    renewed: watch::Sender<bool>,
    /// When it last began taking part (joined, or renewed after a lapse).
    up_since: Mutex<DateTime<Utc>>,
    stop: CancellationToken,
}

impl Membership {
    /// Joins: starts heartbeating `record()` and following the others.
    pub async fn join(
        cluster: &Cluster,
        record: impl Fn() -> HostRecord + Send + Sync + 'static,
    ) -> Result<Arc<Self>, ClusterError> {
        let kv = cluster.kv(BUCKET, RECORD_AGE).await?;
        let me = Arc::new(Membership {
            me: cluster.host().to_owned(),
            hosts: Mutex::new(BTreeMap::new()),
            changed: watch::channel(0).0,
            renewed: watch::channel(false).0,
            up_since: Mutex::new(Utc::now()),
            stop: CancellationToken::new(),
        });
        // The first beat before anything runs: a host that cannot write
        // its record cannot take part.
        let mut first = record();
        first.up_since = *me.up_since.lock().expect("hosts lock");
        let body = serde_json::to_vec(&first).expect("host records serialize");
        cluster
            .retry("heartbeat", || kv.put(&me.me, body.clone().into()))
            .await?;
        me.renewed.send_replace(true);
        let watch = cluster
            .retry("watching the hosts", || kv.watch_all())
            .await?;
        tokio::spawn(me.clone().follow(watch));
        tokio::spawn(me.clone().beat(kv, record));
        tokio::spawn(me.clone().expire());
        Ok(me)
    }

    /// This host's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Every host seen lately, up or down, by name.
    pub fn hosts(&self) -> BTreeMap<String, Seen> {
        self.hosts.lock().expect("hosts lock").clone()
    }

    /// The hosts up now, by name.
    pub fn up(&self) -> BTreeMap<String, HostRecord> {
        let now = Instant::now();
        self.hosts
            .lock()
            .expect("hosts lock")
            .iter()
            .filter(|(_, s)| s.is_up(now))
            .map(|(n, s)| (n.clone(), s.record.clone()))
            .collect()
    }

    /// Changes whenever a host's record arrives or a host goes down.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// `true` while this host renews its heartbeat.
    pub fn renewed(&self) -> watch::Receiver<bool> {
        self.renewed.subscribe()
    }

    pub fn is_renewed(&self) -> bool {
        *self.renewed.borrow()
    }

    /// Stops heartbeating (shutdown): the others see this host down after
    /// [`HOST_TTL`].
    pub fn leave(&self) {
        self.stop.cancel();
    }

    async fn follow(self: Arc<Self>, mut watch: kv::Watch) {
        loop {
            let entry = tokio::select! {
                e = watch.next() => e,
                _ = self.stop.cancelled() => return,
            };
            let Some(entry) = entry else {
                tracing::warn!("the hosts' watch ended");
                return;
            };
            let Ok(entry) = entry else { continue };
            if entry.operation != kv::Operation::Put {
                self.hosts.lock().expect("hosts lock").remove(&entry.key);
            } else if let Ok(record) = serde_json::from_slice::<HostRecord>(&entry.value) {
                // A record from before the watch began is as old as the
                // server says; later ones arrive as they are written.
                let age = match entry.seen_current {
                    true => Duration::ZERO,
                    false => {
                        let now = Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
                        let nanos = (now - entry.created.unix_timestamp_nanos()).max(0);
                        Duration::from_nanos(nanos.min(u64::MAX as i128) as u64)
                    }
                };
                let now = Instant::now();
                let seen = Seen {
                    record,
                    at: now.checked_sub(age).unwrap_or(now),
                };
                self.hosts
                    .lock()
                    .expect("hosts lock")
                    .insert(entry.key.clone(), seen);
            }
            self.changed.send_modify(|n| *n += 1);
        }
    }

    async fn beat(
        self: Arc<Self>,
        kv: kv::Store,
        record: impl Fn() -> HostRecord + Send + Sync + 'static,
    ) {
        let mut tick = tokio::time::interval(BEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let last_ok = Arc::new(Mutex::new(Instant::now()));
        // The lapse is judged beside the puts: a put to unreachable servers
        // takes its whole timeout to fail.
        let judge = {
            let (me, last_ok) = (self.clone(), last_ok.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = me.stop.cancelled() => return,
                    }
                    let ok = last_ok.lock().expect("beat lock").elapsed() < LAPSE;
                    me.renewed.send_if_modified(|r| {
                        let flip = *r != ok;
                        // Lapsing ends this host's part, renewing starts a
                        // new one: what it wrote before either is stale.
                        if flip {
                            *me.up_since.lock().expect("hosts lock") = Utc::now();
                        }
                        if flip {
                            match ok {
                                true => tracing::info!("heartbeat renewed: this host takes part again"),
                                false => tracing::warn!(
                                    "could not renew this host's heartbeat for {LAPSE:?}: stopping its dynos"
                                ),
                            }
                        }
                        *r = ok;
                        flip
                    });
                }
            })
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.stop.cancelled() => break,
            }
            let mut r = record();
            r.up_since = *self.up_since.lock().expect("hosts lock");
            let body = serde_json::to_vec(&r).expect("host records serialize");
            match tokio::time::timeout(BEAT_EVERY, kv.put(&self.me, body.into())).await {
                Ok(Ok(_)) => *last_ok.lock().expect("beat lock") = Instant::now(),
                Ok(Err(e)) => tracing::debug!("heartbeat: {e}"),
                Err(_) => tracing::debug!("heartbeat: no answer in {BEAT_EVERY:?}"),
            }
        }
        judge.abort();
        let _ = kv.delete(&self.me).await;
    }

    /// Marks hosts down as their TTL runs out (no record arrives to say
    /// so).
    async fn expire(self: Arc<Self>) {
        let mut up_before: Vec<String> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.stop.cancelled() => return,
            }
            let up: Vec<String> = self.up().into_keys().collect();
            if up != up_before {
                up_before = up;
                self.changed.send_modify(|n| *n += 1);
            }
        }
    }
}

/// The cluster's API token: the first host to join stores its own, every
/// later one takes that.
pub async fn cluster_token(cluster: &Cluster, mine: &str) -> Result<String, ClusterError> {
    let kv = cluster.kv("wdyno-cluster", Duration::ZERO).await?;
    cluster
        .retry("the cluster's API token", || async {
            match kv.get("api-token").await {
                Ok(Some(t)) => Ok(String::from_utf8_lossy(&t).into_owned()),
                Ok(None) => match kv.create("api-token", mine.to_owned().into()).await {
                    Ok(_) => Ok(mine.to_owned()),
                    // Another host stored its own first: read it next time.
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            }
        })
        .await
}
