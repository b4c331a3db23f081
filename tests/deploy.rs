//! Build, release, run through the real daemon and CLI: buildpacks, the
//! Procfile, releases, config vars, rollback, the release phase, git push.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, Out};
use common::{built_app, repo};
use serde_json::Value;

/// A copy of `tests/apps/NAME` to change before deploying.
fn app_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy(&repo().join("tests/apps").join(name), dir.path());
    dir
}

fn copy(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "target" || e.file_name() == "node_modules" {
            continue;
        }
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A prebuilt app: components taken from the built test apps, and a
/// Procfile.
fn prebuilt(procfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::copy(
        built_app("rust-http").join("bin/web.wasm"),
        dir.path().join("bin/web.wasm"),
    )
    .unwrap();
    std::fs::copy(
        built_app("probe").join("bin/probe.wasm"),
        dir.path().join("bin/worker.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("Procfile"), procfile).unwrap();
    dir
}

fn deploy(d: &Daemon, app: &str, dir: &Path) -> Out {
    d.cli(&["deploy", dir.to_str().unwrap(), "-a", app])
}

fn releases(d: &Daemon, app: &str) -> Vec<Value> {
    d.json(&["releases", "-a", app]).as_array().unwrap().clone()
}

fn types(release: &Value) -> Vec<String> {
    release["process_types"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_deploys_through_its_buildpack_with_its_process_types() {
    let d = Daemon::start(&[]);
    let prebuilt = prebuilt("web: bin/web\nworker: bin/worker env\n");
    let cases: [(&str, PathBuf, &str, &[&str]); 4] = [
        (
            "probe",
            repo().join("tests/apps/probe"),
            "Rust app detected",
            &["drain", "probe", "web"],
        ),
        (
            "rust-http",
            repo().join("tests/apps/rust-http"),
            "Rust app detected",
            &["web"],
        ),
        (
            "js-web",
            repo().join("tests/apps/js-web"),
            "JavaScript app detected",
            &["web"],
        ),
        (
            "prebuilt",
            prebuilt.path().to_owned(),
            "WebAssembly app detected",
            &["web", "worker"],
        ),
    ];
    for (app, dir, detected, want) in &cases {
        d.cli(&["apps:create", app]).ok();
        let out = deploy(&d, app, dir).ok();
        assert!(
            out.stdout.contains(&format!("-----> {detected}")),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("       Released v1"), "{}", out.stdout);
        let rel = releases(&d, app);
        assert_eq!(rel.len(), 1);
        assert_eq!(types(&rel[0]), *want, "{app}");
        assert_eq!(rel[0]["status"], "succeeded");
    }
    d.answers("rust-http", "/", "hello from rust-http web.1")
        .await;
    d.answers("js-web", "/", "hello from js-web web.1").await;
    d.answers("prebuilt", "/", "hello from rust-http web.1")
        .await;
    d.answers("probe", "/", "hello from web.1").await;
    let apps = d.cli(&["apps"]).ok();
    assert_eq!(
        apps.stdout,
        "=== Apps\njs-web\nprebuilt\nprobe\nrust-http\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_serves_the_old_release_again() {
    let d = Daemon::start(&[]);
    let a = app_copy("probe");
    std::fs::write(a.path().join("VERSION"), "A").unwrap();
    let b = app_copy("probe");
    std::fs::write(b.path().join("VERSION"), "B").unwrap();
    d.cli(&["apps:create", "probe"]).ok();
    deploy(&d, "probe", a.path()).ok();
    d.answers("probe", "/version", "A").await;
    deploy(&d, "probe", b.path()).ok();
    d.answers("probe", "/version", "B").await;
    let out = d.cli(&["releases:rollback", "v1", "-a", "probe"]).ok();
    assert_eq!(
        out.stdout,
        "Rolling back probe... done, v3\nRollback to v1\n"
    );
    d.answers("probe", "/version", "A").await;
    let list = d.cli(&["releases", "-a", "probe"]).ok().stdout;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "=== probe Releases - Current: v3");
    assert_eq!(lines[1], "");
    assert!(lines[2].starts_with("v3  Rollback to v1  "), "{list}");
    assert!(lines[3].starts_with("v2  Deploy "), "{list}");
    assert!(lines[4].starts_with("v1  Deploy "), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_vars_make_releases_that_new_dynos_see() {
    let d = Daemon::start(&[]);
    d.cli(&["apps:create", "probe"]).ok();
    deploy(&d, "probe", &repo().join("tests/apps/probe")).ok();
    d.answers("probe", "/greeting", "unset").await;
    let out = d.cli(&["config:set", "GREETING=hi", "-a", "probe"]).ok();
    assert_eq!(
        out.stdout,
        "Setting GREETING and restarting probe... done, v2\n"
    );
    d.answers("probe", "/greeting", "hi").await;
    assert_eq!(
        d.cli(&["config:get", "GREETING", "-a", "probe"])
            .ok()
            .stdout,
        "hi\n"
    );
    assert_eq!(
        d.cli(&["config", "-a", "probe"]).ok().stdout,
        "=== probe Config Vars\nGREETING: hi\n"
    );
    let rel = releases(&d, "probe");
    assert_eq!(rel[1]["description"], "Set GREETING config vars");
    d.cli(&["config:unset", "GREETING", "-a", "probe"]).ok();
    d.answers("probe", "/greeting", "unset").await;
    assert_eq!(
        releases(&d, "probe")[2]["description"],
        "Remove GREETING config vars"
    );
    let bad = d.cli(&["config:set", "PORT=1", "-a", "probe"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr
            .contains("PORT, DYNO and WDYNO_* are set by the platform"),
        "{}",
        bad.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_procfiles_and_failing_builds_create_no_release() {
    let d = Daemon::start(&[]);
    d.cli(&["apps:create", "bad"]).ok();
    let cases = [
        (
            "web bin/web\n",
            "Procfile line 1, column 1: expected `name: command`, found \"web bin/web\" (no ':' after the process type)",
        ),
        (
            "web server: bin/web\n",
            "Procfile line 1, column 1: \"web server\" is not a valid process type name",
        ),
        (
            "web: bin/web\n\nweb: bin/web\n",
            "Procfile line 3, column 1: process type web is defined twice (first on line 1); keep one",
        ),
        (
            "web: bin/web\nworker: bin/server\n",
            "Procfile line 2, column 9: worker: bin/server — no component bin/server.wasm in the slug (built: bin/web.wasm, bin/worker.wasm)",
        ),
    ];
    for (procfile, message) in cases {
        let app = prebuilt(procfile);
        let out = deploy(&d, "bad", app.path());
        assert_eq!(out.code, 1, "{procfile:?} deployed: {}", out.stdout);
        assert!(out.stdout.contains(message), "{procfile:?}: {}", out.stdout);
        assert!(
            releases(&d, "bad").is_empty(),
            "{procfile:?} made a release"
        );
    }
    // A core module is not a component: the wasm buildpack says so.
    let core = prebuilt("web: bin/web\n");
    std::fs::write(core.path().join("bin/web.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let out = deploy(&d, "bad", core.path());
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("bin/web.wasm is a core wasm module, not a component"),
        "{}",
        out.stdout
    );
    // A Rust app that does not compile.
    let broken = app_copy("rust-http");
    std::fs::write(
        broken.path().join("src/main.rs"),
        "fn main() { this is not rust }\n",
    )
    .unwrap();
    let out = deploy(&d, "bad", broken.path());
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("cargo build failed"), "{}", out.stdout);
    assert!(releases(&d, "bad").is_empty());
    let builds = d.json(&["builds", "-a", "bad"]);
    assert_eq!(builds.as_array().unwrap().len(), 6);
    assert!(
        builds
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_release_phase_keeps_the_previous_release_live() {
    let d = Daemon::start(&[]);
    d.cli(&["apps:create", "phase"]).ok();
    let good = prebuilt("web: bin/web\nrelease: bin/worker write /tmp/migrated yes\n");
    let out = deploy(&d, "phase", good.path()).ok();
    assert!(
        out.stdout
            .contains("-----> Running release command `bin/worker write /tmp/migrated yes`"),
        "{}",
        out.stdout
    );
    d.answers("phase", "/", "hello from rust-http web.1").await;
    let bad = prebuilt("web: bin/web\nrelease: bin/worker exit 1\n");
    let out = deploy(&d, "phase", bad.path());
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("release phase failed (status 1): v2 was recorded as failed and is not live"),
        "{}",
        out.stdout
    );
    let rel = releases(&d, "phase");
    assert_eq!(
        (rel[0]["status"].as_str(), rel[1]["status"].as_str()),
        (Some("succeeded"), Some("failed"))
    );
    let ps = d.json(&["ps", "-a", "phase"]);
    assert_eq!(ps[0]["release"]["version"], 1, "dynos stay on v1");
    d.answers("phase", "/", "hello from rust-http web.1").await;
}

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_push_releases_a_good_app_and_rejects_a_broken_one() {
    let d = Daemon::start(&[]);
    d.cli(&["apps:create", "pushed"]).ok();
    let app = prebuilt("web: bin/web\n");
    let dir = app.path();
    assert!(git(dir, &["init", "-q", "-b", "main"]).status.success());
    git(dir, &["add", "."]);
    assert!(git(dir, &["commit", "-qm", "first"]).status.success());
    let out = d.cli_in(Some(dir), &["git:remote", "-a", "pushed"]).ok();
    assert!(
        out.stdout.starts_with("set git remote wdyno to "),
        "{}",
        out.stdout
    );
    let push = git(dir, &["push", "wdyno", "main"]);
    let err = String::from_utf8_lossy(&push.stderr);
    assert!(push.status.success(), "{err}");
    assert!(
        err.contains("remote: -----> WebAssembly app detected"),
        "{err}"
    );
    assert!(err.contains("remote:        Released v1"), "{err}");
    d.answers("pushed", "/", "hello from rust-http web.1").await;
    // Inside the checkout, -a is found from the remote.
    let rel = d.cli_in(Some(dir), &["releases"]).ok();
    assert!(
        rel.stdout
            .starts_with("=== pushed Releases - Current: v1\n\nv1  Deploy "),
        "{}",
        rel.stdout
    );

    std::fs::write(dir.join("Procfile"), "web: bin/nothing\n").unwrap();
    git(dir, &["commit", "-qam", "broken"]);
    let push = git(dir, &["push", "wdyno", "main"]);
    let err = String::from_utf8_lossy(&push.stderr);
    assert!(!push.status.success(), "a broken push was accepted: {err}");
    assert!(
        err.contains("remote:  !     Push rejected, failed to compile app."),
        "{err}"
    );
    assert!(
        err.contains("no component bin/nothing.wasm in the slug"),
        "{err}"
    );
    assert_eq!(releases(&d, "pushed").len(), 1);
}

/// Heroku deploys `git push heroku master` as well as `main`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_push_to_master_releases_too() {
    let d = Daemon::start(&[]);
    d.cli(&["apps:create", "mastered"]).ok();
    let app = prebuilt("web: bin/web\n");
    let dir = app.path();
    assert!(git(dir, &["init", "-q", "-b", "master"]).status.success());
    git(dir, &["add", "."]);
    assert!(git(dir, &["commit", "-qm", "first"]).status.success());
    d.cli_in(Some(dir), &["git:remote", "-a", "mastered"]).ok();
    let push = git(dir, &["push", "wdyno", "master"]);
    let err = String::from_utf8_lossy(&push.stderr);
    assert!(push.status.success(), "{err}");
    assert!(err.contains("remote:        Released v1"), "{err}");
    d.answers("mastered", "/", "hello from rust-http web.1")
        .await;
    // Another branch is not deployed, and says so.
    git(dir, &["checkout", "-qb", "topic"]);
    let push = git(dir, &["push", "wdyno", "topic"]);
    let err = String::from_utf8_lossy(&push.stderr);
    assert!(
        err.contains("remote: -----> Ignoring refs/heads/topic: only main (or master) is deployed"),
        "{err}"
    );
    assert_eq!(releases(&d, "mastered").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_buildpack_that_runs_too_long_is_stopped_with_its_last_output() {
    let d = Daemon::start(&["--compile-timeout", "2"]);
    let pack = tempfile::tempdir().unwrap();
    std::fs::create_dir(pack.path().join("bin")).unwrap();
    let script = |name: &str, body: &str| {
        let p = pack.path().join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("detect", "echo Slow; exit 0");
    script(
        "compile",
        "echo '-----> Thinking very hard'; exec sleep 600",
    );
    let pack_path = pack.path().to_str().unwrap();
    d.cli(&["apps:create", "slow", "--buildpack", pack_path])
        .ok();
    let app = prebuilt("web: bin/web\n");
    let started = Instant::now();
    let out = deploy(&d, "slow", app.path());
    assert_eq!(out.code, 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped at its timeout"
    );
    assert!(
        out.stdout.contains("-----> Slow app detected"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "buildpack {pack_path}: bin/compile ran past 2s and was stopped:"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(" !     -----> Thinking very hard"),
        "{}",
        out.stdout
    );
    assert!(releases(&d, "slow").is_empty());
    // An unknown buildpack is refused when named.
    let bad = d.cli(&["buildpacks:set", "cobol", "-a", "slow"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("buildpack \"cobol\" does not exist"),
        "{}",
        bad.stderr
    );
}
