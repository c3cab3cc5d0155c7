// coe-sweep page, researcher views: the trials table (arms, every varying field, aggregate over seeds, filters,
// CSV/parquet export, rows linked to the trial page), and tabs for overlaid loss curves, optimisation history,
// parallel coordinates, hyperparameter importance and routing per arm. The page's state lives in its URL.
// Uses the helpers of dashboard.js ($, getJSON, api, fmt, fmtBytes, cell, header, setMessage, PALETTE, state).
"use strict";

const VIEW_TABS = ["curves", "history", "parallel", "importance", "routing"];
const viewState = { tab: "curves", color: "arm", status: "", budget: "", by: "trial", metric: "val_loss", xaxis: "step",
  routingStat: "entropy", fields: null };
const STATUS_CHOICES = ["", "ok", "running", "diverged", "failed", "oom", "pruned"];

// ---- URL state: read once at load (before dashboard.js draws), written on every change -------------
function readUrlState() {
  const q = new URLSearchParams(window.location.search);
  if (VIEW_TABS.includes(q.get("tab"))) viewState.tab = q.get("tab");
  for (const key of ["color", "status", "budget", "metric", "xaxis"]) if (q.get(key)) viewState[key] = q.get(key);
  if (q.get("by") === "config") viewState.by = "config";
  if (q.get("routing")) viewState.routingStat = q.get("routing");
  if (q.get("family") && $("family")) $("family").value = q.get("family");
  if (q.get("x") && $("x-axis")) $("x-axis").value = q.get("x");
  if (q.get("baseline") && typeof compareState !== "undefined") compareState.baseline = q.get("baseline");
  if (q.get("sort")) state.sort = q.get("sort");
  if (q.get("order") === "desc") state.order = "desc";
}

function writeUrlState() {
  const q = new URLSearchParams(window.location.search);
  const set = (key, value, fallback) => { if (value && value !== fallback) q.set(key, value); else q.delete(key); };
  set("tab", viewState.tab, "curves");
  set("color", viewState.color, "arm");
  set("status", viewState.status, "");
  set("budget", viewState.budget, "");
  set("by", viewState.by, "trial");
  set("metric", viewState.metric, "val_loss");
  set("xaxis", viewState.xaxis, "step");
  set("routing", viewState.routingStat, "entropy");
  set("family", $("family").value, "");
  set("x", $("x-axis").value, "params_active");
  set("baseline", typeof compareState !== "undefined" ? compareState.baseline : null, null);
  set("sort", state.sort, "final_val_loss");
  set("order", state.order, "asc");
  const text = q.toString();
  history.replaceState(null, "", window.location.pathname + (text ? "?" + text : ""));
}

function filterParams(extra) {
  const params = new URLSearchParams(extra || {});
  if ($("family").value) params.set("family", $("family").value);
  if (viewState.status) params.set("status", viewState.status);
  if (viewState.budget) params.set("budget", viewState.budget);
  return params;
}

function trialHref(trialId) {
  return "/sweeps/" + encodeURIComponent(state.sweep) + "/trials/" + encodeURIComponent(trialId);
}

function shortName(column) { return column.replace(/^model\./, ""); }

// ---- controls ----------------------------------------------------------------------------------
function option(value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text === undefined ? value : text;
  return o;
}

function fillSelect(id, values, current, labels) {
  const select = $(id);
  select.replaceChildren(...values.map((v, i) => option(v, labels ? labels[i] : undefined)));
  select.value = values.includes(current) ? current : values[0];
  return select.value;
}

async function loadFields() {
  viewState.fields = await getJSON(api("/fields"));
  const f = viewState.fields;
  fillSelect("trials-status", STATUS_CHOICES, viewState.status, STATUS_CHOICES.map((s) => s || "all"));
  viewState.budget = fillSelect("trials-budget", ["", ...f.budgets], viewState.budget, ["all", ...f.budgets]);
  viewState.color = fillSelect("view-color", f.colour_by, viewState.color, f.colour_by.map(shortName));
  $("trials-by").checked = viewState.by === "config";
  $("view-arms").textContent = f.arms.length ? "arms: " + f.arms.join(", ") : "";
  $("view-varying").textContent = f.varying.length ? "varying: " + f.varying.map(shortName).join(", ") : "";
}

function updateExports() {
  const params = filterParams({ sort: state.sort, order: state.order });
  if (viewState.by === "config") params.set("by", "config");
  $("export-csv").href = api("/trials.csv", params);
  $("export-parquet").href = api("/trials.parquet", params);
}

// ---- trials table ------------------------------------------------------------------------------
function fillCell(row, name, value) {
  const td = document.createElement("td");
  if (name === "trial_id" && value) {
    const link = document.createElement("a");
    link.href = trialHref(value);
    link.textContent = value;
    td.appendChild(link);
  } else if (name === "run_id") {
    td.textContent = String(value || "").slice(0, 8);
  } else {
    td.textContent = /_bytes(\.mean|\.std)?$/.test(name) ? fmtBytes(value) : fmt(value);
  }
  row.appendChild(td);
}

function sortableHeader(table, columns, sortable) {
  const tr = document.createElement("tr");
  for (const name of columns) {
    const th = document.createElement("th");
    th.textContent = shortName(name);
    th.dataset.column = name;
    if (sortable && name === state.sort) th.className = state.order === "asc" ? "sorted-asc" : "sorted-desc";
    if (sortable) th.addEventListener("click", () => {
      state.order = state.sort === name && state.order === "asc" ? "desc" : "asc";
      state.sort = name;
      state.offset = 0;
      drawTrialsTable().catch(showError("trials-message"));
    });
    tr.appendChild(th);
  }
  table.tHead.replaceChildren(tr);
}

async function drawTrialsTable() {
  updateExports();
  writeUrlState();
  const table = $("trials-table");
  if (viewState.by === "config") {
    const data = await getJSON(api("/aggregate", filterParams()));
    setMessage("trials-message", data.message);
    $("trials-range").textContent = " " + data.rows.length + " configs (mean, std, n over seeds) ";
    sortableHeader(table, data.columns, false);
    const body = document.createElement("tbody");
    for (const row of data.rows) {
      const tr = document.createElement("tr");
      for (const name of data.columns) fillCell(tr, name === "config_hash" ? "run_id" : name, row[name]);
      body.appendChild(tr);
    }
    table.tBodies[0].replaceWith(body);
    return;
  }
  const columns = viewState.fields ? viewState.fields.table : [];
  const params = filterParams({ sort: state.sort, order: state.order, limit: String(PAGE_ROWS), offset: String(state.offset) });
  if (columns.length) params.set("columns", columns.join(","));
  const data = await getJSON(api("/trials", params));
  state.total = data.total;
  setMessage("trials-message", data.message);
  $("trials-range").textContent = data.total ? " " + (data.offset + 1) + "-" + Math.min(data.offset + data.limit, data.total) + " of " + data.total + " " : " 0 ";
  sortableHeader(table, data.columns, true);
  const body = document.createElement("tbody");
  for (const row of data.rows) {
    const tr = document.createElement("tr");
    for (const name of data.columns) fillCell(tr, name, row[name]);
    body.appendChild(tr);
  }
  table.tBodies[0].replaceWith(body);
}

// ---- colour by any field -------------------------------------------------------------------------
function armColour(arm) {  // one colour per arm across every view: the sweep's arm order
  const i = viewState.fields ? viewState.fields.arms.indexOf(arm) : -1;
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function colourMap(values, key) {
  const distinct = [...new Set(values.map((v) => String(v)))];
  if (key === "arm") return new Map(distinct.map((v) => [v, armColour(v)]));
  const numeric = distinct.every((v) => v !== "null" && !isNaN(Number(v)));
  distinct.sort(numeric ? (a, b) => Number(a) - Number(b) : undefined);
  return new Map(distinct.map((v, i) => [v, PALETTE[i % PALETTE.length]]));
}

function layoutBase(x, y, extra) {
  return Object.assign({ margin: { t: 20, r: 20 }, xaxis: { title: { text: x } }, yaxis: { title: { text: y } } }, extra || {});
}

const PLOT_CONFIG = { responsive: true, displaylogo: false };

// ---- tab: loss curves ------------------------------------------------------------------------------
async function drawCurves() {
  const data = await getJSON(api("/curves", filterParams()));
  setMessage("view-message", data.message);
  const key = viewState.color;
  const colours = colourMap(data.curves.map((c) => c.fields[key]), key);
  const shown = new Set();
  const traces = [];
  for (const c of data.curves) {
    const points = c.points[viewState.metric] || [];
    if (!points.length) continue;
    const value = String(c.fields[key]);
    const scale = viewState.xaxis === "tokens" ? (c.tokens_per_step || NaN) : 1;
    traces.push({ type: "scatter", mode: "lines", name: shortName(key) + "=" + value, legendgroup: value,
      showlegend: !shown.has(value), x: points.map((p) => p[0] * scale), y: points.map((p) => p[1]),
      line: { color: colours.get(value), width: c.status === "running" ? 2.5 : 1.2, dash: c.status === "running" ? "dot" : "solid" },
      text: c.trial_id, customdata: points.map(() => c.trial_id),
      hovertemplate: (c.trial_id || c.run_id.slice(0, 8)) + " (" + (c.arm || "") + ", " + c.status + ")<br>%{x:.4g}: %{y:.4f}<extra></extra>" });
    shown.add(value);
  }
  Plotly.react("view-plot", traces, layoutBase(viewState.xaxis === "tokens" ? "tokens" : "step", viewState.metric,
    { legend: { title: { text: shortName(key) } } }), PLOT_CONFIG);
  linkClicks();
}

// ---- tab: optimisation history ---------------------------------------------------------------------
async function drawHistory() {
  const params = new URLSearchParams();
  if ($("family").value) params.set("family", $("family").value);
  const data = await getJSON(api("/history", params));
  setMessage("view-message", data.message);
  const traces = [];
  data.budgets.filter((b) => !viewState.budget || b.budget_label === viewState.budget).forEach((b, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = b.points.filter((p) => p.value !== null);
    traces.push({ type: "scatter", mode: "markers", name: "budget " + b.budget_label, legendgroup: b.budget_label,
      x: pts.map((p) => p.order), y: pts.map((p) => p.value), marker: { color, size: 7 }, customdata: pts.map((p) => p.trial_id),
      text: pts.map((p) => p.trial_id + " " + (p.arm || "")), hovertemplate: "%{text}<br>trial %{x}: %{y:.4f}<extra></extra>" });
    traces.push({ type: "scatter", mode: "lines", name: "best so far " + b.budget_label, legendgroup: b.budget_label,
      x: b.points.map((p) => p.order), y: b.points.map((p) => p.best), line: { color, shape: "hv" }, hoverinfo: "skip" });
  });
  Plotly.react("view-plot", traces, layoutBase("trial (start order within its budget)", data.objective), PLOT_CONFIG);
  linkClicks();
}

// ---- tab: parallel coordinates ---------------------------------------------------------------------
function dimension(label, values) {
  const numbers = values.map((v) => (typeof v === "number" ? v : typeof v === "string" && v !== "" && !isNaN(Number(v)) ? Number(v) : NaN));
  if (numbers.every((v) => !isNaN(v))) return { label, values: numbers };
  const names = [...new Set(values.map(String))].sort();
  return { label, values: values.map((v) => names.indexOf(String(v))), tickvals: names.map((_, i) => i), ticktext: names };
}

async function drawParallel() {
  const f = viewState.fields;
  const columns = ["trial_id", "arm", "budget_label", ...f.varying, "final_val_loss"];
  const params = filterParams({ limit: "1000", columns: columns.join(","), status: "ok" });
  params.set("status", "ok");
  const data = await getJSON(api("/trials", params));
  const rows = data.rows.filter((r) => r.final_val_loss !== null);
  setMessage("view-message", rows.length ? (f.varying.length ? "" : "no config field varies in this sweep") : "no finished trials match");
  const dims = [];
  const varies = (values) => new Set(values.map(String)).size > 1;  // fields constant among these rows get no axis
  if (varies(rows.map((r) => r.budget_label))) dims.push(dimension("budget", rows.map((r) => r.budget_label)));
  if (varies(rows.map((r) => r.arm))) dims.push(dimension("arm", rows.map((r) => r.arm)));
  for (const name of f.varying) if (varies(rows.map((r) => r[name]))) dims.push(dimension(shortName(name), rows.map((r) => r[name])));
  const loss = rows.map((r) => r.final_val_loss);
  dims.push({ label: "final val loss", values: loss });
  Plotly.react("view-plot", [{ type: "parcoords", dimensions: dims,
    line: { color: loss, colorscale: "Viridis", reversescale: true, showscale: true, colorbar: { title: { text: "loss" } } } }],
  { margin: { t: 40, r: 60, l: 160 } }, PLOT_CONFIG);  // room for the first axis' tick labels (arm names)
}

// ---- tab: hyperparameter importance -----------------------------------------------------------------
async function drawImportance() {
  const params = new URLSearchParams({ evaluator: $("view-evaluator").value });
  if ($("family").value) params.set("family", $("family").value);
  const data = await getJSON(api("/importance", params));
  const budgets = data.budgets.filter((b) => !viewState.budget || b.budget_label === viewState.budget);
  const notes = budgets.filter((b) => b.message).map((b) => b.message);
  setMessage("view-message", [data.message, ...notes].filter(Boolean).join(" | "));
  const traces = budgets.filter((b) => !b.message).map((b, i) => {
    const names = Object.keys(b.importances).reverse();
    return { type: "bar", orientation: "h", name: "budget " + b.budget_label + " (" + b.n_trials + " trials)",
      y: names.map(shortName), x: names.map((n) => b.importances[n]), marker: { color: PALETTE[i % PALETTE.length] },
      hovertemplate: "%{y}: %{x:.3f}<extra>" + b.budget_label + "</extra>" };
  });
  Plotly.react("view-plot", traces, layoutBase("importance (" + data.evaluator + ", Optuna; sums to 1 per budget)", "",
    { barmode: "group", margin: { t: 20, r: 20, l: 140 } }), PLOT_CONFIG);
}

// ---- tab: routing per arm ------------------------------------------------------------------------------
const ROUTING_STATS = { entropy: "router entropy (nats)", overlap_next: "overlap of experts at t and t+1",
  max_load: "busiest expert's load / mean", min_load: "idlest expert's load / mean", load_profile: "expert load by rank / mean" };

async function drawRouting() {
  const params = new URLSearchParams();
  if ($("family").value) params.set("family", $("family").value);
  if (viewState.budget) params.set("budget", viewState.budget);
  const data = await getJSON(api("/routing", params));
  const stat = viewState.routingStat;
  setMessage("view-message", data.message);
  const traces = [];
  data.arms.forEach((arm) => {
    const color = armColour(arm.arm);
    if (stat === "load_profile") {
      arm.load_profile.forEach((row, l) => row.forEach((ranks, t) => {
        traces.push({ type: "scatter", mode: "lines+markers", name: arm.arm, legendgroup: arm.arm, showlegend: l === 0 && t === 0,
          x: ranks.map((_, r) => r + 1), y: ranks, line: { color, dash: t ? "dot" : "solid" }, marker: { size: 4 },
          hovertemplate: arm.arm + " L" + l + " C" + t + " rank %{x}: %{y:.2f}<extra></extra>" });
      }));
      return;
    }
    const s = arm.stats[stat];
    if (!s) return;
    const x = [], y = [], err = [], text = [];
    s.mean.forEach((row, l) => row.forEach((v, t) => {
      if (v === null) return;
      x.push("L" + l + " C" + t); y.push(v); err.push(s.sd[l][t] || 0); text.push("n=" + s.n[l][t]);
    }));
    traces.push({ type: "bar", name: arm.arm + " (" + arm.n_trials + " trials)", x, y, text, marker: { color },
      error_y: { type: "data", array: err, visible: true }, hovertemplate: arm.arm + " %{x}: %{y:.3f} ± %{error_y.array:.3f} (%{text})<extra></extra>" });
  });
  const xTitle = stat === "load_profile" ? "expert rank (1 = busiest), one line per layer; dotted: later iterations" : "layer, iteration";
  Plotly.react("view-plot", traces, layoutBase(xTitle, ROUTING_STATS[stat] + (stat === "load_profile" ? "" : ": mean ± sd over trials"),
    { barmode: "group" }), PLOT_CONFIG);
}

// ---- tabs wiring -------------------------------------------------------------------------------------
const VIEW_DRAW = { curves: drawCurves, history: drawHistory, parallel: drawParallel, importance: drawImportance, routing: drawRouting };

function linkClicks() {
  const plot = $("view-plot");
  if (plot.dataset.linked) return;
  plot.dataset.linked = "1";
  plot.on("plotly_click", (event) => {
    const point = event.points && event.points[0];
    const trialId = point && (point.customdata || (point.data && point.data.text));
    if (trialId && typeof trialId === "string") window.location.href = trialHref(trialId);
  });
}

function showTab() {
  for (const tab of VIEW_TABS) $("tab-" + tab).classList.toggle("active", tab === viewState.tab);
  for (const el of document.querySelectorAll("[data-tabs]")) el.hidden = !el.dataset.tabs.split(" ").includes(viewState.tab);
}

async function drawView() {
  showTab();
  writeUrlState();
  Plotly.purge("view-plot");
  delete $("view-plot").dataset.linked;
  await VIEW_DRAW[viewState.tab]();
}

async function drawViews() {
  if (!viewState.fields) await loadFields(); else viewState.fields = await getJSON(api("/fields"));
  await Promise.all([drawTrialsTable().catch(showError("trials-message")), drawView().catch(showError("view-message"))]);
}

function bindViews() {
  const on = (id, event, fn) => $(id).addEventListener(event, fn);
  for (const tab of VIEW_TABS) on("tab-" + tab, "click", () => { viewState.tab = tab; drawView().catch(showError("view-message")); });
  on("view-color", "change", () => { viewState.color = $("view-color").value; drawView().catch(showError("view-message")); });
  on("view-metric", "change", () => { viewState.metric = $("view-metric").value; drawView().catch(showError("view-message")); });
  on("view-xaxis", "change", () => { viewState.xaxis = $("view-xaxis").value; drawView().catch(showError("view-message")); });
  on("view-evaluator", "change", () => drawView().catch(showError("view-message")));
  on("view-routing", "change", () => { viewState.routingStat = $("view-routing").value; drawView().catch(showError("view-message")); });
  on("trials-status", "change", () => { viewState.status = $("trials-status").value; state.offset = 0; drawViews(); });
  on("trials-budget", "change", () => { viewState.budget = $("trials-budget").value; state.offset = 0; drawViews(); });
  on("trials-by", "change", () => { viewState.by = $("trials-by").checked ? "config" : "trial"; drawTrialsTable().catch(showError("trials-message")); });
  on("baseline", "change", () => setTimeout(writeUrlState));  // after compare.js has read the new baseline
  $("view-metric").value = viewState.metric;
  $("view-xaxis").value = viewState.xaxis;
  $("view-routing").value = viewState.routingStat;
}

readUrlState();
bindViews();
