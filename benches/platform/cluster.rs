//! Cluster mode's figures, on three `wdyno daemon --cluster` hosts over a
//! real 3-server NATS cluster on this machine: `scale web=N` across the
//! hosts against the same scale on one host with no cluster; requests/s
//! through a host's router to a dyno on another host (over its peer port)
//! against the same through the router of the dyno's own host; and the
//! time from `kill -9` of a host to all of an app's web dynos answering
//! again through a survivor's router.
//!
//! Every host and server shares this machine's cores, so the cluster's
//! figures include three daemons and three NATS servers contending for
//! them: they show what the cluster costs, not what three machines give.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use wdyno::cluster::hosts::HOST_TTL;

use crate::common::daemon::Daemon;
use crate::common::nats::{NatsCluster, nats_server};
use crate::common::probe_app::probe_components;
use crate::common::{built_app, prebuilt};
use crate::load::{self, Target};
use crate::served::{Served, rps};
use crate::{Plan, Row, Table, ms, ratio};

/// The hosts' names, in the order they start.
const HOSTS: [&str; 3] = ["a", "b", "c"];
/// The app scaled (hello: a dyno idles until a request comes).
const SCALED: &str = "hello";
/// The app the router and failover figures send requests to (the probe's
/// web process: keep-alive, answers `hello from web.N`).
const PROBE: &str = "probe";
/// Web dynos of the failover app: two per host, so a kill takes two.
const FAILOVER_WEBS: usize = 6;
/// How often `ps` is polled while dynos start: faster loads the daemons
/// the figure measures (a 1000-dyno list is large).
const PS_EVERY: Duration = Duration::from_millis(150);
/// The requirement for failover.
const FAILOVER_TARGET: Duration = Duration::from_secs(15);
/// How long a figure waits before it records a failure.
const GIVE_UP: Duration = Duration::from_secs(120);
/// How long a kill waits for the dynos to answer again (4x the target).
const FAILOVER_GIVE_UP: Duration = Duration::from_secs(60);

/// The daemons' log filter: warnings, and the scheduler's line saying
/// which host took its lease.
const LOG: &str = "warn,wdyno::cluster::schedule=info";

/// Kills (each on a fresh spread) the failover figure takes.
fn kills(plan: &Plan) -> usize {
    if plan.quick { 1 } else { 3 }
}

/// Three hosts of one cluster, each driven through its control API.
struct Trio {
    hosts: Vec<Served>,
}

impl Trio {
    /// Starts the three daemons side by side (each waits for the servers'
    /// meta leader before it says it is ready).
    fn start(nats: &NatsCluster) -> Trio {
        let urls = nats.urls();
        let hosts = std::thread::scope(|s| {
            let started: Vec<_> = HOSTS
                .iter()
                .map(|h| {
                    let urls = &urls;
                    let args = ["--cluster", urls, "--host", h];
                    s.spawn(move || Daemon::start_with_env(&args, &[("WDYNO_LOG", LOG)]))
                })
                .collect();
            started
                .into_iter()
                .map(|t| Served::attach(t.join().expect("a host failed to start")))
                .collect()
        });
        Trio { hosts }
    }

    fn index(name: &str) -> usize {
        HOSTS.iter().position(|h| *h == name).expect("a known host")
    }

    /// The host that last said it took the scheduler's lease (each host
    /// logs it when it does), if any has said so since `last`.
    fn scheduler(&self, mut last: Option<usize>) -> Option<usize> {
        for (i, s) in self.hosts.iter().enumerate() {
            while let Ok(line) = s.daemon.stderr.try_recv() {
                if line.contains("this host schedules the cluster's dynos") {
                    last = Some(i);
                }
            }
        }
        last
    }
}

/// An app's web dynos as a host's API lists them: (name, host, state).
async fn webs(s: &Served, app: &str) -> Vec<(String, String, String)> {
    let (_, dynos) = s.api("GET", &format!("/apps/{app}/dynos"), None).await;
    let text = |d: &serde_json::Value, k: &str| d[k].as_str().unwrap_or_default().to_owned();
    dynos
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["type"] == "web")
        .map(|d| (text(d, "name"), text(d, "host"), text(d, "state")))
        .collect()
}

/// Dynos per host among `webs`.
fn spread(webs: &[(String, String, String)]) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for (_, host, _) in webs {
        *per.entry(host.clone()).or_default() += 1;
    }
    per
}

fn spread_words(per: &BTreeMap<String, usize>) -> String {
    per.iter()
        .map(|(h, n)| format!("{h} {n}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Polls `s`'s list of `app`'s web dynos until `done` holds for it (the
/// list is never empty then unless `n` is 0); its time since `since` and
/// the spread, or `None` past [`GIVE_UP`].
async fn until_webs(
    s: &Served,
    app: &str,
    since: Instant,
    done: impl Fn(&[(String, String, String)]) -> bool,
) -> Option<(Duration, BTreeMap<String, usize>)> {
    loop {
        let list = webs(s, app).await;
        if done(&list) {
            return Some((since.elapsed(), spread(&list)));
        }
        if since.elapsed() > GIVE_UP {
            return None;
        }
        tokio::time::sleep(PS_EVERY).await;
    }
}

fn all_up(n: usize) -> impl Fn(&[(String, String, String)]) -> bool {
    move |l| l.len() == n && l.iter().all(|(_, _, state)| state == "up")
}

/// Scales `app` to `n` web dynos through `s` and waits until `s` lists
/// all `n` up: the time from the scale, and the spread.
async fn scale(s: &Served, app: &str, n: usize) -> Option<(Duration, BTreeMap<String, usize>)> {
    let t = Instant::now();
    s.set_web(app, n).await;
    until_webs(s, app, t, all_up(n)).await
}

/// Rows that say why they were not measured.
fn skipped(plan: &Plan, table: &mut Table, why: &str) {
    for figure in [
        format!("`scale web={}` across 3 hosts until all up", plan.scale),
        "requests/s through a host's router to a dyno on another host".into(),
        "failover: `kill -9` of a host to all web dynos serving again".into(),
    ] {
        table.row(Row {
            figure,
            wdyno: format!("skipped: {why}"),
            baseline: "—".into(),
            ratio: "—".into(),
            target: "—".into(),
            met: None,
        });
    }
}

pub async fn cluster(plan: &Plan, table: &mut Table) {
    let started = Instant::now();
    let bin = match nats_server() {
        Ok(bin) => bin,
        Err(why) => return skipped(plan, table, &format!("no nats-server: {why}")),
    };
    let hello = prebuilt(&built_app("hello").join("bin/web.wasm"));
    let probe = probe_components();

    // The baseline first, alone on the machine.
    let single = Served::attach(Daemon::start(&[]));
    single.daemon.create_and_deploy(SCALED, hello.path());
    let alone = warm_scale(&single, plan.scale).await;
    drop(single);

    let mut nats = Some(NatsCluster::start(&bin, 3));
    let mut trio = Trio::start(nats.as_ref().expect("started"));
    let a = &trio.hosts[0];
    a.daemon.create_and_deploy(SCALED, hello.path());
    let spread_scale = warm_scale(a, plan.scale).await;
    scale_row(plan, table, spread_scale, alone);
    scale(a, SCALED, 0).await;

    a.daemon.create_and_deploy(PROBE, probe.path());
    routed(plan, table, &trio).await;

    let mut took = Vec::new();
    for kill in 0..kills(plan) {
        if kill > 0 {
            // A fresh trio each kill: a restarted host takes its share
            // back only a dyno a tick.
            drop(trio);
            drop(nats.take());
            nats = Some(NatsCluster::start(&bin, 3));
            trio = Trio::start(nats.as_ref().expect("started"));
            trio.hosts[0].daemon.create_and_deploy(PROBE, probe.path());
        }
        // The second kill takes the scheduler's host: its lease lapses
        // beside the host's heartbeat.
        took.push(failover(&mut trio, kill == 1).await);
    }
    failover_row(table, &took);
    eprintln!(
        "  (cluster figures took {:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// `scale web=n` of the scaled app from 0, after one dyno per host has
/// run (each host has fetched and compiled the slug).
async fn warm_scale(s: &Served, n: usize) -> Option<Scaled> {
    scale(s, SCALED, HOSTS.len()).await?;
    scale(s, SCALED, 0).await?;
    let t = Instant::now();
    s.set_web(SCALED, n).await;
    // When all n are listed (in any state) too: the placement's share of
    // the time, against the dynos' starts.
    let mut listed = None;
    loop {
        let list = webs(s, SCALED).await;
        if listed.is_none() && list.len() == n {
            listed = Some(t.elapsed());
        }
        if all_up(n)(&list) {
            let listed = listed.unwrap_or_else(|| t.elapsed());
            return Some(Scaled {
                took: t.elapsed(),
                listed,
                per: spread(&list),
            });
        }
        if t.elapsed() > GIVE_UP {
            return None;
        }
        tokio::time::sleep(PS_EVERY).await;
    }
}

/// What a timed scale measured.
struct Scaled {
    /// From the scale to all up.
    took: Duration,
    /// From the scale to all listed, in any state.
    listed: Duration,
    /// Dynos per host.
    per: BTreeMap<String, usize>,
}

fn scale_row(plan: &Plan, table: &mut Table, cluster: Option<Scaled>, alone: Option<Scaled>) {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let words = |s: &Option<Scaled>| match s {
        Some(s) => format!("{} (all listed after {})", secs(s.took), secs(s.listed)),
        None => format!("not within {} s", GIVE_UP.as_secs()),
    };
    let ratio = match (&cluster, &alone) {
        (Some(c), Some(a)) => ratio(c.took.as_secs_f64() / a.took.as_secs_f64()),
        _ => "—".into(),
    };
    let spread = cluster
        .as_ref()
        .map(|s| format!("; {}", spread_words(&s.per)))
        .unwrap_or_default();
    table.row(Row {
        figure: format!(
            "`scale web={}` across 3 hosts until all up (hello, as host a's `ps` lists them, \
             polled every {} ms)",
            plan.scale,
            PS_EVERY.as_millis()
        ),
        wdyno: format!("{}{spread}", words(&cluster)),
        baseline: format!("one host, no cluster: {}", words(&alone)),
        ratio,
        target: "—".into(),
        met: None,
    });
}

/// The probe app at one web dyno: keep-alive load through its own host's
/// router, then through another host's (which hands each request to the
/// dyno's host's peer port).
async fn routed(plan: &Plan, table: &mut Table, trio: &Trio) {
    let a = &trio.hosts[0];
    let Some((_, per)) = scale(a, PROBE, 1).await else {
        panic!("the probe app's web dyno never came up");
    };
    let home = per.keys().next().expect("one web dyno").clone();
    let own = Trio::index(&home);
    let other = (own + 1) % HOSTS.len();
    let at = |i: usize| {
        Target::local(
            trio.hosts[i].daemon.router,
            &format!("{PROBE}.localhost"),
            "/",
        )
    };
    let (c, t) = (plan.concurrency, plan.load_time);
    let near = load::run(&at(own), c, t).await;
    let far = load::run(&at(other), c, t).await;
    let failed = match (near.failed, far.failed) {
        (0, 0) => String::new(),
        (n, f) => format!(" ({f} failed; own {n} failed)"),
    };
    table.row(Row {
        figure: format!(
            "requests/s through host {}'s router to web.1 on host {home} (probe, keep-alive, \
             {c} connections)",
            HOSTS[other]
        ),
        wdyno: format!("{}, p99 {}{failed}", rps(&far), ms(far.percentile(0.99))),
        baseline: format!(
            "through host {home}'s own router: {}, p99 {}",
            rps(&near),
            ms(near.percentile(0.99))
        ),
        ratio: ratio(far.rps() / near.rps()),
        target: "—".into(),
        met: None,
    });
}

/// One kill: the probe app at [`FAILOVER_WEBS`] web dynos spread over
/// the hosts, `kill -9` of a host (the scheduler's if `scheduler`, else
/// another), then requests through a survivor's router until every web
/// dyno has answered 200 since the kill.
async fn failover(trio: &mut Trio, scheduler: bool) -> Kill {
    let n = FAILOVER_WEBS;
    let even = move |l: &[(String, String, String)]| {
        all_up(n)(l) && {
            let per = spread(l);
            per.len() == HOSTS.len() && per.values().all(|&k| k == n / HOSTS.len())
        }
    };
    let t = Instant::now();
    trio.hosts[0].set_web(PROBE, n).await;
    until_webs(&trio.hosts[0], PROBE, t, even)
        .await
        .expect("the failover app's web dynos never spread over the hosts");
    let leader = trio.scheduler(None);
    let victim = match (leader, scheduler) {
        (Some(l), true) => l,
        (Some(l), false) => (l + 1) % HOSTS.len(),
        (None, _) => HOSTS.len() - 1,
    };
    let survivor = (victim + 1) % HOSTS.len();
    let router = trio.hosts[survivor].daemon.router;
    trio.hosts[victim].daemon.kill9();
    let killed = Instant::now();
    let dead = HOSTS[victim];
    let mut seen = BTreeSet::new();
    let (mut served, mut listed) = (None, None);
    let mut last_ps = Instant::now();
    while (served.is_none() || listed.is_none()) && killed.elapsed() < FAILOVER_GIVE_UP {
        if served.is_none() {
            // A burst large enough to reach every dyno the router picks.
            for _ in 0..2 * n {
                if let Some((200, body)) = get(router, PROBE).await {
                    seen.insert(body);
                }
            }
            if seen.len() == n {
                served = Some(killed.elapsed());
            }
        }
        if listed.is_none() && last_ps.elapsed() >= PS_EVERY {
            last_ps = Instant::now();
            let l = webs(&trio.hosts[survivor], PROBE).await;
            if all_up(n)(&l) && l.iter().all(|(_, host, _)| host != dead) {
                listed = Some(killed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Kill {
        served,
        listed,
        scheduler: leader.map(|i| i == victim),
    }
}

/// What one kill measured.
struct Kill {
    /// Kill to every web dyno answering through the survivor's router.
    served: Option<Duration>,
    /// Kill to the survivor's `ps` listing every web dyno up elsewhere.
    listed: Option<Duration>,
    /// Whether the killed host held the scheduler's lease (`None`: no
    /// host had said).
    scheduler: Option<bool>,
}

fn failover_row(table: &mut Table, kills: &[Kill]) {
    let mut served: Vec<Duration> = kills.iter().filter_map(|k| k.served).collect();
    served.sort();
    let lost = kills.len() - served.len();
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let wdyno = match served.last() {
        None => format!("not within {} s", FAILOVER_GIVE_UP.as_secs()),
        Some(max) if served.len() == 1 && lost == 0 => secs(*max),
        Some(max) => format!(
            "median {} / max {}{}",
            secs(crate::percentile(&served, 0.5)),
            secs(*max),
            match lost {
                0 => String::new(),
                l => format!(" ({l} not within {} s)", FAILOVER_GIVE_UP.as_secs()),
            }
        ),
    };
    let each: Vec<String> = kills
        .iter()
        .map(|k| {
            let or_not = |d: Option<Duration>| d.map_or("—".into(), secs);
            let whose = match k.scheduler {
                Some(true) => " (the scheduler's host)",
                Some(false) => "",
                None => " (scheduler unknown)",
            };
            format!("{} / {}{whose}", or_not(k.served), or_not(k.listed))
        })
        .collect();
    let ok = lost == 0 && served.last().is_some_and(|m| *m < FAILOVER_TARGET);
    table.row(Row {
        figure: format!(
            "failover: `kill -9` of a host running 2 of {FAILOVER_WEBS} web dynos (probe) to all \
             {FAILOVER_WEBS} answering 200 through a survivor's router, {} kill(s)",
            kills.len()
        ),
        wdyno,
        baseline: format!(
            "host TTL {} s; each kill, answering / the survivor's `ps` listing all up \
             elsewhere: {}",
            HOST_TTL.as_secs(),
            each.join("; ")
        ),
        ratio: "—".into(),
        target: format!("< {} s", FAILOVER_TARGET.as_secs()),
        met: Some(ok),
    });
}

/// One GET of `/` for `app` through the router on `port`, on a fresh
/// connection, given 2 s: `None` if the connection failed.
async fn get(port: u16, app: &str) -> Option<(u16, String)> {
    let once = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = http::Request::get("/")
            .header(http::header::HOST, format!("{app}.localhost"))
            .body(Empty::<Bytes>::new())
            .ok()?;
        let resp = send.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(2), once)
        .await
        .ok()
        .flatten()
}
