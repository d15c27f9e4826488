//! `$SYS/broker/...`: the broker's state as retained messages, every `sys_interval` seconds,
//! with Mosquitto 2.0's topic names, value formats and habits (a value is published when it
//! changed, `uptime` every time; the load averages are exponentially damped per-minute rates,
//! printed with two decimals), plus Midge's own counters under the same tree: messages dropped
//! by reason, refused by the access rules, and connections refused by each limit.
//!
//! Each bridge has its counters under `connection/NAME/`: `messages/forwarded/out`,
//! `messages/forwarded/in`, `messages/queued` (waiting in its local session, in flight
//! included) and `messages/dropped` (by the bridge, and by its session's queue limits); its
//! `state` is published by the bridge itself as the link changes.
//!
//! MQTT-SN gateways' counters are under `mqttsn/` (`docs/mqtt-sn.md`), when the broker has an
//! MQTT-SN listener.
//!
//! Mosquitto's `heap/current` and `heap/maximum` need its memory tracking and are not
//! published.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use midge_codec::TopicName;
use midge_core::{Broker, DropReason, Stats};
use tokio::sync::watch;

use crate::bridge::BridgeStatus;
use crate::limits::ConnectionCounters;
use crate::mqttsn::SnCounters;

/// The load averages' damping periods, in minutes, as in Mosquitto.
const PERIODS: [(u32, &str); 3] = [(1, "1min"), (5, "5min"), (15, "15min")];

/// Publishes the `$SYS` tree until `stop` changes.
pub(crate) async fn run(
    broker: Arc<Broker>,
    counters: Arc<ConnectionCounters>,
    parts: Parts,
    interval: Duration,
    version: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut tree = SysTree::new(broker, counters, version);
    tree.bridges = parts.bridges;
    tree.sn_counters = parts.sn_counters;
    tree.cluster = parts.cluster;
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => tree.update(Instant::now()),
            _ = stop.changed() => return,
        }
    }
}

/// What runs beside the broker and reports in the tree.
pub(crate) struct Parts {
    /// The bridges (`$SYS/broker/connection/NAME/...`).
    pub(crate) bridges: Vec<Arc<BridgeStatus>>,
    /// The MQTT-SN gateways' counters, when there is an MQTT-SN listener.
    pub(crate) sn_counters: Option<Arc<SnCounters>>,
    /// The cluster this node is in (`$SYS/broker/cluster/...`).
    pub(crate) cluster: Option<Arc<dyn midge_cluster::Cluster>>,
}

/// A counter whose load averages are published.
struct Load {
    name: &'static str,
    last: u64,
    averages: [f64; 3],
}

struct SysTree {
    broker: Arc<Broker>,
    counters: Arc<ConnectionCounters>,
    version: String,
    started: Instant,
    last_update: Option<Instant>,
    published: HashMap<String, String>,
    loads: Vec<Load>,
    max_clients: usize,
    bridges: Vec<Arc<BridgeStatus>>,
    /// The MQTT-SN gateways' counters, when there is an MQTT-SN listener.
    sn_counters: Option<Arc<SnCounters>>,
    /// The cluster this node is in, if any.
    cluster: Option<Arc<dyn midge_cluster::Cluster>>,
}

impl SysTree {
    fn new(broker: Arc<Broker>, counters: Arc<ConnectionCounters>, version: String) -> Self {
        let loads = [
            "messages/received",
            "messages/sent",
            "publish/received",
            "publish/sent",
            "publish/dropped",
            "bytes/received",
            "bytes/sent",
            "connections",
            "sockets",
        ]
        .into_iter()
        .map(|name| Load {
            name,
            last: 0,
            averages: [0.0; 3],
        })
        .collect();
        Self {
            broker,
            counters,
            version,
            started: Instant::now(),
            last_update: None,
            published: HashMap::new(),
            loads,
            max_clients: 0,
            bridges: Vec::new(),
            sn_counters: None,
            cluster: None,
        }
    }

    /// The current value of the counter a load average follows.
    fn load_source(&self, name: &str) -> u64 {
        let stats = self.broker.stats();
        let counter: &AtomicU64 = match name {
            "messages/received" => &stats.packets_received,
            "messages/sent" => &stats.packets_sent,
            "publish/received" => &stats.publish_received,
            "publish/sent" => &stats.publish_sent,
            "bytes/received" => &stats.bytes_received,
            "bytes/sent" => &stats.bytes_sent,
            "connections" => &stats.connects,
            "sockets" => &self.counters.accepted,
            _ => return stats.dropped_total(),
        };
        Stats::get(counter)
    }

    fn update(&mut self, now: Instant) {
        let initial = self.last_update.is_none();
        let broker = self.broker.clone();
        let stats = broker.stats();
        let census = broker.census();
        self.max_clients = self.max_clients.max(census.sessions);
        if initial {
            self.publish("version", self.version.clone(), true);
        }
        let uptime = now.duration_since(self.started).as_secs();
        self.publish("uptime", format!("{uptime} seconds"), true);

        let disconnected = census.sessions.saturating_sub(census.connected);
        let stored = census.retained + census.queued;
        let stored_bytes = census.retained_bytes + census.queued_bytes;
        let values: Vec<(&str, u64)> = vec![
            ("clients/total", census.sessions as u64),
            ("clients/connected", census.connected as u64),
            ("clients/active", census.connected as u64),
            ("clients/disconnected", disconnected as u64),
            ("clients/inactive", disconnected as u64),
            ("clients/maximum", self.max_clients as u64),
            ("clients/expired", Stats::get(&stats.sessions_expired)),
            ("messages/received", Stats::get(&stats.packets_received)),
            ("messages/sent", Stats::get(&stats.packets_sent)),
            ("messages/stored", stored as u64),
            ("store/messages/count", stored as u64),
            ("store/messages/bytes", stored_bytes),
            ("publish/messages/received", Stats::get(&stats.publish_received)),
            ("publish/messages/sent", Stats::get(&stats.publish_sent)),
            ("publish/messages/dropped", stats.dropped_total()),
            (
                "publish/bytes/received",
                Stats::get(&stats.publish_bytes_received),
            ),
            ("publish/bytes/sent", Stats::get(&stats.publish_bytes_sent)),
            ("bytes/received", Stats::get(&stats.bytes_received)),
            ("bytes/sent", Stats::get(&stats.bytes_sent)),
            ("retained messages/count", census.retained as u64),
            ("subscriptions/count", census.subscriptions as u64),
            ("shared_subscriptions/count", census.shared_subscriptions as u64),
            // Midge's own, under the same tree.
            ("publish/messages/denied", Stats::get(&stats.denied_write)),
            ("publish/messages/withheld", Stats::get(&stats.denied_read)),
            ("subscriptions/denied", Stats::get(&stats.denied_subscribe)),
            ("clients/refused", Stats::get(&stats.connects_refused)),
            (
                "connections/refused/max_connections",
                ConnectionCounters::get(&self.counters.refused_listener_full),
            ),
            (
                "connections/refused/global_max_connections",
                ConnectionCounters::get(&self.counters.refused_broker_full),
            ),
            (
                "connections/refused/max_connection_rate",
                ConnectionCounters::get(&self.counters.refused_rate),
            ),
            (
                "connections/timeouts",
                ConnectionCounters::get(&self.counters.connect_timeouts),
            ),
            (
                "connections/tls_failures",
                ConnectionCounters::get(&self.counters.tls_failures),
            ),
            (
                "connections/websocket_failures",
                ConnectionCounters::get(&self.counters.websocket_failures),
            ),
            (
                "connections/parked",
                crate::connection::parked_connections() as u64,
            ),
        ];
        for (name, value) in values {
            self.publish(name, value.to_string(), false);
        }
        for reason in DropReason::ALL {
            let name = format!("publish/messages/dropped/{}", reason.as_str());
            self.publish(&name, stats.dropped_count(reason).to_string(), false);
        }
        for bridge in self.bridges.clone() {
            let (queued, dropped) = broker
                .session_info(&bridge.local_client_id)
                .map_or((0, 0), |info| {
                    ((info.queued + info.inflight) as u64, info.dropped)
                });
            let base = format!("connection/{}/messages", bridge.name);
            let values = [
                ("forwarded/out", bridge.forwarded_out()),
                ("forwarded/in", bridge.forwarded_in()),
                ("queued", queued),
                ("dropped", bridge.dropped() + dropped),
            ];
            for (name, value) in values {
                self.publish(&format!("{base}/{name}"), value.to_string(), false);
            }
        }
        if let Some(counters) = self.sn_counters.clone() {
            for (name, value) in counters.named() {
                self.publish(&format!("mqttsn/{name}"), value.to_string(), false);
            }
        }
        if let Some(cluster) = &self.cluster {
            let status = cluster.status();
            let up = status.nodes.iter().filter(|node| node.up).count();
            let values = [
                ("cluster/connected", u64::from(status.connected)),
                ("cluster/nodes/up", up as u64),
                ("cluster/nodes/down", (status.nodes.len() - up) as u64),
                ("cluster/messages/forwarded/out", status.forwarded_out),
                ("cluster/messages/forwarded/in", status.forwarded_in),
                ("cluster/messages/resent", status.resent),
                ("cluster/messages/dropped", status.given_up),
                ("cluster/frames/invalid", status.bad_frames),
                ("cluster/routes/written", status.route_writes),
                ("cluster/clients/claimed", status.claims),
                ("cluster/clients/claims_failed", status.claims_failed),
                ("cluster/clients/taken_over", status.taken_over),
                ("cluster/sessions/adopted", status.adopted),
                ("cluster/log/written", status.logged),
                ("cluster/log/failed", status.log_failed),
                ("cluster/log/replayed", status.replayed),
            ];
            for (name, value) in values {
                self.publish(name, value.to_string(), false);
            }
            for node in &status.nodes {
                let base = format!("cluster/nodes/{}", node.id);
                self.publish(&format!("{base}/up"), u8::from(node.up).to_string(), false);
                self.publish(&format!("{base}/in_flight"), node.in_flight.to_string(), false);
                self.publish(
                    &format!("{base}/last_heard_ms"),
                    node.last_heard.as_millis().to_string(),
                    false,
                );
            }
        }

        let elapsed = self
            .last_update
            .map(|last| now.duration_since(last).as_secs_f64());
        for index in 0..self.loads.len() {
            let current = self.load_source(self.loads[index].name);
            let load = &mut self.loads[index];
            let delta = current.saturating_sub(load.last);
            load.last = current;
            let Some(elapsed) = elapsed.filter(|e| *e > 0.0) else {
                continue;
            };
            // Mosquitto's calc_load: the per-minute rate over the interval, damped.
            let rate = delta as f64 * 60.0 / elapsed;
            let mut changed = Vec::new();
            for (slot, (minutes, label)) in PERIODS.iter().enumerate() {
                let exponent = (-elapsed / (60.0 * f64::from(*minutes))).exp();
                let fresh = rate + exponent * (load.averages[slot] - rate);
                if (fresh - load.averages[slot]).abs() >= 0.01 || load.averages[slot] == 0.0 {
                    changed.push((format!("load/{}/{label}", load.name), format!("{fresh:.2}")));
                }
                load.averages[slot] = fresh;
            }
            for (topic, value) in changed {
                self.publish(&topic, value, false);
            }
        }
        if initial {
            let names: Vec<&'static str> = self.loads.iter().map(|load| load.name).collect();
            for name in names {
                for (_, label) in PERIODS {
                    self.publish(&format!("load/{name}/{label}"), "0.00".to_owned(), false);
                }
            }
        }
        self.last_update = Some(now);
    }

    /// Publishes `$SYS/broker/{name}` (retained) if its value changed, or `always`.
    fn publish(&mut self, name: &str, value: String, always: bool) {
        if !always && self.published.get(name) == Some(&value) {
            return;
        }
        let Ok(topic) = TopicName::new(format!("$SYS/broker/{name}")) else {
            return;
        };
        self.broker.publish_system(
            topic,
            Bytes::from(value.clone().into_bytes()),
            true,
            Instant::now(),
        );
        self.published.insert(name.to_owned(), value);
    }
}
