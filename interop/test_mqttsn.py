"""The MQTT-SN gateway driven by an MQTT-SN client nobody here wrote: PyPI `mqtt-sn-12` (its
`mqtt_sn_pub` and `mqtt_sn_sub` tools), with paho-mqtt (MQTT 3.1.1 and 5.0) on the MQTT side.
`crates/midge/tests/mqttsn.rs` covers what this client cannot send.

Two things about `mqtt_sn_sub` 1.0.9 a test must know: it prints each payload with a plain
`print`, which a pipe buffers until the process exits (so it runs with PYTHONUNBUFFERED=1), and
it never acknowledges a QoS 1 PUBLISH (it compares the decoded QoS, 1, with the flag's bit
pattern, 0x20), so the gateway resends and finally takes it for lost, as MQTT-SN 1.2 §6.13 says:
it subscribes at QoS 0 here."""
import os
import queue
import shutil
import subprocess
import threading
import time
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


def publisher(broker, protocol):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-pub-{protocol}", protocol=protocol)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


class SnSub:
    """`mqtt_sn_sub` running until stopped; ready once the gateway has answered its SUBSCRIBE
    (its debug log on stderr says so)."""

    def __init__(self, port, *args):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            ["mqtt_sn_sub", "-d", "-h", "127.0.0.1", "-p", str(port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.payloads = queue.Queue()
        self.log = queue.Queue()
        self.pumps = [threading.Thread(target=self._pump, args=pipe, daemon=True)
                      for pipe in ((self.proc.stdout, self.payloads), (self.proc.stderr, self.log))]
        for pump in self.pumps:
            pump.start()
        deadline = time.monotonic() + WAIT
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise AssertionError("mqtt_sn_sub got no SUBACK:\n" + "\n".join(seen))
            try:
                line = self.log.get(timeout=left)
            except queue.Empty:
                continue
            seen.append(line)
            if "SUBACK return code: 0" in line:
                return

    @staticmethod
    def _pump(stream, lines):
        for line in stream:
            lines.put(line.rstrip("\n"))

    def take(self, count):
        return [self.payloads.get(timeout=WAIT) for _ in range(count)]

    def stop(self):
        """Ends it; then every line it wrote is in `payloads` and `log`."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=WAIT)
        for pump in self.pumps:
            pump.join(timeout=WAIT)
        self.proc.stdout.close()
        self.proc.stderr.close()


@unittest.skipUnless(TOOLS, "mqtt-sn-12 is not installed (scripts/install-test-deps installs it)")
class MqttSnInterop(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("listener 0 127.0.0.1\nprotocol mqttsn\nmqttsn_predefined_topic 7 sensors/t\n"
                             "mqttsn_qos_neg1 true\n")
        self.sn_port = listen_port(self.broker, "mqttsn IPv4")
        self.clients = []
        self.subs = []

    def tearDown(self):
        for sub in self.subs:
            sub.stop()
        for c in self.clients:
            c.loop_stop()
            c.disconnect()
        self.broker.close()

    def sn_sub(self, *args):
        sub = SnSub(self.sn_port, *args)
        self.subs.append(sub)
        return sub

    def mqtt_publish(self, client, topic, payload):
        client.publish(topic, payload, qos=1).wait_for_publish(timeout=WAIT)

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

    def test_mqtt_311_and_5_publishes_reach_mqtt_sn_sub_on_a_wildcard_through_register(self):
        sub = self.sn_sub("-q", "0", "-t", "plant/#")
        v311 = publisher(self.broker, mqtt.MQTTv311)
        v5 = publisher(self.broker, mqtt.MQTTv5)
        self.clients += [v311, v5]
        self.mqtt_publish(v311, "plant/boiler/temperature", "from 3.1.1")
        self.mqtt_publish(v5, "plant/pump/state", "from 5.0")
        # The second message on the first topic reuses the id registered for it.
        self.mqtt_publish(v311, "plant/boiler/temperature", "again")
        self.assertEqual(sub.take(3), ["from 3.1.1", "from 5.0", "again"])
        sub.stop()
        registers = [line for line in list(sub.log.queue) if "Registering topic" in line]
        self.assertEqual(len(registers), 2, registers)

    def test_mqtt_sn_sub_on_a_long_name_a_predefined_id_and_a_short_name(self):
        v5 = publisher(self.broker, mqtt.MQTTv5)
        self.clients.append(v5)
        cases = [
            (("-t", "a/long/topic/name"), "a/long/topic/name"),
            (("-T", "7"), "sensors/t"),
            (("-t", "ab"), "ab"),
        ]
        for args, topic in cases:
            with self.subTest(topic=topic):
                sub = self.sn_sub("-1", *args)
                self.mqtt_publish(v5, topic, f"on {topic}")
                self.assertEqual(sub.take(1), [f"on {topic}"])
                # -1: it disconnects and exits after one message.
                self.assertEqual(sub.proc.wait(timeout=WAIT), 0)


if __name__ == "__main__":
    unittest.main()
