"""Persistence under `kill -9`, seen by paho-mqtt clients.

The broker runs with `persistence true` (and `persistence_fsync never`: the weakest setting
that still promises to survive a crash of the broker process). Persistent subscribers, some
online and one offline, subscribe at QoS 1 and 2; publishers send numbered QoS 1 and QoS 2
messages flat out and count every PUBACK/PUBCOMP; another publishes retained messages. The
broker is killed with SIGKILL mid-stream several times and restarted on the same directory
and port, and the paho clients reconnect on their own. Then:

- every acknowledged QoS 1 message arrives at least once at every subscriber,
- every acknowledged QoS 2 message arrives exactly once at the QoS 2 subscribers,
- each publisher's messages first arrive in the order they were published,
- every acknowledged retained message (or a later one for its topic) is there.

The publishers reconnect once per restart, when the broker is up again, and not by paho's own
retry loop: paho-mqtt 2.2 resets its outgoing messages on every reconnect attempt, so a QoS 2
message waiting for PUBCOMP is turned back into a new PUBLISH (DUP 0) by the second failed
attempt, and a broker must then treat it as a new message [MQTT-4.3.3-10 is the sender's to
keep]. Seen here as QoS 2 duplicates until the retries were taken out of paho's hands.

MIDGE_CRASH_KILLS sets the number of kills (default 3); MIDGE_CRASH_SEED the random seed.
"""
import os
import random
import re
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from interop.harness import Broker, free_port

WAIT = 30.0


class Publisher:
    """Publishes `prefix:N` for N = 1, 2, ... to `topic` as fast as the broker acknowledges,
    with at most `window` unacknowledged, and remembers which N were acknowledged."""

    def __init__(self, port, client_id, topic, qos, up, retain_topics=0):
        self.topic, self.qos, self.retain_topics = topic, qos, retain_topics
        self.acked = set()
        self.sent = 0
        self._mids = {}
        self._early = set()
        self._lock = threading.Condition()
        self._stop = False
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=False)
        self.c.max_inflight_messages_set(50)
        self.c.max_queued_messages_set(0)
        self.c.on_publish = self._on_publish
        self.log = []
        self.mid_of = {}
        self.c.on_log = lambda c, u, level, buf: self.log.append((time.monotonic(), buf))
        self.c.connect("127.0.0.1", port, keepalive=30)
        self._up = up
        self._closing = False
        self._network = threading.Thread(target=self._loop, daemon=True)
        self._network.start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _loop(self):
        """paho's network loop, reconnecting once the broker is up (see the module doc)."""
        while not self._closing:
            if self.c.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS and not self._closing:
                self._up.wait()
                try:
                    self.c.reconnect()
                except OSError:
                    time.sleep(0.05)

    def _on_publish(self, client, userdata, mid, rc, props):
        with self._lock:
            n = self._mids.pop(mid, None)
            if n is None:
                # Acknowledged before publish() returned its mid to us.
                self._early.add(mid)
            else:
                self.acked.add(n)
            self._lock.notify_all()

    def topic_of(self, n):
        if self.retain_topics:
            return f"{self.topic}/{n % self.retain_topics}"
        return self.topic

    def _run(self):
        while True:
            with self._lock:
                while not self._stop and self.sent - len(self.acked) >= 200:
                    self._lock.wait(0.1)
                if self._stop:
                    return
                self.sent += 1
                n = self.sent
            # Not under our lock: paho calls on_publish holding its own.
            info = self.c.publish(self.topic_of(n), f"{self.topic}:{n}", self.qos,
                                  retain=bool(self.retain_topics))
            self.mid_of[n] = info.mid
            with self._lock:
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self.acked.add(n)
                else:
                    self._mids[info.mid] = n

    def stop(self):
        """Stops publishing and waits until everything sent is acknowledged."""
        with self._lock:
            self._stop = True
        self._thread.join(WAIT)
        deadline = time.monotonic() + WAIT
        with self._lock:
            while len(self.acked) < self.sent and time.monotonic() < deadline:
                self._lock.wait(0.2)
        self.close()

    def close(self):
        self._closing = True
        self._network.join(WAIT)
        self.c.disconnect()


class Subscriber:
    """A persistent session that records every message it is given, in order."""

    def __init__(self, port, client_id, topic, qos):
        self.received = []
        self.details = []
        self._lock = threading.Condition()
        self.client_id, self.topic, self.qos, self.port = client_id, topic, qos, port
        self.c = None
        self.start(subscribe=True)

    def start(self, subscribe=False):
        connected = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             clean_session=False)
        self.c.max_inflight_messages_set(100)
        self.c.reconnect_delay_set(0.05, 0.5)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, flags, rc, props: connected.set()
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        assert connected.wait(WAIT), f"{self.client_id} did not connect"
        if subscribe:
            info = self.c.subscribe(self.topic, self.qos)
            assert info[0] == mqtt.MQTT_ERR_SUCCESS

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.received.append(message.payload.decode())
            self.details.append((message.payload.decode(), message.mid, message.dup,
                                 time.monotonic()))
            self._lock.notify_all()

    def wait_for(self, wanted, timeout=WAIT):
        """Waits until every payload in `wanted` has arrived; returns the ones still missing."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                missing = wanted - set(self.received)
                if not missing or time.monotonic() >= deadline:
                    return missing
                self._lock.wait(0.2)


def numbers(received, prefix):
    return [int(p.split(":")[1]) for p in received if p.startswith(prefix + ":")]


class KillNineTest(unittest.TestCase):
    def test_no_acknowledged_message_is_lost_or_doubled(self):
        kills = int(os.environ.get("MIDGE_CRASH_KILLS", "3"))
        seed = int(os.environ.get("MIDGE_CRASH_SEED", str(random.randrange(1 << 30))))
        rng = random.Random(seed)
        note = f"(seed {seed}, {kills} kills)"
        directory = tempfile.TemporaryDirectory()
        port = free_port()
        # Queue limits would drop (and count) messages for subscribers that are away while
        # the publishers run flat out; this test is about the store, so the queues are roomy.
        extra = (f"persistence true\npersistence_location {directory.name}/\n"
                 "persistence_fsync never\nmax_queued_messages 1000000\n")

        def start():
            return Broker(extra, port=port, directory=directory.name)

        broker = start()
        subscribers = []
        publishers = []
        try:
            online_q1 = Subscriber(port, "crash-sub-q1", "crash/#", 1)
            online_q2 = Subscriber(port, "crash-sub-q2", "crash/#", 2)
            offline_q2 = Subscriber(port, "crash-sub-offline", "crash/#", 2)
            subscribers = [online_q1, online_q2, offline_q2]
            time.sleep(0.2)
            offline_q2.stop()
            up = threading.Event()
            up.set()
            publishers = [
                Publisher(port, "crash-pub-q1", "crash/q1", 1, up),
                Publisher(port, "crash-pub-q2", "crash/q2", 2, up),
                Publisher(port, "crash-pub-retained", "kept", 1, up, retain_topics=20),
            ]
            restored = []
            for _ in range(kills):
                time.sleep(rng.uniform(0.3, 0.9))
                up.clear()
                broker.close()  # SIGKILL
                broker = start()
                up.set()
                line = broker.wait_for_log("Restored from")
                restored.append(re.search(r"(\d+) queued messages", line).group(1))
            time.sleep(0.5)
            for publisher in publishers:
                publisher.stop()
            q1, q2, retained = publishers
            for publisher in publishers:
                self.assertGreater(len(publisher.acked), 0, f"{publisher.topic} sent nothing {note}")
                self.assertEqual(len(publisher.acked), publisher.sent,
                                 f"{publisher.topic}: unacknowledged at the end {note}")
            offline_q2.start()

            wanted_q1 = {f"crash/q1:{n}" for n in q1.acked}
            wanted_q2 = {f"crash/q2:{n}" for n in q2.acked}
            for subscriber in subscribers:
                missing = subscriber.wait_for(wanted_q1 | wanted_q2)
                if missing:
                    self.fail(f"{subscriber.client_id} never got {len(missing)} acknowledged "
                              f"messages, e.g. {sorted(missing)[:5]} {note}")
                for prefix in ("crash/q1", "crash/q2"):
                    got = numbers(subscriber.received, prefix)
                    first = list(dict.fromkeys(got))
                    self.assertEqual(first, sorted(first),
                                     f"{subscriber.client_id}: {prefix} out of order {note}")
            for subscriber in (online_q2, offline_q2):
                got = numbers(subscriber.received, "crash/q2")
                doubled = sorted({n for n in got if got.count(n) > 1})
                if doubled:
                    first = f"crash/q2:{doubled[0]}"
                    idx = [i for i, d in enumerate(subscriber.details) if d[0] == first]
                    for d in subscriber.details[idx[0] - 3: idx[-1] + 3]:
                        print("  ", d, flush=True)
                    mids = set()
                    for n in doubled[:3]:
                        mids |= {f"m{q2.mid_of[n]})", f"Mid: {q2.mid_of[n]})"}
                    for t, line in q2.log:
                        if any(m in line for m in mids) or "CONNACK" in line:
                            print("   pub", t, line, flush=True)
                    self.fail(f"{subscriber.client_id} got {len(doubled)} QoS 2 messages twice, "
                              f"e.g. {doubled[:10]} {note}")

            # The retained messages: for each topic, the last acknowledged value or a later one.
            latest = {}
            for n in sorted(retained.acked):
                latest[retained.topic_of(n)] = n
            reader = Subscriber(port, "crash-retained-reader", "kept/#", 1)
            subscribers.append(reader)
            deadline = time.monotonic() + WAIT
            while len(reader.received) < len(latest) and time.monotonic() < deadline:
                time.sleep(0.1)
            kept = {}
            for payload in reader.received:
                n = int(payload.split(":")[1])
                kept[retained.topic_of(n)] = n
            for topic, n in latest.items():
                self.assertIn(topic, kept, f"retained message of {topic} lost {note}")
                self.assertGreaterEqual(kept[topic], n,
                                        f"{topic}: retained {kept[topic]}, acknowledged {n} {note}")
            print(f"\n  kill -9 x{kills} {note}: QoS 1 {len(q1.acked)} acked, QoS 2 "
                  f"{len(q2.acked)} acked, retained {len(retained.acked)} acked; queued at "
                  f"restarts {restored}; all delivered", flush=True)
        finally:
            for client in subscribers:
                try:
                    client.stop()
                except Exception:
                    pass
            for publisher in publishers:
                try:
                    publisher.close()
                except Exception:
                    pass
            broker.close()
            directory.cleanup()


if __name__ == "__main__":
    unittest.main()
