#!/usr/bin/env python3
"""Record what real Mosquitto (2.0.11, Debian) decides, for midge-auth's tests to compare with.

Writes, next to this script:
  acl_matrix.tsv       client_id, username, access, topic -> allow|deny, for acl_matrix.acl
  acl_lines.tsv        one ACL line -> whether mosquitto starts with it
  passwd_quirks.tsv    one password-file line + a login attempt -> whether mosquitto accepts it
  passwd_mosquitto.txt a password file written by mosquitto_passwd, and passwd_mosquitto.tsv with
                       the passwords (for the test that reads it with our parser)

Needs /usr/sbin/mosquitto, /usr/bin/mosquitto_passwd and Python paho-mqtt 2.x. Run it again
after changing acl_matrix.acl or the cases below, and commit the outputs:

    python3 crates/midge-auth/testdata/record_mosquitto.py

How decisions are observed (nothing is inferred from the source):
  Write:     the client publishes at QoS 1 (MQTT 5); an observer with full rights subscribed to
             everything sees whether the message got through. The PUBACK reason code must agree.
  Read:      the client subscribes to each topic name; a publisher with full rights publishes
             each one (payload marks it); a delivery means Read was allowed. $SYS/broker/version
             is published by the broker itself (retained).
  Subscribe: the SUBACK reason code for each filter (MQTT 5: 0x87 = not authorised).
"""

import base64
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

HERE = os.path.dirname(os.path.abspath(__file__))
MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"

# (client_id, username); every user's password is "pw-" + username.
IDENTITIES = [
    ("anon-1", None),
    ("bad#id", None),
    ("alice-phone", "alice"),
    ("bob-1", "bob"),
    ("carol-1", "carol"),
    ("x/y", "carol"),
    ("dave-1", "dave"),
    ("eve-1", "eve+x"),
    ("js-1", "john smith"),
]
SUPER = ("super-pub", "super")
OBSERVER = ("super-obs", "super")

FIXED_TOPICS = [
    "public/news", "public/secret", "anon/x", "read", "a/secret", "a/public", "a/other",
    "home/alice/lamp", "home/bob/lamp", "sensors/1/temp", "sensors/1/2/temp",
    "my topic/with spaces", "dave/one", "dave/two", "eve/1", "js/1", "patternonly/z",
    "nothing/here", "$SYSTEM/x", "$SYS/broker/version", "$SYS/broker/connection/b1/state", "$foo/bar",
    "$share/g/t",
]
SUBSCRIBE_FILTERS = [
    "#", "public/#", "a/secret", "$SYS/#", "$share/g/public/#", "+/+", "home/alice/#",
    "nothing/at/all", "devices/+/out",
]
BROKER_TOPICS = {"$SYS/broker/version"}  # published by the broker, not by us
UNPUBLISHABLE = {"$share/g/t"}  # no one can publish it, so Read cannot be observed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def valid_topic(topic):
    return "+" not in topic and "#" not in topic


def all_topics():
    topics = list(FIXED_TOPICS)
    for client_id, username in IDENTITIES:
        topics.append(f"devices/{client_id}/out")
        topics.append(f"$SYS/broker/connection/{client_id}/state")
        if username is not None:
            topics.append(f"users/{username}/inbox")
            topics.append(f"users/{username}/blocked")
            topics.append(f"shared/{client_id}/{username}")
    seen = []
    for topic in topics:
        if valid_topic(topic) and topic not in seen:
            seen.append(topic)
    return seen


class Broker:
    def __init__(self, workdir, acl_path, passwd_path):
        self.port = free_port()
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
            if passwd_path:
                f.write(f"password_file {passwd_path}\n")
            if acl_path:
                f.write(f"acl_file {acl_path}\n")
        self.log = open(os.path.join(workdir, "mosquitto.log"), "w")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited; see " + self.log.name)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        self.log.close()


class Client:
    """A paho MQTT 5 client that records what happens to it."""

    def __init__(self, port, client_id, username, password=None):
        self.received = []  # (topic, payload)
        self.suback = {}  # mid -> reason codes
        self.puback = {}  # mid -> reason code
        self.connack = None
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        if username is not None:
            c.username_pw_set(username, password if password is not None else "pw-" + username)
        c.on_connect = lambda cl, ud, flags, rc, props: setattr(self, "connack", rc.value)
        c.on_message = lambda cl, ud, msg: self.received.append((msg.topic, msg.payload.decode(errors="replace")))
        c.on_subscribe = lambda cl, ud, mid, rcs, props: self.suback.__setitem__(mid, [rc.value for rc in rcs])
        c.on_publish = lambda cl, ud, mid, rc, props: self.puback.__setitem__(mid, rc.value)
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        wait_for(lambda: self.connack is not None, f"CONNACK for {client_id}")

    def subscribe(self, filters):
        result, mid = self.client.subscribe([(f, 0) for f in filters])
        assert result == mqtt.MQTT_ERR_SUCCESS
        wait_for(lambda: mid in self.suback, "SUBACK")
        return dict(zip(filters, self.suback[mid]))

    def publish(self, topic, payload):
        info = self.client.publish(topic, payload, qos=1)
        return info.mid

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition, what, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise RuntimeError("timed out waiting for " + what)


def write_passwords(path, users):
    if os.path.exists(path):
        os.remove(path)
    for user, password in users:
        args = [MOSQUITTO_PASSWD, "-b"] + (["-c"] if not os.path.exists(path) else []) + [path, user, password]
        subprocess.run(args, check=True)


def record_acl_matrix(workdir):
    acl_path = os.path.join(HERE, "acl_matrix.acl")
    passwd = os.path.join(workdir, "passwd")
    users = sorted({u for _, u in IDENTITIES + [SUPER] if u is not None})
    write_passwords(passwd, [(u, "pw-" + u) for u in users])
    broker = Broker(workdir, acl_path, passwd)
    rows = []
    try:
        topics = all_topics()
        observer = Client(broker.port, *OBSERVER)
        observer.subscribe(["#", "$SYS/#", "$SYSTEM/#", "$foo/#"])
        publisher = Client(broker.port, *SUPER)
        clients = {}
        for client_id, username in IDENTITIES:
            client = Client(broker.port, client_id, username)
            if client.connack != 0:
                raise RuntimeError(f"{client_id} refused: {client.connack}")
            clients[(client_id, username)] = client
            # Subscribe: one SUBACK per identity, one reason code per filter.
            for flt, code in client.subscribe(SUBSCRIBE_FILTERS).items():
                rows.append((client_id, username, "subscribe", flt, "allow" if code < 0x80 else "deny"))
            client.subscribe([t for t in topics if t not in UNPUBLISHABLE])
        # Read: the publisher sends each topic once; who receives it may read it.
        mids = {publisher.publish(t, "r:" + t): t for t in topics if t not in BROKER_TOPICS | UNPUBLISHABLE}
        wait_for(lambda: all(m in publisher.puback for m in mids), "publisher PUBACKs")
        # A topic even the publisher may not write (e.g. $SYS/broker/connection/x/y/state)
        # never carries a message, so Read on it cannot be observed: leave it out.
        refused = {t for m, t in mids.items() if publisher.puback[m] >= 0x80}
        time.sleep(1.0)
        for (client_id, username), client in clients.items():
            got = {t for t, p in client.received if p == "r:" + t or t in BROKER_TOPICS}
            for topic in topics:
                if topic not in UNPUBLISHABLE | refused:
                    rows.append((client_id, username, "read", topic, "allow" if topic in got else "deny"))
        # Write: each client publishes each topic; the observer sees what got through.
        for (client_id, username), client in clients.items():
            sent = {client.publish(t, f"w:{client_id}:{t}"): t for t in topics}
            wait_for(lambda: all(m in client.puback for m in sent), f"PUBACKs for {client_id}")
            time.sleep(0.3)
            seen = {t for t, p in observer.received if p == f"w:{client_id}:{t}"}
            for mid, topic in sent.items():
                acked = client.puback[mid] < 0x80
                through = topic in seen
                if acked != through:
                    raise RuntimeError(f"{client_id} {topic}: PUBACK {client.puback[mid]:#x} but delivered={through}")
                rows.append((client_id, username, "write", topic, "allow" if through else "deny"))
        for client in list(clients.values()) + [observer, publisher]:
            client.close()
    finally:
        broker.stop()
    with open(os.path.join(HERE, "acl_matrix.tsv"), "w") as f:
        f.write("# Recorded from Mosquitto 2.0.11 by record_mosquitto.py with acl_matrix.acl.\n")
        f.write("# client_id\tusername ('-' = none)\taccess\ttopic\tdecision\n")
        for client_id, username, access, topic, decision in rows:
            f.write(f"{client_id}\t{'-' if username is None else username}\t{access}\t{topic}\t{decision}\n")
    print(f"acl_matrix.tsv: {len(rows)} decisions")


ACL_LINES = [
    "topic read a",
    "topic a",
    "topic read",
    "topic deny a",
    "topic readwrite a b c",
    "   topic   write    spaced   ",
    "topic read a\r",
    "pattern read x/%c",
    "pattern read x",
    "user bob",
    "user  two words ",
    "# comment",
    "#",
    "",
    "   ",
    "\t",
    "  # indented comment",
    "\ttopic read a",
    "topic\tread a",
    "Topic read a",
    "bogus",
    "user",
    "user   ",
    "topic",
    "topic   ",
    "pattern",
    "topic raed a",
    "topic READ a",
    "topic read a/b#",
    "topic read #/a",
    "topic read a+",
    "topic read a/+b",
    "topic read +/#",
    "pattern write a/%c+",
    "topic read $SYS/#",
]


def escape(text):
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r")


def record_acl_lines(workdir):
    rows = []
    for line in ACL_LINES:
        acl = os.path.join(workdir, "one.acl")
        with open(acl, "w") as f:
            f.write(line + "\n")
        try:
            Broker(workdir, acl, None).stop()
            rows.append((line, "starts"))
        except RuntimeError:
            rows.append((line, "refused"))
    with open(os.path.join(HERE, "acl_lines.tsv"), "w") as f:
        f.write("# Recorded from Mosquitto 2.0.11 by record_mosquitto.py: does it start with this one-line\n")
        f.write("# acl_file? Fields: line (\\t, \\r, \\\\ escaped), starts|refused.\n")
        for line, outcome in rows:
            f.write(f"{escape(line)}\t{outcome}\n")
    print(f"acl_lines.tsv: {len(rows)} lines")


def pbkdf2_line(password, salt=b"\x01" * 12, iterations="101"):
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations.rstrip("abc")))
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def sha512_line(password, salt=b"\x02" * 12, prefix="$6$"):
    """Mosquitto's legacy format: SHA-512 over the password bytes then the salt bytes."""
    digest = hashlib.sha512(password.encode() + salt).digest()
    return f"{prefix}{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


# (password file line, user to log in as, password to try). Each case runs against a broker
# whose password file is exactly that line (plus a newline unless the line ends with "|").
PASSWD_CASES = [
    ("u6:" + sha512_line("six"), "u6", "six"),
    ("u6:" + sha512_line("six"), "u6", "Six"),
    ("u6:" + sha512_line("six", salt=b"\x03" * 64), "u6", "six"),
    ("u6:" + sha512_line("six", salt=b"\x03" * 16), "u6", "six"),
    ("u6:" + sha512_line("six", prefix="6$"), "u6", "six"),
    ("u7:" + pbkdf2_line("seven"), "u7", "seven"),
    ("u7:" + pbkdf2_line("seven", iterations="5"), "u7", "seven"),
    ("u7:" + pbkdf2_line("seven", iterations="5abc"), "u7", "seven"),
    ("u7:" + pbkdf2_line("seven", salt=b"\x04" * 64), "u7", "seven"),
    ("  spaced \t:  " + pbkdf2_line("p") + "  ", "spaced", "p"),
    ("crlf:" + pbkdf2_line("p") + "\r", "crlf", "p"),
    (":lead:" + pbkdf2_line("p"), "lead", "p"),
    ("two::" + pbkdf2_line("p") + ":extra", "two", "p"),
    ("#hashed:" + pbkdf2_line("p"), "#hashed", "p"),
    (" #indented:" + pbkdf2_line("p"), "#indented", "p"),
    ("nohash:", "nohash", ""),
    ("nohash:", "nohash", "x"),
    ("plain:secret", "plain", "secret"),
    ("dup:" + pbkdf2_line("first") + "\ndup:" + pbkdf2_line("second"), "dup", "second"),
    ("dup:" + pbkdf2_line("first") + "\ndup:" + pbkdf2_line("second"), "dup", "first"),
    ("dup:" + pbkdf2_line("first") + "\ndup:$7$bad", "dup", "first"),
    ("ok:" + pbkdf2_line("p") + "\nno colon line\n", "ok", "p"),
    ("ok:" + pbkdf2_line("p") + "|", "ok", "p"),
    ("ok:" + pbkdf2_line(""), "ok", ""),
]


def try_login(port, username, password):
    client = Client(port, "login-probe", username, password)
    code = client.connack
    client.close()
    return code == 0


def record_passwd(workdir):
    rows = []
    for line, user, password in PASSWD_CASES:
        path = os.path.join(workdir, "pwcase")
        with open(path, "w", newline="") as f:
            f.write(line[:-1] if line.endswith("|") else line + "\n")
        try:
            broker = Broker(workdir, None, path)
        except RuntimeError:
            # Mosquitto refuses to start with this file at all.
            rows.append((line, user, password, "no-start"))
            continue
        try:
            accepted = try_login(broker.port, user, password)
        finally:
            broker.stop()
        rows.append((line, user, password, "accepted" if accepted else "refused"))
    with open(os.path.join(HERE, "passwd_quirks.tsv"), "w") as f:
        f.write("# Recorded from Mosquitto 2.0.11 by record_mosquitto.py: a password file holding the\n")
        f.write("# first field (\\n between lines; a trailing | means no final newline), a login as\n")
        f.write("# user/password, and whether mosquitto accepted it (no-start: the broker refused the\n")
        f.write("# file and exited). Fields are \\t, \\r, \\n, \\\\ escaped.\n")
        for line, user, password, outcome in rows:
            f.write(f"{escape(line).replace(chr(10), chr(92) + 'n')}\t{escape(user)}\t{escape(password)}\t{outcome}\n")
    print(f"passwd_quirks.tsv: {len(rows)} cases")

    # A file written by mosquitto_passwd itself, for the test that reads checked-in fixtures.
    users = [("alice", "wonderland"), ("john smith", "pw with spaces"), ("jürgen", "pässwörd"), ("x", "a:b$c")]
    fixture = os.path.join(HERE, "passwd_mosquitto.txt")
    write_passwords(fixture, users)
    broker = Broker(workdir, None, fixture)
    try:
        for user, password in users:
            assert try_login(broker.port, user, password), user
            assert not try_login(broker.port, user, password + "x"), user
    finally:
        broker.stop()
    with open(os.path.join(HERE, "passwd_mosquitto.tsv"), "w") as f:
        f.write("# The passwords behind passwd_mosquitto.txt (written by mosquitto_passwd 2.0.11 -b).\n")
        for user, password in users:
            f.write(f"{user}\t{password}\n")
    print("passwd_mosquitto.txt: written and checked against mosquitto")


def main():
    for tool in (MOSQUITTO, MOSQUITTO_PASSWD):
        if not os.path.exists(tool):
            sys.exit(f"{tool} is missing: apt-get install mosquitto")
    version = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    print(version)
    with tempfile.TemporaryDirectory() as workdir:
        # Run as root, mosquitto drops to user "mosquitto" before it reads the files.
        os.chmod(workdir, 0o755)
        record_acl_lines(workdir)
        record_passwd(workdir)
        record_acl_matrix(workdir)


if __name__ == "__main__":
    main()
