//! Cluster mode against a real NATS cluster: joining, the flags, the
//! credentials in a URL, and the ledger's stream leader killed during a
//! deploy (`cluster_hosts.rs` has the three hosts' behaviour).

mod common;

use std::time::Duration;

use common::cluster::three_hosts;
use common::nats::{NatsCluster, nats_server_or_skip};
use common::probe_app::probe_components;
use common::until;
use wdyno::cluster::{Cluster, ClusterConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_joins_and_a_kv_write_is_compare_and_set() {
    let Some(bin) = nats_server_or_skip("a_host_joins_and_a_kv_write_is_compare_and_set") else {
        return;
    };
    let nats = NatsCluster::start(&bin, 3);
    let cfg = ClusterConfig::parse(&nats.urls(), "a").unwrap();
    let c = Cluster::connect(&cfg).await.unwrap();
    assert_eq!(c.replicas(), 3);
    // Given one server's URL, a host still learns the cluster has three.
    let one = ClusterConfig::parse(&nats.servers[0].url(), "b").unwrap();
    assert_eq!(Cluster::connect(&one).await.unwrap().replicas(), 3);
    let kv = c.kv("wdyno-smoke", Duration::ZERO).await.unwrap();
    let r1 = kv.create("k", "1".into()).await.unwrap();
    assert!(
        kv.create("k", "2".into()).await.is_err(),
        "create of an existing key"
    );
    kv.update("k", "2".into(), r1).await.unwrap();
    assert!(
        kv.update("k", "3".into(), r1).await.is_err(),
        "a stale revision"
    );
    assert_eq!(kv.get("k").await.unwrap().unwrap(), "2");
}

#[test]
fn a_bad_cluster_or_host_flag_says_what_to_give() {
    let e = ClusterConfig::parse(" , ", "a").unwrap_err().to_string();
    assert!(e.contains("names no NATS server"), "{e}");
    let e = ClusterConfig::parse("nats://127.0.0.1:4222", "a.b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a host name"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_ledgers_stream_leader_during_a_deploy_commits_it_or_fails_it_clearly() {
    let Some(bin) = nats_server_or_skip("killing_the_ledgers_stream_leader_during_a_deploy") else {
        return;
    };
    let mut nats = NatsCluster::start(&bin, 3);
    let hosts = three_hosts(&nats);
    hosts[0].cli(&["apps:create", "probe"]).ok();
    let watcher = Cluster::connect(&ClusterConfig::parse(&nats.urls(), "watcher").unwrap())
        .await
        .unwrap();
    let leader = common::nats::stream_leader(&watcher, "KV_wdyno-ledger").await;
    let app = probe_components();
    let deploy = {
        let (home, dir) = (hosts[0].home().to_owned(), app.path().to_owned());
        std::thread::spawn(move || {
            std::process::Command::new(common::daemon::WDYNO)
                .args(["deploy", dir.to_str().unwrap(), "-a", "probe"])
                .env("WDYNO_HOME", home)
                .output()
                .unwrap()
        })
    };
    // Once the build is recorded, the release is what is left to write.
    until("the build recorded", 60, || {
        let b = hosts[1].cli(&["builds", "-a", "probe", "--json"]);
        (b.code == 0 && b.stdout.contains("\"id\"")).then_some(())
    })
    .await;
    nats.servers[leader].kill();
    let out = deploy.join().unwrap();
    // The build's output and its end, error included, are on stdout.
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    nats.restart(leader);
    let releases = until("the releases readable again", 60, || {
        let r = hosts[2].cli(&["releases", "-a", "probe", "--json"]);
        (r.code == 0).then(|| serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap())
    })
    .await;
    let versions: Vec<u64> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    eprintln!(
        "deploy while the ledger's stream leader n{leader} was killed: {}",
        if out.status.success() {
            "committed"
        } else {
            "failed, clearly"
        }
    );
    if out.status.success() {
        assert_eq!(versions, [1], "the deploy's one release");
        for d in &hosts {
            d.answers("probe", "/", "hello from web.1").await;
        }
    } else {
        assert!(
            said.contains(" !     the cluster's") && said.contains("majority of the NATS servers"),
            "a failed deploy says what failed and what to check: {said}"
        );
        assert!(versions.len() <= 1, "at most the one release: {versions:?}");
        // Whatever it left is whole: deploying again works.
        hosts[1]
            .cli(&["deploy", app.path().to_str().unwrap(), "-a", "probe"])
            .ok();
        for d in &hosts {
            d.answers("probe", "/", "hello from web.1").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_cluster_url_are_honoured() {
    let Some(bin) = nats_server_or_skip("credentials_in_the_cluster_url_are_honoured") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = common::nats::free_ports(1)[0];
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = std::process::Command::new(&bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["--user", "wdyno", "--pass", "s3cret", "-sd"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = Killed(server);
    let url = format!("nats://wdyno:s3cret@127.0.0.1:{port}");
    let c = Cluster::connect(&ClusterConfig::parse(&url, "a").unwrap())
        .await
        .unwrap();
    let kv = c.kv("wdyno-smoke", Duration::ZERO).await.unwrap();
    kv.put("k", "v".into()).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().unwrap(), "v");
}
