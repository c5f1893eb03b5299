// geartrain dashboard: the charts (inline SVG, no third-party code). Loaded before app.js, which draws with them.
// Samples are {t, functions: {name: [queued, running, submitted, finished]}}, oldest first; the counters are
// cumulative, so the rate between two samples is their difference over the time between them, whatever the spacing
// (two seconds for the last ten minutes, half a minute before that: see History in http/routes.py).
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Rates per second between consecutive samples of the counter at `index` (2 submitted, 3 finished), summed over the
// functions: [{t, value}], t the later sample's time. A counter that went down (a restart) counts from 0.
function rateSeries(samples, index) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = Math.max(0.001, b.t - a.t);
    let delta = 0;
    for (const [name, values] of Object.entries(b.functions)) {
      const before = a.functions[name] ? a.functions[name][index] : 0;
      delta += Math.max(0, values[index] - before);
    }
    out.push({ t: b.t, value: delta / dt });
  }
  return out;
}

// The smallest "nice" number (1, 2, 2.5 or 5 times a power of ten) at or above `value`.
function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

// Time ticks: a round step giving four to eight ticks over `range` seconds.
const TIME_STEPS = [10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200];
function timeStep(range) {
  return TIME_STEPS.find((step) => range / step <= 8) || 7200;
}

function clock(epoch, withSeconds) {
  const d = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}` + (withSeconds ? `:${pad(d.getSeconds())}` : "");
}

function formatRate(value) {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1).replace(/\.0$/, "") : String(+value.toFixed(2));
}

// A line chart of series [{cls, points: [{t, value}]}] over the last `range` seconds up to `end`, in `svg`
// (viewBox 0 0 W H): a value axis in jobs per second on the left, a time axis (clock times) below, both labelled.
function lineChart(svg, series, end, range, { width = 800, height = 220, unit = "jobs/s" } = {}) {
  const left = 56, right = 12, top = 10, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  const start = end - range;
  const visible = series.map((s) => ({ ...s, points: s.points.filter((p) => p.t >= start) }));
  const max = niceCeiling(Math.max(0, ...visible.flatMap((s) => s.points.map((p) => p.value))));
  const x = (t) => left + ((t - start) / range) * plotW;
  const y = (v) => top + plotH - (v / max) * plotH;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);

  const yAxis = svgEl("g", { class: "axis y-axis" });
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    yAxis.append(svgEl("line", { class: i ? "grid" : "baseline", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    yAxis.append(svgEl("text", { class: "tick", x: left - 6, y: y(value) + 4, "text-anchor": "end" }, formatRate(value)));
  }
  yAxis.append(svgEl("text", {
    class: "axis-title", x: 14, y: top + plotH / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${top + plotH / 2})`,
  }, unit));
  svg.append(yAxis);

  const xAxis = svgEl("g", { class: "axis x-axis" });
  const step = timeStep(range);
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
    xAxis.append(svgEl("line", { class: "tick-mark", x1: x(t), x2: x(t), y1: top + plotH, y2: top + plotH + 4 }));
    xAxis.append(svgEl("text", { class: "tick", x: x(t), y: top + plotH + 16, "text-anchor": "middle" }, clock(t, step < 60)));
  }
  xAxis.append(svgEl("line", { class: "baseline", x1: left, x2: left, y1: top, y2: top + plotH }));
  xAxis.append(svgEl("text", { class: "axis-title", x: left + plotW / 2, y: height - 4, "text-anchor": "middle" }, "time"));
  svg.append(xAxis);

  for (const s of visible) {
    if (s.points.length < 1) continue;
    const points = s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.value).toFixed(1)}`);
    svg.append(svgEl("polyline", { class: `series ${s.cls}`, points: points.join(" ") }));
  }
  return max;
}

// A small line of one function's queue over the last `range` seconds (no axes: its title says the scale).
function sparkline(samples, name, end, range) {
  const recent = samples.filter((s) => s.t >= end - range);
  const values = recent.map((s) => (s.functions[name] ? s.functions[name][0] : 0));
  const svg = svgEl("svg", { class: "spark", viewBox: "0 0 120 24", preserveAspectRatio: "none" });
  const max = Math.max(1, ...values);
  const shown = values.length > 1 ? values : [values[0] || 0, values[0] || 0];
  const stepX = 120 / (shown.length - 1);
  const points = shown.map((v, i) => `${(i * stepX).toFixed(1)},${(24 - (v / max) * 20 - 2).toFixed(1)}`);
  svg.append(svgEl("polyline", { points: points.join(" ") }));
  svg.append(svgEl("title", {}, `queued, last ${Math.round(range / 60)} min; max ${max}`));
  return svg;
}

// Keep what the server's history keeps: every sample of the last `fineSpan` seconds, one per `coarseInterval`
// before that, nothing older than `span`.
function thinSamples(samples, { interval, coarseInterval, fineSpan, span }) {
  if (!samples.length) return samples;
  const newest = samples[samples.length - 1].t;
  const out = [];
  let lastCoarse = -Infinity;
  for (const s of samples) {
    if (s.t < newest - span) continue;
    if (s.t >= newest - fineSpan) {
      out.push(s);
    } else if (s.t - lastCoarse >= coarseInterval - interval / 2) {
      out.push(s);
      lastCoarse = s.t;
    }
  }
  return out;
}
