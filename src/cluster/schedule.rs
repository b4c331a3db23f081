//! Placement: one scheduler assigns each formation dyno (`web.3`,
//! `worker.1`) to a live host; every host runs what is assigned to it.
//!
//! The scheduler is whichever host holds the lease `scheduler` in
//! `wdyno-leader` (entries expire after [`LEASE`]; the holder renews it
//! each second by compare-and-set, so at most one host renews it). On
//! every tick, host change and ledger change it reads each app's
//! formation and current release from the ledger and writes the app's
//! assignment (dyno → host) to `wdyno-assign` by compare-and-set:
//! - a dyno keeps its host while that host is up;
//! - a new (or orphaned) dyno goes to the up host with the fewest dynos of
//!   its app's type, then the fewest dynos overall;
//! - a type whose spread differs by more than one between up hosts moves
//!   one dyno a tick from the fullest to the emptiest.
//!
//! Hosts follow `wdyno-assign` ([`super::assignments::Assignments`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::hosts::Membership;
use super::{Cluster, ClusterError};
use crate::ledger::Ledger;
use crate::names::AppName;

/// The scheduler's lease: a holder that cannot renew it for this long
/// loses it.
pub const LEASE: Duration = Duration::from_secs(5);
/// How often the scheduler looks at every app, changes or not.
const TICK: Duration = Duration::from_secs(1);

const LEADER_BUCKET: &str = "wdyno-leader";

pub use super::assignments::Assignment;
use super::assignments::BUCKET as ASSIGN_BUCKET;

/// The scheduler: runs on every host, places dynos while it holds the
/// lease.
pub struct Scheduler {
    me: String,
    membership: Arc<Membership>,
    ledger: Arc<dyn Ledger>,
    leader: kv::Store,
    assign: kv::Store,
}

impl Scheduler {
    pub async fn open(
        cluster: &Cluster,
        membership: Arc<Membership>,
        ledger: Arc<dyn Ledger>,
    ) -> Result<Self, ClusterError> {
        Ok(Scheduler {
            me: cluster.host().to_owned(),
            membership,
            ledger,
            leader: cluster.kv(LEADER_BUCKET, LEASE).await?,
            assign: cluster.kv(ASSIGN_BUCKET, Duration::ZERO).await?,
        })
    }

    /// Renews (or takes) the lease and, while held, places every app on
    /// each tick, host change, or app change (`apps`).
    pub async fn run(self, mut apps: broadcast::Receiver<AppName>) {
        let mut lease: Option<u64> = None;
        let mut tick = tokio::time::interval(TICK);
        let mut hosts = self.membership.changes();
        loop {
            let only: Option<AppName> = tokio::select! {
                _ = tick.tick() => {
                    lease = self.hold(lease).await;
                    None
                }
                r = hosts.changed() => {
                    if r.is_err() {
                        return;
                    }
                    None
                }
                a = apps.recv() => match a {
                    Ok(app) => Some(app),
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if lease.is_none() || !self.membership.is_renewed() {
                continue;
            }
            match only {
                Some(app) => self.place(&app).await,
                None => self.place_all().await,
            }
        }
    }

    /// Renews the lease held at revision `held`, or takes a free one.
    async fn hold(&self, held: Option<u64>) -> Option<u64> {
        let body: bytes::Bytes = self.me.clone().into();
        let got = match held {
            Some(rev) => self.leader.update("scheduler", body, rev).await.ok(),
            None => match self.leader.create("scheduler", body).await {
                Ok(rev) => {
                    tracing::info!("this host schedules the cluster's dynos");
                    Some(rev)
                }
                Err(_) => None,
            },
        };
        if held.is_some() && got.is_none() {
            tracing::warn!("lost the scheduler's lease");
        }
        got
    }

    async fn place_all(&self) {
        let Ok(apps) = self.ledger.apps().await else {
            return;
        };
        let names: BTreeSet<String> = apps.iter().map(|a| a.name.to_string()).collect();
        for app in &apps {
            self.place(&app.name).await;
        }
        // A destroyed app's assignment goes.
        if let Ok(keys) = self.assign.keys().await {
            let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
            for k in keys.into_iter().filter(|k| !names.contains(k)) {
                let _ = self.assign.delete(&k).await;
            }
        }
    }

    /// Writes `app`'s assignment if it should change.
    async fn place(&self, app: &AppName) {
        let up: Vec<String> = self.membership.up().into_keys().collect();
        if up.is_empty() {
            return;
        }
        let desired = match self.desired(app).await {
            Ok(d) => d,
            Err(crate::ledger::LedgerError::AppNotFound(_)) => {
                let _ = self.assign.delete(app.as_str()).await;
                return;
            }
            Err(e) => return tracing::debug!("placing {app}: {e}"),
        };
        let entry = match self.assign.entry(app.as_str()).await {
            Ok(e) => e,
            Err(e) => return tracing::debug!("placing {app}: {e}"),
        };
        let (current, revision) = match &entry {
            Some(e) if e.operation == kv::Operation::Put => (
                serde_json::from_slice::<Assignment>(&e.value).unwrap_or_default(),
                Some(e.revision),
            ),
            Some(e) => (Assignment::new(), Some(e.revision)),
            None => (Assignment::new(), None),
        };
        let next = assign(&current, &desired, &up);
        if next == current && revision.is_some() {
            return;
        }
        let body: bytes::Bytes = serde_json::to_vec(&next)
            .expect("assignments serialize")
            .into();
        let wrote: Result<(), String> = match revision {
            Some(rev) => self
                .assign
                .update(app.as_str(), body, rev)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => self
                .assign
                .create(app.as_str(), body)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = wrote {
            // Another writer won: the next tick places again.
            tracing::debug!("placing {app}: {e}");
        }
    }

    /// The formation dynos `app` should run, by type.
    async fn desired(
        &self,
        app: &AppName,
    ) -> Result<BTreeMap<String, u32>, crate::ledger::LedgerError> {
        let release = self.ledger.current(app).await?;
        let formation = self.ledger.formation(app).await?;
        if release.slug.is_none() {
            return Ok(BTreeMap::new());
        }
        Ok(formation
            .iter()
            .filter(|(ty, _)| {
                ty.as_str() != "release" && release.process_types.contains_key(ty.as_str())
            })
            .map(|(ty, n)| (ty.to_string(), n))
            .collect())
    }
}

/// The next assignment of one app: `current` kept where its hosts are up
/// and its dynos wanted, the rest placed, each type's spread evened by at
/// most one move. `desired` is type → count; `up` the up hosts.
pub fn assign(current: &Assignment, desired: &BTreeMap<String, u32>, up: &[String]) -> Assignment {
    let wanted: BTreeSet<String> = desired
        .iter()
        .flat_map(|(ty, n)| (1..=*n).map(move |i| format!("{ty}.{i}")))
        .collect();
    let mut next: Assignment = current
        .iter()
        .filter(|(d, h)| wanted.contains(*d) && up.contains(h))
        .map(|(d, h)| (d.clone(), h.clone()))
        .collect();
    let mut total: BTreeMap<String, usize> = up.iter().map(|h| (h.clone(), 0)).collect();
    for h in next.values() {
        *total.entry(h.clone()).or_default() += 1;
    }
    for (ty, n) in desired {
        let mut of_type: BTreeMap<String, usize> = up.iter().map(|h| (h.clone(), 0)).collect();
        for (d, h) in &next {
            if type_of(d) == ty {
                *of_type.entry(h.clone()).or_default() += 1;
            }
        }
        for i in 1..=*n {
            let dyno = format!("{ty}.{i}");
            if next.contains_key(&dyno) {
                continue;
            }
            let host = up
                .iter()
                .min_by_key(|h| (of_type[*h], total[*h], (*h).clone()))
                .expect("some host is up")
                .clone();
            *of_type.get_mut(&host).expect("up host") += 1;
            *total.get_mut(&host).expect("up host") += 1;
            next.insert(dyno, host);
        }
        // One move evens the spread by one; the next tick does more.
        let fullest = up.iter().max_by_key(|h| (of_type[*h], (*h).clone()));
        let emptiest = up.iter().min_by_key(|h| (of_type[*h], (*h).clone()));
        if let (Some(full), Some(empty)) = (fullest, emptiest)
            && of_type[full] > of_type[empty] + 1
        {
            let moved = (1..=*n)
                .rev()
                .map(|i| format!("{ty}.{i}"))
                .find(|d| next.get(d) == Some(full));
            if let Some(d) = moved {
                next.insert(d, empty.clone());
            }
        }
    }
    next
}

fn type_of(dyno: &str) -> &str {
    dyno.rsplit_once('.').map_or(dyno, |(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn spread(a: &Assignment, ty: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (d, h) in a {
            if type_of(d) == ty {
                *m.entry(h.clone()).or_default() += 1;
            }
        }
        m
    }

    #[test]
    fn six_web_dynos_spread_two_per_host_and_stay_put() {
        let up = hosts(&["a", "b", "c"]);
        let want = BTreeMap::from([("web".to_owned(), 6), ("worker".to_owned(), 1)]);
        let a = assign(&Assignment::new(), &want, &up);
        assert_eq!(a.len(), 7);
        assert_eq!(
            spread(&a, "web"),
            BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
        );
        assert_eq!(assign(&a, &want, &up), a, "a stable assignment is kept");
    }

    #[test]
    fn a_dead_hosts_dynos_move_to_the_others() {
        let want = BTreeMap::from([("web".to_owned(), 6)]);
        let a = assign(&Assignment::new(), &want, &hosts(&["a", "b", "c"]));
        let b = assign(&a, &want, &hosts(&["a", "b"]));
        assert_eq!(
            spread(&b, "web"),
            BTreeMap::from([("a".into(), 3), ("b".into(), 3)])
        );
        for (d, h) in &a {
            if h != "c" {
                assert_eq!(&b[d], h, "{d} stayed on its live host");
            }
        }
    }

    #[test]
    fn a_returning_host_gets_dynos_back_one_move_a_tick() {
        let want = BTreeMap::from([("web".to_owned(), 6)]);
        let up2 = hosts(&["a", "b"]);
        let up3 = hosts(&["a", "b", "c"]);
        let mut a = assign(&Assignment::new(), &want, &up2);
        let mut moves = 0;
        loop {
            let next = assign(&a, &want, &up3);
            if next == a {
                break;
            }
            moves += 1;
            a = next;
        }
        assert_eq!(moves, 2);
        assert_eq!(spread(&a, "web")["c"], 2);
    }

    #[test]
    fn scaling_down_drops_the_highest_numbers() {
        let up = hosts(&["a", "b"]);
        let a = assign(
            &Assignment::new(),
            &BTreeMap::from([("web".to_owned(), 4)]),
            &up,
        );
        let b = assign(&a, &BTreeMap::from([("web".to_owned(), 2)]), &up);
        assert_eq!(
            b.keys().cloned().collect::<Vec<_>>(),
            vec!["web.1".to_owned(), "web.2".to_owned()]
        );
    }
}
