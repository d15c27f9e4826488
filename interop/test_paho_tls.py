"""paho-mqtt over TLS, mutual TLS and secure WebSockets, against listeners configured as a
Mosquitto user would: a password file made by Debian's mosquitto_passwd, an ACL file with
`user`, `topic` and `pattern` rules, client certificates as usernames. Certificates are made
by the openssl CLI for each test, an expired server certificate among them.
"""
import os
import queue
import shutil
import ssl
import subprocess
import tempfile
import unittest

import paho.mqtt.client as mqtt

from interop.harness import WAIT, Broker, listen_port, make_certificates

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5


def client(port, protocol, ca, certfile=None, keyfile=None, user=None, password=None,
           transport="tcp", client_id="", tls_version=None):
    """A connected paho client and the reason code of its CONNACK, `None` if the broker closed
    the connection without one (a TLS 1.3 client learns that its certificate was refused only
    when it reads), or the ssl error raised by the handshake."""
    kwargs = {} if protocol == V5 else {"clean_session": True}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                    transport=transport, **kwargs)
    if tls_version is None:
        c.tls_set(ca_certs=ca, certfile=certfile, keyfile=keyfile)
    else:
        c.tls_set(ca_certs=ca, certfile=certfile, keyfile=keyfile, tls_version=tls_version)
    if user is not None:
        c.username_pw_set(user, password)
    connacks = queue.Queue()
    messages = queue.Queue()
    c.on_connect = lambda _c, _u, _f, rc, _p: connacks.put(rc)
    c.on_disconnect = lambda _c, _u, _f, _rc, _p: connacks.put(None)
    c.on_message = lambda _c, _u, m: messages.put(m)
    c.messages = messages
    c.connect("localhost", port)
    c.loop_start()
    rc = connacks.get(timeout=WAIT)
    return c, rc


def refused_or_closed(connect):
    """`None` when `connect` fails in the handshake or ends without CONNACK; else the code."""
    try:
        c, rc = connect()
    except (ssl.SSLError, OSError):
        return None
    c.loop_stop()
    return rc


@unittest.skipUnless(shutil.which("openssl") and shutil.which("mosquitto_passwd"),
                     "openssl and mosquitto_passwd are needed")
class PahoOverTls(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.certs = self.dir.name
        make_certificates(self.certs, clients=("alice", "bob"))
        self.ca = os.path.join(self.certs, "ca.pem")
        self.passwd = os.path.join(self.certs, "passwd")
        subprocess.run(["mosquitto_passwd", "-c", "-b", self.passwd, "carol", "right"], check=True)
        self.acl = os.path.join(self.certs, "acl")
        with open(self.acl, "w") as f:
            f.write("pattern readwrite devices/%u/#\nuser alice\ntopic readwrite alice/#\n"
                    "topic read public/#\nuser carol\ntopic readwrite #\n")

    def tearDown(self):
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.certs, name)

    def test_passwords_over_tls_and_secure_websockets(self):
        broker = Broker(
            f"listener 0 127.0.0.1\ncertfile {self.path('server.pem')}\nkeyfile {self.path('server.key')}\n"
            f"listener 0 127.0.0.1\nprotocol websockets\ncertfile {self.path('server.pem')}\n"
            f"keyfile {self.path('server.key')}\npassword_file {self.passwd}\nallow_anonymous false\n"
        )
        try:
            tls_port = listen_port(broker, "ipv4")
            wss_port = listen_port(broker, "websockets")
            # TLS 1.2 pinned on the client, for MQTT over TLS 1.2 end to end.
            c, rc = client(tls_port, V5, self.ca, user="carol", password="right",
                           tls_version=ssl.PROTOCOL_TLSv1_2)
            self.assertFalse(rc.is_failure, rc)
            c.subscribe("t12", qos=1)
            c.publish("t12", b"over TLS 1.2", qos=1)
            self.assertEqual(c.messages.get(timeout=WAIT).payload, b"over TLS 1.2")
            c.disconnect()
            c.loop_stop()
            broker.wait_for_log("TLSv1_2")
            for port, transport in ((tls_port, "tcp"), (wss_port, "websockets")):
                for protocol in (V311, V5):
                    with self.subTest(transport=transport, protocol=protocol):
                        c, rc = client(port, protocol, self.ca, user="carol", password="right",
                                       transport=transport)
                        self.assertFalse(rc.is_failure, rc)
                        c.subscribe("t", qos=1)
                        c.publish("t", b"over " + transport.encode(), qos=1)
                        self.assertEqual(c.messages.get(timeout=WAIT).payload, b"over " + transport.encode())
                        c.disconnect()
                        c.loop_stop()
                        c, rc = client(port, protocol, self.ca, user="carol", password="wrong",
                                       transport=transport)
                        self.assertTrue(rc.is_failure)
                        self.assertEqual(str(rc), "Not authorized")
                        c.loop_stop()
        finally:
            broker.close()

    def test_client_certificates_name_the_user_for_the_acl(self):
        broker = Broker(
            f"listener 0 127.0.0.1\ncertfile {self.path('server.pem')}\nkeyfile {self.path('server.key')}\n"
            f"cafile {self.ca}\nrequire_certificate true\nuse_identity_as_username true\n"
            f"acl_file {self.acl}\n"
        )
        try:
            port = listen_port(broker, "ipv4")
            alice, rc = client(port, V5, self.ca, self.path("alice.pem"), self.path("alice.key"))
            self.assertFalse(rc.is_failure, rc)
            alice.subscribe([("alice/#", 1), ("public/#", 1), ("devices/alice/#", 1), ("bob/#", 1)])
            bob, rc = client(port, V5, self.ca, self.path("bob.pem"), self.path("bob.key"))
            self.assertFalse(rc.is_failure, rc)
            # topic readwrite alice/#: alice may write and read it.
            alice.publish("alice/notes", b"mine", qos=1).wait_for_publish(WAIT)
            # pattern readwrite devices/%u/#: bob writes his own device topic only.
            bob.publish("devices/bob/temp", b"20", qos=1).wait_for_publish(WAIT)
            bob.publish("devices/alice/temp", b"forged", qos=1).wait_for_publish(WAIT)
            alice.publish("devices/alice/temp", b"21", qos=1).wait_for_publish(WAIT)
            # alice may not write public/#, only read it; nobody else may write it either.
            alice.publish("public/news", b"not allowed", qos=1).wait_for_publish(WAIT)
            got = set()
            for _ in range(2):
                m = alice.messages.get(timeout=WAIT)
                got.add((m.topic, m.payload))
            self.assertEqual(got, {("alice/notes", b"mine"), ("devices/alice/temp", b"21")})
            # Nothing else: not bob's forgery, not alice's write to public/.
            with self.assertRaises(queue.Empty):
                alice.messages.get(timeout=0.5)
            for c in (alice, bob):
                c.disconnect()
                c.loop_stop()
            broker.wait_for_log("u'alice'")
            broker.wait_for_log("u'bob'")
        finally:
            broker.close()

    def test_no_certificate_a_foreign_one_or_an_expired_server_are_refused(self):
        broker = Broker(
            f"listener 0 127.0.0.1\ncertfile {self.path('server.pem')}\nkeyfile {self.path('server.key')}\n"
            f"cafile {self.ca}\nrequire_certificate true\n"
        )
        expired = Broker(
            f"listener 0 127.0.0.1\ncertfile {self.path('expired.pem')}\nkeyfile {self.path('expired.key')}\n"
        )
        try:
            port = listen_port(broker, "ipv4")
            self.assertIsNone(refused_or_closed(lambda: client(port, V311, self.ca)))
            # A client certificate the server's CA did not sign.
            with tempfile.TemporaryDirectory() as other:
                make_certificates(other, clients=("mallory",))
                self.assertIsNone(refused_or_closed(lambda: client(
                    port, V311, self.ca, os.path.join(other, "mallory.pem"),
                    os.path.join(other, "mallory.key"))))
            # With a good one, the same listener admits the client.
            c, rc = client(port, V311, self.ca, self.path("alice.pem"), self.path("alice.key"))
            self.assertFalse(rc.is_failure, rc)
            c.disconnect()
            c.loop_stop()
            self.assertEqual(sum("TLS handshake with" in line for line in broker.lines), 2, broker.lines)
            with self.assertRaises(ssl.SSLCertVerificationError) as refused:
                client(listen_port(expired, "ipv4"), V311, self.ca)
            self.assertIn("expired", str(refused.exception))
        finally:
            broker.close()
            expired.close()


if __name__ == "__main__":
    unittest.main()
