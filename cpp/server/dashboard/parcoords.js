// The parallel-coordinates plot: every hyperparameter against the chosen metric.
import { FEW_VALUES } from "./constants.js";
import { $ } from "./dom.js";
import { sortedDistinct, valueKey } from "./format.js";
import { baseLayout, metricValues, plotlyText, safePlot } from "./plot_common.js";
import { view } from "./state.js";

let evalAllowedResult = null;

// Plotly draws parallel coordinates with WebGL code it compiles at run time, which a
// Content-Security-Policy without 'unsafe-eval' forbids.
function evalAllowed() {
  if (evalAllowedResult === null) {
    try {
      evalAllowedResult = new Function("return true")() === true;
    } catch (refused) {
      evalAllowedResult = false;
    }
  }
  return evalAllowedResult;
}

export function renderParcoords() {
  const pairs = view.bestMetric ? metricValues() : [];
  $("parcoords-metric").textContent = view.bestMetric || "the metric";
  const hint = $("parcoords-hint");
  hint.hidden = pairs.length > 0;
  hint.textContent = "No finished trial has this result yet.";
  const div = $("plot-parcoords");
  div.dataset.lineCount = String(pairs.length);
  if (pairs.length > 0 && !evalAllowed()) {
    hint.hidden = false;
    hint.textContent = "This page's Content-Security-Policy does not let Plotly draw parallel coordinates.";
    return;
  }
  if (pairs.length === 0) {
    safePlot(div, [], baseLayout({ xaxis: { visible: false }, yaxis: { visible: false } }));
    return;
  }
  // An axis with few distinct values (a typical grid axis: 0.001, 0.01, 0.1) is spaced
  // evenly in sorted order; a constant one says nothing and is left out.
  const axes = view.hyperparameterKeys.map((key) => {
    const values = pairs.map(([trial]) => (trial.hyperparameters || {})[key]);
    const distinct = sortedDistinct(values);
    if (distinct.length > FEW_VALUES && values.every((value) => typeof value === "number")) {
      return { distinct: distinct.length, dimension: { label: plotlyText(key), values } };
    }
    const position = new Map(distinct.map((entry, index) => [entry.key, index]));
    return {
      distinct: distinct.length,
      dimension: {
        label: plotlyText(key),
        values: values.map((value) => position.get(valueKey(value))),
        tickvals: distinct.map((_, index) => index),
        ticktext: distinct.map((entry) => plotlyText(entry.text)),
        range: [-0.25, Math.max(0.25, distinct.length - 0.75)],
      },
    };
  });
  const varying = axes.filter((axis) => axis.distinct > 1);
  const dimensions = (varying.length ? varying : axes).map((axis) => axis.dimension);
  const metricValuesOnly = pairs.map((pair) => pair[1]);
  dimensions.push({ label: plotlyText(view.bestMetric), values: metricValuesOnly });
  safePlot(
    div,
    [
      {
        type: "parcoords",
        line: {
          color: metricValuesOnly,
          colorscale: "Viridis",
          reversescale: view.bestDirection === "min",
          showscale: true,
          colorbar: { thickness: 10, x: 1.1 },
        },
        dimensions,
      },
    ],
    baseLayout({ margin: { l: 60, r: 90, t: 40, b: 25 } }),
  );
}
