//! Seeing into an app, as a Heroku user would: runtime metrics in the log
//! (`labs:enable log-runtime-metrics`) and the live dashboard in a real
//! browser. Drains have `tests/drains.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::browser::{Browser, base64_decode};
use common::daemon::Daemon;
use common::probe_app::{deploy_with_web, probe_log};
use common::until;
use serde_json::json;

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
    deploy_with_web(&d, 2).await;
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
        let all = probe_log(&d);
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
    deploy_with_web(&d, 1).await;
    let run = d.run_detached("probe", &["bin/probe", "membomb"]);
    let line = until("the R14 line", 30, || {
        probe_log(&d)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_burst_live_in_a_browser() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let d = Daemon::start(&[]);
    deploy_with_web(&d, 2).await;
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
