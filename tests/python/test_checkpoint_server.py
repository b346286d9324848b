"""Checkpoints and preemption on the server (issue 18), driven by a plain HTTP client:
PUT/GET /api/v1/trials/{id}/checkpoint, POST /api/v1/trials/{id}/preempt, the claim's
"checkpoint", the read API and /metrics, and what a crash mid-upload leaves on disk."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from pathlib import Path

import pytest
import requests
from conftest import claim, grid_config, register, wait_for


@pytest.fixture
def ckpt_dir(experiment_dir: Path) -> Path:
    (experiment_dir / "config.yaml").write_text(grid_config("ckpt", 3))
    return experiment_dir


@pytest.fixture
def server(start_server, ckpt_dir):
    return start_server(ckpt_dir, "--max-upload-mb", "1")


def put_checkpoint(server, trial_id, token, data, *, sha=None, step=None, kind="object", **extra):
    headers = {
        **server.auth(),
        "X-Gridexp-Lease-Token": token,
        "X-Gridexp-Sha256": sha or hashlib.sha256(data).hexdigest(),
        **extra,
    }
    if kind is not None:
        headers["X-Gridexp-Checkpoint-Kind"] = kind
    if step is not None:
        headers["X-Gridexp-Checkpoint-Step"] = str(step)
    return requests.put(
        f"{server.url}/api/v1/trials/{trial_id}/checkpoint", data=data, headers=headers, timeout=30
    )


def get_checkpoint(server, trial_id, token):
    return server.get(
        f"/api/v1/trials/{trial_id}/checkpoint", headers={"X-Gridexp-Lease-Token": token}
    )


def checkpoint_files(directory: Path) -> list[str]:
    return sorted(p.name for p in (directory / "checkpoints").iterdir() if p.is_file())


def incoming(directory: Path) -> list[Path]:
    return list((directory / "checkpoints" / ".incoming").iterdir())


def preempt(server, lease, reason="SIGTERM"):
    body = {"lease_token": lease["lease_token"]}
    if reason is not None:
        body["reason"] = reason
    return server.post(f"/api/v1/trials/{lease['id']}/preempt", body)


def metric(server, name: str) -> int:
    text = server.get("/metrics").text
    match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return int(match.group(1))


def test_a_checkpoint_round_trips_and_replaces_the_previous_one(server, ckpt_dir):
    lease = claim(server, register(server))["trial"]
    assert lease["checkpoint"] is None
    first = b"first checkpoint" * 1000
    stored = put_checkpoint(server, lease["id"], lease["lease_token"], first, step=10)
    assert stored.status_code == 200, stored.text
    sha = hashlib.sha256(first).hexdigest()
    assert stored.json() == {"sha256": sha, "size": len(first), "step": 10}
    assert checkpoint_files(ckpt_dir) == [f"{lease['id']}-{sha[:16]}.ckpt"]

    got = get_checkpoint(server, lease["id"], lease["lease_token"])
    assert got.status_code == 200 and got.content == first
    assert got.headers["X-Gridexp-Sha256"] == sha
    assert got.headers["X-Gridexp-Checkpoint-Step"] == "10"
    assert got.headers["X-Gridexp-Checkpoint-Kind"] == "object"
    assert got.headers["X-Gridexp-Checkpoint-Attempt"] == "1"
    assert got.headers["Content-Length"] == str(len(first))

    second = b"a zip of a directory"
    stored = put_checkpoint(server, lease["id"], lease["lease_token"], second, kind="directory")
    assert stored.status_code == 200 and stored.json()["step"] is None
    second_sha = hashlib.sha256(second).hexdigest()
    assert checkpoint_files(ckpt_dir) == [f"{lease['id']}-{second_sha[:16]}.ckpt"]
    got = get_checkpoint(server, lease["id"], lease["lease_token"])
    assert got.content == second and "X-Gridexp-Checkpoint-Step" not in got.headers
    assert got.headers["X-Gridexp-Checkpoint-Kind"] == "directory"
    # The same content again: stored, still one file.
    assert put_checkpoint(server, lease["id"], lease["lease_token"], second).status_code == 200
    assert len(checkpoint_files(ckpt_dir)) == 1

    trial = server.get(f"/api/v1/trials/{lease['id']}").json()
    assert trial["checkpoint"]["size"] == len(second)
    assert trial["checkpoint"]["kind"] == "object"
    assert trial["checkpoint"]["attempt"] == 1 and trial["checkpoint"]["step"] is None
    assert trial["checkpoint"]["saved_at"].endswith("Z")
    assert incoming(ckpt_dir) == []
    assert metric(server, "gridexp_checkpoint_uploads_total") == 3
    assert metric(server, "gridexp_checkpoint_bytes_total") == len(first) + 2 * len(second)
    assert metric(server, "gridexp_checkpoint_downloads_total") == 2


def test_bad_uploads_are_refused_and_keep_the_previous_checkpoint(server, ckpt_dir):
    lease = claim(server, register(server))["trial"]
    trial_id, token = lease["id"], lease["lease_token"]
    kept = b"the good one"
    assert put_checkpoint(server, trial_id, token, kept, step=1).status_code == 200
    before = checkpoint_files(ckpt_dir)

    corrupt = put_checkpoint(server, trial_id, token, b"other bytes", sha="0" * 64)
    assert corrupt.status_code == 400 and "SHA-256" in corrupt.json()["error"]
    assert put_checkpoint(server, trial_id, token, b"x", kind=None).status_code == 400
    assert put_checkpoint(server, trial_id, token, b"x", kind="pickle").status_code == 400
    bad_step = put_checkpoint(server, trial_id, token, b"x", **{"X-Gridexp-Checkpoint-Step": "1e3"})
    assert bad_step.status_code == 400
    assert put_checkpoint(server, trial_id, token, b"x", sha="ABC").status_code == 400
    upper = hashlib.sha256(b"x").hexdigest().upper()
    assert put_checkpoint(server, trial_id, token, b"x", sha=upper).status_code == 400

    big = b"\1" * (2 << 20)  # over --max-upload-mb 1
    assert put_checkpoint(server, trial_id, token, big).status_code == 413

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(4):
            yield b"\1" * (1 << 19)

    try:
        streamed = put_checkpoint(
            server, trial_id, token, chunks(), sha=hashlib.sha256(big).hexdigest()
        )
        assert streamed.status_code == 413
    except requests.ConnectionError:
        pass  # the server may close the connection before reading the rest

    assert checkpoint_files(ckpt_dir) == before
    assert wait_for(lambda: incoming(ckpt_dir) == [], timeout=10)
    got = get_checkpoint(server, trial_id, token)
    assert got.status_code == 200 and got.content == kept
    assert got.headers["X-Gridexp-Checkpoint-Step"] == "1"


def send_half_an_upload(server, trial_id, token, data) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        f"PUT /api/v1/trials/{trial_id}/checkpoint HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {server.password}\r\n"
        f"X-Gridexp-Lease-Token: {token}\r\n"
        f"X-Gridexp-Sha256: {hashlib.sha256(data).hexdigest()}\r\n"
        "X-Gridexp-Checkpoint-Kind: object\r\nX-Gridexp-Checkpoint-Step: 99\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    connection.sendall(head.encode() + data[: len(data) // 2])
    return connection


def test_an_upload_cut_off_half_way_keeps_the_previous_checkpoint(server, ckpt_dir):
    lease = claim(server, register(server))["trial"]
    trial_id, token = lease["id"], lease["lease_token"]
    kept = b"previous" * 100
    assert put_checkpoint(server, trial_id, token, kept, step=5).status_code == 200

    connection = send_half_an_upload(server, trial_id, token, b"\2" * (512 << 10))
    assert wait_for(lambda: incoming(ckpt_dir), timeout=10), "the upload never began"
    connection.close()
    assert wait_for(lambda: incoming(ckpt_dir) == [], timeout=10)
    got = get_checkpoint(server, trial_id, token)
    assert got.content == kept and got.headers["X-Gridexp-Checkpoint-Step"] == "5"
    assert len(checkpoint_files(ckpt_dir)) == 1


def test_kill_9_mid_upload_keeps_the_previous_checkpoint_and_the_next_start_cleans_up(
    server, ckpt_dir
):
    lease = claim(server, register(server))["trial"]
    trial_id, token = lease["id"], lease["lease_token"]
    kept = b"previous" * 100
    assert put_checkpoint(server, trial_id, token, kept, step=5).status_code == 200
    kept_file = checkpoint_files(ckpt_dir)

    connection = send_half_an_upload(server, trial_id, token, b"\3" * (512 << 10))
    assert wait_for(lambda: incoming(ckpt_dir), timeout=10), "the upload never began"
    server.kill()
    connection.close()
    assert incoming(ckpt_dir), "kill -9 leaves the temporary file"
    # A file nobody references (a crash after the rename, before the store update).
    stray = ckpt_dir / "checkpoints" / f"{trial_id}-{'e' * 16}.ckpt"
    stray.write_bytes(b"never recorded")

    server.start()
    assert incoming(ckpt_dir) == []
    assert checkpoint_files(ckpt_dir) == kept_file
    got = get_checkpoint(server, trial_id, token)  # the lease outlived the restart
    assert got.status_code == 200 and got.content == kept
    assert got.headers["X-Gridexp-Checkpoint-Step"] == "5"


def test_only_the_lease_holder_gets_the_checkpoint(start_server, ckpt_dir):
    server = start_server(ckpt_dir, "--lease-seconds", "2")
    worker = register(server)
    first = claim(server, worker)["trial"]
    second = claim(server, worker)["trial"]
    assert put_checkpoint(server, first["id"], first["lease_token"], b"mine").status_code == 200

    other = get_checkpoint(server, first["id"], second["lease_token"])
    assert other.status_code == 409 and other.json()["detail"] == {"stop": True}
    assert get_checkpoint(server, first["id"], "f" * 32).status_code == 409
    assert server.get(f"/api/v1/trials/{first['id']}/checkpoint").status_code == 400
    none = get_checkpoint(server, second["id"], second["lease_token"])
    assert none.status_code == 404 and none.json()["error"] == "no checkpoint"
    # Another trial's token cannot store into this one either.
    assert put_checkpoint(server, first["id"], second["lease_token"], b"x").status_code == 409
    assert get_checkpoint(server, "0123456789abcdef", first["lease_token"]).status_code == 404

    time.sleep(2.5)
    expired = get_checkpoint(server, first["id"], first["lease_token"])
    assert expired.status_code == 409 and "expired" in expired.json()["error"]
    assert put_checkpoint(server, first["id"], first["lease_token"], b"late").status_code == 409
    assert len(checkpoint_files(ckpt_dir)) == 1


@pytest.mark.parametrize(
    "trial_path",
    ["..%2F..%2F..%2Fescaped", "..%2Fcheckpoints", "0123456789ABCDEF", "0123456789abcdef0", "x"],
)
def test_trial_ids_that_are_not_16_hex_digits_are_refused(server, ckpt_dir, tmp_path, trial_path):
    lease = claim(server, register(server))["trial"]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    headers = {
        **server.auth(),
        "X-Gridexp-Lease-Token": lease["lease_token"],
        "X-Gridexp-Sha256": hashlib.sha256(b"evil").hexdigest(),
        "X-Gridexp-Checkpoint-Kind": "object",
    }
    url = f"{server.url}/api/v1/trials/{trial_path}/checkpoint"
    assert requests.put(url, data=b"evil", headers=headers, timeout=10).status_code in (400, 404)
    assert requests.get(url, headers=headers, timeout=10).status_code in (400, 404)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert checkpoint_files(ckpt_dir) == []


def test_a_preempted_trial_is_pending_at_once_and_resumes_from_its_checkpoint(
    start_server, ckpt_dir
):
    server = start_server(ckpt_dir, "--max-attempts", "1")
    worker = register(server)
    lease = claim(server, worker)["trial"]
    data = b"weights at step 120"
    assert put_checkpoint(server, lease["id"], lease["lease_token"], data, step=120).ok

    answer = preempt(server, lease)
    assert answer.status_code == 200 and answer.json() == {"ok": True, "state": "pending"}
    trial = server.get(f"/api/v1/trials/{lease['id']}").json()
    assert trial["state"] == "pending" and trial["attempts"] == 0
    assert trial["checkpoint"]["step"] == 120
    again = preempt(server, lease)
    assert again.status_code == 409 and "handed back" in again.json()["error"]

    # Not counted towards --max-attempts=1: the trial comes back as attempt 1, with the
    # checkpoint to resume from.
    resumed = claim(server, worker)["trial"]
    assert resumed["id"] == lease["id"] and resumed["attempt"] == 1
    assert resumed["checkpoint"] == {
        "step": 120,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "kind": "object",
        "attempt": 1,
    }
    got = get_checkpoint(server, resumed["id"], resumed["lease_token"])
    assert got.content == data and got.headers["X-Gridexp-Checkpoint-Attempt"] == "1"

    attempts = server.get(f"/api/v1/trials/{lease['id']}/attempts").json()
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "preempted"), (1, "running")]
    assert attempts[0]["error"] == "SIGTERM" and attempts[0]["ended_at"] is not None
    assert (attempts[0]["resumed"], attempts[0]["resumed_from_step"]) == (False, None)
    assert (attempts[1]["resumed"], attempts[1]["resumed_from_step"]) == (True, 120)

    # Preempted a second time, still not counted; then it fails for real and keeps the file.
    assert preempt(server, resumed, reason=None).json()["state"] == "pending"
    last = claim(server, worker)["trial"]
    assert last["id"] == lease["id"] and last["attempt"] == 1
    failed = server.post(
        f"/api/v1/trials/{last['id']}/fail", {"lease_token": last["lease_token"], "error": "E"}
    )
    assert failed.json()["state"] == "failed"
    assert len(checkpoint_files(ckpt_dir)) == 1
    assert server.get(f"/api/v1/trials/{lease['id']}").json()["checkpoint"] is not None
    assert metric(server, "gridexp_trials_preempted_total") == 2


def test_preempt_answers_cancelled_for_a_trial_cancelled_meanwhile(server):
    lease = claim(server, register(server))["trial"]
    assert server.post(f"/api/v1/trials/{lease['id']}/cancel", {}).status_code == 200
    answer = preempt(server, lease)
    assert answer.status_code == 200 and answer.json() == {"ok": True, "state": "cancelled"}
    assert server.get(f"/api/v1/trials/{lease['id']}").json()["state"] == "cancelled"
    assert metric(server, "gridexp_trials_preempted_total") == 0


def test_preempt_checks_its_body(server):
    lease = claim(server, register(server))["trial"]
    assert preempt(server, lease, reason="r" * 1025).status_code == 400
    assert preempt(server, lease, reason=7).status_code == 400
    assert server.post(f"/api/v1/trials/{lease['id']}/preempt", {}).status_code == 400
    assert server.get(f"/api/v1/trials/{lease['id']}").json()["state"] == "running"
    assert preempt(server, lease, reason="r" * 1024).json()["state"] == "pending"


def test_done_deletes_the_checkpoint_file(server, ckpt_dir):
    worker = register(server)
    first = claim(server, worker)["trial"]
    second = claim(server, worker)["trial"]
    for lease in (first, second):
        assert put_checkpoint(server, lease["id"], lease["lease_token"], lease["id"].encode()).ok
    assert len(checkpoint_files(ckpt_dir)) == 2

    done = server.post(
        f"/api/v1/trials/{first['id']}/complete",
        {"lease_token": first["lease_token"], "results": {}},
    )
    assert done.status_code == 200
    assert [name[:16] for name in checkpoint_files(ckpt_dir)] == [second["id"]]
    assert server.get(f"/api/v1/trials/{first['id']}").json()["checkpoint"] is None

    # complete-and-claim deletes it too.
    done = server.post(
        f"/api/v1/trials/{second['id']}/complete",
        {"lease_token": second["lease_token"], "results": {}, "next_claim_id": "n1"},
    )
    assert done.status_code == 200 and done.json()["next"]["trial"]["checkpoint"] is None
    assert checkpoint_files(ckpt_dir) == []


def test_a_trial_cancelled_while_running_keeps_its_checkpoint_when_it_completes(server, ckpt_dir):
    lease = claim(server, register(server))["trial"]
    assert put_checkpoint(server, lease["id"], lease["lease_token"], b"partial").ok
    assert server.post(f"/api/v1/trials/{lease['id']}/cancel", {}).status_code == 200
    server.post(
        f"/api/v1/trials/{lease['id']}/complete",
        {"lease_token": lease["lease_token"], "results": {}},
    )
    assert server.get(f"/api/v1/trials/{lease['id']}").json()["state"] == "cancelled"
    assert len(checkpoint_files(ckpt_dir)) == 1
