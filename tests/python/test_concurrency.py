"""Many clients at once: every trial is claimed exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import requests
from conftest import grid_config


def test_fifty_concurrent_clients_claim_every_trial_exactly_once(start_server, tmp_path):
    directory = tmp_path / "exp"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("crowd", 500))
    server = start_server(directory)
    claimed: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def client(number: int) -> None:
        session = server.session()
        try:
            worker = session.post(
                f"{server.url}/api/v1/workers", json={"host": f"client-{number}"}, timeout=60
            ).json()["worker_id"]
            start.wait()
            while True:
                outcome = session.post(
                    f"{server.url}/api/v1/workers/{worker}/claim", json={}, timeout=60
                ).json()
                lease = outcome["trial"]
                if lease is None:
                    return
                done = session.post(
                    f"{server.url}/api/v1/trials/{lease['id']}/complete",
                    json={"lease_token": lease["lease_token"], "results": {"by": number}},
                    timeout=60,
                )
                with lock:
                    claimed.append(lease["id"])
                    if done.status_code != 200:
                        errors.append(done.text)
        except (requests.RequestException, KeyError, ValueError) as error:  # reported below
            with lock:
                errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    duplicates = [trial for trial, count in Counter(claimed).items() if count > 1]
    assert duplicates == []
    assert len(claimed) == 500
    counts = server.get("/api/v1/experiments").json()[0]["counts"]
    assert counts == {"pending": 0, "running": 0, "done": 500, "failed": 0, "cancelled": 0}
