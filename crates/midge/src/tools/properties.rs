//! `-D command identifier value`: MQTT 5 properties set by Mosquitto's names
//! (`user-property`, `message-expiry-interval`, ...) for CONNECT, PUBLISH, SUBSCRIBE,
//! UNSUBSCRIBE, DISCONNECT and the will, with Mosquitto's messages for each mistake.
//!
//! Values are read with C's `atol`, as Mosquitto does: `abc` is 0, `12x` is 12.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use midge_codec::properties::{
    ConnectProperties, DisconnectProperties, PublishProperties, SubscribeProperties, UnsubscribeProperties,
    WillProperties,
};
use midge_codec::{PayloadFormat, SubscriptionId, TopicName, UserProperty};

use super::args::atol;
use super::mosquitto_text::MosqError;

/// The properties `-D` set, per packet.
#[derive(Debug, Default, Clone)]
pub(crate) struct ToolProperties {
    pub(crate) connect: ConnectProperties,
    pub(crate) publish: PublishProperties,
    pub(crate) subscribe: SubscribeProperties,
    pub(crate) unsubscribe: UnsubscribeProperties,
    pub(crate) disconnect: DisconnectProperties,
    pub(crate) will: WillProperties,
    /// A value Mosquitto accepts on the command line but refuses when it checks the packet's
    /// properties (a zero Receive Maximum, a boolean of 2): the packet's name, for
    /// "Error in CONNECT properties: ...".
    pub(crate) invalid: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Connect,
    Publish,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Will,
    /// Commands Mosquitto knows but a client never sends with properties from `-D`.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Byte,
    Int16,
    Int32,
    VarInt,
    Binary,
    Text,
    Pair,
}

/// Property name, identifier and wire type, and the commands it may appear in.
const PROPERTIES: &[(&str, Kind, &[Cmd])] = {
    use Cmd::*;
    use Kind::*;
    &[
        ("payload-format-indicator", Byte, &[Publish, Will]),
        ("message-expiry-interval", Int32, &[Publish, Will]),
        ("content-type", Text, &[Publish, Will]),
        ("response-topic", Text, &[Publish, Will]),
        ("correlation-data", Binary, &[Publish, Will]),
        ("subscription-identifier", VarInt, &[Publish, Subscribe]),
        ("session-expiry-interval", Int32, &[Connect, Disconnect]),
        ("assigned-client-identifier", Text, &[]),
        ("server-keep-alive", Int16, &[]),
        ("authentication-method", Text, &[Connect, Other]),
        ("authentication-data", Binary, &[Connect, Other]),
        ("request-problem-information", Byte, &[Connect]),
        ("will-delay-interval", Int32, &[Will]),
        ("request-response-information", Byte, &[Connect]),
        ("response-information", Text, &[]),
        ("server-reference", Text, &[Disconnect]),
        ("reason-string", Text, &[Disconnect, Other]),
        ("receive-maximum", Int16, &[Connect]),
        ("topic-alias-maximum", Int16, &[Connect]),
        ("topic-alias", Int16, &[Publish]),
        ("maximum-qos", Byte, &[]),
        ("retain-available", Byte, &[]),
        (
            "user-property",
            Pair,
            &[Connect, Publish, Subscribe, Unsubscribe, Disconnect, Will, Other],
        ),
        ("maximum-packet-size", Int32, &[Connect]),
        ("wildcard-subscription-available", Byte, &[]),
        ("subscription-identifier-available", Byte, &[]),
        ("shared-subscription-available", Byte, &[]),
    ]
};

fn command(name: &str) -> Option<Cmd> {
    Some(match name {
        "connect" => Cmd::Connect,
        "publish" => Cmd::Publish,
        "subscribe" => Cmd::Subscribe,
        "unsubscribe" => Cmd::Unsubscribe,
        "disconnect" => Cmd::Disconnect,
        "will" => Cmd::Will,
        "connack" | "puback" | "pubrec" | "pubrel" | "pubcomp" | "suback" | "unsuback" | "auth" => Cmd::Other,
        _ => return None,
    })
}

const NOT_ENOUGH: &str = "Error: --property argument given but not enough arguments specified.\n\n";

impl ToolProperties {
    /// Parses one `-D` whose arguments start at `args[*i]`; on success `*i` is left on its last
    /// argument. The error is the text Mosquitto prints.
    pub(crate) fn parse(&mut self, args: &[String], i: &mut usize) -> Result<(), String> {
        let arg = |n: usize| args.get(*i + n).map(String::as_str);
        let (Some(cmd_name), Some(prop_name)) = (arg(0), arg(1)) else {
            return Err(NOT_ENOUGH.into());
        };
        let cmd = command(cmd_name).ok_or("Error: Invalid command given in --property argument.\n\n")?;
        let &(_, kind, allowed) = PROPERTIES
            .iter()
            .find(|(name, ..)| *name == prop_name)
            .ok_or("Error: Invalid property name given in --property argument.\n\n")?;
        if !allowed.contains(&cmd) {
            return Err(format!(
                "Error: {prop_name} property not allowed for {cmd_name} in --property argument.\n\n"
            ));
        }
        let (key, value) = if kind == Kind::Pair {
            let (Some(key), Some(value)) = (arg(2), arg(3)) else {
                return Err(NOT_ENOUGH.into());
            };
            *i += 3;
            (key, value)
        } else {
            let Some(value) = arg(2) else {
                return Err(NOT_ENOUGH.into());
            };
            *i += 2;
            ("", value)
        };
        let number = atol(value);
        let max = match kind {
            Kind::Byte => i64::from(u8::MAX),
            Kind::Int16 => i64::from(u16::MAX),
            Kind::Int32 => i64::from(u32::MAX),
            Kind::VarInt => i64::from(SubscriptionId::MAX),
            _ => i64::MAX,
        };
        if !(0..=max).contains(&number) {
            return Err(format!(
                "Error: Property value ({number}) out of range for property {prop_name}.\n\n"
            ));
        }
        self.set(cmd, prop_name, number, key, value);
        Ok(())
    }

    fn set(&mut self, cmd: Cmd, name: &str, number: i64, key: &str, value: &str) {
        let byte = u8::try_from(number).unwrap_or(u8::MAX);
        let int16 = u16::try_from(number).unwrap_or(u16::MAX);
        let int32 = u32::try_from(number).unwrap_or(u32::MAX);
        let packet = match cmd {
            Cmd::Connect => "CONNECT",
            Cmd::Publish => "PUBLISH",
            Cmd::Subscribe => "SUBSCRIBE",
            Cmd::Unsubscribe => "UNSUBSCRIBE",
            Cmd::Disconnect => "DISCONNECT",
            Cmd::Will => "Will",
            Cmd::Other => return,
        };
        let mut invalid = false;
        let user = || UserProperty::new(key.to_owned(), value.to_owned());
        let format = match byte {
            0 => Some(PayloadFormat::Unspecified),
            1 => Some(PayloadFormat::Utf8),
            _ => None,
        };
        let boolean = match byte {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        let topic = TopicName::new(value).ok();
        let binary = Bytes::copy_from_slice(value.as_bytes());
        match (cmd, name) {
            (_, "user-property") => match cmd {
                Cmd::Connect => self.connect.user_properties.push(user()),
                Cmd::Publish => self.publish.user_properties.push(user()),
                Cmd::Subscribe => self.subscribe.user_properties.push(user()),
                Cmd::Unsubscribe => self.unsubscribe.user_properties.push(user()),
                Cmd::Disconnect => self.disconnect.user_properties.push(user()),
                Cmd::Will => self.will.user_properties.push(user()),
                Cmd::Other => {}
            },
            (Cmd::Publish, "payload-format-indicator") => {
                invalid = format.is_none();
                self.publish.payload_format_indicator = format;
            }
            (Cmd::Will, "payload-format-indicator") => {
                invalid = format.is_none();
                self.will.payload_format_indicator = format;
            }
            (Cmd::Publish, "message-expiry-interval") => self.publish.message_expiry_interval = Some(int32),
            (Cmd::Will, "message-expiry-interval") => self.will.message_expiry_interval = Some(int32),
            (Cmd::Publish, "content-type") => self.publish.content_type = Some(value.into()),
            (Cmd::Will, "content-type") => self.will.content_type = Some(value.into()),
            (Cmd::Publish, "response-topic") => {
                invalid = topic.is_none();
                self.publish.response_topic = topic;
            }
            (Cmd::Will, "response-topic") => {
                invalid = topic.is_none();
                self.will.response_topic = topic;
            }
            (Cmd::Publish, "correlation-data") => self.publish.correlation_data = Some(binary),
            (Cmd::Will, "correlation-data") => self.will.correlation_data = Some(binary),
            (Cmd::Publish, "subscription-identifier") => {
                invalid = true;
            }
            (Cmd::Subscribe, "subscription-identifier") => {
                let id = u32::try_from(number).ok().and_then(SubscriptionId::new);
                invalid = id.is_none();
                self.subscribe.subscription_identifier = id;
            }
            (Cmd::Connect, "session-expiry-interval") => self.connect.session_expiry_interval = Some(int32),
            (Cmd::Disconnect, "session-expiry-interval") => {
                self.disconnect.session_expiry_interval = Some(int32)
            }
            (Cmd::Connect, "authentication-method") => {
                self.connect.authentication_method = Some(value.into())
            }
            (Cmd::Connect, "authentication-data") => self.connect.authentication_data = Some(binary),
            (Cmd::Connect, "request-problem-information") => {
                invalid = boolean.is_none();
                self.connect.request_problem_information = boolean;
            }
            (Cmd::Connect, "request-response-information") => {
                invalid = boolean.is_none();
                self.connect.request_response_information = boolean;
            }
            (Cmd::Will, "will-delay-interval") => self.will.will_delay_interval = Some(int32),
            (Cmd::Disconnect, "server-reference") => self.disconnect.server_reference = Some(value.into()),
            (Cmd::Disconnect, "reason-string") => self.disconnect.reason_string = Some(value.into()),
            (Cmd::Connect, "receive-maximum") => {
                self.connect.receive_maximum = NonZeroU16::new(int16);
                invalid = self.connect.receive_maximum.is_none();
            }
            (Cmd::Connect, "topic-alias-maximum") => self.connect.topic_alias_maximum = Some(int16),
            (Cmd::Publish, "topic-alias") => {
                self.publish.topic_alias = NonZeroU16::new(int16);
                invalid = self.publish.topic_alias.is_none();
            }
            (Cmd::Connect, "maximum-packet-size") => {
                self.connect.maximum_packet_size = NonZeroU32::new(int32);
                invalid = self.connect.maximum_packet_size.is_none();
            }
            _ => {}
        }
        if invalid && self.invalid.is_none() {
            self.invalid = Some(packet);
        }
    }

    /// Mosquitto's check of the assembled properties, after all flags are read: the message for
    /// a value the protocol forbids.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.invalid {
            None => Ok(()),
            Some(packet) => Err(format!(
                "Error in {packet} properties: {}\n",
                MosqError::Protocol.message()
            )),
        }
    }
}
