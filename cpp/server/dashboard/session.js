// The session's end from this side: the log-out button. (Logging in is login.html's form,
// which the request gate serves while there is no session; a 401 on any call reloads the page
// into it, see api.js.)
import { send } from "./api.js";
import { API } from "./constants.js";
import { $ } from "./dom.js";
import { notify } from "./messages.js";

export function wireLogout() {
  $("logout").addEventListener("click", async () => {
    try {
      await send("DELETE", `${API}/session`);
    } catch (failure) {
      if (failure.status !== 401) notify(`Log out failed: ${failure.message}`, true);
    }
    location.reload();
  });
}
