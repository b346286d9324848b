// The scatter plot of the chosen metric against one hyperparameter; a click opens the trial.
import { FEW_VALUES } from "./constants.js";
import { openDetail } from "./detail.js";
import { $, cssVariable } from "./dom.js";
import { formatValue, sortedDistinct } from "./format.js";
import { baseLayout, metricValues, plotlyText, safePlot } from "./plot_common.js";
import { view } from "./state.js";

export function renderScatter() {
  const parameter = view.scatterParameter;
  const pairs = view.bestMetric && parameter ? metricValues() : [];
  $("scatter-hint").hidden = pairs.length > 0;
  const div = $("plot-scatter");
  div.dataset.pointCount = String(pairs.length);
  const values = pairs.map(([trial]) => (trial.hyperparameters || {})[parameter]);
  const distinct = sortedDistinct(values);
  const categorical = distinct.length <= FEW_VALUES || values.some((value) => typeof value !== "number");
  const xs = categorical ? values.map((value) => plotlyText(formatValue(value === undefined ? null : value))) : values;
  const traces = [];
  if (pairs.length > 0) {
    const bestColor = cssVariable("--best-edge") || "#d9a400";
    const doneColor = cssVariable("--state-done") || "#1e7a46";
    traces.push({
      type: "scatter",
      mode: "markers",
      x: xs,
      y: pairs.map((pair) => pair[1]),
      customdata: pairs.map(([trial]) => trial.id),
      marker: {
        size: pairs.map(([trial]) => (trial.id === view.bestId ? 13 : 8)),
        color: pairs.map(([trial]) => (trial.id === view.bestId ? bestColor : doneColor)),
        opacity: 0.85,
        line: { width: 1, color: "#ffffff" },
      },
      hovertemplate: "%{customdata}<br>%{x}<br>%{y}<extra></extra>",
    });
  }
  safePlot(
    div,
    traces,
    baseLayout({
      xaxis: {
        title: { text: plotlyText(parameter) },
        type: categorical ? "category" : "-",
        categoryorder: categorical ? "array" : "trace",
        categoryarray: categorical ? distinct.map((entry) => plotlyText(entry.text)) : undefined,
        zeroline: false,
      },
      yaxis: { title: { text: plotlyText(view.bestMetric) }, zeroline: false },
      showlegend: false,
    }),
  );
  if (!div.dataset.clickBound && typeof div.on === "function") {
    div.on("plotly_click", (event) => {
      const point = event && event.points && event.points[0];
      if (point && typeof point.customdata === "string") openDetail(point.customdata);
    });
    div.dataset.clickBound = "1";
  }
}
