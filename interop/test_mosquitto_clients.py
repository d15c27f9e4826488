"""The broker driven by Debian's mosquitto_pub and mosquitto_sub (mosquitto-clients 2.0),
with the flags Mosquitto users type: -V 311 / -V 5, -q, -r, -n, -c -i, -C, -W, -f, -N, -l,
-D and the --will-* options.
"""
import os
import signal
import subprocess
import tempfile
import time
import unittest

from interop.harness import Broker, WAIT


def pub(broker, *args, check=True):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), *args],
                          capture_output=True, timeout=WAIT, check=check)


def start_sub(broker, *args):
    """A mosquitto_sub running in the background, once the broker has seen it subscribe."""
    before = sum("New client connected" in line for line in broker.lines)
    proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + WAIT
    while sum("New client connected" in line for line in broker.lines) <= before:
        assert time.monotonic() < deadline, "mosquitto_sub never connected"
        time.sleep(0.02)
    time.sleep(0.2)  # its SUBSCRIBE follows the CONNECT
    return proc


def finish(proc):
    out, err = proc.communicate(timeout=WAIT)
    return proc.returncode, out, err


class MosquittoClients(unittest.TestCase):
    def setUp(self):
        self.broker = Broker()

    def tearDown(self):
        self.broker.close()

    def test_pub_sub_every_qos_in_3_1_1_and_5(self):
        for version in ("311", "5"):
            for qos in ("0", "1", "2"):
                with self.subTest(version=version, qos=qos):
                    sub = start_sub(self.broker, "-V", version, "-q", qos, "-t", "t/#", "-C", "1", "-v")
                    pub(self.broker, "-V", version, "-q", qos, "-t", "t/x", "-m", f"v{version}q{qos}")
                    code, out, _ = finish(sub)
                    self.assertEqual((code, out), (0, f"t/x v{version}q{qos}\n".encode()))

    def test_retained_then_cleared_with_n(self):
        pub(self.broker, "-r", "-q", "1", "-t", "status/lamp", "-m", "on")
        code, out, _ = finish(start_sub(self.broker, "-t", "status/#", "-C", "1", "-v"))
        self.assertEqual((code, out), (0, b"status/lamp on\n"))
        pub(self.broker, "-r", "-n", "-t", "status/lamp")
        # -W: give up after a second; exit status 27 means it timed out with nothing received.
        code, out, _ = finish(start_sub(self.broker, "-t", "status/#", "-C", "1", "-W", "1"))
        self.assertEqual((code, out), (27, b""))

    def test_persistent_session_with_c_and_i(self):
        sub = start_sub(self.broker, "-c", "-i", "keeper", "-q", "1", "-t", "jobs/#", "-C", "1")
        pub(self.broker, "-q", "1", "-t", "jobs/first", "-m", "first")
        self.assertEqual(finish(sub)[:2], (0, b"first\n"))
        for n in range(3):
            pub(self.broker, "-q", "1", "-t", "jobs/x", "-m", f"queued {n}")
        code, out, _ = finish(start_sub(self.broker, "-c", "-i", "keeper", "-q", "1", "-t", "jobs/#", "-C", "3"))
        self.assertEqual((code, out), (0, b"queued 0\nqueued 1\nqueued 2\n"))

    def test_one_megabyte_file_arrives_byte_for_byte(self):
        data = os.urandom(1024 * 1024)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            sub = start_sub(self.broker, "-t", "blob", "-C", "1", "-N")
            pub(self.broker, "-q", "1", "-t", "blob", "-f", f.name)
            code, out, _ = finish(sub)
        self.assertEqual(code, 0)
        self.assertEqual(out, data)

    def test_line_mode_publishes_each_line(self):
        sub = start_sub(self.broker, "-t", "lines", "-C", "3")
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-t", "lines", "-l"],
                       input=b"one\ntwo\nthree\n", timeout=WAIT, check=True)
        self.assertEqual(finish(sub)[:2], (0, b"one\ntwo\nthree\n"))

    def test_user_property_with_d_in_5(self):
        """[MQTT-3.3.2-17]: the user property reaches the subscriber (%P prints it)."""
        sub = start_sub(self.broker, "-V", "5", "-t", "props", "-C", "1", "-F", "%t %p %P")
        pub(self.broker, "-V", "5", "-t", "props", "-m", "m", "-D", "publish", "user-property", "k", "v")
        code, out, _ = finish(sub)
        self.assertEqual(code, 0)
        self.assertEqual(out, b"props m k:v\n")

    def test_will_of_a_killed_mosquitto_sub(self):
        watcher = start_sub(self.broker, "-t", "wills/#", "-C", "1", "-v")
        doomed = start_sub(self.broker, "-i", "doomed", "-t", "x", "--will-topic", "wills/doomed",
                           "--will-payload", "lost", "--will-qos", "1")
        doomed.send_signal(signal.SIGKILL)
        doomed.communicate(timeout=WAIT)
        code, out, _ = finish(watcher)
        self.assertEqual((code, out), (0, b"wills/doomed lost\n"))


if __name__ == "__main__":
    unittest.main()
