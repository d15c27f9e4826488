//! Bridge directives: a `connection NAME` line starts a bridge block and the others configure it
//! ([`Bridge`], which `crate::bridge` runs). Each is checked as Mosquitto checks it (a bridge
//! option outside a block, a repeated bridge name or address list, a bad QoS or port, a block
//! without `address` or `topic`, a remapping Mosquitto calls invalid are all errors).
//!
//! Not acted on: `local_password` (the local side is inside the broker, where only
//! `local_username` matters, for the access rules), `bridge_reload_type` (bridges are not
//! reloaded), and what rustls cannot do: OCSP stapling (`bridge_require_ocsp`) and TLS-PSK
//! (`bridge_identity`, `bridge_psk`), which Midge refuses to start with.

use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;
use std::time::Duration;

use midge_codec::{QoS, TopicFilter, TopicName};

use super::{Apply, Area, Directive, Scope, never, no_effect, not_yet, supported, text};
use crate::config::Problem;
use crate::config::bridge::{
    Bridge, BridgeAddress, BridgeDirection, BridgeProtocol, BridgeTopic, RestartTimeout, StartType,
    TcpKeepalive,
};
use crate::config::listener::TlsVersion;
use crate::config::parser::{BridgeDraft, Failure, Parser};
use crate::config::value::{self, Args};

const fn bridge(name: &'static str, apply: Apply) -> Directive {
    supported(name, Scope::Bridge, apply)
}

const LOCAL_PASSWORD: &str = "the bridge's local side is inside the broker and is not authenticated; only local_username \
     is used, for the access rules";
const RELOAD_TYPE: &str = "bridges are not reloaded on SIGHUP: restart the broker to change them";
const OCSP: &str = "rustls does not check OCSP responses, so the remote certificate's revocation \
     could not be checked";
const PSK: &str = "TLS-PSK is not available in rustls";

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("connection", Scope::Broker, connection),
    bridge("address", address),
    bridge("addresses", address),
    bridge("topic", topic),
    bridge("round_robin", |p, a| set_flag(p, a, |b, v| b.round_robin = v)),
    bridge("bridge_protocol_version", bridge_protocol_version),
    bridge("cleansession", |p, a| set_flag(p, a, |b, v| b.cleansession = v)),
    bridge("local_cleansession", |p, a| set_flag(p, a, |b, v| b.local_cleansession = Some(v))),
    bridge("keepalive_interval", keepalive_interval),
    bridge("idle_timeout", idle_timeout),
    bridge("start_type", start_type),
    bridge("threshold", threshold),
    bridge("restart_timeout", restart_timeout),
    bridge("remote_clientid", |p, a| set_text(p, a, |b, v| b.remote_clientid = Some(v))),
    bridge("clientid", |p, a| set_text(p, a, |b, v| b.remote_clientid = Some(v))),
    bridge("local_clientid", |p, a| set_text(p, a, |b, v| b.local_clientid = Some(v))),
    bridge("remote_username", |p, a| set_text(p, a, |b, v| b.remote_username = Some(v))),
    bridge("username", |p, a| set_text(p, a, |b, v| b.remote_username = Some(v))),
    bridge("remote_password", |p, a| set_text(p, a, |b, v| b.remote_password = Some(v))),
    bridge("password", |p, a| set_text(p, a, |b, v| b.remote_password = Some(v))),
    bridge("local_username", |p, a| set_text(p, a, |b, v| b.local_username = Some(v))),
    no_effect("local_password", Scope::Bridge, LOCAL_PASSWORD, text),
    bridge("notifications", |p, a| set_flag(p, a, |b, v| b.notifications = v)),
    bridge("notification_topic", notification_topic),
    bridge("notifications_local_only", |p, a| set_flag(p, a, |b, v| b.notifications_local_only = v)),
    bridge("try_private", |p, a| set_flag(p, a, |b, v| b.try_private = v)),
    bridge("bridge_attempt_unsubscribe", |p, a| set_flag(p, a, |b, v| b.attempt_unsubscribe = v)),
    bridge("bridge_outgoing_retain", |p, a| set_flag(p, a, |b, v| b.outgoing_retain = v)),
    bridge("bridge_max_packet_size", bridge_max_packet_size),
    bridge("bridge_bind_address", bridge_bind_address),
    bridge("bridge_receive_maximum", bridge_receive_maximum),
    bridge("bridge_session_expiry_interval", bridge_session_expiry_interval),
    bridge("bridge_max_topic_alias", bridge_max_topic_alias),
    bridge("bridge_tcp_keepalive", bridge_tcp_keepalive),
    bridge("bridge_tcp_user_timeout", bridge_tcp_user_timeout),
    no_effect("bridge_reload_type", Scope::Bridge, RELOAD_TYPE, bridge_reload_type),
    bridge("bridge_cafile", |p, a| set_path(p, a, |b, v| b.tls.cafile = Some(v))),
    bridge("bridge_capath", |p, a| set_path(p, a, |b, v| b.tls.capath = Some(v))),
    bridge("bridge_certfile", |p, a| set_path(p, a, |b, v| b.tls.certfile = Some(v))),
    bridge("bridge_keyfile", |p, a| set_path(p, a, |b, v| b.tls.keyfile = Some(v))),
    bridge("bridge_insecure", |p, a| set_flag(p, a, |b, v| b.tls.insecure = v)),
    bridge("bridge_alpn", |p, a| set_text(p, a, |b, v| b.tls.alpn = Some(v))),
    bridge("bridge_require_ocsp", bridge_require_ocsp),
    never("bridge_identity", Scope::Bridge, PSK, text),
    never("bridge_psk", Scope::Bridge, PSK, text),
    bridge("bridge_ciphers", |p, a| set_text(p, a, |b, v| b.tls.ciphers = Some(v))),
    not_yet("bridge_ciphers_tls1.3", Scope::Bridge, Area::Bridges, text),
    bridge("bridge_tls_version", bridge_tls_version),
    bridge("bridge_tls_use_os_certs", |p, a| set_flag(p, a, |b, v| b.tls.use_os_certs = v)),
];

/// The bridge of the current file's last `connection` line (there is one: the scope was checked).
fn current(parser: &mut Parser) -> Result<&mut Bridge, Problem> {
    parser
        .file
        .bridge
        .and_then(|index| parser.bridges.get_mut(index))
        .map(|draft| &mut draft.bridge)
        .ok_or(Problem::OutsideBridge)
}

fn set_flag(parser: &mut Parser, args: &mut Args<'_>, set: fn(&mut Bridge, bool)) -> Result<(), Failure> {
    let on = value::boolean(args.value()?)?;
    set(current(parser)?, on);
    Ok(())
}

fn set_text(parser: &mut Parser, args: &mut Args<'_>, set: fn(&mut Bridge, String)) -> Result<(), Failure> {
    let text = parser.string_value(args)?.to_owned();
    set(current(parser)?, text);
    Ok(())
}

fn set_path(parser: &mut Parser, args: &mut Args<'_>, set: fn(&mut Bridge, PathBuf)) -> Result<(), Failure> {
    let path = PathBuf::from(parser.string_value(args)?);
    set(current(parser)?, path);
    Ok(())
}

fn connection(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = args.value()?;
    if let Some(first) = parser.bridges.iter().find(|draft| draft.bridge.name == name) {
        let first = first.bridge.at.clone();
        return Err(Problem::Duplicate {
            what: format!("bridge \"{name}\"").into(),
            first,
        }
        .into());
    }
    parser.bridges.push(BridgeDraft {
        bridge: Bridge::new(name.to_owned(), parser.file.at.clone()),
        address_at: None,
    });
    parser.file.bridge = Some(parser.bridges.len() - 1);
    Ok(())
}

/// `address HOST[:PORT] ...`: one or more addresses, once per bridge. The port is after the last
/// colon, so an IPv6 address needs one (or brackets: `[::1]:1883`).
fn address(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let at = parser.file.at.clone();
    let draft = parser
        .file
        .bridge
        .and_then(|index| parser.bridges.get_mut(index))
        .ok_or(Problem::OutsideBridge)?;
    if let Some(first) = draft.address_at.clone() {
        return Err(Problem::Duplicate {
            what: "the bridge's address list".into(),
            first,
        }
        .into());
    }
    let mut addresses = Vec::new();
    while let Some(address) = args.next() {
        addresses.push(bridge_address(address)?);
    }
    if addresses.is_empty() {
        return Err(Problem::MissingValue.into());
    }
    draft.address_at = Some(at);
    draft.bridge.addresses = addresses;
    Ok(())
}

fn bridge_address(text: &str) -> Result<BridgeAddress, Problem> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') || host.starts_with('[') => {
            let port = value::number::<u16>(port, 1, u16::MAX.into())
                .map_err(|_| Problem::expected("a port number from 1 to 65535", port))?;
            (host, port)
        }
        _ => (text, 1883),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(Problem::expected("HOST[:PORT]", text));
    }
    Ok(BridgeAddress {
        host: host.to_owned(),
        port,
    })
}

/// `topic PATTERN [in|out|both [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]]`, with `""` for an absent
/// pattern or prefix, checked as Mosquitto does: prefixes are topic names (no wildcard), a prefix
/// and the pattern together make a valid filter, and `""` as the pattern needs both prefixes.
fn topic(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let pattern = absent_if_quotes(args.next_raw().ok_or(Problem::MissingValue)?);
    let mut topic = BridgeTopic {
        pattern: pattern.map(str::to_owned),
        direction: BridgeDirection::Out,
        qos: QoS::AtMostOnce,
        local_prefix: None,
        remote_prefix: None,
    };
    if let Some(direction) = args.next() {
        topic.direction = match direction.to_ascii_lowercase().as_str() {
            "out" => BridgeDirection::Out,
            "in" => BridgeDirection::In,
            "both" => BridgeDirection::Both,
            _ => return Err(Problem::expected("in, out or both", direction).into()),
        };
        if let Some(qos) = args.next() {
            topic.qos = match value::integer_in(qos, 0, 2)? {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            topic.local_prefix = args.next().and_then(absent_if_quotes).map(str::to_owned);
            topic.remote_prefix = args.next().and_then(absent_if_quotes).map(str::to_owned);
        }
    }
    if let Some(pattern) = &topic.pattern {
        TopicFilter::new(pattern.as_str())
            .map_err(|error| Problem::expected(format!("a topic filter ({error})"), pattern))?;
    }
    for prefix in [&topic.local_prefix, &topic.remote_prefix].into_iter().flatten() {
        TopicName::new(prefix.as_str())
            .map_err(|_| Problem::expected("a topic prefix without wildcards, or \"\"", prefix))?;
    }
    if topic.pattern.is_none() && (topic.local_prefix.is_none() || topic.remote_prefix.is_none()) {
        return Err(Problem::BridgeRemapping.into());
    }
    for filter in [topic.local_filter(), topic.remote_filter()] {
        TopicFilter::new(filter.as_str()).map_err(|error| {
            Problem::expected(
                format!("a prefix and pattern that make a topic filter ({error})"),
                &filter,
            )
        })?;
    }
    current(parser)?.topics.push(topic);
    Ok(())
}

/// `""` stands for "none" in a bridge topic line.
fn absent_if_quotes(text: &str) -> Option<&str> {
    (text != "\"\"").then_some(text)
}

fn bridge_protocol_version(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [
        ("mqttv31", BridgeProtocol::Mqtt31),
        ("mqttv311", BridgeProtocol::Mqtt311),
        ("mqttv50", BridgeProtocol::Mqtt5),
    ];
    let version = value::choice(args.value()?, "mqttv31, mqttv311 or mqttv50", &choices)?;
    current(parser)?.protocol_version = version;
    Ok(())
}

fn keepalive_interval(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let seconds: u16 = value::number(args.value()?, 0, u16::MAX.into())?;
    current(parser)?.keepalive_interval = seconds;
    Ok(())
}

fn idle_timeout(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let seconds: u64 = value::number(args.value()?, 0, i64::from(u32::MAX))?;
    current(parser)?.idle_timeout = Duration::from_secs(seconds);
    Ok(())
}

fn threshold(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let count: u32 = value::number(args.value()?, 0, i64::from(u32::MAX))?;
    current(parser)?.threshold = count;
    Ok(())
}

fn start_type(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [
        ("automatic", StartType::Automatic),
        ("lazy", StartType::Lazy),
        ("once", StartType::Once),
    ];
    let start = value::choice(args.value()?, "automatic, lazy or once", &choices)?;
    current(parser)?.start_type = start;
    Ok(())
}

/// `restart_timeout BASE [CAP]`: a fixed delay, or a jittered backoff from BASE up to CAP.
fn restart_timeout(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let base = value::integer(args.value()?)?;
    let cap = match args.next() {
        Some(cap) => {
            let cap = value::integer(cap)?;
            if cap < base {
                return Err(Problem::BackoffCapBelowBase { base, cap }.into());
            }
            Some(cap)
        }
        None => None,
    };
    let seconds = |n: i64| Duration::from_secs(u64::try_from(n).unwrap_or(0));
    current(parser)?.restart_timeout = RestartTimeout {
        base: seconds(base),
        cap: cap.map(seconds),
    };
    Ok(())
}

fn notification_topic(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let topic = parser.string_value(args)?;
    TopicName::new(topic).map_err(|reason| Problem::BadTopic {
        got: topic.to_owned(),
        reason,
    })?;
    current(parser)?.notification_topic = Some(topic.to_owned());
    Ok(())
}

fn bridge_max_packet_size(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let size: u32 = value::number(args.value()?, 0, u32::MAX.into())?;
    current(parser)?.max_packet_size = NonZeroU32::new(size);
    Ok(())
}

fn bridge_bind_address(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let address = args.value()?;
    if value::ip_address(address).is_none() && !value::is_host_name(address) {
        return Err(Problem::expected("an IP address or host name", address).into());
    }
    current(parser)?.bind_address = Some(address.to_owned());
    Ok(())
}

fn bridge_receive_maximum(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let count: u16 = value::number(args.value()?, 1, u16::MAX.into())?;
    current(parser)?.receive_maximum = NonZeroU16::new(count);
    Ok(())
}

fn bridge_session_expiry_interval(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let seconds: u32 = value::number(args.value()?, 0, u32::MAX.into())?;
    current(parser)?.session_expiry_interval = Some(seconds);
    Ok(())
}

fn bridge_max_topic_alias(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let count: u16 = value::number(args.value()?, 0, u16::MAX.into())?;
    current(parser)?.max_topic_alias = count;
    Ok(())
}

/// `bridge_tcp_keepalive IDLE INTERVAL COUNT`, all positive.
fn bridge_tcp_keepalive(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let mut values = [0u32; 3];
    for slot in &mut values {
        *slot = value::number(args.value()?, 1, i64::from(i32::MAX))?;
    }
    let [idle, interval, count] = values;
    current(parser)?.tcp_keepalive = Some(TcpKeepalive {
        idle,
        interval,
        count,
    });
    Ok(())
}

/// `bridge_tcp_user_timeout MILLISECONDS`.
fn bridge_tcp_user_timeout(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let ms: u64 = value::number(args.value()?, 0, i64::from(i32::MAX))?;
    current(parser)?.tcp_user_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    Ok(())
}

fn bridge_reload_type(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::choice(
        args.value()?,
        "lazy or immediate",
        &[("lazy", ()), ("immediate", ())],
    )?;
    Ok(())
}

/// `bridge_require_ocsp`: false is what Midge does; true cannot be honoured.
fn bridge_require_ocsp(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    if value::boolean(args.value()?)? {
        parser.notice(crate::config::NoticeKind::CannotHonour { reason: OCSP });
    }
    Ok(())
}

fn bridge_tls_version(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [
        ("tlsv1.3", TlsVersion::V1_3),
        ("tlsv1.2", TlsVersion::V1_2),
        ("tlsv1.1", TlsVersion::V1_1),
        ("tlsv1", TlsVersion::V1_0),
    ];
    let version = value::choice(args.value()?, "tlsv1.3, tlsv1.2, tlsv1.1 or tlsv1", &choices)?;
    current(parser)?.tls.version = Some(version);
    Ok(())
}
