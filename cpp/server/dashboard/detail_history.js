// The trial detail's attempt history and log, fetched while the dialog is open.
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
    body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "muted" }, `attempt history unavailable (${failure.message})`)));
    return;
  }
  if (view.detailId !== id) return;
  if (!attempts || attempts.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "Not handed out yet.")));
    return;
  }
  const outcomeState = { running: "running", done: "done", failed: "failed", cancelled: "cancelled", expired: "failed", lost: "failed", released: "pending" };
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
