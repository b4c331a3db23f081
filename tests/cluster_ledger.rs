//! The cluster's ledger ([`NatsLedger`]) against a real 3-server NATS
//! cluster: the single-host ledger's contract, many writers on many
//! hosts, and servers dying under it.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::nats::{NatsCluster, nats_server_or_skip};
use futures::StreamExt;
use wdyno::cluster::{Cluster, ClusterConfig};
use wdyno::ledger::{AppChange, Build, Drain, Ledger, LedgerError, NatsLedger};
use wdyno::names::{AppName, ConfigKey, ProcessType};
use wdyno::release::{NewRelease, Release, Status};
use wdyno::slug::SlugId;

fn app(s: &str) -> AppName {
    AppName::parse(s).unwrap()
}

fn key(s: &str) -> ConfigKey {
    ConfigKey::parse(s).unwrap()
}

fn slug(n: u8) -> SlugId {
    SlugId::parse(&format!("{n:02x}").repeat(32)).unwrap()
}

fn web(n: u8, description: &str) -> NewRelease {
    NewRelease {
        slug: slug(n),
        process_types: BTreeMap::from([("web".into(), "bin/web".into())]),
        description: description.into(),
    }
}

async fn deploy(l: &dyn Ledger, a: &AppName, n: u8) -> Release {
    l.create_release(a, web(n, &format!("Deploy {n}")), true)
        .await
        .unwrap()
}

fn set(k: &str, v: &str) -> BTreeMap<ConfigKey, String> {
    BTreeMap::from([(key(k), v.to_owned())])
}

async fn connect(servers: &str, host: &str) -> Cluster {
    Cluster::connect(&ClusterConfig::parse(servers, host).unwrap())
        .await
        .unwrap()
}

/// A host's ledger. The first host of a test names every server, so the
/// bucket it creates is R3; the others may name one server each.
async fn ledger(servers: &str, host: &str) -> NatsLedger {
    NatsLedger::open(&connect(servers, host).await)
        .await
        .unwrap()
}

fn versions(rs: &[Release]) -> Vec<u64> {
    rs.iter().map(|r| r.version).collect()
}

async fn stream_leader(c: &Cluster) -> usize {
    common::nats::stream_leader(c, "KV_wdyno-ledger").await
}

/// The app's releases, once the cluster answers again (it may be electing
/// a leader).
async fn readable(l: &NatsLedger, a: &AppName) -> Vec<Release> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match l.releases(a).await {
            Ok(all) => return all,
            Err(e) => assert!(Instant::now() < deadline, "never readable again: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_ledger_keeps_the_single_host_contract() {
    let Some(bin) = nats_server_or_skip("a_cluster_ledger_keeps_the_single_host_contract") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let here: Arc<dyn Ledger> = Arc::new(ledger(&nats.urls(), "here").await);
    let there_ledger = ledger(&nats.servers[1].url(), "there").await;
    let mut changes = there_ledger.watch().await.unwrap();
    let there: Arc<dyn Ledger> = Arc::new(there_ledger);
    let (l, other) = (&*here, &*there);

    // Releases append; config changes and rollback are releases.
    let a = app("hello");
    l.create_app(&a).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), changes.next()).await;
    assert_eq!(seen.unwrap(), Some(a.clone()), "the other host hears of it");
    assert!(matches!(
        other.create_app(&a).await,
        Err(LedgerError::AppExists(_))
    ));
    assert_eq!(l.current(&a).await.unwrap().version, 0);
    let v1 = deploy(l, &a, 1).await;
    assert_eq!((v1.version, v1.status), (1, Status::Succeeded));
    let both = BTreeMap::from([(key("GREETING"), "hi".into()), (key("B"), "2".into())]);
    let v2 = other.set_config(&a, &both, &[]).await.unwrap();
    assert_eq!(v2.description, "Set B, GREETING config vars");
    assert_eq!((v2.version, v2.slug.clone()), (2, Some(slug(1))));
    let v3 = deploy(l, &a, 2).await;
    assert_eq!(v3.config.get("GREETING").map(String::as_str), Some("hi"));
    let v4 = other
        .set_config(&a, &BTreeMap::new(), &[key("GREETING")])
        .await
        .unwrap();
    assert_eq!(v4.description, "Remove GREETING config vars");
    let nope = l.set_config(&a, &BTreeMap::new(), &[key("NOPE")]).await;
    assert!(
        matches!(nope, Err(LedgerError::NoSuchConfig(_))),
        "{nope:?}"
    );
    let v5 = l.rollback(&a, 1).await.unwrap();
    assert_eq!(v5.description, "Rollback to v1");
    assert_eq!(
        (v5.slug.clone(), v5.config.clone()),
        (Some(slug(1)), BTreeMap::new())
    );
    assert_eq!(other.current(&a).await.unwrap(), v5);
    assert_eq!(
        versions(&other.releases(&a).await.unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(l.release(&a, 3).await.unwrap(), v3, "reads back exactly");
    assert_eq!(
        v3.created_at.timestamp_subsec_nanos() % 1000,
        0,
        "microseconds"
    );

    // A failed release phase never becomes current.
    let p = app("phase");
    l.create_app(&p).await.unwrap();
    deploy(l, &p, 1).await;
    let pending = l
        .create_release(&p, web(2, "Deploy x"), false)
        .await
        .unwrap();
    assert_eq!((pending.version, pending.status), (2, Status::Pending));
    let late = other.set_config(&p, &set("LATE", "x"), &[]).await;
    assert!(
        matches!(late, Err(LedgerError::ReleaseInProgress(2))),
        "{late:?}"
    );
    let back = other.rollback(&p, 1).await;
    assert!(
        matches!(back, Err(LedgerError::ReleaseInProgress(2))),
        "{back:?}"
    );
    assert_eq!(other.current(&p).await.unwrap().version, 1);
    let failed = other.finish_release(&p, 2, false).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(l.release(&p, 2).await.unwrap().status, Status::Failed);
    assert_eq!(l.current(&p).await.unwrap().version, 1);
    assert_eq!(
        l.rollback(&p, 2).await.unwrap_err().to_string(),
        "Cannot roll back to v2: that release did not succeed."
    );
    assert_eq!(
        l.set_config(&p, &set("LATE", "x"), &[])
            .await
            .unwrap()
            .version,
        3
    );

    // A release phase ends once.
    let o = app("once");
    l.create_app(&o).await.unwrap();
    let v1 = l
        .create_release(&o, web(1, "Deploy a"), false)
        .await
        .unwrap();
    assert_eq!((v1.version, v1.status), (1, Status::Pending));
    assert_eq!(l.current(&o).await.unwrap().version, 0);
    let ok = other.finish_release(&o, 1, true).await.unwrap();
    assert_eq!(ok.status, Status::Succeeded);
    assert_eq!(l.current(&o).await.unwrap().version, 1);
    assert_eq!(
        l.finish_release(&o, 1, false)
            .await
            .unwrap_err()
            .to_string(),
        "Release v1 is succeeded, not pending: its release phase already ended."
    );
    assert_eq!(
        l.finish_release(&o, 9, true).await.unwrap_err().to_string(),
        "once has no release v9. Run `wdyno releases -a once` to list them."
    );
    assert_eq!(
        l.rollback(&o, 9).await.unwrap_err().to_string(),
        "once has no release v9. Run `wdyno releases -a once` to list them."
    );

    // The formation only names types of the current release.
    let f = app("form");
    l.create_app(&f).await.unwrap();
    let scale = |n| BTreeMap::from([(ProcessType::parse("web").unwrap(), n)]);
    assert_eq!(
        l.scale(&f, &scale(2)).await.unwrap_err().to_string(),
        "No such process type web defined in the Procfile of form (it has: none yet: deploy first)."
    );
    deploy(l, &f, 1).await;
    let formation = l.scale(&f, &scale(3)).await.unwrap();
    assert_eq!(formation.to_map(), BTreeMap::from([("web".to_owned(), 3)]));
    assert_eq!(other.formation(&f).await.unwrap(), formation);

    // Config: capped at 32 kB; before any deploy a release has no slug.
    let e = app("early");
    l.create_app(&e).await.unwrap();
    let big = l
        .set_config(&e, &set("BLOB", &"x".repeat(40_000)), &[])
        .await;
    assert_eq!(
        big.unwrap_err().to_string(),
        "Config vars would total 40004 bytes, over the limit of 32 kB."
    );
    let a1 = set("A", "1");
    assert_eq!(
        l.set_config(&e, &a1, &[key("A")])
            .await
            .unwrap_err()
            .to_string(),
        "Config var A is not set on this app."
    );
    let v1 = l.set_config(&e, &a1, &[]).await.unwrap();
    assert_eq!((v1.version, v1.slug.clone()), (1, None));
    let v2 = l.set_config(&e, &set("B", "2"), &[key("A")]).await.unwrap();
    assert_eq!(v2.description, "Set B and remove A config vars");
    assert_eq!(
        l.set_config(&e, &BTreeMap::new(), &[])
            .await
            .unwrap_err()
            .to_string(),
        "No config vars given: use KEY=value to set one, or name a KEY to unset."
    );
    assert_eq!(versions(&l.releases(&e).await.unwrap()), [1, 2], "no gap");
    assert_eq!(deploy(l, &e, 7).await.config, v2.config);

    // Builds are numbered per app.
    let (b1a, b2a) = (app("one"), app("two"));
    l.create_app(&b1a).await.unwrap();
    other.create_app(&b2a).await.unwrap();
    let b1 = l.create_build(&b1a, "abc1234").await.unwrap();
    let b2 = other.create_build(&b1a, "def5678").await.unwrap();
    let b3 = l.create_build(&b2a, "x").await.unwrap();
    assert_eq!((b1.id, b2.id, b3.id), (1, 2, 1));
    assert_eq!(b1.status, Status::Pending);
    let done = Build {
        status: Status::Succeeded,
        slug: Some(slug(3)),
        release: Some(1),
        output_tail: "-----> Launching...".into(),
        ..b2.clone()
    };
    l.finish_build(&b1a, &done).await.unwrap();
    assert_eq!(other.build(&b1a, 2).await.unwrap(), done);
    assert_eq!(other.builds(&b1a).await.unwrap(), vec![b1.clone(), done]);
    let ghost = Build { id: 5, ..b1 };
    assert_eq!(
        l.finish_build(&b1a, &ghost).await.unwrap_err().to_string(),
        "one has no build 5. Run `wdyno builds -a one` to list them."
    );
    assert_eq!(
        l.create_build(&app("gone"), "x")
            .await
            .unwrap_err()
            .to_string(),
        "Couldn't find that app: gone. Run `wdyno apps` to list yours."
    );

    // A destroyed app leaves nothing for its successor.
    let (ph, ph2) = (app("phoenix"), app("phoenix-2"));
    l.create_app(&ph).await.unwrap();
    l.create_app(&ph2).await.unwrap();
    deploy(l, &ph, 77).await;
    deploy(l, &ph2, 78).await;
    l.create_build(&ph, "x").await.unwrap();
    l.scale(&ph, &scale(2)).await.unwrap();
    assert!(l.slugs_in_use().await.unwrap().contains(&slug(77)));
    other.destroy_app(&ph).await.unwrap();
    let again = l.destroy_app(&ph).await;
    assert!(
        matches!(again, Err(LedgerError::AppNotFound(_))),
        "{again:?}"
    );
    let cur = l.current(&ph).await;
    assert!(matches!(cur, Err(LedgerError::AppNotFound(_))), "{cur:?}");
    l.create_app(&ph).await.unwrap();
    assert!(other.releases(&ph).await.unwrap().is_empty());
    assert!(other.builds(&ph).await.unwrap().is_empty());
    assert!(other.formation(&ph).await.unwrap().is_empty());
    assert_eq!(other.create_build(&ph, "y").await.unwrap().id, 1);
    assert_eq!(other.current(&ph).await.unwrap().version, 0);
    assert_eq!(
        l.releases(&ph2).await.unwrap().len(),
        1,
        "a neighbour keeps its own"
    );
    let used = l.slugs_in_use().await.unwrap();
    assert!(
        used.contains(&slug(78)) && !used.contains(&slug(77)),
        "{used:?}"
    );

    // Features and drains are kept and never doubled.
    let h = app("feat");
    l.create_app(&h).await.unwrap();
    let feature = |enabled| AppChange::Feature {
        name: "log-runtime-metrics".into(),
        enabled,
    };
    let drain = |id: &str, url: &str| Drain {
        id: id.into(),
        url: url.into(),
        token: format!("d.{id}"),
        created_at: v1.created_at,
    };
    l.update_app(&h, feature(true)).await.unwrap();
    assert_eq!(
        other
            .update_app(&h, feature(true))
            .await
            .unwrap()
            .features
            .len(),
        1
    );
    l.update_app(&h, AppChange::AddDrain(drain("1", "syslog://x:1")))
        .await
        .unwrap();
    other
        .update_app(&h, AppChange::AddDrain(drain("2", "https://y/")))
        .await
        .unwrap();
    let dup = l
        .update_app(&h, AppChange::AddDrain(drain("3", "syslog://x:1")))
        .await;
    assert!(
        matches!(dup, Err(LedgerError::DrainExists { .. })),
        "{dup:?}"
    );
    let gone = l.update_app(&h, AppChange::RemoveDrain("9".into())).await;
    assert!(
        matches!(gone, Err(LedgerError::NoSuchDrain { .. })),
        "{gone:?}"
    );
    let missing = l.update_app(&app("nope"), feature(true)).await;
    assert!(
        matches!(missing, Err(LedgerError::AppNotFound(_))),
        "{missing:?}"
    );
    let got = other.app(&h).await.unwrap();
    assert!(got.features.contains("log-runtime-metrics"));
    let urls: Vec<&str> = got.drains.iter().map(|d| d.url.as_str()).collect();
    assert_eq!(urls, ["syslog://x:1", "https://y/"]);
    let got = l
        .update_app(&h, AppChange::RemoveDrain("1".into()))
        .await
        .unwrap();
    let ids: Vec<&str> = got.drains.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["2"]);

    // Every app, by name; and recover fails the one phase left running.
    let names: Vec<String> = l
        .apps()
        .await
        .unwrap()
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "early",
            "feat",
            "form",
            "hello",
            "once",
            "one",
            "phase",
            "phoenix",
            "phoenix-2",
            "two"
        ]
    );
    let r = app("rec");
    l.create_app(&r).await.unwrap();
    l.create_release(&r, web(9, "Deploy r"), false)
        .await
        .unwrap();
    assert_eq!(other.recover().await.unwrap(), [(r.clone(), 1)]);
    assert_eq!(l.release(&r, 1).await.unwrap().status, Status::Failed);
    assert!(l.recover().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_three_hosts_append_each_change_once_with_no_gap() {
    let Some(bin) = nats_server_or_skip("concurrent_writers_on_three_hosts") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let first = ledger(&nats.urls(), "setup").await;
    let a = app("busy");
    first.create_app(&a).await.unwrap();
    deploy(&first, &a, 1).await;
    let mut hosts = Vec::new();
    for i in 0..3 {
        hosts.push(ledger(&nats.servers[i].url(), &format!("host{i}")).await);
    }
    let started = Instant::now();
    let writes = (0..100).map(|i| {
        let (l, a) = (&hosts[i % 3], &a);
        async move { l.set_config(a, &set(&format!("K{i}"), "v"), &[]).await }
    });
    let results = futures::future::join_all(writes).await;
    eprintln!("100 concurrent set_config: {:?}", started.elapsed());
    let mut took: Vec<u64> = results
        .into_iter()
        .map(|r| r.expect("every write commits").version)
        .collect();
    took.sort();
    assert_eq!(
        took,
        (2..=101).collect::<Vec<_>>(),
        "each version taken once"
    );
    for l in &hosts {
        let all = l.releases(&a).await.unwrap();
        assert_eq!(versions(&all), (1..=101).collect::<Vec<_>>());
        let descriptions: HashSet<&str> = all.iter().map(|r| r.description.as_str()).collect();
        for i in 0..100 {
            let d = format!("Set K{i} config vars");
            assert!(descriptions.contains(d.as_str()), "{d} missing");
        }
        assert_eq!(descriptions.len(), 101, "each change exactly once");
        let current = l.current(&a).await.unwrap();
        assert_eq!(current.version, 101);
        assert_eq!(current.config.len(), 100, "every change is in the last");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_of_servers_fails_writes_clearly_and_loses_nothing() {
    let Some(bin) = nats_server_or_skip("a_minority_of_servers_fails_writes") else {
        return;
    };
    let mut nats = NatsCluster::start(&bin, 3);
    let cluster = connect(&nats.urls(), "solo").await;
    let l = NatsLedger::open(&cluster).await.unwrap();
    let a = app("steady");
    l.create_app(&a).await.unwrap();
    for i in 0..5 {
        l.set_config(&a, &set(&format!("K{i}"), "v"), &[])
            .await
            .unwrap();
    }
    // The leader and one other: the one left can neither take the write
    // nor elect itself.
    let leader = stream_leader(&cluster).await;
    let second = (leader + 1) % 3;
    nats.servers[leader].kill();
    nats.servers[second].kill();
    let started = Instant::now();
    let e = l.set_config(&a, &set("LOST", "v"), &[]).await.unwrap_err();
    let took = started.elapsed();
    let text = e.to_string();
    assert!(matches!(e, LedgerError::NotCommitted { .. }), "{e:?}");
    assert!(
        text.starts_with("the cluster's ledger could not commit this change: "),
        "{text}"
    );
    assert!(text.ends_with("Check that a majority of the NATS servers are up (`wdyno hosts`)."));
    assert!(took < Duration::from_secs(20), "failed only after {took:?}");
    eprintln!("minority write failed in {took:?}: {text}");

    nats.restart(leader);
    nats.restart(second);
    let all = readable(&l, &a).await;
    assert_eq!(
        versions(&all),
        [1, 2, 3, 4, 5],
        "every acknowledged release"
    );
    if text.contains("Nothing was changed") {
        assert!(all.iter().all(|r| !r.config.contains_key("LOST")));
    }
    let v = l.set_config(&a, &set("AFTER", "v"), &[]).await.unwrap();
    assert_eq!(v.version, all.len() as u64 + 1);
    assert_eq!(l.current(&a).await.unwrap(), v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_mid_burst_keeps_versions_gap_free() {
    let Some(bin) = nats_server_or_skip("killing_the_stream_leader_mid_burst") else {
        return;
    };
    let mut nats = NatsCluster::start(&bin, 3);
    let cluster = connect(&nats.urls(), "watcher").await;
    let first = NatsLedger::open(&cluster).await.unwrap();
    let a = app("burst");
    first.create_app(&a).await.unwrap();
    let mut hosts = Vec::new();
    for i in 0..3 {
        hosts.push(ledger(&nats.urls(), &format!("host{i}")).await);
    }
    let leader = stream_leader(&cluster).await;
    // Three writers, 20 changes each, one after another; the leader dies
    // once some have landed.
    let (tx, mut landed) = tokio::sync::mpsc::unbounded_channel();
    let writers = hosts.iter().enumerate().map(|(w, l)| {
        let (a, tx) = (&a, tx.clone());
        async move {
            let mut out = Vec::new();
            for i in 0..20 {
                let k = format!("W{w}X{i}");
                let r = l.set_config(a, &set(&k, "v"), &[]).await;
                let _ = tx.send(());
                out.push((k, r));
            }
            out
        }
    });
    let kill = async {
        for _ in 0..9 {
            landed.recv().await;
        }
        nats.servers[leader].kill();
    };
    let (results, ()) = futures::join!(futures::future::join_all(writers), kill);
    let all = readable(&first, &a).await;
    let n = all.len() as u64;
    assert_eq!(versions(&all), (1..=n).collect::<Vec<_>>(), "no gap");
    let (mut ok, mut failed) = (0, 0);
    for (k, r) in results.into_iter().flatten() {
        let d = format!("Set {k} config vars");
        let times = all.iter().filter(|r| r.description == d).count();
        match r {
            Ok(rel) => {
                ok += 1;
                assert_eq!(times, 1, "{d} acknowledged once, stored {times} times");
                assert_eq!(all[rel.version as usize - 1].description, d);
            }
            Err(e) => {
                failed += 1;
                eprintln!("{d} (stored {times} times): {e}");
                assert!(matches!(e, LedgerError::NotCommitted { .. }), "{e:?}");
                assert!(times <= 1, "{d} failed, stored {times} times");
                if e.to_string().contains("Nothing was changed") {
                    assert_eq!(times, 0, "{d}: {e}");
                }
            }
        }
    }
    eprintln!("{ok} ok, {failed} failed, {n} stored, leader n{leader} killed");
    assert!(ok >= 9, "the writes before the kill");
    assert_eq!(first.current(&a).await.unwrap().version, n);
}

/// What a writer that died between its two writes leaves: release `v` of
/// `app` created in the bucket, its head not moved.
async fn leave_record(kv: &async_nats::jetstream::kv::Store, a: &AppName, r: &Release) {
    let head: serde_json::Value =
        serde_json::from_slice(&kv.get(format!("head.{a}")).await.unwrap().unwrap()).unwrap();
    let inc = head["incarnation"].as_str().unwrap();
    let record = serde_json::json!({ "change": "died-midway", "value": r });
    let key = format!("release.{a}.{inc}.{}", r.version);
    kv.create(key, serde_json::to_vec(&record).unwrap().into())
        .await
        .unwrap();
}

async fn head_last(kv: &async_nats::jetstream::kv::Store, a: &AppName) -> u64 {
    let bytes = kv.get(format!("head.{a}")).await.unwrap().unwrap();
    let head: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    head["last"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_left_by_a_writer_that_died_midway_is_committed() {
    let Some(bin) = nats_server_or_skip("a_release_left_by_a_writer_that_died_midway") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let cluster = connect(&nats.urls(), "raw").await;
    let kv = cluster.kv("wdyno-ledger", Duration::ZERO).await.unwrap();
    let l = NatsLedger::open(&cluster).await.unwrap();
    let other = ledger(&nats.servers[2].url(), "other").await;
    let a = app("orphan");
    l.create_app(&a).await.unwrap();
    let v1 = deploy(&l, &a, 1).await;
    let mut changes = other.watch().await.unwrap();

    let mut config = v1.config.clone();
    config.insert("DEAD".into(), "1".into());
    let v2 = Release {
        version: 2,
        config,
        description: "Set DEAD config vars".into(),
        ..v1.clone()
    };
    leave_record(&kv, &a, &v2).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), changes.next()).await;
    assert_eq!(seen.unwrap(), Some(a.clone()), "watchers hear of it");
    assert_eq!(head_last(&kv, &a).await, 1, "the head was never moved");
    assert_eq!(other.current(&a).await.unwrap(), v2, "readers roll forward");
    assert_eq!(versions(&other.releases(&a).await.unwrap()), [1, 2]);
    let v3 = other.set_config(&a, &set("NEXT", "2"), &[]).await.unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(
        v3.config.get("DEAD").map(String::as_str),
        Some("1"),
        "built on v2"
    );
    assert_eq!(
        head_last(&kv, &a).await,
        3,
        "the next writer moved the head"
    );

    // A release phase its writer never got to run: pending, so nothing
    // else is appended until recover fails it.
    let v4 = Release {
        version: 4,
        status: Status::Pending,
        description: "Deploy 9".into(),
        ..v3.clone()
    };
    leave_record(&kv, &a, &v4).await;
    let busy = l.set_config(&a, &set("LATE", "x"), &[]).await;
    assert!(
        matches!(busy, Err(LedgerError::ReleaseInProgress(4))),
        "{busy:?}"
    );
    assert_eq!(l.current(&a).await.unwrap().version, 3);
    assert_eq!(other.recover().await.unwrap(), [(a.clone(), 4)]);
    assert_eq!(l.release(&a, 4).await.unwrap().status, Status::Failed);
    assert_eq!(
        l.set_config(&a, &set("LATE", "x"), &[])
            .await
            .unwrap()
            .version,
        5
    );

    // A record of a destroyed incarnation is nobody's.
    let stale = Release {
        version: 6,
        ..v3.clone()
    };
    let record = serde_json::json!({ "change": "late", "value": stale });
    kv.create(
        format!("release.{a}.0123456789abcdef.6"),
        serde_json::to_vec(&record).unwrap().into(),
    )
    .await
    .unwrap();
    assert_eq!(versions(&l.releases(&a).await.unwrap()), [1, 2, 3, 4, 5]);
}
