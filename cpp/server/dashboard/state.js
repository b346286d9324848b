// What the page shows and what it remembers between polls. Every module reads and changes
// the one `view` object; the caches keep work a poll can skip.
import { STATES } from "./constants.js";

export const view = {
  experiments: [],
  experiment: null,
  trials: [],
  trialsVersion: 0,
  trialsById: new Map(),
  workers: [],
  workersById: new Map(),
  hyperparameterKeys: [],
  varyingKeys: [],
  resultKeys: [],
  resultsById: new Map(),
  sort: { column: "grid_index", direction: 1 },
  stateFilter: new Set(STATES),
  parameterFilter: { key: "", value: "" },
  bestMetric: "",
  bestDirection: "",
  bestId: null,
  page: 0,
  pageSize: 100,
  selected: new Set(),
  visible: [],
  curveMetric: "",
  scatterParameter: "",
  detailId: null,
};

export const metricsCache = new Map();
export const rowCache = new Map();

export function currentExperiment() {
  return view.experiments.find((experiment) => experiment.name === view.experiment) || null;
}
