// Redraws the three plots when what they show changed.
import { renderCurves } from "./curves.js";
import { renderParcoords } from "./parcoords.js";
import { renderScatter } from "./scatter.js";
import { view } from "./state.js";

let plotsSignature = "";

// Plots redraw only when their inputs changed; Plotly.react keeps zoom through uirevision.
export function renderPlots(force = false) {
  const signature = JSON.stringify([
    view.experiment,
    view.bestMetric,
    view.bestDirection,
    view.bestId,
    view.scatterParameter,
    view.trialsVersion,
  ]);
  if (force || signature !== plotsSignature) {
    plotsSignature = signature;
    renderParcoords();
    renderScatter();
  }
  renderCurves();
}
