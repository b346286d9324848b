"""The dashboard in a real browser (Playwright driving Debian's headless Chromium) against a
real gridexp-server and real gridexp-workers: log in, watch a grid run live, sort and filter,
plot reported metrics, open a failed trial's traceback and retry it, cancel a pending trial,
download the CSV, log out; and a wrong password gets nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import PASSWORD, claim, register, trials_of

sync_api = pytest.importorskip("playwright.sync_api", reason="setup.sh --tests installs playwright")
expect = sync_api.expect

CHROMIUM = os.environ.get("GRIDEXP_CHROMIUM", "/usr/bin/chromium")
# Generous: a loaded 2-core machine runs the server, workers and Chromium at once.
LIVE_MS = 30_000

# Index 0 runs long enough for a 2 s poll to see it running; index 1 fails on its first
# attempt only (the marker file outlives the worker, so a retry on another worker succeeds);
# every trial reports a loss curve and prints a line with markup that must stay literal.
EXPERIMENT = textwrap.dedent(
    """\
    import os, time
    import gridexp

    def init_dataset(config):
        return config["marker"]

    def run_one(hyperparameters, marker):
        index = hyperparameters["index"]
        print(f"trial of index {index} <b>not bold</b>", flush=True)
        seconds = 3.0 if index == 0 else 0.4
        for step in range(4):
            gridexp.report(step=step, loss=1.0 / (step + 1 + index))
            if gridexp.should_stop():
                break
            time.sleep(seconds / 4)
        if index == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise ValueError("index 1 is cursed")
        return {"loss": 1.0 / (index + 1), "accuracy": index / 10}, None
    """
)

# A hyperparameter whose name and value are markup: the page must show them as text.
HOSTILE_KEY = "note<img src=x onerror=window.__xss=1>"
HOSTILE_VALUE = "<script>window.__xss=2</script>"


def write_experiment(directory: Path, points: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    values = "\n".join(f"    - {i}" for i in range(points))
    (directory / "config.yaml").write_text(
        f"experiment_name: dashboard\nmarker: '{directory / 'failed-once'}'\n"
        f"hyperparameters:\n  index:\n{values}\n"
        f"  '{HOSTILE_KEY}':\n    - '{HOSTILE_VALUE}'\n"
    )
    (directory / "experiment.py").write_text(EXPERIMENT)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (setup.sh --tests installs Debian's)")
    expect.set_options(timeout=LIVE_MS)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # WebGL (Plotly's parallel coordinates) on a machine without a GPU.
            args=["--enable-unsafe-swiftshader", *(["--no-sandbox"] if os.geteuid() == 0 else [])],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    context.set_default_timeout(LIVE_MS)
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert dialogs == [], "the page opened a dialog (injected script?)"
    assert errors == [], errors


def log_in(page, url: str, password: str = PASSWORD) -> None:
    response = page.goto(url + "/")
    assert response.status == 401
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def row(page, trial_id: str):
    return page.locator(f'#trials-body tr[data-trial-id="{trial_id}"]')


def state_of(page, trial_id: str):
    return row(page, trial_id).locator('td[data-column="state"]')


def test_the_dashboard_follows_a_live_grid(start_server, workers, tmp_path, page):
    directory = tmp_path / "server"
    write_experiment(directory, 6)
    server = start_server(directory)
    ids = {t["hyperparameters"]["index"]: t["id"] for t in trials_of(server, "dashboard")}

    log_in(page, server.url)
    assert PASSWORD not in page.url
    expect(page.locator("#trials-body tr")).to_have_count(6)
    cookie = next(c for c in page.context.cookies() if c["name"] == "gridexp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    expect(page.get_by_test_id("progress-pending")).to_have_attribute("data-count", "6")
    expect(page.get_by_test_id("progress-done")).to_have_attribute("data-count", "0")
    expect(page.get_by_test_id("eta")).to_contain_text("estimating")

    # User-controlled text is shown as text, never run.
    header = page.locator(f'#trials-head th[data-column="hp:{HOSTILE_KEY}"]')
    expect(header).to_have_text(HOSTILE_KEY)
    expect(row(page, ids[2]).locator(f'td[data-column="hp:{HOSTILE_KEY}"]')).to_have_text(
        HOSTILE_VALUE
    )

    # Cancel a pending trial: the workers never see it.
    row(page, ids[5]).get_by_role("button", name="Cancel").click()
    expect(state_of(page, ids[5])).to_have_text("cancelled")

    # Sort by index, descending, and scroll down: live updates keep both.
    page.locator('#trials-head th[data-column="hp:index"] button').click()
    page.locator('#trials-head th[data-column="hp:index"] button').click()
    expect(page.locator('#trials-head th[data-column="hp:index"]')).to_have_attribute(
        "aria-sort", "descending"
    )
    expect(page.locator("#trials-body tr").first).to_have_attribute("data-trial-id", ids[5])
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0

    first = workers(server, tmp_path / "w1", "--download_scripts", "--raise_on_failure=False")
    expect(state_of(page, ids[0])).to_have_text("running")
    expect(page.get_by_test_id("progress-running")).to_have_attribute("data-count", "1")
    expect(state_of(page, ids[0])).to_have_text("done")
    expect(page.get_by_test_id("progress-done")).not_to_have_attribute("data-count", "0")
    expect(page.locator("#trials-body tr").first).to_have_attribute("data-trial-id", ids[5])
    expect(page.locator("#trials-body tr").last).to_have_attribute("data-trial-id", ids[0])
    # Rows changed state under the user's eyes without moving the page back to the top.
    assert page.evaluate("window.scrollY") >= scrolled - 60

    # The worker shows up in the workers panel.
    expect(page.get_by_test_id("worker-row").first.get_by_test_id("worker-status")).to_have_text(
        "online"
    )

    # A curve for a trial that reported metrics.
    row(page, ids[0]).get_by_role("checkbox").check()
    expect(page.get_by_test_id("plot-curves")).to_have_attribute("data-trace-count", "1")
    expect(page.locator("#plot-curves .scatterlayer .trace")).to_have_count(1)

    # The failed trial's traceback, then retry it and see it complete.
    expect(state_of(page, ids[1])).to_have_text("failed")
    row(page, ids[1]).get_by_role("button", name=ids[1]).click()
    detail = page.get_by_test_id("trial-detail")
    expect(detail).to_be_visible()
    expect(page.get_by_test_id("detail-error")).to_have_text("ValueError: index 1 is cursed")
    expect(page.get_by_test_id("detail-traceback")).to_contain_text("Traceback")
    expect(page.get_by_test_id("detail-traceback")).to_contain_text("run_one")
    expect(page.get_by_test_id("detail-log")).to_contain_text("trial of index 1 <b>not bold</b>")
    expect(page.get_by_test_id("detail-attempts")).to_contain_text("failed")
    detail.get_by_role("button", name="Retry").click()
    expect(detail.locator("#detail-state")).not_to_have_text("failed")
    # The first worker may have found nothing left and exited before the retry.
    workers(server, tmp_path / "w2", "--download_scripts", "--raise_on_failure=False")
    expect(detail.locator("#detail-state")).to_have_text("done")
    expect(page.get_by_test_id("detail-attempts")).to_contain_text("done")
    detail.get_by_role("button", name="Close").click()
    expect(detail).to_be_hidden()
    expect(state_of(page, ids[1])).to_have_text("done")

    # Filter by a hyperparameter value, then by state.
    page.get_by_test_id("filter-param").select_option("index")
    page.get_by_test_id("filter-value").select_option(label="3")
    expect(page.locator("#trials-body tr")).to_have_count(1)
    expect(page.locator("#trials-body tr")).to_have_attribute("data-trial-id", ids[3])
    page.get_by_test_id("filter-param").select_option("")
    expect(page.locator("#trials-body tr")).to_have_count(6)
    page.get_by_test_id("filter-state-done").uncheck()
    expect(page.locator("#trials-body tr")).to_have_count(1)
    expect(page.locator("#trials-body tr")).to_have_attribute("data-trial-id", ids[5])
    page.get_by_test_id("filter-state-done").check()
    expect(page.locator("#trials-body tr")).to_have_count(6)

    # The best trial by loss (min) is index 4 (index 5 was cancelled).
    page.get_by_test_id("best-metric").select_option("loss")
    page.get_by_test_id("best-direction").select_option("min")
    expect(page.locator("#trials-body tr.best")).to_have_attribute("data-trial-id", ids[4])
    expect(page.get_by_test_id("eta")).to_have_text("finished")
    expect(page.get_by_test_id("progress-done")).to_have_attribute("data-count", "5")
    expect(page.get_by_test_id("progress-cancelled")).to_have_attribute("data-count", "1")

    # The other two plots: hyperparameters against the metric, drawn by Plotly.
    expect(page.locator("#plot-parcoords .parcoords")).to_have_count(1)
    expect(page.get_by_test_id("plot-scatter")).to_have_attribute("data-point-count", "5")
    expect(page.locator("#plot-scatter .scatterlayer .point")).to_have_count(5)

    # The CSV download.
    with page.expect_download() as download_info:
        page.get_by_test_id("download-csv").click()
    text = Path(download_info.value.path()).read_text()
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 6
    assert {r["id"]: r["state"] for r in table} == {
        **{ids[i]: "done" for i in range(5)},
        ids[5]: "cancelled",
    }

    assert page.evaluate("window.__xss") is None
    assert first.wait() == 0, first.output()

    # Logging out ends the session.
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    assert page.request.get(server.url + "/api/v1/experiments").status == 401


def test_the_attempt_history_shows_a_preemption_and_the_step_resumed_from(server, page):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    data = b"weights at step 7"
    stored = requests.put(
        f"{server.url}/api/v1/trials/{lease['id']}/checkpoint",
        data=data,
        headers={
            **server.auth(),
            "X-Gridexp-Lease-Token": lease["lease_token"],
            "X-Gridexp-Sha256": hashlib.sha256(data).hexdigest(),
            "X-Gridexp-Checkpoint-Kind": "object",
            "X-Gridexp-Checkpoint-Step": "7",
        },
        timeout=30,
    )
    assert stored.status_code == 200, stored.text
    preempted = server.post(
        f"/api/v1/trials/{lease['id']}/preempt",
        {"lease_token": lease["lease_token"], "reason": "SIGTERM"},
    )
    assert preempted.json()["state"] == "pending"
    assert claim(server, worker)["trial"]["id"] == lease["id"]

    log_in(page, server.url)
    row(page, lease["id"]).get_by_role("button", name=lease["id"]).click()
    outcomes = page.get_by_test_id("attempt-outcome")
    expect(outcomes).to_have_text(["preempted", "running"])
    expect(outcomes.first).to_have_class(re.compile(r"\boutcome-preempted\b"))
    expect(page.get_by_test_id("attempt-resumed")).to_have_text(["", "resumed from step 7"])
    expect(page.get_by_test_id("detail-attempts")).to_contain_text("SIGTERM")


def test_a_wrong_password_gets_nothing(server, page):
    response = page.goto(server.url + "/")
    assert response.status == 401
    assert "sentiment_analysis1" not in page.content()
    page.get_by_label("Password").fill("not-" + PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("wrong password")
    assert page.context.cookies() == []
    assert "password" not in page.url

    page.context.add_cookies([{"name": "gridexp_session", "value": "forged", "url": server.url}])
    for path in (
        "/",
        "/static/app.js",
        "/static/style.css",
        "/static/plotly.min.js",
        "/api/v1/experiments",
        "/api/v1/experiments/sentiment_analysis1/trials",
        "/api/v1/experiments/sentiment_analysis1/trials.csv",
        "/api/v1/workers",
        "/metrics",
    ):
        answer = page.request.get(server.url + path)
        assert answer.status == 401, path
        assert "sentiment_analysis1" not in answer.text(), path
    answer = page.request.post(
        server.url + "/api/v1/experiments/sentiment_analysis1/cancel",
        headers={"X-Gridexp-Request": "1"},
    )
    assert answer.status == 401
    assert {t["state"] for t in trials_of(server, "sentiment_analysis1")} == {"pending"}

    # A real session still cannot change state without the dashboard's request header.
    session = requests.Session()
    assert session.post(server.url + "/api/v1/session", json={"password": PASSWORD}).ok
    assert session.get(server.url + "/api/v1/experiments").ok
    refused = session.post(server.url + "/api/v1/experiments/sentiment_analysis1/cancel")
    assert refused.status_code == 403
    assert {t["state"] for t in trials_of(server, "sentiment_analysis1")} == {"pending"}

    # Neither password reached the server's log.
    log = "".join(server.output)
    assert PASSWORD not in log and "not-" + PASSWORD not in log


def test_every_module_the_page_imports_is_served_behind_the_password(server):
    """The page loads /static/app.js as an ES module, and the browser fetches every module it
    imports, one request each: each must be served (a module missing from the served list
    would leave the dashboard blank), as JavaScript, with an ETag, and only with credentials."""
    browser = requests.Session()
    assert browser.post(f"{server.url}/api/v1/session", json={"password": PASSWORD}).ok
    page = browser.get(f"{server.url}/", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200
    assert '<script type="module" src="/static/app.js"></script>' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    specifier = re.compile(r"""(?:\bfrom|\bimport)\s*\(?\s*["']([^"']*)["']""")
    seen = {"app.js"}
    to_fetch = ["app.js"]
    while to_fetch:
        name = to_fetch.pop()
        answer = browser.get(f"{server.url}/static/{name}", timeout=30)
        assert answer.status_code == 200, name
        assert answer.headers["Content-Type"].startswith("text/javascript"), name
        assert answer.headers["X-Content-Type-Options"] == "nosniff", name
        again = browser.get(
            f"{server.url}/static/{name}", headers={"If-None-Match": answer.headers["ETag"]}
        )
        assert again.status_code == 304, name
        assert requests.get(f"{server.url}/static/{name}", timeout=30).status_code == 401, name
        for imported in specifier.findall(answer.text):
            assert imported.startswith("./") and "/" not in imported[2:], (name, imported)
            if imported[2:] not in seen:
                seen.add(imported[2:])
                to_fetch.append(imported[2:])
    assert len(seen) > 10, seen
