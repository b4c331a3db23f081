//! The platform core, in process: one reconcile loop per app keeps exactly
//! the formation's dynos of the current release running whatever order
//! changes come in; `logs -n` returns exactly the newest lines; a deploy
//! prepares each component once.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::inproc::Inproc;
use common::{built_app, until, within};
use wdyno::logbus::{Event, LogFilter, Source};
use wdyno::names::{AppName, ConfigKey, ProcessType};

/// An app dir of ready components (the wasm buildpack packs them as they
/// are): the probe's web server and its command tool, with `marker`
/// written into the slug so each variant is a slug of its own.
fn prebuilt(dir: &Path, procfile: &str, marker: &str) {
    let probe = built_app("probe");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    for c in ["web", "probe"] {
        std::fs::copy(
            probe.join(format!("bin/{c}.wasm")),
            dir.join(format!("bin/{c}.wasm")),
        )
        .unwrap();
    }
    std::fs::write(dir.join("Procfile"), procfile).unwrap();
    std::fs::write(dir.join("marker.txt"), marker).unwrap();
}

const WEB_AND_WORKER: &str = "web: bin/web\nworker: bin/probe sleep 3600000\n";

fn name(s: &str) -> AppName {
    AppName::parse(s).unwrap()
}

fn ty(s: &str) -> ProcessType {
    ProcessType::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_changes_end_with_exactly_the_formation_on_the_current_release() {
    let p = Inproc::start().await;
    let app = name("busy");
    let base = tempfile::tempdir().unwrap();
    prebuilt(base.path(), WEB_AND_WORKER, "v1");
    p.create_and_deploy("busy", base.path()).await;
    let variants: Vec<tempfile::TempDir> = (0..4)
        .map(|i| {
            let d = tempfile::tempdir().unwrap();
            prebuilt(d.path(), WEB_AND_WORKER, &format!("variant {i}"));
            d
        })
        .collect();

    let s = p.service.clone();
    let ops = (0..20).map(|i| {
        let (s, app) = (s.clone(), app.clone());
        let dir = variants[i % 4].path().to_owned();
        async move {
            let r = match i % 5 {
                0 => s
                    .scale(
                        &app,
                        &BTreeMap::from([
                            (ty("web"), (i % 3) as u32 + 1),
                            (ty("worker"), (i % 2) as u32),
                        ]),
                    )
                    .await
                    .map(|_| ()),
                1 => s
                    .set_config(
                        &app,
                        &BTreeMap::from([(ConfigKey::parse("N").unwrap(), i.to_string())]),
                        &[],
                    )
                    .await
                    .map(|_| ()),
                2 => {
                    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
                    s.deploy(&app, &dir, "", tx).await.map(|_| ())
                }
                3 => s.rollback(&app, None).await.map(|_| ()),
                _ => s.restart(&app, None).await.map(|_| ()),
            };
            (i, r.err().map(|e| e.to_string()))
        }
    });
    let results = within(240, "20 concurrent changes", futures::future::join_all(ops)).await;
    for (i, err) in &results {
        if let Some(e) = err {
            // A rollback may find nothing earlier; nothing else may fail.
            assert_eq!(i % 5, 3, "change {i} failed: {e}");
        }
    }

    let current = s.current(&app).await.unwrap();
    let formation = s.formation(&app).await.unwrap();
    let (web, worker) = (formation.get("web"), formation.get("worker"));
    let want: Vec<String> = (1..=web)
        .map(|n| format!("web.{n}"))
        .chain((1..=worker).map(|n| format!("worker.{n}")))
        .collect();
    let slots = p.platform.runtime().slots();
    until(
        "exactly the formation's dynos, up, on the current release",
        60,
        || {
            let ps = s.manager().ps(&app);
            let names: Vec<&str> = ps.iter().map(|d| d.name.as_str()).collect();
            let all_current = ps
                .iter()
                .all(|d| d.release == current.version && d.state == "up");
            // Every dyno that was replaced or scaled away has stopped: the
            // host's slots in use are exactly the formation's.
            let no_orphan = slots.dynos_in_use() == web + worker;
            (names == want && all_current && no_orphan).then_some(())
        },
    )
    .await;

    let versions: Vec<u64> = s
        .releases(&app)
        .await
        .unwrap()
        .iter()
        .map(|r| r.version)
        .collect();
    let gap_free: Vec<u64> = (1..=versions.len() as u64).collect();
    assert_eq!(versions, gap_free, "release versions have no gap");
    assert!(
        versions.len() >= 1 + 4 + 4,
        "every config change and deploy made a release: {versions:?}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_n_1500_is_exactly_the_newest_lines_and_a_quiet_apps_tail_loses_nothing() {
    let p = Inproc::start().await;
    let dir = tempfile::tempdir().unwrap();
    prebuilt(dir.path(), "web: bin/web\n", "logs");
    p.create_and_deploy("loud", dir.path()).await;
    p.create_and_deploy("quiet", dir.path()).await;
    let (loud, quiet) = (name("loud"), name("quiet"));
    // Following the quiet app, and reading nothing until the flood is over.
    let mut tail = p
        .service
        .logs(&quiet, LogFilter::default(), 0, true)
        .await
        .unwrap();

    let run = p
        .service
        .run_detached(&loud, "bin/probe lines 5000", &BTreeMap::new())
        .await
        .unwrap();
    let lines = |app: &str, n: u64, source: Option<&str>, dyno: Option<&str>| {
        let api = p.api.clone();
        let app = app.to_owned();
        let session = wdyno::api::schema::LogSessionCreate {
            lines: Some(n),
            source: source.map(str::to_owned),
            dyno: dyno.map(str::to_owned),
            ..Default::default()
        };
        async move {
            let mut got = Vec::new();
            api.logs(&app, &session, &mut |l| got.push(l.to_owned()))
                .await
                .unwrap();
            got
        }
    };
    let exited = format!("wdyno[{run}]: Process exited with status 0");
    let mut all = Vec::new();
    for _ in 0..600 {
        all = lines("loud", 1500, None, None).await;
        if all.iter().any(|l| l.ends_with(&exited)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        all.iter().any(|l| l.ends_with(&exited)),
        "{run} never exited"
    );
    // Exactly the ring's newest 1500 lines, oldest first.
    let ring: Vec<String> = p
        .service
        .bus()
        .recent("loud", 1500)
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(ring.len(), 1500);
    assert_eq!(all, ring, "-n 1500 is the newest 1500 lines, in order");

    let own = lines("loud", 1000, Some("app"), Some(&run)).await;
    let text: Vec<String> = own
        .iter()
        .map(|l| l.split_once("]: ").expect("a log line").1.to_owned())
        .collect();
    let want: Vec<String> = (4001..=5000)
        .map(|i| {
            if i % 2 == 1 {
                format!("out {i}")
            } else {
                format!("err {i}")
            }
        })
        .collect();
    assert_eq!(
        text, want,
        "the newest 1000 of the dyno's own lines, oldest first"
    );

    p.service
        .run_detached(&quiet, "bin/probe lines 1", &BTreeMap::new())
        .await
        .unwrap();
    let first_own = within(30, "the quiet app's line", async {
        loop {
            match tail.next().await.expect("the tail goes on") {
                Event::Dropped(n) => panic!("the quiet app's tail lost {n} lines"),
                Event::Line(l) if l.source == Source::App && l.text == "out 1" => break l,
                Event::Line(l) => assert_eq!(l.app, "quiet", "{l}"),
            }
        }
    })
    .await;
    assert_eq!(first_own.app, "quiet");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_prepares_each_component_once_and_config_changes_prepare_none() {
    let p = Inproc::start().await;
    let runtime = p.platform.runtime().clone();
    let dir = tempfile::tempdir().unwrap();
    prebuilt(dir.path(), WEB_AND_WORKER, "once");
    let before = (runtime.compilations(), runtime.preparations());
    let app = name("once");
    p.create_and_deploy("once", dir.path()).await;
    p.service
        .scale(&app, &BTreeMap::from([(ty("web"), 2), (ty("worker"), 1)]))
        .await
        .unwrap();
    until("web=2 worker=1 up", 60, || {
        let ps = p.service.manager().ps(&app);
        (ps.len() == 3 && ps.iter().all(|d| d.state == "up")).then_some(())
    })
    .await;
    let after = (runtime.compilations(), runtime.preparations());
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (2, 2),
        "two components (web, probe): each compiled once and prepared once, by the build"
    );
    p.service
        .set_config(
            &app,
            &BTreeMap::from([(ConfigKey::parse("A").unwrap(), "1".into())]),
            &[],
        )
        .await
        .unwrap();
    p.service.restart(&app, None).await.unwrap();
    assert_eq!(
        runtime.preparations(),
        after.1,
        "a config change and a restart reuse the prepared components"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_phase_runs_on_config_changes_and_rollbacks_too() {
    let p = Inproc::start().await;
    let app = name("phased");
    let s = p.service.clone();
    let dir = tempfile::tempdir().unwrap();
    prebuilt(
        dir.path(),
        "web: bin/web\nrelease: bin/probe exit $CODE\n",
        "phase",
    );
    s.create_app(&app).await.unwrap();
    let code = |v: &str| BTreeMap::from([(ConfigKey::parse("CODE").unwrap(), v.to_owned())]);
    s.set_config(&app, &code("0"), &[]).await.unwrap();
    p.deploy("phased", dir.path()).await;
    let phases = || {
        s.bus()
            .recent("phased", 1500)
            .iter()
            .filter(|l| l.process.starts_with("release.") && l.text.starts_with("Starting process"))
            .count()
    };
    assert_eq!(phases(), 1, "the deploy ran its release phase");

    // A config change runs it again; its release goes live once it passed.
    let v3 = s.set_config(&app, &code("0"), &[]).await.unwrap();
    assert_eq!(
        (v3.version, v3.status.to_string().as_str()),
        (3, "succeeded")
    );
    assert_eq!(phases(), 2);

    // A phase that fails leaves the app on the release before.
    let err = s.set_config(&app, &code("3"), &[]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "release phase failed (status 3): v4 was recorded as failed and is not live; dynos stay on the previous release"
    );
    let current = s.current(&app).await.unwrap();
    assert_eq!((current.version, current.config["CODE"].as_str()), (3, "0"));
    assert_eq!(
        s.release(&app, 4).await.unwrap().status.to_string(),
        "failed"
    );

    // A rollback runs it too.
    let v5 = s.rollback(&app, Some(2)).await.unwrap();
    assert_eq!(
        (v5.version, v5.status.to_string().as_str()),
        (5, "succeeded")
    );
    assert_eq!(phases(), 4);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_formation_dyno_is_started_again() {
    let p = Inproc::start().await;
    let app = name("stopped");
    let dir = tempfile::tempdir().unwrap();
    prebuilt(dir.path(), "web: bin/web\n", "stop");
    p.create_and_deploy("stopped", dir.path()).await;
    let m = p.service.manager().clone();
    let first = until("web.1 up", 30, || {
        m.ps(&app)
            .into_iter()
            .find(|d| d.name == "web.1" && d.state == "up")
    })
    .await;
    p.service.stop(&app, "web.1").await.unwrap();
    until("a new web.1 up", 30, || {
        m.ps(&app)
            .into_iter()
            .find(|d| d.name == "web.1" && d.state == "up" && d.updated_at > first.updated_at)
    })
    .await;
    let err = p.service.stop(&app, "web.9").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "stopped has no dyno web.9. Run `wdyno ps -a stopped` to list them."
    );
    p.stop().await;
}

/// What a raw connection to `addr` is answered to `request` (read to EOF).
async fn raw_answer(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(request).await;
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_answers_503_past_its_connection_cap_and_serves_again_below_it() {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = wdyno::router::RouterConfig {
        max_connections: 2,
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(wdyno::router::serve(
        listener,
        wdyno::router::RouteTable::new(),
        wdyno::logbus::LocalBus::shared(),
        cfg,
        async {
            let _ = stopped.await;
        },
    ));
    let ask = b"GET / HTTP/1.1\r\nHost: nothing.localhost\r\nConnection: close\r\n\r\n";

    // Two clients that send nothing hold both connections.
    let first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let third = within(5, "the third connection's answer", raw_answer(addr, ask)).await;
    assert!(
        third.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{third}"
    );
    assert!(third.contains("connection: close\r\n"), "{third}");
    assert!(third.contains("<h1>Application error</h1>"), "{third}");

    // Below the cap again, a request is routed (to no app: 404).
    drop(first);
    let answer = within(5, "a connection below the cap", async {
        loop {
            let a = raw_answer(addr, ask).await;
            if !a.starts_with("HTTP/1.1 503") {
                return a;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    drop(second);
    let _ = stop.send(());
    within(10, "the router's shutdown", serving).await.unwrap();
}
