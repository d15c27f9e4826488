// Midge's web view in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
//   node webview.mjs URL TOPIC SCREENSHOT
//
// Opens URL (the broker's HTTP listener), prints {"event":"loaded"} once the page shows the
// broker is live, then waits for TOPIC to appear in the topic tree (published by the test
// over MQTT after "loaded"), prints {"event":"seen", ...} with what the tree shows for it,
// saves a screenshot to SCREENSHOT, and checks that the page fits a phone's width.
import { chromium } from "playwright-core";

const [url, topic, screenshot] = process.argv.slice(2);
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const timer = setTimeout(async () => {
  print({ event: "timeout" });
  await browser.close();
  process.exit(2);
}, 40_000);
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on("console", (message) => process.stderr.write(`console: ${message.text()}\n`));
  page.on("pageerror", (error) => process.stderr.write(`page error: ${error}\n`));
  await page.goto(url);
  await page.waitForSelector("#status.ok", { timeout: 15_000 });
  print({ event: "loaded", title: await page.title() });
  // Every level of the topic opens up in the tree: the leaf carries the whole topic.
  const leaf = page.locator(`li[data-topic="${topic}"]`);
  await leaf.waitFor({ state: "attached", timeout: 15_000 });
  // Let a few polls pass so the charts and rates have something to draw.
  await page.waitForTimeout(4_500);
  for (const level of topic.split("/").slice(0, -1).map((_, i, all) => topic.split("/").slice(0, i + 1).join("/"))) {
    const node = page.locator(`li[data-topic="${level}"]`);
    if (!(await node.evaluate((li) => li.classList.contains("open")))) await node.locator(":scope > .node .name").click();
  }
  const row = await leaf.locator(":scope > .node").innerText();
  const clients = await page.locator("#clients tbody tr").count();
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
  print({ event: "seen", row, clients, phoneOverflow: overflow });
  clearTimeout(timer);
  await browser.close();
} catch (error) {
  print({ event: "error", message: String(error && error.message) });
  await browser.close();
  process.exit(1);
}
