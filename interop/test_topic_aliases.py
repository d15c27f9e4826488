"""Topic aliases from midge to MQTT.js (npm `mqtt`), which resolves them itself and refuses an
alias above the maximum it advertised or one used before it was set: the topics it reports
must be the ones paho published, in order, while the broker sends most of them as aliases.
Normative statements: [MQTT-3.1.2-26], [MQTT-3.3.2-11] (no alias above the client's maximum).
"""
import json
import os
import shutil
import subprocess
import unittest

import paho.mqtt.client as paho

from interop.harness import WAIT, Broker

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mqttjs", "aliases.mjs")
MQTTJS = os.path.join(HERE, "mqttjs", "node_modules", "mqtt")


@unittest.skipUnless(shutil.which("node") and os.path.isdir(MQTTJS), "node and npm mqtt are needed")
class TopicAliasesToMqttJs(unittest.TestCase):
    def test_mqttjs_resolves_the_aliases_midge_sends_within_its_maximum(self):
        broker = Broker()
        try:
            topics = ["aliases/kitchen/temperature", "aliases/hall/humidity", "aliases/attic/pressure"]
            sequence = [topics[i % 3] for i in range(12)] + [topics[0]] * 4
            node = subprocess.Popen(
                ["node", SCRIPT, f"mqtt://127.0.0.1:{broker.port}", "mqttjs-aliases", "2", str(len(sequence))],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            first = json.loads(node.stdout.readline() or '{"event":"eof"}')
            self.assertEqual(first["event"], "subscribed", first)
            publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="paho-aliases", protocol=paho.MQTTv5)
            publisher.connect("127.0.0.1", broker.port)
            publisher.loop_start()
            try:
                for i, topic in enumerate(sequence):
                    publisher.publish(topic, str(i), qos=1).wait_for_publish(WAIT)
            finally:
                publisher.loop_stop()
                publisher.disconnect()
            out, err = node.communicate(timeout=30)
            self.assertEqual(node.returncode, 0, f"stdout: {out}\nstderr: {err}")
            events = [json.loads(line) for line in out.splitlines()]
            received = [(e["topic"], e["payload"]) for e in events if e["event"] == "message"]
            self.assertEqual(received, [(t, str(i)) for i, t in enumerate(sequence)])
            aliases = [e["alias"] for e in events if e["event"] == "message"]
            self.assertTrue(all(a is None or 1 <= a <= 2 for a in aliases), aliases)
            # The last four, one topic over and over, go as its alias.
            self.assertTrue(all(a is not None for a in aliases[-4:]), aliases)
        finally:
            broker.close()


if __name__ == "__main__":
    unittest.main()
