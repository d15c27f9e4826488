//! `GET /metrics`: the broker's counters in the OpenMetrics text format Prometheus scrapes,
//! rendered with `prometheus-client` from the live counters at each scrape (no second set of
//! counters to keep in step). Names start with `midge_`; counters end in `_total`.
//!
//! Per listener (label `listener`, its place in the configuration, with `address` and
//! `protocol`): the connections open now. Connection refusals by limit, drops by reason and
//! access refusals by kind are labelled families. In a cluster, `midge_cluster_*`: links,
//! forwarded and dropped messages, claims, takeovers and adoptions, and each other node's
//! state (label `node`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use midge_core::{DropReason, Stats};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::error::{ApiError, ErrorBody};
use super::routes::AppState;
use crate::limits::ConnectionCounters;

/// The content type of OpenMetrics text.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Counter::<u64>::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Gauge::<i64>::default();
    metric.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, metric);
}

fn counter_family(registry: &mut Registry, name: &str, help: &str, values: Vec<(Labels, u64)>) {
    let family = Family::<Labels, Counter<u64>>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).inc_by(value);
    }
    registry.register(name, help, family);
}

/// The registry of one scrape.
pub(crate) fn registry(state: &AppState) -> Registry {
    let mut r = Registry::with_prefix("midge");
    let broker = &state.broker;
    let stats = broker.stats();
    let census = broker.census();
    let get = Stats::get;
    let conn = &state.counters;

    let info = Family::<Labels, Gauge<i64>>::default();
    info.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
        .set(1);
    r.register("build_info", "The running Midge's version", info);
    gauge(
        &mut r,
        "uptime_seconds",
        "Seconds since the broker started",
        state.started.elapsed().as_secs(),
    );

    gauge(
        &mut r,
        "sessions",
        "Sessions held, connected or not",
        census.sessions as u64,
    );
    gauge(
        &mut r,
        "clients_connected",
        "Clients connected now",
        census.connected as u64,
    );
    gauge(
        &mut r,
        "connections_parked",
        "Idle connections parked off the runtime (plain sockets idle for a second)",
        crate::connection::parked_connections() as u64,
    );
    gauge(
        &mut r,
        "subscriptions",
        "Subscriptions, shared ones included",
        census.subscriptions as u64,
    );
    gauge(
        &mut r,
        "shared_subscriptions",
        "Shared subscriptions",
        census.shared_subscriptions as u64,
    );
    gauge(
        &mut r,
        "retained_messages",
        "Retained messages held",
        census.retained as u64,
    );
    gauge(
        &mut r,
        "retained_bytes",
        "Topic and payload bytes of the retained messages",
        census.retained_bytes,
    );
    gauge(
        &mut r,
        "queued_messages",
        "Messages queued or in flight for sessions",
        census.queued as u64,
    );
    gauge(
        &mut r,
        "queued_bytes",
        "Topic and payload bytes of the queued messages",
        census.queued_bytes,
    );

    counter(
        &mut r,
        "publish_received",
        "PUBLISH packets received from clients",
        get(&stats.publish_received),
    );
    counter(
        &mut r,
        "publish_sent",
        "PUBLISH packets sent to clients",
        get(&stats.publish_sent),
    );
    counter(
        &mut r,
        "publish_received_bytes",
        "Payload bytes of the PUBLISH packets received",
        get(&stats.publish_bytes_received),
    );
    counter(
        &mut r,
        "publish_sent_bytes",
        "Payload bytes of the PUBLISH packets sent",
        get(&stats.publish_bytes_sent),
    );
    counter(
        &mut r,
        "packets_received",
        "MQTT packets received",
        get(&stats.packets_received),
    );
    counter(
        &mut r,
        "packets_sent",
        "MQTT packets sent",
        get(&stats.packets_sent),
    );
    counter(
        &mut r,
        "bytes_received",
        "Bytes read from client connections",
        get(&stats.bytes_received),
    );
    counter(
        &mut r,
        "bytes_sent",
        "Bytes written to client connections",
        get(&stats.bytes_sent),
    );
    counter(&mut r, "connects", "CONNECTs accepted", get(&stats.connects));
    counter(
        &mut r,
        "connects_refused",
        "CONNECTs refused with a CONNACK error",
        get(&stats.connects_refused),
    );
    counter(
        &mut r,
        "sessions_expired",
        "Sessions ended by their expiry interval",
        get(&stats.sessions_expired),
    );
    counter_family(
        &mut r,
        "messages_dropped",
        "Messages not delivered to a subscriber, by reason",
        DropReason::ALL
            .iter()
            .map(|reason| {
                (
                    vec![("reason", reason.as_str().to_owned())],
                    stats.dropped_count(*reason),
                )
            })
            .collect(),
    );
    counter_family(
        &mut r,
        "access_denied",
        "Operations the access rules refused: publish, subscribe, read (deliveries withheld)",
        vec![
            (
                vec![("operation", "publish".to_owned())],
                get(&stats.denied_write),
            ),
            (
                vec![("operation", "subscribe".to_owned())],
                get(&stats.denied_subscribe),
            ),
            (vec![("operation", "read".to_owned())], get(&stats.denied_read)),
        ],
    );

    let cget = ConnectionCounters::get;
    counter(
        &mut r,
        "connections_accepted",
        "Sockets accepted, refused ones included",
        cget(&conn.accepted),
    );
    counter_family(
        &mut r,
        "connections_refused",
        "Connections closed at once by a limit",
        vec![
            (
                vec![("limit", "max_connections".to_owned())],
                cget(&conn.refused_listener_full),
            ),
            (
                vec![("limit", "global_max_connections".to_owned())],
                cget(&conn.refused_broker_full),
            ),
            (
                vec![("limit", "max_connection_rate".to_owned())],
                cget(&conn.refused_rate),
            ),
        ],
    );
    counter(
        &mut r,
        "connection_timeouts",
        "Connections closed for want of CONNECT in time",
        cget(&conn.connect_timeouts),
    );
    counter(
        &mut r,
        "tls_handshake_failures",
        "TLS handshakes that failed",
        cget(&conn.tls_failures),
    );
    counter(
        &mut r,
        "websocket_upgrade_failures",
        "WebSocket upgrades that failed",
        cget(&conn.websocket_failures),
    );

    let open = Family::<Labels, Gauge<i64>>::default();
    for listener in &state.listeners {
        let labels = vec![
            ("listener", listener.index.to_string()),
            ("address", listener.addresses.join(" ")),
            ("protocol", listener.protocol.to_owned()),
        ];
        open.get_or_create(&labels)
            .set(i64::try_from(listener.open.get()).unwrap_or(i64::MAX));
    }
    r.register("listener_connections", "Connections open now, per listener", open);
    if let Some(cluster) = &state.cluster {
        cluster_metrics(&mut r, &cluster.status());
    }
    r
}

/// The cluster as this node sees it: `midge_cluster_*`, per other node with label `node`.
fn cluster_metrics(r: &mut Registry, status: &midge_cluster::ClusterStatus) {
    gauge(
        r,
        "cluster_connected",
        "1 while this node reaches the cluster's JetStream",
        u64::from(status.connected),
    );
    let counters = [
        (
            "cluster_forwarded_out",
            "Messages forwarded to other nodes (one per node)",
            status.forwarded_out,
        ),
        (
            "cluster_forwarded_in",
            "Messages received from other nodes",
            status.forwarded_in,
        ),
        (
            "cluster_resent",
            "Forwards sent again for want of an acknowledgement",
            status.resent,
        ),
        (
            "cluster_dropped",
            "Forwards given up (their node was gone, or QoS 0 over the outgoing bound)",
            status.given_up,
        ),
        (
            "cluster_invalid_frames",
            "Frames from other nodes that could not be read",
            status.bad_frames,
        ),
        (
            "cluster_route_writes",
            "Writes of this node's route set",
            status.route_writes,
        ),
        (
            "cluster_claims",
            "Client identifiers this node claimed",
            status.claims,
        ),
        (
            "cluster_claims_failed",
            "Claims of client identifiers that failed",
            status.claims_failed,
        ),
        (
            "cluster_taken_over",
            "Connections here closed because another node claimed their client",
            status.taken_over,
        ),
        (
            "cluster_sessions_adopted",
            "Sessions taken up here from another node",
            status.adopted,
        ),
        (
            "cluster_log_written",
            "Entries written to the cluster's message log",
            status.logged,
        ),
        (
            "cluster_log_failed",
            "Messages the cluster's message log could not take in time",
            status.log_failed,
        ),
        (
            "cluster_log_replayed",
            "Messages read back from the message log into sessions adopted here",
            status.replayed,
        ),
    ];
    for (name, help, value) in counters {
        counter(r, name, help, value);
    }
    let up = Family::<Labels, Gauge<i64>>::default();
    let in_flight = Family::<Labels, Gauge<i64>>::default();
    for node in &status.nodes {
        let labels = vec![("node", node.id.clone())];
        up.get_or_create(&labels).set(i64::from(node.up));
        in_flight
            .get_or_create(&labels)
            .set(i64::try_from(node.in_flight).unwrap_or(i64::MAX));
    }
    r.register(
        "cluster_node_up",
        "1 while another node is heard within the grace",
        up,
    );
    r.register(
        "cluster_node_in_flight",
        "QoS 1 and 2 forwards waiting for another node's acknowledgement",
        in_flight,
    );
}

/// The metrics, in OpenMetrics text.
#[utoipa::path(get, path = "/metrics", tag = "broker",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text",
        body = String),
        (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn render(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut text = String::new();
    encode(&mut text, &registry(&state)).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        )
    })?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}

#[cfg(test)]
mod cluster_tests {
    use std::time::Duration;

    use super::*;

    /// A cluster node's metrics: what it forwarded and dropped, its claims, takeovers and
    /// adoptions, and each other node's state.
    #[test]
    fn a_cluster_nodes_metrics_name_its_links_and_events() {
        let status = midge_cluster::ClusterStatus {
            cluster: "c".into(),
            node_id: "n1".into(),
            connected: true,
            nodes: vec![midge_cluster::NodeStatus {
                id: "n2".into(),
                up: false,
                epoch: 7,
                last_heard: Duration::from_secs(31),
                in_flight: 5,
            }],
            forwarded_out: 11,
            given_up: 5,
            taken_over: 2,
            adopted: 3,
            logged: 40,
            replayed: 12,
            ..midge_cluster::ClusterStatus::default()
        };
        let mut registry = Registry::with_prefix("midge");
        cluster_metrics(&mut registry, &status);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "midge_cluster_connected 1",
            "midge_cluster_forwarded_out_total 11",
            "midge_cluster_dropped_total 5",
            "midge_cluster_taken_over_total 2",
            "midge_cluster_sessions_adopted_total 3",
            "midge_cluster_log_written_total 40",
            "midge_cluster_log_failed_total 0",
            "midge_cluster_log_replayed_total 12",
            "midge_cluster_node_up{node=\"n2\"} 0",
            "midge_cluster_node_in_flight{node=\"n2\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
