"""The broker driven by Python paho-mqtt 2.x, in MQTT 3.1.1 and in MQTT 5.0 mode.

Each test runs once per protocol where both apply and asserts what a paho application sees:
CONNACK flags, messages with their QoS and retain flag, queued messages after a reconnect,
wills, takeover, shared subscriptions, MQTT 5 properties and a clean shutdown.
"""
import queue
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from interop.harness import Broker, WAIT

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5


class Client:
    """A paho client with its network loop running and its events on queues."""

    def __init__(self, broker, client_id, protocol, clean=True, keepalive=30, will=None,
                 session_expiry=None):
        self.protocol = protocol
        kwargs = {"clean_session": clean} if protocol != V5 else {}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=protocol, **kwargs)
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.disconnects = queue.Queue()
        self.acks = queue.Queue()
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = lambda c, u, flags, rc, props: self.connacks.put((flags, rc, props))
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.disconnects.put(rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.acks.put(("suback", rcs))
        self.c.on_publish = lambda c, u, mid, rc, props: self.acks.put(("puback", rc))
        if will:
            self.c.will_set(*will)
        connect_kwargs = {}
        if protocol == V5:
            connect_kwargs["clean_start"] = clean
            if session_expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = session_expiry
                connect_kwargs["properties"] = props
        self.c.connect("127.0.0.1", broker.port, keepalive=keepalive, **connect_kwargs)
        self.c.loop_start()
        self.flags, self.rc, self.props = self.connacks.get(timeout=WAIT)

    def subscribe(self, topic, qos):
        self.c.subscribe(topic, qos)
        kind, codes = self.acks.get(timeout=WAIT)
        assert kind == "suback", kind
        return codes

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos, retain, properties=properties)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()

    def message(self):
        return self.messages.get(timeout=WAIT)

    def no_message(self, quiet=0.3):
        try:
            m = self.messages.get(timeout=quiet)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def close(self, disconnect=True):
        if disconnect:
            self.c.disconnect()
        self.c.loop_stop()


class PahoBothVersions(unittest.TestCase):
    def setUp(self):
        self.broker = Broker()
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        self.broker.close()

    def client(self, *args, **kwargs):
        c = Client(self.broker, *args, **kwargs)
        self.clients.append(c)
        return c

    def test_qos_0_1_2_in_both_directions(self):
        for protocol in (V311, V5):
            with self.subTest(protocol=protocol):
                sub = self.client(f"sub-{protocol}", protocol)
                pub = self.client(f"pub-{protocol}", protocol)
                codes = sub.subscribe(f"q{protocol}/#", 2)
                self.assertEqual([int(getattr(c, "value", c)) for c in codes], [2])
                for qos in (0, 1, 2):
                    pub.publish(f"q{protocol}/x", f"qos{qos}".encode(), qos)
                    m = sub.message()
                    self.assertEqual((m.topic, m.payload, m.qos, m.retain),
                                     (f"q{protocol}/x", f"qos{qos}".encode(), qos, False))

    def test_messages_to_one_subscriber_arrive_in_publish_order(self):
        sub = self.client("ordered", V311)
        pub = self.client("fast", V5)
        sub.subscribe("order/#", 1)
        for n in range(200):
            pub.c.publish("order/x", str(n), 1)
        got = [int(sub.message().payload) for _ in range(200)]
        self.assertEqual(got, list(range(200)))

    def test_retained_message_set_replaced_and_cleared(self):
        """[MQTT-3.3.1-5], [MQTT-3.3.1-6]; RETAIN on the retained copy: §3.3.1.3."""
        for protocol in (V311, V5):
            with self.subTest(protocol=protocol):
                pub = self.client(f"rpub-{protocol}", protocol)
                topic = f"ret{protocol}/lamp"
                pub.publish(topic, b"on", 1, retain=True)
                pub.publish(topic, b"off", 1, retain=True)
                late = self.client(f"late-{protocol}", protocol)
                late.subscribe(topic, 1)
                m = late.message()
                self.assertEqual((m.payload, m.retain), (b"off", True))
                pub.publish(topic, b"", 1, retain=True)
                later = self.client(f"later-{protocol}", protocol)
                later.subscribe(topic, 1)
                later.no_message()

    def test_persistent_session_gets_messages_queued_while_away(self):
        for protocol in (V311, V5):
            with self.subTest(protocol=protocol):
                cid = f"away-{protocol}"
                first = Client(self.broker, cid, protocol, clean=False, session_expiry=300)
                self.assertFalse(first.flags.session_present)
                first.subscribe(f"away{protocol}/#", 1)
                first.close()
                pub = self.client(f"apub-{protocol}", protocol)
                for n in range(5):
                    pub.publish(f"away{protocol}/x", str(n).encode(), 1)
                back = self.client(cid, protocol, clean=False, session_expiry=300)
                self.assertTrue(back.flags.session_present, "[MQTT-3.2.2-3]")
                self.assertEqual([back.message().payload for _ in range(5)],
                                 [str(n).encode() for n in range(5)])

    def test_will_published_on_keep_alive_timeout_not_after_disconnect(self):
        """[MQTT-3.1.2-8], [MQTT-3.1.2-22]: a silent client is dropped after 1.5 x keep alive."""
        for protocol in (V311, V5):
            with self.subTest(protocol=protocol):
                watcher = self.client(f"watch-{protocol}", protocol)
                watcher.subscribe(f"will{protocol}/#", 1)
                polite = Client(self.broker, f"polite-{protocol}", protocol,
                                will=(f"will{protocol}/polite", b"bye", 1, False))
                polite.close(disconnect=True)
                silent = Client(self.broker, f"silent-{protocol}", protocol, keepalive=1,
                                will=(f"will{protocol}/silent", b"gone", 1, False))
                silent.c.loop_stop()  # no more PINGREQ: the broker must time it out
                m = watcher.message()
                self.assertEqual((m.topic, m.payload), (f"will{protocol}/silent", b"gone"))
                watcher.no_message()
                self.broker.wait_for_log(f"Client silent-{protocol} has exceeded timeout")

    def test_takeover_disconnects_the_first_client(self):
        """[MQTT-3.1.4-3]: v5 hears reason 0x8E."""
        first = self.client("same", V5)
        self.client("same", V5)
        rc = first.disconnects.get(timeout=WAIT)
        self.assertEqual(int(rc.value), 0x8E)

    def test_shared_subscription_round_robin(self):
        a = self.client("share-a", V5)
        b = self.client("share-b", V311)
        a.subscribe("$share/workers/jobs/#", 1)
        b.subscribe("$share/workers/jobs/#", 1)
        pub = self.client("boss", V5)
        for n in range(10):
            pub.publish("jobs/x", str(n).encode(), 1)
        got_a, got_b = [], []
        deadline = time.monotonic() + WAIT
        while len(got_a) + len(got_b) < 10 and time.monotonic() < deadline:
            for c, got in ((a, got_a), (b, got_b)):
                try:
                    got.append(int(c.messages.get(timeout=0.05).payload))
                except queue.Empty:
                    pass
        self.assertEqual(sorted(got_a + got_b), list(range(10)), "each job exactly once")
        self.assertEqual((len(got_a), len(got_b)), (5, 5), "round robin")

    def test_v5_properties_are_forwarded(self):
        """[MQTT-3.3.2-17]/[MQTT-3.3.2-18]: user properties in order; response topic and
        correlation data as sent."""
        sub = self.client("props-sub", V5)
        pub = self.client("props-pub", V5)
        sub.subscribe("req/#", 1)
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("site", "lab"), ("site", "roof")]
        props.ResponseTopic = "replies/props-pub"
        props.CorrelationData = b"req-42"
        pub.publish("req/x", b"question", 1, properties=props)
        m = sub.message()
        self.assertEqual(m.properties.UserProperty, [("site", "lab"), ("site", "roof")])
        self.assertEqual(m.properties.ResponseTopic, "replies/props-pub")
        self.assertEqual(m.properties.CorrelationData, b"req-42")

    def test_v5_connack_describes_the_server(self):
        c = self.client("caps", V5)
        self.assertEqual(c.props.TopicAliasMaximum, 10)
        self.assertEqual(c.props.ReceiveMaximum, 20)


class PahoConfigured(unittest.TestCase):
    def test_max_keepalive_announced_as_server_keep_alive(self):
        broker = Broker("max_keepalive 10")
        try:
            c = Client(broker, "ka", V5, keepalive=60)
            self.assertEqual(c.props.ServerKeepAlive, 10, "[MQTT-3.2.2-21]")
            c.close()
        finally:
            broker.close()

    def test_sigterm_sends_v5_clients_0x8b_and_exits_0(self):
        broker = Broker()
        try:
            c = Client(broker, "stay", V5)
            self.assertEqual(broker.terminate(), 0)
            rc = c.disconnects.get(timeout=WAIT)
            self.assertEqual(int(rc.value), 0x8B)
            c.c.loop_stop()
        finally:
            broker.close()


if __name__ == "__main__":
    unittest.main()
