#!/usr/bin/env python3
"""Screenshot of the dashboard mid-run, for the README (docs/dashboard.png).

Runs a small made-up training grid with a real gridexp-server and three real workers in a
temporary directory, logs in with headless Chromium (Playwright), waits until some trials are
done, one failed and others still run, ticks a few trials for the metric curves and saves a
full-page screenshot 1400 pixels wide. Everything it started is stopped at the end.

    .venv/bin/python scripts/screenshot-dashboard.py [--out docs/dashboard.png]

gridexp-server and gridexp-worker come from PATH (or GRIDEXP_SERVER), Chromium from
/usr/bin/chromium (or GRIDEXP_CHROMIUM).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests
from playwright.sync_api import expect, sync_playwright

PASSWORD = "screenshot-password"

CONFIG = textwrap.dedent(
    """\
    experiment_name: cifar_sweep
    dataset: cifar10
    hyperparameters:
      learning_rate: [0.001, 0.003, 0.01, 0.1]
      optimizer: ['adam', 'sgd']
      batch_size: [64, 256]
      epochs: [12]
    """
)

# A pretend training loop: a loss curve that depends on the hyperparameters, reported each
# epoch; sgd with the largest learning rate diverges.
EXPERIMENT = textwrap.dedent(
    """\
    import math, time
    import gridexp

    def init_dataset(config):
        return config["dataset"]

    def run_one(hyperparameters, dataset):
        lr = hyperparameters["learning_rate"]
        adam = hyperparameters["optimizer"] == "adam"
        batch = hyperparameters["batch_size"]
        rate = (0.25 if adam else 0.12) * (1 + 8 * lr) * (1.2 if batch == 64 else 1.0)
        floor = 0.35 + abs(math.log10(lr) + 2.3) * 0.12
        print(f"training on {dataset}: {hyperparameters}", flush=True)
        loss = 2.3
        for epoch in range(hyperparameters["epochs"]):
            loss = floor + (loss - floor) * math.exp(-rate)
            if lr >= 0.1 and not adam and epoch == 5:
                raise FloatingPointError("loss diverged to nan at epoch 5")
            gridexp.report(step=epoch, loss=round(loss, 4), val_loss=round(loss * 1.08, 4))
            print(f"epoch {epoch}: loss {loss:.4f}", flush=True)
            time.sleep(0.25 if batch == 256 else 0.35)
        return {"val_loss": loss * 1.08, "val_accuracy": 1 - loss / 2.6}, None
    """
)


def server_binary() -> str:
    found = os.environ.get("GRIDEXP_SERVER") or shutil.which("gridexp-server")
    if not found:
        sys.exit("gridexp-server is not on PATH (activate the venv, or set GRIDEXP_SERVER)")
    return found


def start_server(directory: Path, environment: dict[str, str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [server_binary(), str(directory), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    for line in process.stdout:
        if match := re.search(r"listening on (http://127\.0\.0\.1:\d+)", line):
            return process, match.group(1)
    sys.exit(f"gridexp-server exited with {process.wait()}")


def counts(url: str) -> dict[str, int]:
    answer = requests.get(
        url + "/api/v1/experiments", headers={"Authorization": f"Bearer {PASSWORD}"}, timeout=10
    )
    return answer.json()[0]["counts"]


def wait_until(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit("the grid did not reach the wanted state in time")
        time.sleep(0.2)


def screenshot(url: str, out: Path) -> None:
    chromium = os.environ.get("GRIDEXP_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#trials-body tr").first).to_be_visible(timeout=30_000)
        page.get_by_test_id("best-metric").select_option("val_accuracy")
        page.get_by_test_id("best-direction").select_option("max")
        wait_until(lambda: counts(url)["done"] >= 7 and counts(url)["failed"] >= 1)
        done = page.locator('#trials-body tr[data-state="done"]')
        for index in range(min(4, done.count())):
            done.nth(index).get_by_role("checkbox").check()
        expect(page.get_by_test_id("plot-curves")).not_to_have_attribute(
            "data-trace-count", "0", timeout=30_000
        )
        # One more poll, so the running trials' durations and the heartbeats are fresh.
        status = page.get_by_test_id("connection-status").inner_text()
        expect(page.get_by_test_id("connection-status")).not_to_have_text(status, timeout=10_000)
        page.mouse.move(0, 0)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    arguments = parser.parse_args()

    environment = dict(os.environ, GRIDEXP_PASSWORD=PASSWORD)
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="gridexp-screenshot-") as temporary:
        root = Path(temporary)
        directory = root / "experiment"
        directory.mkdir()
        (directory / "config.yaml").write_text(CONFIG)
        (directory / "experiment.py").write_text(EXPERIMENT)
        try:
            server, url = start_server(directory, environment)
            processes.append(server)
            worker = shutil.which("gridexp-worker")
            if not worker:
                sys.exit("gridexp-worker is not on PATH")
            for number in range(3):
                processes.append(
                    subprocess.Popen(
                        [
                            worker,
                            f"--address={url}",
                            f"--workdir={root / f'worker{number}'}",
                            "--download_scripts",
                            "--raise_on_failure=False",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env=environment,
                        start_new_session=True,
                    )
                )
            screenshot(url, arguments.out)
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
