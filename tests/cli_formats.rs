//! wdyno's own CLI through the everyday commands of `tests/heroku.rs`,
//! printing what Heroku's CLI prints: `ps`, `releases`, `ps:scale`,
//! `apps:info`, `open`, `app[api]` log lines; and an attached `wdyno run`
//! whose client goes away takes its one-off dyno with it.

mod common;

use std::process::{Command, Stdio};

use common::daemon::Daemon;
use common::probe_app::{
    deploy, following, fresh_web_dynos, one_off_gone, one_off_up, probe_components, run_name,
    tail_sees, web_1_started_again, web_started,
};
use common::{stdout_lines, until, within};

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
             Buildpacks:  detected at each build\n\
             Dynos:       web: 1\n\
             Git URL:     {git_url}\n\
             Owner:       {email}\n\
             Region:      local\n\
             Routing:     random\n\
             Sleep after: off\n\
             Stack:       wasi-0.2\n\
             Web URL:     {web_url}\n"
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
    let rx = following(&mut tail).await;
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
    let run = run_name(&out);
    assert_eq!(
        out,
        format!(
            "Running bin/probe exit 0 on probe... up, {run}\nRun `wdyno logs -a probe --dyno {run}` to view the output.\n"
        )
    );
    let want = format!("app[{run}]: exiting 0");
    tail_sees(&rx, &want).await;
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
