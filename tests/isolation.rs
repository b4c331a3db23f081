//! A dyno sees only its own files, its own env and its own `$PORT`.

mod common;

use std::time::Duration;

use common::{Host, built_app, probe, within};
use wdyno::dyno::State;

#[tokio::test]
async fn dyno_cannot_see_another_dynos_files_and_restart_starts_clean() {
    let mut host = Host::new("iso");
    let app = built_app("probe");
    let mut lines = host.subscribe();
    let a = host.start(
        &app,
        "worker.1",
        &[
            "bin/probe",
            "write",
            "/app/mine.txt",
            "A",
            ",",
            "write",
            "/tmp/mine.txt",
            "A",
            ",",
            "read",
            "/app/mine.txt",
            ",",
            "sleep",
            "600000",
        ],
        false,
    );
    // worker.1 has written both files and read one back.
    lines
        .wait_for(Duration::from_secs(30), |l| {
            l.process == "worker.1" && l.text == "A"
        })
        .await;
    assert!(a.work_dir.join("app/mine.txt").is_file());

    let seen = probe(
        &mut host,
        "worker.2",
        &[
            "read",
            "/app/mine.txt",
            ",",
            "read",
            "/tmp/mine.txt",
            ",",
            "ls",
            "/tmp",
        ],
    )
    .await;
    assert_eq!(seen, ["error: NotFound", "error: NotFound"]);

    // Restart worker.1: its writes are gone, the slug's files are back.
    a.dyno.stop();
    within(10, "worker.1 stops", a.dyno.wait()).await;
    assert!(!a.work_dir.exists(), "a stopped dyno's files are removed");
    let again = probe(
        &mut host,
        "worker.1",
        &[
            "read",
            "/app/mine.txt",
            ",",
            "ls",
            "/tmp",
            ",",
            "ls",
            "/app/bin",
        ],
    )
    .await;
    // The first run's three lines, then the restarted dyno's own.
    assert_eq!(
        &again[3..],
        ["error: NotFound", "drain.wasm", "probe.wasm", "web.wasm"]
    );
}

#[tokio::test]
async fn dyno_sees_only_app_and_tmp_and_no_host_path() {
    let mut host = Host::new("iso");
    let out = probe(
        &mut host,
        "run.1",
        &[
            "ls",
            "/",
            ",",
            "read",
            "/etc/passwd",
            ",",
            "read",
            "/app/../../../../etc/passwd",
            ",",
            "read",
            "../../../etc/passwd",
            ",",
            "symlink",
            "/etc/passwd",
            "/app/abs-link",
            ",",
            "read",
            "/app/abs-link",
            ",",
            "symlink",
            "../../../../../etc/passwd",
            "/app/rel-link",
            ",",
            "read",
            "/app/rel-link",
            ",",
            "ls",
            "/app/..",
            ",",
        ],
    )
    .await;
    assert_eq!(out[0], "app");
    assert_eq!(out[1], "tmp");
    let rest = &out[2..];
    assert_eq!(rest.len(), 9, "{rest:?}");
    // Every read of a host path fails; no line shows passwd's contents.
    for (i, line) in rest.iter().enumerate() {
        assert!(
            !line.contains("root:"),
            "line {i} leaked the host's /etc/passwd: {line}"
        );
    }
    assert!(rest[0].starts_with("error: "), "{rest:?}");
    assert!(rest[1].starts_with("error: "), "{rest:?}");
    assert!(rest[2].starts_with("error: "), "{rest:?}");
    // Creating a link may be allowed, following it out of the tree is not.
    assert!(rest[4].starts_with("error: "), "{rest:?}");
    assert!(rest[6].starts_with("error: "), "{rest:?}");
    // `..` from /app is the dyno's own root.
    assert_eq!(&rest[7..], ["app", "tmp"]);
}

#[tokio::test]
async fn env_holds_exactly_config_and_platform_vars() {
    // SAFETY: set before any dyno of this test starts; other tests in this
    // binary only read the env through their dynos, which must not see it.
    unsafe { std::env::set_var("WDYNO_TEST_SECRET", "hunter2") };
    let mut host = Host::new("envapp");
    host.config.insert("GREETING".into(), "hi there".into());
    host.config
        .insert("DATABASE_URL".into(), "postgres://x".into());
    let out = probe(&mut host, "worker.3", &["env"]).await;
    assert_eq!(
        out,
        [
            "DATABASE_URL=postgres://x",
            "DYNO=worker.3",
            "GREETING=hi there",
            "WDYNO_APP=envapp",
            "WDYNO_RELEASE_VERSION=7",
        ]
    );
}

#[tokio::test]
async fn dyno_binds_only_its_port_and_reaches_no_platform_or_dyno_port() {
    binds_only_its_port(false).await;
}

#[tokio::test]
async fn with_port_in_memory_a_dyno_binds_only_its_port_and_reaches_no_platform_or_dyno_port() {
    binds_only_its_port(true).await;
}

/// web.2 binds `$PORT` (and fails another), then tries web.1's `$PORT`,
/// the API and a service on the network.
async fn binds_only_its_port(in_memory: bool) {
    let mut host = Host::new("net");
    host.in_memory = in_memory;
    let app = built_app("probe");
    // A platform port (the control API, say) and an ordinary host service.
    let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api_port = api.local_addr().unwrap().port();
    host.ports.reserve(api_port);
    // An ordinary service on the network (loopback ones are fenced off:
    // tests/fence.rs).
    let net = common::network_address();
    let outside = std::net::TcpListener::bind((net, 0)).unwrap();
    let outside_port = outside.local_addr().unwrap().port();

    let web = host.start(&app, "web.1", &["bin/web"], true);
    assert_eq!(within(30, "web.1 up", web.dyno.wait_up()).await, State::Up);
    let other = web.port.unwrap();
    let lease = host.ports.lease().unwrap();
    let free = lease.port();
    drop(lease);

    let started = host.start(
        &app,
        "web.2",
        &[
            "bin/probe",
            "bind",
            "$PORT",
            ",",
            "bind",
            &free.to_string(),
            ",",
            "connect",
            &format!("127.0.0.1:{other}"),
            ",",
            "connect",
            &format!("127.0.0.1:{api_port}"),
            ",",
            "connect",
            &format!("0.0.0.0:{api_port}"),
            ",",
            "connect",
            &std::net::SocketAddr::new(net, outside_port).to_string(),
        ],
        true,
    );
    let exit = within(30, "probe exits", started.dyno.wait()).await;
    assert_eq!(exit.status, 0, "{:?}", host.lines("web.2"));
    let out = host.output("web.2");
    assert_eq!(out.len(), 6, "{out:?}");
    assert_eq!(out[0], "ok", "binding $PORT");
    assert!(
        out[1].starts_with("error: "),
        "binding another port: {}",
        out[1]
    );
    assert!(
        out[2].starts_with("error: "),
        "connecting to web.1: {}",
        out[2]
    );
    assert!(
        out[3].starts_with("error: "),
        "connecting to the API: {}",
        out[3]
    );
    assert!(
        out[4].starts_with("error: "),
        "connecting to the API via 0.0.0.0: {}",
        out[4]
    );
    assert_eq!(out[5], "ok", "egress to a non-platform port is allowed");
    web.dyno.stop();
    within(10, "web.1 stops", web.dyno.wait()).await;
}

#[tokio::test]
async fn egress_off_refuses_every_connection() {
    let mut host = Host::new("net");
    host.egress = false;
    let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = outside.local_addr().unwrap().port();
    let out = probe(
        &mut host,
        "worker.1",
        &["connect", &format!("127.0.0.1:{port}")],
    )
    .await;
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("error: "), "{out:?}");
}

#[tokio::test]
async fn fixed_seed_and_clock_give_the_same_run_twice() {
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let mut host = Host::new("det");
        host.determinism = wdyno::dyno::Determinism {
            wall_clock_start: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            seed: Some(42),
        };
        outputs.push(probe(&mut host, "worker.1", &["random", ",", "now"]).await);
    }
    assert_eq!(outputs[0][0], outputs[1][0], "same random bytes");
    assert!(
        outputs[0][1].starts_with("1800000000"),
        "fixed wall clock: {:?}",
        outputs[0]
    );
    let mut host = Host::new("det");
    host.determinism.seed = Some(43);
    let other = probe(&mut host, "worker.1", &["random"]).await;
    assert_ne!(other[0], outputs[0][0], "another seed, other bytes");
}
