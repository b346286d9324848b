"""A user's actions over HTTP (retry, cancel, attempt history), the dashboard's session login
and static files, the trials list's ETag, and GET /metrics — against a real gridexp-server."""

from __future__ import annotations

import hashlib
import textwrap

import pytest
import requests
from conftest import PASSWORD, claim, grid_config, register, trials_of, wait_for

SEED = "sentiment_analysis1"


def fail(server, trial: dict, error: str = "ValueError: no") -> None:
    body = {"lease_token": trial["lease_token"], "error": error, "traceback": "Traceback: ..."}
    response = server.post(f"/api/v1/trials/{trial['id']}/fail", body)
    assert response.status_code == 200, response.text


def complete(server, trial: dict, results: dict | None = None) -> requests.Response:
    body = {"lease_token": trial["lease_token"], "results": results or {"loss": 0.5}}
    return server.post(f"/api/v1/trials/{trial['id']}/complete", body)


def state_of(server, trial_id: str) -> str:
    return server.get(f"/api/v1/trials/{trial_id}").json()["state"]


# --- retry and cancel -------------------------------------------------------------------


def test_retry_a_failed_trial_then_it_runs_again_as_attempt_one(server):
    worker = register(server)
    trial = claim(server, worker)["trial"]
    fail(server, trial)
    retried = server.post(f"/api/v1/trials/{trial['id']}/retry")
    assert retried.status_code == 200, retried.text
    shown = retried.json()
    assert shown["state"] == "pending"
    assert shown["attempts"] == 0
    assert shown["error"] is None and shown["traceback"] is None
    again = claim(server, worker)["trial"]
    assert again["id"] == trial["id"] and again["attempt"] == 1
    attempts = server.get(f"/api/v1/trials/{trial['id']}/attempts").json()
    assert [a["outcome"] for a in attempts] == ["failed", "running"]
    assert attempts[0]["error"] == "ValueError: no"
    assert attempts[0]["worker"] == worker
    assert attempts[0]["ended_at"].endswith("Z") and attempts[1]["ended_at"] is None


def test_retry_or_cancel_where_it_does_not_apply_is_409_saying_why(server):
    worker = register(server)
    trial = claim(server, worker)["trial"]
    assert complete(server, trial).status_code == 200
    refused = server.post(f"/api/v1/trials/{trial['id']}/retry")
    assert refused.status_code == 409
    assert "only a failed or cancelled trial" in refused.json()["error"]
    assert "done" in refused.json()["error"]
    refused = server.post(f"/api/v1/trials/{trial['id']}/cancel")
    assert refused.status_code == 409
    assert "only a pending or running trial" in refused.json()["error"]
    assert server.post("/api/v1/trials/0123456789abcdef/retry").status_code == 404
    assert server.post("/api/v1/experiments/nope/cancel").status_code == 404


def test_cancel_a_pending_trial_and_it_is_never_handed_out(server):
    trials = trials_of(server, SEED)
    cancelled = server.post(f"/api/v1/trials/{trials[0]['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["error"] == "cancelled by the user"
    worker = register(server)
    handed = [claim(server, worker)["trial"]["id"] for _ in range(7)]
    assert trials[0]["id"] not in handed
    assert claim(server, worker)["trial"] is None
    counts = server.get("/api/v1/experiments").json()[0]["counts"]
    assert counts == {"pending": 0, "running": 7, "done": 0, "failed": 0, "cancelled": 1}


def test_cancel_a_running_trial_stops_it_through_the_heartbeat(server):
    worker = register(server)
    trial = claim(server, worker)["trial"]
    response = server.post(f"/api/v1/trials/{trial['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["state"] == "running" and response.json()["stop_requested"] is True
    again = server.post(f"/api/v1/trials/{trial['id']}/cancel")
    assert again.status_code == 409 and "already being cancelled" in again.json()["error"]
    beat = server.post(
        f"/api/v1/trials/{trial['id']}/heartbeat", {"lease_token": trial["lease_token"]}
    )
    assert beat.status_code == 200 and beat.json()["stop"] is True
    # The worker stops run_one and reports what it had: the trial ends cancelled.
    assert complete(server, trial, {"loss": 0.9}).status_code == 200
    shown = server.get(f"/api/v1/trials/{trial['id']}").json()
    assert shown["state"] == "cancelled" and shown["results"] == {"loss": 0.9}
    attempts = server.get(f"/api/v1/trials/{trial['id']}/attempts").json()
    assert [a["outcome"] for a in attempts] == ["cancelled"]


def test_a_failure_reported_after_a_cancel_says_the_trial_ended_cancelled(server):
    worker = register(server)
    trial = claim(server, worker)["trial"]
    other = claim(server, worker)["trial"]
    assert server.post(f"/api/v1/trials/{trial['id']}/cancel").status_code == 200
    body = {"lease_token": trial["lease_token"], "error": "ValueError: x", "traceback": ""}
    answer = server.post(f"/api/v1/trials/{trial['id']}/fail", body)
    assert answer.json() == {"ok": True, "state": "cancelled"}
    body = {"lease_token": other["lease_token"], "error": "ValueError: y", "traceback": ""}
    answer = server.post(f"/api/v1/trials/{other['id']}/fail", body)
    assert answer.json() == {"ok": True, "state": "failed"}


def test_bulk_actions_take_ids_or_every_applicable_trial(server):
    worker = register(server)
    first = claim(server, worker)["trial"]
    second = claim(server, worker)["trial"]
    fail(server, first)
    fail(server, second)
    trials = trials_of(server, SEED)
    pending = [t["id"] for t in trials if t["state"] == "pending"]

    some = server.post(f"/api/v1/experiments/{SEED}/cancel", {"ids": pending[:2]})
    assert some.status_code == 200 and some.json() == {"changed": pending[:2]}
    everything = server.post(f"/api/v1/experiments/{SEED}/cancel")
    assert everything.json() == {"changed": pending[2:]}
    assert server.post(f"/api/v1/experiments/{SEED}/cancel").json() == {"changed": []}

    retried = server.post(f"/api/v1/experiments/{SEED}/retry", {"ids": [first["id"], "nope"]})
    assert retried.json() == {"changed": [first["id"]]}
    retried = server.post(f"/api/v1/experiments/{SEED}/retry").json()["changed"]
    assert set(retried) == {second["id"], *pending}
    assert all(t["state"] == "pending" for t in trials_of(server, SEED))

    bad = server.post(f"/api/v1/experiments/{SEED}/retry", {"ids": "not-a-list"})
    assert bad.status_code == 400


def test_retry_removes_the_earlier_attempts_model_file(server):
    worker = register(server)
    trial = claim(server, worker)["trial"]
    model = b"weights" * 100

    put = requests.put(
        f"{server.url}/api/v1/trials/{trial['id']}/model",
        data=model,
        headers={
            **server.auth(),
            "X-Gridexp-Lease-Token": trial["lease_token"],
            "X-Gridexp-Sha256": hashlib.sha256(model).hexdigest(),
        },
        timeout=30,
    )
    assert put.status_code == 200, put.text
    fail(server, trial)
    path = server.directory / "models" / f"{trial['id']}.pt"
    assert path.exists()
    assert server.post(f"/api/v1/trials/{trial['id']}/retry").status_code == 200
    assert not path.exists()
    assert server.get(f"/api/v1/trials/{trial['id']}/model").status_code == 404


# --- the trials list's ETag ----------------------------------------------------------------


def test_trials_list_answers_304_until_something_changes(server):
    path = f"/api/v1/experiments/{SEED}/trials"
    first = server.get(path)
    etag = first.headers["ETag"]
    assert server.get(path, headers={"If-None-Match": etag}).status_code == 304
    worker = register(server)
    assert server.get(path, headers={"If-None-Match": etag}).status_code == 200
    etag = server.get(path).headers["ETag"]
    claim(server, worker)
    changed = server.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert any(t["state"] == "running" for t in changed.json())
    etag = changed.headers["ETag"]
    server.post(f"/api/v1/trials/{changed.json()[1]['id']}/cancel")
    assert server.get(path, headers={"If-None-Match": etag}).status_code == 200


def test_a_lease_expiring_changes_the_etag(start_server, experiment_dir):
    server = start_server(experiment_dir, "--lease-seconds", "2")
    worker = register(server)
    claim(server, worker)
    path = f"/api/v1/experiments/{SEED}/trials"
    etag = server.get(path).headers["ETag"]
    wait_for(lambda: server.get(path, headers={"If-None-Match": etag}).status_code == 200, 15)
    assert all(t["state"] == "pending" for t in server.get(path).json())


# --- experiments: ETA and workers online ---------------------------------------------------


def test_experiment_estimates_time_left_once_a_trial_is_done(server):
    before = server.get("/api/v1/experiments").json()[0]
    assert before["eta_seconds"] is None and before["mean_duration_seconds"] is None
    worker = register(server)
    assert complete(server, claim(server, worker)["trial"]).status_code == 200
    after = server.get("/api/v1/experiments").json()[0]
    assert after["mean_duration_seconds"] >= 0
    assert after["eta_seconds"] == pytest.approx(7 * after["mean_duration_seconds"], abs=0.01)
    assert after["workers_online"] == 1
    (shown,) = server.get("/api/v1/workers").json()
    assert shown["online"] is True and shown["trials_done"] == 1


# --- session login, the dashboard and its files --------------------------------------------


def test_login_sets_a_strict_http_only_cookie_that_opens_the_dashboard(server):
    browser = requests.Session()
    wrong = browser.post(f"{server.url}/api/v1/session", json={"password": "nope"}, timeout=30)
    assert wrong.status_code == 401 and "Set-Cookie" not in wrong.headers
    right = browser.post(f"{server.url}/api/v1/session", json={"password": PASSWORD}, timeout=30)
    assert right.status_code == 204
    cookie = right.headers["Set-Cookie"]
    for flag in ("gridexp_session=", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in cookie
    assert PASSWORD not in cookie
    page = browser.get(f"{server.url}/", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert page.headers["X-Frame-Options"] == "DENY"
    for name in ("app.js", "style.css", "plotly.min.js"):
        asset = browser.get(f"{server.url}/static/{name}", timeout=30)
        assert asset.status_code == 200, name
        again = browser.get(
            f"{server.url}/static/{name}", headers={"If-None-Match": asset.headers["ETag"]}
        )
        assert again.status_code == 304, name
    assert browser.get(f"{server.url}/api/v1/experiments", timeout=30).status_code == 200
    assert "Plotly" in browser.get(f"{server.url}/static/plotly.min.js", timeout=30).text[:5000]


def test_changes_with_a_session_cookie_need_the_request_header(server):
    browser = requests.Session()
    browser.post(f"{server.url}/api/v1/session", json={"password": PASSWORD}, timeout=30)
    trial_id = trials_of(server, SEED)[0]["id"]
    forged = browser.post(f"{server.url}/api/v1/trials/{trial_id}/cancel", timeout=30)
    assert forged.status_code == 403 and "X-Gridexp-Request" in forged.json()["error"]
    assert state_of(server, trial_id) == "pending"
    allowed = browser.post(
        f"{server.url}/api/v1/trials/{trial_id}/cancel",
        headers={"X-Gridexp-Request": "1"},
        timeout=30,
    )
    assert allowed.status_code == 200
    logout = browser.delete(
        f"{server.url}/api/v1/session", headers={"X-Gridexp-Request": "1"}, timeout=30
    )
    assert logout.status_code == 204
    assert "Max-Age=0" in logout.headers["Set-Cookie"]
    # The old token is dead on the server, not only forgotten by the browser.
    token = browser.cookies.get("gridexp_session")
    stale = requests.get(
        f"{server.url}/api/v1/experiments", cookies={"gridexp_session": token or "x"}, timeout=30
    )
    assert stale.status_code == 401


def test_without_credentials_a_browser_gets_the_login_form_and_nothing_else(server):
    page = requests.get(f"{server.url}/", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 401
    assert "WWW-Authenticate" not in page.headers
    assert "password" in page.text.lower()
    assert SEED not in page.text
    api = requests.get(f"{server.url}/", timeout=30)
    assert api.status_code == 401 and "Basic" in api.headers["WWW-Authenticate"]
    for path in ("/static/app.js", "/static/plotly.min.js", "/metrics", "/index.html"):
        assert requests.get(f"{server.url}{path}", timeout=30).status_code == 401, path
    forged = requests.get(
        f"{server.url}/api/v1/experiments", cookies={"gridexp_session": "0" * 64}, timeout=30
    )
    assert forged.status_code == 401


def test_basic_auth_opens_the_dashboard_too(server):
    page = requests.get(f"{server.url}/", auth=("anyone", PASSWORD), timeout=30)
    assert page.status_code == 200


def test_a_missing_plotly_js_is_a_warning_and_a_clear_404(start_server, experiment_dir, tmp_path):
    missing = tmp_path / "nowhere" / "plotly.min.js"
    server = start_server(experiment_dir, "--plotly-js", str(missing))
    assert any("plotly.min.js not found" in line for line in server.output)
    response = server.get("/static/plotly.min.js")
    assert response.status_code == 404 and "--plotly-js" in response.json()["error"]
    mine = tmp_path / "plotly.min.js"
    mine.write_text("/* my plotly */")
    second = tmp_path / "second"
    second.mkdir()
    (second / "config.yaml").write_text(grid_config("second", 2))
    other = start_server(second, "--plotly-js", str(mine))
    assert other.get("/static/plotly.min.js").text == "/* my plotly */"


# --- /metrics --------------------------------------------------------------------------------


def test_metrics_parse_as_prometheus_text_and_count_what_happened(server):
    parser = pytest.importorskip("prometheus_client.parser")
    worker = register(server)
    done = claim(server, worker)["trial"]
    assert complete(server, done).status_code == 200
    failed = claim(server, worker)["trial"]
    fail(server, failed)
    response = server.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in parser.text_string_to_metric_families(response.text)}
    trials = {s.labels["state"]: s.value for s in families["gridexp_trials"].samples}
    assert trials == {"pending": 6, "running": 0, "done": 1, "failed": 1, "cancelled": 0}
    assert families["gridexp_claims"].samples[0].value == 2
    assert families["gridexp_completions"].samples[0].value == 1
    assert families["gridexp_failures"].samples[0].value == 1
    assert families["gridexp_workers_online"].samples[0].value == 1
    assert families["gridexp_model_bytes_uploaded"].samples[0].value == 0
    store_calls = families["gridexp_store_calls"].samples[0].value
    assert store_calls >= 6  # register, 2 claims, complete, fail, and this page's reads
    assert 1 <= families["gridexp_store_transactions"].samples[0].value <= store_calls
    assert families["gridexp_store_calls_waiting"].samples[0].value == 0
    histogram = families["gridexp_http_request_duration_seconds"]
    assert histogram.type == "histogram"
    claims = [
        s
        for s in histogram.samples
        if s.name.endswith("_count") and s.labels["route"] == "/api/v1/workers/{id}/claim"
    ]
    assert claims and claims[0].value == 2
    routes = {s.labels["route"] for s in histogram.samples}
    assert not any(trial["id"] in route for route in routes for trial in (done, failed))


# --- a real worker honours a cancel ---------------------------------------------------------

CANCELLABLE = textwrap.dedent(
    """\
    import time
    import gridexp

    def init_dataset(config):
        return None

    def run_one(hyperparameters, dataset):
        if hyperparameters["index"] == 0:
            deadline = time.monotonic() + 120
            while not gridexp.should_stop() and time.monotonic() < deadline:
                time.sleep(0.05)
            return {"stopped": gridexp.should_stop()}, None
        return {"stopped": False}, None
    """
)


def test_a_worker_stops_a_cancelled_trial_and_goes_on(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("cancel", 3))
    (directory / "experiment.py").write_text(CANCELLABLE)
    server = start_server(directory, "--lease-seconds", "3")
    worker = workers(server, tmp_path / "w", "--download_scripts")
    first = wait_for(
        lambda: next((t for t in trials_of(server, "cancel") if t["state"] == "running"), None)
    )
    assert server.post(f"/api/v1/trials/{first['id']}/cancel").status_code == 200
    assert worker.wait(timeout=120) == 0, worker.output()
    trials = {t["id"]: t for t in trials_of(server, "cancel")}
    assert trials[first["id"]]["state"] == "cancelled"
    assert trials[first["id"]]["results"] == {"stopped": True}
    assert sorted(t["state"] for t in trials.values()) == ["cancelled", "done", "done"]
    assert "cancelled" in worker.output()


def test_answers_are_gzip_compressed_never_brotli(server):
    """httplib's Brotli runs at its slowest quality (seconds for a big trials list)."""
    path = f"{server.url}/api/v1/experiments/{SEED}/trials"
    browser_like = requests.get(
        path, headers={**server.auth(), "Accept-Encoding": "gzip, deflate, br, zstd"}, timeout=30
    )
    assert browser_like.headers.get("Content-Encoding") == "gzip"
    assert len(browser_like.json()) == 8
    brotli_only = requests.get(
        path, headers={**server.auth(), "Accept-Encoding": "br"}, timeout=30, stream=True
    )
    assert "Content-Encoding" not in brotli_only.headers


def test_a_page_of_another_site_cannot_make_changes_even_with_basic_credentials(server):
    """A browser adds a remembered Basic login to a form another site posts at the server."""
    trial_id = trials_of(server, SEED)[0]["id"]
    url = f"{server.url}/api/v1/trials/{trial_id}/cancel"
    basic = ("anyone", PASSWORD)
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Origin": server.url},
    ):
        refused = requests.post(url, auth=basic, headers=headers, timeout=30)
        assert refused.status_code == 403, headers
    assert state_of(server, trial_id) == "pending"
    same_origin = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    assert requests.post(url, auth=basic, headers=same_origin, timeout=30).status_code == 200
    # Reading is not a change: another site's page may not read the answer anyway (no CORS).
    assert requests.get(url[: -len("/cancel")], auth=basic, timeout=30).status_code == 200


def test_a_body_without_content_length_is_refused_before_it_is_read(server):
    def endless():
        yield b'{"password": "'
        yield b"x" * 10_000

    login = requests.post(f"{server.url}/api/v1/session", data=endless(), timeout=30)
    assert login.status_code == 411
    chunked = requests.post(
        f"{server.url}/api/v1/experiments/{SEED}/cancel",
        data=iter([b"{}"]),
        headers=server.auth(),
        timeout=30,
    )
    assert chunked.status_code == 411
    assert all(t["state"] == "pending" for t in trials_of(server, SEED))


RAISES_LATER = textwrap.dedent(
    """\
    import time

    def init_dataset(config):
        return None

    def run_one(hyperparameters, dataset):
        if hyperparameters["index"] == 0:
            time.sleep(3)  # never polls should_stop(); the cancel has not reached it
            raise RuntimeError("gave up on its own")
        return {"ok": 1}, None
    """
)


def test_a_trial_failing_after_a_cancel_it_had_not_heard_of_does_not_stop_the_worker(
    start_server, workers, tmp_path
):
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("late", 3))
    (directory / "experiment.py").write_text(RAISES_LATER)
    # A 30 s lease: the first heartbeat (and so the cancel) would reach the worker after 10 s.
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts")  # --raise_on_failure on
    first = wait_for(
        lambda: next((t for t in trials_of(server, "late") if t["state"] == "running"), None)
    )
    assert server.post(f"/api/v1/trials/{first['id']}/cancel").status_code == 200
    assert worker.wait(timeout=120) == 0, worker.output()
    states = {t["id"]: t["state"] for t in trials_of(server, "late")}
    assert states[first["id"]] == "cancelled"
    assert sorted(states.values()) == ["cancelled", "done", "done"]
