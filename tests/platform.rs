//! The running platform: formation, router, restarts, daemon restarts, the
//! control API's token, logs.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::probe_app::{app_log, probe_slug};
use common::{Client, repo, stdout_lines, until};

fn api_url(d: &Daemon) -> String {
    std::fs::read_to_string(d.home().join("api"))
        .unwrap()
        .trim()
        .trim_start_matches("http://")
        .to_owned()
}

/// One raw HTTP/1.1 request; returns the whole answer.
fn raw(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_its_token_and_dynos_cannot_reach_it() {
    let d = Daemon::start(&[]);
    let api = api_url(&d);
    let none = raw(
        &api,
        "GET /apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(none.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{none}");
    assert!(none.contains("\"id\": \"unauthorized\""), "{none}");
    let wrong = raw(
        &api,
        "GET /apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer 0000\r\nConnection: close\r\n\r\n",
    );
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let token = std::fs::read_to_string(d.home().join("api-token")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.home().join("api-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ok = raw(
        &api,
        &format!(
            "GET /apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            token.trim()
        ),
    );
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");

    // A dyno trying the API and router ports over real sockets.
    let app = probe_slug("web: bin/web\nworker: bin/worker\n");
    d.create_and_deploy("nosy", app.path());
    let api_port = api.rsplit(':').next().unwrap();
    let router = d.router.to_string();
    let name = d.run_detached(
        "nosy",
        &[
            "bin/worker",
            "connect",
            &format!("127.0.0.1:{api_port}"),
            ",",
            "connect",
            &format!("127.0.0.1:{router}"),
            ",",
            "connect",
            &format!("localhost:{api_port}"),
        ],
    );
    let lines = until("the one-off's output", 30, || {
        let l = app_log(&d, "nosy", &["--ps", &name, "--source", "app"]);
        (l.len() >= 3).then_some(l)
    })
    .await;
    for l in &lines {
        assert!(
            l.ends_with(&format!("app[{name}]: error: PermissionDenied")),
            "{lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_to_ten_spreads_requests_uniformly() {
    let d = Daemon::start(&["--router-seed", "7"]);
    d.create_and_deploy("probe", &repo().join("tests/apps/probe"));
    let out = d.cli(&["ps:scale", "web=10", "-a", "probe"]).ok();
    assert_eq!(
        out.stdout,
        "Scaling dynos... done, now running web at 10:Basic\n"
    );
    until("10 web dynos up", 60, || d.all_up("probe", 10)).await;
    let text = d.cli(&["ps", "-a", "probe"]).ok().stdout;
    assert!(
        text.starts_with("=== web (Basic): bin/web (10)\n\nweb.1: up "),
        "{text}"
    );
    assert_eq!(text.matches(": up ").count(), 10, "{text}");

    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut client = Client::connect(d.router).await;
    for _ in 0..2000 {
        let (status, body) = client.get_host("probe.localhost", "/").await;
        assert_eq!(status, 200);
        *counts.entry(body).or_default() += 1;
    }
    assert_eq!(counts.len(), 10, "every dyno got requests: {counts:?}");
    let expected = 200.0;
    let chi2: f64 = counts
        .values()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    // 9 degrees of freedom, p = 0.001.
    assert!(
        chi2 < 27.877,
        "chi-square {chi2:.2} says the pick is not uniform: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_errors_have_their_codes() {
    let d = Daemon::start(&["--request-timeout", "1"]);
    d.create_and_deploy("probe", &repo().join("tests/apps/probe"));
    until("web up", 30, || d.all_up("probe", 1)).await;
    let mut c = Client::connect(d.router).await;
    // The dyno closes the connection without answering: H13.
    assert_eq!(c.get_host("probe.localhost", "/close").await.0, 503);
    // The dyno never answers: H12 after the (shortened) timeout.
    let t = Instant::now();
    assert_eq!(c.get_host("probe.localhost", "/hang").await.0, 503);
    assert!(t.elapsed() >= Duration::from_secs(1));
    d.cli(&["ps:scale", "web=0", "-a", "probe"]).ok();
    until("no web dynos", 30, || {
        d.ps("probe").is_empty().then_some(())
    })
    .await;
    assert_eq!(c.get_host("probe.localhost", "/").await.0, 503);
    // Web dynos that crash at boot: H10.
    let crashing = probe_slug("web: bin/worker exit 1\n");
    d.create_and_deploy("crashy", crashing.path());
    until("crashed", 30, || {
        d.ps("crashy")
            .first()
            .filter(|x| x["state"] == "crashed")
            .map(|_| ())
    })
    .await;
    assert_eq!(c.get_host("crashy.localhost", "/").await.0, 503);

    let router: Vec<String> = app_log(&d, "probe", &["--ps", "router"]);
    let codes: Vec<&str> = router
        .iter()
        .filter_map(|l| l.split("code=").nth(1))
        .map(|s| &s[..3])
        .collect();
    assert_eq!(codes, ["H13", "H12", "H14"], "{router:?}");
    assert!(
        router[2].contains(
            "desc=\"No web processes running\" method=GET path=\"/\" host=probe.localhost"
        ),
        "{}",
        router[2]
    );
    let crashy = app_log(&d, "crashy", &["--ps", "router"]);
    assert!(
        crashy
            .last()
            .unwrap()
            .contains("code=H10 desc=\"App crashed\""),
        "{crashy:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_dyno_restarts_then_backs_off() {
    let d = Daemon::start(&[]);
    let app = probe_slug("web: bin/web\nworker: bin/worker exit 1\n");
    d.create_and_deploy("flaky", app.path());
    d.cli(&["ps:scale", "worker=1", "-a", "flaky"]).ok();
    let lines = until("four crashes", 30, || {
        let l = app_log(&d, "flaky", &["--ps", "worker.1", "--source", "wdyno"]);
        (l.iter()
            .filter(|x| x.ends_with("Process exited with status 1"))
            .count()
            >= 4)
            .then_some(l)
    })
    .await;
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.split("]: ").nth(1).unwrap())
        .collect();
    assert_eq!(
        &texts[..5],
        [
            "Starting process with command `bin/worker exit 1`",
            "State changed from starting to up",
            "Process exited with status 1",
            "State changed from up to crashed",
            "Starting process with command `bin/worker exit 1`",
        ]
    );
    let at = |l: &str| chrono::DateTime::parse_from_rfc3339(l.split(' ').next().unwrap()).unwrap();
    let starts: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("Starting process"))
        .map(|l| at(l))
        .collect();
    let crashes: Vec<_> = lines
        .iter()
        .filter(|l| l.ends_with("status 1"))
        .map(|l| at(l))
        .collect();
    let gap = |i: usize| (starts[i + 1] - crashes[i]).num_milliseconds();
    // At once the first time, then 200 ms, 400 ms (the test's base).
    assert!(gap(0) < 200, "first restart at once: {} ms", gap(0));
    assert!(gap(1) >= 200, "second after the base: {} ms", gap(1));
    assert!(gap(2) >= 400, "third after twice the base: {} ms", gap(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_restart_brings_back_the_same_formation_and_release() {
    let mut d = Daemon::start(&[]);
    d.create_and_deploy("probe", &repo().join("tests/apps/probe"));
    d.cli(&["config:set", "GREETING=back", "-a", "probe"]).ok();
    d.cli(&["ps:scale", "web=2", "-a", "probe"]).ok();
    until("2 up", 30, || d.all_up("probe", 2)).await;
    d.restart();
    until("2 up again", 30, || d.all_up("probe", 2)).await;
    let list = d.ps("probe");
    assert!(
        list.iter().all(|x| x["release"]["version"] == 2),
        "{list:?}"
    );
    assert_eq!(d.get("probe", "/greeting").await, (200, "back".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_under_steady_traffic_fails_no_request() {
    let d = Daemon::start(&[]);
    let a = probe_slug("web: bin/web\n");
    std::fs::write(a.path().join("VERSION"), "A").unwrap();
    d.create_and_deploy("steady", a.path());
    d.cli(&["ps:scale", "web=2", "-a", "steady"]).ok();
    until("2 up", 30, || d.all_up("steady", 2)).await;
    let router = d.router;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut c = Client::connect(router).await;
            let mut seen = BTreeMap::<(u16, String), u32>::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                *seen
                    .entry(c.get_host("steady.localhost", "/version").await)
                    .or_default() += 1;
            }
            seen
        })
    };
    let b = probe_slug("web: bin/web\n");
    std::fs::write(b.path().join("VERSION"), "B").unwrap();
    d.cli(&["deploy", b.path().to_str().unwrap(), "-a", "steady"])
        .ok();
    until("old dynos gone", 30, || {
        let list = d.ps("steady");
        list.iter()
            .all(|x| x["release"]["version"] == 2 && x["state"] == "up")
            .then_some(())
    })
    .await;
    // Some traffic after the switch, too.
    let mut c = Client::connect(router).await;
    for _ in 0..50 {
        assert_eq!(
            c.get_host("steady.localhost", "/version").await,
            (200, "B".to_owned())
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = traffic.await.unwrap();
    let failed: u32 = seen
        .iter()
        .filter(|((s, _), _)| *s != 200)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(failed, 0, "requests failed during the deploy: {seen:?}");
    assert!(
        seen.keys().any(|(_, v)| v == "A") && seen.keys().any(|(_, v)| v == "B"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_echoes_stdin_and_returns_the_tasks_exit_code() {
    let d = Daemon::start(&[]);
    let app = probe_slug("web: bin/web\n");
    d.create_and_deploy("tasks", app.path());
    let mut child = std::process::Command::new(common::daemon::WDYNO)
        .args([
            "run",
            "-a",
            "tasks",
            "--",
            "bin/worker",
            "cat",
            ",",
            "exit",
            "7",
        ])
        .env("WDYNO_HOME", d.home())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("Running bin/worker cat , exit 7 on tasks... up, run."),
        "{stdout}"
    );
    assert_eq!(&lines[1..], ["hello", "world", "exiting 7", "err line"]);
    assert_eq!(out.status.code(), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_one_dyno_and_a_stuck_reader_does_not_slow_the_router() {
    let d = Daemon::start(&[]);
    d.create_and_deploy("probe", &repo().join("tests/apps/probe"));
    d.cli(&["ps:scale", "web=2", "-a", "probe"]).ok();
    until("2 up", 30, || d.all_up("probe", 2)).await;

    // A reader of a log session that never reads a byte.
    let api = api_url(&d);
    let session = d.api_post(
        "/apps/probe/log-sessions",
        serde_json::json!({"tail": true}),
    );
    let url = session["logplex_url"].as_str().unwrap();
    let at = url.trim_start_matches("http://");
    let (host, path) = at.split_at(at.find('/').unwrap());
    assert_eq!(
        host, api,
        "the session's URL names the API as it was reached"
    );
    let mut stuck = std::net::TcpStream::connect(&api).unwrap();
    write!(stuck, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();

    let mut tail = std::process::Command::new(common::daemon::WDYNO)
        .args(["logs", "--tail", "--ps", "web.2", "-n", "0", "-a", "probe"])
        .env("WDYNO_HOME", d.home())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut tail);

    let started = Instant::now();
    let mut c = Client::connect(d.router).await;
    for _ in 0..3000 {
        assert_eq!(c.get_host("probe.localhost", "/").await.0, 200);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "3000 requests took {took:?} with a stuck log reader"
    );

    d.cli(&["ps:restart", "web", "-a", "probe"]).ok();
    let mut seen = Vec::new();
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("web.2's restart lines");
        let done = l.ends_with("wdyno[web.2]: State changed from starting to up");
        seen.push(l);
        if done {
            break;
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(
        seen.iter().all(|l| l.contains("[web.2]: ")),
        "only web.2's lines: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("Starting process with command `bin/web`")),
        "{seen:?}"
    );
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_refuses_smuggling_and_oversized_heads() {
    let d = Daemon::start(&[]);
    d.create_and_deploy("probe", &repo().join("tests/apps/probe"));
    until("web up", 30, || d.all_up("probe", 1)).await;
    let router = format!("127.0.0.1:{}", d.router);
    // Content-Length and Transfer-Encoding together, with a second request
    // hidden in the body: refused, and the connection closed.
    let smuggle = raw(
        &router,
        "POST / HTTP/1.1\r\nHost: probe.localhost\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /env HTTP/1.1\r\nHost: probe.localhost\r\n\r\n",
    );
    assert_eq!(
        smuggle.matches("HTTP/1.1 ").count(),
        1,
        "only one answer: {smuggle}"
    );
    assert!(
        !smuggle.contains("DYNO="),
        "the smuggled request was served: {smuggle}"
    );
    let big = raw(
        &router,
        &format!(
            "GET / HTTP/1.1\r\nHost: probe.localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(64 * 1024)
        ),
    );
    assert!(
        big.starts_with("HTTP/1.1 431"),
        "{}",
        &big[..big.len().min(200)]
    );
    let fine = raw(
        &router,
        "GET / HTTP/1.1\r\nHost: probe.localhost\r\nX-Request-Id: abcdefghij0123456789kept\r\nConnection: close\r\n\r\n",
    );
    assert!(fine.starts_with("HTTP/1.1 200 OK"), "{fine}");
    let line = app_log(&d, "probe", &["--ps", "router"]).pop().unwrap();
    assert!(
        line.contains("request_id=abcdefghij0123456789kept "),
        "{line}"
    );
    assert!(
        line.contains(" dyno=web.1 ") && line.contains(" status=200 "),
        "{line}"
    );
}
