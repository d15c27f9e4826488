//! Bridge directives: a `connection NAME` line starts a bridge block and the others configure it.
//! None is supported yet; each is checked as Mosquitto checks it (a bridge option outside a block,
//! a repeated bridge name or address list, a bad QoS or port, a block without `address` or
//! `topic` are all errors), so that a file Mosquitto refuses is refused now.

use super::{Area, Directive, Scope, flag, not_yet, text, whole_number};
use crate::config::Problem;
use crate::config::parser::{BridgeDraft, Failure, Parser};
use crate::config::value::{self, Args};

const fn bridge(name: &'static str, apply: super::Apply) -> Directive {
    not_yet(name, Scope::Bridge, Area::Bridges, apply)
}

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    not_yet("connection", Scope::Broker, Area::Bridges, connection),
    bridge("address", address),
    bridge("addresses", address),
    bridge("topic", topic),
    bridge("round_robin", flag),
    bridge("bridge_protocol_version", bridge_protocol_version),
    bridge("cleansession", flag),
    bridge("local_cleansession", flag),
    bridge("keepalive_interval", keepalive_interval),
    bridge("idle_timeout", whole_number),
    bridge("start_type", start_type),
    bridge("threshold", whole_number),
    bridge("restart_timeout", restart_timeout),
    bridge("remote_clientid", text),
    bridge("clientid", text),
    bridge("local_clientid", text),
    bridge("remote_username", text),
    bridge("username", text),
    bridge("remote_password", text),
    bridge("password", text),
    bridge("local_username", text),
    bridge("local_password", text),
    bridge("notifications", flag),
    bridge("notification_topic", text),
    bridge("notifications_local_only", flag),
    bridge("try_private", flag),
    bridge("bridge_attempt_unsubscribe", flag),
    bridge("bridge_outgoing_retain", flag),
    bridge("bridge_max_packet_size", bridge_max_packet_size),
    bridge("bridge_bind_address", text),
    bridge("bridge_receive_maximum", bridge_receive_maximum),
    bridge("bridge_session_expiry_interval", bridge_session_expiry_interval),
    bridge("bridge_max_topic_alias", bridge_max_topic_alias),
    bridge("bridge_tcp_keepalive", bridge_tcp_keepalive),
    bridge("bridge_tcp_user_timeout", bridge_tcp_user_timeout),
    bridge("bridge_reload_type", bridge_reload_type),
    bridge("bridge_cafile", text),
    bridge("bridge_capath", text),
    bridge("bridge_certfile", text),
    bridge("bridge_keyfile", text),
    bridge("bridge_insecure", flag),
    bridge("bridge_alpn", text),
    bridge("bridge_require_ocsp", flag),
    bridge("bridge_identity", text),
    bridge("bridge_psk", text),
    bridge("bridge_ciphers", text),
    bridge("bridge_ciphers_tls1.3", text),
    bridge("bridge_tls_version", text),
    bridge("bridge_tls_use_os_certs", flag),
];

/// The bridge of the current file's last `connection` line (there is one: the scope was checked).
fn current(parser: &mut Parser) -> Option<&mut BridgeDraft> {
    parser.file.bridge.and_then(|index| parser.bridges.get_mut(index))
}

fn connection(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = args.value()?;
    if let Some(first) = parser.bridges.iter().find(|bridge| bridge.name == name) {
        let first = first.at.clone();
        return Err(Problem::Duplicate {
            what: format!("bridge \"{name}\"").into(),
            first,
        }
        .into());
    }
    parser.bridges.push(BridgeDraft {
        name: name.to_owned(),
        at: parser.file.at.clone(),
        address_at: None,
        topics: 0,
    });
    parser.file.bridge = Some(parser.bridges.len() - 1);
    Ok(())
}

/// `address HOST[:PORT] ...`: one or more addresses, once per bridge. The port is after the last
/// colon, so an IPv6 address needs one.
fn address(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let at = parser.file.at.clone();
    let Some(bridge) = current(parser) else {
        return Err(Problem::OutsideBridge.into());
    };
    if let Some(first) = bridge.address_at.clone() {
        return Err(Problem::Duplicate {
            what: "the bridge's address list".into(),
            first,
        }
        .into());
    }
    let mut count = 0;
    while let Some(address) = args.next() {
        if let Some((host, port)) = address.rsplit_once(':') {
            value::number::<u16>(port, 1, u16::MAX.into())
                .map_err(|_| Problem::expected("a port number from 1 to 65535", port))?;
            if host.is_empty() {
                return Err(Problem::expected("HOST[:PORT]", address).into());
            }
        }
        count += 1;
    }
    if count == 0 {
        return Err(Problem::MissingValue.into());
    }
    bridge.address_at = Some(at);
    Ok(())
}

/// `topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`.
fn topic(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    args.next_raw().ok_or(Problem::MissingValue)?;
    if let Some(direction) = args.next() {
        if !["in", "out", "both"]
            .iter()
            .any(|d| d.eq_ignore_ascii_case(direction))
        {
            return Err(Problem::expected("in, out or both", direction).into());
        }
        if let Some(qos) = args.next() {
            value::integer_in(qos, 0, 2)?;
            args.next();
            args.next();
        }
    }
    if let Some(bridge) = current(parser) {
        bridge.topics += 1;
    }
    Ok(())
}

fn bridge_protocol_version(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [("mqttv31", ()), ("mqttv311", ()), ("mqttv50", ())];
    value::choice(args.value()?, "mqttv31, mqttv311 or mqttv50", &choices)?;
    Ok(())
}

fn keepalive_interval(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer_in(args.value()?, 0, u16::MAX.into())?;
    Ok(())
}

fn start_type(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [("automatic", ()), ("lazy", ()), ("once", ())];
    value::choice(args.value()?, "automatic, lazy or once", &choices)?;
    Ok(())
}

/// `restart_timeout BASE [CAP]`: a fixed delay, or a jittered backoff from BASE up to CAP.
fn restart_timeout(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let base = value::integer(args.value()?)?;
    if let Some(cap) = args.next() {
        let cap = value::integer(cap)?;
        if cap < base {
            return Err(Problem::BackoffCapBelowBase { base, cap }.into());
        }
    }
    Ok(())
}

fn bridge_max_packet_size(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer_in(args.value()?, 0, u32::MAX.into())?;
    Ok(())
}

fn bridge_receive_maximum(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer_in(args.value()?, 1, u16::MAX.into())?;
    Ok(())
}

fn bridge_session_expiry_interval(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer_in(args.value()?, 0, u32::MAX.into())?;
    Ok(())
}

fn bridge_max_topic_alias(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer_in(args.value()?, 0, u16::MAX.into())?;
    Ok(())
}

/// `bridge_tcp_keepalive IDLE INTERVAL COUNT`, all positive.
fn bridge_tcp_keepalive(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    for _ in 0..3 {
        value::integer_in(args.value()?, 1, i64::from(i32::MAX))?;
    }
    Ok(())
}

fn bridge_tcp_user_timeout(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer_in(args.value()?, 0, i64::from(i32::MAX))?;
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
