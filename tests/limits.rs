//! CPU, memory and boot limits: one dyno's misbehaviour never reaches
//! another.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Host, built_app, within};
use wdyno::dyno::{Cause, State};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_loop_does_not_stall_a_web_dyno_and_is_killed_at_grace() {
    let mut host = Host::new("cpu");
    host.grace = Duration::from_secs(2);
    let app = built_app("probe");
    let mut lines = host.subscribe();
    let spin = host.start(&app, "worker.1", &["bin/probe", "loop"], false);
    lines
        .wait_for(Duration::from_secs(30), |l| {
            l.process == "worker.1" && l.text == "looping"
        })
        .await;
    let web = host.start(&app, "web.1", &["bin/web"], true);
    assert_eq!(within(30, "web.1 up", web.dyno.wait_up()).await, State::Up);

    let mut client = Client::connect(web.port.unwrap()).await;
    for i in 0..100 {
        let (status, body) = within(5, &format!("request {i}"), client.get("/")).await;
        assert_eq!((status, body.as_str()), (200, "hello from web.1"));
    }
    assert_eq!(spin.dyno.state(), State::Up, "the loop is still spinning");

    let asked = Instant::now();
    spin.dyno.stop();
    let exit = within(10, "loop dyno killed", spin.dyno.wait()).await;
    let took = asked.elapsed();
    assert_eq!(exit.status, 137);
    assert_eq!(exit.cause, Cause::Killed);
    assert!(
        took >= host.grace,
        "killed only at the deadline, took {took:?}"
    );
    assert!(
        took < host.grace + Duration::from_secs(1),
        "killed within grace + 1 s, took {took:?}"
    );
    let log = host.lines("worker.1");
    let tail: Vec<&str> = log.iter().rev().take(5).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "wdyno State changed from up to stopping",
            "wdyno Stopping all processes with SIGTERM",
            "wdyno Error R12 (Exit timeout) -> At least one process failed to exit within the grace period after SIGTERM",
            "wdyno Process exited with status 137",
            "wdyno State changed from stopping to down",
        ]
    );
    web.dyno.stop();
    within(10, "web stops", web.dyno.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_gets_r14_and_its_neighbour_keeps_serving() {
    let mut host = Host::new("mem");
    host.memory = 64 << 20;
    let app = built_app("probe");
    let web = host.start(&app, "web.1", &["bin/web"], true);
    assert_eq!(within(30, "web.1 up", web.dyno.wait_up()).await, State::Up);
    let bomb = host.start(&app, "worker.1", &["bin/probe", "membomb"], false);
    let exit = within(30, "bomb ends", bomb.dyno.wait()).await;
    assert_eq!(exit.cause, Cause::MemoryQuota);
    assert_eq!(bomb.dyno.state(), State::Crashed);
    let log = host.lines("worker.1");
    // The R14 line carries the dyno's figures, as runtime metrics has them.
    assert!(
        log.iter().any(|l| l.starts_with(
            "wdyno Error R14 (Memory quota exceeded) source=worker.1 dyno=worker.1 sample#memory_total="
        ) && l.contains(" sample#memory_quota=64.00MB sample#cpu_ms=")),
        "{log:?}"
    );
    assert!(
        log.contains(&"wdyno State changed from up to crashed".to_string()),
        "{log:?}"
    );
    for _ in 0..20 {
        assert_eq!(
            common::get(web.port.unwrap(), "/").await,
            (200, "hello from web.1".into())
        );
    }
    web.dyno.stop();
    within(10, "web stops", web.dyno.wait()).await;
}

#[tokio::test]
async fn web_dyno_that_never_binds_is_r10_killed() {
    let mut host = Host::new("boot");
    host.boot_timeout = Duration::from_millis(800);
    let app = built_app("probe");
    let started = Instant::now();
    let sleeper = host.start(&app, "web.1", &["bin/probe", "sleep", "600000"], true);
    let exit = within(10, "R10", sleeper.dyno.wait()).await;
    assert_eq!(exit.cause, Cause::BootTimeout);
    assert_eq!(sleeper.dyno.state(), State::Crashed);
    assert!(started.elapsed() >= host.boot_timeout);
    let log = host.lines("web.1");
    assert!(
        log.iter()
            .any(|l| l.starts_with("wdyno Error R10 (Boot timeout)")),
        "{log:?}"
    );
}
