// The page's event handlers: sorting, selecting, filtering, paging, the action buttons, the
// log-out button and the tab becoming visible again.
import { experimentAction, onTrialAction } from "./actions.js";
import { renderControls } from "./controls.js";
import { renderCurves } from "./curves.js";
import { closeDetail, forgetDetail } from "./detail.js";
import { $ } from "./dom.js";
import { guessDirection } from "./format.js";
import { renderPlots } from "./plots.js";
import { refresh } from "./poll.js";
import { wireLogout } from "./session.js";
import { currentExperiment, view } from "./state.js";
import { computeBest, computeVisible } from "./trials_model.js";
import { onSelectionChanged, renderTrials } from "./trials_table.js";

function rerenderTable() {
  computeBest();
  computeVisible();
  renderTrials();
}

// Sorting, selecting and opening trials; closing the detail dialog.
function wireTrialsTable() {
  $("trials-head").addEventListener("click", (event) => {
    const button = event.target.closest("[data-sort]");
    if (!button) return;
    const column = button.dataset.sort;
    view.sort = view.sort.column === column ? { column, direction: -view.sort.direction } : { column, direction: 1 };
    rerenderTable();
  });
  $("trials-body").addEventListener("click", onTrialAction);
  $("trials-body").addEventListener("change", (event) => {
    const target = event.target;
    if (target.dataset.action !== "select") return;
    if (target.checked) view.selected.add(target.dataset.trialId);
    else view.selected.delete(target.dataset.trialId);
    onSelectionChanged();
  });
  $("detail-actions").addEventListener("click", onTrialAction);
  $("detail-close").addEventListener("click", closeDetail);
  $("trial-detail").addEventListener("close", forgetDetail);
  $("trial-detail").addEventListener("click", (event) => {
    if (event.target === event.currentTarget) closeDetail();
  });
}

// The filters, the best-by metric and the plots' choices.
function wireToolbar() {
  $("filter-param").addEventListener("change", (event) => {
    view.parameterFilter = { key: event.target.value, value: "" };
    view.page = 0;
    renderControls();
    rerenderTable();
  });
  $("filter-value").addEventListener("change", (event) => {
    view.parameterFilter = { ...view.parameterFilter, value: event.target.value };
    view.page = 0;
    rerenderTable();
  });
  $("best-metric").addEventListener("change", (event) => {
    view.bestMetric = event.target.value;
    view.bestDirection = guessDirection(view.bestMetric);
    $("best-direction").value = view.bestDirection;
    rerenderTable();
    renderPlots();
  });
  $("best-direction").addEventListener("change", (event) => {
    view.bestDirection = event.target.value;
    rerenderTable();
    renderPlots();
  });
  $("scatter-param").addEventListener("change", (event) => {
    view.scatterParameter = event.target.value;
    renderPlots();
  });
  $("curve-metric").addEventListener("change", (event) => {
    view.curveMetric = event.target.value;
    renderCurves();
  });
}

function wirePager() {
  $("page-prev").addEventListener("click", () => {
    view.page = Math.max(0, view.page - 1);
    renderTrials();
  });
  $("page-next").addEventListener("click", () => {
    view.page += 1;
    renderTrials();
  });
  $("page-size").addEventListener("change", (event) => {
    view.pageSize = Number(event.target.value);
    view.page = 0;
    renderTrials();
  });
}

// The experiment-wide and selection-wide actions.
function wireActionButtons() {
  $("retry-all").addEventListener("click", () => experimentAction("retry", undefined, "Retried failed and cancelled trials"));
  $("cancel-all").addEventListener("click", () => {
    const experiment = currentExperiment();
    const counts = (experiment && experiment.counts) || {};
    const count = (counts.pending || 0) + (counts.running || 0);
    if (window.confirm(`Cancel all ${count} pending and running trials of ${view.experiment}?`)) {
      experimentAction("cancel", undefined, "Cancelled trials");
    }
  });
  $("retry-selected").addEventListener("click", () =>
    experimentAction("retry", { ids: [...view.selected] }, "Retried selected trials"),
  );
  $("cancel-selected").addEventListener("click", () =>
    experimentAction("cancel", { ids: [...view.selected] }, "Cancelled selected trials"),
  );
  $("clear-selection").addEventListener("click", () => {
    view.selected.clear();
    onSelectionChanged();
  });
}

function wirePage() {
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
  // Plotly's own script runs before the modules (both are deferred), but a slow load must not leave the
  // plots empty.
  window.addEventListener("load", () => renderPlots(true));
}

export function wire() {
  wireTrialsTable();
  wireToolbar();
  wirePager();
  wireActionButtons();
  wireLogout();
  wirePage();
}
