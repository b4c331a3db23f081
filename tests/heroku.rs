//! The official `heroku` CLI (11.x, from npm) drives a real daemon, as a
//! Heroku user would point it at wdyno: `HEROKU_HOST` at the API,
//! `HEROKU_API_KEY` the token. Each command's output and its effect on
//! the platform are checked.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::daemon::{Daemon, Out};
use common::{repo, stdout_lines, until, within};
use serde_json::Value;

/// `heroku` installed once under `target/` (later runs reuse it), or
/// `None` when npm cannot reach its registry (the reason is printed).
fn heroku_cli() -> Option<PathBuf> {
    let dir = repo().join("target").join("heroku-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    lock.lock().unwrap();
    let bin = dir.join("node_modules/heroku/bin/run.js");
    let installed = std::fs::read_to_string(dir.join("node_modules/heroku/package.json"))
        .ok()
        .and_then(|p| serde_json::from_str::<Value>(&p).ok())
        .is_some_and(|p| p["version"].as_str().is_some_and(|v| v.starts_with("11.")));
    if installed && bin.exists() {
        return Some(bin);
    }
    let out = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "heroku@11",
        ])
        .current_dir(&dir)
        .output()
        .expect("npm runs");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let offline = [
            "ENOTFOUND",
            "EAI_AGAIN",
            "ECONNREFUSED",
            "ETIMEDOUT",
            "ENETUNREACH",
        ]
        .iter()
        .any(|code| err.contains(code));
        if offline {
            println!("skipped: npm cannot reach its registry to install heroku@11: {err}");
            return None;
        }
        panic!("npm install heroku@11 failed: {err}");
    }
    assert!(
        bin.exists(),
        "heroku@11 installed without {}",
        bin.display()
    );
    Some(bin)
}

/// Runs the `heroku` CLI against the daemon.
struct Heroku {
    bin: PathBuf,
    api: String,
    token: String,
    home: tempfile::TempDir,
}

impl Heroku {
    fn new(bin: PathBuf, d: &Daemon) -> Heroku {
        let read = |f: &str| std::fs::read_to_string(d.home().join(f)).unwrap();
        Heroku {
            bin,
            api: read("api").trim().to_owned(),
            token: read("api-token").trim().to_owned(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("node");
        c.arg(&self.bin)
            .args(args)
            .current_dir(self.home.path())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("XDG_DATA_HOME", self.home.path().join(".local/share"))
            .env("XDG_CACHE_HOME", self.home.path().join(".cache"))
            .env("HEROKU_HOST", &self.api)
            .env("HEROKU_API_KEY", &self.token)
            .env("DISABLE_TELEMETRY", "true")
            .env("HEROKU_DISABLE_AUTOUPDATE", "1")
            .env("HEROKU_SKIP_NEW_VERSION_CHECK", "1")
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .env("TERM", "dumb")
            .stdin(Stdio::null());
        c
    }

    /// `heroku ARGS…`; it must succeed.
    fn ok(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().unwrap();
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_eq!(
            out.code, 0,
            "heroku {args:?} failed:\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        out
    }
}

/// stdout and stderr together (the CLI says progress on stderr).
fn all(out: &Out) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

fn dyno_names(d: &Daemon, app: &str) -> Vec<String> {
    let mut names: Vec<String> = d
        .ps(app)
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The web dynos' start times, by name.
fn web_started(d: &Daemon, app: &str) -> Vec<(String, String)> {
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
fn probe_components() -> tempfile::TempDir {
    let built = common::built_app("probe");
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
fn run_name(said: &str) -> String {
    said.split_whitespace()
        .find(|w| w.starts_with("run."))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_digit()).to_owned())
        .unwrap_or_else(|| panic!("no run.N in {said}"))
}

/// Waits until both web dynos are new ones (started after `before`).
async fn fresh_web_dynos(d: &Daemon, before: &[(String, String)]) {
    until("fresh web dynos", 30, || {
        let now = web_started(d, "probe");
        (now.len() == 2 && now.iter().zip(before).all(|(n, b)| n.1 != b.1)).then_some(())
    })
    .await;
}

/// Waits until a stopped `web.1` runs again (a new start time).
async fn web_1_started_again(d: &Daemon, before: &[(String, String)]) {
    until("web.1 started again", 30, || {
        let now = web_started(d, "probe");
        (now.len() == 2 && now[0].0 == "web.1" && now[0].1 != before[0].1).then_some(())
    })
    .await;
}

async fn one_off_up(d: &Daemon, run: &str) {
    until("the one-off up", 30, || {
        d.ps("probe")
            .iter()
            .any(|x| x["name"] == run && x["state"] == "up")
            .then_some(())
    })
    .await;
}

async fn one_off_gone(d: &Daemon, run: &str, what: &str) {
    until(what, 30, || {
        (!dyno_names(d, "probe").contains(&run.to_owned())).then_some(())
    })
    .await;
}

fn deploy(d: &Daemon, app: &str, dir: &Path) {
    d.cli(&["deploy", dir.to_str().unwrap(), "-a", app]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heroku_cli_drives_wdyno() {
    let Some(bin) = heroku_cli() else { return };
    let d = Daemon::start(&[]);
    let h = Heroku::new(bin, &d);
    let email = d.api_get("/account")["email"].as_str().unwrap().to_owned();
    let web_url = format!("http://probe.localhost:{}/", d.router);

    // apps:create, with a name and without one.
    let out = h.ok(&["apps:create", "probe"]);
    let git_url = d.home().join("repos/probe.git").display().to_string();
    // The web URL is the router's real one (the git URL beside it the CLI
    // makes up from HEROKU_HOST itself).
    assert!(
        out.stdout.starts_with(&format!("{web_url} | ")),
        "{}",
        all(&out)
    );
    let out = h.ok(&["apps:create"]);
    let apps = d.api_get("/apps");
    let names: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let generated = names.iter().find(|n| **n != "probe").unwrap().to_string();
    let parts: Vec<&str> = generated.split('-').collect();
    assert!(
        parts.len() == 3 && parts[2].len() == 5 && parts[2].parse::<u32>().is_ok(),
        "a made-up name is adjective-noun-NNNNN: {generated}"
    );
    assert!(all(&out).contains(&generated), "{}", all(&out));

    // apps: both, under the account.
    let out = h.ok(&["apps"]);
    assert!(
        out.stdout.contains(&format!("=== {email} Apps")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\nprobe (local)\n"), "{}", out.stdout);
    assert!(out.stdout.contains(&generated), "{}", out.stdout);

    let app_dir = probe_components();
    deploy(&d, "probe", app_dir.path());
    d.answers("probe", "/greeting", "unset").await;

    // apps:info.
    let out = h.ok(&["apps:info", "-a", "probe"]);
    for want in [
        "Git URL:".to_string(),
        git_url.clone(),
        "Owner:".to_string(),
        email.clone(),
        "Web URL:".to_string(),
        web_url.clone(),
        "Dynos:".into(),
        "web: 1".into(),
    ] {
        assert!(
            out.stdout.contains(&want),
            "apps:info lacks {want:?}:\n{}",
            out.stdout
        );
    }

    // ps, then ps:scale web=2 (and two web dynos run), ps:scale alone.
    let out = h.ok(&["ps", "-a", "probe"]);
    assert!(
        out.stdout
            .contains("=== web (Basic): bin/web (1)\n\nweb.1: up "),
        "{}",
        out.stdout
    );
    let out = h.ok(&["ps:scale", "web=2", "-a", "probe"]);
    assert!(
        all(&out).contains("done, now running web at 2:Basic"),
        "{}",
        all(&out)
    );
    until("web=2 up", 30, || d.all_up("probe", 2)).await;
    assert_eq!(dyno_names(&d, "probe"), ["web.1", "web.2"]);
    let out = h.ok(&["ps:scale", "-a", "probe"]);
    assert_eq!(out.stdout, "drain=0:Basic probe=0:Basic web=2:Basic\n");

    // config:set prints the version it made; config:get, config:unset.
    let out = h.ok(&["config:set", "GREETING=hi", "-a", "probe"]);
    assert!(all(&out).contains("done, v2"), "{}", all(&out));
    assert!(out.stdout.contains("GREETING: hi"), "{}", out.stdout);
    d.answers("probe", "/greeting", "hi").await;
    assert_eq!(
        h.ok(&["config:get", "GREETING", "-a", "probe"]).stdout,
        "hi\n"
    );
    let out = h.ok(&["config:set", "GREETING=hello", "-a", "probe"]);
    assert!(all(&out).contains("done, v3"), "{}", all(&out));
    let out = h.ok(&["config:unset", "GREETING", "-a", "probe"]);
    assert!(all(&out).contains("done, v4"), "{}", all(&out));
    d.answers("probe", "/greeting", "unset").await;

    // releases shows the current one; releases:info by version.
    let out = h.ok(&["releases", "-a", "probe"]);
    assert!(
        out.stdout.contains("Releases - Current: v4"),
        "{}",
        out.stdout
    );
    let v4 = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("v4 "))
        .unwrap_or_else(|| panic!("no v4 line: {}", out.stdout));
    assert!(v4.contains("Remove GREETING config vars"), "{v4}");
    assert!(v4.contains(&email), "{v4}");
    assert!(
        out.stdout.contains("Set GREETING config vars"),
        "{}",
        out.stdout
    );
    let out = h.ok(&["releases:info", "v2", "-a", "probe"]);
    assert!(out.stdout.contains("=== Release v2"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Set GREETING config vars"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("GREETING: hi"), "{}", out.stdout);

    // releases:rollback v2: a new release with v2's config serves it.
    let out = h.ok(&["releases:rollback", "v2", "-a", "probe"]);
    assert!(all(&out).contains("done, v5"), "{}", all(&out));
    d.answers("probe", "/greeting", "hi").await;
    let v5 = d.api_get("/apps/probe/releases/5");
    assert_eq!(
        (v5["description"].as_str(), v5["current"].as_bool()),
        (Some("Rollback to v2"), Some(true))
    );

    // logs -n 20: the newest 20, app[api] lines among them.
    let out = h.ok(&["logs", "-n", "20", "-a", "probe"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 20, "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("app[api]: Rollback to v2 by user {email}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("app[api]: Release v5 created by user {email}")),
        "{}",
        out.stdout
    );

    // logs --tail: a line made after it started arrives; run:detached
    // makes it.
    let mut tail = h
        .command(&["logs", "--tail", "-n", "1", "-a", "probe"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut tail);
    within(30, "the tail's first line", async {
        rx.recv().unwrap();
    })
    .await;
    let out = h.ok(&["run:detached", "bin/probe exit 0", "-a", "probe"]);
    let run = run_name(&all(&out));
    let want = format!("app[{run}]: exiting 0");
    within(30, "the one-off's line in the tail", async {
        loop {
            let line = rx.recv().expect("the tail goes on");
            if line.ends_with(&want) {
                break;
            }
        }
    })
    .await;
    let _ = tail.kill();
    let _ = tail.wait();

    // ps:restart (all), ps:restart web: fresh web dynos each time.
    for args in [
        &["ps:restart", "-a", "probe"][..],
        &["ps:restart", "web", "-a", "probe"],
    ] {
        let before = web_started(&d, "probe");
        h.ok(args);
        fresh_web_dynos(&d, &before).await;
    }

    // ps:stop web.1: it is started again, as on Heroku.
    let before = web_started(&d, "probe");
    let out = h.ok(&["ps:stop", "web.1", "-a", "probe"]);
    assert!(all(&out).contains("Stopping dyno web.1"), "{}", all(&out));
    web_1_started_again(&d, &before).await;

    // ps:stop run.N: a one-off is found by name and ends.
    let out = h.ok(&["run:detached", "bin/probe sleep 600000", "-a", "probe"]);
    let run = run_name(&all(&out));
    one_off_up(&d, &run).await;
    let out = h.ok(&["ps", "-a", "probe"]);
    assert!(
        out.stdout.contains(&format!(
            "=== run: one-off processes (1)\n\n{run} (Basic): up "
        )),
        "{}",
        out.stdout
    );
    h.ok(&["ps:stop", &run, "-a", "probe"]);
    one_off_gone(&d, &run, "the one-off gone").await;

    // apps:destroy: gone from the platform.
    h.ok(&["apps:destroy", "-a", &generated, "--confirm", &generated]);
    h.ok(&["apps:destroy", "-a", "probe", "--confirm", "probe"]);
    assert_eq!(d.api_get("/apps"), serde_json::json!([]));
    assert_eq!(d.get("probe", "/").await.0, 404);
}

/// The same everyday commands through wdyno's own CLI, in Heroku's output
/// formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wdynos_own_cli_does_the_same_in_herokus_formats() {
    let d = Daemon::start(&[]);
    let email = d.api_get("/account")["email"].as_str().unwrap().to_owned();
    let web_url = format!("http://probe.localhost:{}/", d.router);
    let git_url = d.home().join("repos/probe.git").display().to_string();

    assert_eq!(
        d.cli(&["apps:create", "probe"]).ok().stdout,
        format!("Creating probe... done\n{web_url} | {git_url}\n")
    );
    let out = d.cli(&["apps:create"]).ok().stdout;
    let generated = out
        .strip_prefix("Creating ")
        .and_then(|rest| rest.split_once("... done\n"))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        out.ends_with(&format!(
            "http://{generated}.localhost:{}/ | {}\n",
            d.router,
            d.home().join(format!("repos/{generated}.git")).display()
        )),
        "{out}"
    );
    let mut names = [generated.as_str(), "probe"];
    names.sort();
    assert_eq!(
        d.cli(&["apps"]).ok().stdout,
        format!("=== Apps\n{}\n", names.join("\n"))
    );

    let app_dir = probe_components();
    deploy(&d, "probe", app_dir.path());
    d.answers("probe", "/greeting", "unset").await;
    assert_eq!(
        d.cli(&["apps:info", "-a", "probe"]).ok().stdout,
        format!(
            "=== probe\n\
             Buildpacks: detected at each build\n\
             Dynos:      web: 1\n\
             Git URL:    {git_url}\n\
             Owner:      {email}\n\
             Region:     local\n\
             Stack:      wasi-0.2\n\
             Web URL:    {web_url}\n"
        )
    );
    assert_eq!(
        d.cli(&["open", "-a", "probe"]).ok().stdout,
        format!("{web_url}\n")
    );

    let ps = d.cli(&["ps", "-a", "probe"]).ok().stdout;
    assert!(
        ps.starts_with("=== web (Basic): bin/web (1)\n\nweb.1: up "),
        "{ps}"
    );
    assert_eq!(
        d.cli(&["ps:scale", "web=2", "-a", "probe"]).ok().stdout,
        "Scaling dynos... done, now running web at 2:Basic\n"
    );
    until("web=2 up", 30, || d.all_up("probe", 2)).await;
    assert_eq!(
        d.cli(&["ps:scale", "-a", "probe"]).ok().stdout,
        "drain=0:Basic probe=0:Basic web=2:Basic\n"
    );

    assert_eq!(
        d.cli(&["config:set", "GREETING=hi", "-a", "probe"])
            .ok()
            .stdout,
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
        d.cli(&["config:unset", "GREETING", "-a", "probe"])
            .ok()
            .stdout,
        "Unsetting GREETING and restarting probe... done, v3\n"
    );

    let releases = d.cli(&["releases", "-a", "probe"]).ok().stdout;
    let lines: Vec<&str> = releases.lines().collect();
    assert_eq!(lines[..2], ["=== probe Releases - Current: v3", ""]);
    assert!(
        lines[2].starts_with(&format!("v3  Remove GREETING config vars  {email}  ")),
        "{releases}"
    );
    assert!(
        lines[3].starts_with(&format!("v2  Set GREETING config vars     {email}  ")),
        "{releases}"
    );
    let info = d.cli(&["releases:info", "v2", "-a", "probe"]).ok().stdout;
    assert!(
        info.starts_with(&format!(
            "=== Release v2\nBy:      {email}\nChange:  Set GREETING config vars\nCurrent: false\nStatus:  succeeded\n"
        )),
        "{info}"
    );
    assert!(
        info.ends_with("\n=== v2 Config vars\nGREETING: hi\n"),
        "{info}"
    );
    assert_eq!(
        d.cli(&["releases:rollback", "v2", "-a", "probe"])
            .ok()
            .stdout,
        "Rolling back probe... done, v4\nRollback to v2\n"
    );
    d.answers("probe", "/greeting", "hi").await;

    let logs = d.cli(&["logs", "-n", "20", "-a", "probe"]).ok().stdout;
    assert_eq!(logs.lines().count(), 20, "{logs}");
    for want in [
        format!("app[api]: Rollback to v2 by user {email}"),
        format!("app[api]: Release v4 created by user {email}"),
    ] {
        assert!(logs.contains(&want), "no {want:?} in {logs}");
    }
    let all_logs = d.cli(&["logs", "-n", "1500", "-a", "probe"]).ok().stdout;
    for want in [
        format!("app[api]: Scaled to web@2:Basic by user {email}"),
        format!("app[api]: Set GREETING config vars by user {email}"),
        format!("app[api]: Remove GREETING config vars by user {email}"),
    ] {
        assert!(all_logs.contains(&want), "no {want:?} in {all_logs}");
    }

    // logs --tail: a line made after it started arrives.
    let mut tail = Command::new(common::daemon::WDYNO)
        .args(["logs", "--tail", "-n", "1", "-a", "probe"])
        .env("WDYNO_HOME", d.home())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut tail);
    within(30, "the tail's first line", async {
        rx.recv().unwrap();
    })
    .await;
    let out = d
        .cli(&[
            "run:detached",
            "-a",
            "probe",
            "--",
            "bin/probe",
            "exit",
            "0",
        ])
        .ok()
        .stdout;
    let run = out
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_owned();
    assert_eq!(
        out,
        format!(
            "Running bin/probe exit 0 on probe... up, {run}\nRun `wdyno logs -a probe --dyno {run}` to view the output.\n"
        )
    );
    let want = format!("app[{run}]: exiting 0");
    within(30, "the one-off's line in the tail", async {
        while !rx.recv().expect("the tail goes on").ends_with(&want) {}
    })
    .await;
    let _ = tail.kill();
    let _ = tail.wait();

    for (args, said) in [
        (
            &["ps:restart", "-a", "probe"][..],
            "Restarting all dynos on probe... done\n",
        ),
        (
            &["ps:restart", "web", "-a", "probe"],
            "Restarting web dynos on probe... done\n",
        ),
    ] {
        let before = web_started(&d, "probe");
        assert_eq!(d.cli(args).ok().stdout, said);
        fresh_web_dynos(&d, &before).await;
    }
    let before = web_started(&d, "probe");
    assert_eq!(
        d.cli(&["ps:stop", "web.1", "-a", "probe"]).ok().stdout,
        "Stopping web.1 dyno on probe... done\n"
    );
    web_1_started_again(&d, &before).await;

    // ps:stop run.N finds a one-off; `wdyno run` that goes away stops its.
    let run = d.run_detached("probe", &["bin/probe", "sleep", "600000"]);
    one_off_up(&d, &run).await;
    let ps = d.cli(&["ps", "-a", "probe"]).ok().stdout;
    assert!(
        ps.starts_with(&format!(
            "=== run: one-off processes (1)\n\n{run} (Basic): up "
        )),
        "{ps}"
    );
    assert!(
        ps.contains(": bin/probe sleep 600000\n\n=== web (Basic): bin/web (2)\n\n"),
        "{ps}"
    );
    d.cli(&["ps:stop", &run, "-a", "probe"]).ok();
    one_off_gone(&d, &run, "the one-off gone").await;

    let mut attached = Command::new(common::daemon::WDYNO)
        .args(["run", "-a", "probe", "--", "bin/probe", "sleep", "600000"])
        .env("WDYNO_HOME", d.home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let said = stdout_lines(&mut attached);
    let first = within(30, "the attached run's first line", async {
        said.recv().unwrap()
    })
    .await;
    let run = first.rsplit(' ').next().unwrap().to_owned();
    assert!(
        first.starts_with("Running bin/probe sleep 600000 on probe... up, run."),
        "{first}"
    );
    one_off_up(&d, &run).await;
    // Ctrl-C: the client goes, and so does its dyno.
    unsafe { libc::kill(attached.id() as i32, libc::SIGINT) };
    let _ = attached.wait();
    one_off_gone(&d, &run, "the attached one-off stopped with its client").await;

    d.cli(&["apps:destroy", &generated, "--confirm", &generated])
        .ok();
    assert_eq!(
        d.cli(&["apps:destroy", "probe", "--confirm", "probe"])
            .ok()
            .stdout,
        "Destroying probe... done\n"
    );
    assert_eq!(d.cli(&["apps"]).ok().stdout, "=== Apps\n");
}
