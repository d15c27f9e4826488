"""MQTT 5 features as Python paho-mqtt 2.x (protocol=MQTTv5) sees them, on the normal path and,
where paho can be made to break the rule, the protocol error: server redirection, Response
Information, Reason Strings and Request Problem Information, CONNACK capabilities from
configuration (Server Keep Alive, Assigned Client Identifier) and the DISCONNECT that follows
asking for what is not there, max_qos, Payload Format Indicator and Content Type, No Local,
Retain As Published, Retain Handling, Subscription Identifiers, message expiry, the Session
Expiry Interval changed at DISCONNECT, User Properties on every packet a client sends, Receive
Maximum and Maximum Packet Size both ways, topic aliases, and the DISCONNECTs the broker sends
of its own accord.

paho keeps few of the server's limits by itself (not its Receive Maximum, Maximum Packet Size
or Topic Alias Maximum), which lets these tests break them as a careless client would. The
same features with rumqttc are in crates/midge/tests/rumqttc_v5.rs; the Rust tests in
crates/midge/tests (capabilities.rs, problem_information.rs, delivery.rs, disconnect_reasons.rs)
check them packet by packet. docs/conformance.md maps each feature to its tests.
"""
import queue
import re
import time
import unittest
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from interop.harness import Broker, WAIT


def props(packet_type, **values):
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


class V5Client:
    """A paho MQTT 5 client with its loop running and every event on a queue."""

    def __init__(self, broker, client_id, connect_props=None, clean_start=True, keepalive=30,
                 will=None, wait=True, manual_ack=False):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        self.connacks = queue.Queue()
        self.messages = queue.Queue()
        self.acks = queue.Queue()
        self.disconnects = queue.Queue()
        self.c.on_connect = lambda c, u, flags, rc, p: self.connacks.put((flags, rc, p))
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_publish = lambda c, u, mid, rc, p: self.acks.put(("puback", rc, p))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.acks.put(("suback", rcs, p))
        self.c.on_unsubscribe = lambda c, u, mid, rcs, p: self.acks.put(("unsuback", rcs, p))
        self.c.on_disconnect = lambda c, u, flags, rc, p: self.disconnects.put((rc, p))
        if will:
            self.c.will_set(*will)
        self.c.connect("127.0.0.1", broker.port, keepalive=keepalive, clean_start=clean_start,
                       properties=connect_props)
        self.c.loop_start()
        if wait:
            self.flags, self.rc, self.props = self.connacks.get(timeout=WAIT)

    def ack(self, kind):
        got, rc, p = self.acks.get(timeout=WAIT)
        assert got == kind, (got, kind)
        return rc, p

    def subscribe(self, topic, options, properties=None):
        self.c.subscribe(topic, options=options, properties=properties)
        rcs, _ = self.ack("suback")
        return [rc.value for rc in rcs]

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        """Publishes and returns the acknowledgement's reason and properties (paho reports a
        QoS 0 message once it is written)."""
        self.c.publish(topic, payload, qos, retain, properties=properties)
        return self.ack("puback")

    def message(self):
        return self.messages.get(timeout=WAIT)

    def no_message(self, quiet=0.4):
        try:
            m = self.messages.get(timeout=quiet)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def disconnected(self):
        rc, p = self.disconnects.get(timeout=WAIT)
        return rc.value, p

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


class Mqtt5(unittest.TestCase):
    extra = ""

    def setUp(self):
        self.broker = Broker(self.extra)
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        self.broker.close()

    def client(self, *args, **kwargs):
        c = V5Client(self.broker, *args, **kwargs)
        self.clients.append(c)
        return c


class Redirection(Mqtt5):
    extra = "server_reference other.example:1883"

    def test_paho_hears_use_another_server_with_the_reference(self):
        c = self.client("moving")
        self.assertEqual(c.rc.value, 0x9C)
        self.assertEqual(c.props.ServerReference, "other.example:1883")
        self.broker.wait_for_log("server use another server: other.example:1883")


class ServerMoved(Mqtt5):
    extra = "server_reference other.example:1883\nserver_moved true"

    def test_paho_hears_server_moved_with_the_reference(self):
        c = self.client("moved")
        self.assertEqual(c.rc.value, 0x9D)
        self.assertEqual(c.props.ServerReference, "other.example:1883")


class ResponseInformation(Mqtt5):
    extra = "response_information replies/"

    def test_paho_gets_a_response_topic_root_and_a_request_comes_back_on_it(self):
        asking = self.client("requester", props(PacketTypes.CONNECT, RequestResponseInformation=1))
        root = asking.props.ResponseInformation
        self.assertEqual(root, "replies/requester")
        plain = self.client("plain")
        self.assertFalse(hasattr(plain.props, "ResponseInformation"), "[MQTT-3.1.2-28]")
        # The responder answers on the Response Topic the requester built from it.
        responder = self.client("responder")
        responder.subscribe("service/#", SubscribeOptions(qos=1))
        asking.subscribe(f"{root}/#", SubscribeOptions(qos=1))
        asking.publish("service/time", b"now?", 1, properties=props(
            PacketTypes.PUBLISH, ResponseTopic=f"{root}/time", CorrelationData=b"42"))
        request = responder.message()
        responder.publish(request.properties.ResponseTopic, b"noon", 1, properties=props(
            PacketTypes.PUBLISH, CorrelationData=request.properties.CorrelationData))
        answer = asking.message()
        self.assertEqual((answer.topic, answer.payload, answer.properties.CorrelationData),
                         ("replies/requester/time", b"noon", b"42"))


class ProblemInformation(Mqtt5):
    def test_a_refused_publish_is_explained_unless_paho_asked_not_to(self):
        bad = props(PacketTypes.PUBLISH, PayloadFormatIndicator=1)
        plain = self.client("plain")
        rc, p = plain.publish("pfi/x", b"\xff\xfe", 1, properties=bad)
        self.assertEqual(rc.value, 0x99)
        self.assertIn("UTF-8", p.ReasonString)
        quiet = self.client("quiet", props(PacketTypes.CONNECT, RequestProblemInformation=0))
        rc, p = quiet.publish("pfi/x", b"\xff\xfe", 1, properties=bad)
        self.assertEqual(rc.value, 0x99)
        self.assertFalse(hasattr(p, "ReasonString"), "[MQTT-3.1.2-29]")
        # Valid UTF-8 passes, and the indicator is forwarded [MQTT-3.3.2-4].
        sub = self.client("sub")
        sub.subscribe("pfi/#", SubscribeOptions(qos=1))
        rc, _ = plain.publish("pfi/x", "grüß".encode(), 1, properties=bad)
        self.assertEqual(rc.value, 0)
        m = sub.message()
        self.assertEqual((m.payload.decode(), m.properties.PayloadFormatIndicator), ("grüß", 1))


class Capabilities(Mqtt5):
    extra = ("max_qos 1\nretain_available false\nwildcard_subscription_available false\n"
             "subscription_identifier_available false\nshared_subscription_available false")

    def test_paho_reads_the_capabilities_and_hears_why_it_is_disconnected(self):
        c = self.client("caps")
        self.assertEqual(c.props.MaximumQoS, 1)
        self.assertEqual(c.props.RetainAvailable, 0)
        self.assertEqual(c.props.WildcardSubscriptionAvailable, 0)
        self.assertEqual(c.props.SubscriptionIdentifierAvailable, 0)
        self.assertEqual(c.props.SharedSubscriptionAvailable, 0)
        cases = [
            ("id", lambda c: c.c.subscribe("a/b", options=SubscribeOptions(qos=0),
                                           properties=props(PacketTypes.SUBSCRIBE,
                                                            SubscriptionIdentifier=7)), 0xA1),
            ("wild", lambda c: c.c.subscribe("a/#", options=SubscribeOptions(qos=0)), 0xA2),
            ("shared", lambda c: c.c.subscribe("$share/g/a", options=SubscribeOptions(qos=0)), 0x9E),
            ("qos2", lambda c: c.c.publish("a/b", b"two", 2), 0x9B),
            ("retained", lambda c: c.c.publish("a/b", b"kept", 0, retain=True), 0x9A),
        ]
        for name, act, reason in cases:
            with self.subTest(name):
                client = self.client(name)
                act(client)
                code, p = client.disconnected()
                self.assertEqual(code, reason)
                self.assertTrue(p.ReasonString)
                self.assertFalse(hasattr(p, "SessionExpiryInterval"), "[MQTT-3.14.2-2]")
        # A plain subscription, granted at most max_qos.
        ok = self.client("ok")
        self.assertEqual(ok.subscribe("a/b", SubscribeOptions(qos=2)), [1])


class Delivery(Mqtt5):
    def test_no_local_and_retain_as_published(self):
        """[MQTT-3.8.3-3], [MQTT-3.3.1-12], [MQTT-3.3.1-13]."""
        me = self.client("me")
        me.subscribe("opt/#", SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True))
        other = self.client("other")
        other.subscribe("opt/#", SubscribeOptions(qos=1))
        me.publish("opt/x", b"mine", 1, retain=True)
        m = other.message()
        self.assertEqual((m.payload, m.retain), (b"mine", False))
        me.no_message()
        other.publish("opt/x", b"theirs", 1, retain=True)
        m = me.message()
        self.assertEqual((m.payload, m.retain), (b"theirs", True))

    def test_every_matching_subscription_identifier_arrives(self):
        """[MQTT-3.3.4-3], [MQTT-3.3.4-4]."""
        sub = self.client("ids")
        sub.subscribe("id/#", SubscribeOptions(qos=0),
                      props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=1))
        sub.subscribe("id/+", SubscribeOptions(qos=0),
                      props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=2))
        self.client("pub").publish("id/x", b"both", 0)
        m = sub.message()
        self.assertEqual(sorted(m.properties.SubscriptionIdentifier), [1, 2])
        sub.no_message()

    def test_message_expiry_counts_down_and_retained_messages_expire(self):
        """[MQTT-3.3.2-5], [MQTT-3.3.2-6]."""
        away = self.client("away", props(PacketTypes.CONNECT, SessionExpiryInterval=300),
                           clean_start=False)
        away.subscribe("exp/#", SubscribeOptions(qos=1))
        away.close()
        pub = self.client("pub")
        pub.publish("exp/long", b"long", 1, properties=props(PacketTypes.PUBLISH,
                                                             MessageExpiryInterval=60))
        pub.publish("exp/short", b"short", 1, retain=True,
                    properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
        time.sleep(1.5)
        back = self.client("away", props(PacketTypes.CONNECT, SessionExpiryInterval=300),
                           clean_start=False)
        m = back.message()
        self.assertEqual(m.payload, b"long")
        self.assertLess(m.properties.MessageExpiryInterval, 60)
        back.no_message()
        late = self.client("late")
        late.subscribe("exp/#", SubscribeOptions(qos=1))
        late.no_message()

    def test_user_properties_on_every_packet_are_accepted_and_forwarded_in_order(self):
        """[MQTT-3.3.2-17], [MQTT-3.3.2-18]; the other packets' User Properties are accepted."""
        users = [("b", "1"), ("a", "2"), ("b", "3")]
        c = self.client("users", props(PacketTypes.CONNECT, UserProperty=users))
        self.assertEqual(c.subscribe("up/#", SubscribeOptions(qos=2),
                                     props(PacketTypes.SUBSCRIBE, UserProperty=users)), [2])
        for qos in (0, 1, 2):
            c.publish("up/x", f"q{qos}".encode(), qos,
                      properties=props(PacketTypes.PUBLISH, UserProperty=users))
            m = c.message()
            self.assertEqual(m.properties.UserProperty, users)
        c.c.unsubscribe("up/#", properties=props(PacketTypes.UNSUBSCRIBE, UserProperty=users))
        c.ack("unsuback")
        c.c.disconnect(properties=props(PacketTypes.DISCONNECT, UserProperty=users))
        self.broker.wait_for_log("Client users disconnected.")


class OptionsPropertiesIdentifiers(Mqtt5):
    def test_retain_handling_0_1_and_2(self):
        """[MQTT-3.3.1-9] 0: retained messages at every SUBSCRIBE; [MQTT-3.3.1-10] 1: only for
        a new subscription; [MQTT-3.3.1-11] 2: never."""
        pub = self.client("pub")
        pub.publish("rh/lamp", b"on", 1, retain=True)
        sub = self.client("rh")
        for _ in range(2):
            sub.subscribe("rh/#", SubscribeOptions(qos=1, retainHandling=0))
            m = sub.message()
            self.assertEqual((m.payload, m.retain), (b"on", True))
        sub.subscribe("rh/#", SubscribeOptions(qos=1, retainHandling=1))
        sub.no_message()
        sub.c.unsubscribe("rh/#")
        sub.ack("unsuback")
        sub.subscribe("rh/#", SubscribeOptions(qos=1, retainHandling=1))
        self.assertEqual(sub.message().payload, b"on")
        sub.c.unsubscribe("rh/#")
        sub.ack("unsuback")
        sub.subscribe("rh/#", SubscribeOptions(qos=1, retainHandling=2))
        sub.no_message()
        pub.publish("rh/lamp", b"live", 1)
        self.assertEqual(sub.message().payload, b"live", "subscribed all the same")

    def test_payload_format_indicator_and_content_type_are_passed_through(self):
        """[MQTT-3.3.2-4] the Payload Format Indicator, [MQTT-3.3.2-20] the Content Type, as
        sent."""
        sub = self.client("sub")
        sub.subscribe("ct/#", SubscribeOptions(qos=1))
        pub = self.client("pub")
        pub.publish("ct/x", b'{"t": 21}', 1, properties=props(
            PacketTypes.PUBLISH, PayloadFormatIndicator=1, ContentType="application/json"))
        pub.publish("ct/x", b"\x00\x01", 1, properties=props(
            PacketTypes.PUBLISH, ContentType="application/octet-stream"))
        m = sub.message()
        self.assertEqual((m.properties.PayloadFormatIndicator, m.properties.ContentType),
                         (1, "application/json"))
        m = sub.message()
        self.assertEqual(m.properties.ContentType, "application/octet-stream")
        self.assertFalse(hasattr(m.properties, "PayloadFormatIndicator"))

    def test_no_local_on_a_shared_subscription_gets_0x82(self):
        """[MQTT-3.8.3-4]: paho sends it without checking; the broker answers DISCONNECT 0x82."""
        c = self.client("no-local-shared")
        c.c.subscribe("$share/g/x", options=SubscribeOptions(qos=0, noLocal=True))
        code, p = c.disconnected()
        self.assertEqual(code, 0x82)
        self.assertTrue(p.ReasonString)

    def test_paho_with_an_empty_client_id_gets_one_assigned(self):
        """[MQTT-3.2.2-16]: the identifier is in the CONNACK, and the broker knows it by it."""
        c = self.client("")
        assigned = c.props.AssignedClientIdentifier
        self.assertTrue(assigned)
        self.broker.wait_for_log(f"as {assigned} (p5")


class FlowControl(Mqtt5):
    def test_paho_is_sent_no_more_than_its_receive_maximum(self):
        """[MQTT-3.3.4-9]: paho says Receive Maximum 2 and holds its PUBACKs (manual acks):
        the third message comes only when the first is acknowledged."""
        slow = self.client("slow", props(PacketTypes.CONNECT, ReceiveMaximum=2), manual_ack=True)
        slow.subscribe("rm/#", SubscribeOptions(qos=1))
        pub = self.client("pub")
        for n in range(6):
            pub.publish("rm/x", str(n).encode(), 1)
        held = [slow.message(), slow.message()]
        for expected in range(2, 6):
            slow.no_message(0.3)
            oldest = held.pop(0)
            slow.c.ack(oldest.mid, 1)
            m = slow.message()
            self.assertEqual(m.payload, str(expected).encode())
            held.append(m)


class ReceiveMaximumExceeded(Mqtt5):
    extra = "max_inflight_messages 1"

    def test_paho_ignoring_the_servers_receive_maximum_gets_0x93(self):
        """[MQTT-3.3.4-7]: paho does not read the server's Receive Maximum (only its own
        max_inflight_messages, 20), so two QoS 2 messages sent at once exceed the broker's 1:
        DISCONNECT 0x93. paho's network loop is paused while it writes them, so that the first
        exchange cannot complete (PUBREL) before the second PUBLISH is out; and no more are
        sent, since a write after the broker has closed would end paho's connection before it
        reads the DISCONNECT."""
        c = self.client("greedy")
        self.assertEqual(c.props.ReceiveMaximum, 1)
        c.c.loop_stop()
        for n in range(2):
            self.assertEqual(c.c.publish("rm/x", str(n).encode(), 2).rc, 0)
        c.c.loop_start()
        code, p = c.disconnected()
        self.assertEqual(code, 0x93)
        self.assertTrue(p.ReasonString)


class Quota(Mqtt5):
    extra = "message_size_limit 10"

    def test_a_message_over_message_size_limit_gets_puback_0x97_and_the_connection_goes_on(self):
        """Midge's quotas answer per packet, never with DISCONNECT 0x97."""
        c = self.client("sizes")
        rc, p = c.publish("q/x", b"longer than ten bytes", 1)
        self.assertEqual(rc.value, 0x97)
        self.assertIn("message_size_limit", p.ReasonString)
        c.subscribe("q/x", SubscribeOptions(qos=1))
        c.publish("q/x", b"short", 1)
        self.assertEqual(c.message().payload, b"short")


class PacketSize(Mqtt5):
    extra = "sys_interval 1"

    def test_messages_larger_than_pahos_maximum_are_dropped_and_counted(self):
        """[MQTT-3.1.2-24], [MQTT-3.1.2-25]: paho announces Maximum Packet Size 128; a larger message is not sent
        to it (the publisher is not told), the broker counts it as dropped, the rest flow."""
        small = self.client("small", props(PacketTypes.CONNECT, MaximumPacketSize=128))
        small.subscribe("mps/#", SubscribeOptions(qos=1))
        pub = self.client("pub")
        rc, _ = pub.publish("mps/x", b"x" * 200, 1)
        self.assertEqual(rc.value, 0)
        pub.publish("mps/x", b"fits", 1)
        self.assertEqual(small.message().payload, b"fits")
        small.no_message()
        small.subscribe("$SYS/broker/publish/messages/dropped/too_large_for_client",
                        SubscribeOptions(qos=0))
        deadline = time.monotonic() + WAIT
        while small.message().payload != b"1":
            self.assertLess(time.monotonic(), deadline, "the drop is counted in $SYS")


class PacketTooLarge(Mqtt5):
    extra = "max_packet_size 100"

    def test_paho_sending_past_the_servers_maximum_gets_0x95(self):
        """[MQTT-3.2.2-15] the broker's maximum is in the CONNACK; paho does not keep to it, and
        a larger PUBLISH gets DISCONNECT 0x95."""
        c = self.client("big")
        self.assertEqual(c.props.MaximumPacketSize, 100)
        c.c.publish("mps/x", b"x" * 200, 0)
        code, _ = c.disconnected()
        self.assertEqual(code, 0x95)


class TopicAliases(Mqtt5):
    extra = "max_topic_alias 2"

    def test_paho_publishes_through_its_aliases_and_gets_none_it_did_not_allow(self):
        """Client to server: an alias set with its topic, then used with an empty topic
        (§3.3.2.3.4). Server to client: paho allows none (no Topic Alias Maximum in its
        CONNECT), so every message arrives with its topic and no alias [MQTT-3.1.2-27]. MQTT.js
        takes the broker's aliases in interop/test_topic_aliases.py."""
        sub = self.client("sub")
        sub.subscribe("ta/#", SubscribeOptions(qos=1))
        pub = self.client("aliaser")
        self.assertEqual(pub.props.TopicAliasMaximum, 2)
        rc, _ = pub.publish("ta/kitchen", b"set", 1, properties=props(PacketTypes.PUBLISH,
                                                                       TopicAlias=1))
        self.assertEqual(rc.value, 0)
        for n in range(3):
            rc, _ = pub.publish("", f"used {n}".encode(), 1,
                                properties=props(PacketTypes.PUBLISH, TopicAlias=1))
            self.assertEqual(rc.value, 0)
        for expected in (b"set", b"used 0", b"used 1", b"used 2"):
            m = sub.message()
            self.assertEqual((m.topic, m.payload), ("ta/kitchen", expected))
            self.assertFalse(hasattr(m.properties, "TopicAlias"))

    def test_an_alias_above_the_maximum_gets_0x94_and_an_unknown_one_0x82(self):
        """[MQTT-3.3.2-9]: paho does not check the broker's Topic Alias Maximum. An alias
        never set, with an empty topic, is a Protocol Error (§3.3.2.3.4). paho refuses alias 0
        itself; the broker's 0x94 for it is in crates/midge/tests/rumqttc_v5.rs."""
        for name, topic, alias, reason in (("above", "ta/x", 3, 0x94),
                                           ("unknown", "", 2, 0x82)):
            with self.subTest(name):
                c = self.client(name)
                c.c.publish(topic, b"x", 0, properties=props(PacketTypes.PUBLISH,
                                                             TopicAlias=alias))
                code, p = c.disconnected()
                self.assertEqual(code, reason)
                self.assertTrue(p.ReasonString)


def http_api(broker):
    line = broker.wait_for_log("HTTP API and web view on ")
    return re.search(r"(https?://\S+?)/?$", line).group(1)


class BrokersOwnDisconnects(Mqtt5):
    extra = "http_listener 0 127.0.0.1"

    def test_paho_hears_keep_alive_timeout_and_administrative_action(self):
        """0x8D after one and a half keep alives of silence [MQTT-3.1.2-22]: paho's loop is
        stopped, so it sends no PINGREQ, and reads the DISCONNECT later. 0x98 when an
        administrator disconnects the client through the HTTP API. (0x8B at shutdown and 0x8E
        at takeover: interop/test_paho.py.)"""
        quiet = self.client("quiet", keepalive=1)
        quiet.c.loop_stop()
        self.broker.wait_for_log("Client quiet has exceeded timeout")
        deadline = time.monotonic() + WAIT
        while quiet.disconnects.empty() and time.monotonic() < deadline:
            quiet.c.loop_read()  # one step of paho's packet reader per call
        code, p = quiet.disconnected()
        self.assertEqual(code, 0x8D)
        self.assertTrue(p.ReasonString)

        managed = self.client("managed")
        request = urllib.request.Request(
            f"{http_api(self.broker)}/api/v1/clients/managed/disconnect", method="POST")
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            self.assertEqual(response.status, 204)
        code, _ = managed.disconnected()
        self.assertEqual(code, 0x98)


class SessionExpiry(Mqtt5):
    def test_the_interval_set_at_disconnect_is_the_one_that_counts(self):
        long_connect = props(PacketTypes.CONNECT, SessionExpiryInterval=3600)
        c = self.client("shortened", long_connect, clean_start=False)
        c.subscribe("s/#", SubscribeOptions(qos=1))
        c.c.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
        c.c.loop_stop()
        self.broker.wait_for_log("Client shortened disconnected.")
        back = self.client("shortened", long_connect, clean_start=False)
        self.assertFalse(back.flags.session_present)

    def test_zero_at_connect_then_non_zero_at_disconnect_publishes_the_will(self):
        watcher = self.client("watcher")
        watcher.subscribe("will/#", SubscribeOptions(qos=1))
        c = self.client("zero", will=("will/zero", b"protocol error", 1, False))
        c.c.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=60))
        self.assertEqual(watcher.message().payload, b"protocol error")


if __name__ == "__main__":
    unittest.main()
