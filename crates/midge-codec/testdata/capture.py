#!/usr/bin/env python3
"""Regenerates the golden MQTT packet captures in this directory.

Golden vectors are bytes that real MQTT implementations nobody on this project wrote put on the
wire: Debian's `mosquitto_pub` / `mosquitto_sub` (libmosquitto), Python `paho-mqtt` 2.x, and the
Mosquitto broker answering them. `crates/midge-codec/tests/golden.rs` decodes every file and
re-encodes it byte for byte.

How it works:
  1. Starts `/usr/sbin/mosquitto` on a free 127.0.0.1 port with a throwaway config.
  2. Runs a recording TCP proxy (threads in this process) on another free 127.0.0.1 port. Each
     direction's byte stream is split into MQTT packets with the fixed header (first byte plus
     the variable-length Remaining Length). A connection is labelled by the Client Identifier in
     its CONNECT, which every scenario fixes, so the file names do not depend on timing.
  3. Drives the scenarios below through the proxy and writes one file per packet:

         <client>-<version>-<scenario>-<nn>-<c2s|s2c>-<packettype>.bin

     client is `mosquitto_pub`, `mosquitto_sub`, `paho` or `mosquittobridge` (a second
     Mosquitto bridged to the first, `try_private` on: its CONNECT has the level's high bit); version is `v31`, `v311` or `v5` (the
     test decodes with it); nn numbers the packets of one connection in one direction, in stream
     order. Numbering each direction on its own keeps the names stable from one run to the next:
     the order within a TCP stream is the sender's, while how the two directions interleave is a
     race (a subscriber's PUBACK against the broker's next PUBLISH). A request and its answer
     often share a number (`02-c2s-subscribe`, `02-s2c-suback`), but nothing relies on it.

This is a regeneration tool: it is committed but not run in CI. It deletes the old `*.bin` files
first; two runs give the same files, byte for byte. Afterwards run
`cargo test -p midge-codec --test golden`: a vector that does not re-encode exactly fails it
unless `KNOWN_DIFFERENCES` in that file lists it with the reason.

Requirements: Debian packages `mosquitto` and `mosquitto-clients` (2.0.x), and
`pip install paho-mqtt>=2`. All traffic stays on 127.0.0.1.

    python3 crates/midge-codec/testdata/capture.py [--verbose]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
MOSQUITTO = "/usr/sbin/mosquitto"
OUT_DIR = Path(__file__).resolve().parent
VERSIONS = ("v31", "v311", "v5")
MOSQ_FLAG = {"v31": "mqttv31", "v311": "mqttv311", "v5": "mqttv5"}
LEVEL_TO_VERSION = {3: "v31", 4: "v311", 5: "v5"}
PACKET_TYPES = {
    1: "connect",
    2: "connack",
    3: "publish",
    4: "puback",
    5: "pubrec",
    6: "pubrel",
    7: "pubcomp",
    8: "subscribe",
    9: "suback",
    10: "unsubscribe",
    11: "unsuback",
    12: "pingreq",
    13: "pingresp",
    14: "disconnect",
    15: "auth",
}

VERBOSE = False


def log(*args: object) -> None:
    if VERBOSE:
        print(*args, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {HOST}:{port}")


# --- framing ----------------------------------------------------------------------------------


def split_packets(buf: bytearray) -> list[bytes]:
    """Takes every complete packet off the front of `buf` (fixed header included)."""
    packets = []
    while True:
        if len(buf) < 2:
            return packets
        remaining, multiplier, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return packets  # header incomplete
            byte = buf[i]
            remaining += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if byte & 0x80 == 0:
                break
            if i > 4:
                raise ValueError(f"malformed Remaining Length: {bytes(buf[:5]).hex()}")
        total = i + remaining
        if len(buf) < total:
            return packets
        packets.append(bytes(buf[:total]))
        del buf[:total]


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, multiplier = 0, 1
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        if byte & 0x80 == 0:
            return value, pos


def connect_identity(packet: bytes) -> tuple[str, str]:
    """The (version tag, Client Identifier) of a CONNECT packet."""
    _, pos = read_varint(packet, 1)
    name_len = int.from_bytes(packet[pos : pos + 2], "big")
    pos += 2 + name_len
    level = packet[pos]
    pos += 1 + 1 + 2  # level, flags, keep alive
    if level == 5:
        props_len, pos = read_varint(packet, pos)
        pos += props_len
    id_len = int.from_bytes(packet[pos : pos + 2], "big")
    client_id = packet[pos + 2 : pos + 2 + id_len].decode("utf-8")
    # A Mosquitto bridge sets the level's high bit (try_private): 0x83, 0x84.
    return LEVEL_TO_VERSION.get(level & 0x7F, f"level{level}"), client_id


# --- the recording proxy ----------------------------------------------------------------------


@dataclass
class Label:
    client: str
    version: str
    scenario: str


@dataclass
class Connection:
    label: Label | None = None
    seq: dict[str, int] = field(default_factory=lambda: {"c2s": 0, "s2c": 0})
    seen: list[tuple[str, str]] = field(default_factory=list)  # (direction, packet type)


class Recorder:
    """Labels connections by Client Identifier and writes their packets to files."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.labels: dict[str, Label] = {}
        self.by_client_id: dict[str, Connection] = {}
        self.cond = threading.Condition()
        self.last_activity = time.monotonic()
        self.written: list[str] = []
        self.errors: list[str] = []

    def register(self, client_id: str, client: str, version: str, scenario: str) -> str:
        if client_id in self.labels:
            raise ValueError(f"client id {client_id!r} used twice")
        for part in (client, version, scenario):
            if "-" in part:
                raise ValueError(f"{part!r}: '-' separates name fields")
        self.labels[client_id] = Label(client, version, scenario)
        return client_id

    def record(self, conn: Connection, direction: str, packet: bytes) -> None:
        with self.cond:
            ptype = PACKET_TYPES.get(packet[0] >> 4, f"type{packet[0] >> 4}")
            if conn.label is None:
                if ptype != "connect":
                    self.errors.append(f"first packet is {ptype}, not CONNECT: {packet.hex()}")
                    return
                version, client_id = connect_identity(packet)
                label = self.labels.get(client_id)
                if label is None:
                    self.errors.append(f"unregistered client id {client_id!r}")
                    label = Label("unknown", version, client_id.replace("-", "_"))
                elif label.version != version:
                    self.errors.append(f"{client_id}: CONNECT says {version}, label {label.version}")
                conn.label = label
                self.by_client_id[client_id] = conn
            name = (
                f"{conn.label.client}-{conn.label.version}-{conn.label.scenario}-"
                f"{conn.seq[direction]:02d}-{direction}-{ptype}.bin"
            )
            conn.seq[direction] += 1
            conn.seen.append((direction, ptype))
            (self.out_dir / name).write_bytes(packet)
            self.written.append(name)
            self.last_activity = time.monotonic()
            log(f"  {name} {packet.hex()}")
            self.cond.notify_all()

    def wait_for(
        self, client_id: str, direction: str, ptype: str, count: int = 1, timeout: float = 10.0
    ) -> None:
        """Waits until the connection of `client_id` has carried `count` packets of a type."""

        def done() -> bool:
            conn = self.by_client_id.get(client_id)
            return conn is not None and conn.seen.count((direction, ptype)) >= count

        with self.cond:
            if not self.cond.wait_for(done, timeout):
                conn = self.by_client_id.get(client_id)
                raise TimeoutError(
                    f"{client_id}: no {count} x {direction} {ptype}; saw {conn.seen if conn else 'nothing'}"
                )

    def wait_quiet(self, quiet: float = 0.4, timeout: float = 10.0) -> None:
        """Waits until no packet has crossed the proxy for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cond:
                idle = time.monotonic() - self.last_activity
            if idle >= quiet:
                return
            time.sleep(quiet - idle)
        raise TimeoutError("proxy never went quiet")


class Proxy:
    """A TCP proxy on 127.0.0.1 that hands every packet of both directions to a Recorder."""

    def __init__(self, listen_port: int, upstream_port: int, recorder: Recorder) -> None:
        self.upstream_port = upstream_port
        self.recorder = recorder
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((HOST, listen_port))
        self.server.listen(64)
        self.port = listen_port
        self.closing = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.upstream_port))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sockets += [client, upstream]
            conn = Connection()
            threading.Thread(target=self._pump, args=(client, upstream, conn, "c2s"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, conn, "s2c"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, conn: Connection, direction: str) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                buf += chunk
                # Record before forwarding, so that once a peer has answered, the packet it
                # answered is on disk (the scenarios wait on answers).
                for packet in split_packets(buf):
                    self.recorder.record(conn, direction, packet)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            if buf:
                self.recorder.errors.append(f"{direction}: {len(buf)} trailing bytes {bytes(buf).hex()}")
            # Pass the close on, as the peer would have seen it without the proxy.
            for s in (dst, src):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closing = True
        self.server.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


# --- the broker -------------------------------------------------------------------------------


class Mosquitto:
    def __init__(self, port: int, workdir: Path) -> None:
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} {HOST}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type all\n"
        )
        os.chmod(workdir, 0o755)
        os.chmod(conf, 0o644)
        self.log_path = workdir / "mosquitto.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_listening(port)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- scenarios: Debian mosquitto-clients ------------------------------------------------------


class Run:
    def __init__(self, recorder: Recorder, port: int) -> None:
        self.rec = recorder
        self.port = port
        self.children: list[subprocess.Popen] = []

    def mosq(self, tool: str, version: str, scenario: str, client_id: str, args: list[str]) -> list[str]:
        self.rec.register(client_id, tool, version, scenario)
        return [tool, "-h", HOST, "-p", str(self.port), "-V", MOSQ_FLAG[version], "-i", client_id, *args]

    def run(self, cmd: list[str], stdin: str | None = None) -> None:
        log("$ " + " ".join(cmd))
        subprocess.run(cmd, input=stdin, text=True, check=True, timeout=30, capture_output=True)
        self.rec.wait_quiet()

    def spawn(self, cmd: list[str]) -> subprocess.Popen:
        log("$ " + " ".join(cmd) + " &")
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.children.append(child)
        return child

    def stop(self, child: subprocess.Popen, sig: int) -> None:
        child.send_signal(sig)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        self.rec.wait_quiet()


def mosquitto_clients(run: Run, v: str) -> None:
    """Both mosquitto tools: every packet type the clients send, and the broker's answers."""
    t = f"golden/{v}"
    v5 = v == "v5"

    # A retained message, there before anyone subscribes.
    retain_props = ["-D", "publish", "user-property", "kind", "retained"] if v5 else []
    run.run(
        run.mosq(
            "mosquitto_pub",
            v,
            "retain",
            f"g-pr-{v}",
            ["-t", f"{t}/retained", "-m", "retained payload", "-r", "-q", "1", *retain_props],
        )
    )

    # The subscriber: several filters with wildcards at QoS 2, credentials, a short keepalive,
    # two unsubscriptions (one of a filter it has, one of a filter it never had). It receives the
    # retained message, the publications below and a will; keeps still long enough to PINGREQ;
    # then is stopped with SIGINT, on which mosquitto_sub sends DISCONNECT (in MQTT 5 with reason
    # 0x04, Disconnect with Will Message).
    sub_id = f"g-s-{v}"
    sub_props = (
        [
            "-x", "30",
            "-D", "connect", "receive-maximum", "10",
            "-D", "connect", "user-property", "role", "subscriber",
            "-D", "connect", "maximum-packet-size", "65536",
            "-D", "connect", "topic-alias-maximum", "4",
            "-D", "subscribe", "user-property", "s", "1",
            "-D", "unsubscribe", "user-property", "u", "1",
            "-D", "disconnect", "user-property", "bye", "now",
        ]
        if v5
        else []
    )  # fmt: skip
    sub = run.spawn(
        run.mosq(
            "mosquitto_sub",
            v,
            "sub",
            sub_id,
            [
                "-q", "2", "-k", "5", "-u", "subuser", "-P", "subpass", "-v",
                "-t", f"{t}/+/temp",
                "-t", f"{t}/#",
                "-t", f"{t}/retained",
                "-t", f"{t}/gone/+",
                "-U", f"{t}/gone/+",
                "-U", f"{t}/never",
                *sub_props,
            ],
        )
    )  # fmt: skip
    run.rec.wait_for(sub_id, "s2c", "unsuback", 2)
    run.rec.wait_quiet()

    run.run(run.mosq("mosquitto_pub", v, "qos0", f"g-p0-{v}", ["-t", f"{t}/kitchen/temp", "-m", "21.5"]))
    run.run(
        run.mosq(
            "mosquitto_pub",
            v,
            "qos1",
            f"g-p1-{v}",
            ["-t", f"{t}/hall/temp", "-m", "19", "-q", "1",
             "-u", "pubuser", "-P", "pubpass", "-k", "30", "-c"],
        )
    )  # fmt: skip
    will_props = (
        [
            "-D", "will", "content-type", "text/plain",
            "-D", "will", "user-property", "w", "1",
            "-D", "will", "message-expiry-interval", "120",
            "-D", "will", "payload-format-indicator", "1",
        ]
        if v5
        else []
    )  # fmt: skip
    run.run(
        run.mosq(
            "mosquitto_pub",
            v,
            "qos2",
            f"g-p2-{v}",
            [
                "-t", f"{t}/cellar", "-m", "dark", "-q", "2",
                "--will-topic", f"{t}/will/p2", "--will-payload", "gone", "--will-qos", "1", "--will-retain",
                *will_props,
            ],
        )
    )  # fmt: skip
    # Several messages on one connection, packet identifiers counting up, and an empty payload.
    run.run(
        run.mosq("mosquitto_pub", v, "lines", f"g-pl-{v}", ["-t", f"{t}/lines", "-q", "1", "-l"]),
        stdin="one\ntwo\n\nfour\n",
    )
    run.run(run.mosq("mosquitto_pub", v, "null", f"g-pn-{v}", ["-t", f"{t}/null", "-n", "-q", "2"]))

    if v5:
        run.run(
            run.mosq(
                "mosquitto_pub",
                v,
                "props",
                f"g-pp-{v}",
                [
                    "-t", f"{t}/props", "-m", "{\"on\":true}", "-q", "1",
                    "-D", "publish", "user-property", "a", "b",
                    "-D", "publish", "user-property", "a", "c",
                    "-D", "publish", "message-expiry-interval", "60",
                    "-D", "publish", "content-type", "text/plain",
                    "-D", "publish", "response-topic", "r/t",
                    "-D", "publish", "correlation-data", "0102",
                    "-D", "publish", "payload-format-indicator", "1",
                    "-D", "connect", "session-expiry-interval", "30",
                    "-D", "connect", "receive-maximum", "10",
                    "-D", "connect", "user-property", "c", "d",
                    "-D", "connect", "request-problem-information", "0",
                    "-D", "connect", "request-response-information", "1",
                    "-D", "disconnect", "session-expiry-interval", "0",
                    "-D", "disconnect", "user-property", "bye", "now",
                ],
            )
        )  # fmt: skip
        run.run(
            run.mosq(
                "mosquitto_pub",
                v,
                "alias",
                f"g-pa-{v}",
                ["-t", f"{t}/alias", "-m", "aliased", "-q", "1", "-D", "publish", "topic-alias", "1"],
            )
        )

    # A will that fires: a client dies without DISCONNECT and the broker publishes its will to
    # the subscriber.
    will_id = f"g-w-{v}"
    dying = run.spawn(
        run.mosq(
            "mosquitto_sub",
            v,
            "will",
            will_id,
            [
                "-t", f"{t}/quiet", "-k", "60",
                "--will-topic", f"{t}/will/w", "--will-payload", "died", "--will-qos", "2",
                *(["-D", "will", "user-property", "why", "killed"] if v5 else []),
            ],
        )
    )  # fmt: skip
    run.rec.wait_for(will_id, "s2c", "suback")
    run.rec.wait_quiet()
    run.stop(dying, signal.SIGKILL)

    # Keep still for longer than the subscriber's 5 s keepalive: PINGREQ / PINGRESP.
    run.rec.wait_for(sub_id, "s2c", "pingresp", timeout=15)
    run.rec.wait_quiet()
    run.stop(sub, signal.SIGINT)


# --- scenarios: paho-mqtt ---------------------------------------------------------------------


def paho(run: Run, v: str) -> None:
    """paho-mqtt 2.x: will, credentials, v5 subscription options and properties, QoS 0/1/2,
    topic alias, unsubscribe, and in v5 a DISCONNECT with a reason code that fires the will."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode
    from paho.mqtt.subscribeoptions import SubscribeOptions

    protocol = {"v31": mqtt.MQTTv31, "v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}[v]
    v5 = v == "v5"
    t = f"golden/{v}/paho"

    def client(client_id: str, scenario: str) -> mqtt.Client:
        run.rec.register(client_id, "paho", v, scenario)
        kwargs = {} if v5 else {"clean_session": True}
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)

    def props(packet: int, **values: object) -> Properties | None:
        if not v5:
            return None
        p = Properties(packet)
        for key, value in values.items():
            setattr(p, key, value)
        return p

    # A watcher, subscribed to the session's will topic.
    watch_id = f"paho-watch-{v}"
    watch = client(watch_id, "watch")
    watch.connect(HOST, run.port, keepalive=60)
    watch.loop_start()
    run.rec.wait_for(watch_id, "s2c", "connack")
    watch.subscribe(f"{t}/will", qos=1)
    run.rec.wait_for(watch_id, "s2c", "suback")

    session_id = f"paho-s-{v}"
    c = client(session_id, "session")
    c.username_pw_set("pahouser", "pahopass")
    c.will_set(
        f"{t}/will",
        "paho will",
        qos=1,
        retain=False,
        properties=props(
            PacketTypes.WILLMESSAGE,
            WillDelayInterval=0,
            ContentType="text/plain",
            UserProperty=[("w", "paho")],
        ),
    )
    c.connect(
        HOST,
        run.port,
        keepalive=3,
        properties=props(
            PacketTypes.CONNECT,
            SessionExpiryInterval=30,
            ReceiveMaximum=10,
            TopicAliasMaximum=5,
            MaximumPacketSize=65536,
            UserProperty=[("client", "paho")],
        ),
    )
    c.loop_start()
    run.rec.wait_for(session_id, "s2c", "connack")

    if v5:
        c.subscribe(
            [
                (f"{t}/#", SubscribeOptions(qos=2, noLocal=False, retainAsPublished=True, retainHandling=0)),
                (f"{t}/nl/+", SubscribeOptions(qos=1, noLocal=True, retainHandling=2)),
                (f"{t}/new/+", SubscribeOptions(qos=0, retainHandling=1)),
            ],
            properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7, UserProperty=[("sub", "1")]),
        )
    else:
        c.subscribe([(f"{t}/#", 2), (f"{t}/nl/+", 1), (f"{t}/new/+", 0)])
    run.rec.wait_for(session_id, "s2c", "suback")
    run.rec.wait_quiet()

    published = 0

    def publish(
        topic: str, payload: str | bytes, qos: int, retain: bool = False, **properties: object
    ) -> None:
        """Publishes, then waits until the PUBLISH has crossed the proxy and the flows it starts
        (acknowledgements, the echo to our own subscription) are over."""
        nonlocal published
        c.publish(topic, payload, qos=qos, retain=retain, properties=props(PacketTypes.PUBLISH, **properties))
        published += 1
        run.rec.wait_for(session_id, "c2s", "publish", published)
        run.rec.wait_quiet()

    # QoS 0, 1 and 2, echoed back by the '#' subscription.
    publish(f"{t}/q0", "zero", qos=0)
    publish(
        f"{t}/q1",
        "one",
        qos=1,
        UserProperty=[("a", "b"), ("a", "c")],
        PayloadFormatIndicator=1,
        MessageExpiryInterval=60,
    )
    publish(
        f"{t}/nl/q2",
        b"\x00\x01\x02",
        qos=2,
        retain=True,
        ContentType="application/octet-stream",
        ResponseTopic=f"{t}/reply",
        CorrelationData=b"\x01\x02",
    )
    if v5:
        # Topic Alias: set it with the topic, then use it with an empty topic.
        publish(f"{t}/alias", "set", qos=1, TopicAlias=1)
        publish("", "used", qos=1, TopicAlias=1)

    # Keep still past the 3 s keepalive: PINGREQ / PINGRESP.
    run.rec.wait_for(session_id, "s2c", "pingresp", timeout=10)
    run.rec.wait_quiet()

    c.unsubscribe(
        [f"{t}/nl/+", f"{t}/new/+"],
        properties=props(PacketTypes.UNSUBSCRIBE, UserProperty=[("u", "1")]),
    )
    run.rec.wait_for(session_id, "s2c", "unsuback")
    run.rec.wait_quiet()

    if v5:
        c.disconnect(
            reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"),
            properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0, UserProperty=[("bye", "paho")]),
        )
        run.rec.wait_for(watch_id, "s2c", "publish")
    else:
        c.disconnect()
    run.rec.wait_for(session_id, "c2s", "disconnect")
    c.loop_stop()
    run.rec.wait_quiet()

    watch.disconnect()
    run.rec.wait_for(watch_id, "c2s", "disconnect")
    watch.loop_stop()
    run.rec.wait_quiet()


# --- scenario: a Mosquitto bridge -------------------------------------------------------------


def mosquitto_bridge(run: Run, v: str, workdir: Path) -> None:
    """A second Mosquitto bridged to the first through the proxy: its CONNECT (the bridge bit on
    3.1 and 3.1.1), the notification PUBLISH and the SUBSCRIBE of an `in` topic. Stopped once
    subscribed."""
    bridge_id = run.rec.register(f"g-bridge-{v}", "mosquittobridge", v, "private")
    port = free_port()
    conf = workdir / f"bridge-{v}.conf"
    conf.write_text(
        f"listener {port} {HOST}\n"
        "allow_anonymous true\n"
        "log_dest stderr\n"
        "connection golden\n"
        f"address {HOST}:{run.port}\n"
        f"remote_clientid {bridge_id}\n"
        f"bridge_protocol_version {MOSQ_FLAG[v].replace('mqttv5', 'mqttv50')}\n"
        "keepalive_interval 30\n"
        "topic golden/bridge/# in 1\n"
    )
    os.chmod(conf, 0o644)
    child = run.spawn([MOSQUITTO, "-c", str(conf)])
    run.rec.wait_for(bridge_id, "s2c", "suback")
    run.rec.wait_quiet()
    run.stop(child, signal.SIGTERM)
    run.rec.wait_quiet()


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="log every command and packet")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the .bin files go")
    args = parser.parse_args()
    VERBOSE = args.verbose

    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.bin"):
        old.unlink()

    recorder = Recorder(args.out)
    broker_port, proxy_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="midge-capture-") as tmp:
        broker = Mosquitto(broker_port, Path(tmp))
        proxy = Proxy(proxy_port, broker_port, recorder)
        run = Run(recorder, proxy_port)
        try:
            for v in VERSIONS:
                print(f"mosquitto clients {v}", file=sys.stderr, flush=True)
                mosquitto_clients(run, v)
            for v in VERSIONS:
                print(f"paho {v}", file=sys.stderr, flush=True)
                paho(run, v)
            for v in VERSIONS:
                print(f"mosquitto bridge {v}", file=sys.stderr, flush=True)
                mosquitto_bridge(run, v, Path(tmp))
        except Exception:
            sys.stderr.write(Path(broker.log_path).read_text(errors="replace")[-4000:])
            raise
        finally:
            for child in run.children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            proxy.close()
            broker.stop()

    counts: dict[str, int] = {}
    for name in recorder.written:
        key = "-".join(name.split("-")[:2])
        counts[key] = counts.get(key, 0) + 1
    for key in sorted(counts):
        print(f"{key}: {counts[key]}")
    print(f"{len(recorder.written)} packets written to {args.out}")
    for error in recorder.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if recorder.errors else 0


if __name__ == "__main__":
    sys.exit(main())
