// The trial detail's attempt history and log, fetched while the dialog is open. Each attempt
// shows how it ended (a preempted one: its worker was stopped and handed the trial back, not
// counted) and the checkpoint step it resumed from.
import { getJson, getText } from "./api.js";
import { API, LOG_TAIL_CHARS } from "./constants.js";
import { $, el } from "./dom.js";
import { formatTime } from "./format.js";
import { view } from "./state.js";
import { workerName } from "./workers.js";

export async function renderAttempts(id) {
  const body = $("detail-attempts");
  let attempts;
  try {
    attempts = (await getJson(`${API}/trials/${encodeURIComponent(id)}/attempts`)).data;
  } catch (failure) {
    if (view.detailId !== id) return;
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, `attempt history unavailable (${failure.message})`)));
    return;
  }
  if (view.detailId !== id) return;
  if (!attempts || attempts.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "Not handed out yet.")));
    return;
  }
  const outcomeState = { running: "running", done: "done", failed: "failed", cancelled: "cancelled", expired: "failed", lost: "failed", released: "pending", preempted: "pending" };
  body.replaceChildren(
    ...attempts.map((attempt) =>
      el(
        "tr",
        {},
        el("td", { class: "numeric" }, String(attempt.attempt)),
        el("td", { title: attempt.worker || "" }, workerName(attempt.worker)),
        el("td", {}, formatTime(attempt.started_at)),
        el("td", {}, formatTime(attempt.ended_at)),
        el("td", {}, el("span", { class: `badge state-${outcomeState[attempt.outcome] || "pending"} outcome-${attempt.outcome}`, "data-testid": "attempt-outcome" }, attempt.outcome || "")),
        el("td", { "data-testid": "attempt-resumed" }, resumedFrom(attempt)),
        el("td", { class: "long", title: attempt.error || "" }, attempt.error || ""),
      ),
    ),
  );
}

// "resumed from step N"; "resumed from a checkpoint" when it had no step; "" for a fresh start.
function resumedFrom(attempt) {
  if (!attempt.resumed) return "";
  return attempt.resumed_from_step === null || attempt.resumed_from_step === undefined
    ? "resumed from a checkpoint"
    : `resumed from step ${attempt.resumed_from_step}`;
}

export async function renderLog(id) {
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
