// The poll loop: every two seconds (ten while the tab is hidden) it fetches the experiments,
// the current experiment's trials and the workers, then renders what changed.
import { getJson } from "./api.js";
import { API, POLL_MS } from "./constants.js";
import { renderControls } from "./controls.js";
import { renderDetail } from "./detail.js";
import { renderExperiments } from "./experiments.js";
import { setConnection } from "./messages.js";
import { renderPlots } from "./plots.js";
import { view } from "./state.js";
import { onTrialsChanged } from "./trials_model.js";
import { renderTrials } from "./trials_table.js";
import { renderWorkers } from "./workers.js";

let pollTimer = null;
let renderedExperiments = null;
let polling = false;
let pollAgain = false;

// The current experiment stays while it exists; else the active one, else the first.
function chooseExperiment() {
  if (!view.experiment || !view.experiments.some((experiment) => experiment.name === view.experiment)) {
    const preferred = view.experiments.find((experiment) => experiment.active) || view.experiments[0];
    view.experiment = preferred ? preferred.name : null;
  }
}

function render(experiments, trials, workers) {
  view.workers = workers.data || [];
  view.workersById = new Map(view.workers.map((worker) => [worker.id, worker]));
  if (trials.changed || view.trials !== trials.data) {
    view.trials = trials.data || [];
    onTrialsChanged();
  } else if (experiments.changed) {
    renderControls();
  }
  if (experiments.changed || renderedExperiments !== view.experiment) {
    renderedExperiments = view.experiment;
    renderExperiments();
  }
  renderWorkers();
  renderTrials();
  renderPlots();
  if (view.detailId) renderDetail();
}

async function fetchAndRender() {
  const experiments = await getJson(`${API}/experiments`);
  view.experiments = experiments.data || [];
  chooseExperiment();
  const name = view.experiment;
  const [trials, workers] = await Promise.all([
    name ? getJson(`${API}/experiments/${encodeURIComponent(name)}/trials`) : Promise.resolve({ changed: true, data: [] }),
    getJson(`${API}/workers`),
  ]);
  // The user chose another experiment meanwhile; that choice asked for a poll of its own.
  if (name !== view.experiment) return;
  render(experiments, trials, workers);
  setConnection(true);
}

function scheduleNext() {
  if (pollAgain) {
    pollAgain = false;
    pollTimer = setTimeout(poll, 0);
  } else {
    pollTimer = setTimeout(poll, document.hidden ? POLL_MS * 5 : POLL_MS);
  }
}

// One poll at a time: a refresh asked for during a poll runs right after it.
export async function poll() {
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  clearTimeout(pollTimer);
  try {
    await fetchAndRender();
  } catch (failure) {
    if (failure.status !== 401) setConnection(false, failure.message);
  } finally {
    polling = false;
    scheduleNext();
  }
}

export function refresh() {
  poll();
}
