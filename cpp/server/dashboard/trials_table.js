// The trials table: its header, the current page of rows, the pager, the best-trial summary
// and the selection bar.
import { MAX_CURVES } from "./constants.js";
import { renderCurves } from "./curves.js";
import { openDetail } from "./detail.js";
import { $, el } from "./dom.js";
import { formatValue } from "./format.js";
import { rowCache, view } from "./state.js";
import { buildRow } from "./trial_row.js";
import { columns } from "./trials_model.js";
import { workerName } from "./workers.js";

let headSignature = "";

function renderHead(cols) {
  const signature = JSON.stringify([cols.map((column) => column.id), view.sort, pageIds().every((id) => view.selected.has(id))]);
  if (signature === headSignature) return;
  headSignature = signature;
  const pageSelected = pageIds().length > 0 && pageIds().every((id) => view.selected.has(id));
  const selectAll = el("input", {
    type: "checkbox",
    "aria-label": "Select every trial on this page",
    "data-testid": "select-page",
    onchange: (event) => {
      for (const id of pageIds()) {
        if (event.target.checked) view.selected.add(id);
        else view.selected.delete(id);
      }
      onSelectionChanged();
    },
  });
  selectAll.checked = pageSelected;
  const cells = [el("th", { scope: "col" }, selectAll)];
  for (const column of cols) {
    const sorted = view.sort.column === column.id;
    const ariaSort = sorted ? (view.sort.direction > 0 ? "ascending" : "descending") : "none";
    cells.push(
      el(
        "th",
        {
          scope: "col",
          class: [column.numeric ? "numeric" : "", column.group ? `group-${column.group}` : ""].join(" ").trim() || null,
          "aria-sort": ariaSort,
          "data-column": column.id,
          title: column.group === "hp" ? "hyperparameter" : column.group === "result" ? "result" : null,
        },
        el(
          "button",
          { type: "button", class: "sort-button", "data-sort": column.id },
          el("span", {}, column.label),
          el("span", { class: "sort-indicator", "aria-hidden": "true" }, sorted ? (view.sort.direction > 0 ? "▲" : "▼") : ""),
        ),
      ),
    );
  }
  cells.push(el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "actions")));
  $("trials-head").replaceChildren(el("tr", {}, cells));
}

function pageIds() {
  const start = view.page * view.pageSize;
  return view.visible.slice(start, start + view.pageSize).map((trial) => trial.id);
}

// Rows are kept per trial id and rebuilt only when something they show changed, so polling
// neither resets the scroll position nor the focus of an unchanged row.
export function renderTrials() {
  const cols = columns();
  const pages = Math.max(1, Math.ceil(view.visible.length / view.pageSize));
  view.page = Math.min(view.page, pages - 1);
  renderHead(cols);
  const columnSignature = cols.map((column) => column.id).join("\u0000");
  const rows = [];
  const nowSecond = Math.floor(Date.now() / 1000);
  for (const trial of view.visible.slice(view.page * view.pageSize, (view.page + 1) * view.pageSize)) {
    const signature = JSON.stringify([
      trial,
      columnSignature,
      trial.id === view.bestId ? view.bestMetric : "",
      view.selected.has(trial.id),
      trial.worker ? workerName(trial.worker) : "",
      trial.state === "running" ? nowSecond : 0,
    ]);
    let entry = rowCache.get(trial.id);
    if (!entry) {
      entry = { tr: el("tr"), signature: "" };
      rowCache.set(trial.id, entry);
    }
    if (entry.signature !== signature) {
      buildRow(entry.tr, trial, cols);
      entry.signature = signature;
    }
    rows.push(entry.tr);
  }
  const body = $("trials-body");
  const current = [...body.children];
  if (current.length !== rows.length || current.some((row, index) => row !== rows[index])) {
    body.replaceChildren(...rows);
  }
  $("trials-empty").hidden = rows.length > 0 || view.trials.length === 0;
  const first = view.visible.length ? view.page * view.pageSize + 1 : 0;
  const last = Math.min(view.visible.length, (view.page + 1) * view.pageSize);
  const filteredOut = view.trials.length - view.visible.length;
  $("page-info").textContent =
    `${first}–${last} of ${view.visible.length}` + (filteredOut ? ` (${filteredOut} filtered out)` : "") + ` · page ${view.page + 1} of ${pages}`;
  $("page-prev").disabled = view.page === 0;
  $("page-next").disabled = view.page >= pages - 1;
  renderBestSummary();
  renderSelectionBar();
}

function renderBestSummary() {
  const summary = $("best-summary");
  const best = view.bestId && view.trialsById.get(view.bestId);
  if (!best) {
    summary.replaceChildren(view.bestMetric ? "No finished trial has this result yet." : "");
    return;
  }
  const value = view.resultsById.get(best.id)[view.bestMetric];
  summary.replaceChildren(
    "★ best: ",
    el(
      "button",
      { type: "button", class: "link-button", "data-testid": "best-trial", onclick: () => openDetail(best.id) },
      best.id,
    ),
    " ",
    el("strong", {}, `${view.bestMetric} = ${formatValue(value)}`),
  );
}

function renderSelectionBar() {
  const count = view.selected.size;
  $("selection-bar").hidden = count === 0;
  $("selection-count").textContent = `${count} selected${count > MAX_CURVES ? ` (curves show the first ${MAX_CURVES})` : ""}`;
}

export function onSelectionChanged() {
  renderTrials();
  renderCurves();
}
