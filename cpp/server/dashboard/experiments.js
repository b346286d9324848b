// The experiments overview: one card per experiment with its progress bar, counts and ETA.
import { STATES } from "./constants.js";
import { closeDetail } from "./detail.js";
import { $, el } from "./dom.js";
import { formatDuration } from "./format.js";
import { refresh } from "./poll.js";
import { rowCache, view } from "./state.js";

function etaText(experiment) {
  const counts = experiment.counts || {};
  if (!(counts.pending || counts.running)) return "finished";
  const eta = experiment.eta_seconds;
  if (eta === null || eta === undefined) return "estimating (no trial done yet)";
  if (eta <= 0) return "any moment";
  return `about ${formatDuration(eta)} left`;
}

function progressBar(experiment, counts, total, finished) {
  const label = STATES.map((state) => `${counts[state] || 0} ${state}`).join(", ");
  return el(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-label": `${experiment.name}: ${label}`,
      "aria-valuemin": 0,
      "aria-valuemax": total,
      "aria-valuenow": finished,
      "aria-valuetext": `${finished} of ${total} finished: ${label}`,
      "data-testid": "progress",
    },
    STATES.map((state) =>
      el("div", {
        class: `segment state-${state}`,
        title: `${counts[state] || 0} ${state}`,
        "data-testid": `progress-${state}`,
        "data-count": counts[state] || 0,
        style: { width: total ? `${(100 * (counts[state] || 0)) / total}%` : "0%" },
      }),
    ),
  );
}

function stateLegend(counts) {
  return el(
    "div",
    { class: "legend" },
    STATES.map((state) =>
      el(
        "span",
        { class: `state-${state}`, "data-testid": `count-${state}` },
        el("span", { class: "swatch", "aria-hidden": "true" }),
        " ",
        el("strong", {}, String(counts[state] || 0)),
        ` ${state}`,
      ),
    ),
  );
}

function cardHead(experiment, isCurrent) {
  return el(
    "div",
    { class: "experiment-head" },
    el("span", { class: "experiment-name" }, experiment.name),
    experiment.active ? el("span", { class: "badge active" }, "active") : null,
    isCurrent
      ? null
      : el(
          "button",
          {
            type: "button",
            class: "button small secondary",
            onclick: () => selectExperiment(experiment.name),
          },
          "Show trials",
        ),
  );
}

function experimentCard(experiment) {
  const counts = experiment.counts || {};
  const total = experiment.total || STATES.reduce((sum, state) => sum + (counts[state] || 0), 0);
  const finished = (counts.done || 0) + (counts.failed || 0) + (counts.cancelled || 0);
  const facts = [`${finished} / ${total} finished`];
  if (experiment.mean_duration_seconds !== null && experiment.mean_duration_seconds !== undefined) {
    facts.push(`mean trial ${formatDuration(experiment.mean_duration_seconds)}`);
  }
  if (experiment.workers_online !== undefined) facts.push(`${experiment.workers_online} workers online`);
  const isCurrent = experiment.name === view.experiment;
  return el(
    "article",
    {
      class: `experiment-card${isCurrent ? " current" : ""}`,
      "data-testid": "experiment-card",
      "data-experiment": experiment.name,
    },
    cardHead(experiment, isCurrent),
    progressBar(experiment, counts, total, finished),
    stateLegend(counts),
    el(
      "p",
      { class: "eta" },
      el("strong", { "data-testid": "eta" }, etaText(experiment)),
      el("span", { class: "muted" }, ` · ${facts.join(" · ")}`),
    ),
  );
}

export function renderExperiments() {
  const list = $("experiment-list");
  if (view.experiments.length === 0) {
    list.replaceChildren(el("p", { class: "muted" }, "No experiment yet."));
    return;
  }
  list.replaceChildren(...view.experiments.map((experiment) => experimentCard(experiment)));
}

function selectExperiment(name) {
  if (view.experiment === name) return;
  view.experiment = name;
  view.trials = [];
  view.selected.clear();
  view.page = 0;
  view.parameterFilter = { key: "", value: "" };
  view.bestMetric = "";
  view.bestDirection = "";
  rowCache.clear();
  closeDetail();
  renderExperiments();
  refresh();
}
