//! The cluster's log bus and slug store against a real 3-server NATS
//! cluster: each host connects to a server of its own, so every line and
//! every slug crosses the servers' routes.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::nats::{NatsCluster, nats_server_or_skip};
use common::{until, within};
use sha2::{Digest, Sha256};
use wdyno::cluster::{Cluster, ClusterConfig};
use wdyno::logbus::{Event, LOG_RING_LINES, LogBus, LogFilter, LogLine, Source, StreamBus};
use wdyno::slug::{Limits, ObjectSlugs, SlugDir, SlugError, SlugId, SlugStore};

/// Host `name` of the cluster, on server `i` alone.
async fn host(nats: &NatsCluster, i: usize, name: &str) -> Cluster {
    let cfg = ClusterConfig::parse(&nats.servers[i].url(), name).unwrap();
    Cluster::connect(&cfg).await.unwrap()
}

async fn bus(nats: &NatsCluster, i: usize, name: &str) -> Arc<StreamBus> {
    StreamBus::open(&host(nats, i, name).await).await.unwrap()
}

fn texts(bus: &StreamBus, app: &str) -> Vec<String> {
    bus.recent(app, 2 * LOG_RING_LINES)
        .iter()
        .map(|l| l.text.clone())
        .collect()
}

/// Waits until `bus` holds exactly the lines `want` of `app` (40 s: a
/// killed server's streams elect new leaders and the mirror's consumer
/// notices, slower on a loaded machine).
async fn until_lines(bus: &StreamBus, app: &str, want: &[&str], what: &str) {
    until(what, 40, || (texts(bus, app) == want).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_reaches_every_host_with_every_field_and_a_later_host_gets_the_backlog() {
    let Some(bin) = nats_server_or_skip("a_line_reaches_every_host") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let (a, b) = (bus(&nats, 0, "a").await, bus(&nats, 1, "b").await);
    a.open("shop");
    b.open("shop");
    let mut follower = b.subscribe("shop", LogFilter::default(), 10, true);

    let line = LogLine::now(
        "shop",
        Source::App,
        "web.1",
        "GET /cart 200 — ünïcode\tand a tab",
    );
    a.publish(line.clone());
    let got = within(10, "the line on host b", follower.next()).await;
    let Some(Event::Line(got)) = got else {
        panic!("host b's follower got {got:?}, not the line");
    };
    assert_eq!(*got, line, "every field, the time to the nanosecond");
    until("the line in host a's own mirror", 10, || {
        (a.recent("shop", 10)
            .iter()
            .map(|l| (**l).clone())
            .collect::<Vec<_>>()
            == [line.clone()])
        .then_some(())
    })
    .await;

    // Open returns once the mirror holds the stream's backlog.
    let c = bus(&nats, 2, "c").await;
    c.open("shop");
    let backlog: Vec<LogLine> = c.recent("shop", 10).iter().map(|l| (**l).clone()).collect();
    assert_eq!(backlog, [line]);
    assert_eq!(a.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_keeps_exactly_its_last_1500_lines_on_every_host() {
    let Some(bin) = nats_server_or_skip("each_app_keeps_exactly_its_last_1500_lines") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let (a, b) = (bus(&nats, 0, "a").await, bus(&nats, 1, "b").await);
    a.open("busy");
    b.open("busy");
    for i in 0..1600 {
        a.publish(LogLine::now(
            "busy",
            Source::App,
            "web.1",
            &format!("line {i}"),
        ));
    }
    let want: Vec<String> = (100..1600).map(|i| format!("line {i}")).collect();
    until("host b to hold lines 100..1600", 20, || {
        (texts(&b, "busy") == want).then_some(())
    })
    .await;
    until("host a to hold lines 100..1600", 20, || {
        (texts(&a, "busy") == want).then_some(())
    })
    .await;
    assert_eq!(a.dropped(), 0);

    // The stream itself keeps no more than that: a host that joins later
    // gets the same 1500, no older line.
    let c = bus(&nats, 2, "c").await;
    assert_eq!(texts(&c, "busy"), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_an_unopened_or_forgotten_app_never_come_back() {
    let Some(bin) = nats_server_or_skip("lines_of_an_unopened_or_forgotten_app") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let a_host = host(&nats, 0, "a").await;
    let a = StreamBus::open(&a_host).await.unwrap();
    let b = bus(&nats, 1, "b").await;
    for bus in [&a, &b] {
        bus.open("kept");
        bus.open("gone");
    }
    let line = |app: &str, text: &str| LogLine::now(app, Source::App, "web.1", text);

    // Unopened: dropped at publish, on every host, before the stream.
    a.publish(line("ghost", "made up"));
    b.publish(line("ghost", "made up too"));
    a.publish(line("gone", "old 1"));
    a.publish(line("gone", "old 2"));
    a.publish(line("kept", "after the ghost"));
    b.publish(line("kept", "after b's ghost"));
    until_lines(&b, "gone", &["old 1", "old 2"], "old lines on host b").await;
    until("both kept lines on host a", 15, || {
        (texts(&a, "kept").len() == 2).then_some(())
    })
    .await;
    for bus in [&a, &b] {
        assert!(!bus.is_open("ghost"));
        assert!(bus.recent("ghost", 10).is_empty());
    }
    let stream = a_host.jetstream().get_stream("wdyno-logs").await.unwrap();
    let ghosts = stream.info_with_subjects("wdyno.logs.ghost").await.unwrap();
    let ghosts: Vec<_> = futures::StreamExt::collect::<Vec<_>>(ghosts).await;
    assert!(ghosts.is_empty(), "ghost lines in the stream: {ghosts:?}");
    let kept = stream.info_with_subjects("wdyno.logs.kept").await.unwrap();
    let kept: Vec<_> = futures::StreamExt::collect::<Vec<_>>(kept).await;
    assert_eq!(kept.len(), 1, "the subject of an opened app: {kept:?}");

    // Forgotten on host a: gone there at once, then on host b, whose
    // follower ends; a successor of the same name starts empty everywhere.
    let mut b_follower = b.subscribe("gone", LogFilter::default(), 0, true);
    a.forget("gone");
    assert!(!a.is_open("gone"));
    assert!(a.recent("gone", 10).is_empty());
    let end = within(
        10,
        "host b's follower of the forgotten app",
        b_follower.next(),
    )
    .await;
    assert!(end.is_none(), "host b's follower got {end:?}");
    assert!(b.is_open("gone"), "host b did not forget the app itself");
    assert!(b.recent("gone", 10).is_empty());

    a.open("gone");
    a.publish(line("gone", "new 1"));
    until_lines(&b, "gone", &["new 1"], "the successor's line on host b").await;
    until_lines(&a, "gone", &["new 1"], "the successor's line on host a").await;
    let c = bus(&nats, 2, "c").await;
    c.open("gone");
    assert_eq!(texts(&c, "gone"), ["new 1"], "a later host's backlog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_reconnects_misses_no_line_and_repeats_none() {
    let Some(bin) = nats_server_or_skip("a_mirror_that_reconnects_misses_no_line") else {
        return;
    };
    let mut nats = NatsCluster::start(&bin, 3);
    // Host a, on every server, makes the stream R3 and fails over; host b
    // is on server 1 alone, which goes down and comes back.
    let a_cfg = ClusterConfig::parse(&nats.urls(), "a").unwrap();
    let a = StreamBus::open(&Cluster::connect(&a_cfg).await.unwrap())
        .await
        .unwrap();
    let b = bus(&nats, 1, "b").await;
    a.open("steady");
    b.open("steady");
    let line = |text: &str| LogLine::now("steady", Source::App, "web.1", text);
    a.publish(line("before 1"));
    a.publish(line("before 2"));
    until_lines(
        &b,
        "steady",
        &["before 1", "before 2"],
        "lines before the outage",
    )
    .await;

    nats.servers[1].kill();
    until_lines(&a, "steady", &["before 1", "before 2"], "host a's mirror").await;
    a.publish(line("during"));
    until_lines(
        &a,
        "steady",
        &["before 1", "before 2", "during"],
        "host a, server 1 down",
    )
    .await;
    nats.restart(1);
    a.publish(line("after"));
    let want = ["before 1", "before 2", "during", "after"];
    until("host b to catch up after the restart", 40, || {
        (texts(&b, "steady") == want).then_some(())
    })
    .await;
    assert_eq!(texts(&a, "steady"), want);
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn sha256_id(bytes: &[u8]) -> SlugId {
    SlugId::parse(&hex::encode(Sha256::digest(bytes))).unwrap()
}

/// Every file in `dir` (names only), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slug_put_on_one_host_unpacks_verified_on_another() {
    let Some(bin) = nats_server_or_skip("a_slug_put_on_one_host_unpacks_verified") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    let wasm: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write(&app.join("bin/server.wasm"), &wasm);
    write(&app.join("Procfile"), b"web: bin/server.wasm\n");
    let (a_host, b_host) = (host(&nats, 0, "a").await, host(&nats, 1, "b").await);
    let cache = |name: &str| SlugDir::open(tmp.path().join(name), Limits::default()).unwrap();
    let a = ObjectSlugs::open(&a_host, cache("cache-a")).await.unwrap();
    let b = ObjectSlugs::open(&b_host, cache("cache-b")).await.unwrap();

    let (id, _size) = a.put(&app).await.unwrap();
    let out = tmp.path().join("out1");
    b.unpack(&id, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("bin/server.wasm")).unwrap(), wasm);
    assert_eq!(
        std::fs::read(out.join("Procfile")).unwrap(),
        b"web: bin/server.wasm\n"
    );
    assert!(b.cache().exists(&id), "host b caches what it unpacked");

    // A corrupt cached copy is thrown away and downloaded again.
    std::fs::write(b.cache().path(&id), b"garbage").unwrap();
    let out = tmp.path().join("out2");
    b.unpack(&id, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("bin/server.wasm")).unwrap(), wasm);
    b.cache().verify(&id).unwrap();

    // An object whose bytes are not what its name says is refused, and
    // nothing of it stays in the cache.
    let store = a_host
        .jetstream()
        .get_object_store("wdyno-slugs")
        .await
        .unwrap();
    let liar = sha256_id(b"the real slug");
    store
        .put(liar.as_str(), &mut &b"something else"[..])
        .await
        .unwrap();
    let out = tmp.path().join("out3");
    let err = b.unpack(&liar, &out).await.unwrap_err();
    assert!(
        matches!(&err, SlugError::DigestMismatch { expected, .. } if *expected == liar),
        "{err:?}"
    );
    assert!(err.to_string().contains("is corrupt"), "{err}");
    assert!(!out.exists());
    assert_eq!(
        files(b.cache().path(&id).parent().unwrap()),
        [format!("{id}.tar.zst")]
    );

    // A slug no host stored says so.
    let err = b
        .unpack(&sha256_id(b"never built"), &out)
        .await
        .unwrap_err();
    assert!(matches!(err, SlugError::Missing(_)), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_replaces_a_stored_object_that_does_not_match_its_name() {
    let Some(bin) = nats_server_or_skip("a_put_replaces_a_stored_object") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    write(&app.join("Procfile"), b"worker: bin/job.wasm\n");
    write(&app.join("bin/job.wasm"), b"\0asm\x01\0\0\0");
    let (a_host, b_host) = (host(&nats, 0, "a").await, host(&nats, 1, "b").await);
    let cache = |name: &str| SlugDir::open(tmp.path().join(name), Limits::default()).unwrap();
    let a = ObjectSlugs::open(&a_host, cache("cache-a")).await.unwrap();
    let b = ObjectSlugs::open(&b_host, cache("cache-b")).await.unwrap();

    // The slug's id, learnt from a local pack; then bad bytes under it.
    let (id, _) = SlugStore::put(&cache("probe"), &app).await.unwrap();
    let store = a_host
        .jetstream()
        .get_object_store("wdyno-slugs")
        .await
        .unwrap();
    store.put(id.as_str(), &mut &b"bad"[..]).await.unwrap();
    assert!(matches!(
        b.unpack(&id, &tmp.path().join("out1")).await,
        Err(SlugError::DigestMismatch { .. })
    ));

    // Redeploying the same app fixes it, as the error message promises.
    assert_eq!(a.put(&app).await.unwrap().0, id);
    let out = tmp.path().join("out2");
    b.unpack(&id, &out).await.unwrap();
    assert_eq!(
        std::fs::read(out.join("Procfile")).unwrap(),
        b"worker: bin/job.wasm\n"
    );
}
