// The toolbar above the trials table (state filter, hyperparameter filter, best-by metric)
// and the experiment-wide action buttons, filled in from the current trials.
import { API, STATES } from "./constants.js";
import { $, el, fillSelect } from "./dom.js";
import { formatValue, valueKey } from "./format.js";
import { currentExperiment, view } from "./state.js";
import { computeVisible } from "./trials_model.js";
import { renderTrials } from "./trials_table.js";

function renderStateFilter(counts) {
  const stateFilter = $("state-filter");
  if (stateFilter.querySelectorAll("input").length === 0) {
    for (const state of STATES) {
      const input = el("input", {
        type: "checkbox",
        value: state,
        "data-testid": `filter-state-${state}`,
        onchange: (event) => {
          if (event.target.checked) view.stateFilter.add(state);
          else view.stateFilter.delete(state);
          view.page = 0;
          computeVisible();
          renderTrials();
        },
      });
      input.checked = view.stateFilter.has(state);
      stateFilter.append(
        el(
          "label",
          { class: `state-toggle state-${state}` },
          input,
          el("span", { class: "swatch", "aria-hidden": "true" }),
          el("span", {}, state),
          el("span", { class: "muted", "data-state-count": state }, ""),
        ),
      );
    }
  }
  for (const span of stateFilter.querySelectorAll("[data-state-count]")) {
    span.textContent = `(${counts[span.dataset.stateCount] || 0})`;
  }
}

function renderParameterFilter() {
  const keys = view.hyperparameterKeys;
  if (view.parameterFilter.key && !keys.includes(view.parameterFilter.key)) {
    view.parameterFilter = { key: "", value: "" };
  }
  fillSelect($("filter-param"), [["", "(any)"], ...keys.map((key) => [key, key])], view.parameterFilter.key);
  const valueSelect = $("filter-value");
  if (view.parameterFilter.key) {
    const seen = new Map();
    for (const trial of view.trials) {
      const value = (trial.hyperparameters || {})[view.parameterFilter.key];
      const key = valueKey(value);
      if (!seen.has(key)) seen.set(key, formatValue(value === undefined ? null : value));
    }
    fillSelect(valueSelect, [["", "(any value)"], ...seen.entries()], view.parameterFilter.value);
    valueSelect.disabled = false;
  } else {
    fillSelect(valueSelect, [["", "(any value)"]], "");
    valueSelect.disabled = true;
  }
}

function renderMetricChoices() {
  fillSelect(
    $("best-metric"),
    view.resultKeys.length ? view.resultKeys.map((key) => [key, key]) : [["", "(no result yet)"]],
    view.bestMetric,
  );
  $("best-direction").value = view.bestDirection || "min";
  fillSelect($("scatter-param"), view.hyperparameterKeys.map((key) => [key, key]), view.scatterParameter);
}

function renderExperimentActions(counts) {
  const experiment = currentExperiment();
  const experimentCounts = (experiment && experiment.counts) || counts;
  const retryable = (experimentCounts.failed || 0) + (experimentCounts.cancelled || 0);
  const cancellable = (experimentCounts.pending || 0) + (experimentCounts.running || 0);
  $("retry-all").textContent = `Retry failed (${retryable})`;
  $("retry-all").disabled = retryable === 0;
  $("cancel-all").textContent = `Cancel all (${cancellable})`;
  $("cancel-all").disabled = cancellable === 0;
  $("current-experiment").textContent = view.experiment ? `— ${view.experiment}` : "";
  if (view.experiment) {
    $("download-csv").href = `${API}/experiments/${encodeURIComponent(view.experiment)}/trials.csv`;
    $("download-csv").setAttribute("download", `${view.experiment}.csv`);
  }
}

export function renderControls() {
  const counts = {};
  for (const trial of view.trials) counts[trial.state] = (counts[trial.state] || 0) + 1;
  renderStateFilter(counts);
  renderParameterFilter();
  renderMetricChoices();
  renderExperimentActions(counts);
}
