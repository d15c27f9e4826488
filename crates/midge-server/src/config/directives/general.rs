//! Broker-wide directives: limits, queues, retained messages, `$SYS`, `include_dir`, `pid_file`.

use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Area, Directive, Scope, anything, count, flag, no_effect, not_yet, supported, text};
use crate::config::parser::{Failure, Parser, Target};
use crate::config::value::{self, Args};
use crate::config::{NoticeKind, Problem};

use Scope::Broker;

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("include_dir", Broker, include_dir),
    supported("pid_file", Broker, pid_file),
    supported("per_listener_settings", Broker, per_listener_settings),
    supported("max_inflight_messages", Broker, max_inflight_messages),
    supported("max_inflight_bytes", Broker, max_inflight_bytes),
    supported("max_queued_messages", Broker, max_queued_messages),
    supported("max_queued_bytes", Broker, max_queued_bytes),
    supported("queue_qos0_messages", Broker, queue_qos0_messages),
    supported("max_keepalive", Broker, max_keepalive),
    supported("max_packet_size", Broker, max_packet_size),
    supported("message_size_limit", Broker, message_size_limit),
    supported("persistent_client_expiration", Broker, persistent_client_expiration),
    supported("retain_available", Broker, retain_available),
    supported("upgrade_outgoing_qos", Broker, upgrade_outgoing_qos),
    supported("wildcard_subscription_available", Broker, wildcard_subscription_available),
    supported("subscription_identifier_available", Broker, subscription_identifier_available),
    supported("shared_subscription_available", Broker, shared_subscription_available),
    supported("response_information", Broker, response_information),
    supported("set_tcp_nodelay", Broker, set_tcp_nodelay),
    supported("global_max_clients", Broker, global_max_clients),
    supported("global_max_connections", Broker, global_max_connections),
    supported("sys_interval", Broker, sys_interval),
    supported("user", Broker, user),
    not_yet("memory_limit", Broker, Area::Other, count),
    not_yet("retain_expiry_interval", Broker, Area::Other, text),
    no_effect("allow_duplicate_messages", Broker, "deprecated by Mosquitto 2.0", flag),
    no_effect("retry_interval", Broker, "removed in Mosquitto 2.0", anything),
];

fn include_dir(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let dir = parser.string_value(args)?;
    if parser.file.nested {
        parser.notice(NoticeKind::Ignored {
            reason: "include_dir is only read from the main configuration file (as in Mosquitto)",
        });
        return Ok(());
    }
    parser.include_dir(Path::new(dir))
}

fn pid_file(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = parser.string_value(args)?;
    parser.set_once(Target::Broker);
    parser.config.pid_file = Some(PathBuf::from(path));
    Ok(())
}

fn user(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = parser.string_value(args)?;
    parser.set_once(Target::Broker);
    parser.config.user = name.to_owned();
    Ok(())
}

fn per_listener_settings(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let on = value::boolean(args.value()?)?;
    if parser.config.per_listener_settings {
        if !on {
            parser.notice(NoticeKind::Ignored {
                reason: "per_listener_settings cannot be turned off once on (as in Mosquitto)",
            });
        }
        return Ok(());
    }
    if on && let Some(first) = parser.first_security_option.clone() {
        return Err(Problem::PerListenerSettingsTooLate { first }.into());
    }
    parser.config.per_listener_settings = on;
    Ok(())
}

/// A limit where 0 means none. Mosquitto also reads a negative number as none.
fn limit(args: &mut Args<'_>, max: i64) -> Result<u64, Failure> {
    let text = args.value()?;
    let n = value::integer(text)?;
    if n > max {
        return Err(Problem::expected(format!("a number from 0 to {max}"), text).into());
    }
    Ok(u64::try_from(n).unwrap_or(0))
}

fn max_inflight_messages(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let n = limit(args, u16::MAX.into())?;
    parser.config.max_inflight_messages = u16::try_from(n).ok().and_then(NonZeroU16::new);
    Ok(())
}

fn max_inflight_bytes(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.max_inflight_bytes = NonZeroU64::new(limit(args, i64::MAX)?);
    Ok(())
}

fn max_queued_messages(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let n = limit(args, u32::MAX.into())?;
    parser.config.max_queued_messages = u32::try_from(n).ok().and_then(NonZeroU32::new);
    Ok(())
}

fn max_queued_bytes(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.max_queued_bytes = NonZeroU64::new(limit(args, i64::MAX)?);
    Ok(())
}

fn queue_qos0_messages(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.queue_qos0_messages = value::boolean(args.value()?)?;
    Ok(())
}

fn max_keepalive(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.max_keepalive = NonZeroU16::new(value::number(args.value()?, 0, u16::MAX.into())?);
    Ok(())
}

/// At least 20 bytes, as in Mosquitto; 0 (which Mosquitto refuses) is read as its default, no
/// limit beyond the protocol's.
fn max_packet_size(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let text = args.value()?;
    let size: u32 = value::number(text, 0, u32::MAX.into())?;
    if (1..20).contains(&size) {
        let what = format!("0 (no limit) or a number from 20 to {}", u32::MAX);
        return Err(Problem::expected(what, text).into());
    }
    parser.config.max_packet_size = NonZeroU32::new(size);
    Ok(())
}

/// The largest payload MQTT can carry (Mosquitto's `MQTT_MAX_PAYLOAD`).
const MQTT_MAX_PAYLOAD: i64 = 268_435_455;

fn message_size_limit(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.message_size_limit = NonZeroU32::new(value::number(args.value()?, 0, MQTT_MAX_PAYLOAD)?);
    Ok(())
}

fn persistent_client_expiration(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.persistent_client_expiration = Some(value::duration(args.value()?)?);
    Ok(())
}

fn retain_available(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.retain_available = value::boolean(args.value()?)?;
    Ok(())
}

fn upgrade_outgoing_qos(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.upgrade_outgoing_qos = value::boolean(args.value()?)?;
    Ok(())
}

/// `wildcard_subscription_available BOOL` (Midge): announced in CONNACK; when false, MQTT 5
/// clients subscribing with `+` or `#` are disconnected with 0xA2.
fn wildcard_subscription_available(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.wildcard_subscription_available = value::boolean(args.value()?)?;
    Ok(())
}

/// `subscription_identifier_available BOOL` (Midge): announced in CONNACK; when false, a
/// SUBSCRIBE with a Subscription Identifier gets DISCONNECT 0xA1.
fn subscription_identifier_available(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.subscription_identifier_available = value::boolean(args.value()?)?;
    Ok(())
}

/// `shared_subscription_available BOOL` (Midge): announced in CONNACK; when false, MQTT 5
/// clients subscribing to `$share/...` are disconnected with 0x9E.
fn shared_subscription_available(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.shared_subscription_available = value::boolean(args.value()?)?;
    Ok(())
}

/// `response_information PREFIX` (Midge): what an MQTT 5 client that sets Request Response
/// Information gets as Response Information, followed by its client identifier. A topic
/// prefix without wildcards (it names topics the client will subscribe to).
fn response_information(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let text = parser.string_value(args)?;
    if text.contains(['+', '#']) || text.contains('\0') {
        return Err(Problem::expected("a topic prefix without wildcards", text).into());
    }
    parser.set_once(Target::Broker);
    parser.config.response_information = Some(text.to_owned());
    Ok(())
}

fn set_tcp_nodelay(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.set_tcp_nodelay = value::boolean(args.value()?)?;
    Ok(())
}

/// A count where -1 (any negative number, as in Mosquitto) means no limit.
pub(super) fn optional_count(args: &mut Args<'_>) -> Result<Option<u32>, Failure> {
    let text = args.value()?;
    let n = value::integer(text)?;
    if n < 0 {
        return Ok(None);
    }
    let n =
        u32::try_from(n).map_err(|_| Problem::expected(format!("a number from -1 to {}", u32::MAX), text))?;
    Ok(Some(n))
}

fn global_max_clients(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.global_max_clients = optional_count(args)?;
    Ok(())
}

fn global_max_connections(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.global_max_connections = optional_count(args)?;
    Ok(())
}

fn sys_interval(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let seconds: u64 = value::number(args.value()?, 0, u16::MAX.into())?;
    parser.config.sys_interval = (seconds > 0).then(|| Duration::from_secs(seconds));
    Ok(())
}
