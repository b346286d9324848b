// The trials' derived data: the table's columns, flattened results, the filters, the sort
// order and the best trial by the chosen metric.
import { STATES } from "./constants.js";
import { renderControls } from "./controls.js";
import { asNumber, flattenScalars, guessDirection, trialDurationSeconds, valueKey } from "./format.js";
import { rowCache, view } from "./state.js";
import { workerName } from "./workers.js";

export function columns() {
  return [
    { id: "grid_index", label: "#", numeric: true },
    { id: "id", label: "trial" },
    { id: "state", label: "state" },
    ...view.hyperparameterKeys.map((key) => ({ id: `hp:${key}`, label: key, group: "hp", key })),
    ...view.resultKeys.map((key) => ({ id: `result:${key}`, label: key, group: "result", key, numeric: true })),
    { id: "attempts", label: "attempts", numeric: true },
    { id: "worker", label: "worker" },
    { id: "duration", label: "duration", numeric: true },
    { id: "peak_gpu_memory", label: "peak GPU mem", numeric: true },
  ];
}

// Objects sort by their JSON text; missing values are null.
function hyperparameterSortValue(trial, key) {
  const value = (trial.hyperparameters || {})[key];
  if (value === undefined || value === null) return null;
  return typeof value === "object" ? JSON.stringify(value) : value;
}

// A number where the value reads as one (NaN counts as missing); objects by their JSON text.
function resultSortValue(trial, key) {
  const value = view.resultsById.get(trial.id)[key];
  if (value === undefined || value === null) return null;
  const number = asNumber(value);
  if (number !== null) return Number.isNaN(number) ? null : number;
  return typeof value === "object" ? JSON.stringify(value) : value;
}

function sortValue(trial, column) {
  switch (column) {
    case "grid_index":
    case "attempts":
      return trial[column];
    case "id":
      return trial.id;
    case "state":
      return STATES.indexOf(trial.state);
    case "worker":
      return trial.worker ? workerName(trial.worker) : null;
    case "duration":
      return trialDurationSeconds(trial);
    case "peak_gpu_memory":
      return trial.peak_gpu_memory_bytes ?? null;
    default:
      break;
  }
  if (column.startsWith("hp:")) return hyperparameterSortValue(trial, column.slice(3));
  if (column.startsWith("result:")) return resultSortValue(trial, column.slice(7));
  return null;
}

// Missing values sort last in both directions; numbers before text.
function compareValues(a, b, direction) {
  const aMissing = a === null || a === undefined;
  const bMissing = b === null || b === undefined;
  if (aMissing || bMissing) return aMissing === bMissing ? 0 : aMissing ? 1 : -1;
  const aNumber = typeof a === "number" || typeof a === "boolean";
  const bNumber = typeof b === "number" || typeof b === "boolean";
  if (aNumber !== bNumber) return aNumber ? -1 : 1;
  if (aNumber) return direction * (Number(a) - Number(b));
  return direction * String(a).localeCompare(String(b), undefined, { numeric: true });
}

export function computeVisible() {
  const { key, value } = view.parameterFilter;
  const filtered = view.trials.filter(
    (trial) =>
      view.stateFilter.has(trial.state) &&
      (!key || valueKey((trial.hyperparameters || {})[key]) === value),
  );
  const { column, direction } = view.sort;
  const keyed = filtered.map((trial) => [sortValue(trial, column), trial]);
  keyed.sort((a, b) => compareValues(a[0], b[0], direction) || a[1].grid_index - b[1].grid_index);
  view.visible = keyed.map((entry) => entry[1]);
}

export function computeBest() {
  view.bestId = null;
  const metric = view.bestMetric;
  if (!metric) return;
  const sign = view.bestDirection === "max" ? 1 : -1;
  let bestScore = -Infinity;
  for (const trial of view.trials) {
    if (trial.state !== "done") continue;
    const value = asNumber(view.resultsById.get(trial.id)[metric]);
    if (value === null || !Number.isFinite(value)) continue;
    if (sign * value > bestScore) {
      bestScore = sign * value;
      view.bestId = trial.id;
    }
  }
}

// Derived data for a new trials list: columns, flattened results, select options.
export function onTrialsChanged() {
  view.trialsVersion += 1;
  view.trialsById = new Map(view.trials.map((trial) => [trial.id, trial]));
  const hyperparameterKeys = new Set();
  const resultKeys = new Set();
  view.resultsById = new Map();
  for (const trial of view.trials) {
    for (const key of Object.keys(trial.hyperparameters || {})) hyperparameterKeys.add(key);
    const flat = flattenScalars(trial.results || {}, "", {});
    view.resultsById.set(trial.id, flat);
    for (const key of Object.keys(flat)) resultKeys.add(key);
  }
  view.hyperparameterKeys = [...hyperparameterKeys];
  const distinctCounts = new Map(
    view.hyperparameterKeys.map((key) => [
      key,
      new Set(view.trials.map((trial) => valueKey((trial.hyperparameters || {})[key]))).size,
    ]),
  );
  view.varyingKeys = view.hyperparameterKeys.filter((key) => distinctCounts.get(key) > 1);
  view.resultKeys = [...resultKeys].sort();
  for (const id of [...view.selected]) if (!view.trialsById.has(id)) view.selected.delete(id);
  for (const id of [...rowCache.keys()]) if (!view.trialsById.has(id)) rowCache.delete(id);

  if (!view.bestMetric || !resultKeys.has(view.bestMetric)) {
    const numeric = view.resultKeys.find((key) =>
      view.trials.some((trial) => Number.isFinite(asNumber(view.resultsById.get(trial.id)[key]))),
    );
    view.bestMetric = numeric || "";
    view.bestDirection = numeric ? guessDirection(numeric) : "";
  }
  if (!view.scatterParameter || !hyperparameterKeys.has(view.scatterParameter)) {
    // The axis with the most values says the most about the metric.
    const byValues = [...view.hyperparameterKeys].sort((a, b) => distinctCounts.get(b) - distinctCounts.get(a));
    view.scatterParameter = byValues[0] || "";
  }
  renderControls();
  computeBest();
  computeVisible();
}
