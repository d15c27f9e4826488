//! Listener directives: `listener` itself, the deprecated `port` and `bind_address` of the default
//! listener, and the options of the current listener.

use midge_codec::{ProtocolVersion, QoS, TopicName};

use super::general::optional_count;
use super::{Area, Directive, Scope, count, count_u16, flag, no_effect, not_yet, supported, text};
use crate::config::listener::{
    BindAddress, Listener, ListenerAddress, ListenerOrigin, Protocol, SocketDomain,
};
use crate::config::parser::{self, Failure, ListenerDraft, Parser, Target};
use crate::config::value::{self, Args};
use crate::config::{NoticeKind, Problem};

use Scope::{Broker, Listener as ListenerScope};

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("listener", Broker, listener),
    supported("port", Broker, port),
    supported("bind_address", Broker, bind_address),
    supported("protocol", ListenerScope, protocol),
    supported("bind_interface", ListenerScope, bind_interface),
    supported("socket_domain", ListenerScope, socket_domain),
    supported("max_connections", ListenerScope, max_connections),
    supported("max_connection_rate", ListenerScope, max_connection_rate),
    supported("mount_point", ListenerScope, mount_point),
    supported("max_qos", ListenerScope, max_qos),
    supported("maximum_qos", ListenerScope, max_qos),
    supported("max_topic_alias", ListenerScope, max_topic_alias),
    supported("max_topic_alias_broker", ListenerScope, max_topic_alias_broker),
    supported("use_username_as_clientid", ListenerScope, use_username_as_clientid),
    supported("accept_protocol_versions", ListenerScope, accept_protocol_versions),
    supported("server_reference", ListenerScope, server_reference),
    supported("server_moved", ListenerScope, server_moved),
    not_yet("http_dir", ListenerScope, Area::Websockets, text),
    not_yet("websockets_origin", ListenerScope, Area::Websockets, text),
    not_yet("websockets_headers_size", Broker, Area::Websockets, count_u16),
    not_yet("enable_proxy_protocol", ListenerScope, Area::Other, enable_proxy_protocol),
    not_yet("proxy_protocol_v2_require_tls", ListenerScope, Area::Other, flag),
    no_effect("packet_buffer_size", ListenerScope, "Midge grows connection buffers on demand", count),
];

/// `listener PORT [ADDRESS]`: a new listener, the target of the listener options that follow in
/// this file. With port 0, an IP address (or nothing) asks for any free TCP port and anything
/// else is a Unix socket path.
fn listener(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let port = value::port(args.value()?)?;
    let address = match (port, args.next()) {
        (0, Some(text)) => match value::ip_address(text) {
            Some(ip) => ListenerAddress::Tcp {
                port,
                bind: Some(BindAddress::Ip(ip)),
            },
            None => ListenerAddress::Unix { path: text.into() },
        },
        (port, Some(text)) => ListenerAddress::Tcp {
            port,
            bind: Some(value::bind_address(text)?),
        },
        (port, None) => ListenerAddress::Tcp { port, bind: None },
    };
    if let Some(first) = parser::duplicate_of(&address, &parser.listeners) {
        return Err(Problem::DuplicateListener {
            address: address.to_string(),
            first,
        }
        .into());
    }
    parser.local_only = false;
    let origin = ListenerOrigin::Declared(parser.file.at.clone());
    parser
        .listeners
        .push(ListenerDraft::new(Listener::new(address, origin)));
    parser.file.listener = Some(parser.listeners.len() - 1);
    Ok(())
}

/// Records the first `port` or `bind_address` line, which declares the default listener.
fn declare_default_listener(parser: &mut Parser, advice: &'static str) {
    parser.local_only = false;
    parser.notice(NoticeKind::Deprecated { advice });
    parser.set_once(Target::Broker);
    if parser.default_declared_at.is_none() {
        parser.default_declared_at = Some((parser.file.at.clone(), parser.file.directive.clone()));
    }
}

fn port(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let port = value::port(args.value()?)?;
    declare_default_listener(parser, "use `listener PORT` instead");
    parser.default_port = Some(port);
    Ok(())
}

fn bind_address(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let address = value::bind_address(args.value()?)?;
    declare_default_listener(parser, "use `listener PORT ADDRESS` instead");
    parser.default_bind = Some(address);
    Ok(())
}

fn protocol(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [
        ("mqtt", Protocol::Mqtt),
        ("websockets", Protocol::Websockets),
        ("http_api", Protocol::HttpApi),
        ("mqttsn", Protocol::MqttSn),
    ];
    let protocol = value::choice(args.value()?, "mqtt, websockets, mqttsn or http_api", &choices)?;
    parser.listener_option(false);
    let not_yet = match protocol {
        Protocol::Mqtt => None,
        Protocol::Websockets => None,
        Protocol::MqttSn => None,
        Protocol::HttpApi => Some(Area::Other),
    };
    let draft = parser.current_listener();
    draft.listener.protocol = protocol;
    if let Some(area) = not_yet {
        if !draft.listener.not_supported_yet.contains(&area) {
            draft.listener.not_supported_yet.push(area);
        }
        parser.notice(NoticeKind::NotSupportedYet { area });
    }
    Ok(())
}

fn bind_interface(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = value::interface_name(args.value()?)?;
    parser.listener_option(false);
    let target = parser.listener_target();
    parser.set_once(target);
    parser.current_listener().listener.bind_interface = Some(name);
    Ok(())
}

fn socket_domain(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [("ipv4", SocketDomain::Ipv4), ("ipv6", SocketDomain::Ipv6)];
    let domain = value::choice(args.value()?, "ipv4 or ipv6", &choices)?;
    parser.listener_option(false);
    parser.current_listener().listener.socket_domain = Some(domain);
    Ok(())
}

fn max_connections(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let max = optional_count(args)?;
    parser.listener_option(false);
    parser.current_listener().listener.max_connections = max;
    Ok(())
}

/// `max_connection_rate N` (Midge): new connections per second from one address; 0 or -1: no
/// limit.
fn max_connection_rate(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let rate = optional_count(args)?.filter(|n| *n > 0);
    parser.listener_option(false);
    parser.current_listener().listener.max_connection_rate = rate;
    Ok(())
}

/// Mosquitto refuses `mount_point` until some `listener` line has been read (in any file).
fn mount_point(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    if parser.listeners.is_empty() {
        return Err(Problem::OutsideListener.into());
    }
    let text = parser.string_value(args)?;
    let topic = TopicName::try_from(text).map_err(|reason| Problem::BadTopic {
        got: text.to_owned(),
        reason,
    })?;
    let target = parser.listener_target();
    parser.set_once(target);
    parser.current_listener().listener.mount_point = Some(topic);
    Ok(())
}

fn max_qos(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let bits: u8 = value::number(args.value()?, 0, 2)?;
    let qos = QoS::from_bits(bits).unwrap_or(QoS::ExactlyOnce);
    parser.listener_option(false);
    parser.current_listener().listener.max_qos = qos;
    Ok(())
}

fn max_topic_alias(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let max = value::number(args.value()?, 0, u16::MAX.into())?;
    parser.listener_option(false);
    parser.current_listener().listener.max_topic_alias = max;
    Ok(())
}

fn max_topic_alias_broker(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let max = value::number(args.value()?, 0, u16::MAX.into())?;
    parser.listener_option(false);
    parser.current_listener().listener.max_topic_alias_broker = max;
    Ok(())
}

/// `server_reference REFERENCE` (Midge): the listener serves no one; every client is refused
/// and MQTT 5 clients are told to use REFERENCE (text to the end of the line: an address, or
/// several separated by spaces), with CONNACK 0x9C Use another server (§4.11).
fn server_reference(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let reference = parser.string_value(args)?;
    if reference.is_empty() || reference.contains('\0') {
        return Err(Problem::expected("a server reference", reference).into());
    }
    parser.listener_option(false);
    let target = parser.listener_target();
    parser.set_once(target);
    parser.current_listener().listener.server_reference = Some(reference.to_owned());
    Ok(())
}

/// `server_moved BOOL` (Midge): with `server_reference`, refuse with 0x9D Server moved (for
/// good) instead of 0x9C Use another server (for now).
fn server_moved(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let moved = value::boolean(args.value()?)?;
    parser.listener_option(false);
    let at = moved.then(|| parser.file.at.clone());
    let draft = parser.current_listener();
    draft.listener.server_moved = moved;
    draft.moved_at = at;
    Ok(())
}

fn use_username_as_clientid(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let on = value::boolean(args.value()?)?;
    parser.listener_option(false);
    parser.current_listener().listener.use_username_as_clientid = on;
    Ok(())
}

/// `accept_protocol_versions 3, 4, 5` (Mosquitto 2.1): protocol levels separated by commas or
/// blanks; 3 is MQTT 3.1, 4 is 3.1.1, 5 is 5.0.
fn accept_protocol_versions(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.require_listener()?;
    let list = args.rest_of_line()?;
    let choices = [
        ("3", ProtocolVersion::V31),
        ("4", ProtocolVersion::V311),
        ("5", ProtocolVersion::V5),
    ];
    let mut versions = Vec::new();
    for level in list.split([',', ' ', '\t']).filter(|level| !level.is_empty()) {
        versions.push(value::choice(level, "protocol levels 3, 4 or 5", &choices)?);
    }
    if versions.is_empty() {
        return Err(Problem::MissingValue.into());
    }
    versions.sort_unstable();
    versions.dedup();
    parser.current_listener().listener.accept_protocol_versions = versions;
    Ok(())
}

fn enable_proxy_protocol(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::choice(args.value()?, "1 or 2", &[("1", ()), ("2", ())])?;
    Ok(())
}
