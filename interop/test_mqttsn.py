"""The MQTT-SN gateway driven by an MQTT-SN client nobody here wrote: PyPI `mqtt-sn-12` (its
`mqtt_sn_pub` and `mqtt_sn_sub` tools), with paho-mqtt (MQTT 3.1.1 and 5.0) and mosquitto_pub on
the MQTT side. `crates/midge/tests/mqttsn.rs` covers what this client cannot send."""
import queue
import shutil
import subprocess
import unittest

import paho.mqtt.client as mqtt

from interop.harness import Broker, WAIT, listen_port

TOOLS = shutil.which("mqtt_sn_pub") and shutil.which("mqtt_sn_sub")


def subscriber(broker, topic, protocol):
    messages = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{protocol}", protocol=protocol)
    c.on_message = lambda c, u, m: messages.put(m)
    subscribed = queue.Queue()
    c.on_subscribe = lambda c, u, mid, rcs, props: subscribed.put(rcs)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.subscribe(topic, qos=2)
    subscribed.get(timeout=WAIT)
    return c, messages


@unittest.skipUnless(TOOLS, "mqtt-sn-12 is not installed (scripts/install-test-deps installs it)")
class MqttSnInterop(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("listener 0 127.0.0.1\nprotocol mqttsn\nmqttsn_predefined_topic 7 sensors/t\n"
                             "mqttsn_qos_neg1 true\n")
        self.sn_port = listen_port(self.broker, "mqttsn IPv4")
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.loop_stop()
            c.disconnect()
        self.broker.close()

    def sn_pub(self, *args):
        subprocess.run(["mqtt_sn_pub", "-h", "127.0.0.1", "-p", str(self.sn_port), *args],
                       check=True, timeout=WAIT, capture_output=True)

    def test_publishes_at_qos_0_1_2_reach_mqtt_311_and_5_subscribers(self):
        subs = []
        for protocol in (mqtt.MQTTv311, mqtt.MQTTv5):
            c, messages = subscriber(self.broker, "a/long/topic/name", protocol)
            self.clients.append(c)
            subs.append(messages)
        for qos in (0, 1, 2):
            self.sn_pub("-q", str(qos), "-t", "a/long/topic/name", "-m", f"payload {qos}")
        for messages in subs:
            got = [messages.get(timeout=WAIT) for _ in range(3)]
            self.assertEqual([(m.topic, m.payload, m.qos) for m in got],
                             [("a/long/topic/name", f"payload {q}".encode(), q) for q in (0, 1, 2)])

    def test_qos_minus_one_on_a_predefined_topic_without_connect(self):
        c, messages = subscriber(self.broker, "sensors/#", mqtt.MQTTv311)
        self.clients.append(c)
        self.sn_pub("-q", "-1", "-T", "7", "-m", "hi")
        m = messages.get(timeout=WAIT)
        self.assertEqual((m.topic, m.payload), ("sensors/t", b"hi"))


if __name__ == "__main__":
    unittest.main()
