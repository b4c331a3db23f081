//! Every example deploys through its buildpack and answers (web) or logs
//! (worker); `wdyno local` serves an example until Ctrl-C.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{Daemon, WDYNO};
use common::{repo, stdout_lines};

fn logs(d: &Daemon, app: &str, ps: &str) -> Vec<String> {
    let out = d
        .cli(&[
            "logs", "-a", app, "--ps", ps, "--source", "app", "-n", "1500",
        ])
        .ok();
    out.stdout
        .lines()
        .map(|l| l.split("]: ").nth(1).unwrap_or("").to_owned())
        .collect()
}

async fn until_logged(d: &Daemon, app: &str, ps: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !logs(d, app, ps).iter().any(|l| l == want) {
        assert!(
            Instant::now() < deadline,
            "{app} {ps} never logged {want:?}: {:?}",
            logs(d, app, ps)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_deploys_and_answers_or_logs() {
    let d = Daemon::start(&[]);
    for app in [
        "rust-web",
        "rust-http",
        "js-web",
        "js-express",
        "rust-worker",
        "prebuilt",
    ] {
        let out = d.create_and_deploy(app, &repo().join("examples").join(app));
        assert!(out.stdout.contains("Released v1"), "{app}: {}", out.stdout);
    }
    d.answers("rust-web", "/", "Hello from rust-web on web.1\n")
        .await;
    d.answers("rust-http", "/", "Hello from rust-http on web.1\n")
        .await;
    d.answers("js-web", "/", "Hello from js-web\n").await;
    d.answers("js-express", "/", "Hello from js-express on web.1\n")
        .await;
    assert_eq!(
        d.get("js-express", "/hello/you").await,
        (200, "Hello, you!\n".to_owned())
    );
    d.answers("prebuilt", "/", "Hello from rust-http on web.1\n")
        .await;
    // rust-web: its release step ran, config vars and /tmp work.
    let release = logs(&d, "rust-web", "release");
    assert_eq!(release, ["migrating for release v1... done"]);
    d.cli(&["config:set", "GREETING=Howdy", "-a", "rust-web"])
        .ok();
    d.answers("rust-web", "/", "Howdy from rust-web on web.1\n")
        .await;
    assert_eq!(
        d.get("rust-web", "/visits").await,
        (200, "1 visits to web.1\n".to_owned())
    );
    assert_eq!(
        d.get("rust-web", "/visits").await,
        (200, "2 visits to web.1\n".to_owned())
    );
    // Workers log.
    d.cli(&["ps:scale", "worker=1", "-a", "rust-web"]).ok();
    until_logged(&d, "rust-web", "worker.1", "worker: finished job 1").await;
    d.cli(&["ps:scale", "worker=1", "-a", "rust-worker"]).ok();
    until_logged(
        &d,
        "rust-worker",
        "worker.1",
        "worker started on queue default",
    )
    .await;
    until_logged(
        &d,
        "rust-worker",
        "worker.1",
        "processed message 1 from default",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wdyno_local_serves_an_example_until_interrupted() {
    let home = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(WDYNO)
        .args(["local", "examples/rust-web", "--port", "0"])
        .current_dir(repo())
        .env("HOME", home.path())
        .env(
            "XDG_CACHE_HOME",
            common::daemon::build_cache()
                .parent()
                .unwrap()
                .join("local-cache"),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut child);
    let port: u16 = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("wdyno local says where it serves");
        if let Some(rest) = l.strip_prefix("-----> rust-web on http://rust-web.localhost:") {
            break rest.split(' ').next().unwrap().parse().unwrap();
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = common::Client::connect(port).await;
        let got = c.get_host("rust-web.localhost", "/").await;
        if got == (200, "Hello from rust-web on web.1\n".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: kill(2) on our own child: Ctrl-C.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Everything it printed up to its exit (the reader ends at EOF).
    let rest: Vec<String> = rx.iter().collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("web.1 wdyno  | State changed from stopping to down")),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.contains("worker.1 wdyno | Process exited with status 143")),
        "{rest:?}"
    );
}
