//! Seeing into an app, as a Heroku user would: runtime metrics in the log
//! (`labs:enable log-runtime-metrics`), log drains (HTTP in Logplex's
//! framing, syslog over TCP), and the live dashboard in a real browser.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::Daemon;
use common::probe_app::{following, probe_components};
use common::{until, within};
use serde_json::{Value, json};

/// The probe app deployed with `web` dynos, all up.
async fn probe_with_web(d: &Daemon, web: usize) {
    let dir = probe_components();
    d.create_and_deploy("probe", dir.path());
    d.cli(&["ps:scale", &format!("web={web}"), "-a", "probe"])
        .ok();
    until("the web dynos up", 60, || {
        let up = d
            .ps("probe")
            .iter()
            .filter(|x| x["type"] == "web" && x["state"] == "up")
            .count();
        (up == web).then_some(())
    })
    .await;
}

fn log_lines(d: &Daemon) -> Vec<String> {
    let out = d.cli(&["logs", "-a", "probe", "-n", "1500"]).ok();
    out.stdout.lines().map(str::to_owned).collect()
}

/// `sample#KEY=VALUE` of a metrics line, without its unit.
fn sample(line: &str, key: &str) -> f64 {
    let want = format!("sample#{key}=");
    let v = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(want.as_str()))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    v.trim_end_matches("MB")
        .parse()
        .unwrap_or_else(|e| panic!("{key}={v}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_metrics_come_for_every_dyno_with_its_figures() {
    let d = Daemon::start(&[]);
    probe_with_web(&d, 2).await;
    // One dyno holds 120 MiB for good.
    let (status, held) = d.get("probe", "/alloc/120").await;
    assert_eq!(status, 200, "{held}");
    let hog = held.split_whitespace().next().unwrap().to_owned();
    assert!(held.ends_with("holds 120 MiB"), "{held}");

    // Unknown features are refused with the ones there are.
    let out = d.cli(&["labs:enable", "log-runtime-stats", "-a", "probe"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(
            "No such feature: log-runtime-stats. wdyno's labs features: log-runtime-metrics."
        ),
        "{}",
        out.stderr
    );
    let out = d.cli(&["labs", "-a", "probe"]).ok();
    assert!(
        out.stdout.contains("[ ] log-runtime-metrics"),
        "{}",
        out.stdout
    );

    let out = d
        .cli(&["labs:enable", "log-runtime-metrics", "-a", "probe"])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "Enabling log-runtime-metrics for probe... done"
    );
    let out = d.cli(&["labs", "-a", "probe"]).ok();
    assert!(
        out.stdout.contains("[+] log-runtime-metrics"),
        "{}",
        out.stdout
    );

    // Within 25 s (one 20 s period), a line for each web dyno.
    let lines = until("a metrics line for each web dyno", 25, || {
        let all = log_lines(&d);
        let of = |dyno: &str| {
            let head = format!("wdyno[{dyno}]: source={dyno} dyno={dyno} sample#memory_total=");
            all.iter().find(|l| l.contains(&head)).cloned()
        };
        Some((of("web.1")?, of("web.2")?))
    })
    .await;
    for line in [&lines.0, &lines.1] {
        assert_eq!(sample(line, "memory_quota"), 512.0, "{line}");
        let total = sample(line, "memory_total");
        let load = sample(line, "load_avg_1m");
        assert!((0.0..=2.0).contains(&load), "{line}");
        assert!(sample(line, "cpu_ms") >= 0.0, "{line}");
        if line.contains(&format!("source={hog} ")) {
            assert!(total > 120.0 && total < 512.0, "the hog: {line}");
        } else {
            assert!(total > 0.0 && total < 100.0, "the other: {line}");
        }
    }

    // Off again: the feature reads off.
    d.cli(&["labs:disable", "log-runtime-metrics", "-a", "probe"])
        .ok();
    let out = d.cli(&["labs", "-a", "probe"]).ok();
    assert!(
        out.stdout.contains("[ ] log-runtime-metrics"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r14_line_carries_the_dynos_figures() {
    let d = Daemon::start(&["--memory-mb", "64"]);
    probe_with_web(&d, 1).await;
    let run = d.run_detached("probe", &["bin/probe", "membomb"]);
    let line = until("the R14 line", 30, || {
        log_lines(&d)
            .into_iter()
            .find(|l| l.contains(&format!("wdyno[{run}]: Error R14 (Memory quota exceeded)")))
    })
    .await;
    assert!(
        line.contains(&format!(
            "Error R14 (Memory quota exceeded) source={run} dyno={run} sample#memory_total="
        )),
        "{line}"
    );
    // It held most of its quota (16 MiB at a time) when it ran out.
    let total = sample(&line, "memory_total");
    assert!((40.0..=64.0).contains(&total), "{line}");
    assert_eq!(sample(&line, "memory_quota"), 64.0, "{line}");
}

/// What an HTTP drain receiver got: each post's headers and body.
type Posts = Arc<Mutex<Vec<(http::HeaderMap, String)>>>;

async fn http_receiver() -> (u16, Posts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts: Posts = Arc::default();
    let got = posts.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let got = got.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let got = got.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            got.lock()
                                .unwrap()
                                .push((headers, String::from_utf8(body.to_vec()).unwrap()));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Empty::<bytes::Bytes>::new(),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (port, posts)
}

/// Splits octet-counted frames (`LEN SP MSG`…); the rest is returned too,
/// for a stream that stopped mid-frame.
fn frames(mut data: &str) -> (Vec<String>, &str) {
    let mut out = Vec::new();
    while let Some((len, rest)) = data.split_once(' ') {
        let len: usize = len
            .parse()
            .unwrap_or_else(|_| panic!("not a frame length: {len:?}"));
        if rest.len() < len {
            break;
        }
        out.push(rest[..len].to_owned());
        data = &rest[len..];
    }
    (out, data)
}

/// What a syslog receiver read, as one stream.
async fn syslog_receiver() -> (u16, Arc<Mutex<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<String>> = Arc::default();
    let into = got.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            into.lock()
                .unwrap()
                .push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    });
    (port, got)
}

/// The burst lines (`burst i/1000`) among frames, as `(i, frame)`.
fn burst(frames: &[String]) -> Vec<(u32, String)> {
    frames
        .iter()
        .filter_map(|f| {
            let n = f.rsplit_once(" - - burst ")?.1.strip_suffix("/1000")?;
            Some((n.parse().unwrap(), f.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_get_every_line_of_a_burst_in_order_and_framed() {
    let d = Daemon::start(&[]);
    probe_with_web(&d, 1).await;
    let (http_port, posts) = http_receiver().await;
    let (syslog_port, stream) = syslog_receiver().await;
    let http_url = format!("http://127.0.0.1:{http_port}/logs");
    let syslog_url = format!("syslog://127.0.0.1:{syslog_port}");
    let out = d.cli(&["drains:add", &http_url, "-a", "probe"]).ok();
    assert!(
        out.stdout
            .starts_with(&format!("Successfully added drain {http_url} (d.")),
        "{}",
        out.stdout
    );
    d.cli(&["drains:add", &syslog_url, "-a", "probe"]).ok();

    // A drain to the same URL again, and URLs that are not drains.
    let out = d.cli(&["drains:add", &http_url, "-a", "probe"]);
    assert!(
        out.stderr
            .contains(&format!("probe already drains to {http_url}.")),
        "{}",
        out.stderr
    );
    let out = d.cli(&["drains:add", "syslog://127.0.0.1", "-a", "probe"]);
    assert!(
        out.stderr.contains("a syslog drain needs a port"),
        "{}",
        out.stderr
    );

    let listed = d.json(&["drains", "-a", "probe"]);
    let token_of = |url: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["url"] == url)
            .unwrap_or_else(|| panic!("{url} not in {listed}"))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (http_token, syslog_token) = (token_of(&http_url), token_of(&syslog_url));
    assert!(
        http_token.starts_with("d.") && http_token.len() == 38,
        "{http_token}"
    );

    let (status, body) = d.get("probe", "/print/1000").await;
    assert_eq!((status, body.as_str()), (200, "printed 1000"));

    // HTTP: every line, in order, in posts framed as Logplex frames them.
    let got = until("the HTTP drain has the burst", 30, || {
        let posts = posts.lock().unwrap().clone();
        let all: Vec<String> = posts.iter().flat_map(|(_, b)| frames(b).0).collect();
        (burst(&all).len() >= 1000).then_some(posts)
    })
    .await;
    let mut ids = std::collections::HashSet::new();
    let mut all = Vec::new();
    for (h, body) in &got {
        let header = |k: &str| {
            h.get(k)
                .unwrap_or_else(|| panic!("no {k}"))
                .to_str()
                .unwrap()
        };
        assert_eq!(header("content-type"), "application/logplex-1");
        assert_eq!(header("logplex-drain-token"), http_token);
        let (fs, rest) = frames(body);
        assert_eq!(rest, "", "a post ends on a frame");
        assert_eq!(header("logplex-msg-count"), fs.len().to_string());
        assert!(
            ids.insert(header("logplex-frame-id").to_owned()),
            "frame ids are unique"
        );
        all.extend(fs);
    }
    let lines = burst(&all);
    assert_eq!(
        lines.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    let (_, first) = &lines[0];
    let head = format!(" {http_token} app web.1 - - burst 1/1000");
    assert!(
        first.starts_with("<190>1 20") && first.ends_with(&head),
        "{first}"
    );

    // Syslog: the same lines, octet-counted on one stream.
    let text = until("the syslog drain has the burst", 30, || {
        let text = stream.lock().unwrap().clone();
        (burst(&frames(&text).0).len() >= 1000).then_some(text)
    })
    .await;
    let lines = burst(&frames(&text).0);
    assert_eq!(
        lines.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    assert!(
        lines[999]
            .1
            .ends_with(&format!(" {syslog_token} app web.1 - - burst 1000/1000")),
        "{}",
        lines[999].1
    );

    // Removed: it is no longer listed.
    let out = d.cli(&["drains:remove", &syslog_url, "-a", "probe"]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!("Successfully removed drain {syslog_url}")
    );
    let listed = d.json(&["drains", "-a", "probe"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_never_reads_blocks_nothing_and_says_l10() {
    let d = Daemon::start(&[]);
    probe_with_web(&d, 1).await;
    // Accepts, never reads, with a small window: the drain's writes stall.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let listener = socket.listen(1).unwrap();
    let held = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(tcp);
    });
    d.cli(&[
        "drains:add",
        &format!("syslog://127.0.0.1:{port}"),
        "-a",
        "probe",
    ])
    .ok();

    let mut tail = std::process::Command::new(common::daemon::WDYNO)
        .args(["logs", "--tail", "-a", "probe", "-n", "1"])
        .env("WDYNO_HOME", d.home())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = following(&mut tail).await;

    // Far more than the drain holds, while the app keeps answering.
    for _ in 0..4 {
        let (status, body) = within(10, "a burst", d.get("probe", "/print/5000")).await;
        assert_eq!((status, body.as_str()), (200, "printed 5000"));
    }
    let l10 = until("the L10 line", 15, || {
        log_lines(&d)
            .into_iter()
            .find(|l| l.contains("wdyno[logplex]: Error L10 (Drain buffer overflow) -> "))
    })
    .await;
    let dropped: u64 = l10
        .split(" -> ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {l10}"));
    assert!(dropped > 0, "{l10}");
    assert!(l10.contains("messages dropped since 20"), "{l10}");

    // The tail still follows: a line printed now reaches it.
    let (status, _) = d.get("probe", "/print/1").await;
    assert_eq!(status, 200);
    within(15, "the tail sees the newest line", async {
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(15))
                .expect("the tail went quiet");
            if l.ends_with("app[web.1]: burst 1/1") {
                break;
            }
        }
    })
    .await;
    let _ = tail.kill();
    let _ = tail.wait();
    held.abort();
}

// The dashboard, in headless Chromium driven over WebDriver.

/// One WebDriver call: the `value` of its answer.
fn webdriver(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read by Content-Length.
    let mut r = std::io::BufReader::new(s);
    let mut length = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    let v: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&body)));
    v["value"].clone()
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !matches!(c, b'=' | b'\n' | b'\r'))
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(val(*c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A browser session on chromedriver, closed (with the driver) on drop.
struct Browser {
    driver: std::process::Child,
    port: u16,
    session: String,
}

impl Browser {
    fn start() -> Option<Browser> {
        let (driver, chromium) = ("/usr/bin/chromedriver", "/usr/bin/chromium");
        for bin in [driver, chromium] {
            if !std::path::Path::new(bin).exists() {
                println!(
                    "skipped: {bin} is missing (Debian's chromium and chromium-driver; .ci/run installs them)"
                );
                return None;
            }
        }
        let port = common::free_port();
        let mut child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // It says so on stdout once it listens.
        let out = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(out).lines();
        for l in lines.by_ref() {
            if l.unwrap().contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"],
            },
        }}});
        let v = webdriver(port, "POST", "/session", Some(caps));
        let session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Some(Browser {
            driver: child,
            port,
            session,
        })
    }

    fn call(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        webdriver(
            self.port,
            method,
            &format!("/session/{}/{what}", self.session),
            body,
        )
    }

    fn open(&self, url: &str) {
        self.call("POST", "url", Some(json!({ "url": url })));
    }

    fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            webdriver(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            )
        });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_burst_live_in_a_browser() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let d = Daemon::start(&[]);
    probe_with_web(&d, 2).await;
    let out = d.cli(&["dashboard", "-a", "probe"]).ok();
    let url = out.stdout.trim().to_owned();
    let api = std::fs::read_to_string(d.home().join("api")).unwrap();
    let page = format!("{}/dashboard/probe", api.trim());
    assert!(url.starts_with(&format!("{page}?key=")), "{url}");

    // Without the key or the cookie: refused.
    let addr = api.trim().trim_start_matches("http://").to_owned();
    let mut raw = TcpStream::connect(&addr).unwrap();
    write!(
        raw,
        "GET /dashboard/probe HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // The key sets the cookie and leaves the URL; the page goes live.
    browser.open(&url);
    let live = || {
        let state = browser.eval("return document.body.dataset.state");
        (state == "live").then_some(())
    };
    until("the page live", 20, live).await;
    assert_eq!(browser.eval("return location.href"), json!(page));

    // After first use the plain URL works (the cookie).
    browser.open(&page);
    until("the page live again", 20, live).await;

    // 500 requests through the router, on 10 connections.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let router = d.router;
        clients.push(tokio::spawn(async move {
            let mut c = common::Client::connect(router).await;
            for _ in 0..50 {
                let (status, _) = c.get_host("probe.localhost", "/").await;
                assert_eq!(status, 200);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let figures = until("the page counts 500 requests", 30, || {
        let v = browser.eval(
            "return [document.getElementById('requests').textContent, \
             document.querySelector('#statuses [data-code=\"200\"]')?.textContent ?? '', \
             document.querySelectorAll('#dynos tbody tr[data-dyno]').length]",
        );
        (v[0] == "500").then_some(v)
    })
    .await;
    assert_eq!(figures, json!(["500", "200: 500", 2]));
    let p50 = browser.eval("return document.getElementById('p50').textContent");
    assert!(p50.as_str().unwrap().parse::<u64>().is_ok(), "{p50}");

    let png = browser.call("GET", "screenshot", None);
    let dir = common::repo().join("target/test-output");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dashboard.png");
    std::fs::write(&shot, base64_decode(png.as_str().unwrap())).unwrap();
    println!("dashboard screenshot: {}", shot.display());
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

/// A test CA and a server certificate it signed for `localhost`, made by
/// openssl: (CA PEM, server cert PEM, server key PEM), or `None` (said
/// why) where openssl cannot run.
fn test_ca(dir: &std::path::Path) -> Option<[std::path::PathBuf; 3]> {
    let at = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    std::fs::write(
        at("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let steps = [
        format!(
            "req -x509 -days 2 -subj /CN=wdyno-test-CA {ec} -keyout {} -out {}",
            at("ca.key"),
            at("ca.pem")
        ),
        format!(
            "req -subj /CN=localhost {ec} -keyout {} -out {}",
            at("key.pem"),
            at("leaf.csr")
        ),
        format!(
            "x509 -req -days 2 -in {} -CA {} -CAkey {} -CAcreateserial -extfile {} -out {}",
            at("leaf.csr"),
            at("ca.pem"),
            at("ca.key"),
            at("leaf.ext"),
            at("cert.pem")
        ),
    ];
    for step in &steps {
        let args: Vec<&str> = step.split(' ').collect();
        match std::process::Command::new("openssl").args(&args).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("openssl {step}: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => {
                println!("skipped: openssl cannot run ({e}): it makes the test's certificates");
                return None;
            }
        }
    }
    Some(["ca.pem", "cert.pem", "key.pem"].map(|f| dir.join(f)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_syslog_drain_trusts_the_operators_ca_and_delivers() {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let Some([ca, cert, key]) = test_ca(dir.path()) else {
        return;
    };
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<String>> = Arc::default();
    let into = got.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            // A handshake the drain refuses just ends that connection.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = vec![0u8; 16 << 10];
            while let Ok(n) = tls.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                into.lock()
                    .unwrap()
                    .push_str(std::str::from_utf8(&buf[..n]).unwrap());
            }
        }
    });

    let d = Daemon::start(&["--drain-ca", ca.to_str().unwrap()]);
    probe_with_web(&d, 1).await;
    let url = format!("syslog+tls://localhost:{port}");
    d.cli(&["drains:add", &url, "-a", "probe"]).ok();
    let token = d.json(&["drains", "-a", "probe"])[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = d.get("probe", "/print/1000").await;
    assert_eq!(status, 200);
    let text = until("the TLS drain has the burst", 30, || {
        let text = got.lock().unwrap().clone();
        (burst(&frames(&text).0).len() >= 1000).then_some(text)
    })
    .await;
    let lines = burst(&frames(&text).0);
    assert_eq!(lines.len(), 1000);
    assert!(
        lines[0]
            .1
            .ends_with(&format!(" {token} app web.1 - - burst 1/1000")),
        "{}",
        lines[0].1
    );
}
