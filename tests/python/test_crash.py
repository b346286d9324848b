"""kill -9 of the server mid-run, then a restart: nothing acknowledged is lost or duplicated."""

from __future__ import annotations

import threading
import time

import requests
from conftest import grid_config


def test_kill_9_mid_run_loses_and_duplicates_nothing(start_server, tmp_path):
    directory = tmp_path / "exp"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("crash", 300))
    server = start_server(directory, "--lease-seconds", "5")
    port = server.port
    acknowledged: dict[str, int] = {}  # trial id -> client that got a 200 for its completion
    refused_after_restart: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def call(session, method, path, body):
        """Retries through the outage; returns the response once the server answers."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                return session.request(
                    method, f"http://127.0.0.1:{port}{path}", json=body, timeout=10
                )
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                # Refused while the server is down, or an answer cut short by the kill.
                time.sleep(0.05)
        raise AssertionError("server did not come back")

    errors: list[str] = []

    def client(number: int) -> None:
        try:
            run_client(number)
        except (AssertionError, requests.RequestException, ValueError) as error:
            with lock:
                errors.append(f"client {number}: {error!r}")

    def run_client(number: int) -> None:
        session = server.session()
        worker = call(session, "POST", "/api/v1/workers", {"host": f"c{number}"}).json()[
            "worker_id"
        ]
        while not stop.is_set():
            response = call(session, "POST", f"/api/v1/workers/{worker}/claim", {})
            if response.status_code == 404:  # registered on a server that lost nothing: bug
                raise AssertionError(response.text)
            lease = response.json()["trial"]
            if lease is None:
                if response.json()["running"] == 0:
                    return
                time.sleep(0.1)
                continue
            done = call(
                session,
                "POST",
                f"/api/v1/trials/{lease['id']}/complete",
                {"lease_token": lease["lease_token"], "results": {"by": number}},
            )
            with lock:
                if done.status_code == 200:
                    assert lease["id"] not in acknowledged, "completed twice"
                    acknowledged[lease["id"]] = number
                else:
                    # Applied just before the kill with the answer lost (the retry is refused
                    # as already done), or the lease ran out during the outage.
                    refused_after_restart.append(lease["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL mid-run
    killed_at = len(acknowledged)
    assert 0 < killed_at < 300
    restarted = start_server(directory, "--port", str(port), "--lease-seconds", "5")
    for thread in threads:
        thread.join(timeout=180)
    stop.set()

    assert errors == []
    trials = restarted.get("/api/v1/experiments/crash/trials").json()
    states = {t["id"]: t for t in trials}
    assert len(trials) == 300
    assert all(t["state"] == "done" for t in trials), [t for t in trials if t["state"] != "done"]
    for trial_id, number in acknowledged.items():
        assert states[trial_id]["results"] == {"by": number}
    # Every trial's completion was acknowledged, or its answer was lost in the kill (then the
    # store kept the completion and refused the retry).
    assert set(acknowledged) | set(refused_after_restart) == set(states)
