// The trial detail dialog: hyperparameters, results, the failure, the actions and the model.
import { getJson } from "./api.js";
import { API } from "./constants.js";
import { renderAttempts, renderLog } from "./detail_history.js";
import { $, el } from "./dom.js";
import { formatBytes, formatDuration, formatTime, formatValue, trialDurationSeconds } from "./format.js";
import { view } from "./state.js";
import { actionButtons, stateBadge } from "./trial_row.js";
import { workerName } from "./workers.js";

const detailLoaded = { id: null, signature: "" };

// The dialog closed (by its button, Escape or a click beside it): nothing is shown any more.
export function forgetDetail() {
  view.detailId = null;
  detailLoaded.id = null;
}

export function closeDetail() {
  forgetDetail();
  const dialog = $("trial-detail");
  if (dialog.open) dialog.close();
}

export function openDetail(id) {
  if (view.detailId !== id) {
    $("detail-attempts").replaceChildren();
    $("detail-log").textContent = "Loading…";
  }
  view.detailId = id;
  detailLoaded.id = null;
  const dialog = $("trial-detail");
  if (!dialog.open) dialog.showModal();
  renderDetail();
}

function keyValueList(target, object) {
  const entries = Object.entries(object || {});
  if (entries.length === 0) {
    target.replaceChildren(el("dt", {}, "—"), el("dd", { class: "muted" }, "none"));
    return;
  }
  target.replaceChildren(
    ...entries.flatMap(([key, value]) => [el("dt", {}, key), el("dd", {}, formatValue(value))]),
  );
}

// A trial that is not in the current list (another experiment's), or null after showing why
// it could not be fetched.
async function fetchTrial(id) {
  try {
    return (await getJson(`${API}/trials/${encodeURIComponent(id)}`)).data;
  } catch (failure) {
    $("detail-id").textContent = id;
    $("detail-error-section").hidden = false;
    $("detail-error").textContent = failure.message;
    return null;
  }
}

function modelLink(trial) {
  if (!trial.model) return null;
  return el(
    "a",
    {
      class: "button secondary",
      href: `${API}/trials/${encodeURIComponent(trial.id)}/model`,
      download: `${trial.id}.pt`,
      "data-testid": "detail-model",
    },
    `Download model (${formatBytes(trial.model.size)})`,
  );
}

function detailFacts(trial) {
  return [
    `attempts ${trial.attempts}`,
    trial.worker ? `worker ${workerName(trial.worker)}` : null,
    trial.started_at ? `started ${formatTime(trial.started_at)}` : null,
    trial.finished_at ? `finished ${formatTime(trial.finished_at)}` : null,
    trialDurationSeconds(trial) !== null ? `took ${formatDuration(trialDurationSeconds(trial))}` : null,
    trial.in_config === false ? "no longer in the config" : null,
  ].filter(Boolean);
}

function renderDetailFields(trial) {
  $("detail-id").textContent = trial.id;
  $("detail-state").replaceChildren(stateBadge(trial));
  const model = modelLink(trial);
  $("detail-actions").replaceChildren(
    ...actionButtons(trial, false),
    ...(model ? [model] : []),
    el("span", { class: "muted" }, detailFacts(trial).join(" · ")),
  );
  keyValueList($("detail-hyperparameters"), trial.hyperparameters);
  keyValueList($("detail-results"), trial.results);
  const failed = Boolean(trial.error || trial.traceback);
  $("detail-error-section").hidden = !failed;
  $("detail-error").textContent = trial.error || "";
  $("detail-traceback").textContent = trial.traceback || "";
  $("detail-traceback").hidden = !trial.traceback;
}

export async function renderDetail() {
  const id = view.detailId;
  if (!id) return;
  let trial = view.trialsById.get(id);
  if (!trial) {
    trial = await fetchTrial(id);
    if (!trial) return;
  }
  if (view.detailId !== id) return;
  renderDetailFields(trial);

  // Attempts and the log change only while the trial runs or when its state changes.
  const signature = JSON.stringify([trial.state, trial.attempts, trial.finished_at, trial.worker]);
  if (detailLoaded.id === id && detailLoaded.signature === signature && trial.state !== "running") return;
  detailLoaded.id = id;
  detailLoaded.signature = signature;
  await Promise.all([renderAttempts(id), renderLog(id)]);
}
