"""The worker protocol, driven by a plain HTTP client."""

from __future__ import annotations

import hashlib
import time

import requests
from conftest import claim, grid_config, register


def upload_model(server, lease, data: bytes, sha: str | None = None, **headers):
    return requests.put(
        f"{server.url}/api/v1/trials/{lease['id']}/model",
        data=data,
        headers={
            **server.auth(),
            "X-Gridexp-Lease-Token": lease["lease_token"],
            "X-Gridexp-Sha256": sha or hashlib.sha256(data).hexdigest(),
            **headers,
        },
        timeout=30,
    )


def experiment_dir_of(server):
    return server.directory


def test_register_hands_out_the_config(server):
    response = server.post("/api/v1/workers", {"host": "h", "pid": 12, "devices": ["cuda:0"]})
    assert response.status_code == 201
    body = response.json()
    assert body["experiment_name"] == "sentiment_analysis1"
    assert body["config"]["dataset"] == "imdb.pt"
    assert body["config"]["hyperparameters"]["batch_size"] == [128, 64]
    assert body["lease_seconds"] == 30 and 0 < body["heartbeat_seconds"] < 30


def test_full_cycle_until_the_grid_is_exhausted(server):
    worker = register(server)
    seen = []
    while True:
        outcome = claim(server, worker)
        lease = outcome["trial"]
        if lease is None:
            assert outcome["pending"] == 0 and outcome["running"] == 0
            break
        assert lease["attempt"] == 1
        beat = server.post(
            f"/api/v1/trials/{lease['id']}/heartbeat", {"lease_token": lease["lease_token"]}
        )
        assert beat.status_code == 200 and beat.json()["stop"] is False
        metrics = server.post(
            f"/api/v1/trials/{lease['id']}/metrics",
            {
                "lease_token": lease["lease_token"],
                "points": [
                    {"step": 1, "values": {"loss": 1.0}},
                    {"step": 2, "values": {"loss": 0.5}},
                ],
            },
        )
        assert metrics.status_code == 200, metrics.text
        done = server.post(
            f"/api/v1/trials/{lease['id']}/complete",
            {"lease_token": lease["lease_token"], "results": {"score": len(seen)}},
        )
        assert done.status_code == 200, done.text
        seen.append(lease["id"])
    assert len(seen) == len(set(seen)) == 8
    trials = server.get("/api/v1/experiments/sentiment_analysis1/trials").json()
    assert all(t["state"] == "done" for t in trials)
    by_id = {t["id"]: t for t in trials}
    assert [by_id[i]["results"]["score"] for i in seen] == list(range(8))
    points = server.get(f"/api/v1/trials/{seen[0]}/metrics").json()
    assert [(p["step"], p["values"]["loss"]) for p in points] == [(1, 1.0), (2, 0.5)]
    counts = server.get("/api/v1/experiments").json()[0]["counts"]
    assert counts == {"pending": 0, "running": 0, "done": 8, "failed": 0, "cancelled": 0}


def test_fail_release_and_wrong_leases(server):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    wrong = {"lease_token": "0" * 32, "results": {}}
    for action in ("heartbeat", "complete", "release"):
        response = server.post(f"/api/v1/trials/{lease['id']}/{action}", wrong)
        assert response.status_code == 409, action
        assert response.json()["detail"]["stop"] is True
    released = server.post(
        f"/api/v1/trials/{lease['id']}/release", {"lease_token": lease["lease_token"]}
    )
    assert released.status_code == 200
    trial = server.get(f"/api/v1/trials/{lease['id']}").json()
    assert trial["state"] == "pending" and trial["attempts"] == 0

    again = claim(server, worker)["trial"]
    assert again["id"] == lease["id"] and again["attempt"] == 1
    failed = server.post(
        f"/api/v1/trials/{again['id']}/fail",
        {
            "lease_token": again["lease_token"],
            "error": "ValueError: bad batch",
            "traceback": "Traceback (most recent call last):\n  ...\nValueError: bad batch",
        },
    )
    assert failed.status_code == 200
    trial = server.get(f"/api/v1/trials/{again['id']}").json()
    assert trial["state"] == "failed" and trial["error"] == "ValueError: bad batch"
    assert "Traceback" in trial["traceback"]
    late = server.post(
        f"/api/v1/trials/{again['id']}/complete",
        {"lease_token": again["lease_token"], "results": {}},
    )
    assert late.status_code == 409


def test_an_expired_lease_is_fenced_and_the_trial_completed_once(start_server, tmp_path):
    directory = tmp_path / "exp"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("fence", 1))
    server = start_server(directory, "--lease-seconds", "2")
    slow, fast = register(server, "slow"), register(server, "fast")
    first = claim(server, slow)["trial"]
    assert upload_model(server, first, b"model of the first attempt").status_code == 200
    model_file = experiment_dir_of(server) / "models" / f"{first['id']}.pt"
    assert model_file.exists()
    deadline = time.monotonic() + 30
    second = None
    while second is None and time.monotonic() < deadline:
        time.sleep(0.3)
        second = claim(server, fast)["trial"]
    assert second is not None and second["id"] == first["id"]
    assert second["attempt"] == 2 and second["lease_token"] != first["lease_token"]
    # The first attempt's model must not pass for the second's.
    assert not model_file.exists()
    assert server.get(f"/api/v1/trials/{first['id']}/model").status_code == 404
    late = server.post(
        f"/api/v1/trials/{first['id']}/complete",
        {"lease_token": first["lease_token"], "results": {"who": "slow"}},
    )
    assert late.status_code == 409
    assert upload_model(server, first, b"slow model").status_code == 409
    ok = server.post(
        f"/api/v1/trials/{second['id']}/complete",
        {"lease_token": second["lease_token"], "results": {"who": "fast"}},
    )
    assert ok.status_code == 200
    trial = server.get(f"/api/v1/trials/{first['id']}").json()
    assert trial["results"] == {"who": "fast"} and trial["worker"] == fast


def test_model_upload_is_verified_stored_and_served(server, experiment_dir):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    data = bytes(range(256)) * 4096  # 1 MiB
    corrupt = upload_model(server, lease, data, sha="0" * 64)
    assert corrupt.status_code == 400 and "SHA-256" in corrupt.json()["error"]
    assert not (experiment_dir / "models" / f"{lease['id']}.pt").exists()

    stored = upload_model(server, lease, data)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert (experiment_dir / "models" / f"{lease['id']}.pt").read_bytes() == data
    assert list((experiment_dir / "models" / ".incoming").iterdir()) == []

    download = server.get(f"/api/v1/trials/{lease['id']}/model")
    assert download.status_code == 200 and download.content == data
    etag = download.headers["ETag"]
    assert (
        server.get(
            f"/api/v1/trials/{lease['id']}/model", headers={"If-None-Match": etag}
        ).status_code
        == 304
    )
    part = server.get(f"/api/v1/trials/{lease['id']}/model", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    trial = server.get(f"/api/v1/trials/{lease['id']}").json()
    assert trial["model"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_model_upload_needs_its_headers(server):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    response = requests.put(
        f"{server.url}/api/v1/trials/{lease['id']}/model",
        data=b"x",
        headers=server.auth(),
        timeout=10,
    )
    assert response.status_code == 400 and "X-Gridexp-Sha256" in response.json()["error"]


def test_upload_over_the_limit_is_refused(start_server, experiment_dir):
    server = start_server(experiment_dir, "--max-upload-mb", "1")
    worker = register(server)
    lease = claim(server, worker)["trial"]
    big = b"\0" * (2 << 20)
    response = upload_model(server, lease, big)
    assert response.status_code == 413
    assert not (experiment_dir / "models" / f"{lease['id']}.pt").exists()

    def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(4):
            yield b"\0" * (1 << 19)

    try:
        streamed = upload_model(server, lease, chunks(), sha=hashlib.sha256(big).hexdigest())
        assert streamed.status_code == 413
    except requests.ConnectionError:
        pass  # the server may close the connection before reading the rest
    assert not (experiment_dir / "models" / f"{lease['id']}.pt").exists()
    assert server.get("/healthz").status_code == 200


def test_malformed_requests_get_a_clear_400_and_change_nothing(server):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    url = f"{server.url}/api/v1/trials/{lease['id']}/complete"
    for body in (b"{not json", b"[1, 2]", b'{"results": {}}', b'{"lease_token": 5}'):
        response = requests.post(url, data=body, headers=server.auth(), timeout=10)
        assert response.status_code == 400, body
        assert response.json()["error"]
    missing_results = server.post(
        f"/api/v1/trials/{lease['id']}/complete", {"lease_token": lease["lease_token"]}
    )
    assert missing_results.status_code == 400
    trial = server.get(f"/api/v1/trials/{lease['id']}").json()
    assert trial["state"] == "running"
    unknown = server.post(
        "/api/v1/trials/0000000000000000/complete", {"lease_token": "x", "results": {}}
    )
    assert unknown.status_code == 404
    assert server.post("/api/v1/workers/nobody/claim", {}).status_code == 404


def test_logs_are_appended_under_the_lease_and_served(server, experiment_dir):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    url = f"{server.url}/api/v1/trials/{lease['id']}/log"
    assert server.get(f"/api/v1/trials/{lease['id']}/log").status_code == 404
    headers = {**server.auth(), "X-Gridexp-Lease-Token": lease["lease_token"]}
    for chunk in ("epoch 1\n", "epoch 2 ünïcode\n"):
        assert requests.post(url, data=chunk.encode(), headers=headers, timeout=10).ok
    wrong = {**server.auth(), "X-Gridexp-Lease-Token": "0" * 32}
    assert requests.post(url, data=b"intruder\n", headers=wrong, timeout=10).status_code == 409
    log = server.get(f"/api/v1/trials/{lease['id']}/log")
    assert log.status_code == 200
    assert log.text == "epoch 1\nepoch 2 ünïcode\n"
    assert (experiment_dir / "logs" / f"{lease['id']}.log").read_text() == log.text


def test_claims_report_progress_and_config_is_readable(server):
    worker = register(server)
    first = claim(server, worker)
    assert (first["pending"], first["running"], first["done"], first["total"]) == (7, 1, 0, 8)
    lease = first["trial"]
    server.post(
        f"/api/v1/trials/{lease['id']}/complete",
        {"lease_token": lease["lease_token"], "results": {}},
    )
    second = claim(server, worker)
    assert (second["pending"], second["running"], second["done"]) == (6, 1, 1)
    config = server.get("/api/v1/config").json()
    assert config["experiment_name"] == "sentiment_analysis1"
    assert config["config"]["dataset"] == "imdb.pt"


def test_oversized_json_bodies_are_refused_before_they_are_read(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            (
                "POST /api/v1/workers HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {server.password}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
            ).encode()
        )
        answer = b""
        while chunk := connection.recv(4096):  # the server closes after refusing
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413")
    assert "limited to 1 MiB" in answer
    assert server.get("/api/v1/workers").json() == []


def test_a_claim_sent_again_with_its_id_gets_the_same_lease(server):
    worker = register(server)
    path = f"/api/v1/workers/{worker}/claim"
    first = server.post(path, {"claim_id": "retry-me-1"}).json()["trial"]
    again = server.post(path, {"claim_id": "retry-me-1"}).json()["trial"]
    assert first["resumed"] is False
    assert again["resumed"] is True
    assert (again["id"], again["lease_token"], again["attempt"]) == (
        first["id"],
        first["lease_token"],
        1,
    )
    # A new claim id is a new claim; a claim without one is too.
    second = server.post(path, {"claim_id": "retry-me-2"}).json()["trial"]
    third = claim(server, worker)["trial"]
    assert len({first["id"], second["id"], third["id"]}) == 3
    attempts = server.get(f"/api/v1/trials/{first['id']}/attempts").json()
    assert len(attempts) == 1
    metrics = server.get("/metrics").text
    assert "gridexp_claims_total 3\n" in metrics  # the resumed claim is not counted again


def test_a_malformed_claim_id_is_refused(server):
    worker = register(server)
    for claim_id in ["", "x" * 65, "has space", "ünïcode", 42, None]:
        response = server.post(f"/api/v1/workers/{worker}/claim", {"claim_id": claim_id})
        assert response.status_code == 400, claim_id
        assert "claim_id" in response.json()["error"]
    assert claim(server, worker)["trial"]["attempt"] == 1


def test_a_completion_can_claim_the_next_trial(server):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    seen = []
    while lease is not None:
        seen.append(lease["id"])
        done = server.post(
            f"/api/v1/trials/{lease['id']}/complete",
            {
                "lease_token": lease["lease_token"],
                "results": {"score": len(seen)},
                "next_claim_id": f"next-{len(seen)}",
            },
        )
        assert done.status_code == 200, done.text
        answer = done.json()
        assert answer["ok"] is True
        following = answer["next"]
        assert following["done"] == len(seen) and following["total"] == 8
        lease = following["trial"]
    assert len(seen) == len(set(seen)) == 8
    assert following["pending"] == following["running"] == 0
    trials = server.get("/api/v1/experiments/sentiment_analysis1/trials").json()
    assert sorted(t["results"]["score"] for t in trials) == list(range(1, 9))
    metrics = server.get("/metrics").text
    assert "gridexp_claims_total 8\n" in metrics
    assert "gridexp_completions_total 8\n" in metrics


def test_a_completion_whose_answer_was_lost_hands_its_next_lease_to_the_claim_id(server):
    worker = register(server)
    first = claim(server, worker)["trial"]
    body = {"lease_token": first["lease_token"], "results": {}, "next_claim_id": "after-first"}
    path = f"/api/v1/trials/{first['id']}/complete"
    next_lease = server.post(path, body).json()["next"]["trial"]
    # Sent again: the completion is already recorded (409) and claims nothing more ...
    again = server.post(path, body)
    assert again.status_code == 409 and "already done" in again.json()["error"]
    # ... and the claim the worker then sends with that id gets the lease it made.
    resumed = server.post(f"/api/v1/workers/{worker}/claim", {"claim_id": "after-first"})
    trial = resumed.json()["trial"]
    assert trial["resumed"] is True
    assert (trial["id"], trial["lease_token"]) == (next_lease["id"], next_lease["lease_token"])
    assert resumed.json()["running"] == 1


def test_a_malformed_next_claim_id_is_refused_and_completes_nothing(server):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    for claim_id in ["", "x" * 65, "has space", 42, None]:
        response = server.post(
            f"/api/v1/trials/{lease['id']}/complete",
            {"lease_token": lease["lease_token"], "results": {}, "next_claim_id": claim_id},
        )
        assert response.status_code == 400, claim_id
        assert "next_claim_id" in response.json()["error"]
    assert server.get(f"/api/v1/trials/{lease['id']}").json()["state"] == "running"
