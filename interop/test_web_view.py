"""The web view at `/` of the HTTP listener, in headless Chromium (Debian's `chromium`, driven
by playwright-core from interop/mqttjs/node_modules): the page loads and goes live, a message
published with a TCP client (paho-mqtt) afterwards appears in the topic tree with its retained
value and rate, the connected clients are listed, and the page fits a phone's width. The
screenshot goes to $MIDGE_SCREENSHOT when set (docs/images/web-view.png was made so), else to
a temporary file.
"""
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import unittest

import paho.mqtt.client as paho

from interop.harness import WAIT, Broker

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mqttjs", "webview.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT = os.path.join(HERE, "mqttjs", "node_modules", "playwright-core")
TOPIC = "home/kitchen/temperature"


@unittest.skipUnless(shutil.which("node") and os.path.isdir(PLAYWRIGHT) and os.path.exists(CHROMIUM),
                     "node, playwright-core and Debian's chromium are needed")
class WebViewInChromium(unittest.TestCase):
    def test_a_published_topic_appears_in_the_tree(self):
        broker = Broker("http_listener 0 127.0.0.1\n")
        clients = []
        try:
            line = broker.wait_for_log("HTTP API and web view on ")
            url = line.rsplit(" ", 1)[1]

            def client(name):
                c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv5)
                c.connect("127.0.0.1", broker.port)
                c.loop_start()
                clients.append(c)
                return c

            watcher = client("living-room-display")
            watcher.subscribe("home/#", qos=1)
            client("garage-door").subscribe("home/garage/#", qos=0)
            sensor = client("kitchen-sensor")
            sensor.publish("home/garage/door", "closed", qos=1, retain=True).wait_for_publish(WAIT)
            sensor.publish("home/hall/light", "on", qos=0, retain=True).wait_for_publish(WAIT)

            shot_dir = tempfile.TemporaryDirectory()
            screenshot = os.environ.get("MIDGE_SCREENSHOT") or os.path.join(shot_dir.name, "web-view.png")
            with tempfile.TemporaryFile("w+") as errors:
                node = subprocess.Popen(["node", SCRIPT, url, TOPIC, screenshot],
                                        stdout=subprocess.PIPE, stderr=errors, text=True)
                lines = queue.Queue()
                reader = threading.Thread(target=lambda: [lines.put(l) for l in node.stdout] + [lines.put(None)])
                reader.start()
                loaded = json.loads(lines.get(timeout=40) or '{"event":"eof"}')
                self.assertEqual(loaded["event"], "loaded", self.stderr(errors))
                self.assertEqual(loaded["title"], "Midge")
                # Published over TCP only now that the page is live: the tree must update. The
                # readings go on while the page looks, so that it has rates to show.
                stop = threading.Event()

                def readings():
                    i = 0
                    while not stop.is_set():
                        sensor.publish(TOPIC, f"{21 + (i % 20) / 10:.1f}", qos=1, retain=True)
                        sensor.publish("home/kitchen/humidity", f"{40 + i % 7}", qos=0)
                        i += 1
                        stop.wait(0.2)

                publisher = threading.Thread(target=readings)
                publisher.start()
                try:
                    node.wait(timeout=60)
                finally:
                    stop.set()
                    publisher.join()
                reader.join(timeout=WAIT)
                node.stdout.close()
                seen = json.loads(lines.get(timeout=WAIT) or '{"event":"eof"}')
                self.assertEqual(node.returncode, 0, self.stderr(errors))
            self.assertEqual(seen["event"], "seen", seen)
            self.assertIn("temperature", seen["row"])
            self.assertRegex(seen["row"], r"\b2[12]\.\d\b", "the retained value")
            self.assertIn("retained", seen["row"])
            self.assertRegex(seen["row"], r"[1-9]\d*\.\d/s · \d+", "a rate above zero and a count")
            self.assertEqual(seen["clients"], 3)
            self.assertLessEqual(seen["phoneOverflow"], 1, "the page scrolls sideways on a phone")
            self.assertTrue(os.path.getsize(screenshot) > 10_000)
            shot_dir.cleanup()
        finally:
            for c in clients:
                c.loop_stop()
                c.disconnect()
            broker.close()

    @staticmethod
    def stderr(errors):
        errors.seek(0)
        return errors.read()


if __name__ == "__main__":
    unittest.main()
