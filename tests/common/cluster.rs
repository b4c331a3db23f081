//! Three hosts of one cluster, each a real `wdyno daemon`, for the
//! cluster tests: starting them with the probe app, reading where its
//! dynos run, waiting for them, and a network namespace to cut a host off.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::daemon::Daemon;
use super::nats::{NatsCluster, nats_server_or_skip};
use super::{probe_app::probe_components, until};

/// Three daemons joined to `nats` as hosts `a`, `b`, `c`.
pub fn three_hosts(nats: &NatsCluster) -> Vec<Daemon> {
    ["a", "b", "c"]
        .iter()
        .map(|h| Daemon::start(&["--cluster", &nats.urls(), "--host", h]))
        .collect()
}

/// A NATS cluster, three hosts and the probe app deployed through `a`,
/// or `None` (the test skips, saying why) without nats-server.
pub fn probe_on_three_hosts(test: &str) -> Option<(NatsCluster, Vec<Daemon>, tempfile::TempDir)> {
    let bin = nats_server_or_skip(test)?;
    let nats = NatsCluster::start(&bin, 3);
    let hosts = three_hosts(&nats);
    let app = probe_components();
    hosts[0].create_and_deploy("probe", app.path());
    Some((nats, hosts, app))
}

/// `app`'s dynos as host `d`'s `ps` lists them: name → (host, state).
pub fn placed(d: &Daemon, app: &str) -> BTreeMap<String, (String, String)> {
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
pub async fn web_up(d: &Daemon, app: &str, n: usize, not_on: &str) -> BTreeMap<String, usize> {
    web_up_within(30, d, app, n, not_on).await
}

pub async fn web_up_within(
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
pub async fn reaches(d: &Daemon, app: &str, dynos: &BTreeSet<String>) {
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

pub fn webs(n: u32) -> BTreeSet<String> {
    (1..=n).map(|i| format!("web.{i}")).collect()
}

pub struct Netns {
    pub name: String,
    pub outer: String,
    /// This side's address, the namespace's.
    pub here: std::net::IpAddr,
    pub there: std::net::IpAddr,
}

pub fn ip(args: &[&str]) -> Result<(), String> {
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
    pub fn new() -> Result<Netns, String> {
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

    pub fn cut(&self, down: bool) {
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
pub fn no_duplicates(d: &Daemon, app: &str) -> BTreeMap<String, (String, String)> {
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
