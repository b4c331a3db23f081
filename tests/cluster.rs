//! Cluster mode against a real 3-server NATS cluster.

mod common;

use std::time::Duration;

use common::nats::{NatsCluster, nats_server_or_skip};
use wdyno::cluster::{Cluster, ClusterConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_joins_and_a_kv_write_is_compare_and_set() {
    let Some(bin) = nats_server_or_skip("a_host_joins_and_a_kv_write_is_compare_and_set") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let cfg = ClusterConfig::parse(&nats.urls(), "a").unwrap();
    let c = Cluster::connect(&cfg).await.unwrap();
    assert_eq!(c.replicas(), 3);
    // Given one server's URL, a host still learns the cluster has three.
    let one = ClusterConfig::parse(&nats.servers[0].url(), "b").unwrap();
    assert_eq!(Cluster::connect(&one).await.unwrap().replicas(), 3);
    let kv = c.kv("wdyno-smoke", Duration::ZERO).await.unwrap();
    let r1 = kv.create("k", "1".into()).await.unwrap();
    assert!(
        kv.create("k", "2".into()).await.is_err(),
        "create of an existing key"
    );
    kv.update("k", "2".into(), r1).await.unwrap();
    assert!(
        kv.update("k", "3".into(), r1).await.is_err(),
        "a stale revision"
    );
    assert_eq!(kv.get("k").await.unwrap().unwrap(), "2");
}

#[test]
fn a_bad_cluster_or_host_flag_says_what_to_give() {
    let e = ClusterConfig::parse(" , ", "a").unwrap_err().to_string();
    assert!(e.contains("names no NATS server"), "{e}");
    let e = ClusterConfig::parse("nats://127.0.0.1:4222", "a.b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a host name"), "{e}");
}

// ---- three hosts of one cluster, each a real `wdyno daemon` ----

use std::collections::{BTreeMap, BTreeSet};

use common::daemon::Daemon;
use common::{probe_app::probe_components, until};

/// Three daemons joined to `nats` as hosts `a`, `b`, `c`.
fn three_hosts(nats: &NatsCluster) -> Vec<Daemon> {
    ["a", "b", "c"]
        .iter()
        .map(|h| Daemon::start(&["--cluster", &nats.urls(), "--host", h]))
        .collect()
}

/// A NATS cluster, three hosts and the probe app deployed through `a`,
/// or `None` (the test skips, saying why) without nats-server.
fn probe_on_three_hosts(test: &str) -> Option<(NatsCluster, Vec<Daemon>, tempfile::TempDir)> {
    let bin = nats_server_or_skip(test)?;
    let nats = NatsCluster::start(&bin, 3);
    let hosts = three_hosts(&nats);
    let app = probe_components();
    hosts[0].create_and_deploy("probe", app.path());
    Some((nats, hosts, app))
}

/// `app`'s dynos as host `d`'s `ps` lists them: name → (host, state).
fn placed(d: &Daemon, app: &str) -> BTreeMap<String, (String, String)> {
    d.ps(app)
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_owned(),
                (
                    x["host"].as_str().unwrap().to_owned(),
                    x["state"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// Waits until `d` lists exactly `n` web dynos of `app`, all up, none on
/// `not_on`; returns how many each host runs.
async fn web_up(d: &Daemon, app: &str, n: usize, not_on: &str) -> BTreeMap<String, usize> {
    web_up_within(30, d, app, n, not_on).await
}

async fn web_up_within(
    secs: u64,
    d: &Daemon,
    app: &str,
    n: usize,
    not_on: &str,
) -> BTreeMap<String, usize> {
    until(
        &format!("{n} web dynos up, none on {not_on:?}"),
        secs,
        || {
            let p = placed(d, app);
            let web: Vec<_> = p.iter().filter(|(k, _)| k.starts_with("web.")).collect();
            let ok = web.len() == n && web.iter().all(|(_, (h, s))| s == "up" && h != not_on);
            ok.then(|| {
                let mut per = BTreeMap::new();
                for (_, (h, _)) in web {
                    *per.entry(h.clone()).or_default() += 1;
                }
                per
            })
        },
    )
    .await
}

/// Waits until requests through `d`'s router have been answered by every
/// one of `dynos` (each request 200).
async fn reaches(d: &Daemon, app: &str, dynos: &BTreeSet<String>) {
    let mut seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while &seen != dynos {
        assert!(
            std::time::Instant::now() < deadline,
            "router {} reached only {seen:?} of {dynos:?}",
            d.router
        );
        let (status, body) = d.get(app, "/").await;
        assert_eq!(status, 200, "through router {}: {body}", d.router);
        seen.insert(body.trim_start_matches("hello from ").to_owned());
    }
}

fn webs(n: u32) -> BTreeSet<String> {
    (1..=n).map(|i| format!("web.{i}")).collect()
}

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
struct Netns {
    name: String,
    outer: String,
    /// This side's address, the namespace's.
    here: std::net::IpAddr,
    there: std::net::IpAddr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

impl Netns {
    fn new() -> Result<Netns, String> {
        let n = std::process::id() % 200 + 20;
        let ns = Netns {
            name: format!("wdyno-c{n}"),
            outer: format!("wdv{n}h"),
            here: format!("10.77.{n}.1").parse().unwrap(),
            there: format!("10.77.{n}.2").parse().unwrap(),
        };
        let inner = format!("wdv{n}c");
        let _ = ip(&["netns", "del", &ns.name]);
        let _ = ip(&["link", "del", &ns.outer]);
        ip(&["netns", "add", &ns.name])?;
        let (here, there) = (format!("{}/24", ns.here), format!("{}/24", ns.there));
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        ip(&[
            "link", "add", &ns.outer, "type", "veth", "peer", "name", &inner,
        ])?;
        ip(&["link", "set", &inner, "netns", &ns.name])?;
        ip(&["addr", "add", &here, "dev", &ns.outer])?;
        ip(&["link", "set", &ns.outer, "up"])?;
        exec(&["addr", "add", &there, "dev", &inner])?;
        exec(&["link", "set", &inner, "up"])?;
        exec(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn cut(&self, down: bool) {
        ip(&["link", "set", &self.outer, if down { "down" } else { "up" }]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.outer]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Every dyno of `app` the cluster's hosts list, by name: fails if one
/// is listed twice.
fn no_duplicates(d: &Daemon, app: &str) -> BTreeMap<String, (String, String)> {
    let list = d.ps(app);
    let mut by_name = BTreeMap::new();
    for x in &list {
        let name = x["name"].as_str().unwrap().to_owned();
        let was = by_name.insert(
            name.clone(),
            (
                x["host"].as_str().unwrap().to_owned(),
                x["state"].as_str().unwrap().to_owned(),
            ),
        );
        assert!(was.is_none(), "{name} runs twice: {list:?}");
    }
    by_name
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_ledgers_stream_leader_during_a_deploy_commits_it_or_fails_it_clearly() {
    let Some(bin) = nats_server_or_skip("killing_the_ledgers_stream_leader_during_a_deploy") else {
        return;
    };
    let mut nats = NatsCluster::start(&bin, 3);
    let hosts = three_hosts(&nats);
    hosts[0].cli(&["apps:create", "probe"]).ok();
    let watcher = Cluster::connect(&ClusterConfig::parse(&nats.urls(), "watcher").unwrap())
        .await
        .unwrap();
    let leader = common::nats::stream_leader(&watcher, "KV_wdyno-ledger").await;
    let app = probe_components();
    let deploy = {
        let (home, dir) = (hosts[0].home().to_owned(), app.path().to_owned());
        std::thread::spawn(move || {
            std::process::Command::new(common::daemon::WDYNO)
                .args(["deploy", dir.to_str().unwrap(), "-a", "probe"])
                .env("WDYNO_HOME", home)
                .output()
                .unwrap()
        })
    };
    // Once the build is recorded, the release is what is left to write.
    until("the build recorded", 60, || {
        let b = hosts[1].cli(&["builds", "-a", "probe", "--json"]);
        (b.code == 0 && b.stdout.contains("\"id\"")).then_some(())
    })
    .await;
    nats.servers[leader].kill();
    let out = deploy.join().unwrap();
    // The build's output and its end, error included, are on stdout.
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    nats.restart(leader);
    let releases = until("the releases readable again", 60, || {
        let r = hosts[2].cli(&["releases", "-a", "probe", "--json"]);
        (r.code == 0).then(|| serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap())
    })
    .await;
    let versions: Vec<u64> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    eprintln!(
        "deploy while the ledger's stream leader n{leader} was killed: {}",
        if out.status.success() {
            "committed"
        } else {
            "failed, clearly"
        }
    );
    if out.status.success() {
        assert_eq!(versions, [1], "the deploy's one release");
        for d in &hosts {
            d.answers("probe", "/", "hello from web.1").await;
        }
    } else {
        assert!(
            said.contains(" !     the cluster's") && said.contains("majority of the NATS servers"),
            "a failed deploy says what failed and what to check: {said}"
        );
        assert!(versions.len() <= 1, "at most the one release: {versions:?}");
        // Whatever it left is whole: deploying again works.
        hosts[1]
            .cli(&["deploy", app.path().to_str().unwrap(), "-a", "probe"])
            .ok();
        for d in &hosts {
            d.answers("probe", "/", "hello from web.1").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_cluster_url_are_honoured() {
    let Some(bin) = nats_server_or_skip("credentials_in_the_cluster_url_are_honoured") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = common::nats::free_ports(1)[0];
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = std::process::Command::new(&bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["--user", "wdyno", "--pass", "s3cret", "-sd"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = Killed(server);
    let url = format!("nats://wdyno:s3cret@127.0.0.1:{port}");
    let c = Cluster::connect(&ClusterConfig::parse(&url, "a").unwrap())
        .await
        .unwrap();
    let kv = c.kv("wdyno-smoke", Duration::ZERO).await.unwrap();
    kv.put("k", "v".into()).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().unwrap(), "v");
}
