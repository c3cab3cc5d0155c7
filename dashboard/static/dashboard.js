// coe-sweep dashboard page: fetches the JSON API and draws Plotly charts. No build step, no CDN.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const SYMBOLS = { moe: "circle", coe: "diamond", dense: "square" };
const PAGE_ROWS = 50;

const state = { sweep: null, version: null, sort: "final_val_loss", order: "asc", offset: 0, total: 0, timer: null };

function $(id) { return document.getElementById(id); }

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    throw new Error(detail || response.statusText);
  }
  return body;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return Math.abs(value) >= 1e6 ? value.toExponential(3) : String(value);
    return Math.abs(value) >= 1e5 || (Math.abs(value) < 1e-3 && value !== 0) ? value.toExponential(3) : value.toFixed(4);
  }
  return String(value);
}

function fmtBytes(value) {
  if (value === null || value === undefined) return "";
  const units = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
  for (const [unit, size] of units) if (Math.abs(value) >= size) return (value / size).toFixed(2) + " " + unit;
  return value.toFixed(0) + " B";
}

// the short trial id (<config hash[:8]>-s<seed>): the launch log's, the MLflow run name, the API's trial_id
function trialId(point) { return point.trial_id || (point.run_id || "").slice(0, 8); }

function configText(config) {
  return Object.entries(config || {}).map(([k, v]) => k + ": " + fmt(v)).join("<br>");
}

function setMessage(id, text) { $(id).textContent = text || ""; }

function sweepQuery() {
  const params = new URLSearchParams({ x: $("x-axis").value });
  if ($("family").value) params.set("family", $("family").value);
  return params;
}

function api(path, params) {
  const base = "/api/sweeps/" + encodeURIComponent(state.sweep) + path;
  return params && [...params].length ? base + "?" + params.toString() : base;
}

// ---- fit flags (coe_sweep/analysis/sanity.py): shown next to the chart of their fit ----------------
function showFlags(id, flags, extra) {
  const items = (flags || []).map((f) => {
    const li = document.createElement("li");
    li.textContent = (f.blocking ? "flagged: " : "warning: ") + f.text;
    li.className = f.blocking ? "blocking" : "";
    li.dataset.code = f.code;
    return li;
  });
  for (const text of extra || []) {
    const li = document.createElement("li");
    li.textContent = "warning: " + text;
    items.push(li);
  }
  $(id).replaceChildren(...items);
}

function flagText(flags) { return (flags || []).map((f) => f.text).join("<br>"); }

// A chart with nothing to draw is hidden: the message above it says what is missing (never empty axes).
function noChart(id) { Plotly.purge(id); $(id).classList.add("empty"); }
function chart(id, traces, layout) {
  $(id).classList.remove("empty");
  return Plotly.react(id, traces, layout, { responsive: true, displaylogo: false });
}

// ---- IsoFLOP profiles -------------------------------------------------------------------------
function vertexTrace(budget, color, group) {
  const ci = budget.fit.x_opt_ci;
  return { type: "scatter", mode: "markers", name: budget.budget_label + " vertex", legendgroup: group, showlegend: false,
    x: [budget.fit.x_opt], y: [budget.fit.loss_opt], marker: { color, size: 13, symbol: "star", line: { color: "#000", width: 1 } },
    error_x: ci ? { type: "data", symmetric: false, array: [ci[1] - budget.fit.x_opt], arrayminus: [budget.fit.x_opt - ci[0]], color } : undefined,
    hovertemplate: "vertex x*=%{x:.4g}<br>loss*=%{y:.4f}" + (ci ? "<br>CI [" + fmt(ci[0]) + ", " + fmt(ci[1]) + "]" : "") +
      (budget.flags.length ? "<br>" + flagText(budget.flags) : "") + "<extra>" + budget.budget_label + "</extra>" };
}

async function drawIsoflop() {
  const data = await getJSON(api("/frontier", sweepQuery()));
  const flags = data.budgets.flatMap((b) => b.flags);
  setMessage("isoflop-message", flags.length ? "" : data.message);  // the flags say it level by level
  showFlags("isoflop-flags", flags);
  if (!data.budgets.some((b) => b.points.length)) { noChart("isoflop-plot"); return; }
  const traces = [];
  data.budgets.forEach((budget, i) => {
    const color = PALETTE[i % PALETTE.length];
    const group = "b" + i;
    traces.push({
      type: "scatter", mode: "markers", name: budget.budget_label + (budget.flagged ? " (flagged)" : ""), legendgroup: group,
      x: budget.points.map((p) => p.x), y: budget.points.map((p) => p.loss),
      marker: { color, size: 7, symbol: budget.points.map((p) => SYMBOLS[p.family] || "circle") },
      text: budget.points.map((p) => "trial " + trialId(p) + "<br>" + configText(p.config)),
      hovertemplate: "%{text}<br>x=%{x:.4g}<br>loss=%{y:.4f}<extra>" + budget.budget_label + "</extra>",
    });
    if (!budget.fit) return;
    // a flagged fit: dashed, no vertex star, the reason on hover
    traces.push({ type: "scatter", mode: "lines", name: budget.budget_label + (budget.flagged ? " fit (flagged)" : " fit"),
      legendgroup: group, showlegend: false, x: budget.fit.curve_x, y: budget.fit.curve_loss,
      line: { color, dash: budget.flagged ? "dash" : "dot", width: budget.flagged ? 1 : 1.5 },
      hoverinfo: budget.flagged ? "text" : "skip", text: budget.flagged ? "flagged fit: " + flagText(budget.flags) : undefined });
    if (!budget.flagged && budget.fit.x_opt !== null && budget.fit.loss_opt !== null) traces.push(vertexTrace(budget, color, group));
  });
  chart("isoflop-plot", traces, {
    margin: { t: 20, r: 20 }, xaxis: { type: "log", title: { text: data.x + " (count)" } }, yaxis: { title: { text: "final val loss (nats/token)" } },
    legend: { title: { text: "budget (FLOPs)" } },
  });
}

// ---- optimum vs budget ------------------------------------------------------------------------
let lastScaling = null;

function lawValue(law, flops) { return law.offset + law.coefficient * Math.pow(flops, law.exponent); }

function scalingPoints(points, flagged) {
  const pts = points.filter((p) => Boolean(p.flagged) === flagged);
  return {
    type: "scatter", mode: "markers", name: flagged ? "IsoFLOP optimum (flagged level)" : "IsoFLOP optimum", x: pts.map((p) => p.budget_flops),
    y: pts.map((p) => p.x_opt), marker: { size: 10, color: "#1f77b4", symbol: flagged ? "circle-open" : "circle" },
    error_y: { type: "data", symmetric: false, array: pts.map((p) => (p.x_opt_ci ? p.x_opt_ci[1] - p.x_opt : 0)),
      arrayminus: pts.map((p) => (p.x_opt_ci ? p.x_opt - p.x_opt_ci[0] : 0)) },
    text: pts.map((p) => "budget " + p.budget_label + "<br>loss* " + fmt(p.loss_opt) + (flagged ? "<br>" + p.reasons.join("<br>") : "")),
    hovertemplate: "%{text}<br>x*=%{y:.4g}<extra></extra>",
  };
}

function predictionTrace(prediction) {
  const p = prediction.prediction;
  const flagged = p.flagged;
  const reasons = prediction.flags.filter((f) => f.fit === "approach2" && f.blocking).map((f) => f.text);
  return { type: "scatter", mode: "markers", name: "prediction at " + fmt(p.flops) + (flagged ? " (flagged)" : ""), x: [p.flops], y: [p.x_opt],
    marker: { size: 15, symbol: flagged ? "circle-open" : "star", color: "#d62728" },
    error_y: p.x_opt_ci ? { type: "data", symmetric: false, array: [p.x_opt_ci[1] - p.x_opt], arrayminus: [p.x_opt - p.x_opt_ci[0]] } : undefined,
    hovertemplate: "predicted x*=%{y:.4g}<br>loss*=" + fmt(p.loss_opt) + (flagged ? "<br>flagged: " + reasons.join("<br>") : "") + "<extra></extra>" };
}

async function drawScaling(prediction) {
  const data = await getJSON(api("/scaling", sweepQuery()));
  lastScaling = data;
  setMessage("scaling-message", data.message);
  const predicted = ((prediction && prediction.flags) || []).filter((f) => f.fit !== "isoflop");  // levels: above their chart
  const flags = [...data.flags, ...predicted.filter((f) => !data.flags.some((g) => g.text === f.text))];
  showFlags("scaling-flags", flags, data.warnings);
  if (!data.points.length) { noChart("scaling-plot"); drawMethods(data); return; }
  const traces = [scalingPoints(data.points, false), scalingPoints(data.points, true)];
  const law = data.laws.find((l) => l.quantity === "x_opt");
  if (law && law.coefficient !== null) {
    const budgets = data.points.map((p) => p.budget_flops);
    if (prediction) budgets.push(prediction.flops);
    const lo = Math.min(...budgets) / 2, hi = Math.max(...budgets) * 2;
    const xs = Array.from({ length: 50 }, (_, i) => lo * Math.pow(hi / lo, i / 49));
    const reasons = data.flags.filter((f) => f.blocking).map((f) => f.text);
    traces.push({ type: "scatter", mode: "lines", name: "fit: x* = " + fmt(law.coefficient) + " C^" + fmt(law.exponent) + (data.flagged ? " (flagged)" : ""),
      x: xs, y: xs.map((c) => lawValue(law, c)), line: { dash: data.flagged ? "dash" : "solid", color: "#1f77b4", width: data.flagged ? 1 : 1.5 },
      hoverinfo: data.flagged ? "text" : "skip", text: data.flagged ? "flagged law: " + reasons.join("<br>") : undefined });
  }
  if (prediction && prediction.prediction) traces.push(predictionTrace(prediction));
  if (data.x === "params_active") traces.push(...drawMethods(data)); else drawMethods(data);
  if (prediction && prediction.methods) {
    for (const m of prediction.methods) {
      if (m.method === "approach2" || m.n_opt === null) continue;
      traces.push({ type: "scatter", mode: "markers", name: m.method + " at " + fmt(m.flops || prediction.flops) + (m.flagged ? " (flagged)" : ""),
        x: [prediction.flops], y: [m.n_opt], marker: { size: 13, symbol: m.flagged ? "circle-open" : "star-open", color: METHOD_COLORS[m.method] },
        error_y: m.n_opt_ci ? { type: "data", symmetric: false, array: [m.n_opt_ci[1] - m.n_opt], arrayminus: [m.n_opt - m.n_opt_ci[0]] } : undefined,
        hovertemplate: m.method + " N*=%{y:.4g}<br>" + m.reach_text + "<extra></extra>" });
    }
  }
  chart("scaling-plot", traces, {
    margin: { t: 20, r: 20 }, xaxis: { type: "log", title: { text: "training budget (FLOPs)" } },
    yaxis: { type: "log", title: { text: "optimal " + data.x + " (count)" } },
  });
}

// ---- every method side by side (scaling laws) ---------------------------------------------------
const METHOD_COLORS = { approach2: "#1f77b4", approach3: "#ff7f0e", coe_law: "#2ca02c" };

function ciText(ci) { return ci ? " [" + fmt(ci[0]) + ", " + fmt(ci[1]) + "]" : ""; }
function pctText(v) { return v === null || v === undefined ? "-" : (v >= 0 ? "+" : "") + (100 * v).toFixed(1) + "%"; }

function fillTable(id, names, rows) {
  const table = $(id);
  table.hidden = !rows.length;  // no header over nothing
  header(table, names);
  const body = document.createElement("tbody");
  for (const values of rows) {
    const tr = document.createElement("tr");
    for (const v of values) cell(tr, v);
    body.appendChild(tr);
  }
  table.tBodies[0].replaceWith(body);
}

function auditText(a) {
  if (!a) return "-";
  return "N " + pctText(a.n_opt_rel_error) + ", loss " + (a.loss_error === null ? "-" : (a.loss_error >= 0 ? "+" : "") + a.loss_error.toFixed(4)) +
    " (held out " + a.held_out + ", vs its " + a.reference + ")";
}

function drawMethods(data) {
  const methods = data.methods || [];
  setMessage("methods-message", [...(data.method_warnings || []), ...methods.filter((m) => m.message).map((m) => m.method + ": " + m.message)].join(" | "));
  $("methods-note").textContent = (data.flops_per_token || "") + (methods.length ? " | N = active params; audit = leave-future-out error" : "");
  fillTable("methods-table", ["method", "fitter / form", "N* exponent", "parameters", "leave-future-out error", "warnings"],
    methods.filter((m) => !m.message).map((m) => [m.method, [m.fitter, m.form].filter(Boolean).join(" / "),
      fmt(m.n_exponent) + ciText(m.n_exponent_ci), m.params.map((p) => p.name + "=" + fmt(p.value) + ciText(p.ci)).join("; "),
      auditText(m.audit), m.warnings.join("; ")]));
  const fitted = methods.filter((m) => m.per_budget.length);
  const labels = fitted.length ? fitted[0].per_budget.map((b) => b.budget_label) : [];
  const names = ["budget"];
  for (const m of fitted) names.push(m.method + " N*", m.method + " tokens*", m.method + " loss*");
  fillTable("method-budgets-table", names, labels.map((label, i) => {
    const row = [label];
    for (const m of fitted) { const b = m.per_budget[i] || {}; row.push(fmt(b.n_opt) + (b.arm ? " (" + b.arm + ")" : ""), fmt(b.d_opt), fmt(b.loss_opt)); }
    return row;
  }));
  const law = data.coe_law;
  $("coe-law-summary").textContent = law ? law.summary + " Form: " + law.reason + "." : "";
  fillTable("coe-law-table", law ? ["form", "parameters", "held-out error", "excess over the best", "its standard error", "kept"] : [],
    law ? law.scores.map((s) => [s.form, String(s.n_params), fmt(s.cv_rmse), fmt(s.excess), fmt(s.excess_se), s.chosen ? "yes" : ""]) : []);
  return fitted.map((m) => {
    const flagged = m.flags.some((f) => f.blocking);
    return { type: "scatter", mode: "lines+markers", name: m.method + " N*" + (flagged ? " (flagged)" : ""), x: m.per_budget.map((b) => b.budget_flops),
      y: m.per_budget.map((b) => b.n_opt), line: { color: METHOD_COLORS[m.method], width: 1.5, dash: flagged ? "dash" : "solid" },
      marker: { size: 6, symbol: "x" }, hovertemplate: m.method + " N*=%{y:.4g}" + (flagged ? "<br>flagged: " + flagText(m.flags.filter((f) => f.blocking)) : "") + "<extra></extra>" };
  });
}

function drawPredictionTable(data) {
  const methods = (data && data.methods) || [];
  const flagsOf = (m) => [...(data.flags || []).filter((f) => f.fit === m.method).map((f) => (f.blocking ? "flagged: " : "") + f.text),
    ...(m.warnings || [])].join("; ");
  fillTable("prediction-table", methods.length ? ["method", "arm", "optimal N", "optimal tokens", "predicted loss", "reach", "leave-future-out error", "drop-one spread of N", "flags and warnings"] : [],
    methods.map((m) => [m.method, m.arm || "-", fmt(m.n_opt) + ciText(m.n_opt_ci), fmt(m.d_opt) + ciText(m.d_opt_ci),
      fmt(m.loss_opt) + ciText(m.loss_opt_ci), m.reach_text, auditText(m.audit),
      m.spread && m.spread.n_opt_range ? "[" + fmt(m.spread.n_opt_range[0]) + ", " + fmt(m.spread.n_opt_range[1]) + "]" : "-", flagsOf(m)]));
}

async function predict() {
  const flops = $("target-flops").value.trim();
  if (!flops) return;
  const params = sweepQuery();
  params.set("flops", flops);
  if ($("target-memory").value.trim()) params.set("max_memory", $("target-memory").value.trim());
  try {
    const data = await getJSON(api("/optimal", params));
    const p = data.prediction;
    const near = data.nearest;
    let text = data.message || "";
    if (p) text = "x*=" + fmt(p.x_opt) + ", tokens*=" + fmt(p.tokens_opt) + ", loss*=" + fmt(p.loss_opt) +
      (p.flagged ? " (flagged: see the warnings above the chart)" : "") + (p.warnings.length ? " | " + p.warnings.join("; ") : "") +
      (text ? " | " + text : "");
    if (near) text += " | nearest config: " + Object.entries(near.config).map(([k, v]) => k + "=" + fmt(v)).join(", ");
    $("prediction").textContent = text;
    drawPredictionTable(data);
    await drawScaling(data);
  } catch (error) {
    $("prediction").textContent = String(error.message || error);
  }
}

// ---- Pareto front: per budget level (default) or pooled -------------------------------------------
function paretoTraces(data) {
  const hover = (p) => "trial " + trialId(p) + " (" + (p.budget_label || "-") + ")<br>" + configText(p.config);
  const traces = [{ type: "scatter", mode: "markers", name: "dominated", x: data.dominated.map((p) => p.values.peak_memory_bytes),
    y: data.dominated.map((p) => p.values.final_val_loss), text: data.dominated.map(hover),
    marker: { size: 6, color: "#ccc", symbol: data.dominated.map((p) => SYMBOLS[p.family] || "circle") },
    hovertemplate: "%{text}<br>mem=%{x:.3s}B<br>loss=%{y:.4f}<extra>dominated</extra>" }];
  const groups = data.pooled ? [["all budgets", data.front]] :
    [...new Set(data.front.map((p) => p.budget_label))].map((label) => [label, data.front.filter((p) => p.budget_label === label)]);
  groups.forEach(([label, points], i) => {
    const front = [...points].sort((a, b) => a.values.peak_memory_bytes - b.values.peak_memory_bytes);
    const color = data.pooled ? "#444" : PALETTE[i % PALETTE.length];
    traces.push({ type: "scatter", mode: "lines+markers", name: "front " + label, x: front.map((p) => p.values.peak_memory_bytes),
      y: front.map((p) => p.values.final_val_loss), text: front.map(hover), line: { shape: "hv", color, width: 1 },
      marker: { size: 11, color, symbol: front.map((p) => SYMBOLS[p.family] || "circle"), line: { color: "#000", width: 1 } },
      hovertemplate: "%{text}<br>mem=%{x:.3s}B<br>loss=%{y:.4f}<extra>front " + label + "</extra>" });
  });
  for (const [family, symbol] of Object.entries(SYMBOLS)) {  // legend entries for the symbols
    traces.push({ type: "scatter", mode: "markers", name: family.toUpperCase() + " (" + symbol + ")", x: [null], y: [null],
      marker: { symbol, color: "#666", size: 10 } });
  }
  return traces;
}

async function drawPareto() {
  const params = new URLSearchParams({ objectives: "final_val_loss:min,peak_memory_bytes:min", include_dominated: "true",
    pooled: String($("pareto-pooled").checked) });
  if ($("family").value) params.set("family", $("family").value);
  const data = await getJSON(api("/pareto", params));
  setMessage("pareto-message", data.message);
  if (!data.front.length) { noChart("pareto-plot"); return; }
  chart("pareto-plot", paretoTraces(data), {
    margin: { t: 20, r: 20 }, xaxis: { title: { text: "measured peak memory (bytes)" }, type: "log" },
    yaxis: { title: { text: "final val loss (nats/token)" } }, legend: { orientation: "h", y: -0.25 },
  });
}

// ---- tables -----------------------------------------------------------------------------------
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function header(table, names) {
  const tr = document.createElement("tr");
  for (const name of names) { const th = document.createElement("th"); th.textContent = name; tr.appendChild(th); }
  table.tHead.replaceChildren(tr);
}

// the arms section (drawCompare, initCompare) is in compare.js

// the trials table and the researcher views (curves, history, parallel coordinates, importance, routing) are in views.js

// ---- page wiring ------------------------------------------------------------------------------
function showError(id) { return (error) => setMessage(id, "error: " + (error.message || error)); }

async function drawAll() {
  await Promise.all([
    drawIsoflop().catch(showError("isoflop-message")),
    drawScaling().catch(showError("scaling-message")),
    drawPareto().catch(showError("pareto-message")),
    drawCompare().catch(showError("compare-message")),
    drawViews().catch(showError("trials-message")),
  ]);
}

async function refreshSweep(force) {
  const sweep = await getJSON(api(""));
  $("sweep-status").textContent = sweep.status;
  $("sweep-status").className = "badge " + sweep.status;
  $("sweep-simulated").hidden = !sweep.simulated;
  $("sweep-counts").textContent = sweep.n_trials + " trials: " + Object.entries(sweep.counts).map(([k, v]) => k + " " + v).join(", ") +
    " | data version " + sweep.data_version;
  const changed = sweep.data_version !== state.version;
  state.version = sweep.data_version;
  if (force || changed) await drawAll();
  $("refresh-note").textContent = sweep.running ? "live: refreshing every " + sweep.page_refresh_s + " s" : "";
  return sweep;
}

function schedule(seconds) {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    try {
      const sweep = await refreshSweep(false);
      if (sweep.running) schedule(sweep.page_refresh_s);
    } catch (error) {
      $("refresh-note").textContent = "refresh failed: " + (error.message || error);
      schedule(seconds * 2);
    }
  }, seconds * 1000);
}

async function initSweep() {
  state.sweep = document.body.dataset.sweepId;
  for (const id of ["x-axis", "family"]) $(id).addEventListener("change", () => { state.offset = 0; drawAll(); });
  $("predict").addEventListener("click", predict);
  $("pareto-pooled").addEventListener("change", () => drawPareto().catch(showError("pareto-message")));
  initCompare();
  $("trials-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_ROWS); drawTrialsTable(); });
  $("trials-next").addEventListener("click", () => {
    if (state.offset + PAGE_ROWS < state.total) { state.offset += PAGE_ROWS; drawTrialsTable(); }
  });
  const sweep = await refreshSweep(true);
  const target = new URLSearchParams(window.location.search).get("flops");  // /sweeps/X?flops=1e16 predicts at once
  if (target) { $("target-flops").value = target; await predict(); }
  if (sweep.running) schedule(sweep.page_refresh_s);
}

async function initIndex() {
  const data = await getJSON("/api/sweeps");
  setMessage("sweeps-message", data.message);
  const body = document.createElement("tbody");
  for (const s of data.sweeps) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    const link = document.createElement("a");
    link.href = "/sweeps/" + encodeURIComponent(s.id);
    link.textContent = s.name;
    td.appendChild(link);
    if (s.simulated) {
      const badge = document.createElement("span");
      badge.className = "badge simulated";
      badge.textContent = "SIMULATED";
      badge.title = "losses from the simulated law (launch --simulate), not training";
      td.append(" ", badge);
    }
    tr.appendChild(td);
    cell(tr, s.status);
    cell(tr, String(s.n_trials));
    cell(tr, Object.entries(s.counts).map(([k, v]) => k + " " + v).join(", "));
    cell(tr, s.start_time || "");
    cell(tr, s.id.slice(0, 12));
    body.appendChild(tr);
  }
  $("sweeps-table").tBodies[0].replaceWith(body);
  if (data.sweeps.some((s) => s.status === "RUNNING")) setTimeout(initIndex, Number(document.body.dataset.refreshS) * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  const run = { sweep: initSweep, index: initIndex }[page];  // other pages (trial, compare-sweeps) have their own scripts
  if (!run) return;
  run().catch((error) => {
    const target = document.querySelector(".message");
    if (target) target.textContent = "error: " + (error.message || error);
  });
});
