//! How the router spreads an app's requests: `random` (Heroku's) and
//! `least-connections`, set with `apps:update --routing`.

mod common;

use common::daemon::Daemon;
use common::probe_app::probe_components;
use common::until;

/// The `dyno=` of each router line for `path`, oldest first.
fn routed_to(d: &Daemon, path: &str) -> Vec<String> {
    let out = d
        .cli(&["logs", "-a", "probe", "-n", "1500", "--ps", "router"])
        .ok();
    let want = format!(" path=\"{path}\" ");
    out.stdout
        .lines()
        .filter(|l| l.contains(&want))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("dyno="))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_keeps_requests_off_a_busy_dyno() {
    let mut d = Daemon::start(&["--router-seed", "3"]);
    let dir = probe_components();
    d.create_and_deploy("probe", dir.path());
    d.cli(&["ps:scale", "web=2", "-a", "probe"]).ok();
    until("two web dynos up", 60, || d.all_up("probe", 2)).await;

    let out = d.cli(&["apps:info", "-a", "probe"]).ok();
    assert!(
        out.stdout.contains("Routing:     random\n"),
        "{}",
        out.stdout
    );
    let out = d
        .cli(&[
            "apps:update",
            "--routing",
            "least-connections",
            "-a",
            "probe",
        ])
        .ok();
    assert_eq!(out.stdout, "Routing of probe: least-connections\n");
    // Kept across a restart of the platform.
    d.restart();
    until("two web dynos up again", 60, || d.all_up("probe", 2)).await;
    let out = d.cli(&["apps:info", "-a", "probe"]).ok();
    assert!(
        out.stdout.contains("Routing:     least-connections\n"),
        "{}",
        out.stdout
    );

    // One request that never ends holds a dyno; every other request goes
    // to the free one.
    let router = d.router;
    let hang = tokio::spawn(async move {
        let mut c = common::Client::connect(router).await;
        c.get_host("probe.localhost", "/hang").await
    });
    // The dyno says it has it: from then on it has one in flight.
    let busy = until("the hanging request in flight", 20, || {
        let out = d.cli(&["logs", "-a", "probe", "-n", "1500"]).ok();
        out.stdout
            .lines()
            .filter(|l| l.ends_with("]: hanging"))
            .find_map(|l| {
                l.split_once("app[")?
                    .1
                    .split_once(']')
                    .map(|(dyno, _)| dyno.to_owned())
            })
    })
    .await;
    let mut c = common::Client::connect(d.router).await;
    for _ in 0..40 {
        let (status, _) = c.get_host("probe.localhost", "/").await;
        assert_eq!(status, 200);
    }
    let quick = until("the 40 router lines", 20, || {
        let r = routed_to(&d, "/");
        (r.len() >= 40).then_some(r)
    })
    .await;
    let quick = &quick[quick.len() - 40..];
    assert!(
        quick.iter().all(|x| *x != busy),
        "least-connections sent requests to {busy}, busy with one in flight: {quick:?}"
    );
    hang.abort();
}
