// Pure functions that turn the API's values into text and numbers: no DOM, no state.

// JSON numbers, plus the strings the server uses for non-finite floats.
export function asNumber(value) {
  if (typeof value === "number") return value;
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return null;
}

export function formatNumber(value) {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e6 || magnitude < 1e-3)) return value.toExponential(3);
  return String(Number(value.toPrecision(5)));
}

export function formatValue(value) {
  if (value === undefined) return "";
  if (value === null) return "null";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

// The canonical text of a hyperparameter value: what the filter compares.
export function valueKey(value) {
  return JSON.stringify(value === undefined ? null : value);
}

// The distinct values of a hyperparameter, numbers in numeric order first, then the rest
// by their text: [{key, text, value}].
export function sortedDistinct(values) {
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

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, "0")} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function formatAgo(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 2) return "just now";
  return `${formatDuration(seconds).replace(/\.\d/, "")} ago`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function trialDurationSeconds(trial) {
  if (!trial.started_at) return null;
  const end = trial.finished_at ? Date.parse(trial.finished_at) : trial.state === "running" ? Date.now() : null;
  if (end === null) return null;
  return Math.max(0, (end - Date.parse(trial.started_at)) / 1000);
}

// Scalar results, nested objects flattened with dots as in trials.csv; lists are left out.
export function flattenScalars(value, prefix, out) {
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

export function guessDirection(metric) {
  return /loss|err|mse|mae|rmse|perplex|time|cost|regret/i.test(metric) ? "min" : "max";
}
