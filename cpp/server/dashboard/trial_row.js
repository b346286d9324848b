// One row of the trials table, and the state badge and action buttons the detail view shows
// too.
import { el } from "./dom.js";
import { asNumber, formatBytes, formatDuration, formatNumber, formatValue, trialDurationSeconds } from "./format.js";
import { view } from "./state.js";
import { workerName } from "./workers.js";

export function stateBadge(trial) {
  const stopping = trial.state === "running" && trial.stop_requested;
  return el(
    "span",
    {
      class: `badge state-${trial.state}${stopping ? " stopping" : ""}`,
      "data-testid": "state",
      title: stopping ? "cancel requested" : null,
    },
    trial.state,
  );
}

export function actionButtons(trial, small = true) {
  const size = small ? " small" : "";
  const buttons = [];
  if (trial.state === "failed" || trial.state === "cancelled") {
    buttons.push(
      el("button", { type: "button", class: `button${size}`, "data-action": "retry", "data-trial-id": trial.id }, "Retry"),
    );
  }
  if (trial.state === "pending" || trial.state === "running") {
    const stopping = trial.state === "running" && trial.stop_requested;
    buttons.push(
      el(
        "button",
        {
          type: "button",
          class: `button danger${size}`,
          "data-action": "cancel",
          "data-trial-id": trial.id,
          disabled: stopping,
        },
        stopping ? "Stopping…" : "Cancel",
      ),
    );
  }
  return buttons;
}

function hyperparameterCell(trial, column) {
  const value = (trial.hyperparameters || {})[column.key];
  return { content: value === undefined ? "" : formatValue(value), title: null };
}

function resultCell(results, column) {
  const value = results[column.key];
  const number = asNumber(value);
  return {
    content: number !== null ? formatNumber(number) : formatValue(value),
    title: value !== undefined ? formatValue(value) : null,
  };
}

// Blank when unknown (no GPU used, not done, or an older worker); the exact bytes as title.
function peakGpuMemoryCell(bytes) {
  if (typeof bytes !== "number") return { content: "", title: null };
  return { content: formatBytes(bytes), title: `${bytes.toLocaleString("en-US")} bytes` };
}

// What a cell shows, and its title when it has one of its own.
function cellContent(trial, column, results, isBest) {
  switch (column.id) {
    case "grid_index":
      return { content: String(trial.grid_index), title: null };
    case "id":
      return {
        content: [
          el("button", { type: "button", class: "link-button", "data-action": "open", "data-trial-id": trial.id }, trial.id),
          isBest ? el("span", { class: "best-mark", title: `best by ${view.bestMetric} (${view.bestDirection})` }, "★ best") : null,
        ],
        title: null,
      };
    case "state":
      return { content: stateBadge(trial), title: trial.error || null };
    case "attempts":
      return { content: String(trial.attempts), title: null };
    case "worker":
      return { content: workerName(trial.worker), title: trial.worker };
    case "duration":
      return { content: formatDuration(trialDurationSeconds(trial)), title: null };
    case "peak_gpu_memory":
      return peakGpuMemoryCell(trial.peak_gpu_memory_bytes);
    default:
      return column.group === "hp" ? hyperparameterCell(trial, column) : resultCell(results, column);
  }
}

export function buildRow(tr, trial, cols) {
  const results = view.resultsById.get(trial.id);
  const isBest = trial.id === view.bestId;
  const checkbox = el("input", {
    type: "checkbox",
    "aria-label": `Select trial ${trial.id}`,
    "data-action": "select",
    "data-trial-id": trial.id,
  });
  checkbox.checked = view.selected.has(trial.id);
  const cells = [el("td", {}, checkbox)];
  for (const column of cols) {
    const { content, title } = cellContent(trial, column, results, isBest);
    cells.push(
      el(
        "td",
        {
          "data-column": column.id,
          class: [column.numeric ? "numeric" : "", column.group === "hp" ? "long" : ""].join(" ").trim() || null,
          title: title || (typeof content === "string" && content.length > 24 ? content : null),
        },
        content,
      ),
    );
  }
  cells.push(el("td", { class: "row-actions" }, actionButtons(trial)));
  tr.className = [isBest ? "best" : "", view.selected.has(trial.id) ? "selected" : ""].join(" ").trim();
  tr.dataset.trialId = trial.id;
  tr.dataset.state = trial.state;
  tr.setAttribute("data-testid", "trial-row");
  tr.replaceChildren(...cells);
}
