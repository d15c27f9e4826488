// MQTT 5 enhanced authentication with SCRAM from MQTT.js, for interop/test_scram.py: MQTT.js
// carries the AUTH exchange (its `handleAuth` hook answers the broker's AUTH packets), and the
// SCRAM client side is written here from RFC 5802 on Node's own crypto (OpenSSL), so that
// neither the MQTT client nor the SCRAM arithmetic is the broker's.
//
//   node scram.mjs URL CLIENT_ID MECHANISM USER PASSWORD [reauth | reauth-wrong]
//
// MECHANISM is SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512; USER and PASSWORD are ASCII (this
// client does no SASLprep). `reauth` re-authenticates once connected, `reauth-wrong` tries to
// with another password. Prints one JSON line per event:
//   {"event":"connected","verified":true}   CONNACK 0 whose server signature checked out
//   {"event":"message","payload":"..."}     the round trip through the broker
//   {"event":"reauthenticated","verified":true}   after AUTH 0x19 (with `reauth`)
//   {"event":"refused","code":134}          CONNACK with a failure reason code
//   {"event":"disconnect","code":135}       a DISCONNECT from the broker
// Exits 0 when done, 1 on anything unexpected, 2 after 15 s of silence.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import mqtt from "mqtt";

const [url, clientId, mechanism, user, password, mode] = process.argv.slice(2);
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const fail = (message) => {
  print({ event: "error", message });
  process.exit(1);
};
const timer = setTimeout(() => {
  print({ event: "timeout" });
  process.exit(2);
}, 15_000);

const hash = { "SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512" }[mechanism];
if (!hash) fail(`unknown mechanism ${mechanism}`);
const H = (data) => createHash(hash).update(data).digest();
const HMAC = (key, data) => createHmac(hash, key).update(data).digest();
const xor = (a, b) => Buffer.from(a.map((byte, i) => byte ^ b[i]));
const saslname = (name) => name.replaceAll("=", "=3D").replaceAll(",", "=2C");
const attributes = (message) =>
  Object.fromEntries(message.split(",").map((part) => [part[0], part.slice(2)]));

// One SCRAM conversation (RFC 5802 §3): first() -> final(serverFirst) -> verify(serverFinal).
function conversation(secret) {
  const nonce = randomBytes(18).toString("base64");
  const firstBare = `n=${saslname(user)},r=${nonce}`;
  let serverSignature;
  return {
    first: () => Buffer.from(`n,,${firstBare}`),
    final(serverFirstData) {
      const serverFirst = serverFirstData.toString();
      const { r, s, i } = attributes(serverFirst);
      if (!r || !r.startsWith(nonce) || r === nonce) fail(`bad server nonce in ${serverFirst}`);
      const salted = pbkdf2Sync(secret, Buffer.from(s, "base64"), Number(i), H("").length, hash);
      const clientKey = HMAC(salted, "Client Key");
      const withoutProof = `c=${Buffer.from("n,,").toString("base64")},r=${r}`;
      const authMessage = `${firstBare},${serverFirst},${withoutProof}`;
      const proof = xor(clientKey, HMAC(H(clientKey), authMessage));
      serverSignature = HMAC(HMAC(salted, "Server Key"), authMessage);
      return Buffer.from(`${withoutProof},p=${proof.toString("base64")}`);
    },
    verify(serverFinalData) {
      const { v } = attributes(serverFinalData.toString());
      const got = Buffer.from(v || "", "base64");
      return got.length === serverSignature.length && timingSafeEqual(got, serverSignature);
    },
  };
}

let current = conversation(password);
let reauthenticating = false;
const client = mqtt.connect(url, {
  clientId,
  protocolVersion: 5,
  reconnectPeriod: 0,
  connectTimeout: 10_000,
  properties: { authenticationMethod: mechanism, authenticationData: current.first() },
});

// MQTT.js calls this for every AUTH packet the broker sends: 0x18 (continue) wants the next
// message, 0x00 (success, at the end of a re-authentication) carries the server's signature.
client.handleAuth = (packet, callback) => {
  const data = packet.properties && packet.properties.authenticationData;
  if (packet.reasonCode === 0x18) {
    callback(null, {
      cmd: "auth",
      reasonCode: 0x18,
      properties: { authenticationMethod: mechanism, authenticationData: current.final(data) },
    });
  } else if (packet.reasonCode === 0 && reauthenticating) {
    reauthenticating = false;
    print({ event: "reauthenticated", verified: current.verify(data) });
    callback();
    end();
  } else {
    callback(new Error(`unexpected AUTH ${packet.reasonCode}`));
  }
};

// Ending on purpose: the "close" that follows is not news.
let ending = false;
function end() {
  ending = true;
  client.end(false, {}, () => {
    clearTimeout(timer);
    process.exitCode = 0;
  });
}

client.on("connect", (connack) => {
  const data = connack.properties && connack.properties.authenticationData;
  print({ event: "connected", verified: Boolean(data) && current.verify(data) });
  client.subscribe("scram/js", { qos: 1 }, (error) => {
    if (error) fail(String(error.message));
    client.publish("scram/js", `hello from ${clientId}`, { qos: 1 });
  });
});
client.on("message", (_topic, payload) => {
  print({ event: "message", payload: payload.toString() });
  if (mode === "reauth" || mode === "reauth-wrong") {
    // MQTT.js has no public call that starts a re-authentication: the AUTH 0x19 goes out
    // through its packet writer; the rest of the exchange runs through handleAuth above.
    current = conversation(mode === "reauth" ? password : `${password}, not`);
    reauthenticating = true;
    client._sendPacket({
      cmd: "auth",
      reasonCode: 0x19,
      properties: { authenticationMethod: mechanism, authenticationData: current.first() },
    });
  } else {
    end();
  }
});
client.on("disconnect", (packet) => {
  print({ event: "disconnect", code: packet.reasonCode });
});
client.on("error", (error) => {
  if (error && error.code >= 0x80) {
    print({ event: "refused", code: error.code });
    clearTimeout(timer);
    process.exit(0);
  }
  fail(String(error && error.message));
});
client.on("close", () => {
  if (!ending) {
    print({ event: "closed" });
    clearTimeout(timer);
    process.exit(0);
  }
});
