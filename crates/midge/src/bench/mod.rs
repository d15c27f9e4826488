//! `midge bench`: a load generator for MQTT brokers (Midge, Mosquitto or any other), on
//! `midge-client`, in the spirit of `emqtt-bench`.
//!
//! Scenarios: `conn` (connection rate, then idle connections), `pub`, `sub`, `pairs` (N
//! publishers each with its own subscriber), `fanin` (N publishers, one subscriber), `fanout`
//! (one publisher, N subscribers on one topic) and `shared` (a shared subscription group).
//! Every payload carries its send time, its publisher and a sequence number, so subscribers
//! measure latency (an HDR histogram), loss and duplication without coordination. A run is
//! bounded in time: warm-up, measured window, then at most a few seconds to drain.
//!
//! Two engines drive the connections. `raw` (the default) writes pre-encoded PUBLISH packets in
//! 64 KB batches on plain TCP streams and frames what the broker sends itself: a generator must
//! cost far less than the broker per message, or it, not the broker, sets the figures once
//! the two share cores (`raw` explains how). `client` runs every connection on `midge-client`,
//! as an application would. On one core everything runs on one thread,
//! and the report gives the generator's own CPU beside the broker's, so a run shows which of
//! the two was the limit.
//!
//! # Layout
//! - `measure`: payloads, per-subscriber tallies, the histogram.
//! - `raw`: the raw engine's connections, publishers and subscribers.
//! - `broker_process`: CPU and memory of the broker under test, from `/proc`.
//! - this file: the command line, the scenarios, the run and the report.

mod broker_process;
mod measure;
mod raw;

use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use midge_client::{Client, ClientOptions, Event, Events};
use midge_codec::{ProtocolVersion, Publish, QoS, TopicName};
use parking_lot::Mutex;
use tokio::sync::watch;

use broker_process::BrokerProcess;
use measure::{PayloadMaker, Tally};

/// How long subscribers may take, after the publishers stop, to receive what is still coming.
const DRAIN: Duration = Duration::from_secs(5);
/// Events a subscriber takes from its client at once.
const EVENT_BATCH: usize = 512;

/// `midge bench`: measure an MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "midge bench", disable_help_flag = true)]
struct BenchArgs {
    /// What to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The broker's host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The broker's port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    port: u16,
    /// Where the subscribers connect, if not to `--host`: another node of a cluster, for
    /// figures across nodes.
    #[arg(long)]
    sub_host: Option<String>,
    /// The port the subscribers connect to (default: `--port`).
    #[arg(long)]
    sub_port: Option<u16>,
    /// Clients: pairs for `pairs`, publishers for `fanin` and `pub`, subscribers for `fanout`,
    /// `shared` and `sub`, connections for `conn`.
    #[arg(short = 'c', long, default_value_t = 10)]
    clients: usize,
    /// Publishers of `shared` (default 1).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// QoS of publications and subscriptions.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// MQTT version: 311 or 5.
    #[arg(short = 'V', long = "protocol", default_value = "311")]
    protocol: String,
    /// Payload bytes (at least 24: send time, publisher, sequence number).
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// Messages per second per publisher; 0 is flat out.
    #[arg(short = 'r', long, default_value_t = 0)]
    rate: u64,
    /// Measured seconds, after the warm-up.
    #[arg(short = 'd', long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds, not measured.
    #[arg(short = 'w', long, default_value_t = 2)]
    warmup: u64,
    /// Topic prefix; publisher i publishes to PREFIX/i.
    #[arg(short = 't', long, default_value = "bench")]
    topic: String,
    /// User name.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password.
    #[arg(short = 'P', long)]
    password: Option<String>,
    /// Unacknowledged publications per publisher (QoS 1 and 2).
    #[arg(long, default_value_t = 100)]
    inflight: usize,
    /// Connections opened at once by `conn`.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// The broker's process id: report its CPU and memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Subscribers keep their sessions (clean session 0, or a session expiry of an hour in
    /// MQTT 5), so that a broker with persistence stores what it queues for them.
    #[arg(long)]
    persistent: bool,
    /// Worker threads of the load generator (default: every core it may run on). With one,
    /// everything runs on that thread; with more, publishers get a thread of their own.
    #[arg(long)]
    threads: Option<usize>,
    /// How the connections are driven: `raw` (plain TCP, packets encoded once and patched: a
    /// generator far cheaper than the broker) or `client` (midge-client, as an application).
    #[arg(long, value_enum, default_value = "raw")]
    engine: Engine,
    /// Display this help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    Raw,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Conn,
    Pub,
    Sub,
    Pairs,
    Fanin,
    Fanout,
    Shared,
}

/// Who publishes where and who subscribes to what.
#[derive(Debug)]
struct Plan {
    /// Topic of each publisher.
    publishers: Vec<String>,
    /// Filter of each subscriber, and the publishers whose messages it should get all of
    /// (`None`: a share of them, in a shared group).
    subscribers: Vec<(String, Option<Vec<usize>>)>,
}

impl BenchArgs {
    fn plan(&self) -> Plan {
        let n = self.clients.max(1);
        let prefix = &self.topic;
        let topic = |i: usize| format!("{prefix}/{i}");
        match self.scenario {
            Scenario::Conn => Plan {
                publishers: vec![],
                subscribers: vec![],
            },
            Scenario::Pub => Plan {
                publishers: (0..n).map(topic).collect(),
                subscribers: vec![],
            },
            Scenario::Sub => Plan {
                publishers: vec![],
                subscribers: (0..n).map(|_| (format!("{prefix}/#"), Some(vec![]))).collect(),
            },
            Scenario::Pairs => Plan {
                publishers: (0..n).map(topic).collect(),
                subscribers: (0..n).map(|i| (topic(i), Some(vec![i]))).collect(),
            },
            Scenario::Fanin => Plan {
                publishers: (0..n).map(topic).collect(),
                subscribers: vec![(format!("{prefix}/#"), Some((0..n).collect()))],
            },
            Scenario::Fanout => Plan {
                publishers: vec![topic(0)],
                subscribers: (0..n).map(|_| (topic(0), Some(vec![0]))).collect(),
            },
            Scenario::Shared => Plan {
                publishers: (0..self.publishers.max(1)).map(topic).collect(),
                subscribers: (0..n)
                    .map(|_| (format!("$share/bench/{prefix}/#"), None))
                    .collect(),
            },
        }
    }

    fn qos(&self) -> QoS {
        match self.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }

    fn options(&self, client_id: String) -> Result<ClientOptions, String> {
        let protocol = match self.protocol.as_str() {
            "311" | "4" | "mqttv311" => ProtocolVersion::V311,
            "5" | "mqttv5" => ProtocolVersion::V5,
            "31" | "3" | "mqttv31" => ProtocolVersion::V31,
            other => return Err(format!("unknown protocol version {other:?}: use 31, 311 or 5")),
        };
        let mut options = ClientOptions::new(self.host.clone(), self.port)
            .client_id(client_id)
            .protocol(protocol)
            .keep_alive(60);
        options.max_inflight = u16::try_from(self.inflight).unwrap_or(u16::MAX).max(1);
        options.event_capacity = 4096;
        options.nodelay = true;
        if let Some(user) = &self.username {
            options = options.credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        Ok(options)
    }
}

/// Runs `midge bench` with the arguments after `bench`.
/// `midge bench`'s arguments, for the man page and the shell completions.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    BenchArgs::command()
        .name("bench")
        .about("Load an MQTT broker and measure it (pairs, fanin, fanout, shared, pub, sub, conn).")
}

pub(crate) fn main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let args: BenchArgs = match crate::cli::tool_args("midge bench", args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let threads = args.threads.unwrap_or_else(available_cores).max(1);
    // The generator opens as many sockets as the broker accepts: without this, each doubling
    // of its descriptor table stalls it too (the `fd_table` module explains why).
    crate::fd_table::grow();
    // On one core (`taskset -c 1 midge bench ...`, as scripts/bench-compare runs it) one
    // thread runs everything: a second would only take turns with it, and every hand-over
    // between them is a futex call and a context switch.
    let mut runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        runtime.worker_threads(threads);
        runtime
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let deadline = Duration::from_secs(args.warmup + args.duration) + DRAIN + Duration::from_secs(60);
        match tokio::time::timeout(deadline, run(&args, threads)).await {
            Ok(result) => result,
            Err(_) => Err("the run did not finish in time".to_owned()),
        }
    });
    // Connections still open are abandoned, not waited for.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(report) => {
            println!("{}", if args.json { report.json() } else { report.text() });
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Counters shared by every task of a run, for the progress line.
#[derive(Debug, Default)]
struct Live {
    sent: AtomicU64,
    /// Messages sent inside the measured window.
    sent_in_window: AtomicU64,
    acked: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    /// Latencies since the last progress line.
    recent: Mutex<Option<Histogram<u64>>>,
    /// Set once a raw connection fails: every task then stops, and the run reports `failure`.
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl Live {
    /// Records an error that ends the run (the first one is reported).
    fn fail(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.failure.lock().get_or_insert(error);
        self.failed.store(true, Ordering::Relaxed);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// A subscriber's latencies for the progress line, handed to [`Live`] every 100 ms.
struct RecentLatency {
    histogram: Option<Histogram<u64>>,
    flushed: Instant,
}

impl RecentLatency {
    fn new(show_progress: bool) -> Self {
        Self {
            histogram: show_progress.then(measure::new_histogram),
            flushed: Instant::now(),
        }
    }

    fn record(&mut self, payload: &[u8], received_at: Duration) {
        if let Some(histogram) = self.histogram.as_mut()
            && let Some((sent, _, _)) = measure::read_header(payload)
        {
            let _ = histogram.record(measure::latency(sent, received_at));
        }
    }

    fn flush(&mut self, now: Instant, live: &Live) {
        if let Some(recent) = self.histogram.as_mut()
            && now.duration_since(self.flushed) > Duration::from_millis(100)
        {
            let mut shared = live.recent.lock();
            match shared.as_mut() {
                Some(histogram) => {
                    let _ = histogram.add(&*recent);
                }
                None => *shared = Some(recent.clone()),
            }
            recent.reset();
            self.flushed = now;
        }
    }
}

/// Cores this process may run on (its CPU affinity), 1 if that cannot be told.
fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// A subscriber's or publisher's connection, on either engine.
enum Connection {
    Client(Client, Events),
    Raw(raw::Connection),
}

impl Connection {
    /// Connects as `options` say; a subscriber (`filter`) also subscribes.
    async fn open(
        engine: Engine,
        options: ClientOptions,
        filter: Option<(&str, QoS)>,
    ) -> Result<Self, String> {
        if engine == Engine::Raw {
            let connect = options
                .connect_packet(options.clean_start)
                .map_err(|e| e.to_string())?;
            let mut connection = raw::Connection::open(&options.host, options.port, &connect)
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            if let Some((filter, qos)) = filter {
                connection
                    .subscribe(filter, qos)
                    .await
                    .map_err(|e| format!("cannot subscribe to {filter}: {e}"))?;
            }
            return Ok(Self::Raw(connection));
        }
        let (client, events) = Client::connect(options)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        if let Some((filter, qos)) = filter {
            let code = client
                .subscribe_one(filter, qos)
                .await
                .map_err(|e| format!("cannot subscribe to {filter}: {e}"))?;
            if code.is_error() {
                return Err(format!("SUBACK {code:?} for {filter}"));
            }
        }
        Ok(Self::Client(client, events))
    }
}

/// A publisher's connection, kept open until the subscribers have drained.
enum Held {
    Client(Client),
    Raw(raw::Connection),
}

impl Held {
    /// Sends DISCONNECT, waiting at most 200 ms.
    async fn disconnect(self) {
        let patience = Duration::from_millis(200);
        match self {
            Self::Client(client) => {
                let goodbye = midge_codec::Disconnect::new(midge_codec::ReasonCode::Success);
                let _ = tokio::time::timeout(patience, client.disconnect(goodbye)).await;
            }
            Self::Raw(connection) => connection.disconnect(patience).await,
        }
    }
}

async fn run(args: &BenchArgs, threads: usize) -> Result<Report, String> {
    if args.scenario == Scenario::Conn {
        return connections(args).await;
    }
    let plan = args.plan();
    let qos = args.qos();
    let live = Arc::new(Live::default());
    let broker = args.pid.map(BrokerProcess::new);
    let run_id = std::process::id();

    // Subscribers first, each subscribed before anyone publishes.
    let mut subscribers = Vec::new();
    for (i, (filter, _)) in plan.subscribers.iter().enumerate() {
        let mut options = args.options(format!("bench-sub-{run_id}-{i}"))?;
        if let Some(host) = &args.sub_host {
            options.host.clone_from(host);
        }
        if let Some(port) = args.sub_port {
            options.port = port;
        }
        if args.persistent {
            options = options.clean_start(false).session_expiry_interval(3600);
        }
        let connection = Connection::open(args.engine, options, Some((filter, qos)))
            .await
            .map_err(|e| format!("subscriber {i} {e}"))?;
        subscribers.push(connection);
    }
    // With more than one thread, publishers get a runtime (and thread) of their own: sharing
    // the work-stealing runtime with the subscribers, a publisher sending flat out to a fast
    // broker can keep the subscribers' connections from being polled for long stretches. On
    // one thread everything shares it, and the publishers yield to the rest after every batch
    // (raw) or every 1024 messages (client) and whenever their socket or queue is full.
    let own_runtime = if threads > 1 {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("bench-publishers")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the publishers' runtime: {e}"))?,
        )
    } else {
        None
    };
    let publishing = own_runtime
        .as_ref()
        .map_or_else(tokio::runtime::Handle::current, |runtime| {
            runtime.handle().clone()
        });
    let mut publishers = Vec::new();
    for i in 0..plan.publishers.len() {
        let options = args.options(format!("bench-pub-{run_id}-{i}"))?;
        // Opened on the runtime that will drive it.
        let connection = publishing
            .spawn(Connection::open(args.engine, options, None))
            .await
            .map_err(|e| format!("publisher {i}: {e}"))?
            .map_err(|e| format!("publisher {i} {e}"))?;
        publishers.push(connection);
    }

    let start = Instant::now();
    let warmup = Duration::from_secs(args.warmup);
    let window = (warmup, warmup + Duration::from_secs(args.duration));
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = plan.subscribers.iter().any(|(_, expected)| expected.is_none());

    let mut receiving = Vec::new();
    let show_progress = !args.quiet;
    for (number, connection) in subscribers.into_iter().enumerate() {
        let live = live.clone();
        let stop = stop_rx.clone();
        receiving.push(tokio::spawn(async move {
            match connection {
                Connection::Client(client, events) => {
                    let tally = receive(events, start, window, live, stop, show_progress).await;
                    drop(client);
                    tally
                }
                Connection::Raw(connection) => {
                    raw::receive(connection, number, start, window, &live, stop, show_progress)
                        .await
                        .1
                }
            }
        }));
    }
    let maker = PayloadMaker::new(args.size);
    let mut sending = Vec::new();
    for (index, (connection, topic)) in publishers
        .into_iter()
        .zip(plan.publishers.iter().cloned())
        .enumerate()
    {
        let (live, maker) = (live.clone(), maker.clone());
        let (rate, inflight) = (args.rate, args.inflight.max(1));
        let topic = TopicName::new(topic.as_str()).map_err(|e| format!("topic {topic:?}: {e}"))?;
        let number = index as u64 + 1;
        match connection {
            Connection::Client(client, events) => sending.push(publishing.spawn(async move {
                // Nothing is expected back; keep the event queue drained.
                let drain = tokio::spawn(drain_events(events));
                let sent = publish(
                    &client, topic, number, qos, rate, inflight, maker, start, window, &live,
                )
                .await;
                drain.abort();
                (Held::Client(client), sent)
            })),
            Connection::Raw(connection) => {
                let publisher = raw::Publisher {
                    template: raw::Template::new(topic, qos, args.size, connection.version())?,
                    number,
                    qos,
                    rate,
                    inflight,
                };
                sending.push(publishing.spawn(async move {
                    let (connection, sent) = publisher.run(connection, start, window, &live).await;
                    (Held::Raw(connection), sent)
                }));
            }
        }
    }
    let progress = (!args.quiet).then(|| tokio::spawn(progress(live.clone(), start, window)));
    // The load generator watches its own CPU as it watches the broker's: at 100 % of its
    // core it, not the broker, is what limits the figures.
    let itself = BrokerProcess::new(std::process::id());
    tokio::time::sleep_until(tokio::time::Instant::from_std(start + window.0)).await;
    let cpu_from = broker.as_ref().map(BrokerProcess::sample);
    let own_from = itself.sample();
    let mut published: HashMap<u64, u64> = HashMap::new();
    let mut clients = Vec::new();
    for (index, task) in sending.into_iter().enumerate() {
        if let Ok((client, sent)) = task.await {
            published.insert(index as u64 + 1, sent);
            clients.push(client);
        }
    }
    let cpu_to = broker.as_ref().map(BrokerProcess::sample);
    let own_cpu = itself.report(own_from, itself.sample()).cpu_percent;
    let sent_total: u64 = published.values().sum();
    // Let the subscribers collect what is still on its way.
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until {
        let expected = expected_deliveries(&plan, &published, shared);
        if live.received.load(Ordering::Relaxed) >= expected || live.failed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let mut total = Tally::new();
    let mut tail_lost = 0;
    for (task, (_, expected)) in receiving.into_iter().zip(plan.subscribers.iter()) {
        let Ok(tally) = task.await else { continue };
        if let Some(from) = expected {
            for publisher in from {
                let id = *publisher as u64 + 1;
                let last = tally.last_sequence(id);
                tail_lost += published.get(&id).copied().unwrap_or(0).saturating_sub(last);
            }
        }
        total.merge(&tally);
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    for client in clients {
        let _ = publishing.spawn(client.disconnect()).await;
    }
    // Dropping a runtime inside another's task is not allowed; this leaves its threads to end.
    if let Some(runtime) = own_runtime {
        runtime.shutdown_background();
    }
    if let Some(failure) = live.failure.lock().take() {
        return Err(failure);
    }
    let (lost, duplicated) = if shared {
        // Members of a group each see a part: only the totals can be compared.
        (
            expected_deliveries(&plan, &published, shared).saturating_sub(total.received),
            None,
        )
    } else {
        (total.lost + tail_lost, Some(total.duplicated))
    };
    let seconds = window.1.saturating_sub(window.0).as_secs_f64().max(0.001);
    Ok(Report {
        args: describe(args, &plan),
        sent_per_second: live.sent_in_window.load(Ordering::Relaxed) as f64 / seconds,
        sent: sent_total,
        acked: live.acked.load(Ordering::Relaxed),
        received: total.received,
        received_per_second: total.received_in_window as f64 / seconds,
        latency: (!total.latency.is_empty()).then(|| total.latency.clone()),
        lost,
        duplicated,
        errors: live.errors.load(Ordering::Relaxed),
        broker: match (&broker, cpu_from, cpu_to) {
            (Some(broker), Some(from), Some(to)) => Some(broker.report(from, to)),
            _ => None,
        },
        bench_cpu_percent: Some(own_cpu),
        connections: None,
    })
}

/// How many messages the subscribers should receive in all, given what was published.
fn expected_deliveries(plan: &Plan, published: &HashMap<u64, u64>, shared: bool) -> u64 {
    if shared {
        return published.values().sum();
    }
    plan.subscribers
        .iter()
        .filter_map(|(_, from)| from.as_ref())
        .flat_map(|from| from.iter())
        .map(|p| published.get(&(*p as u64 + 1)).copied().unwrap_or(0))
        .sum()
}

async fn drain_events(mut events: Events) {
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    while events.recv_many(&mut batch, EVENT_BATCH).await > 0 {
        batch.clear();
    }
}

/// One subscriber's loop: records every message until told to stop. It takes the events
/// already queued in one go, and reads the clock once for them: each was received before that
/// moment, as close to it as a clock read per message would be.
async fn receive(
    mut events: Events,
    start: Instant,
    window: (Duration, Duration),
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
    show_progress: bool,
) -> Tally {
    let mut tally = Tally::new();
    let mut recent = RecentLatency::new(show_progress);
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            taken = events.recv_many(&mut batch, EVENT_BATCH) => {
                if taken == 0 {
                    break;
                }
                let now = Instant::now();
                let received_at = now.duration_since(start);
                let mut received = 0;
                for event in batch.drain(..) {
                    match event {
                        Event::Publish(publish) => {
                            received += 1;
                            tally.record(&publish.payload, received_at, window);
                            recent.record(&publish.payload, received_at);
                        }
                        Event::ConnectionLost(_) | Event::Disconnect(_) => {
                            live.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                live.received.fetch_add(received, Ordering::Relaxed);
                recent.flush(now, &live);
            }
        }
    }
    tally
}

/// One publisher's loop: sequence numbers from 1, flat out or at `rate` per second, until
/// `until` after `start`. Returns how many it sent.
#[allow(clippy::too_many_arguments, reason = "one call site, the run's settings")]
async fn publish(
    client: &Client,
    topic: TopicName,
    publisher: u64,
    qos: QoS,
    rate: u64,
    inflight: usize,
    mut maker: PayloadMaker,
    start: Instant,
    window: (Duration, Duration),
    live: &Live,
) -> u64 {
    let mut sequence = 0u64;
    let mut waiting = VecDeque::new();
    let end = start + window.1;
    loop {
        if rate > 0 {
            let at = start + Duration::from_secs_f64(sequence as f64 / rate as f64);
            if at >= end {
                break;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        } else if sequence.is_multiple_of(64) && Instant::now() >= end {
            break;
        } else if sequence.is_multiple_of(1024) {
            // Flat out, but let the subscribers on the same threads run.
            tokio::task::yield_now().await;
        }
        sequence += 1;
        let sent = Instant::now().duration_since(start);
        let mut message = Publish::new(topic.clone(), maker.make(sent, publisher, sequence));
        message.qos = qos;
        // QoS 0 has no outcome to wait for: no reply channel per message.
        let started = if qos == QoS::AtMostOnce {
            client.queue_publish_packet(message).await.map(|()| None)
        } else {
            client.start_publish_packet(message).await.map(Some)
        };
        match started {
            Ok(pending) => {
                live.sent.fetch_add(1, Ordering::Relaxed);
                if sent >= window.0 && sent < window.1 {
                    live.sent_in_window.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(pending) = pending {
                    waiting.push_back(pending);
                    // A full window is refilled a quarter at a time, not one message per
                    // acknowledgement: against a broker that acknowledges each message in a
                    // write of its own, the next messages then still leave together.
                    let refill = if waiting.len() >= inflight {
                        inflight.div_ceil(4)
                    } else {
                        0
                    };
                    while waiting.len() > inflight - refill {
                        if let Some(pending) = waiting.pop_front() {
                            acknowledge(pending.await, live);
                        }
                    }
                }
            }
            Err(_) => {
                live.errors.fetch_add(1, Ordering::Relaxed);
                sequence -= 1;
                break;
            }
        }
    }
    for pending in waiting {
        if let Ok(outcome) = tokio::time::timeout(DRAIN, pending).await {
            acknowledge(outcome, live);
        }
    }
    sequence
}

fn acknowledge(outcome: Result<midge_client::PublishOutcome, midge_client::ClientError>, live: &Live) {
    match outcome {
        Ok(outcome) if !outcome.reason_code.is_error() => {
            live.acked.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Prints a progress line every second on stderr.
async fn progress(live: Arc<Live>, start: Instant, window: (Duration, Duration)) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    let (mut sent, mut received) = (0, 0);
    loop {
        every.tick().await;
        let (now_sent, now_received) = (
            live.sent.load(Ordering::Relaxed),
            live.received.load(Ordering::Relaxed),
        );
        let latency = live.recent.lock().take();
        let elapsed = start.elapsed();
        let phase = if elapsed < window.0 {
            "warm-up"
        } else if elapsed < window.1 {
            "measuring"
        } else {
            "draining"
        };
        let percentiles = latency.map_or_else(String::new, |h| {
            format!(
                "  p50 {} p99 {} max {}",
                millis(h.value_at_quantile(0.5)),
                millis(h.value_at_quantile(0.99)),
                millis(h.max())
            )
        });
        eprintln!(
            "{:>4}s {phase:<9} sent {:>9}/s  received {:>9}/s{percentiles}  errors {}",
            elapsed.as_secs(),
            now_sent - sent,
            now_received - received,
            live.errors.load(Ordering::Relaxed)
        );
        (sent, received) = (now_sent, now_received);
    }
}

/// The `conn` scenario: opens `clients` connections, `parallel` at a time, and reports the
/// rate; then holds them idle for the duration (to read the broker's memory per connection).
async fn connections(args: &BenchArgs) -> Result<Report, String> {
    let broker = args.pid.map(BrokerProcess::new);
    let rss_before = broker.as_ref().and_then(BrokerProcess::rss_bytes);
    let run_id = std::process::id();
    let started = Instant::now();
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(AtomicU64::new(0));
    let total = args.clients as u64;
    for _ in 0..args.parallel.max(1) {
        let (next, errors) = (next.clone(), errors.clone());
        let template = args.options(String::new())?;
        let engine = args.engine;
        tasks.spawn(async move {
            let mut held = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let mut options = template.clone();
                options.client_id = format!("bench-conn-{run_id}-{i}");
                match Connection::open(engine, options, None).await {
                    Ok(connection) => held.push(connection),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            held
        });
    }
    let mut held = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(mut clients) = done {
            held.append(&mut clients);
        }
    }
    let took = started.elapsed().as_secs_f64().max(0.001);
    let connected = held.len() as u64;
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let rss_after = broker.as_ref().and_then(BrokerProcess::rss_bytes);
    let per_connection = match (rss_before, rss_after) {
        (Some(before), Some(after)) if connected > 0 => Some(after.saturating_sub(before) / connected),
        _ => None,
    };
    Ok(Report {
        args: format!(
            "conn: {} connections, {} at a time, held {} s, MQTT {}",
            args.clients, args.parallel, args.duration, args.protocol
        ),
        sent_per_second: 0.0,
        sent: 0,
        acked: 0,
        received: 0,
        received_per_second: 0.0,
        latency: None,
        lost: 0,
        duplicated: None,
        errors: errors.load(Ordering::Relaxed),
        broker: None,
        bench_cpu_percent: None,
        connections: Some(ConnectionFigures {
            connected,
            per_second: connected as f64 / took,
            rss_per_connection: per_connection,
        }),
    })
}

fn describe(args: &BenchArgs, plan: &Plan) -> String {
    format!(
        "{:?}: {} publishers, {} subscribers, QoS {}, MQTT {}, {} B payloads, {} s measured after {} s warm-up, {}",
        args.scenario,
        plan.publishers.len(),
        plan.subscribers.len(),
        args.qos,
        args.protocol,
        args.size.max(measure::HEADER),
        args.duration,
        args.warmup,
        if args.rate == 0 { "flat out".to_owned() } else { format!("{} msg/s per publisher", args.rate) }
    )
    .to_lowercase()
}

fn millis(micros: u64) -> String {
    format!("{:.3} ms", micros as f64 / 1000.0)
}

#[derive(Debug)]
struct ConnectionFigures {
    connected: u64,
    per_second: f64,
    rss_per_connection: Option<u64>,
}

/// A run's figures.
#[derive(Debug)]
struct Report {
    args: String,
    sent: u64,
    sent_per_second: f64,
    acked: u64,
    received: u64,
    received_per_second: f64,
    latency: Option<Histogram<u64>>,
    lost: u64,
    duplicated: Option<u64>,
    errors: u64,
    broker: Option<broker_process::Usage>,
    /// The load generator's own CPU over the measured window, percent of one core.
    bench_cpu_percent: Option<f64>,
    connections: Option<ConnectionFigures>,
}

impl Report {
    fn percentiles(&self) -> Vec<(&'static str, u64)> {
        self.latency.as_ref().map_or_else(Vec::new, |h| {
            vec![
                ("p50", h.value_at_quantile(0.5)),
                ("p90", h.value_at_quantile(0.9)),
                ("p99", h.value_at_quantile(0.99)),
                ("p99.9", h.value_at_quantile(0.999)),
                ("max", h.max()),
            ]
        })
    }

    fn text(&self) -> String {
        let mut lines = vec![self.args.clone()];
        if let Some(c) = &self.connections {
            lines.push(format!(
                "connected {} ({:.0} connections/s), errors {}",
                c.connected, c.per_second, self.errors
            ));
            if let Some(bytes) = c.rss_per_connection {
                lines.push(format!("broker memory per idle connection: {bytes} B"));
            }
            return lines.join("\n");
        }
        lines.push(format!(
            "sent      {:>12.0} msg/s  ({} messages, {} acknowledged)",
            self.sent_per_second, self.sent, self.acked
        ));
        lines.push(format!(
            "received  {:>12.0} msg/s  ({} messages)",
            self.received_per_second, self.received
        ));
        let percentiles = self.percentiles();
        if !percentiles.is_empty() {
            lines.push(format!(
                "latency   {}",
                percentiles
                    .iter()
                    .map(|(name, v)| format!("{name} {}", millis(*v)))
                    .collect::<Vec<_>>()
                    .join("  ")
            ));
        }
        lines.push(format!(
            "lost {}  duplicated {}  errors {}",
            self.lost,
            self.duplicated
                .map_or_else(|| "n/a (shared)".to_owned(), |d| d.to_string()),
            self.errors
        ));
        if let Some(usage) = &self.broker {
            lines.push(format!(
                "broker    CPU {:.1} %  RSS {:.1} MiB",
                usage.cpu_percent,
                usage.rss_bytes as f64 / 1048576.0
            ));
        }
        if let Some(cpu) = self.bench_cpu_percent {
            lines.push(format!("bench     CPU {cpu:.1} %  (the load generator itself)"));
        }
        lines.join("\n")
    }

    fn json(&self) -> String {
        let mut fields = vec![format!("\"scenario\":{}", json_string(&self.args))];
        if let Some(c) = &self.connections {
            fields.push(format!("\"connected\":{}", c.connected));
            fields.push(format!("\"connections_per_second\":{:.1}", c.per_second));
            if let Some(bytes) = c.rss_per_connection {
                fields.push(format!("\"rss_per_connection\":{bytes}"));
            }
        } else {
            fields.push(format!("\"sent\":{}", self.sent));
            fields.push(format!("\"sent_per_second\":{:.1}", self.sent_per_second));
            fields.push(format!("\"acked\":{}", self.acked));
            fields.push(format!("\"received\":{}", self.received));
            fields.push(format!("\"received_per_second\":{:.1}", self.received_per_second));
            for (name, value) in self.percentiles() {
                fields.push(format!("\"latency_{}_us\":{value}", name.replace('.', "_")));
            }
            fields.push(format!("\"lost\":{}", self.lost));
            if let Some(d) = self.duplicated {
                fields.push(format!("\"duplicated\":{d}"));
            }
            if let Some(usage) = &self.broker {
                fields.push(format!("\"broker_cpu_percent\":{:.1}", usage.cpu_percent));
                fields.push(format!("\"broker_rss_bytes\":{}", usage.rss_bytes));
            }
            if let Some(cpu) = self.bench_cpu_percent {
                fields.push(format!("\"bench_cpu_percent\":{cpu:.1}"));
            }
        }
        fields.push(format!("\"errors\":{}", self.errors));
        format!("{{{}}}", fields.join(","))
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
