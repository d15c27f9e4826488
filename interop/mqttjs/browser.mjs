// MQTT.js in a real browser: Debian's Chromium, headless, driven by playwright-core. Takes the
// arguments of client.mjs and prints the same JSON lines, so interop/test_mqttjs.py runs the
// same exchange through it:
//
//   node browser.mjs URL CLIENT_ID PREFIX VERSION EXPECT
//
// The page is served from 127.0.0.1 by this script (Chromium refuses a WebSocket to a local
// address from about:blank: "local network access"), with MQTT.js's browser bundle
// (dist/mqtt.min.js) added; everything MQTT happens inside the page, over the browser's own
// WebSocket.
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const [url, clientId, prefix, version, expect] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const site = createServer((_request, response) => {
  response.writeHead(200, { "content-type": "text/html" });
  response.end("<!doctype html><title>midge interop</title><p>MQTT.js</p>");
});
await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
const pageUrl = `http://127.0.0.1:${site.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const timer = setTimeout(async () => {
  print({ event: "timeout" });
  await browser.close();
  process.exit(2);
}, 20_000);
try {
  const page = await browser.newPage();
  page.on("console", (message) => process.stderr.write(`console: ${message.text()}\n`));
  page.on("pageerror", (error) => process.stderr.write(`page error: ${error}\n`));
  let received = 0;
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  await page.exposeFunction("report", (event) => {
    print(event);
    if (event.event === "message") {
      received += 1;
      if (received >= Number(expect)) finish(0);
    }
    if (event.event === "error") finish(1);
  });
  await page.goto(pageUrl);
  await page.addScriptTag({ path: path.join(here, "node_modules", "mqtt", "dist", "mqtt.min.js") });
  await page.evaluate(
    ({ url, clientId, prefix, version }) => {
      const client = window.mqtt.connect(url, {
        clientId,
        protocolVersion: Number(version),
        reconnectPeriod: 0,
      });
      client.on("error", (error) => window.report({ event: "error", message: String(error && error.message) }));
      client.on("connect", () => {
        client.subscribe(`${prefix}/#`, { qos: 1 }, (error, granted) => {
          if (error) return window.report({ event: "error", message: String(error.message) });
          window.report({ event: "subscribed", granted: granted.map((g) => g.qos), agent: navigator.userAgent });
          client.publish(`${prefix}/from-js`, "hello from mqtt.js", { qos: 1 });
        });
      });
      client.on("message", (topic, payload, packet) => {
        window.report({ event: "message", topic, payload: payload.toString(), length: payload.length, qos: packet.qos });
      });
    },
    { url, clientId, prefix, version },
  );
  const code = await done;
  clearTimeout(timer);
  await browser.close();
  site.close();
  // Not process.exit(): it may drop output not yet written to the pipe.
  process.exitCode = code;
} catch (error) {
  print({ event: "error", message: String(error && error.message) });
  await browser.close();
  process.exit(1);
}
