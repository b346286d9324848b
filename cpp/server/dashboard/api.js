// The HTTP calls to the server's /api/v1 routes: conditional GETs that keep an ETag per URL,
// state-changing calls with the header that proves they come from this page, and a reload
// to the login form when the session has ended.

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
export async function getJson(url) {
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

export async function getText(url) {
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
export async function send(method, url, body) {
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
