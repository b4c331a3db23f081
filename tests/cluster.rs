//! Cluster mode against a real 3-server NATS cluster.

mod common;

use std::time::Duration;

use common::nats::{NatsCluster, nats_server_or_skip};
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
