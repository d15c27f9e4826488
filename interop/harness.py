"""Starts the real `midge` binary for the interoperability tests.

Each `Broker` is a midge process on a free port of 127.0.0.1 (mosquitto.conf `listener 0
127.0.0.1`), with the extra configuration lines a test asks for. Its log is collected in the
background so tests can wait for lines such as "New client connected from ...".
The binary is $MIDGE_BIN, or target/debug/midge (built with `cargo build -p midge` if missing).
"""
import os
import re
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT = 10.0


def midge_binary():
    path = os.environ.get("MIDGE_BIN") or os.path.join(ROOT, "target", "debug", "midge")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "-p", "midge"], cwd=ROOT, check=True)
    return path


class Broker:
    """`port` 0 lets the system choose; `directory` (kept) holds the configuration file, for a
    test that restarts a broker on the same files."""

    def __init__(self, extra="", port=0, directory=None):
        self._dir = None if directory else tempfile.TemporaryDirectory()
        conf = os.path.join(directory or self._dir.name, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n")
            if "user " not in extra:
                # As root the broker would switch to the `mosquitto` user, which may not write
                # the temporary directory (a persistence store, say).
                f.write("user root\n")
        self.proc = subprocess.Popen(
            [midge_binary(), "-c", conf, "-v"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_for_log("listen socket on port")
        self.port = int(re.search(r"port (\d+)\.", line).group(1))
        self.wait_for_log("running")

    def _read(self):
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_log(self, needle, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line with {needle!r}:\n" + "\n".join(self.lines))
                self._changed.wait(left)

    def terminate(self):
        self.proc.terminate()
        code = self.proc.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        self.proc.stdout.close()
        if self._dir:
            self._dir.cleanup()


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on now, below Linux's ephemeral range
    (32768 and up) so that no client's outgoing connection or port-0 listener takes it
    before a broker restarted on it binds it again."""
    import random
    import socket
    while True:
        port = random.randrange(33000 - 12000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def listen_port(broker, kind):
    """The port of the listener logged as "Opening KIND listen socket" (`websockets`, `ipv4`),
    the last one of that kind."""
    ports = [int(line.rstrip(".").rsplit(" ", 1)[1]) for line in broker.lines
             if f"Opening {kind} listen socket on port" in line]
    if not ports:
        raise AssertionError(f"no {kind} listener:\n" + "\n".join(broker.lines))
    return ports[-1]


def make_certificates(directory, clients=()):
    """With the openssl CLI: a CA (ca.pem), a server certificate for 127.0.0.1 and localhost
    (server.pem, server.key), a server certificate that expired (expired.pem, expired.key), and
    a client certificate NAME.pem/NAME.key with Common Name NAME for each of `clients`."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=Midge interop CA")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def issue(name, subject, extra=()):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", subject)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", *extra)

    issue("server", "/CN=localhost", ("-days", "2", "-extfile", "san.ext"))
    # Valid from now until a second ago: expired as soon as it exists.
    issue("expired", "/CN=localhost", ("-days", "-1", "-extfile", "san.ext"))
    # X.509 v3 with the client-authentication purpose: rustls (webpki) accepts no v1
    # certificates, which `openssl x509 -req` makes without an extension file.
    with open(os.path.join(directory, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    for client in clients:
        issue(client, f"/CN={client}", ("-days", "2", "-extfile", "client.ext"))
