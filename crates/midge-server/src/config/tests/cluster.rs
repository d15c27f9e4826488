//! The `cluster_*` directives: a node's whole configuration read into its settings, nothing
//! without `cluster_name`, and every incomplete or bad cluster line refused with its place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use midge_cluster::{ClusterConfig, NetsplitAllow, SyncPolicy};

use super::{error, parse};

#[test]
fn without_cluster_name_the_broker_is_a_single_node() {
    assert_eq!(parse("listener 1883\n").cluster, None);
}

#[test]
fn a_supervised_node_reads_every_option() {
    let config = parse(
        "listener 1883\n\
         cluster_name prod-eu1\n\
         cluster_node_id n2\n\
         cluster_nats_server /usr/bin/nats-server\n\
         cluster_nats_listen 10.0.0.2:4222\n\
         cluster_nats_cluster_listen 10.0.0.2:6222\n\
         cluster_nats_routes 10.0.0.1:6222 nats-route://10.0.0.3:6222\n\
         cluster_nats_store /var/lib/midge/jetstream\n\
         cluster_nats_monitor 127.0.0.1:8222\n\
         cluster_replicas 3\n\
         cluster_sync 200\n\
         cluster_node_down_grace 45s\n\
         cluster_heartbeat_interval 500ms\n\
         cluster_peer_window 1024\n\
         cluster_netsplit_allow none\n\
         cluster_queue_shards 4\n\
         cluster_queue_max_age 2d\n\
         cluster_checkpoint_interval 250ms\n",
    );
    let cluster = config.cluster.expect("a cluster");
    let mut want = ClusterConfig::new("prod-eu1", "n2");
    want.sync = SyncPolicy::Every(Duration::from_millis(200));
    want.node_down_grace = Duration::from_secs(45);
    want.heartbeat_interval = Duration::from_millis(500);
    want.peer_window = 1024;
    want.netsplit_allow = NetsplitAllow::None;
    want.queue_shards = 4;
    want.queue_max_age = Duration::from_secs(2 * 86_400);
    want.checkpoint_interval = Duration::from_millis(250);
    want.nats_server = Some(midge_cluster::NatsServerConfig {
        executable: PathBuf::from("/usr/bin/nats-server"),
        listen: "10.0.0.2:4222".parse::<SocketAddr>().unwrap(),
        cluster_listen: Some("10.0.0.2:6222".parse().unwrap()),
        routes: vec!["10.0.0.1:6222".into(), "nats-route://10.0.0.3:6222".into()],
        store: Some(PathBuf::from("/var/lib/midge/jetstream")),
        monitor: Some("127.0.0.1:8222".parse().unwrap()),
    });
    assert_eq!(cluster, want);
    assert_eq!(cluster.urls(), vec!["nats://10.0.0.2:4222".to_owned()]);
}

#[test]
fn a_node_on_an_existing_nats_reads_its_urls_and_credentials() {
    let cluster = parse(
        "cluster_name c\ncluster_node_id a\n\
         cluster_nats_url nats://10.0.0.2:4222 tls://10.0.0.1:4222\n\
         cluster_nats_url nats://10.0.0.3:4222\n\
         cluster_nats_username midge\ncluster_nats_password secret words\n",
    )
    .cluster
    .expect("a cluster");
    assert_eq!(cluster.nats_urls.len(), 3);
    assert_eq!(cluster.nats_user, Some(("midge".into(), "secret words".into())));
    assert_eq!(cluster.nats_server, None);
    assert_eq!(cluster.replicas, 3, "default");
    assert_eq!(cluster.sync, SyncPolicy::Always, "default");
}

#[test]
fn incomplete_clusters_name_the_line_and_what_is_missing() {
    assert_eq!(
        error("listener 1883\ncluster_node_id n1\n"),
        "test.conf:2: cluster_node_id: a cluster node needs a `cluster_name` line"
    );
    assert_eq!(
        error("cluster_name c\ncluster_nats_url nats://x:4222\n"),
        "test.conf:1: cluster_name: a cluster node needs a `cluster_node_id` line"
    );
    assert_eq!(
        error("cluster_name c\ncluster_node_id n1\n"),
        "test.conf:1: cluster_name: a cluster node needs a `cluster_nats_url` or `cluster_nats_server` line"
    );
    assert_eq!(
        error(
            "cluster_name c\ncluster_node_id n1\ncluster_nats_url nats://x:4222\ncluster_nats_username u\n"
        ),
        "test.conf:1: cluster_name: a cluster node needs a pair of `cluster_nats_username` and `cluster_nats_password` lines"
    );
}

#[test]
fn bad_cluster_values_are_refused_with_their_line() {
    assert_eq!(
        error("cluster_name has.dot\n"),
        "test.conf:1: cluster_name: expected a name of 1 to 32 letters, digits, '-' or '_', got \"has.dot\""
    );
    assert_eq!(
        error("cluster_nats_url 10.0.0.1:4222\n"),
        "test.conf:1: cluster_nats_url: expected a URL such as nats://10.0.0.2:4222, got \"10.0.0.1:4222\""
    );
    assert_eq!(
        error("cluster_nats_routes 10.0.0.1\n"),
        "test.conf:1: cluster_nats_routes: expected HOST:PORT of another node's cluster_nats_cluster_listen, got \"10.0.0.1\""
    );
    assert_eq!(
        error("cluster_sync sometimes\n"),
        "test.conf:1: cluster_sync: expected always, or milliseconds from 1 to 600000, got \"sometimes\""
    );
    assert_eq!(
        error("cluster_replicas 7\n"),
        "test.conf:1: cluster_replicas: expected a number from 1 to 5, got \"7\""
    );
    assert_eq!(
        error("cluster_node_down_grace 2d\n"),
        "test.conf:1: cluster_node_down_grace: expected a duration up to a day such as 500ms, 30s, 2m or 1h, got \"2d\""
    );
    assert_eq!(
        error("cluster_queue_shards 0\n"),
        "test.conf:1: cluster_queue_shards: expected a number from 1 to 64, got \"0\""
    );
    assert_eq!(
        error("cluster_queue_max_age 400d\n"),
        "test.conf:1: cluster_queue_max_age: expected a duration up to a year such as 12h or 7d, got \"400d\""
    );
    assert_eq!(
        error("cluster_netsplit_allow all\n"),
        "test.conf:1: cluster_netsplit_allow: expected none or publish, got \"all\""
    );
}
