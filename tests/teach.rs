//! Crashes that teach, and a CLI that behaves as a Heroku user expects:
//! hint lines for WASI limits and for a web dyno that ignores `$PORT`, a
//! deploy that says when its web dyno never came up, `ps:scale release=1`
//! refused, `logs | head` quiet, one daemon per home.

mod common;

use std::process::{Command, Stdio};

use common::daemon::{Daemon, WDYNO};
use common::{repo, until};

const UNSUPPORTED_HINT: &str = "Hint: \"operation not supported on this platform\" is a limit of WASI 0.2, which has no such call (no dup, no threads, no processes); for TcpStream::try_clone, share the stream by reference instead: BufReader::new(&stream) and (&stream).write_all(…)";

/// The app's log lines without their timestamps: `wdyno[web.1]: text`.
fn log(d: &Daemon, app: &str) -> Vec<String> {
    d.cli(&["logs", "-a", app, "-n", "1500"])
        .ok()
        .stdout
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_clone_crash_names_the_wasi_limit_and_the_fix() {
    let d = Daemon::start(&[]);
    d.create_and_deploy("clone", &repo().join("tests/apps/try-clone"));
    // Its first request makes it call try_clone, and crash.
    let (status, _) = d.get("clone", "/").await;
    assert_eq!(status, 503);
    let lines = until("the hint line", 30, || {
        let lines = log(&d, "clone");
        lines
            .iter()
            .any(|l| l.starts_with("wdyno[web.1]: Hint:"))
            .then_some(lines)
    })
    .await;
    let at = lines
        .iter()
        .position(|l| {
            l.contains("operation not supported on this platform") && l.starts_with("app[web.1]:")
        })
        .unwrap_or_else(|| panic!("the panic is logged: {lines:#?}"));
    assert_eq!(lines[at + 1], format!("wdyno[web.1]: {UNSUPPORTED_HINT}"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("Hint: \"operation"))
            .count(),
        1,
        "once per dyno: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_dyno_that_binds_another_port_is_told_port_and_the_deploy_says_it_is_down() {
    let d = Daemon::start(&[]);
    let out = d.create_and_deploy("fixed", &repo().join("tests/apps/fixed-port"));
    let released: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("Released v"))
        .collect();
    assert_eq!(
        released,
        [
            "       Released v1, but web.1 did not come up: it crashed (status 134) before listening on $PORT; see wdyno logs -a fixed"
        ],
        "{}",
        out.stdout
    );
    let lines = log(&d, "fixed");
    let refused = lines
        .iter()
        .find(|l| l.starts_with("wdyno[web.1]: Error: bind to port 8080 refused"))
        .unwrap_or_else(|| panic!("the refused bind is logged: {lines:#?}"));
    let port = d.ps("fixed")[0]["port"].as_u64().unwrap();
    let first_port: u64 = refused
        .split("$PORT (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert!(first_port > 0 && port > 0);
    assert_eq!(
        refused,
        &format!(
            "wdyno[web.1]: Error: bind to port 8080 refused: a web dyno may listen only on $PORT ({first_port} for this dyno). Hint: read the port from the PORT environment variable, e.g. std::env::var(\"PORT\") or process.env.PORT"
        )
    );
    // ...followed by the app's own PermissionDenied panic.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("app[web.1]:") && l.contains("PermissionDenied")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_process_type_cannot_be_scaled() {
    let d = Daemon::start(&[]);
    d.cli(&["apps:create", "phase"]).ok();
    let out = d.cli(&["ps:scale", "release=1", "-a", "phase"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        " !    Cannot scale release: the release process type is the release phase; it runs once per deploy, before the release goes live, and has no dynos to scale\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_into_a_closed_pipe_exits_quietly() {
    let d = Daemon::start(&[]);
    d.cli(&["apps:create", "piped"]).ok();
    // Requests to an app with no dynos: router lines (H14) in its log.
    for _ in 0..3 {
        assert_eq!(d.get("piped", "/").await.0, 503);
    }
    until("log lines", 30, || {
        (log(&d, "piped").len() >= 3).then_some(())
    })
    .await;
    // `wdyno logs | head -0`: the reader is gone before the first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(WDYNO)
        .args(["logs", "-a", "piped"])
        .env("WDYNO_HOME", d.home())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_home_says_one_is_running() {
    let d = Daemon::start(&[]);
    let api = std::fs::read_to_string(d.home().join("api")).unwrap();
    let out = Command::new(WDYNO)
        .args([
            "daemon",
            "--router-port",
            "0",
            "--api-port",
            "0",
            "--disk-mb",
            "0",
        ])
        .env("WDYNO_HOME", d.home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            " !    a wdyno daemon is already running on {} (API {}): use it, stop it first, or start this one with another --home\n",
            d.home().display(),
            api.trim()
        )
    );
    // The first one is unharmed.
    assert_eq!(d.cli(&["apps"]).ok().stdout, "=== Apps\n");
}
