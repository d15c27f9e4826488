"""MQTT 5 enhanced authentication with SCRAM against the built `midge` binary, with an SCRAM
implementation nobody here wrote: Python's `scramp` (the one pg8000 uses) drives the exchange,
and checks the server's final signature itself (it raises if the broker could not prove that it
holds the user's verifier). It also recomputes the verifiers `midge passwd -H scram` wrote.

paho-mqtt 2.x can put an Authentication Method in CONNECT but cannot answer the server's AUTH
packet (it has no API to send AUTH), so the exchange runs over a small raw MQTT 5 client below;
paho is used for what it can do: being refused a method the broker does not offer.

The second independent client is MQTT.js (interop/mqttjs/scram.mjs): it carries the AUTH
exchange itself, and the SCRAM client side there is RFC 5802 on Node's crypto. (rumqttc 0.25
cannot: it does not decode AUTH packets.)

Normative statements: [MQTT-4.12.0-1], [MQTT-4.12.0-2], [MQTT-4.12.0-4], [MQTT-4.12.0-5],
[MQTT-4.12.1-1], [MQTT-4.12.1-2].
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from scramp import ScramClient, ScramMechanism

from interop.harness import WAIT, Broker, midge_binary

CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK, DISCONNECT, AUTH = 1, 2, 3, 8, 9, 14, 15
METHOD, DATA = 0x15, 0x16


def varint(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(text):
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def binary(raw):
    return struct.pack("!H", len(raw)) + raw


def auth_properties(method, data):
    props = bytes([METHOD]) + utf8(method)
    if data is not None:
        props += bytes([DATA]) + binary(data)
    return props


def packet(kind, flags, body):
    return bytes([kind << 4 | flags]) + varint(len(body)) + body


class Client:
    """Just enough MQTT 5 over a socket for the AUTH exchange and a message round trip."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buffer = b""

    def connect(self, client_id, method=None, data=None):
        props = auth_properties(method, data) if method else b""
        body = utf8("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 0)
        body += varint(len(props)) + props + utf8(client_id)
        self.sock.sendall(packet(CONNECT, 0, body))

    def auth(self, reason, method, data):
        props = auth_properties(method, data)
        self.sock.sendall(packet(AUTH, 0, bytes([reason]) + varint(len(props)) + props))

    def subscribe(self, topic):
        props = b""
        body = struct.pack("!H", 1) + varint(len(props)) + utf8(topic) + bytes([0])
        self.sock.sendall(packet(SUBSCRIBE, 2, body))
        kind, _ = self.recv()
        assert kind == SUBACK

    def publish(self, topic, payload):
        self.sock.sendall(packet(PUBLISH, 0, utf8(topic) + varint(0) + payload))

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the broker")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def recv(self):
        """(packet type, body)."""
        first = self._read(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._read(1)[0]
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first >> 4, self._read(length)

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, socket.timeout):
            return False

    def close(self):
        self.sock.close()


def varint_at(raw, at):
    value, shift = 0, 0
    while True:
        byte = raw[at]
        at += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def properties(raw):
    """Authentication Method and Data from a property block (other properties skipped)."""
    found = {}
    at = 0
    while at < len(raw):
        ident = raw[at]
        at += 1
        if ident in (0x15, 0x1F, 0x12, 0x1A, 0x1C, 0x03, 0x08):  # UTF-8 strings
            (n,) = struct.unpack_from("!H", raw, at)
            found[ident] = raw[at + 2 : at + 2 + n].decode()
            at += 2 + n
        elif ident in (0x16, 0x09):  # binary data
            (n,) = struct.unpack_from("!H", raw, at)
            found[ident] = raw[at + 2 : at + 2 + n]
            at += 2 + n
        elif ident == 0x26:  # user property: two strings
            for _ in range(2):
                (n,) = struct.unpack_from("!H", raw, at)
                at += 2 + n
        elif ident in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            at += 1
        elif ident in (0x13, 0x21, 0x22, 0x23):
            at += 2
        elif ident in (0x02, 0x11, 0x18, 0x27):
            at += 4
        elif ident == 0x0B:
            _, at = varint_at(raw, at)
        else:
            raise AssertionError(f"unknown property {ident:#x}")
    return found


def reason_and_properties(body, skip=0):
    """For CONNACK (skip the flags byte), AUTH and DISCONNECT."""
    reason = body[skip]
    length, at = varint_at(body, skip + 1) if len(body) > skip + 1 else (0, skip + 1)
    return reason, properties(body[at : at + length])


class ScramBroker:
    """A broker that knows alice (password wonderland) and bob (bücher) only by SCRAM
    verifiers written by `midge passwd -H scram`."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.scram_file = os.path.join(cls.dir.name, "scram")
        cls.passwd("-H", "scram", "-c", "-b", cls.scram_file, "alice", "wonderland")
        cls.passwd("-H", "scram-sha-256", "-b", cls.scram_file, "bob", "bücher")
        cls.broker = Broker(f"allow_anonymous false\nscram_file {cls.scram_file}")

    @classmethod
    def tearDownClass(cls):
        cls.broker.close()
        cls.dir.cleanup()

    @staticmethod
    def passwd(*args):
        subprocess.run([midge_binary(), "passwd", *args], check=True, capture_output=True)


class ScramInterop(ScramBroker, unittest.TestCase):

    def login(self, mechanism, user, password, client_id="scramp"):
        """The exchange at CONNECT; returns the client, the CONNACK's reason and properties,
        and the scramp client."""
        scram = ScramClient([mechanism], user, password)
        client = Client(self.broker.port)
        self.addCleanup(client.close)
        client.connect(client_id, mechanism, scram.get_client_first().encode())
        kind, body = client.recv()
        self.assertEqual(kind, AUTH)
        reason, props = reason_and_properties(body)
        # [MQTT-4.12.0-2] Continue authentication, [MQTT-4.12.0-5] with the CONNECT's method.
        self.assertEqual(reason, 0x18)
        self.assertEqual(props[METHOD], mechanism)
        scram.set_server_first(props[DATA].decode())
        client.auth(0x18, mechanism, scram.get_client_final().encode())
        kind, body = client.recv()
        self.assertEqual(kind, CONNACK)
        reason, props = reason_and_properties(body, skip=1)
        return client, reason, props, scram

    def test_scramp_logs_in_with_both_mechanisms_and_checks_the_server_signature(self):
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            with self.subTest(mechanism=mechanism):
                client, reason, props, scram = self.login(mechanism, "alice", "wonderland")
                self.assertEqual(reason, 0)
                self.assertEqual(props[METHOD], mechanism)
                # scramp raises unless the signature is the one only the verifier's holder makes.
                scram.set_server_final(props[DATA].decode())
                client.subscribe("scram/t")
                client.publish("scram/t", b"hello")
                kind, body = client.recv()
                self.assertEqual(kind, PUBLISH)
                self.assertTrue(body.endswith(b"hello"))
        # A non-ASCII password, SASLprep'd by both sides.
        _, reason, props, scram = self.login("SCRAM-SHA-256", "bob", "bücher", "bob")
        self.assertEqual(reason, 0)
        scram.set_server_final(props[DATA].decode())

    def test_verifiers_written_by_midge_passwd_are_the_ones_scramp_computes(self):
        with open(self.scram_file) as f:
            lines = dict(line.rstrip("\n").split(":", 1) for line in f)
        passwords = {"alice": "wonderland", "bob": "bücher"}
        for user, verifiers in lines.items():
            for verifier in verifiers.split(" "):
                mechanism, rest = verifier.split("$", 1)
                params, keys = rest.split("$")
                iterations, salt = params.split(":")
                stored, server = keys.split(":")
                _, want_stored, want_server, _ = ScramMechanism(mechanism).make_auth_info(
                    passwords[user], iteration_count=int(iterations), salt=base64.b64decode(salt)
                )
                self.assertEqual(base64.b64decode(stored), want_stored, f"{user} {mechanism}")
                self.assertEqual(base64.b64decode(server), want_server, f"{user} {mechanism}")

    def test_a_wrong_password_gets_connack_0x86_and_the_connection_closes(self):
        # [MQTT-4.12.0-4]
        client, reason, props, _ = self.login("SCRAM-SHA-512", "alice", "Wonderland")
        self.assertEqual(reason, 0x86)
        self.assertNotIn(METHOD, props)
        self.assertTrue(client.closed())

    def test_scramp_reauthenticates_on_a_live_connection(self):
        client, reason, _, _ = self.login("SCRAM-SHA-256", "alice", "wonderland", "again")
        self.assertEqual(reason, 0)
        # [MQTT-4.12.1-1]: AUTH 0x19 with the same method, then 0x18 both ways, then 0x00.
        scram = ScramClient(["SCRAM-SHA-256"], "alice", "wonderland")
        client.auth(0x19, "SCRAM-SHA-256", scram.get_client_first().encode())
        kind, body = client.recv()
        self.assertEqual(kind, AUTH)
        reason, props = reason_and_properties(body)
        self.assertEqual(reason, 0x18)
        scram.set_server_first(props[DATA].decode())
        client.auth(0x18, "SCRAM-SHA-256", scram.get_client_final().encode())
        kind, body = client.recv()
        self.assertEqual(kind, AUTH)
        reason, props = reason_and_properties(body)
        self.assertEqual((reason, props[METHOD]), (0, "SCRAM-SHA-256"))
        scram.set_server_final(props[DATA].decode())

        # [MQTT-4.12.1-2]: a failed re-authentication ends the connection with 0x87.
        scram = ScramClient(["SCRAM-SHA-256"], "alice", "not wonderland")
        client.auth(0x19, "SCRAM-SHA-256", scram.get_client_first().encode())
        _, body = client.recv()
        scram.set_server_first(reason_and_properties(body)[1][DATA].decode())
        client.auth(0x18, "SCRAM-SHA-256", scram.get_client_final().encode())
        kind, body = client.recv()
        self.assertEqual((kind, body[0]), (DISCONNECT, 0x87))
        self.assertTrue(client.closed())

    def test_paho_is_refused_a_method_the_broker_does_not_offer(self):
        # [MQTT-4.12.0-1]
        result = {}
        done = threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):
            result["reason"] = reason_code
            done.set()

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-plain", protocol=mqtt.MQTTv5)
        client.on_connect = on_connect
        props = Properties(PacketTypes.CONNECT)
        props.AuthenticationMethod = "SCRAM-SHA-1"
        client.connect("127.0.0.1", self.broker.port, properties=props)
        client.loop_start()
        try:
            self.assertTrue(done.wait(WAIT))
            self.assertEqual(result["reason"].value, 0x8C)
            self.assertEqual(str(result["reason"]), "Bad authentication method")
        finally:
            client.loop_stop()
            client.disconnect()


MQTTJS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mqttjs")


@unittest.skipUnless(shutil.which("node") and os.path.isdir(os.path.join(MQTTJS_DIR, "node_modules", "mqtt")),
                     "node and npm mqtt are needed")
class ScramFromMqttJs(ScramBroker, unittest.TestCase):
    def mqttjs(self, client_id, mechanism, user, password, mode=""):
        """Runs scram.mjs; returns its exit code and its events."""
        args = ["node", os.path.join(MQTTJS_DIR, "scram.mjs"), f"mqtt://127.0.0.1:{self.broker.port}",
                client_id, mechanism, user, password]
        if mode:
            args.append(mode)
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        events = [json.loads(line) for line in done.stdout.splitlines()]
        return done.returncode, events, done.stderr

    def test_mqttjs_logs_in_with_both_mechanisms_and_checks_the_server_signature(self):
        """[MQTT-4.12.0-2], [MQTT-4.12.0-5]; MQTT.js completes the exchange and the server's
        final message proves it holds the verifier (RFC 5802 §3)."""
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            with self.subTest(mechanism=mechanism):
                code, events, err = self.mqttjs(f"js-{mechanism}", mechanism, "alice", "wonderland")
                self.assertEqual(code, 0, f"{events} {err}")
                self.assertEqual(events, [
                    {"event": "connected", "verified": True},
                    {"event": "message", "payload": f"hello from js-{mechanism}"},
                ])

    def test_mqttjs_reauthenticates_on_a_live_connection(self):
        """[MQTT-4.12.1-1]: AUTH 0x19, then 0x18 both ways, then AUTH 0x00 with the server's
        signature."""
        code, events, err = self.mqttjs("js-again", "SCRAM-SHA-256", "alice", "wonderland", "reauth")
        self.assertEqual(code, 0, f"{events} {err}")
        self.assertEqual(events[-1], {"event": "reauthenticated", "verified": True}, events)

    def test_mqttjs_hears_0x86_for_a_wrong_password_and_0x87_for_a_failed_reauthentication(self):
        """[MQTT-4.12.0-4] CONNACK 0x86; [MQTT-4.12.1-2] DISCONNECT 0x87 and the close."""
        code, events, err = self.mqttjs("js-wrong", "SCRAM-SHA-512", "alice", "Wonderland")
        self.assertEqual((code, events), (0, [{"event": "refused", "code": 0x86}]), err)
        code, events, err = self.mqttjs("js-lapsed", "SCRAM-SHA-256", "alice", "wonderland",
                                        "reauth-wrong")
        self.assertIn({"event": "disconnect", "code": 0x87}, events, err)
        self.assertEqual(events[-1], {"event": "closed"}, events)

    def test_mqttjs_is_refused_a_method_the_broker_does_not_offer(self):
        """[MQTT-4.12.0-1]: SCRAM-SHA-1 is not offered: CONNACK 0x8C."""
        code, events, err = self.mqttjs("js-sha1", "SCRAM-SHA-1", "alice", "wonderland")
        self.assertEqual((code, events), (0, [{"event": "refused", "code": 0x8C}]), err)


if __name__ == "__main__":
    unittest.main()
