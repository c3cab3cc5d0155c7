// Two sweeps side by side (/compare-sweeps?a=S1&b=S2): best loss per budget and the IsoFLOP frontiers of both on
// shared axes, from each sweep's /frontier answer. Uses the helpers of dashboard.js ($, getJSON, fmt, setMessage, header, cell).
"use strict";

const PAIR_COLOURS = { a: "#1f77b4", b: "#d62728" };
const PAIR_SYMBOLS = ["circle", "diamond", "square", "triangle-up", "cross", "x", "star"];

function frontierOf(sweep, x) {
  return getJSON("/api/sweeps/" + encodeURIComponent(sweep) + "/frontier?x=" + encodeURIComponent(x));
}

function bestTraces(side, name, data) {
  const budgets = data.budgets.filter((b) => b.best_loss !== null);
  return [{ type: "scatter", mode: "lines+markers", name: side.toUpperCase() + ": " + name, x: budgets.map((b) => b.budget_flops),
    y: budgets.map((b) => b.best_loss), marker: { size: 9, color: PAIR_COLOURS[side] }, line: { color: PAIR_COLOURS[side] },
    text: budgets.map((b) => "budget " + b.budget_label + ", " + b.n_points + " trials"),
    hovertemplate: "%{text}<br>best loss %{y:.4f}<extra>" + name + "</extra>" }];
}

function frontierTraces(side, name, data) {
  return data.budgets.map((b, i) => ({ type: "scatter", mode: "markers", name: side.toUpperCase() + " " + b.budget_label,
    legendgroup: side, x: b.points.map((p) => p.x), y: b.points.map((p) => p.loss),
    marker: { color: PAIR_COLOURS[side], symbol: PAIR_SYMBOLS[i % PAIR_SYMBOLS.length], size: 7, opacity: 0.8 },
    hovertemplate: name + " budget " + b.budget_label + "<br>x=%{x:.4g}<br>loss=%{y:.4f}<extra></extra>" }));
}

function bestTable(names, answers) {
  const labels = [...new Set(answers.flatMap((d) => d.budgets.map((b) => b.budget_label)))];
  const best = (d, label) => { const b = d.budgets.find((x) => x.budget_label === label); return b ? b.best_loss : null; };
  header($("best-table"), ["budget", "A: " + names[0], "B: " + names[1], "B - A"]);
  const body = document.createElement("tbody");
  for (const label of labels) {
    const tr = document.createElement("tr");
    const a = best(answers[0], label), b = best(answers[1], label);
    for (const text of [label, fmt(a), fmt(b), a !== null && b !== null ? fmt(b - a) : "-"]) cell(tr, text);
    body.appendChild(tr);
  }
  $("best-table").tBodies[0].replaceWith(body);
}

async function drawPair() {
  const names = [$("sweep-a").value, $("sweep-b").value];
  const x = $("x-axis").value;
  const q = new URLSearchParams({ a: names[0], b: names[1] });
  if (x !== "params_active") q.set("x", x);
  history.replaceState(null, "", window.location.pathname + "?" + q);
  if (!names[0] || !names[1]) { setMessage("pair-message", "pick two sweeps"); return; }
  const answers = await Promise.all(names.map((name) => frontierOf(name, x)));
  setMessage("pair-message", answers.map((d, i) => (d.message ? "ABCD"[i] + ": " + d.message : "")).filter(Boolean).join(" | "));
  Plotly.react("best-plot", [...bestTraces("a", names[0], answers[0]), ...bestTraces("b", names[1], answers[1])], {
    margin: { t: 20, r: 20 }, xaxis: { type: "log", title: { text: "training budget (FLOPs)" } },
    yaxis: { title: { text: "best final val loss" } } }, { responsive: true, displaylogo: false });
  Plotly.react("frontier-plot", [...frontierTraces("a", names[0], answers[0]), ...frontierTraces("b", names[1], answers[1])], {
    margin: { t: 20, r: 20 }, xaxis: { type: "log", title: { text: x } }, yaxis: { title: { text: "final val loss" } } },
  { responsive: true, displaylogo: false });
  bestTable(names, answers);
}

async function initPair() {
  const q = new URLSearchParams(window.location.search);
  const sweeps = (await getJSON("/api/sweeps")).sweeps.map((s) => s.name);
  const names = [...new Set([...sweeps, q.get("a"), q.get("b")].filter(Boolean))];
  for (const [id, key, fallback] of [["sweep-a", "a", 0], ["sweep-b", "b", 1]]) {
    $(id).replaceChildren(...names.map((n) => { const o = document.createElement("option"); o.value = n; o.textContent = n; return o; }));
    $(id).value = q.get(key) || names[Math.min(fallback, names.length - 1)] || "";
    $(id).addEventListener("change", () => drawPair().catch((e) => setMessage("pair-message", "error: " + (e.message || e))));
  }
  if (q.get("x")) $("x-axis").value = q.get("x");
  $("x-axis").addEventListener("change", () => drawPair().catch((e) => setMessage("pair-message", "error: " + (e.message || e))));
  await drawPair();
}

document.addEventListener("DOMContentLoaded", () => {
  initPair().catch((error) => setMessage("pair-message", "error: " + (error.message || error)));
});
