//! MQTT-SN gateway directives (`docs/mqtt-sn.md`): options of the current listener, which must
//! say `protocol mqttsn` (checked once the whole file is read, since `protocol` may come after
//! them). All are Midge's own; Mosquitto reserved `protocol mqttsn` but never implemented it.

use std::time::Duration;

use midge_codec::TopicName;

use super::{Directive, Scope, supported};
use crate::config::Problem;
use crate::config::mqttsn::MqttSnOptions;
use crate::config::parser::{Failure, Parser};
use crate::config::value::{self, Args};

use Scope::Listener as ListenerScope;

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("mqttsn_gateway_id", ListenerScope, gateway_id),
    supported("mqttsn_advertise", ListenerScope, advertise),
    supported("mqttsn_advertise_address", ListenerScope, advertise_address),
    supported("mqttsn_predefined_topic", ListenerScope, predefined_topic),
    supported("mqttsn_predefined_topic_file", ListenerScope, predefined_topic_file),
    supported("mqttsn_qos_neg1", ListenerScope, qos_neg1),
    supported("mqttsn_qos_neg1_username", ListenerScope, qos_neg1_username),
    supported("mqttsn_username", ListenerScope, username),
    supported("mqttsn_max_packet_size", ListenerScope, max_packet_size),
    supported("mqttsn_max_registered_topics", ListenerScope, max_registered_topics),
    supported("mqttsn_max_sleep", ListenerScope, max_sleep),
    supported("mqttsn_retry_interval", ListenerScope, retry_interval),
    supported("mqttsn_retry_count", ListenerScope, retry_count),
    supported("mqttsn_forwarders", ListenerScope, forwarders),
];

/// The current listener's MQTT-SN options; these directives need a `listener` line first.
fn options(parser: &mut Parser) -> Result<&mut MqttSnOptions, Failure> {
    parser.require_listener()?;
    let at = parser.file.at.clone();
    let directive = parser.file.directive.clone();
    let options = &mut parser.current_listener().listener.mqttsn;
    options.first_option.get_or_insert((at, directive));
    Ok(options)
}

fn gateway_id(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let id = value::number(args.value()?, 0, 255)?;
    options(parser)?.gateway_id = id;
    Ok(())
}

fn advertise(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let seconds: u64 = value::number(args.value()?, 0, 65_535)?;
    options(parser)?.advertise = (seconds > 0).then(|| Duration::from_secs(seconds));
    Ok(())
}

fn advertise_address(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let text = args.value()?;
    let address = text
        .parse()
        .map_err(|_| Problem::expected("an address and port such as 255.255.255.255:1884", text))?;
    options(parser)?.advertise_address = Some(address);
    Ok(())
}

/// `mqttsn_predefined_topic ID TOPIC`: ids 1 to 65534, topic names without wildcards, each id
/// and each topic at most once.
fn predefined_topic(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let id: u16 = value::number(args.value()?, 1, 0xFFFE)?;
    let text = parser.string_value(args)?;
    let topic = TopicName::try_from(text).map_err(|reason| Problem::BadTopic {
        got: text.to_owned(),
        reason,
    })?;
    let options = options(parser)?;
    if options
        .predefined_topics
        .iter()
        .any(|(known, name)| *known == id || *name == topic)
    {
        return Err(Problem::expected(
            "a topic id and a topic that no other mqttsn_predefined_topic line of this listener has",
            &format!("{id} {topic}"),
        )
        .into());
    }
    options.predefined_topics.push((id, topic));
    Ok(())
}

fn predefined_topic_file(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = parser.string_value(args)?;
    options(parser)?.predefined_topic_file = Some(path.into());
    Ok(())
}

fn qos_neg1(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let on = value::boolean(args.value()?)?;
    options(parser)?.qos_neg1 = on;
    Ok(())
}

fn qos_neg1_username(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = parser.string_value(args)?.to_owned();
    options(parser)?.qos_neg1_username = Some(name);
    Ok(())
}

fn username(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = parser.string_value(args)?.to_owned();
    options(parser)?.username = Some(name);
    Ok(())
}

fn max_packet_size(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let size = value::number(args.value()?, 16, 65_535)?;
    options(parser)?.max_packet_size = size;
    Ok(())
}

fn max_registered_topics(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let max = value::number(args.value()?, 0, 65_533)?;
    options(parser)?.max_registered_topics = max;
    Ok(())
}

fn max_sleep(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let max = value::duration(args.value()?)?;
    options(parser)?.max_sleep = max.min(Duration::from_secs(65_535));
    Ok(())
}

fn retry_interval(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let seconds: u64 = value::number(args.value()?, 1, 3600)?;
    options(parser)?.retry_interval = Duration::from_secs(seconds);
    Ok(())
}

fn retry_count(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let count = value::number(args.value()?, 0, 255)?;
    options(parser)?.retry_count = count;
    Ok(())
}

fn forwarders(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let on = value::boolean(args.value()?)?;
    options(parser)?.forwarders = on;
    Ok(())
}
