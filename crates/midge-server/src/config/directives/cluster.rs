//! The cluster's directives (Midge's own, broker-wide): `cluster_name` makes this broker a node
//! of a cluster on NATS JetStream (docs/cluster.md); without it the others are errors, and
//! nothing about the broker changes. Checked whole once the file is read (`Parser::finish`):
//! a node needs its id, and NATS to reach (`cluster_nats_url`) or to run
//! (`cluster_nats_server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use midge_cluster::config::valid_name;
use midge_cluster::{NetsplitAllow, SyncPolicy};

use super::{Directive, Scope, supported};
use crate::config::Problem;
use crate::config::parser::{Failure, Parser};
use crate::config::value::{self, Args};

use Scope::Broker;

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("cluster_name", Broker, name),
    supported("cluster_node_id", Broker, node_id),
    supported("cluster_nats_url", Broker, nats_url),
    supported("cluster_nats_username", Broker, nats_username),
    supported("cluster_nats_password", Broker, nats_password),
    supported("cluster_nats_credentials", Broker, nats_credentials),
    supported("cluster_nats_cafile", Broker, nats_cafile),
    supported("cluster_nats_certfile", Broker, nats_certfile),
    supported("cluster_nats_keyfile", Broker, nats_keyfile),
    supported("cluster_nats_server", Broker, nats_server),
    supported("cluster_nats_listen", Broker, nats_listen),
    supported("cluster_nats_cluster_listen", Broker, nats_cluster_listen),
    supported("cluster_nats_routes", Broker, nats_routes),
    supported("cluster_nats_store", Broker, nats_store),
    supported("cluster_nats_monitor", Broker, nats_monitor),
    supported("cluster_replicas", Broker, replicas),
    supported("cluster_sync", Broker, sync),
    supported("cluster_node_down_grace", Broker, node_down_grace),
    supported("cluster_heartbeat_interval", Broker, heartbeat_interval),
    supported("cluster_peer_window", Broker, peer_window),
    supported("cluster_netsplit_allow", Broker, netsplit_allow),
    supported("cluster_queue_shards", Broker, queue_shards),
    supported("cluster_queue_max_age", Broker, queue_max_age),
    supported("cluster_checkpoint_interval", Broker, checkpoint_interval),
];

/// Notes that a cluster directive was seen here (for the error when `cluster_name` is missing).
fn seen(parser: &mut Parser) -> &mut crate::config::parser::ClusterDraft {
    let at = parser.file.at.clone();
    let directive = parser.file.directive.clone();
    let draft = &mut parser.cluster;
    draft.first.get_or_insert((at, directive));
    draft
}

fn cluster_name_value(text: &str) -> Result<String, Problem> {
    if valid_name(text) {
        Ok(text.to_owned())
    } else {
        Err(Problem::expected(
            "a name of 1 to 32 letters, digits, '-' or '_'",
            text,
        ))
    }
}

fn name(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = cluster_name_value(args.value()?)?;
    let at = parser.file.at.clone();
    let draft = seen(parser);
    draft.config.name = name;
    draft.name_at = Some(at);
    Ok(())
}

fn node_id(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let id = cluster_name_value(args.value()?)?;
    seen(parser).config.node_id = id;
    Ok(())
}

/// `cluster_nats_url URL [URL ...]`; each line adds.
fn nats_url(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let first = args.value()?;
    let mut urls = vec![url(first)?];
    while let Some(more) = args.next() {
        urls.push(url(more)?);
    }
    seen(parser).config.nats_urls.extend(urls);
    Ok(())
}

fn url(text: &str) -> Result<String, Problem> {
    let ok = ["nats://", "tls://", "ws://", "wss://"]
        .iter()
        .any(|scheme| text.starts_with(scheme) && text.len() > scheme.len());
    if ok {
        Ok(text.to_owned())
    } else {
        Err(Problem::expected("a URL such as nats://10.0.0.2:4222", text))
    }
}

fn nats_username(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let user = parser.string_value(args)?.to_owned();
    seen(parser).username = Some(user);
    Ok(())
}

fn nats_password(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let password = parser.string_value(args)?.to_owned();
    seen(parser).password = Some(password);
    Ok(())
}

fn path(parser: &mut Parser, args: &mut Args<'_>) -> Result<PathBuf, Failure> {
    Ok(PathBuf::from(parser.string_value(args)?))
}

fn nats_credentials(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let file = path(parser, args)?;
    seen(parser).config.nats_credentials = Some(file);
    Ok(())
}

fn nats_cafile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let file = path(parser, args)?;
    seen(parser).config.nats_cafile = Some(file);
    Ok(())
}

fn nats_certfile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let file = path(parser, args)?;
    seen(parser).certfile = Some(file);
    Ok(())
}

fn nats_keyfile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let file = path(parser, args)?;
    seen(parser).keyfile = Some(file);
    Ok(())
}

fn nats_server(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let file = path(parser, args)?;
    seen(parser).server.executable = file;
    Ok(())
}

fn socket_address(text: &str) -> Result<SocketAddr, Problem> {
    text.parse()
        .map_err(|_| Problem::expected("an address and port such as 10.0.0.2:4222", text))
}

fn nats_listen(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let address = socket_address(args.value()?)?;
    seen(parser).server.listen = address;
    Ok(())
}

fn nats_cluster_listen(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let address = socket_address(args.value()?)?;
    seen(parser).server.cluster_listen = Some(address);
    Ok(())
}

/// `cluster_nats_routes HOST:PORT [HOST:PORT ...]`; each line adds.
fn nats_routes(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let mut routes = vec![route(args.value()?)?];
    while let Some(more) = args.next() {
        routes.push(route(more)?);
    }
    seen(parser).server.routes.extend(routes);
    Ok(())
}

fn route(text: &str) -> Result<String, Problem> {
    let bare = text.strip_prefix("nats-route://").unwrap_or(text);
    match bare.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && value::port(port).is_ok() => Ok(text.to_owned()),
        _ => Err(Problem::expected(
            "HOST:PORT of another node's cluster_nats_cluster_listen",
            text,
        )),
    }
}

fn nats_store(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let dir = path(parser, args)?;
    seen(parser).server.store = Some(dir);
    Ok(())
}

fn nats_monitor(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let address = socket_address(args.value()?)?;
    seen(parser).server.monitor = Some(address);
    Ok(())
}

fn replicas(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let replicas: usize = value::number(args.value()?, 1, 5)?;
    seen(parser).config.replicas = replicas;
    Ok(())
}

/// `cluster_sync always | MS`.
fn sync(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let text = args.value()?;
    let policy = if text == "always" {
        SyncPolicy::Always
    } else {
        let ms: u64 = value::number(text, 1, 600_000)
            .map_err(|_| Problem::expected("always, or milliseconds from 1 to 600000", text))?;
        SyncPolicy::Every(Duration::from_millis(ms))
    };
    seen(parser).config.sync = policy;
    Ok(())
}

/// A duration for the cluster: a number with `ms`, `s` (the default), `m` (minutes), `h` or
/// `d`, up to a day.
fn period(text: &str) -> Result<Duration, Problem> {
    period_up_to(
        text,
        Duration::from_secs(86_400),
        "a duration up to a day such as 500ms, 30s, 2m or 1h",
    )
}

fn period_up_to(text: &str, longest: Duration, expected: &'static str) -> Result<Duration, Problem> {
    let bad = || Problem::expected(expected, text);
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (count, unit) = text.split_at(split);
    let count: u64 = count.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(count),
        "" | "s" => Duration::from_secs(count),
        "m" => Duration::from_secs(count.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(count.checked_mul(3600).ok_or_else(bad)?),
        "d" => Duration::from_secs(count.checked_mul(86_400).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    if duration.is_zero() || duration > longest {
        return Err(bad());
    }
    Ok(duration)
}

fn node_down_grace(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let grace = period(args.value()?)?;
    seen(parser).config.node_down_grace = grace;
    Ok(())
}

fn heartbeat_interval(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let every = period(args.value()?)?;
    seen(parser).config.heartbeat_interval = every;
    Ok(())
}

fn peer_window(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let window: u16 = value::number(args.value()?, 1, u16::MAX.into())?;
    seen(parser).config.peer_window = window;
    Ok(())
}

fn queue_shards(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let shards: u16 = value::number(args.value()?, 1, 64)?;
    seen(parser).config.queue_shards = shards;
    Ok(())
}

/// `cluster_queue_max_age`: up to a year.
fn queue_max_age(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let age = period_up_to(
        args.value()?,
        Duration::from_secs(365 * 86_400),
        "a duration up to a year such as 12h or 7d",
    )?;
    seen(parser).config.queue_max_age = age;
    Ok(())
}

fn checkpoint_interval(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let every = period(args.value()?)?;
    seen(parser).config.checkpoint_interval = every;
    Ok(())
}

fn netsplit_allow(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [("none", NetsplitAllow::None), ("publish", NetsplitAllow::Publish)];
    let allow = value::choice(args.value()?, "none or publish", &choices)?;
    seen(parser).config.netsplit_allow = allow;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_take_the_units_the_page_lists() {
        assert_eq!(period("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(period("30").unwrap(), Duration::from_secs(30));
        assert_eq!(period("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(period("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(period("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(period("1d").unwrap(), Duration::from_secs(86_400));
        for bad in [
            "",
            "0",
            "s",
            "2d",
            "-1",
            "99999999999999999999",
            "2h5m",
            "25h",
            "1w",
        ] {
            assert!(period(bad).is_err(), "{bad}");
        }
    }
}
