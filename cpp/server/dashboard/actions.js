// Retry and cancel, for one trial, the selected trials or the whole experiment.
import { send } from "./api.js";
import { API } from "./constants.js";
import { openDetail } from "./detail.js";
import { notify } from "./messages.js";
import { refresh } from "./poll.js";
import { view } from "./state.js";

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

export function experimentAction(action, body, description) {
  if (!view.experiment) return Promise.resolve();
  return runAction(description, "POST", `${API}/experiments/${encodeURIComponent(view.experiment)}/${action}`, body);
}

export function onTrialAction(event) {
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
