// geartrain dashboard: plain JavaScript, no build step, no third-party code (the charts are in chart.js).
// Live data comes from /api/events (server-sent events, one update per history sample); the jobs list is fetched
// from /api/jobs on each update and when the search changes, an open job's detail from /api/jobs/HANDLE; actions
// POST to the JSON API. The throughput history starts from /api/history (up to two hours) and grows with each
// update, thinned as the server thins it.
"use strict";

const state = {
  samples: [], interval: 2, coarseInterval: 30, fineSpan: 600, span: 7200, range: 3600,
  functions: [], workers: [], search: "", lifecycle: false, detail: null,
};

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

// ---------------------------------------------------------------- throughput

function rangeLabel(seconds) {
  return seconds >= 3600 ? `${seconds / 3600} h` : `${seconds / 60} min`;
}

function renderThroughput() {
  const end = state.samples.length ? state.samples[state.samples.length - 1].t : Date.now() / 1000;
  const submitted = rateSeries(state.samples, 2), finished = rateSeries(state.samples, 3);
  const max = lineChart($("#throughput"), [
    { cls: "submitted", points: submitted },
    { cls: "finished", points: finished },
  ], end, state.range);
  const last = (list) => (list.length ? formatRate(list[list.length - 1].value) : "0");
  const held = state.samples.length ? end - state.samples[0].t : 0;
  $("#throughput-section h2 small").textContent =
    `jobs per second, last ${rangeLabel(state.range)}` + (held < state.range - state.interval ? ` (${duration(held)} recorded)` : "") +
    `; now ${last(submitted)} in, ${last(finished)} out; scale 0–${formatRate(max)}/s`;
  for (const button of document.querySelectorAll("#ranges button")) {
    button.classList.toggle("on", Number(button.dataset.range) === state.range);
  }
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
  // Jobs come in by a submit here, or otherwise (replayed from the store, claimed from the cluster, revived from the
  // dead set): say so, or `completed` could seem to exceed what came in.
  const otherwise = [["replayed", t.replayed], ["claimed", t.claimed], ["revived", t.revived]]
    .filter(([, count]) => count).map(([what, count]) => `${count} ${what}`);
  $("#totals").textContent = `${t.functions} functions, ${t.queued} queued` + (t.pending ? ` + ${t.pending} pending` : "") +
    `, ${t.running} running, ${t.submitted} submitted` + (otherwise.length ? ` (+ ${otherwise.join(", ")})` : "") +
    `, ${t.completed} completed, ${t.failed} failed`;
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
  const end = state.samples.length ? state.samples[state.samples.length - 1].t : Date.now() / 1000;
  const rows = state.functions.map((f) =>
    el("tr", { "data-function": f.name },
      el("td", { class: "name" }, f.name),
      el("td", { class: "num queued", "data-total": f.queued.high + f.queued.normal + f.queued.low },
        `${f.queued.high} / ${f.queued.normal} / ${f.queued.low}`),
      el("td", { class: "num pending", title: "counted, in no priority queue yet: being stored, or out a retry's backoff" },
        f.pending || 0),
      el("td", {}, sparkline(state.samples, f.name, end, state.fineSpan)),
      el("td", { class: "num oldest", title: "how long the job that has waited longest has waited" },
        f.oldest_queued === null || f.oldest_queued === undefined ? "—" : duration(f.oldest_queued)),
      el("td", { class: "num running" }, f.running),
      el("td", { class: "num workers" }, f.workers),
      num(f.sleeping_workers),
      el("td", { class: "num submitted" }, f.submitted),
      el("td", { class: "num replayed", title: `replayed from the store ${f.replayed}, claimed ${f.claimed}, revived ${f.revived}` },
        f.replayed + f.claimed + f.revived),
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
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: 16 }, "no functions yet"))]));
}

function hostPort(address, port) {
  if (!port) return address;
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`; // an IPv6 host in brackets
}

function renderWorkers(now) {
  const rows = state.workers.map((w) =>
    el("tr", { "data-worker": w.id },
      num(w.id), el("td", { class: "address" }, hostPort(w.address, w.port)),
      el("td", { class: "client-id" }, w.client_id), el("td", { class: "functions" }, w.functions.join(", ")),
      el("td", { class: "num jobs-done" }, w.jobs_done),
      el("td", { class: "connected", title: w.connected ? when(w.connected) : "" },
        w.connected ? `${duration(Math.max(0, now - w.connected))} ago` : "—"),
      el("td", {}, w.running.length ? el("a", { href: "#", class: "job-link", onclick: showJob(w.running[0]) }, w.running.join(", ")) : "—"),
      el("td", {}, w.running.length ? "working" : w.sleeping ? "sleeping" : "idle"),
    ));
  $("#workers tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: 8 }, "no workers connected"))]));
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
      el("td", { class: "handle" }, el("a", { href: "#", class: "job-link", onclick: showJob(j.handle) }, j.handle)),
      el("td", {}, j.function), el("td", { class: "unique" }, j.unique),
      el("td", {}, j.priority + (j.background ? " (bg)" : "")), el("td", { class: `state-${j.state}` }, j.state),
      el("td", { class: "num" }, duration(j.age)), num(j.attempts), num(j.size),
      el("td", {}, j.state === "cancelled" ? "" :
        el("button", { class: "danger cancel", onclick: () => cancel(j.handle) }, "Cancel")),
    ));
  $("#jobs tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: 9 }, "no jobs"))]));
  $("#jobs-count").textContent = data.total > data.jobs.length ? `${data.jobs.length} of ${data.total}` : `${data.total}`;
}

// ---------------------------------------------------------------- one job's detail

function showJob(handle) {
  return (event) => {
    event.preventDefault();
    state.detail = handle;
    refreshDetail().then(() => $("#job-detail").scrollIntoView({ block: "nearest" }));
  };
}

function closeDetail() {
  state.detail = null;
  $("#job-detail").hidden = true;
}

async function refreshDetail() {
  const handle = state.detail;
  if (handle === null) return;
  const section = $("#job-detail");
  section.hidden = false;
  $("#detail-handle").textContent = handle;
  let job;
  try {
    job = await api("GET", `/api/jobs/${encodeURIComponent(handle)}`);
  } catch (error) {
    if (state.detail !== handle) return;
    $("#detail-fields").replaceChildren(el("div", { class: "gone" }, `no longer held: ${error.message} (finished, cancelled and skipped, or dropped)`));
    $("#detail-payload").textContent = "";
    $("#detail-history tbody").replaceChildren();
    return;
  }
  if (state.detail !== handle) return; // another job was opened meanwhile
  const worker = job.worker_detail;
  const fields = [
    ["function", job.function], ["unique", job.unique || "—"], ["state", job.state],
    ["kind", job.background ? "background" : "foreground"], ["priority", job.priority],
    ["size", `${job.size} bytes`], ["attempts", job.attempts], ["requeued", job.requeued], ["age", duration(job.age)],
    ["created", when(job.created)], ["scheduled", job.when ? when(job.when) : "—"],
    ["worker", worker ? `${worker.id} (${hostPort(worker.address, worker.port)}, ${worker.client_id})` : "—"],
    ["progress", job.progress ? `${job.progress[0]} / ${job.progress[1]}` : "—"],
    ["clients waiting", job.clients], ["last error", job.error === null ? "—" : job.error],
  ];
  $("#detail-fields").replaceChildren(...fields.map(([k, v]) =>
    el("div", {}, el("dt", {}, k), el("dd", { "data-field": k.replace(/ /g, "-") }, v))));
  const payload = job.payload;
  $("#detail-payload").textContent = payload.preview + (payload.truncated ? "…" : "");
  $("#detail-payload-note").textContent = (payload.truncated ? `the start of ${job.size} bytes` : `${job.size} bytes`) +
    (payload.binary ? "; binary: bytes outside printable ASCII shown as \\xNN" : "");
  $("#detail-history tbody").replaceChildren(...job.history.map((h) =>
    el("tr", {}, el("td", {}, when(h.at)), el("td", { class: "event" }, h.event))));
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
    state.samples = thinSamples(state.samples, state);
  }
  state.functions = update.functions;
  state.workers = update.workers;
  renderServer(update.server);
  renderCluster(update.server.cluster);
  renderFunctions();
  renderWorkers(update.sample.t);
  renderThroughput();
  refreshJobs();
  refreshLifecycle();
  refreshDetail();
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
  for (const button of document.querySelectorAll("#ranges button")) {
    button.addEventListener("click", () => {
      state.range = Number(button.dataset.range);
      renderThroughput();
    });
  }
  $("#detail-close").addEventListener("click", closeDetail);
  try {
    const history = await api("GET", "/api/history");
    state.interval = history.interval;
    state.coarseInterval = history.coarse_interval;
    state.fineSpan = history.fine_span;
    state.span = history.span;
    state.samples = history.samples;
    renderThroughput();
  } catch (error) {
    say(`history: ${error.message}`);
  }
  connect();
}

start();
