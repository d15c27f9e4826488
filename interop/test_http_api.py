"""The HTTP API's OpenAPI document checked by a tool nobody here wrote: schemathesis (PyPI)
reads /api/v1/openapi.json from a running midge, generates requests for every operation (valid
and invalid ones, with and without credentials) and checks each answer against the document:
status codes, content types, response schemas, that invalid input is refused and valid input
accepted, that authentication is not ignored, that wrong methods get 405. Bounded in examples
and time so it stays under a minute.

Before the run the broker is given something to find: a connected client with subscriptions, a
persistent session and retained messages.
"""
import json
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.request

import paho.mqtt.client as paho

from interop.harness import WAIT, Broker

TOKEN = "interop-schemathesis-token"


def http_url(broker):
    line = broker.wait_for_log("HTTP API and web view on ")
    return re.search(r"(https?://[^ ]+?)/?$", line).group(1)


def schemathesis():
    """The `st` command of the installed schemathesis, or None."""
    return shutil.which("st") or shutil.which("schemathesis")


def api_failures(output):
    """What in a failed schemathesis run is the API's fault. Anything under "Failures:" is (a
    check that did not pass); an error is too, unless it is a crash inside Hypothesis itself,
    which schemathesis reports as a "Runtime Error" with Hypothesis's traceback (Hypothesis
    6.170's optimiser can raise IndexError on its own data). Such a crash is printed, not
    counted: the other operations and phases still ran and passed."""
    found = []
    if re.search(r"^Failures:", output, re.MULTILINE):
        found.append("schemathesis reports failures")
    errors = re.search(r"^=+ ERRORS =+$(.*?)^=+ (?:SUMMARY|WARNINGS) =+$", output, re.MULTILINE | re.DOTALL)
    if errors:
        for block in re.split(r"^_{5,} .+ _{5,}$", errors.group(1), flags=re.MULTILINE)[1:]:
            internal = "Runtime Error" in block and "/hypothesis/internal/" in block
            if internal:
                crash = next((line.strip() for line in reversed(block.splitlines())
                              if re.match(r"\s*\w+Error: ", line)), "")
                print("schemathesis: Hypothesis crashed on one operation (not the API's fault):", crash)
            else:
                found.append(block.strip())
    elif not found:
        found.append("schemathesis failed without failures or errors")
    return found


@unittest.skipUnless(schemathesis(), "schemathesis is needed (scripts/install-test-deps)")
class OpenApiCheckedBySchemathesis(unittest.TestCase):
    def test_every_operation_agrees_with_the_document(self):
        broker = Broker(
            "http_listener 0 127.0.0.1\n"
            f"http_auth_token {TOKEN}\n"
            "http_allow_anonymous false\n"
        )
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="st-subscriber",
                             protocol=paho.MQTTv5)
        try:
            url = http_url(broker)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            client.subscribe("sensors/#", qos=1)
            for i in range(3):
                client.publish(f"sensors/{i}", f"{20 + i}.5", qos=1, retain=True).wait_for_publish(WAIT)
            # The document is served without credentials; the API itself wants them.
            with urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=WAIT) as answer:
                document = json.load(answer)
            self.assertTrue(document["openapi"].startswith("3."))
            with tempfile.TemporaryDirectory() as reports:
                run = subprocess.run(
                    [
                        schemathesis(), "run", f"{url}/api/v1/openapi.json",
                        "--url", url,
                        "--header", f"Authorization: Bearer {TOKEN}",
                        "--checks", "all",
                        "--max-examples", "40",
                        "--max-time", "40",
                        "--workers", "2",
                        "--seed", "20261123",
                        "--request-timeout", "10",
                        "--no-color",
                        "--report", "junit",
                        "--report-dir", reports,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=150,
                    # schemathesis keeps a cache in its working directory.
                    cwd=reports,
                )
            output = run.stdout + run.stderr
            if run.returncode != 0:
                self.assertEqual(api_failures(output), [], output[-6000:])
            self.assertRegex(output, r"\d+ generated, \d+ passed")
            # The broker lived through it, and its MQTT side still works.
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=WAIT) as answer:
                self.assertEqual(json.load(answer), {"status": "ok"})
            after = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="st-after")
            self.assertEqual(after.connect("127.0.0.1", broker.port), 0)
            after.disconnect()
            self.assertFalse(any("panicked" in line for line in broker.lines), "\n".join(broker.lines[-50:]))
        finally:
            client.loop_stop()
            client.disconnect()
            broker.close()


if __name__ == "__main__":
    unittest.main()
