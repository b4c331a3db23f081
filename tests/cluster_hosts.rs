//! Three hosts of one cluster (real `wdyno daemon`s on a real 3-server
//! NATS cluster): placement and cross-host routing, concurrent ledger
//! writes through every host, failover, a host cut off, logs across
//! hosts, and the fence around the cluster's ports.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{
    Netns, no_duplicates, probe_on_three_hosts, reaches, three_hosts, web_up, web_up_within, webs,
};
use common::daemon::Daemon;
use common::nats::{NatsCluster, nats_server_or_skip};
use common::{probe_app::probe_components, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_web_dynos_spread_over_three_hosts_and_every_router_reaches_all_six() {
    let Some((_nats, hosts, _app)) = probe_on_three_hosts("six_web_dynos_spread_over_three_hosts")
    else {
        return;
    };
    let (a, b) = (&hosts[0], &hosts[1]);
    b.cli(&["ps:scale", "web=6", "-a", "probe"]).ok();
    let per = web_up(a, "probe", 6, "").await;
    assert_eq!(
        per,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)]),
        "two web dynos on each host"
    );
    for d in &hosts {
        assert_eq!(
            web_up(d, "probe", 6, "").await,
            per,
            "every host's ps agrees"
        );
        reaches(d, "probe", &webs(6)).await;
    }
    let listed = a.json(&["hosts"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["state"] == "up")
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    // No host can tell the app is idle: it may not sleep.
    let sleep = b.cli(&["apps:update", "--sleep-after", "30m", "-a", "probe"]);
    assert_ne!(sleep.code, 0);
    assert!(
        sleep
            .stderr
            .contains("Apps do not sleep on a cluster of hosts yet"),
        "{}",
        sleep.stderr
    );
    // Every host serves the API with the cluster's one token.
    let token = |d: &Daemon| std::fs::read_to_string(d.home().join("api-token")).unwrap();
    assert_eq!(token(a), token(b));
    assert_eq!(token(a), token(&hosts[2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_config_sets_through_three_hosts_leave_no_gap() {
    let Some(bin) = nats_server_or_skip("a_hundred_concurrent_config_sets") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let hosts = three_hosts(&nats);
    hosts[0].cli(&["apps:create", "cfg"]).ok();
    let homes: Vec<std::path::PathBuf> = hosts.iter().map(|d| d.home().to_owned()).collect();
    let runs: Vec<_> = (0..100)
        .map(|i| {
            let home = homes[i % 3].clone();
            std::thread::spawn(move || {
                let out = std::process::Command::new(common::daemon::WDYNO)
                    .args(["config:set", &format!("K{i}={i}"), "-a", "cfg"])
                    .env("WDYNO_HOME", home)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "config:set K{i}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
    for d in &hosts {
        let releases = d.json(&["releases", "-a", "cfg"]);
        let mut versions: Vec<u64> = releases
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_u64().unwrap())
            .collect();
        versions.sort();
        assert_eq!(versions, (1..=100).collect::<Vec<u64>>(), "versions 1..100");
        let config = d.json(&["config", "-a", "cfg"]);
        for i in 0..100 {
            assert_eq!(
                config[format!("K{i}")],
                i.to_string(),
                "K{i} set once, kept"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_hosts_dynos_run_on_the_others_within_15_s() {
    let Some((_nats, mut hosts, _app)) =
        probe_on_three_hosts("a_killed_hosts_dynos_run_on_the_others")
    else {
        return;
    };
    hosts[1].cli(&["ps:scale", "web=6", "-a", "probe"]).ok();
    hosts[2]
        .cli(&["config:set", "LAST=before-the-kill", "-a", "probe"])
        .ok();
    web_up(&hosts[0], "probe", 6, "").await;
    let before = hosts[0].json(&["releases", "-a", "probe"]);
    hosts[2].kill9();
    let killed = std::time::Instant::now();
    web_up_within(15, &hosts[0], "probe", 6, "c").await;
    let took = killed.elapsed();
    eprintln!("failover: all six web dynos up on a and b {took:?} after kill -9 of c");
    for d in &hosts[..2] {
        reaches(d, "probe", &webs(6)).await;
    }
    assert_eq!(
        hosts[1].json(&["releases", "-a", "probe"]),
        before,
        "every release acknowledged before the kill is there"
    );
    assert_eq!(
        hosts[1].json(&["config", "-a", "probe"])["LAST"],
        "before-the-kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_on_one_host_shows_a_line_a_dyno_on_another_printed() {
    let Some((_nats, hosts, _app)) = probe_on_three_hosts("logs_tail_on_one_host") else {
        return;
    };
    let mut tail = std::process::Command::new(common::daemon::WDYNO)
        .args(["logs", "--tail", "-a", "probe"])
        .env("WDYNO_HOME", hosts[0].home())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = common::probe_app::following(&mut tail).await;
    // A one-off dyno on host c prints its environment.
    let run = hosts[2].run_detached("probe", &["bin/probe", "env"]);
    let want = format!("DYNO={run}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let l = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line {want:?} from host c in 30 s"));
        if l.contains(&want) {
            break l;
        }
    };
    assert!(line.contains(&format!("app[{run}]:")), "{line}");
    let _ = tail.kill();
    let _ = tail.wait();
}

/// A network namespace with a veth pair to this one: a host that can be
/// cut off with `ip link set … down`. Removed on drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_host_stops_its_dynos_they_run_elsewhere_and_healing_leaves_no_duplicate() {
    let test = "a_cut_off_host_stops_its_dynos";
    let Some(bin) = nats_server_or_skip(test) else {
        return;
    };
    let ns = match Netns::new() {
        Ok(ns) => ns,
        Err(why) => return eprintln!("SKIP {test}: no network namespaces here: {why}"),
    };
    let nats = NatsCluster::start_on(&bin, 3, ns.here);
    let here = ns.here.to_string();
    let there = ns.there.to_string();
    let mut hosts: Vec<Daemon> = ["a", "b"]
        .iter()
        .map(|h| {
            let args = ["--cluster", &nats.urls(), "--host", h, "--bind", &here];
            Daemon::start_wrapped(&[], ns.here, &args)
        })
        .collect();
    let wrapper = ["ip", "netns", "exec", ns.name.as_str()];
    let args = ["--cluster", &nats.urls(), "--host", "c", "--bind", &there];
    hosts.push(Daemon::start_wrapped(&wrapper, ns.there, &args));
    let app = probe_components();
    hosts[0].create_and_deploy("probe", app.path());
    hosts[0].cli(&["ps:scale", "web=6", "-a", "probe"]).ok();
    let per = web_up(&hosts[0], "probe", 6, "").await;
    assert_eq!(per.get("c"), Some(&2), "two web dynos on c: {per:?}");

    ns.cut(true);
    // c stops its dynos once its heartbeat lapses: it says so.
    let lapsed = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = lapsed.saturating_duration_since(std::time::Instant::now());
        let line = hosts[2]
            .stderr
            .recv_timeout(left)
            .expect("host c never said its heartbeat lapsed");
        if line.contains("stopping its dynos") {
            break;
        }
    }
    web_up(&hosts[0], "probe", 6, "c").await;
    reaches(&hosts[1], "probe", &webs(6)).await;

    ns.cut(false);
    // Healed: c takes part again, its share moved back a dyno at a time,
    // and no dyno ever runs on two hosts.
    until("two web dynos on each host again, none twice", 60, || {
        let all = no_duplicates(&hosts[0], "probe");
        let on_c = all.values().filter(|(h, s)| h == "c" && s == "up").count();
        (all.len() == 6 && on_c == 2 && all.values().all(|(_, s)| s == "up")).then_some(())
    })
    .await;
    for d in &hosts {
        reaches(d, "probe", &webs(6)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dyno_reaches_no_nats_router_peer_or_api_port_of_the_cluster() {
    let test = "a_dyno_reaches_no_nats_router_peer_or_api_port";
    let Some(bin) = nats_server_or_skip(test) else {
        return;
    };
    // Off loopback (which is fenced anyway): the servers and hosts on
    // the address of a veth, as on a network.
    let ns = match Netns::new() {
        Ok(ns) => ns,
        Err(why) => return eprintln!("SKIP {test}: no network namespaces here: {why}"),
    };
    let nats = NatsCluster::start_on(&bin, 3, ns.here);
    let here = ns.here.to_string();
    let hosts: Vec<Daemon> = ["a", "b"]
        .iter()
        .map(|h| {
            let args = ["--cluster", &nats.urls(), "--host", h, "--bind", &here];
            Daemon::start_wrapped(&[], ns.here, &args)
        })
        .collect();
    let app = common::probe_app::probe_slug("web: bin/web\nworker: bin/worker\n");
    hosts[0].create_and_deploy("nosy", app.path());
    // Each host's record carries its ports once it has bound them.
    let listed = until("both hosts listed with their ports", 30, || {
        let l = hosts[0].json(&["hosts"]);
        let ready = l.as_array().unwrap().iter().filter(|h| {
            h["state"] == "up"
                && h["addresses"]["peer"]
                    .as_str()
                    .is_some_and(|p| !p.ends_with(":0"))
        });
        (ready.count() == 2).then_some(l)
    })
    .await;
    let mut targets: Vec<String> = Vec::new();
    for h in listed.as_array().unwrap() {
        for port in ["router", "peer", "api"] {
            targets.push(h["addresses"][port].as_str().unwrap().to_owned());
        }
    }
    for s in &nats.servers {
        targets.push(format!("{}:{}", ns.here, s.client_port));
        targets.push(format!("{}:{}", ns.here, s.cluster_port));
    }
    assert_eq!(targets.len(), 12);
    let mut argv = vec!["bin/worker".to_owned()];
    for (i, t) in targets.iter().enumerate() {
        if i > 0 {
            argv.push(",".into());
        }
        argv.push("connect".into());
        argv.push(t.clone());
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    for d in &hosts {
        let name = d.run_detached("nosy", &argv);
        let lines = until("the one-off's output", 30, || {
            let l = common::probe_app::app_log(d, "nosy", &["--ps", &name, "--source", "app"]);
            (l.len() >= targets.len()).then_some(l)
        })
        .await;
        assert_eq!(lines.len(), targets.len(), "{lines:?}");
        for (l, t) in lines.iter().zip(&targets) {
            assert!(
                l.ends_with(&format!("app[{name}]: error: PermissionDenied")),
                "connect {t}: {l}"
            );
        }
    }
}
