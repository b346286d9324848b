// What every plot shares: Plotly's presence, the layout and config, escaping of user text and
// the finished trials' values of the chosen metric.
import { asNumber, formatValue } from "./format.js";
import { view } from "./state.js";

// Plotly reads a few HTML-like tags and entities in its strings; escaping keeps user
// text literal.
export function plotlyText(value) {
  return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function plotlyReady() {
  return typeof window.Plotly === "object" && window.Plotly !== null;
}

const plotConfig = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

export function baseLayout(extra) {
  return {
    margin: { l: 55, r: 15, t: 10, b: 45 },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    font: { family: "system-ui, sans-serif", size: 12, color: "#1f2933" },
    uirevision: view.experiment,
    ...extra,
  };
}

export function safePlot(div, data, layout) {
  if (!plotlyReady()) return;
  try {
    window.Plotly.react(div, data, layout, plotConfig);
  } catch (failure) {
    console.warn("plot failed", failure);
  }
}

// A trial by its short id and the hyperparameters that tell it apart from the others.
export function trialLabel(trial) {
  const hyperparameters = trial.hyperparameters || {};
  const parts = view.varyingKeys
    .slice(0, 4)
    .map((key) => `${key}=${formatValue(hyperparameters[key] === undefined ? null : hyperparameters[key])}`);
  return `${trial.id.slice(0, 8)} ${parts.join(" ")}`.trim();
}

export function metricValues() {
  const pairs = [];
  for (const trial of view.trials) {
    const value = asNumber(view.resultsById.get(trial.id)[view.bestMetric]);
    if (value !== null && Number.isFinite(value)) pairs.push([trial, value]);
  }
  return pairs;
}
