// geartrain dashboard: plain JavaScript, no build step, no third-party code.
// Live data comes from /api/events (server-sent events, one update per history sample); the jobs list is fetched
// from /api/jobs on each update and when the search changes; actions POST to the JSON API.
"use strict";

const state = { samples: [], interval: 2, functions: [], workers: [], search: "", lifecycle: false };

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function num(value) {
  return el("td", { class: "num" }, value);
}

function duration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

function say(text) {
  $("#message").textContent = text;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// ---------------------------------------------------------------- charts (inline SVG)

const SVG = "http://www.w3.org/2000/svg";

function polyline(values, width, height, max, cls) {
  const line = document.createElementNS(SVG, "polyline");
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - (v / max) * (height - 4) - 2).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
  if (cls) line.setAttribute("class", cls);
  return line;
}

function sparkline(name) {
  const values = state.samples.map((s) => (s.functions[name] ? s.functions[name][0] : 0));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(1, ...values);
  svg.append(polyline(values.length ? values : [0, 0], 120, 24, max));
  const title = document.createElementNS(SVG, "title");
  title.textContent = `queued, last ${values.length} samples; max ${max}`;
  svg.append(title);
  return svg;
}

// Rates per second between consecutive samples, from the counters [queued, running, submitted, finished].
function rates(index) {
  const out = [];
  for (let i = 1; i < state.samples.length; i++) {
    const a = state.samples[i - 1], b = state.samples[i];
    const dt = Math.max(0.001, b.t - a.t);
    let delta = 0;
    for (const [name, values] of Object.entries(b.functions)) {
      const before = a.functions[name] ? a.functions[name][index] : 0;
      delta += Math.max(0, values[index] - before);
    }
    out.push(delta / dt);
  }
  return out;
}

function renderThroughput() {
  const svg = $("#throughput");
  svg.replaceChildren();
  const submitted = rates(2), finished = rates(3);
  const max = Math.max(1, ...submitted, ...finished);
  for (const fraction of [0.25, 0.5, 0.75]) {
    const grid = document.createElementNS(SVG, "line");
    grid.setAttribute("class", "grid");
    grid.setAttribute("x1", 0);
    grid.setAttribute("x2", 800);
    grid.setAttribute("y1", 160 * fraction);
    grid.setAttribute("y2", 160 * fraction);
    svg.append(grid);
  }
  if (submitted.length) {
    svg.append(polyline(submitted, 800, 160, max, "submitted"));
    svg.append(polyline(finished, 800, 160, max, "finished"));
  }
  const last = (list) => (list.length ? list[list.length - 1].toFixed(1) : "0");
  $("#throughput-section h2 small").textContent =
    `jobs per second, last ${duration(state.samples.length * state.interval)}; now ${last(submitted)} in, ` +
    `${last(finished)} out; scale max ${max.toFixed(1)}/s`;
}

// ---------------------------------------------------------------- tables

function renderServer(server) {
  const info = $("#server-info");
  const items = [
    ["version", server.version],
    ["gearman", server.gearman.join(", ")],
    ["uptime", duration(server.uptime)],
    ["connections", server.connections],
    ["jobs", server.totals.jobs],
    ["store", server.store ? `${server.store.description} (${server.store.up ? "up" : "DOWN"})` : "memory"],
    ["pid", server.pid],
  ];
  info.replaceChildren(...items.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", { "data-field": k }, v))));
  const t = server.totals;
  $("#totals").textContent = `${t.functions} functions, ${t.queued} queued, ${t.running} running, ` +
    `${t.submitted} submitted, ${t.completed} completed, ${t.failed} failed`;
}

function renderCluster(cluster) {
  $("#cluster-section").hidden = !cluster;
  if (!cluster) return;
  $("#cluster-summary").textContent = `this node ${cluster.node}` + (cluster.leader ? " (leader)" : "") +
    `, ${cluster.jobs_held} jobs held, ${cluster.claimed} claimed` + (cluster.ready ? "" : ` — ${cluster.status}`);
  const rows = cluster.nodes.map((n) =>
    el("tr", { "data-node": n.node, class: n.node === cluster.node ? "this" : "" },
      el("td", {}, n.node), el("td", {}, n.address), el("td", { class: "num" }, `${Math.round(n.heartbeat_age)} s ago`),
      num(n.jobs), el("td", {}, n.leader ? "leader" : ""),
    ));
  $("#cluster tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: 5 }, "no heartbeat yet"))]));
}

function renderFunctions() {
  const rows = state.functions.map((f) =>
    el("tr", { "data-function": f.name },
      el("td", { class: "name" }, f.name),
      el("td", { class: "num queued", "data-total": f.queued.high + f.queued.normal + f.queued.low },
        `${f.queued.high} / ${f.queued.normal} / ${f.queued.low}`),
      el("td", {}, sparkline(f.name)),
      el("td", { class: "num running" }, f.running),
      el("td", { class: "num workers" }, f.workers),
      num(f.sleeping_workers),
      el("td", { class: "num submitted" }, f.submitted),
      el("td", { class: "num completed" }, f.completed),
      num(f.failed + f.exceptions),
      num(f.requeued),
      num(f.coalesced),
      el("td", {}, f.max_queue.high || f.max_queue.normal || f.max_queue.low
        ? `${f.max_queue.high} / ${f.max_queue.normal} / ${f.max_queue.low}` : "∞"),
      el("td", {},
        el("button", { class: "danger purge", title: "cancel every queued job", onclick: () => purge(f.name) }, "Purge"),
        state.lifecycle
          ? el("button", { class: f.paused ? "resume" : "pause", onclick: () => pause(f.name, !f.paused) }, f.paused ? "Resume" : "Pause")
          : ""),
    ));
  const body = $("#functions tbody");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: 13 }, "no functions yet"))]));
}

function renderWorkers() {
  const rows = state.workers.map((w) =>
    el("tr", { "data-worker": w.id },
      num(w.id), el("td", {}, w.address), el("td", {}, w.client_id), el("td", {}, w.functions.join(", ")),
      el("td", {}, w.running.join(", ") || "—"), el("td", {}, w.running.length ? "working" : w.sleeping ? "sleeping" : "idle"),
    ));
  $("#workers tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: 6 }, "no workers connected"))]));
}

let jobsRequest = 0;

async function refreshJobs() {
  const ticket = ++jobsRequest;
  const query = new URLSearchParams({ search: state.search, limit: "200" });
  let data;
  try {
    data = await api("GET", `/api/jobs?${query}`);
  } catch (error) {
    say(`jobs: ${error.message}`);
    return;
  }
  if (ticket !== jobsRequest) return; // a newer search is on its way
  const rows = data.jobs.map((j) =>
    el("tr", { "data-handle": j.handle },
      el("td", { class: "handle" }, j.handle), el("td", {}, j.function), el("td", { class: "unique" }, j.unique),
      el("td", {}, j.priority + (j.background ? " (bg)" : "")), el("td", { class: `state-${j.state}` }, j.state),
      el("td", { class: "num" }, duration(j.age)), num(j.attempts), num(j.size),
      el("td", {}, j.state === "cancelled" ? "" :
        el("button", { class: "danger cancel", onclick: () => cancel(j.handle) }, "Cancel")),
    ));
  $("#jobs tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: 9 }, "no jobs"))]));
  $("#jobs-count").textContent = data.total > data.jobs.length ? `${data.jobs.length} of ${data.total}` : `${data.total}`;
}

// ---------------------------------------------------------------- the job life cycle (--policy-file)

function when(epoch) {
  return epoch === null ? "—" : new Date(epoch * 1000).toLocaleString();
}

async function refreshLifecycle() {
  let dead, cron;
  try {
    [dead, cron] = await Promise.all([api("GET", "/api/dead"), api("GET", "/api/cron")]);
  } catch (error) {
    state.lifecycle = false; // the server runs without --policy-file: the sections stay hidden
    $("#dead-section").hidden = $("#cron-section").hidden = true;
    return;
  }
  if (!state.lifecycle) {
    state.lifecycle = true;
    renderFunctions(); // with their Pause buttons
  }
  $("#dead-section").hidden = false;
  $("#cron-section").hidden = cron.cron.length === 0;
  const rows = dead.dead.map((d) =>
    el("tr", { "data-dead": d.handle },
      el("td", { class: "handle" }, d.handle), el("td", {}, d.function), el("td", { class: "unique" }, d.unique),
      num(d.attempts), el("td", {}, when(d.last_failed)), el("td", { class: "error" }, d.error),
      el("td", {},
        el("button", { class: "retry", onclick: () => deadAction("POST", d.handle, "retry") }, "Retry"),
        el("button", { class: "danger delete", onclick: () => deadAction("DELETE", d.handle, "delete") }, "Delete")),
    ));
  $("#dead tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: 7 }, "no dead jobs"))]));
  $("#dead-count").textContent = `${dead.dead.length}`;
  $("#cron tbody").replaceChildren(...cron.cron.map((c) =>
    el("tr", { "data-cron": c.function }, el("td", {}, c.function), el("td", {}, c.schedule), el("td", {}, c.timezone),
      el("td", { class: "next" }, when(c.next)), el("td", { class: "last" }, when(c.last)),
      // "file": the policy file's [[cron]]; "runtime": added with `cron add`, POST /api/cron or `geartrain admin`
      el("td", { class: "source", title: c.source === "runtime" ? "added at run time" : "from the policy file" }, c.source))));
}

async function deadAction(method, handle, verb) {
  try {
    const path = `/api/dead/${encodeURIComponent(handle)}` + (verb === "retry" ? "/retry" : "");
    await api(method, path);
    say(`${verb === "retry" ? "queued again" : "deleted"}: ${handle}`);
  } catch (error) {
    say(`${verb} ${handle}: ${error.message}`);
  }
  await refreshNow();
}

async function pause(name, paused) {
  try {
    await api("POST", `/api/functions/${encodeURIComponent(name)}/${paused ? "pause" : "resume"}`);
    say(`${paused ? "paused" : "resumed"} ${name}`);
  } catch (error) {
    say(`${paused ? "pause" : "resume"} ${name}: ${error.message}`);
  }
  await refreshNow();
}

// ---------------------------------------------------------------- actions

async function cancel(handle) {
  try {
    await api("POST", `/api/jobs/${encodeURIComponent(handle)}/cancel`);
    say(`cancelled ${handle}`);
  } catch (error) {
    say(`cancel ${handle}: ${error.message}`);
  }
  await refreshNow();
}

async function purge(name) {
  if (!window.confirm(`Cancel every queued job of ${name}?`)) return;
  try {
    const data = await api("POST", `/api/functions/${encodeURIComponent(name)}/purge`);
    say(`purged ${data.purged} job(s) of ${name}`);
  } catch (error) {
    say(`purge ${name}: ${error.message}`);
  }
  await refreshNow();
}

async function refreshNow() {
  await refreshLifecycle();
  try {
    const data = await api("GET", "/api/functions");
    state.functions = data.functions;
    renderFunctions();
  } catch (error) {
    say(error.message);
  }
  await refreshJobs();
}

// ---------------------------------------------------------------- live updates

function onUpdate(event) {
  const update = JSON.parse(event.data);
  const last = state.samples[state.samples.length - 1];
  if (!last || update.sample.t > last.t) {
    state.samples.push(update.sample);
    if (state.samples.length > 300) state.samples.shift();
  }
  state.functions = update.functions;
  state.workers = update.workers;
  renderServer(update.server);
  renderCluster(update.server.cluster);
  renderFunctions();
  renderWorkers();
  renderThroughput();
  refreshJobs();
  refreshLifecycle();
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("update", onUpdate);
  source.onopen = () => {
    $("#live-status").textContent = "live";
    $("#live-status").className = "status on";
  };
  source.onerror = () => {
    $("#live-status").textContent = "reconnecting…";
    $("#live-status").className = "status off";
  };
}

async function start() {
  let timer = null;
  $("#job-search").addEventListener("input", (event) => {
    state.search = event.target.value.trim();
    clearTimeout(timer);
    timer = setTimeout(refreshJobs, 150);
  });
  try {
    const history = await api("GET", "/api/history");
    state.interval = history.interval;
    state.samples = history.samples;
  } catch (error) {
    say(`history: ${error.message}`);
  }
  connect();
}

start();
