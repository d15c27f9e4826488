// An MQTT.js MQTT 5 subscriber that allows the broker topic aliases, for
// interop/test_topic_aliases.py.
//
//   node aliases.mjs URL CLIENT_ID TOPIC_ALIAS_MAXIMUM EXPECT
//
// Connects with the Topic Alias Maximum given, subscribes to `aliases/#` at QoS 0, prints
// {"event":"subscribed"}, then one JSON line per message: the topic MQTT.js resolved, the
// payload, and the alias the PUBLISH carried (null if none). MQTT.js itself refuses an alias
// outside the maximum or one used before it was set (it disconnects with an error, printed as
// {"event":"error"}, exit 1). Exits 0 after EXPECT messages; silence for 15 s exits 2.
import mqtt from "mqtt";

const [url, clientId, maximum, expect] = process.argv.slice(2);
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const timer = setTimeout(() => {
  print({ event: "timeout" });
  process.exit(2);
}, 15_000);

const client = mqtt.connect(url, {
  clientId,
  protocolVersion: 5,
  reconnectPeriod: 0,
  connectTimeout: 10_000,
  properties: { topicAliasMaximum: Number(maximum) },
});
let received = 0;
client.on("error", (error) => {
  print({ event: "error", message: String(error && error.message) });
  process.exit(1);
});
client.on("disconnect", (packet) => {
  print({ event: "error", message: `server DISCONNECT ${packet.reasonCode}` });
  process.exit(1);
});
client.on("connect", () => {
  client.subscribe("aliases/#", { qos: 0 }, (error) => {
    if (error) {
      print({ event: "error", message: String(error.message) });
      process.exit(1);
    }
    print({ event: "subscribed" });
  });
});
client.on("message", (topic, payload, packet) => {
  const alias = packet.properties && packet.properties.topicAlias !== undefined ? packet.properties.topicAlias : null;
  print({ event: "message", topic, payload: payload.toString(), alias });
  received += 1;
  if (received >= Number(expect)) {
    clearTimeout(timer);
    client.end(false, {}, () => (process.exitCode = 0));
  }
});
