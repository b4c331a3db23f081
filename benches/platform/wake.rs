//! Waking a sleeping app: the latency of the first request after an app
//! fell asleep (`apps:update --sleep-after`), over many wakes, against
//! the same request to the app awake.
//!
//! An app sleeps `sleep_after` (1 s, the shortest) after its last
//! request, so the wakes are spread over several apps at once: each app
//! falls asleep, is woken by one timed request, and falls asleep again.

use std::time::{Duration, Instant};

use super::common::{Client, built_app, prebuilt};
use super::served::Served;
use super::{Plan, Row, Table, ms, percentile};

/// Apps sleeping and waking side by side.
fn apps(plan: &Plan) -> usize {
    if plan.quick { 2 } else { 10 }
}

/// Wakes per app.
fn rounds(plan: &Plan) -> usize {
    if plan.quick { 2 } else { 12 }
}

/// Waits until every web dyno of `app` is `idle`.
async fn asleep(s: &Served, app: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, dynos) = s.api("GET", &format!("/apps/{app}/dynos"), None).await;
        let webs: Vec<_> = dynos
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["type"] == "web")
            .collect();
        if !webs.is_empty() && webs.iter().all(|d| d["state"] == "idle") {
            return;
        }
        assert!(Instant::now() < deadline, "{app} did not fall asleep");
        // Not faster: ten apps' `ps` calls would load the daemon the
        // timed wakes run in.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One GET through the router on a fresh connection: its latency.
async fn timed_get(router: u16, app: &str) -> Duration {
    let host = format!("{app}.localhost");
    let started = Instant::now();
    let mut c = Client::connect(router).await;
    let (status, body) = c.get_host(&host, "/").await;
    let took = started.elapsed();
    assert_eq!((status, body.as_str()), (200, "hello\n"), "{app}");
    took
}

pub async fn wake(plan: &Plan, table: &mut Table, s: &Served) {
    let slug = prebuilt(&built_app("hello").join("bin/web.wasm"));
    let router = s.daemon.router;
    let names: Vec<String> = (0..apps(plan)).map(|i| format!("sleepy{i}")).collect();
    for app in &names {
        s.daemon.create_and_deploy(app, slug.path());
        let (status, body) = s
            .api(
                "PATCH",
                &format!("/apps/{app}"),
                Some(serde_json::json!({ "sleep_after": "1s" })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Awake: the same request to an app that is up.
    let mut awake = Vec::new();
    for _ in 0..50 {
        awake.push(timed_get(router, &names[0]).await);
    }
    awake.sort();
    let rounds = rounds(plan);
    let runs = names.iter().map(|app| async move {
        let mut took = Vec::new();
        for _ in 0..rounds {
            asleep(s, app).await;
            took.push(timed_get(router, app).await);
        }
        took
    });
    let mut wakes: Vec<Duration> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    wakes.sort();
    let (p50, p99) = (percentile(&wakes, 0.5), percentile(&wakes, 0.99));
    for app in &names {
        s.daemon.cli(&["apps:destroy", app, "--confirm", app]);
    }
    table.row(Row {
        figure: format!(
            "first request to a sleeping app (hello), p50 / p99 over {} wakes",
            wakes.len()
        ),
        wdyno: format!("{} / {}", ms(p50), ms(p99)),
        baseline: format!(
            "the app awake: p50 {} / p99 {}",
            ms(percentile(&awake, 0.5)),
            ms(percentile(&awake, 0.99))
        ),
        ratio: "—".into(),
        target: "p99 < 10 ms".into(),
        met: Some(p99 < Duration::from_millis(10)),
    });
}
