// Short-lived messages and the connection status in the top bar.
import { $, el } from "./dom.js";

export function notify(text, isError = false) {
  const message = el("div", { class: `message${isError ? " error" : ""}`, role: isError ? "alert" : null }, text);
  $("messages").append(message);
  setTimeout(() => message.remove(), isError ? 8000 : 4000);
}

export function setConnection(ok, detail) {
  const status = $("connection-status");
  status.classList.toggle("live", ok);
  status.classList.toggle("offline", !ok);
  status.textContent = ok
    ? `live · updated ${new Date().toLocaleTimeString()}`
    : `server unreachable (${detail}) · retrying`;
}
