// The workers panel, and the names the other panels show for a worker id.
import { WORKER_LOST_MS } from "./constants.js";
import { openDetail } from "./detail.js";
import { $, el } from "./dom.js";
import { formatAgo, formatBytes, formatTime, formatValue } from "./format.js";
import { view } from "./state.js";

function workerOnline(worker) {
  if (typeof worker.online === "boolean") return worker.online;
  return Date.now() - Date.parse(worker.last_seen) < WORKER_LOST_MS;
}

export function workerName(id) {
  if (!id) return "";
  const worker = view.workersById.get(id);
  return worker && worker.host ? worker.host : id.slice(0, 8);
}

// One line per GPU of the worker's last heartbeat: "GPU 1: 97% · 3.0 GiB of 80.0 GiB".
function gpuLines(gpus) {
  if (!Array.isArray(gpus)) return [];
  return gpus.map((gpu) =>
    el(
      "div",
      { class: "muted", "data-testid": "worker-gpu" },
      `GPU ${gpu.index}: ${gpu.utilization_percent}% · ${formatBytes(gpu.memory_used_bytes)} of ${formatBytes(gpu.memory_total_bytes)}`,
    ),
  );
}

// "Slurm job 1234_2 on node01 (restart 1)" for a worker in a Slurm job (an array task is
// <array job>_<task>), nothing for one outside Slurm.
function slurmLine(slurm) {
  if (!slurm || !slurm.job_id) return null;
  const isArrayTask = slurm.array_job_id != null && slurm.array_task_id != null;
  const job = isArrayTask ? `${slurm.array_job_id}_${slurm.array_task_id}` : slurm.job_id;
  const node = slurm.node_list ? ` on ${slurm.node_list}` : "";
  const restarts = slurm.restart_count > 0 ? ` (restart ${slurm.restart_count})` : "";
  return el("div", { class: "muted", "data-testid": "worker-slurm" }, `Slurm job ${job}${node}${restarts}`);
}

export function renderWorkers() {
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
        el(
          "td",
          { title: `${worker.id} · pid ${worker.pid ?? "?"} · ${worker.version || ""}` },
          worker.host || worker.id,
          slurmLine(worker.slurm),
        ),
        el("td", { class: "long", title: devices }, devices || "cpu", ...gpuLines(worker.gpus)),
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
