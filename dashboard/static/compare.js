// coe-sweep page, arms section: every arm against a baseline (GET /api/sweeps/{sweep}/compare?baseline=ARM).
// Loaded after dashboard.js (uses $, getJSON, api, fmt, fmtBytes, cell, header, setMessage, PALETTE).
"use strict";

const compareState = { baseline: null, arms: [] };

function ciText(ci, digits) {
  if (!ci) return "";
  const d = digits === undefined ? 3 : digits;
  const sign = (v) => (v >= 0 ? "+" : "") + v.toFixed(d);
  return "[" + sign(ci[0]) + ", " + sign(ci[1]) + "]";
}

function armConfig(c) {
  const d = c.describe || {};
  return [["C", "iterations"], ["K", "top_k"], ["L", "n_layers"], ["d", "d_model"]]
    .filter(([, k]) => d[k] !== undefined && d[k] !== null).map(([s, k]) => s + "=" + d[k]).join(" ") || c.config;
}

function armColor(data, arm) { return PALETTE[data.arms.indexOf(arm) % PALETTE.length]; }

// One point per seed (small, spread a little along x per arm) and the mean with its CI per arm per budget.
function drawArmsPlot(data) {
  const traces = [];
  const n = data.arms.length;
  data.arms.forEach((arm, i) => {
    const color = armColor(data, arm);
    const shift = Math.pow(1.06, i - (n - 1) / 2);  // arms side by side on the log x axis
    const rows = data.budgets.map((b) => b.arms.find((a) => a.arm === arm)).filter(Boolean);
    const seedsX = [], seedsY = [], seedsText = [];
    for (const r of rows) {
      r.cell.seeds.forEach((s, j) => {
        seedsX.push(r.cell.budget_flops * shift); seedsY.push(r.cell.losses[j]); seedsText.push("seed " + s);
      });
    }
    traces.push({ type: "scatter", mode: "markers", name: arm + " seeds", legendgroup: arm, showlegend: false, x: seedsX,
      y: seedsY, text: seedsText, marker: { color, size: 5, opacity: 0.55 },
      hovertemplate: arm + " %{text}<br>loss=%{y:.4f}<extra></extra>" });
    traces.push({ type: "scatter", mode: "markers+lines", name: arm, legendgroup: arm,
      x: rows.map((r) => r.cell.budget_flops * shift), y: rows.map((r) => r.summary.mean),
      marker: { color, size: 11, symbol: arm === data.baseline ? "square" : "diamond", line: { color: "#000", width: 1 } },
      line: { color, width: 1 },
      error_y: { type: "data", symmetric: false, color, thickness: 1.5,
        array: rows.map((r) => (r.summary.ci ? r.summary.ci[1] - r.summary.mean : 0)),
        arrayminus: rows.map((r) => (r.summary.ci ? r.summary.mean - r.summary.ci[0] : 0)) },
      text: rows.map((r) => (r.diff ? r.diff.text : "baseline") + "<br>" + armConfig(r.cell)),
      hovertemplate: arm + " mean=%{y:.4f}<br>%{text}<extra>%{x:.3g} FLOPs</extra>" });
    const f = data.frontiers.find((fr) => fr.arm === arm);
    if (f && f.curve_flops.length) {
      traces.push({ type: "scatter", mode: "lines", name: arm + " frontier", legendgroup: arm, showlegend: false,
        x: f.curve_flops, y: f.curve_loss, line: { color, dash: "dot", width: 1 }, hoverinfo: "skip" });
    }
  });
  Plotly.react("compare-plot", traces, {
    margin: { t: 20, r: 20 }, xaxis: { type: "log", title: { text: "training budget (FLOPs)" } },
    yaxis: { title: { text: "final val loss (seeds, mean and " + Math.round(data.level * 100) + "% CI)" } },
    legend: { title: { text: "arm" } },
  }, { responsive: true, displaylogo: false });
}

function drawMultiplierPlot(data) {
  const traces = [];
  const arms = [...new Set(data.multipliers.map((m) => m.arm))];
  for (const arm of arms) {
    const ms = data.multipliers.filter((m) => m.arm === arm && m.multiplier !== null);
    const color = armColor(data, arm);
    traces.push({ type: "scatter", mode: "markers+lines", name: arm, x: ms.map((m) => m.flops), y: ms.map((m) => m.multiplier),
      marker: { color, size: 10 }, line: { color, width: 1 }, text: ms.map((m) => m.text + (m.warnings.length ? "<br>" + m.warnings.join("<br>") : "")),
      error_y: { type: "data", symmetric: false, color,
        array: ms.map((m) => (m.ci && m.ci[1] !== null ? m.ci[1] - m.multiplier : 0)),
        arrayminus: ms.map((m) => (m.ci ? m.multiplier - m.ci[0] : 0)) },
      hovertemplate: "%{text}<extra></extra>" });
  }
  const xs = data.multipliers.map((m) => m.flops);
  if (xs.length) {
    traces.push({ type: "scatter", mode: "lines", name: "1 (no saving)", x: [Math.min(...xs) / 1.5, Math.max(...xs) * 1.5], y: [1, 1],
      line: { color: "#888", dash: "dash", width: 1 }, hoverinfo: "skip" });
  }
  Plotly.react("multiplier-plot", traces, {
    margin: { t: 20, r: 20 }, xaxis: { type: "log", title: { text: "arm's training budget (FLOPs)" } },
    yaxis: { type: "log", title: { text: "compute multiplier vs " + (data.baseline || "baseline") } },
  }, { responsive: true, displaylogo: false });
}

function armRow(body, label, a, baseline) {
  const tr = document.createElement("tr");
  const d = a.diff;
  cell(tr, label);
  cell(tr, a.arm);
  cell(tr, armConfig(a.cell));
  cell(tr, String(a.summary.n));
  cell(tr, fmt(a.summary.mean) + (a.summary.ci ? " ± " + ((a.summary.ci[1] - a.summary.ci[0]) / 2).toFixed(4) : ""));
  cell(tr, d ? (d.mean >= 0 ? "+" : "") + d.mean.toFixed(4) : "");
  cell(tr, d ? ciText(d.ci) : "");
  cell(tr, d && d.p_value !== null ? d.p_value.toPrecision(3) : "");
  cell(tr, a.arm === baseline ? "baseline" : d ? d.text : "", d ? (d.verdict === "better" ? "better" : d.verdict === "worse" ? "worse" : "") : "");
  cell(tr, d && d.detectable !== null ? d.detectable.toFixed(4) : "");
  cell(tr, fmt(a.peak_memory_ratio));
  cell(tr, fmt(a.wall_s_ratio));
  cell(tr, a.notes.join("; "));
  body.appendChild(tr);
}

function fillArmTable(id, groups, baseline) {
  const table = $(id);
  header(table, ["budget / cap", "arm", "config", "seeds", "mean loss ± CI", "diff vs baseline", "diff CI", "p", "verdict",
    "MDD", "mem ratio", "wall ratio", "notes"]);
  const body = document.createElement("tbody");
  for (const [label, arms] of groups) for (const a of arms) armRow(body, label, a, baseline);
  table.tBodies[0].replaceWith(body);
}

function fillMultiplierTable(data) {
  const table = $("multiplier-table");
  header(table, ["arm", "at FLOPs", "baseline needs", "multiplier", Math.round(data.level * 100) + "% CI", "reading", "warnings"]);
  const body = document.createElement("tbody");
  for (const m of data.multipliers) {
    const tr = document.createElement("tr");
    cell(tr, m.arm);
    cell(tr, fmt(m.flops));
    cell(tr, fmt(m.baseline_flops));
    cell(tr, m.multiplier === null ? "never" : m.multiplier.toFixed(2));
    cell(tr, m.ci ? m.ci[0].toFixed(2) + "-" + (m.ci[1] === null ? "unbounded" : m.ci[1].toFixed(2)) : "");
    cell(tr, m.text);
    cell(tr, m.warnings.join("; "));
    body.appendChild(tr);
  }
  table.tBodies[0].replaceWith(body);
}

function fillBaselines(data) {
  const select = $("baseline");
  if (compareState.arms.join("|") === data.arms.slice().sort().join("|")) { select.value = data.baseline; return; }
  compareState.arms = data.arms.slice().sort();
  select.replaceChildren(...data.arms.map((arm) => {
    const option = document.createElement("option");
    option.value = arm; option.textContent = arm;
    return option;
  }));
  select.value = data.baseline;
}

async function drawCompare() {
  const params = new URLSearchParams();
  if (compareState.baseline) params.set("baseline", compareState.baseline);
  const data = await getJSON(api("/compare", params));
  setMessage("compare-message", [data.message, ...data.notes].filter(Boolean).join(" | "));
  $("compare-selection").textContent = data.baseline ? "every arm against " + data.baseline + "; " + data.selection : "";
  if (data.baseline) fillBaselines(data);
  drawArmsPlot(data);
  fillArmTable("compare-table", data.budgets.map((b) => [b.budget_label, b.arms]), data.baseline);
  drawMultiplierPlot(data);
  fillMultiplierTable(data);
  const caps = [...data.equal_memory.map((c) => ["mem <= " + fmtBytes(c.cap), c.arms]),
    ...data.equal_wall.map((c) => ["wall <= " + fmt(c.cap) + " s", c.arms])];
  fillArmTable("equal-table", caps, data.baseline);
}

function initCompare() {
  $("baseline").addEventListener("change", () => {
    compareState.baseline = $("baseline").value;
    drawCompare().catch((error) => setMessage("compare-message", "error: " + (error.message || error)));
  });
}
