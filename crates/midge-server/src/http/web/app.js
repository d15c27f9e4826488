// Midge's web view: polls the HTTP API every two seconds and draws the counters, the topic
// tree (retained values, last values and message rates) and the connected clients. No
// framework, no build step; the page is embedded in the broker binary.
"use strict";

const POLL_MS = 2000;
const HISTORY = 60;
const $ = (id) => document.getElementById(id);
const hist = { in: [], out: [], clients: [], retained: [], dropped: [] };
let previous = null;        // the last /api/v1/info, for rates
let previousTopics = null;  // the last /api/v1/topics, for per-topic rates
const toggled = new Map(); // tree nodes the user opened (true) or closed (false), by path
const OPEN_DEPTH = 3;       // nodes this shallow start open

function authHeader() {
  const token = sessionStorage.getItem("midge-token");
  if (token) return { Authorization: `Bearer ${token}` };
  const basic = sessionStorage.getItem("midge-basic");
  if (basic) return { Authorization: `Basic ${basic}` };
  return {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeader(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("login").hidden = false;
    throw new Error("credentials needed");
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.status === 204 ? null : response.json();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.removeItem("midge-token");
  sessionStorage.removeItem("midge-basic");
  const token = $("token").value.trim();
  if (token) sessionStorage.setItem("midge-token", token);
  else sessionStorage.setItem("midge-basic", btoa(unescape(encodeURIComponent(`${$("user").value}:${$("password").value}`))));
  $("login").hidden = true;
  poll();
});

function push(series, value) {
  series.push(value);
  if (series.length > HISTORY) series.shift();
}

function chart(svg, ...series) {
  const max = Math.max(1, ...series.flat());
  svg.innerHTML = series
    .map((values, i) => {
      const points = values
        .map((v, x) => `${((HISTORY - values.length + x) * 120) / (HISTORY - 1)},${(38 - (v / max) * 36).toFixed(1)}`)
        .join(" ");
      return `<polyline class="${i ? "second" : ""}" points="${points}"/>`;
    })
    .join("");
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function drawInfo(info, now) {
  $("version").textContent = info.version;
  $("uptime").textContent = `up ${duration(info.uptime_seconds)}`;
  const c = info.counters;
  const dropped = Object.values(c.dropped).reduce((a, b) => a + b, 0);
  if (previous) {
    const seconds = Math.max(0.001, (now - previous.at) / 1000);
    push(hist.in, Math.max(0, (c.publish_received - previous.counters.publish_received) / seconds));
    push(hist.out, Math.max(0, (c.publish_sent - previous.counters.publish_sent) / seconds));
    push(hist.dropped, Math.max(0, (dropped - previous.dropped) / seconds));
  }
  push(hist.clients, info.census.connected);
  push(hist.retained, info.census.retained);
  previous = { at: now, counters: c, dropped };
  const last = (s) => (s.length ? s[s.length - 1] : 0);
  $("rate-in").textContent = last(hist.in).toFixed(1);
  $("rate-out").textContent = last(hist.out).toFixed(1);
  $("clients-now").textContent = info.census.connected;
  $("retained-now").textContent = `${info.census.retained} / ${dropped}`;
  chart($("chart-in"), hist.in);
  chart($("chart-out"), hist.out);
  chart($("chart-clients"), hist.clients);
  chart($("chart-dropped"), hist.retained, hist.dropped);
}

// The tree: one node per topic level; a node has the retained value, the last value seen and
// the rate of its own topic.
function buildTree(retained, traffic, rates) {
  const root = { name: "", path: "", children: new Map() };
  const node = (topic) => {
    let at = root;
    topic.split("/").forEach((level, i, levels) => {
      const path = levels.slice(0, i + 1).join("/");
      if (!at.children.has(level)) at.children.set(level, { name: level, path, children: new Map() });
      at = at.children.get(level);
    });
    return at;
  };
  for (const m of retained) {
    const n = node(m.topic);
    n.retained = m.payload ?? `(${m.size} bytes)`;
  }
  for (const t of traffic) {
    const n = node(t.topic);
    n.last = t.last_payload ?? `(${t.last_size} bytes)`;
    n.messages = t.messages;
    n.rate = rates.get(t.topic) || 0;
  }
  return root;
}

function text(value, max = 80) {
  const s = String(value);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function renderNode(n, filter) {
  const li = document.createElement("li");
  li.dataset.topic = n.path;
  const kids = [...n.children.values()].sort((a, b) => a.name.localeCompare(b.name));
  if (!kids.length) li.classList.add("leaf");
  const depth = n.path.split("/").length;
  if (filter || (toggled.has(n.path) ? toggled.get(n.path) : depth < OPEN_DEPTH)) li.classList.add("open");
  const row = document.createElement("div");
  row.className = "node";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = n.name === "" && n.path === "" ? "/" : n.name || "(empty)";
  name.addEventListener("click", () => {
    toggled.set(n.path, li.classList.toggle("open"));
  });
  row.append(name);
  if (n.retained !== undefined) {
    const v = document.createElement("span");
    v.className = "value";
    v.textContent = text(n.retained);
    const tag = document.createElement("span");
    tag.className = "retained";
    tag.textContent = "retained";
    row.append(v, tag);
  }
  if (n.last !== undefined && n.last !== n.retained) {
    const v = document.createElement("span");
    v.className = "value";
    v.textContent = text(n.last);
    row.append(v);
  }
  if (n.messages !== undefined) {
    const r = document.createElement("span");
    r.className = "rate";
    r.textContent = `${n.rate.toFixed(1)}/s · ${n.messages}`;
    row.append(r);
  }
  li.append(row);
  if (kids.length) {
    const ul = document.createElement("ul");
    for (const k of kids) ul.append(renderNode(k, filter));
    li.append(ul);
  }
  return li;
}

function drawTree(retained, traffic, now) {
  const rates = new Map();
  if (previousTopics) {
    const seconds = Math.max(0.001, (now - previousTopics.at) / 1000);
    for (const t of traffic.topics) {
      const before = previousTopics.counts.get(t.topic) || 0;
      rates.set(t.topic, Math.max(0, (t.messages - before) / seconds));
    }
  }
  previousTopics = { at: now, counts: new Map(traffic.topics.map((t) => [t.topic, t.messages])) };
  const filter = $("topic-filter").value.trim();
  const keep = (topic) => !filter || topic.includes(filter);
  const root = buildTree(retained.items.filter((m) => keep(m.topic)), traffic.topics.filter((t) => keep(t.topic)), rates);
  const names = new Set([...retained.items.map((m) => m.topic), ...traffic.topics.map((t) => t.topic)]);
  $("topic-count").textContent = `${names.size} topics`;
  const tree = $("tree");
  tree.replaceChildren(...[...root.children.values()].sort((a, b) => a.name.localeCompare(b.name)).map((n) => renderNode(n, filter)));
}

function drawClients(page) {
  $("client-count").textContent = page.total > page.items.length ? `${page.items.length} of ${page.total}` : `${page.total}`;
  const rows = page.items.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.clientId = c.client_id;
    for (const value of [c.client_id, c.protocol ?? "", c.username ?? "", c.subscriptions.join(" "), c.queued, c.inflight]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    tr.children[3].className = "subs";
    const td = document.createElement("td");
    const button = document.createElement("button");
    button.textContent = "Disconnect";
    button.addEventListener("click", async () => {
      if (!confirm(`Disconnect ${c.client_id}?`)) return;
      await api(`/api/v1/clients/${encodeURIComponent(c.client_id)}/disconnect`, { method: "POST" }).catch(() => {});
      poll();
    });
    td.append(button);
    tr.append(td);
    return tr;
  });
  $("clients").tBodies[0].replaceChildren(...rows);
}

let timer = null;
async function poll() {
  clearTimeout(timer);
  try {
    const [info, traffic, retained, clients] = await Promise.all([
      api("/api/v1/info"),
      api("/api/v1/topics"),
      api("/api/v1/retained?filter=%23&limit=1000"),
      api("/api/v1/clients?limit=200"),
    ]);
    const now = Date.now();
    drawInfo(info, now);
    drawTree(retained, traffic, now);
    drawClients(clients);
    $("status").textContent = "live";
    $("status").className = "status ok";
    timer = setTimeout(poll, POLL_MS);
  } catch (error) {
    $("status").textContent = String(error.message || error);
    $("status").className = "status error";
    if ($("login").hidden) timer = setTimeout(poll, POLL_MS * 2);
  }
}

$("topic-filter").addEventListener("input", () => previousTopics && poll());
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get("token")) {
  sessionStorage.setItem("midge-token", hash.get("token"));
  window.history.replaceState(null, "", location.pathname);
}
poll();
