//! `midge cluster status`: how a cluster node sees the cluster, read from the `$SYS/broker/
//! cluster/...` topics it publishes (the broker needs `sys_interval`, on by default). Any node
//! answers for itself: whether it reaches JetStream, the other nodes it hears, what it
//! forwarded, dropped, claimed, took over and adopted.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use midge_client::{Client, ClientOptions, Event};
use midge_codec::{ProtocolVersion, QoS};

/// How long to wait for the first `$SYS` value.
const FIRST_WITHIN: Duration = Duration::from_secs(3);
/// The values come together: the first quiet spell this long ends the reading.
const QUIET: Duration = Duration::from_millis(300);

/// `midge cluster status`'s arguments.
#[derive(Debug, Parser)]
#[command(name = "midge cluster", disable_help_flag = true)]
struct ClusterArgs {
    /// What to show: `status`.
    #[arg(value_parser = ["status"])]
    what: String,
    /// The node's host.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    host: String,
    /// The node's MQTT port.
    #[arg(short = 'p', long = "port", default_value_t = 1883)]
    port: u16,
    /// User name.
    #[arg(short = 'u', long = "username")]
    username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "pw")]
    password: Option<String>,
    /// Display this help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// `midge cluster`'s arguments, for the man page and the shell completions.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    ClusterArgs::command()
        .name("cluster")
        .about("Show how a cluster node sees the cluster (`midge cluster status -h HOST -p PORT`).")
}

pub(crate) fn main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let args: ClusterArgs = match crate::cli::tool_args("midge cluster", args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(read(&args)) {
        Ok(values) if values.is_empty() => {
            eprintln!(
                "Error: {}:{} publishes no $SYS/broker/cluster/ topics: not a cluster node, or sys_interval is 0",
                args.host, args.port
            );
            ExitCode::FAILURE
        }
        Ok(values) => {
            print!("{}", render(&values));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Every `$SYS/broker/cluster/...` value the node holds, by the topic's rest.
async fn read(args: &ClusterArgs) -> Result<BTreeMap<String, String>, String> {
    let mut options = ClientOptions::new(&args.host, args.port).protocol(ProtocolVersion::V311);
    if let Some(username) = &args.username {
        let password = args.password.clone().unwrap_or_default().into_bytes();
        options = options.credentials(username.clone(), password);
    }
    let (client, mut events) = Client::connect(options)
        .await
        .map_err(|error| format!("cannot connect to {}:{}: {error}", args.host, args.port))?;
    client
        .subscribe_one("$SYS/broker/cluster/#", QoS::AtMostOnce)
        .await
        .map_err(|error| format!("cannot subscribe: {error}"))?;
    let mut values = BTreeMap::new();
    let mut wait = FIRST_WITHIN;
    while let Ok(Some(event)) = tokio::time::timeout(wait, events.recv()).await {
        if let Event::Publish(publish) = event
            && let Some(rest) = publish.topic.as_str().strip_prefix("$SYS/broker/cluster/")
        {
            values.insert(
                rest.to_owned(),
                String::from_utf8_lossy(&publish.payload).into_owned(),
            );
            wait = QUIET;
        }
    }
    let _ = client.close().await;
    Ok(values)
}

/// The values as the operator reads them.
fn render(values: &BTreeMap<String, String>) -> String {
    let get = |name: &str| values.get(name).map_or("?", String::as_str);
    let mut out = String::new();
    let connected = if get("connected") == "1" {
        "reaches the cluster's JetStream"
    } else {
        "does NOT reach the cluster's JetStream"
    };
    out.push_str(&format!("this node: {connected}\n"));
    let mut nodes: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (name, value) in values {
        if let Some(rest) = name.strip_prefix("nodes/")
            && let Some((node, field)) = rest.split_once('/')
        {
            nodes.entry(node).or_default().insert(field, value);
        }
    }
    out.push_str(&format!(
        "other nodes: {} up, {} down\n",
        get("nodes/up"),
        get("nodes/down")
    ));
    for (node, fields) in &nodes {
        let field = |name: &str| fields.get(name).copied().unwrap_or("?");
        let state = if field("up") == "1" { "up" } else { "DOWN" };
        out.push_str(&format!(
            "  {node:<16} {state:<5} last heard {} ms ago, {} in flight\n",
            field("last_heard_ms"),
            field("in_flight"),
        ));
    }
    out.push_str(&format!(
        "messages: forwarded out {}, in {}; resent {}; dropped {}; invalid frames {}\n",
        get("messages/forwarded/out"),
        get("messages/forwarded/in"),
        get("messages/resent"),
        get("messages/dropped"),
        get("frames/invalid"),
    ));
    out.push_str(&format!(
        "clients: claimed {} (failed {}), taken over by other nodes {}; sessions adopted {}\n",
        get("clients/claimed"),
        get("clients/claims_failed"),
        get("clients/taken_over"),
        get("sessions/adopted"),
    ));
    out.push_str(&format!(
        "message log: written {} (failed {}), replayed into adopted sessions {}\n",
        get("log/written"),
        get("log/failed"),
        get("log/replayed"),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_names_each_node_and_every_count() {
        let values: BTreeMap<String, String> = [
            ("connected", "1"),
            ("nodes/up", "1"),
            ("nodes/down", "1"),
            ("nodes/n2/up", "1"),
            ("nodes/n2/last_heard_ms", "180"),
            ("nodes/n2/in_flight", "0"),
            ("nodes/n3/up", "0"),
            ("nodes/n3/last_heard_ms", "31000"),
            ("nodes/n3/in_flight", "4"),
            ("messages/forwarded/out", "12"),
            ("clients/taken_over", "2"),
            ("log/written", "70"),
            ("log/replayed", "9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let text = render(&values);
        assert!(
            text.contains("this node: reaches the cluster's JetStream"),
            "{text}"
        );
        assert!(text.contains("other nodes: 1 up, 1 down"), "{text}");
        assert!(
            text.contains("n2               up    last heard 180 ms ago, 0 in flight"),
            "{text}"
        );
        assert!(
            text.contains("n3               DOWN  last heard 31000 ms ago, 4 in flight"),
            "{text}"
        );
        assert!(text.contains("forwarded out 12,"), "{text}");
        assert!(text.contains("taken over by other nodes 2;"), "{text}");
        assert!(
            text.contains("message log: written 70 (failed ?), replayed into adopted sessions 9"),
            "{text}"
        );
    }
}
