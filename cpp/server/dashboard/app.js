// The gridexp dashboard: polls the /api/v1 read routes every two seconds (conditional GETs
// with If-None-Match, so an idle grid costs a few 304s) and renders the experiments overview,
// the workers panel, the trials table, the plots and the trial detail.
//
// Everything the server sends is data: text reaches the page only through textContent,
// attributes and Plotly strings escaped by plotlyText(). Trial logs, hyperparameter keys and
// values, results and error messages all come from users' code.
"use strict";

(() => {
  const API = "/api/v1";
  const POLL_MS = 2000;
  const STATES = ["pending", "running", "done", "failed", "cancelled"];
  const MAX_CURVES = 20;
  const LOG_TAIL_CHARS = 200000;
  const WORKER_LOST_MS = 30000;
  // Up to this many distinct values, a hyperparameter is plotted as categories.
  const FEW_VALUES = 12;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------------------------
  // Small helpers

  // Builds an element; string children become text nodes, never markup.
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "style") Object.assign(node.style, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // Plotly reads a few HTML-like tags and entities in its strings; escaping keeps user
  // text literal.
  function plotlyText(value) {
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function plotlyReady() {
    return typeof window.Plotly === "object" && window.Plotly !== null;
  }

  function cssVariable(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // JSON numbers, plus the strings the server uses for non-finite floats.
  function asNumber(value) {
    if (typeof value === "number") return value;
    if (value === "NaN") return NaN;
    if (value === "Infinity") return Infinity;
    if (value === "-Infinity") return -Infinity;
    return null;
  }

  function formatNumber(value) {
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value)) return String(value);
    const magnitude = Math.abs(value);
    if (magnitude !== 0 && (magnitude >= 1e6 || magnitude < 1e-3)) return value.toExponential(3);
    return String(Number(value.toPrecision(5)));
  }

  function formatValue(value) {
    if (value === undefined) return "";
    if (value === null) return "null";
    if (typeof value === "number") return formatNumber(value);
    if (typeof value === "string") return value;
    if (typeof value === "boolean") return String(value);
    return JSON.stringify(value);
  }

  // The canonical text of a hyperparameter value: what the filter compares.
  function valueKey(value) {
    return JSON.stringify(value === undefined ? null : value);
  }

  // The distinct values of a hyperparameter, numbers in numeric order first, then the rest
  // by their text: [{key, text, value}].
  function sortedDistinct(values) {
    const seen = new Map();
    for (const value of values) {
      const key = valueKey(value);
      if (!seen.has(key)) seen.set(key, { key, text: formatValue(value === undefined ? null : value), value });
    }
    return [...seen.values()].sort((a, b) => {
      const aNumber = typeof a.value === "number";
      const bNumber = typeof b.value === "number";
      if (aNumber && bNumber) return a.value - b.value;
      if (aNumber !== bNumber) return aNumber ? -1 : 1;
      return a.text.localeCompare(b.text, undefined, { numeric: true });
    });
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, "0")} s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function formatAgo(iso) {
    if (!iso) return "never";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 2) return "just now";
    return `${formatDuration(seconds).replace(/\.\d/, "")} ago`;
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  function formatBytes(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
  }

  function trialDurationSeconds(trial) {
    if (!trial.started_at) return null;
    const end = trial.finished_at ? Date.parse(trial.finished_at) : trial.state === "running" ? Date.now() : null;
    if (end === null) return null;
    return Math.max(0, (end - Date.parse(trial.started_at)) / 1000);
  }

  // Scalar results, nested objects flattened with dots as in trials.csv; lists are left out.
  function flattenScalars(value, prefix, out) {
    if (value !== null && typeof value === "object") {
      if (Array.isArray(value)) return out;
      for (const [key, inner] of Object.entries(value)) {
        flattenScalars(inner, prefix ? `${prefix}.${key}` : key, out);
      }
      return out;
    }
    if (prefix) out[prefix] = value;
    return out;
  }

  function guessDirection(metric) {
    return /loss|err|mse|mae|rmse|perplex|time|cost|regret/i.test(metric) ? "min" : "max";
  }

  // ---------------------------------------------------------------------------------------
  // HTTP

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  let sessionLost = false;

  // A 401 means the session ended (logout elsewhere, server restart): reloading shows the
  // login form.
  function onUnauthorized() {
    if (sessionLost) return;
    sessionLost = true;
    location.reload();
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") return body.error;
    } catch (ignored) {
      // Not JSON: the status says enough.
    }
    return `HTTP ${response.status}`;
  }

  const etags = new Map();
  const cachedBodies = new Map();

  // A conditional GET: {changed, data}. The ETag is kept per URL.
  async function getJson(url) {
    const headers = { Accept: "application/json" };
    const etag = etags.get(url);
    if (etag && cachedBodies.has(url)) headers["If-None-Match"] = etag;
    const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
    if (response.status === 304) return { changed: false, data: cachedBodies.get(url) };
    if (response.status === 401) {
      onUnauthorized();
      throw new ApiError("not logged in", 401);
    }
    if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
    const data = await response.json();
    const tag = response.headers.get("ETag");
    if (tag) {
      etags.set(url, tag);
      cachedBodies.set(url, data);
    } else {
      etags.delete(url);
      cachedBodies.delete(url);
    }
    return { changed: true, data };
  }

  async function getText(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) {
      onUnauthorized();
      throw new ApiError("not logged in", 401);
    }
    if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
    return response.text();
  }

  // Every state-changing call carries X-Gridexp-Request, which a cross-site page cannot set
  // without a CORS preflight the server never grants.
  async function send(method, url, body) {
    const init = {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Gridexp-Request": "1" },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (response.status === 401) {
      onUnauthorized();
      throw new ApiError("not logged in", 401);
    }
    if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  // ---------------------------------------------------------------------------------------
  // State

  const view = {
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

  const metricsCache = new Map();
  const rowCache = new Map();

  // ---------------------------------------------------------------------------------------
  // Messages and connection status

  function notify(text, isError = false) {
    const message = el("div", { class: `message${isError ? " error" : ""}`, role: isError ? "alert" : null }, text);
    $("messages").append(message);
    setTimeout(() => message.remove(), isError ? 8000 : 4000);
  }

  function setConnection(ok, detail) {
    const status = $("connection-status");
    status.classList.toggle("live", ok);
    status.classList.toggle("offline", !ok);
    status.textContent = ok
      ? `live · updated ${new Date().toLocaleTimeString()}`
      : `server unreachable (${detail}) · retrying`;
  }

  // ---------------------------------------------------------------------------------------
  // Experiments overview

  function currentExperiment() {
    return view.experiments.find((experiment) => experiment.name === view.experiment) || null;
  }

  function etaText(experiment) {
    const counts = experiment.counts || {};
    if (!(counts.pending || counts.running)) return "finished";
    const eta = experiment.eta_seconds;
    if (eta === null || eta === undefined) return "estimating (no trial done yet)";
    if (eta <= 0) return "any moment";
    return `about ${formatDuration(eta)} left`;
  }

  function renderExperiments() {
    const list = $("experiment-list");
    if (view.experiments.length === 0) {
      list.replaceChildren(el("p", { class: "muted" }, "No experiment yet."));
      return;
    }
    list.replaceChildren(
      ...view.experiments.map((experiment) => {
        const counts = experiment.counts || {};
        const total = experiment.total || STATES.reduce((sum, state) => sum + (counts[state] || 0), 0);
        const finished = (counts.done || 0) + (counts.failed || 0) + (counts.cancelled || 0);
        const label = STATES.map((state) => `${counts[state] || 0} ${state}`).join(", ");
        const bar = el(
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
        const legend = el(
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
          el(
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
          ),
          bar,
          legend,
          el(
            "p",
            { class: "eta" },
            el("strong", { "data-testid": "eta" }, etaText(experiment)),
            el("span", { class: "muted" }, ` · ${facts.join(" · ")}`),
          ),
        );
      }),
    );
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

  // ---------------------------------------------------------------------------------------
  // Workers panel

  function workerOnline(worker) {
    if (typeof worker.online === "boolean") return worker.online;
    return Date.now() - Date.parse(worker.last_seen) < WORKER_LOST_MS;
  }

  function workerName(id) {
    if (!id) return "";
    const worker = view.workersById.get(id);
    return worker && worker.host ? worker.host : id.slice(0, 8);
  }

  function renderWorkers() {
    const workers = [...view.workers].sort(
      (a, b) => workerOnline(b) - workerOnline(a) || String(a.host).localeCompare(String(b.host)),
    );
    const online = workers.filter(workerOnline).length;
    $("workers-summary").textContent = workers.length ? `${online} online, ${workers.length - online} lost` : "";
    if (workers.length === 0) {
      $("workers-body").replaceChildren(
        el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No worker has registered yet.")),
      );
      return;
    }
    $("workers-body").replaceChildren(
      ...workers.map((worker) => {
        const isOnline = workerOnline(worker);
        const devices = Array.isArray(worker.devices) ? worker.devices.map(formatValue).join(", ") : formatValue(worker.devices);
        const current = worker.current_trial
          ? el(
              "button",
              {
                type: "button",
                class: "link-button",
                "data-action": "open",
                "data-trial-id": worker.current_trial,
                onclick: () => openDetail(worker.current_trial),
              },
              worker.current_trial,
            )
          : el("span", { class: "muted" }, "idle");
        return el(
          "tr",
          { "data-worker-id": worker.id, "data-testid": "worker-row" },
          el("td", { title: `${worker.id} · pid ${worker.pid ?? "?"} · ${worker.version || ""}` }, worker.host || worker.id),
          el("td", { class: "long", title: devices }, devices || "cpu"),
          el("td", {}, current),
          el("td", { class: "numeric" }, String(worker.trials_done ?? 0)),
          el("td", { class: "numeric" }, String(worker.trials_failed ?? 0)),
          el("td", { title: formatTime(worker.last_seen) }, formatAgo(worker.last_seen)),
          el(
            "td",
            {},
            el("span", { class: `badge ${isOnline ? "online" : "lost"}`, "data-testid": "worker-status" }, isOnline ? "online" : "lost"),
          ),
        );
      }),
    );
  }

  // ---------------------------------------------------------------------------------------
  // Trials: columns, filtering, sorting, best trial

  function columns() {
    return [
      { id: "grid_index", label: "#", numeric: true },
      { id: "id", label: "trial" },
      { id: "state", label: "state" },
      ...view.hyperparameterKeys.map((key) => ({ id: `hp:${key}`, label: key, group: "hp", key })),
      ...view.resultKeys.map((key) => ({ id: `result:${key}`, label: key, group: "result", key, numeric: true })),
      { id: "attempts", label: "attempts", numeric: true },
      { id: "worker", label: "worker" },
      { id: "duration", label: "duration", numeric: true },
    ];
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
      default:
        break;
    }
    if (column.startsWith("hp:")) {
      const value = (trial.hyperparameters || {})[column.slice(3)];
      if (value === undefined || value === null) return null;
      return typeof value === "object" ? JSON.stringify(value) : value;
    }
    if (column.startsWith("result:")) {
      const value = view.resultsById.get(trial.id)[column.slice(7)];
      if (value === undefined || value === null) return null;
      const number = asNumber(value);
      if (number !== null) return Number.isNaN(number) ? null : number;
      return typeof value === "object" ? JSON.stringify(value) : value;
    }
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

  function computeVisible() {
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

  function computeBest() {
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
  function onTrialsChanged() {
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

  function fillSelect(select, options, selected) {
    const signature = JSON.stringify(options);
    if (select.dataset.options !== signature) {
      select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
      select.dataset.options = signature;
    }
    select.value = selected;
  }

  function renderControls() {
    const counts = {};
    for (const trial of view.trials) counts[trial.state] = (counts[trial.state] || 0) + 1;
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

    fillSelect(
      $("best-metric"),
      view.resultKeys.length ? view.resultKeys.map((key) => [key, key]) : [["", "(no result yet)"]],
      view.bestMetric,
    );
    $("best-direction").value = view.bestDirection || "min";
    fillSelect($("scatter-param"), keys.map((key) => [key, key]), view.scatterParameter);

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

  // ---------------------------------------------------------------------------------------
  // Trials table

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

  function stateBadge(trial) {
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

  function actionButtons(trial, small = true) {
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

  function buildRow(tr, trial, cols) {
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
      let content;
      let title = null;
      switch (column.id) {
        case "grid_index":
          content = String(trial.grid_index);
          break;
        case "id":
          content = [
            el("button", { type: "button", class: "link-button", "data-action": "open", "data-trial-id": trial.id }, trial.id),
            isBest ? el("span", { class: "best-mark", title: `best by ${view.bestMetric} (${view.bestDirection})` }, "★ best") : null,
          ];
          break;
        case "state":
          content = stateBadge(trial);
          title = trial.error || null;
          break;
        case "attempts":
          content = String(trial.attempts);
          break;
        case "worker":
          content = workerName(trial.worker);
          title = trial.worker;
          break;
        case "duration":
          content = formatDuration(trialDurationSeconds(trial));
          break;
        default:
          if (column.group === "hp") {
            const value = (trial.hyperparameters || {})[column.key];
            content = value === undefined ? "" : formatValue(value);
          } else {
            const value = results[column.key];
            const number = asNumber(value);
            content = number !== null ? formatNumber(number) : formatValue(value);
            if (value !== undefined) title = formatValue(value);
          }
      }
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

  // Rows are kept per trial id and rebuilt only when something they show changed, so polling
  // neither resets the scroll position nor the focus of an unchanged row.
  function renderTrials() {
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

  function onSelectionChanged() {
    renderTrials();
    renderCurves();
  }

  // ---------------------------------------------------------------------------------------
  // Plots

  const plotConfig = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function baseLayout(extra) {
    return {
      margin: { l: 55, r: 15, t: 10, b: 45 },
      paper_bgcolor: "#ffffff",
      plot_bgcolor: "#ffffff",
      font: { family: "system-ui, sans-serif", size: 12, color: "#1f2933" },
      uirevision: view.experiment,
      ...extra,
    };
  }

  function safePlot(div, data, layout) {
    if (!plotlyReady()) return;
    try {
      window.Plotly.react(div, data, layout, plotConfig);
    } catch (failure) {
      console.warn("plot failed", failure);
    }
  }

  // A trial by its short id and the hyperparameters that tell it apart from the others.
  function trialLabel(trial) {
    const hyperparameters = trial.hyperparameters || {};
    const parts = view.varyingKeys
      .slice(0, 4)
      .map((key) => `${key}=${formatValue(hyperparameters[key] === undefined ? null : hyperparameters[key])}`);
    return `${trial.id.slice(0, 8)} ${parts.join(" ")}`.trim();
  }

  async function loadMetrics(ids) {
    await Promise.all(
      ids.map(async (id) => {
        const trial = view.trialsById.get(id);
        const cached = metricsCache.get(id);
        const fresh = cached && cached.state === trial.state && cached.attempts === trial.attempts && trial.state !== "running";
        if (fresh) return;
        try {
          const points = await getJson(`${API}/trials/${encodeURIComponent(id)}/metrics`);
          metricsCache.set(id, { state: trial.state, attempts: trial.attempts, points: points.data || [] });
        } catch (failure) {
          if (failure.status !== 404) throw failure;
          metricsCache.set(id, { state: trial.state, attempts: trial.attempts, points: [] });
        }
      }),
    );
  }

  let curvesRequest = 0;

  async function renderCurves() {
    const request = ++curvesRequest;
    const ids = [...view.selected].filter((id) => view.trialsById.has(id)).slice(0, MAX_CURVES);
    const div = $("plot-curves");
    try {
      await loadMetrics(ids);
    } catch (failure) {
      console.warn("metrics failed", failure);
    }
    if (request !== curvesRequest) return;
    const keys = new Set();
    for (const id of ids) {
      for (const point of (metricsCache.get(id) || { points: [] }).points) {
        for (const key of Object.keys(point.values || {})) keys.add(key);
      }
    }
    const metricKeys = [...keys].sort();
    if (!metricKeys.includes(view.curveMetric)) {
      view.curveMetric = metricKeys.find((key) => /loss/i.test(key)) || metricKeys[0] || "";
    }
    fillSelect($("curve-metric"), metricKeys.map((key) => [key, key]), view.curveMetric);
    const traces = [];
    for (const id of ids) {
      const points = (metricsCache.get(id) || { points: [] }).points.filter(
        (point) => point.values && point.values[view.curveMetric] !== undefined,
      );
      if (points.length === 0) continue;
      traces.push({
        type: "scatter",
        mode: points.length > 60 ? "lines" : "lines+markers",
        name: plotlyText(trialLabel(view.trialsById.get(id))),
        x: points.map((point, index) => (point.step === null || point.step === undefined ? index : point.step)),
        y: points.map((point) => asNumber(point.values[view.curveMetric])),
        hovertemplate: `${plotlyText(id)}<br>step %{x}<br>%{y}<extra></extra>`,
      });
    }
    const hint = $("curves-hint");
    hint.hidden = traces.length > 0;
    hint.textContent =
      ids.length === 0
        ? "Tick trials in the table to plot what they reported with gridexp.report()."
        : "The selected trials have not reported metrics yet.";
    div.dataset.traceCount = String(traces.length);
    safePlot(
      div,
      traces,
      baseLayout({
        xaxis: { zeroline: false },
        yaxis: { title: { text: plotlyText(view.curveMetric) }, zeroline: false },
        showlegend: true,
        legend: { orientation: "h", y: -0.12, yanchor: "top", font: { size: 11 } },
        margin: { l: 55, r: 15, t: 10, b: 20 },
      }),
    );
  }

  function metricValues() {
    const pairs = [];
    for (const trial of view.trials) {
      const value = asNumber(view.resultsById.get(trial.id)[view.bestMetric]);
      if (value !== null && Number.isFinite(value)) pairs.push([trial, value]);
    }
    return pairs;
  }

  let evalAllowedResult = null;

  // Plotly draws parallel coordinates with WebGL code it compiles at run time, which a
  // Content-Security-Policy without 'unsafe-eval' forbids.
  function evalAllowed() {
    if (evalAllowedResult === null) {
      try {
        evalAllowedResult = new Function("return true")() === true;
      } catch (refused) {
        evalAllowedResult = false;
      }
    }
    return evalAllowedResult;
  }

  function renderParcoords() {
    const pairs = view.bestMetric ? metricValues() : [];
    $("parcoords-metric").textContent = view.bestMetric || "the metric";
    const hint = $("parcoords-hint");
    hint.hidden = pairs.length > 0;
    hint.textContent = "No finished trial has this result yet.";
    const div = $("plot-parcoords");
    div.dataset.lineCount = String(pairs.length);
    if (pairs.length > 0 && !evalAllowed()) {
      hint.hidden = false;
      hint.textContent = "This page's Content-Security-Policy does not let Plotly draw parallel coordinates.";
      return;
    }
    if (pairs.length === 0) {
      safePlot(div, [], baseLayout({ xaxis: { visible: false }, yaxis: { visible: false } }));
      return;
    }
    // An axis with few distinct values (a typical grid axis: 0.001, 0.01, 0.1) is spaced
    // evenly in sorted order; a constant one says nothing and is left out.
    const axes = view.hyperparameterKeys.map((key) => {
      const values = pairs.map(([trial]) => (trial.hyperparameters || {})[key]);
      const distinct = sortedDistinct(values);
      if (distinct.length > FEW_VALUES && values.every((value) => typeof value === "number")) {
        return { distinct: distinct.length, dimension: { label: plotlyText(key), values } };
      }
      const position = new Map(distinct.map((entry, index) => [entry.key, index]));
      return {
        distinct: distinct.length,
        dimension: {
          label: plotlyText(key),
          values: values.map((value) => position.get(valueKey(value))),
          tickvals: distinct.map((_, index) => index),
          ticktext: distinct.map((entry) => plotlyText(entry.text)),
          range: [-0.25, Math.max(0.25, distinct.length - 0.75)],
        },
      };
    });
    const varying = axes.filter((axis) => axis.distinct > 1);
    const dimensions = (varying.length ? varying : axes).map((axis) => axis.dimension);
    const metricValuesOnly = pairs.map((pair) => pair[1]);
    dimensions.push({ label: plotlyText(view.bestMetric), values: metricValuesOnly });
    safePlot(
      div,
      [
        {
          type: "parcoords",
          line: {
            color: metricValuesOnly,
            colorscale: "Viridis",
            reversescale: view.bestDirection === "min",
            showscale: true,
            colorbar: { thickness: 10, x: 1.1 },
          },
          dimensions,
        },
      ],
      baseLayout({ margin: { l: 60, r: 90, t: 40, b: 25 } }),
    );
  }

  function renderScatter() {
    const parameter = view.scatterParameter;
    const pairs = view.bestMetric && parameter ? metricValues() : [];
    $("scatter-hint").hidden = pairs.length > 0;
    const div = $("plot-scatter");
    div.dataset.pointCount = String(pairs.length);
    const values = pairs.map(([trial]) => (trial.hyperparameters || {})[parameter]);
    const distinct = sortedDistinct(values);
    const categorical = distinct.length <= FEW_VALUES || values.some((value) => typeof value !== "number");
    const xs = categorical ? values.map((value) => plotlyText(formatValue(value === undefined ? null : value))) : values;
    const traces = [];
    if (pairs.length > 0) {
      const bestColor = cssVariable("--best-edge") || "#d9a400";
      const doneColor = cssVariable("--state-done") || "#1e7a46";
      traces.push({
        type: "scatter",
        mode: "markers",
        x: xs,
        y: pairs.map((pair) => pair[1]),
        customdata: pairs.map(([trial]) => trial.id),
        marker: {
          size: pairs.map(([trial]) => (trial.id === view.bestId ? 13 : 8)),
          color: pairs.map(([trial]) => (trial.id === view.bestId ? bestColor : doneColor)),
          opacity: 0.85,
          line: { width: 1, color: "#ffffff" },
        },
        hovertemplate: "%{customdata}<br>%{x}<br>%{y}<extra></extra>",
      });
    }
    safePlot(
      div,
      traces,
      baseLayout({
        xaxis: {
          title: { text: plotlyText(parameter) },
          type: categorical ? "category" : "-",
          categoryorder: categorical ? "array" : "trace",
          categoryarray: categorical ? distinct.map((entry) => plotlyText(entry.text)) : undefined,
          zeroline: false,
        },
        yaxis: { title: { text: plotlyText(view.bestMetric) }, zeroline: false },
        showlegend: false,
      }),
    );
    if (!div.dataset.clickBound && typeof div.on === "function") {
      div.on("plotly_click", (event) => {
        const point = event && event.points && event.points[0];
        if (point && typeof point.customdata === "string") openDetail(point.customdata);
      });
      div.dataset.clickBound = "1";
    }
  }

  let plotsSignature = "";

  // Plots redraw only when their inputs changed; Plotly.react keeps zoom through uirevision.
  function renderPlots(force = false) {
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

  // ---------------------------------------------------------------------------------------
  // Trial detail

  const detailLoaded = { id: null, signature: "" };

  function closeDetail() {
    view.detailId = null;
    detailLoaded.id = null;
    const dialog = $("trial-detail");
    if (dialog.open) dialog.close();
  }

  function openDetail(id) {
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

  async function renderDetail() {
    const id = view.detailId;
    if (!id) return;
    let trial = view.trialsById.get(id);
    if (!trial) {
      try {
        trial = (await getJson(`${API}/trials/${encodeURIComponent(id)}`)).data;
      } catch (failure) {
        $("detail-id").textContent = id;
        $("detail-error-section").hidden = false;
        $("detail-error").textContent = failure.message;
        return;
      }
    }
    if (view.detailId !== id) return;
    $("detail-id").textContent = trial.id;
    $("detail-state").replaceChildren(stateBadge(trial));
    const model = trial.model
      ? el(
          "a",
          {
            class: "button secondary",
            href: `${API}/trials/${encodeURIComponent(trial.id)}/model`,
            download: `${trial.id}.pt`,
            "data-testid": "detail-model",
          },
          `Download model (${formatBytes(trial.model.size)})`,
        )
      : null;
    const facts = [
      `attempts ${trial.attempts}`,
      trial.worker ? `worker ${workerName(trial.worker)}` : null,
      trial.started_at ? `started ${formatTime(trial.started_at)}` : null,
      trial.finished_at ? `finished ${formatTime(trial.finished_at)}` : null,
      trialDurationSeconds(trial) !== null ? `took ${formatDuration(trialDurationSeconds(trial))}` : null,
      trial.in_config === false ? "no longer in the config" : null,
    ].filter(Boolean);
    $("detail-actions").replaceChildren(
      ...actionButtons(trial, false),
      ...(model ? [model] : []),
      el("span", { class: "muted" }, facts.join(" · ")),
    );
    keyValueList($("detail-hyperparameters"), trial.hyperparameters);
    keyValueList($("detail-results"), trial.results);
    const failed = Boolean(trial.error || trial.traceback);
    $("detail-error-section").hidden = !failed;
    $("detail-error").textContent = trial.error || "";
    $("detail-traceback").textContent = trial.traceback || "";
    $("detail-traceback").hidden = !trial.traceback;

    // Attempts and the log change only while the trial runs or when its state changes.
    const signature = JSON.stringify([trial.state, trial.attempts, trial.finished_at, trial.worker]);
    if (detailLoaded.id === id && detailLoaded.signature === signature && trial.state !== "running") return;
    detailLoaded.id = id;
    detailLoaded.signature = signature;
    await Promise.all([renderAttempts(id), renderLog(id)]);
  }

  async function renderAttempts(id) {
    const body = $("detail-attempts");
    let attempts;
    try {
      attempts = (await getJson(`${API}/trials/${encodeURIComponent(id)}/attempts`)).data;
    } catch (failure) {
      if (view.detailId !== id) return;
      body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "muted" }, `attempt history unavailable (${failure.message})`)));
      return;
    }
    if (view.detailId !== id) return;
    if (!attempts || attempts.length === 0) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "Not handed out yet.")));
      return;
    }
    const outcomeState = { running: "running", done: "done", failed: "failed", cancelled: "cancelled", expired: "failed", released: "pending" };
    body.replaceChildren(
      ...attempts.map((attempt) =>
        el(
          "tr",
          {},
          el("td", { class: "numeric" }, String(attempt.attempt)),
          el("td", { title: attempt.worker || "" }, workerName(attempt.worker)),
          el("td", {}, formatTime(attempt.started_at)),
          el("td", {}, formatTime(attempt.ended_at)),
          el("td", {}, el("span", { class: `badge state-${outcomeState[attempt.outcome] || "pending"}` }, attempt.outcome || "")),
          el("td", { class: "long", title: attempt.error || "" }, attempt.error || ""),
        ),
      ),
    );
  }

  async function renderLog(id) {
    const pre = $("detail-log");
    let text;
    try {
      text = await getText(`${API}/trials/${encodeURIComponent(id)}/log`);
    } catch (failure) {
      if (view.detailId !== id) return;
      pre.textContent = failure.status === 404 ? "No output yet." : `log unavailable (${failure.message})`;
      return;
    }
    if (view.detailId !== id) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent =
      text.length > LOG_TAIL_CHARS
        ? `… (${text.length - LOG_TAIL_CHARS} earlier characters not shown)\n${text.slice(-LOG_TAIL_CHARS)}`
        : text || "No output yet.";
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  // ---------------------------------------------------------------------------------------
  // Actions

  async function runAction(description, method, url, body) {
    try {
      const answer = await send(method, url, body);
      if (answer && Array.isArray(answer.changed)) {
        notify(`${description}: ${answer.changed.length} trial${answer.changed.length === 1 ? "" : "s"}`);
      } else {
        notify(description);
      }
    } catch (failure) {
      notify(`${description} failed: ${failure.message}`, true);
    }
    refresh();
  }

  function retryTrial(id) {
    return runAction(`Retried ${id}`, "POST", `${API}/trials/${encodeURIComponent(id)}/retry`);
  }

  function cancelTrial(id) {
    return runAction(`Cancelled ${id}`, "POST", `${API}/trials/${encodeURIComponent(id)}/cancel`);
  }

  function experimentAction(action, body, description) {
    if (!view.experiment) return Promise.resolve();
    return runAction(description, "POST", `${API}/experiments/${encodeURIComponent(view.experiment)}/${action}`, body);
  }

  function onTrialAction(event) {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const id = target.dataset.trialId;
    switch (target.dataset.action) {
      case "open":
        openDetail(id);
        break;
      case "retry":
        target.disabled = true;
        retryTrial(id);
        break;
      case "cancel":
        target.disabled = true;
        cancelTrial(id);
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Polling

  let pollTimer = null;
  let renderedExperiments = null;
  let polling = false;
  let pollAgain = false;

  async function poll() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    clearTimeout(pollTimer);
    try {
      const experiments = await getJson(`${API}/experiments`);
      view.experiments = experiments.data || [];
      if (!view.experiment || !view.experiments.some((experiment) => experiment.name === view.experiment)) {
        const preferred = view.experiments.find((experiment) => experiment.active) || view.experiments[0];
        view.experiment = preferred ? preferred.name : null;
      }
      const name = view.experiment;
      const [trials, workers] = await Promise.all([
        name ? getJson(`${API}/experiments/${encodeURIComponent(name)}/trials`) : Promise.resolve({ changed: true, data: [] }),
        getJson(`${API}/workers`),
      ]);
      if (name !== view.experiment) return;
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
      setConnection(true);
    } catch (failure) {
      if (failure.status !== 401) setConnection(false, failure.message);
    } finally {
      polling = false;
      if (pollAgain) {
        pollAgain = false;
        pollTimer = setTimeout(poll, 0);
      } else {
        pollTimer = setTimeout(poll, document.hidden ? POLL_MS * 5 : POLL_MS);
      }
    }
  }

  function refresh() {
    poll();
  }

  // ---------------------------------------------------------------------------------------
  // Wiring

  function rerenderTable() {
    computeBest();
    computeVisible();
    renderTrials();
  }

  function wire() {
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
    $("trial-detail").addEventListener("close", () => {
      view.detailId = null;
      detailLoaded.id = null;
    });
    $("trial-detail").addEventListener("click", (event) => {
      if (event.target === event.currentTarget) closeDetail();
    });

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

    $("logout").addEventListener("click", async () => {
      try {
        await send("DELETE", `${API}/session`);
      } catch (failure) {
        if (failure.status !== 401) notify(`Log out failed: ${failure.message}`, true);
      }
      location.reload();
    });

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    // Plotly's own script is deferred before this one, but a slow load must not leave the
    // plots empty.
    window.addEventListener("load", () => renderPlots(true));
  }

  wire();
  poll();
})();
