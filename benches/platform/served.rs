//! Figures measured against a real `wdyno daemon` process: the hello app
//! as a dyno against itself native, `scale web=1000`, rollback and
//! runtime metrics; the daemon handle the other figures drive (the router's
//! are in `routed.rs`, the proxy dyno's in `baselines.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::common::daemon::Daemon;
use crate::common::{self, repo};
use crate::load::{self, Load, Target};
use crate::native::{self, Native};
use crate::{Plan, Row, Table, ms, ratio};

/// The std::net hello app (`Connection: close`).
pub const APP: &str = "hello";
/// tests/apps/probe's web process: wstd, keep-alive, concurrent connections.
pub const KEEP_ALIVE: &str = "ka";

/// The daemon with the hello app (v1, `web=1`) and the keep-alive app
/// deployed.
pub struct Served {
    pub daemon: Daemon,
    api: String,
    token: String,
    /// Its dynos' `$PORT`s are real sockets (`--dyno-ports real`), not in
    /// memory (the default).
    real_ports: bool,
}

/// The harness's daemon: runtime metrics, where an app turns them on,
/// every second (20x Heroku's rate; the `metrics` figure measures what
/// they cost), dynos' ports in memory.
const DAEMON_ARGS: &[&str] = &["--metrics-interval", "1"];

impl Served {
    pub async fn start() -> Served {
        let mut served = Served::attach(Daemon::start(DAEMON_ARGS));
        served.real_ports = DAEMON_ARGS
            .windows(2)
            .any(|w| w == ["--dyno-ports", "real"]);
        served.deploy(APP, "hello");
        served.daemon.answers(APP, "/", "hello\n").await;
        served.deploy(KEEP_ALIVE, "probe");
        served
            .daemon
            .answers(KEEP_ALIVE, "/", "hello from web.1")
            .await;
        served
    }

    /// Drives a daemon through its control API.
    pub fn attach(daemon: Daemon) -> Served {
        let home = daemon.home().to_owned();
        let read = |f: &str| {
            std::fs::read_to_string(home.join(f))
                .unwrap()
                .trim()
                .to_owned()
        };
        Served {
            api: read("api").trim_start_matches("http://").to_owned(),
            token: read("api-token"),
            daemon,
            real_ports: false,
        }
    }

    pub fn deploy(&self, app: &str, test_app: &str) {
        self.daemon
            .create_and_deploy(app, &repo().join("tests/apps").join(test_app));
    }

    /// One control API call: (status, JSON body).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let tcp = tokio::net::TcpStream::connect(&self.api).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.api)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Sets the web formation to `n` (the API must accept it).
    pub async fn set_web(&self, app: &str, n: usize) {
        let (status, body) = self
            .api(
                "PATCH",
                &format!("/apps/{app}/formation"),
                Some(json!({"updates": [{"type": "web", "quantity": n}]})),
            )
            .await;
        assert_eq!(status, 200, "scaling web to {n}: {body}");
    }

    /// Sets the web formation and waits until exactly `n` web dynos are up
    /// (polling `GET …/dynos` every 10 ms). Returns the time it took.
    pub async fn scale(&self, app: &str, n: usize) -> Duration {
        let t = Instant::now();
        self.set_web(app, n).await;
        let deadline = t + Duration::from_secs(120);
        loop {
            let ports = self.web_ports(app).await;
            if ports.len() == n {
                return t.elapsed();
            }
            assert!(Instant::now() < deadline, "web={n} never came up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The web dynos' `$PORT`s when they are real ports to connect to
    /// straight; none when they are in memory (the daemon's default).
    /// (Known from the daemon's flags, not by connecting: an in-memory
    /// `$PORT` is a number no socket holds, which another process may
    /// have bound, or a connect from that very port may reach itself.)
    pub async fn direct_ports(&self, app: &str) -> Vec<SocketAddr> {
        match self.real_ports {
            true => self.web_ports(app).await,
            false => Vec::new(),
        }
    }

    /// The `$PORT`s of the web dynos that are up, if no other dyno is
    /// still around.
    pub async fn web_ports(&self, app: &str) -> Vec<SocketAddr> {
        let (_, dynos) = self.api("GET", &format!("/apps/{app}/dynos"), None).await;
        let dynos = dynos.as_array().cloned().unwrap_or_default();
        let up: Vec<SocketAddr> = dynos
            .iter()
            .filter(|d| d["state"] == "up" && d["type"] == "web")
            .filter_map(|d| d["port"].as_u64())
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p as u16)))
            .collect();
        if up.len() == dynos.len() {
            up
        } else {
            Vec::new()
        }
    }

    pub fn routed(&self, app: &str, path: &str) -> Target {
        Target::local(self.daemon.router, &format!("{app}.localhost"), path)
    }

    /// Load, with the CPU time per request of the whole daemon and of its
    /// router thread.
    pub async fn load(&self, target: &Target, concurrency: usize, time: Duration) -> (Load, Cpu) {
        let pid = self.daemon.pid();
        let (daemon, router) = (
            native::cpu_time(pid),
            native::thread_cpu_time(pid, "wdyno-router"),
        );
        let load = load::run(target, concurrency, time).await;
        let n = u32::try_from(load.ok.max(1)).unwrap_or(u32::MAX);
        let cpu = Cpu {
            daemon: native::cpu_time(pid).saturating_sub(daemon) / n,
            router: native::thread_cpu_time(pid, "wdyno-router").saturating_sub(router) / n,
        };
        (load, cpu)
    }
}

/// CPU time per request.
pub struct Cpu {
    pub daemon: Duration,
    pub router: Duration,
}

pub fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

pub fn rps(l: &Load) -> String {
    format!("{:.0} req/s", l.rps())
}

/// The load generator's own ceiling: a trivial in-process hyper server.
pub async fn ceiling(plan: &Plan, table: &mut Table) {
    let port = load::trivial_server().await;
    let l = load::run(
        &Target::local(port, "localhost", "/"),
        plan.concurrency,
        plan.load_time,
    )
    .await;
    assert_eq!(l.failed, 0, "the trivial server failed requests");
    table.row(Row {
        figure: format!(
            "load generator ceiling (hyper client, {} connections, keep-alive)",
            plan.concurrency
        ),
        wdyno: rps(&l),
        baseline: "trivial in-process hyper server".into(),
        ratio: "—".into(),
        target: "—".into(),
        met: None,
    });
}

/// The hello app as a dyno against the same source built natively.
pub async fn std_net(plan: &Plan, table: &mut Table, s: &Served, bin: &PathBuf) {
    let port = common::free_port();
    let _native = Native::spawn(bin, port);
    native::wait_bound(port, Duration::from_secs(10));
    // Straight to the dyno when it has a real port, else (in memory)
    // through the router: the router's own rows say what it costs.
    let ports = s.direct_ports(APP).await;
    let (dyno, how) = match ports.is_empty() {
        true => (s.routed(APP, "/"), "through the router"),
        false => (Target::new(ports, "localhost", "/"), "straight to it"),
    };
    let native = Target::local(port, "localhost", "/");
    let (c, t) = (plan.concurrency, plan.load_time);
    let n = load::run(&native, c, t).await;
    let d = load::run(&dyno, c, t).await;
    assert_eq!((n.failed, d.failed), (0, 0), "hello app failed requests");
    let r = d.rps() / n.rps();
    table.row(Row {
        figure: format!("Rust std::net app (hello, `Connection: close`), as a dyno, {how}"),
        wdyno: rps(&d),
        baseline: format!("native: {}", rps(&n)),
        ratio: ratio(r),
        target: "≥ 0.6x".into(),
        met: Some(r >= 0.6),
    });
}

/// `scale web=N` from zero until every dyno is up, and the daemon's RSS
/// growth.
pub async fn scale(plan: &Plan, table: &mut Table, s: &Served) {
    s.scale(APP, 0).await;
    let pid = s.daemon.pid();
    let before = native::rss_kib(pid);
    let took = s.scale(APP, plan.scale).await;
    let grown = native::rss_kib(pid).saturating_sub(before);
    let per_gib = (plan.scale as u64 * 1024 * 1024) / grown.max(1);
    // Scaled to 1000 dynos, so the quick run's figure compares too.
    let at_1000 = grown as f64 * 1000.0 / plan.scale as f64 / 1024.0;
    table.row(Row {
        figure: format!("`scale web={}` until all up", plan.scale),
        wdyno: format!("{:.3} s", took.as_secs_f64()),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "< 0.5 s (for 1000)".into(),
        met: Some(took.as_secs_f64() * 1000.0 / plan.scale as f64 <= 0.5),
    });
    table.row(Row {
        figure: format!("daemon RSS growth, {} idle hello dynos", plan.scale),
        wdyno: format!(
            "{:.1} MiB ({} KiB/dyno, {per_gib} dynos/GiB)",
            grown as f64 / 1024.0,
            grown / plan.scale as u64
        ),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "< 100 MiB for 1000".into(),
        met: Some(at_1000 < 100.0),
    });
    s.scale(APP, 1).await;
}

/// `releases:rollback` until the router serves the old release: v1 says
/// `hello`, v2 (a config change) says `bonjour`; each rollback flips.
pub async fn rollback(plan: &Plan, table: &mut Table, s: &Served) {
    let (status, _) = s
        .api(
            "PATCH",
            &format!("/apps/{APP}/config-vars"),
            Some(json!({"GREETING": "bonjour"})),
        )
        .await;
    assert_eq!(status, 200, "setting GREETING");
    s.daemon.answers(APP, "/", "bonjour\n").await;
    let mut times = Vec::new();
    for i in 0..plan.rollbacks {
        let (to, want) = if i % 2 == 0 {
            ("v1", "hello\n")
        } else {
            ("v2", "bonjour\n")
        };
        let t = Instant::now();
        let (status, _) = s
            .api(
                "POST",
                &format!("/apps/{APP}/releases"),
                Some(json!({"release": to})),
            )
            .await;
        assert_eq!(status, 201, "rolling back to {to}");
        let deadline = t + Duration::from_secs(30);
        loop {
            if s.daemon.get(APP, "/").await == (200, want.to_owned()) {
                break;
            }
            assert!(Instant::now() < deadline, "{to} never served");
        }
        times.push(t.elapsed());
    }
    times.sort_unstable();
    let worst = *times.last().expect("at least one rollback");
    table.row(Row {
        figure: format!(
            "`releases:rollback` until the old release serves (median of {})",
            times.len()
        ),
        wdyno: ms(crate::percentile(&times, 0.5)),
        baseline: format!("slowest: {}", ms(worst)),
        ratio: "—".into(),
        target: "< 100 ms".into(),
        met: Some(worst < Duration::from_millis(100)),
    });
}

/// What runtime metrics cost a dyno: keep-alive requests/s straight to one
/// dyno with `log-runtime-metrics` on (a sample every second) against the
/// same with it off, alternated so drift hits both alike.
pub async fn metrics(plan: &Plan, table: &mut Table, s: &Served) {
    s.scale(KEEP_ALIVE, 1).await;
    let ports = s.direct_ports(KEEP_ALIVE).await;
    let direct = match ports.is_empty() {
        true => s.routed(KEEP_ALIVE, "/"),
        false => Target::new(ports, "localhost", "/"),
    };
    let feature = format!("/apps/{KEEP_ALIVE}/features/log-runtime-metrics");
    let (c, t) = (plan.concurrency, plan.load_time);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for (enabled, into) in [(false, &mut off), (true, &mut on)] {
            let (status, body) = s
                .api("PATCH", &feature, Some(json!({ "enabled": enabled })))
                .await;
            assert_eq!(status, 200, "{body}");
            let l = load::run(&direct, c, t).await;
            assert_eq!(l.failed, 0, "requests failed");
            into.push(l.rps());
        }
    }
    s.api("PATCH", &feature, Some(json!({"enabled": false})))
        .await;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (on, off) = (mean(&on), mean(&off));
    let x = on / off;
    table.row(Row {
        figure:
            "requests/s to a dyno with runtime metrics on (sampled every 1 s), probe keep-alive"
                .into(),
        wdyno: format!("{on:.0} req/s"),
        baseline: format!("metrics off: {off:.0} req/s"),
        ratio: ratio(x),
        target: "≥ 0.97x".into(),
        met: Some(x >= 0.97),
    });
}
