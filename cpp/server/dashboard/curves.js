// The metric curves of the selected trials (what they reported with gridexp.report()).
import { getJson } from "./api.js";
import { API, MAX_CURVES } from "./constants.js";
import { $, fillSelect } from "./dom.js";
import { asNumber } from "./format.js";
import { baseLayout, plotlyText, safePlot, trialLabel } from "./plot_common.js";
import { metricsCache, view } from "./state.js";

async function loadMetrics(ids) {
  await Promise.all(
    ids.map(async (id) => {
      const trial = view.trialsById.get(id);
      const cached = metricsCache.get(id);
      const fresh = cached && cached.state === trial.state && cached.attempts === trial.attempts && trial.state !== "running";
      if (fresh) return;
      try {
        const points = await getJson(`${API}/trials/${encodeURIComponent(id)}/metrics`);
        metricsCache.set(id, { state: trial.state, attempts: trial.attempts, points: points.data || [] });
      } catch (failure) {
        if (failure.status !== 404) throw failure;
        metricsCache.set(id, { state: trial.state, attempts: trial.attempts, points: [] });
      }
    }),
  );
}

let curvesRequest = 0;

export async function renderCurves() {
  const request = ++curvesRequest;
  const ids = [...view.selected].filter((id) => view.trialsById.has(id)).slice(0, MAX_CURVES);
  const div = $("plot-curves");
  try {
    await loadMetrics(ids);
  } catch (failure) {
    console.warn("metrics failed", failure);
  }
  if (request !== curvesRequest) return;
  const keys = new Set();
  for (const id of ids) {
    for (const point of (metricsCache.get(id) || { points: [] }).points) {
      for (const key of Object.keys(point.values || {})) keys.add(key);
    }
  }
  const metricKeys = [...keys].sort();
  if (!metricKeys.includes(view.curveMetric)) {
    view.curveMetric = metricKeys.find((key) => /loss/i.test(key)) || metricKeys[0] || "";
  }
  fillSelect($("curve-metric"), metricKeys.map((key) => [key, key]), view.curveMetric);
  const traces = [];
  for (const id of ids) {
    const points = (metricsCache.get(id) || { points: [] }).points.filter(
      (point) => point.values && point.values[view.curveMetric] !== undefined,
    );
    if (points.length === 0) continue;
    traces.push({
      type: "scatter",
      mode: points.length > 60 ? "lines" : "lines+markers",
      name: plotlyText(trialLabel(view.trialsById.get(id))),
      x: points.map((point, index) => (point.step === null || point.step === undefined ? index : point.step)),
      y: points.map((point) => asNumber(point.values[view.curveMetric])),
      hovertemplate: `${plotlyText(id)}<br>step %{x}<br>%{y}<extra></extra>`,
    });
  }
  const hint = $("curves-hint");
  hint.hidden = traces.length > 0;
  hint.textContent =
    ids.length === 0
      ? "Tick trials in the table to plot what they reported with gridexp.report()."
      : "The selected trials have not reported metrics yet.";
  div.dataset.traceCount = String(traces.length);
  safePlot(
    div,
    traces,
    baseLayout({
      xaxis: { zeroline: false },
      yaxis: { title: { text: plotlyText(view.curveMetric) }, zeroline: false },
      showlegend: true,
      legend: { orientation: "h", y: -0.12, yanchor: "top", font: { size: 11 } },
      margin: { l: 55, r: 15, t: 10, b: 20 },
    }),
  );
}
