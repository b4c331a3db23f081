//! The official `heroku` CLI (11.x, from npm) drives a real daemon, as a
//! Heroku user would point it at wdyno: `HEROKU_HOST` at the API,
//! `HEROKU_API_KEY` the token. Each command's output and its effect on
//! the platform are checked.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::daemon::{Daemon, Out};
use common::probe_app::{
    deploy, dyno_names, following, fresh_web_dynos, one_off_gone, one_off_up, probe_components,
    run_name, tail_sees, web_1_started_again, web_started,
};
use common::{repo, until};
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
    let rx = following(&mut tail).await;
    let out = h.ok(&["run:detached", "bin/probe exit 0", "-a", "probe"]);
    let run = run_name(&all(&out));
    let want = format!("app[{run}]: exiting 0");
    tail_sees(&rx, &want).await;
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

    // labs: the app's feature, found after the account has none.
    let out = h.ok(&["labs:enable", "log-runtime-metrics", "-a", "probe"]);
    assert!(
        all(&out).contains("Enabling log-runtime-metrics for probe... done"),
        "{}",
        all(&out)
    );
    let out = h.ok(&["labs", "-a", "probe"]);
    assert!(
        out.stdout.contains("=== App Features probe"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("[+] log-runtime-metrics"),
        "{}",
        out.stdout
    );
    h.ok(&["labs:disable", "log-runtime-metrics", "-a", "probe"]);
    let out = h.ok(&["labs", "-a", "probe"]);
    assert!(
        out.stdout.contains("[ ] log-runtime-metrics"),
        "{}",
        out.stdout
    );

    // drains: added, listed with their token, removed by URL.
    let url = "syslog+tls://logs.example.com:6514";
    let out = h.ok(&["drains:add", url, "-a", "probe"]);
    assert_eq!(out.stdout.trim(), format!("Successfully added drain {url}"));
    let token = d.api_get("/apps/probe/log-drains")[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = h.ok(&["drains", "-a", "probe"]);
    assert!(out.stdout.contains("=== Drains"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{url} ({token})")),
        "{}",
        out.stdout
    );
    let out = h.ok(&["drains:remove", url, "-a", "probe"]);
    assert_eq!(
        out.stdout.trim(),
        format!("Successfully removed drain {url}")
    );
    assert_eq!(d.api_get("/apps/probe/log-drains"), serde_json::json!([]));

    // apps:destroy: gone from the platform.
    h.ok(&["apps:destroy", "-a", &generated, "--confirm", &generated]);
    h.ok(&["apps:destroy", "-a", "probe", "--confirm", "probe"]);
    assert_eq!(d.api_get("/apps"), serde_json::json!([]));
    assert_eq!(d.get("probe", "/").await.0, 404);
}
