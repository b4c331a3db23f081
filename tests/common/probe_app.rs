//! The probe app deployed to a daemon and watched through `ps`: shared by
//! the tests that drive it with the `heroku` CLI and with wdyno's own.

use std::path::Path;
use std::process::Child;
use std::sync::mpsc::Receiver;

use super::daemon::Daemon;
use super::{stdout_lines, until, within};

pub fn dyno_names(d: &Daemon, app: &str) -> Vec<String> {
    let mut names: Vec<String> = d
        .ps(app)
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The web dynos' start times, by name.
pub fn web_started(d: &Daemon, app: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = d
        .ps(app)
        .iter()
        .filter(|x| x["type"] == "web" && x["state"] == "up")
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_owned(),
                x["updated_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The probe app's built components and its Procfile (the wasm buildpack
/// packs them as they are).
pub fn probe_components() -> tempfile::TempDir {
    let built = super::built_app("probe");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    for c in ["web", "probe", "drain"] {
        std::fs::copy(
            built.join(format!("bin/{c}.wasm")),
            dir.path().join(format!("bin/{c}.wasm")),
        )
        .unwrap();
    }
    std::fs::copy(built.join("Procfile"), dir.path().join("Procfile")).unwrap();
    dir
}

/// The `run.N` a `run:detached` named.
pub fn run_name(said: &str) -> String {
    said.split_whitespace()
        .find(|w| w.starts_with("run."))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_digit()).to_owned())
        .unwrap_or_else(|| panic!("no run.N in {said}"))
}

/// Waits until both web dynos are new ones (started after `before`).
pub async fn fresh_web_dynos(d: &Daemon, before: &[(String, String)]) {
    until("fresh web dynos", 30, || {
        let now = web_started(d, "probe");
        (now.len() == 2 && now.iter().zip(before).all(|(n, b)| n.1 != b.1)).then_some(())
    })
    .await;
}

/// Waits until a stopped `web.1` runs again (a new start time).
pub async fn web_1_started_again(d: &Daemon, before: &[(String, String)]) {
    until("web.1 started again", 30, || {
        let now = web_started(d, "probe");
        (now.len() == 2 && now[0].0 == "web.1" && now[0].1 != before[0].1).then_some(())
    })
    .await;
}

pub async fn one_off_up(d: &Daemon, run: &str) {
    until("the one-off up", 30, || {
        d.ps("probe")
            .iter()
            .any(|x| x["name"] == run && x["state"] == "up")
            .then_some(())
    })
    .await;
}

pub async fn one_off_gone(d: &Daemon, run: &str, what: &str) {
    until(what, 30, || {
        (!dyno_names(d, "probe").contains(&run.to_owned())).then_some(())
    })
    .await;
}

pub fn deploy(d: &Daemon, app: &str, dir: &Path) {
    d.cli(&["deploy", dir.to_str().unwrap(), "-a", app]).ok();
}

/// The lines of a `logs --tail` child, once it has printed its first
/// (it follows the app by then).
pub async fn following(tail: &mut Child) -> Receiver<String> {
    let rx = stdout_lines(tail);
    within(30, "the tail's first line", async {
        rx.recv().unwrap();
    })
    .await;
    rx
}

/// Waits until the tail prints a line ending with `want`.
pub async fn tail_sees(rx: &Receiver<String>, want: &str) {
    within(30, "the line in the tail", async {
        while !rx.recv().expect("the tail goes on").ends_with(want) {}
    })
    .await;
}

/// The probe app deployed with `web` dynos, all up.
pub async fn deploy_with_web(d: &Daemon, web: usize) {
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

/// The probe app's log, its last 1500 lines as `wdyno logs` prints them.
pub fn probe_log(d: &Daemon) -> Vec<String> {
    let out = d.cli(&["logs", "-a", "probe", "-n", "1500"]).ok();
    out.stdout.lines().map(str::to_owned).collect()
}

/// The probe app's web component as `bin/web`, the probe tool as
/// `bin/worker`, and `procfile`: for web dynos that crash, never bind, or
/// sit beside a worker.
pub fn probe_slug(procfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let probe = super::built_app("probe");
    std::fs::copy(probe.join("bin/web.wasm"), dir.path().join("bin/web.wasm")).unwrap();
    std::fs::copy(
        probe.join("bin/probe.wasm"),
        dir.path().join("bin/worker.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("Procfile"), procfile).unwrap();
    dir
}

/// `wdyno logs -a APP -n 1500 EXTRA…`, a line each.
pub fn app_log(d: &Daemon, app: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["logs", "-a", app, "-n", "1500"];
    args.extend_from_slice(extra);
    d.cli(&args)
        .ok()
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}
