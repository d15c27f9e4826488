// An MQTT.js client driven by the interoperability tests (interop/test_mqttjs.py).
//
//   node client.mjs URL CLIENT_ID PREFIX VERSION EXPECT [CA_FILE]
//
// Connects to URL (ws://, wss://, mqtt://), subscribes to PREFIX/# at QoS 1, prints
// {"event":"subscribed"}, publishes "hello from mqtt.js" to PREFIX/from-js at QoS 1, prints
// each message received as a JSON line, and exits 0 once EXPECT messages have arrived.
// Any error prints {"event":"error"} and exits 1; silence for 15 s exits 2.
import { readFileSync } from "node:fs";
import mqtt from "mqtt";

const [url, clientId, prefix, version, expect, caFile] = process.argv.slice(2);
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const options = {
  clientId,
  protocolVersion: Number(version),
  reconnectPeriod: 0,
  connectTimeout: 10_000,
};
if (caFile) {
  options.ca = readFileSync(caFile);
}
const timer = setTimeout(() => {
  print({ event: "timeout" });
  process.exit(2);
}, 15_000);

const client = mqtt.connect(url, options);
let received = 0;
let finishing = false;
client.on("error", (error) => {
  if (finishing) return;
  print({ event: "error", message: String(error && error.message) });
  process.exit(1);
});
client.on("connect", () => {
  client.subscribe(`${prefix}/#`, { qos: 1 }, (error, granted) => {
    if (error) {
      print({ event: "error", message: String(error.message) });
      process.exit(1);
    }
    print({ event: "subscribed", granted: granted.map((g) => g.qos) });
    client.publish(`${prefix}/from-js`, "hello from mqtt.js", { qos: 1 });
  });
});
client.on("message", (topic, payload, packet) => {
  print({ event: "message", topic, payload: payload.toString(), length: payload.length, qos: packet.qos });
  received += 1;
  if (received >= Number(expect) && !finishing) {
    finishing = true;
    clearTimeout(timer);
    // After this handler MQTT.js acknowledges the message; disconnect once that is out.
    // Not process.exit(): it may drop output not yet written to the pipe.
    setTimeout(() => client.end(false, {}, () => (process.exitCode = 0)), 200);
  }
});
