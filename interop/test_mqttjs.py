"""MQTT.js (npm `mqtt`, the client browsers use) against midge over WebSockets, plain and TLS,
from Node and from a page in headless Chromium.

Each test runs interop/mqttjs/client.mjs under Node (or browser.mjs, which runs the same
client inside Chromium): it subscribes, publishes, and must see its own message and one
published by a paho client over plain TCP on the same broker; the paho client must see
MQTT.js's. The npm packages and Chromium are installed by scripts/install-test-deps.
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

from interop.harness import WAIT, Broker, listen_port, make_certificates

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "mqttjs", "client.mjs")
BROWSER = os.path.join(HERE, "mqttjs", "browser.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MQTTJS = os.path.join(HERE, "mqttjs", "node_modules", "mqtt")


def websocket_port(broker):
    broker.wait_for_log("Opening websockets listen socket on port")
    return listen_port(broker, "websockets")


@unittest.skipUnless(shutil.which("node") and os.path.isdir(MQTTJS), "node and npm mqtt are needed")
class MqttJsOverWebSockets(unittest.TestCase):
    def exchange(self, broker, url, version, ca=None, script=CLIENT, prefix=None):
        prefix = prefix or f"js{version}"
        tcp = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"tcp-{prefix}")
        seen = []
        got = threading.Event()

        def on_message(_client, _userdata, message):
            seen.append((message.topic, message.payload))
            got.set()

        tcp.on_message = on_message
        tcp.connect("127.0.0.1", broker.port)
        tcp.subscribe(f"{prefix}/from-js", qos=1)
        tcp.loop_start()
        try:
            args = ["node", script, url, f"mqttjs-{prefix}", prefix, str(version), "2"]
            if ca:
                args.append(ca)
            with tempfile.TemporaryFile("w+") as errors:
                node = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, text=True)
                # Every line through one reader: mixing readline() with communicate() loses
                # what readline() buffered beyond its line.
                lines = queue.Queue()
                reader = threading.Thread(target=lambda: [lines.put(l) for l in node.stdout] + [lines.put(None)])
                reader.start()
                first = json.loads(lines.get(timeout=30) or '{"event":"eof"}')
                self.assertEqual(first["event"], "subscribed", first)
                self.assertEqual(first["granted"], [1])
                tcp.publish(f"{prefix}/from-tcp", b"hello from paho over tcp", qos=1).wait_for_publish(WAIT)
                node.wait(timeout=30)
                reader.join(timeout=WAIT)
                rest = []
                while (line := lines.get(timeout=WAIT)) is not None:
                    rest.append(line)
                out = "".join(rest)
                errors.seek(0)
                err = errors.read()
            self.assertEqual(node.returncode, 0, f"stdout: {out}\nstderr: {err}")
            events = [json.loads(line) for line in out.splitlines()]
            messages = sorted((e["topic"], e["payload"]) for e in events if e["event"] == "message")
            self.assertEqual(messages, [
                (f"{prefix}/from-js", "hello from mqtt.js"),
                (f"{prefix}/from-tcp", "hello from paho over tcp"),
            ], f"stdout: {out}\nstderr: {err}")
            self.assertTrue(got.wait(WAIT))
            self.assertEqual(seen, [(f"{prefix}/from-js", b"hello from mqtt.js")])
        finally:
            tcp.loop_stop()
            tcp.disconnect()

    def test_ws_mqtt_311_and_5(self):
        broker = Broker("listener 0 127.0.0.1\nprotocol websockets")
        try:
            port = websocket_port(broker)
            for version in (4, 5):
                with self.subTest(version=version):
                    self.exchange(broker, f"ws://127.0.0.1:{port}/mqtt", version)
            broker.wait_for_log("as mqttjs-js5 (p5")
        finally:
            broker.close()

    @unittest.skipUnless(os.path.exists(CHROMIUM), "Debian's chromium is needed")
    def test_a_page_in_headless_chromium(self):
        broker = Broker("listener 0 127.0.0.1\nprotocol websockets")
        try:
            port = websocket_port(broker)
            self.exchange(broker, f"ws://127.0.0.1:{port}/mqtt", 5, script=BROWSER, prefix="page")
            broker.wait_for_log("as mqttjs-page (p5")
        finally:
            broker.close()

    @unittest.skipUnless(shutil.which("openssl"), "openssl is needed to make certificates")
    def test_wss_with_the_servers_ca(self):
        with tempfile.TemporaryDirectory() as certs:
            make_certificates(certs)
            broker = Broker(
                "listener 0 127.0.0.1\nprotocol websockets\n"
                f"certfile {certs}/server.pem\nkeyfile {certs}/server.key"
            )
            try:
                port = websocket_port(broker)
                self.exchange(broker, f"wss://localhost:{port}/mqtt", 5, ca=f"{certs}/ca.pem")
                broker.wait_for_log("TLS connection from")
            finally:
                broker.close()


if __name__ == "__main__":
    unittest.main()
