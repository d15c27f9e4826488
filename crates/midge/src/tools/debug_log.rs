//! `-d`: libmosquitto's debug lines ("Client x sending PUBLISH (d0, q1, r0, m1, 't', ... (5
//! bytes))"), printed to stdout from the client's packet trace as each packet goes out or
//! comes in.
//!
//! The client is named as libmosquitto names it: "(null)" until the server assigns an
//! identifier, and QoS 0 messages get the message ids libmosquitto would count.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use midge_client::{Direction, PacketTrace};
use midge_codec::{ConnectReturnCode, Packet, ProtocolVersion, SubscriptionOptions};

#[derive(Debug)]
struct State {
    label: String,
    /// The last message id libmosquitto would have counted: QoS 0 PUBLISHes take the next one
    /// (never on the wire), and SUBSCRIBE, UNSUBSCRIBE and QoS 1 and 2 PUBLISHes count too.
    qos0_mid: u16,
}

/// The trace that prints the lines; `client_id` is the identifier sent in CONNECT.
pub(crate) fn trace(client_id: &str, protocol: ProtocolVersion) -> PacketTrace {
    make(client_id, protocol, false)
}

/// As [`trace`], and after each SUBACK mosquitto_sub's "Subscribed (mid: 1): 0, 1" line
/// (unless `quiet`).
pub(crate) fn trace_with_subscribed(client_id: &str, protocol: ProtocolVersion, quiet: bool) -> PacketTrace {
    make(client_id, protocol, !quiet)
}

fn make(client_id: &str, protocol: ProtocolVersion, subscribed: bool) -> PacketTrace {
    let label = if client_id.is_empty() {
        "(null)".to_owned()
    } else {
        client_id.to_owned()
    };
    let state = Mutex::new(State { label, qos0_mid: 0 });
    Arc::new(move |direction, packet| {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Direction::Received, Packet::ConnAck(connack)) = (direction, packet)
            && let Some(id) = &connack.properties.assigned_client_identifier
        {
            state.label = id.to_string();
        }
        let lines = describe(&mut state.qos0_mid, direction, packet, protocol);
        if direction == Direction::Sent {
            match packet {
                Packet::Subscribe(s) => state.qos0_mid = s.packet_id.get(),
                Packet::Unsubscribe(u) => state.qos0_mid = u.packet_id.get(),
                Packet::Publish(p) => state.qos0_mid = p.packet_id.map_or(state.qos0_mid, |id| id.get()),
                _ => {}
            }
        }
        let mut out = std::io::stdout().lock();
        for line in lines {
            let _ = writeln!(out, "Client {} {line}", state.label);
        }
        if let (true, Direction::Received, Packet::SubAck(suback)) = (subscribed, direction, packet) {
            let codes: Vec<String> = suback
                .reason_codes
                .iter()
                .map(|c| c.as_u8().to_string())
                .collect();
            let _ = writeln!(
                out,
                "Subscribed (mid: {}): {}",
                suback.packet_id,
                codes.join(", ")
            );
        }
        let _ = out.flush();
    })
}

fn options_bits(options: &SubscriptionOptions) -> u8 {
    u8::from(options.no_local) << 2
        | u8::from(options.retain_as_published) << 3
        | (options.retain_handling as u8) << 4
}

fn describe(
    qos0_mid: &mut u16,
    direction: Direction,
    packet: &Packet,
    protocol: ProtocolVersion,
) -> Vec<String> {
    let line = |text: String| vec![text];
    match (direction, packet) {
        (Direction::Sent, Packet::Connect(_)) => line("sending CONNECT".into()),
        (Direction::Received, Packet::ConnAck(connack)) => {
            let code = if protocol.is_v5() {
                connack.reason_code.as_u8()
            } else {
                ConnectReturnCode::from_reason(connack.reason_code) as u8
            };
            line(format!("received CONNACK ({code})"))
        }
        (direction, Packet::Publish(publish)) => {
            let mid = match publish.packet_id {
                Some(id) => id.get(),
                None if direction == Direction::Sent => {
                    *qos0_mid = qos0_mid.wrapping_add(1);
                    *qos0_mid
                }
                None => 0,
            };
            let verb = if direction == Direction::Sent {
                "sending"
            } else {
                "received"
            };
            line(format!(
                "{verb} PUBLISH (d{}, q{}, r{}, m{mid}, '{}', ... ({} bytes))",
                u8::from(publish.dup),
                publish.qos.as_u8(),
                u8::from(publish.retain),
                publish.topic,
                publish.payload.len()
            ))
        }
        (Direction::Sent, Packet::PubAck(ack)) => line(format!(
            "sending PUBACK (m{}, rc{})",
            ack.packet_id,
            ack.reason_code.as_u8()
        )),
        (Direction::Sent, Packet::PubRec(ack)) => line(format!(
            "sending PUBREC (m{}, rc{})",
            ack.packet_id,
            ack.reason_code.as_u8()
        )),
        (Direction::Sent, Packet::PubRel(ack)) => line(format!("sending PUBREL (m{})", ack.packet_id)),
        (Direction::Sent, Packet::PubComp(ack)) => line(format!("sending PUBCOMP (m{})", ack.packet_id)),
        (Direction::Received, Packet::PubAck(ack)) => line(format!(
            "received PUBACK (Mid: {}, RC:{})",
            ack.packet_id,
            ack.reason_code.as_u8()
        )),
        (Direction::Received, Packet::PubRec(ack)) => {
            line(format!("received PUBREC (Mid: {})", ack.packet_id))
        }
        (Direction::Received, Packet::PubRel(ack)) => {
            line(format!("received PUBREL (Mid: {})", ack.packet_id))
        }
        (Direction::Received, Packet::PubComp(ack)) => line(format!(
            "received PUBCOMP (Mid: {}, RC:{})",
            ack.packet_id,
            ack.reason_code.as_u8()
        )),
        (Direction::Sent, Packet::Subscribe(subscribe)) => subscribe
            .subscriptions
            .iter()
            .map(|s| {
                format!(
                    "sending SUBSCRIBE (Mid: {}, Topic: {}, QoS: {}, Options: 0x{:02x})",
                    subscribe.packet_id,
                    s.filter,
                    s.options.qos.as_u8(),
                    options_bits(&s.options)
                )
            })
            .collect(),
        (Direction::Received, Packet::SubAck(_)) => line("received SUBACK".into()),
        (Direction::Sent, Packet::Unsubscribe(unsubscribe)) => unsubscribe
            .filters
            .iter()
            .map(|f| format!("sending UNSUBSCRIBE (Mid: {}, Topic: {f})", unsubscribe.packet_id))
            .collect(),
        (Direction::Received, Packet::UnsubAck(_)) => line("received UNSUBACK".into()),
        (Direction::Sent, Packet::PingReq) => line("sending PINGREQ".into()),
        (Direction::Received, Packet::PingResp) => line("received PINGRESP".into()),
        (Direction::Sent, Packet::Disconnect(_)) => line("sending DISCONNECT".into()),
        (Direction::Received, Packet::Disconnect(d)) => {
            line(format!("received DISCONNECT ({})", d.reason_code.as_u8()))
        }
        _ => Vec::new(),
    }
}
