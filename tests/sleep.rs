//! Apps that sleep when idle (`apps:update --sleep-after`): their web
//! dynos stop after the interval without a request, `ps` shows them
//! `idle`, and the next request wakes one and is served by it, or, for an
//! app that cannot come up, answers as Heroku's router does (`H10`,
//! `H20`).

mod common;

use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::probe_app::{app_log, probe_components, probe_slug};
use common::{until, within};

/// `Some(())` once the app has exactly `n` dynos, all `state`.
fn all_in(d: &Daemon, app: &str, n: usize, state: &str) -> Option<()> {
    let ps = d.ps(app);
    (ps.len() == n && ps.iter().all(|x| x["state"] == state)).then_some(())
}

/// How many lines of the app's log end with `text`.
fn count_ending(lines: &[String], text: &str) -> usize {
    lines.iter().filter(|l| l.ends_with(text)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_app_sleeps_and_its_next_request_wakes_it() {
    let d = Daemon::start(&[]);
    let dir = probe_components();
    d.create_and_deploy("probe", dir.path());
    d.cli(&["ps:scale", "web=2", "-a", "probe"]).ok();
    until("two web dynos up", 60, || d.all_up("probe", 2)).await;
    let info = d.cli(&["apps:info", "-a", "probe"]).ok().stdout;
    assert!(info.contains("\nSleep after: off\n"), "{info}");

    let out = d
        .cli(&["apps:update", "--sleep-after", "2s", "-a", "probe"])
        .ok();
    assert_eq!(
        out.stdout,
        "Web dynos of probe sleep after 2s without a request\n"
    );
    let info = d.cli(&["apps:info", "-a", "probe"]).ok().stdout;
    assert!(info.contains("\nSleep after: 2s\n"), "{info}");

    // Idle: both web dynos stop; the formation still says web=2.
    until("both web dynos idle", 30, || all_in(&d, "probe", 2, "idle")).await;
    let ps = d.cli(&["ps", "-a", "probe"]).ok().stdout;
    assert!(
        ps.contains("\nweb.1: idle ") && ps.contains("\nweb.2: idle "),
        "{ps}"
    );
    let formation = d.api_get("/apps/probe/formation/web");
    assert_eq!(formation["quantity"], 2, "{formation}");
    let logs = app_log(&d, "probe", &[]);
    for dyno in ["web.1", "web.2"] {
        assert_eq!(
            count_ending(&logs, &format!("wdyno[{dyno}]: Idling")),
            1,
            "{logs:#?}"
        );
    }

    // The next request wakes it and is answered by a fresh dyno.
    let t = Instant::now();
    let (status, body) = within(5, "the waking request", d.get("probe", "/")).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        body == "hello from web.1" || body == "hello from web.2",
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "the wake took {took:?}");
    // Up again (before the 2 s have passed without a request once more).
    let up = d
        .ps("probe")
        .iter()
        .filter(|x| x["type"] == "web" && x["state"] == "up")
        .count();
    assert!(up >= 1, "{:?}", d.ps("probe"));

    let logs = app_log(&d, "probe", &[]);
    assert_eq!(count_ending(&logs, "]: Unidling"), 2, "{logs:#?}");
    let router = app_log(&d, "probe", &["--ps", "router"]);
    let served = router
        .iter()
        .filter(|l| l.contains("at=info method=GET path=\"/\" host=probe.localhost"))
        .collect::<Vec<_>>();
    assert_eq!(served.len(), 1, "{router:#?}");
    assert!(served[0].contains(" status=200 "), "{}", served[0]);
    assert!(
        !router.iter().any(|l| l.contains("code=H")),
        "an error while waking: {router:#?}"
    );

    // Idle again, it sleeps again; `off` wakes it for good.
    until("asleep again", 30, || all_in(&d, "probe", 2, "idle")).await;
    let out = d
        .cli(&["apps:update", "--sleep-after", "off", "-a", "probe"])
        .ok();
    assert_eq!(out.stdout, "Web dynos of probe never sleep\n");
    until("two web dynos up after off", 30, || d.all_up("probe", 2)).await;
    d.answers("probe", "/version", "none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_app_asleep_answers_h10() {
    let d = Daemon::start(&[]);
    let crashing = probe_slug("web: bin/worker exit 1\n");
    d.create_and_deploy("crashy", crashing.path());
    until("crashed", 30, || all_in(&d, "crashy", 1, "crashed")).await;
    d.cli(&["apps:update", "--sleep-after", "1s", "-a", "crashy"])
        .ok();
    until("asleep", 30, || all_in(&d, "crashy", 1, "idle")).await;

    // Woken, the dyno crashes again: the held request answers H10.
    let (status, _) = within(10, "the waking request", d.get("crashy", "/")).await;
    assert_eq!(status, 503);
    let router = app_log(&d, "crashy", &["--ps", "router"]);
    assert_eq!(router.len(), 1, "{router:#?}");
    assert!(
        router[0].contains(
            "at=error code=H10 desc=\"App crashed\" method=GET path=\"/\" host=crashy.localhost"
        ),
        "{}",
        router[0]
    );
    assert!(router[0].contains(" status=503 "), "{}", router[0]);
    let logs = app_log(&d, "crashy", &[]);
    assert_eq!(
        count_ending(&logs, "wdyno[web.1]: Unidling"),
        1,
        "{logs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_asleep_that_never_comes_up_answers_h20() {
    let d = Daemon::start(&["--wake-timeout", "2"]);
    // Runs, but never listens on $PORT (its R10 is 20 s away).
    let silent = probe_slug("web: bin/worker sleep 600000\n");
    d.cli(&["apps:create", "silent"]).ok();
    // A deploy waits for the web dyno to come up (or fail its boot): it
    // runs beside the test.
    let mut deploying = std::process::Command::new(env!("CARGO_BIN_EXE_wdyno"))
        .args(["deploy", silent.path().to_str().unwrap(), "-a", "silent"])
        .env("WDYNO_HOME", d.home())
        .env_remove("WDYNO_API_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    until("starting", 60, || all_in(&d, "silent", 1, "starting")).await;
    d.cli(&["apps:update", "--sleep-after", "1s", "-a", "silent"])
        .ok();
    until("asleep", 30, || all_in(&d, "silent", 1, "idle")).await;

    let t = Instant::now();
    let (status, _) = within(10, "the waking request", d.get("silent", "/")).await;
    assert_eq!(status, 503);
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    let router = app_log(&d, "silent", &["--ps", "router"]);
    assert_eq!(router.len(), 1, "{router:#?}");
    assert!(
        router[0].contains(
            "at=error code=H20 desc=\"App boot timeout\" method=GET path=\"/\" host=silent.localhost"
        ),
        "{}",
        router[0]
    );
    // Idle again once the held request is answered.
    until("asleep again", 30, || all_in(&d, "silent", 1, "idle")).await;
    let _ = deploying.kill();
    let _ = deploying.wait();
}
