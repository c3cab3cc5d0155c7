// coe-sweep trial page: GET /api/sweeps/{sweep}/trials/{trial}/view, drawn with Plotly. No build step, no CDN.
"use strict";

// Uses the helpers of dashboard.js ($, fmt, fmtBytes, getJSON, PALETTE).
const CONFIG = { responsive: true, displaylogo: false };

function kvTable(id, pairs) {
  const body = document.createElement("tbody");
  for (const [key, value] of pairs) {
    const tr = document.createElement("tr");
    for (const text of [key, value]) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
    body.appendChild(tr);
  }
  $(id).tBodies[0].replaceWith(body);
}

function drawIdentity(t) {
  $("trial-status").textContent = t.status || "";
  $("trial-status").className = "badge " + (t.status || "");
  $("trial-arm").textContent = "arm " + (t.arm || "-") + " | seed " + t.seed + (t.simulated ? " | simulated" : "");
  if (t.mlflow_url) { $("mlflow-link").href = t.mlflow_url; $("mlflow-link").hidden = false; }
  $("mlflow-hint").textContent = t.mlflow_hint ? "MLflow UI: " + t.mlflow_hint : "";
  const f = t.finals;
  kvTable("identity-table", [["trial id", t.trial_id], ["arm", t.arm], ["seed", String(t.seed)], ["config hash", t.config_hash],
    ["run id", t.run_id], ["budget", t.budget_label + " (" + fmt(t.budget_flops) + " FLOPs)"], ["status", t.status],
    ["reason", t.reason || "-"], ["final val loss", fmt(f.final_val_loss)], ["train FLOPs", fmt(f.train_flops)],
    ["tokens", fmt(f.tokens)], ["params active / total", fmt(f.params_active) + " / " + fmt(f.params_total)],
    ["wall", fmt(f.wall_s) + " s"]]);
  kvTable("config-table", Object.entries(t.config).sort().map(([k, v]) => [k, fmt(v)]));
}

function drawCurves(t) {
  const byTokens = $("curve-x").value === "tokens";
  const traces = Object.entries(t.curves).map(([name, points], i) => ({ type: "scatter", mode: name === "val_loss" ? "lines+markers" : "lines",
    name, x: points.map((p) => (byTokens ? p[1] : p[0])), y: points.map((p) => p[2]), line: { color: PALETTE[i] } }));
  Plotly.react("curves-plot", traces, { margin: { t: 20, r: 20 }, xaxis: { title: { text: byTokens ? "tokens" : "step" } },
    yaxis: { title: { text: "loss (nats/token)" } } }, CONFIG);
}

function drawMemory(t) {
  const m = t.memory;
  const bars = [["measured peak", m.peak_measured_bytes, "#1f77b4"], ["estimate", m.estimated_bytes, "#aaa"],
    ["allocated after a step (the paper's figure)", m.allocated_after_step_bytes, "#ff7f0e"]].filter((b) => b[1] !== null);
  Plotly.react("memory-plot", [{ type: "bar", x: bars.map((b) => b[0]), y: bars.map((b) => b[1]), marker: { color: bars.map((b) => b[2]) },
    text: bars.map((b) => fmtBytes(b[1])), textposition: "auto", hovertemplate: "%{x}: %{text}<extra></extra>" }],
  { margin: { t: 30, r: 20 }, yaxis: { title: { text: "bytes" } },
    title: { text: m.ratio ? "measured / estimate = " + m.ratio.toFixed(2) : "no measurement", font: { size: 13 }, x: 0.02, xanchor: "left" } }, CONFIG);
}

function heatmap(id, grid, title, colorscale) {
  const layers = grid.map((_, l) => "layer " + l);
  const iterations = (grid[0] || []).map((_, t) => "iteration " + t);
  Plotly.react(id, [{ type: "heatmap", z: grid, x: iterations, y: layers, colorscale, hoverongaps: false,
    text: grid.map((row) => row.map((v) => (v === null ? "" : v.toFixed(3)))), texttemplate: "%{text}",
    hovertemplate: "%{y}, %{x}: %{z:.3f}<extra></extra>" }],
  { margin: { t: 30, r: 20, l: 70 }, title: { text: title, font: { size: 13 } }, yaxis: { autorange: "reversed" } }, CONFIG);
}

function drawRouting(t) {
  const r = t.routing;
  if (!r) {
    $("routing-message").textContent = t.simulated ? "a simulated trial: no model ran, so no routing statistics" : "this trial logged no routing statistics (dense model, or it did not finish)";
    return;
  }
  heatmap("routing-entropy", r.grids.entropy, "router entropy (nats)", "Blues");
  if (r.n_iterations > 1) heatmap("routing-overlap", r.grids.overlap_next.map((row) => row.slice(0, -1)), "overlap of experts chosen at t and t+1", "Greens");
  else $("routing-overlap").textContent = "one iteration: no t -> t+1 overlap";
  const rows = [], z = [];
  r.loads.forEach((row, l) => row.forEach((loads, it) => { if (loads.length) { rows.push("L" + l + " C" + it); z.push(loads); } }));
  Plotly.react("routing-load", [{ type: "heatmap", z, y: rows, x: (z[0] || []).map((_, e) => "E" + e), colorscale: "RdBu", reversescale: true,
    zmid: 1, hovertemplate: "%{y} %{x}: %{z:.2f} x mean<extra></extra>", colorbar: { title: { text: "load / mean" } } }],
  { margin: { t: 20, r: 20, l: 70 }, xaxis: { title: { text: "expert" } }, yaxis: { autorange: "reversed" } }, CONFIG);
}

function trialUrl() {
  const body = document.body.dataset;
  return "/api/sweeps/" + encodeURIComponent(body.sweepId) + "/trials/" + encodeURIComponent(body.trial) + "/view";
}

const trialState = { view: null };  // the latest answer (a running trial's is replaced on each poll)

function drawTrial(view) {
  trialState.view = view;
  drawIdentity(view);
  drawCurves(view);
  drawMemory(view);
  drawRouting(view);
  // a running trial: poll its curves (they come from MLflow as the trial logs them) until it ends
  const seconds = Number(document.body.dataset.refreshS);
  $("trial-refresh").textContent = view.status === "running" ? "live: refreshing every " + seconds + " s" : "";
  if (view.status === "running") setTimeout(() => getJSON(trialUrl()).then(drawTrial).catch(showTrialError), seconds * 1000);
}

function showTrialError(error) { $("trial-message").textContent = "error: " + (error.message || error); }

async function initTrial() {
  $("curve-x").value = new URLSearchParams(window.location.search).get("x") === "tokens" ? "tokens" : "step";
  drawTrial(await getJSON(trialUrl()));
  $("curve-x").addEventListener("change", () => {
    const q = new URLSearchParams(window.location.search);
    if ($("curve-x").value === "tokens") q.set("x", "tokens"); else q.delete("x");
    history.replaceState(null, "", window.location.pathname + (q.toString() ? "?" + q : ""));
    drawCurves(trialState.view);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  initTrial().catch(showTrialError);
});
