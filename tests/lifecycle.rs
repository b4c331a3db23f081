//! Exit codes, output, and the stop sequence (SIGTERM, grace, SIGKILL).

mod common;

use std::time::{Duration, Instant};

use common::{Host, built_app, within};
use wdyno::dyno::{Cause, State};

#[tokio::test]
async fn exit_code_is_reported_and_output_keeps_its_order() {
    let mut host = Host::new("exit");
    let app = built_app("probe");
    let d = host.start(
        &app,
        "worker.1",
        &["bin/probe", "lines", "6", ",", "exit", "3"],
        false,
    );
    let exit = within(30, "exit", d.dyno.wait()).await;
    assert_eq!(exit.status, 3);
    assert_eq!(exit.cause, Cause::Exited);
    assert_eq!(
        d.dyno.state(),
        State::Crashed,
        "a formation dyno that exits crashed"
    );
    assert_eq!(
        host.output("worker.1"),
        [
            "out 1",
            "err 2",
            "out 3",
            "err 4",
            "out 5",
            "err 6",
            "exiting 3",
            "err line"
        ]
    );
    let log = host.lines("worker.1");
    assert_eq!(
        log.first().unwrap(),
        "wdyno Starting process with command `bin/probe lines 6 , exit 3`"
    );
    assert_eq!(
        &log[log.len() - 2..],
        [
            "wdyno Process exited with status 3",
            "wdyno State changed from up to crashed"
        ]
    );
}

#[tokio::test]
async fn draining_dyno_finishes_within_grace_and_exits_clean() {
    let mut host = Host::new("drain");
    host.grace = Duration::from_secs(5);
    let app = built_app("probe");
    let mut lines = host.subscribe();
    let d = host.start(&app, "worker.1", &["bin/drain"], false);
    lines
        .wait_for(Duration::from_secs(30), |l| {
            l.process == "worker.1" && l.text == "working"
        })
        .await;
    let asked = Instant::now();
    d.dyno.stop();
    let exit = within(10, "drained", d.dyno.wait()).await;
    assert!(asked.elapsed() < host.grace, "drained before the deadline");
    assert_eq!(exit.status, 0);
    let out = host.output("worker.1");
    assert!(
        out.iter().any(|l| l.starts_with("draining after ")),
        "{out:?}"
    );
    assert_eq!(out.last().unwrap(), "drained");
    assert_eq!(d.dyno.state(), State::Down);
}

#[tokio::test]
async fn web_dyno_ignoring_lifecycle_stops_at_once_with_143() {
    let mut host = Host::new("term");
    host.grace = Duration::from_secs(20);
    let app = built_app("probe");
    let web = host.start(&app, "web.1", &["bin/web"], true);
    assert_eq!(within(30, "up", web.dyno.wait_up()).await, State::Up);
    let asked = Instant::now();
    web.dyno.stop();
    let exit = within(5, "stopped", web.dyno.wait()).await;
    assert_eq!(exit.status, 143);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "no wait for the grace"
    );
    assert_eq!(web.dyno.state(), State::Down);
    assert_eq!(
        host.lines("web.1").last().unwrap(),
        "wdyno State changed from stopping to down"
    );
}
