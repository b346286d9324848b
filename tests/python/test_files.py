"""scripts.zip and data.zip for workers: ETag, conditional GET, Range, rebuilds."""

from __future__ import annotations

import hashlib
import io
import os
import time
import zipfile

import requests


def test_scripts_zip_is_built_from_the_python_files(server, experiment_dir):
    (experiment_dir / "helpers.py").write_text("X = 1\n")
    (experiment_dir / "notes.txt").write_text("not a script")
    response = server.get("/api/v1/files/scripts.zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == ["experiment.py", "helpers.py"]
    assert archive.read("helpers.py") == b"X = 1\n"
    assert response.headers["ETag"] == '"' + hashlib.sha256(response.content).hexdigest() + '"'
    assert not (experiment_dir / "scripts.zip").exists()  # built in the state directory


def test_scripts_zip_is_deterministic_and_rebuilt_on_change(start_server, experiment_dir):
    server = start_server(experiment_dir)
    first = server.get("/api/v1/files/scripts.zip")
    server.stop()
    os.utime(experiment_dir / "experiment.py", (time.time() + 5, time.time() + 5))
    server = start_server(experiment_dir)
    again = server.get("/api/v1/files/scripts.zip")
    assert again.content == first.content  # same sources, same bytes, whatever the mtime

    (experiment_dir / "experiment.py").write_text("print('changed')\n")
    changed = server.get(
        "/api/v1/files/scripts.zip", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert changed.status_code == 200
    assert changed.headers["ETag"] != first.headers["ETag"]
    archive = zipfile.ZipFile(io.BytesIO(changed.content))
    assert archive.read("experiment.py") == b"print('changed')\n"


def test_conditional_get_and_range(server):
    full = server.get("/api/v1/files/scripts.zip")
    etag = full.headers["ETag"]
    not_modified = server.get("/api/v1/files/scripts.zip", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert (
        server.get("/api/v1/files/scripts.zip", headers={"If-None-Match": '"other"'}).status_code
        == 200
    )
    tail = server.get("/api/v1/files/scripts.zip", headers={"Range": "bytes=10-"})
    assert tail.status_code == 206 and tail.content == full.content[10:]
    assert "bytes 10-" in tail.headers["Content-Range"]


def test_users_own_scripts_zip_is_served_as_is(server, experiment_dir):
    own = io.BytesIO()
    with zipfile.ZipFile(own, "w") as archive:
        archive.writestr("experiment.py", "OWN = True\n")
    (experiment_dir / "scripts.zip").write_bytes(own.getvalue())
    response = server.get("/api/v1/files/scripts.zip")
    assert response.content == own.getvalue()


def test_data_zip_missing_then_served(server, experiment_dir):
    missing = server.get("/api/v1/files/data.zip")
    assert missing.status_code == 404 and "data.zip" in missing.json()["error"]
    payload = os.urandom(300_000)
    (experiment_dir / "data.zip").write_bytes(payload)
    response = server.get("/api/v1/files/data.zip")
    assert response.status_code == 200 and response.content == payload
    assert response.headers["ETag"] == '"' + hashlib.sha256(payload).hexdigest() + '"'
    middle = server.get("/api/v1/files/data.zip", headers={"Range": "bytes=1000-1999"})
    assert middle.status_code == 206 and middle.content == payload[1000:2000]


def test_no_request_reaches_a_path_outside_the_experiment(server, experiment_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    attempts = [
        "/api/v1/files/../../secret.txt",
        "/api/v1/files/%2e%2e/%2e%2e/secret.txt",
        "/api/v1/files/..%2f..%2fsecret.txt",
        "/api/v1/trials/..%2f..%2f..%2fsecret/model",
        "/api/v1/experiments/..%2f..%2fsecret.txt/trials",
        "/" + str(secret),
        "/config.yaml",
        "/.gridexp/state.db",
    ]
    for path in attempts:
        for method in ("GET", "PUT", "DELETE", "POST"):
            response = requests.request(
                method, server.url + path, data=b"payload", headers=server.auth(), timeout=10
            )
            assert response.status_code in (400, 404, 405), (method, path)
            assert b"do not serve" not in response.content
    assert secret.read_text() == "do not serve"
    assert sorted(p.name for p in experiment_dir.iterdir()) == [
        ".gridexp",
        "checkpoints",
        "config.yaml",
        "experiment.py",
        "logs",
        "models",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment", "secret.txt"]
