"""Start-up: config errors, edited configs, the banner, signals, the seed's flag forms and
the malloc settings the server restarts itself with."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from conftest import PASSWORD, claim, register, server_binary


def run_server_expecting_failure(directory, *args):
    return subprocess.run(
        [server_binary(), str(directory), "--port", "0", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={"GRIDEXP_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
    )


def test_config_errors_exit_2_naming_the_place_and_write_nothing(tmp_path):
    cases = {
        "experiment_name: x\nhyperparameters:\n  lr: []\n": ":3:",
        "experiment_name: x\nhyperparameters:\n  lr: [1\n": "config.yaml:",
        "hyperparameters:\n  lr: [1, 2]\n": "experiment_name",
        "experiment_name: x\n": "hyperparameters",
        "experiment_name: x\nhyperparameters:\n  lr: [1]\n  lr: [2]\n": ":4:",
    }
    for text, expected in cases.items():
        directory = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        (directory / "config.yaml").write_text(text)
        result = run_server_expecting_failure(directory)
        assert result.returncode == 2, (text, result.stderr)
        assert expected in result.stderr, (text, result.stderr)
        assert "config.yaml" in result.stderr
        assert sorted(p.name for p in directory.iterdir()) == ["config.yaml"], text


def test_missing_config_and_bad_options(tmp_path):
    result = run_server_expecting_failure(tmp_path)
    assert result.returncode == 2 and "config.yaml" in result.stderr
    result = run_server_expecting_failure(tmp_path, "--lease-seconds", "soon")
    assert result.returncode == 2 and "--lease-seconds" in result.stderr
    result = run_server_expecting_failure(tmp_path, "--frobnicate")
    assert result.returncode == 2 and "--frobnicate" in result.stderr
    assert not (tmp_path / ".gridexp").exists()


def test_edited_config_adds_points_and_keeps_results(start_server, experiment_dir):
    server = start_server(experiment_dir)
    worker = register(server)
    first = claim(server, worker)["trial"]
    server.post(
        f"/api/v1/trials/{first['id']}/complete",
        {"lease_token": first["lease_token"], "results": {"kept": True}},
    )
    server.stop()
    config = (experiment_dir / "config.yaml").read_text()
    config = config.replace("    - .03\n    - .1\n", "    - .03\n    - .1\n    - .3\n")
    config = config.replace("    - [2048]\n    - [4096]\n", "    - [2048]\n")
    (experiment_dir / "config.yaml").write_text(config)
    server = start_server(experiment_dir)
    assert "6 grid points" in "".join(server.output)
    trials = server.get("/api/v1/experiments/sentiment_analysis1/trials").json()
    by_id = {t["id"]: t for t in trials}
    assert by_id[first["id"]]["results"] == {"kept": True}
    assert by_id[first["id"]]["state"] == "done"
    in_config = [t for t in trials if t["in_config"]]
    assert len(in_config) == 6
    removed = [t for t in trials if not t["in_config"]]
    assert len(removed) == 4 and all(t["hyperparameters"]["fc_sizes"] == [4096] for t in removed)
    counts = server.get("/api/v1/experiments").json()[0]["counts"]
    assert counts["done"] == 1 and counts["pending"] == 5
    worker = register(server)
    handed_out = set()
    while (lease := claim(server, worker)["trial"]) is not None:
        handed_out.add(lease["id"])
        server.post(
            f"/api/v1/trials/{lease['id']}/complete",
            {"lease_token": lease["lease_token"], "results": {}},
        )
    assert handed_out == {t["id"] for t in in_config} - {first["id"]}


def test_banner_and_graceful_shutdown(start_server, experiment_dir):
    server = start_server(experiment_dir)
    banner = "".join(server.output)
    assert "sentiment_analysis1" in banner and "8 grid points" in banner
    assert "8 pending, 0 running, 0 done, 0 failed" in banner
    assert "GRIDEXP_PASSWORD" in banner and PASSWORD not in banner
    assert server.stop(signal.SIGINT) == 0
    server = start_server(experiment_dir)
    assert server.stop(signal.SIGTERM) == 0


def test_seed_style_port_flag_and_visible_password_warning(start_server, experiment_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_server(experiment_dir, f"--port={port}", "--password=very_secure", password=None)
    assert server.port == port
    assert "visible" in "".join(server.output)
    assert server.get("/healthz").status_code == 200
    server.password = "very_secure"
    assert server.get("/api/v1/experiments").status_code == 200


def server_tunables(server) -> list[str]:
    environment = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
    for entry in environment:
        if entry.startswith(b"GLIBC_TUNABLES="):
            return entry.decode().split("=", 1)[1].split(":")
    return []


def test_the_server_runs_with_a_larger_malloc_thread_cache(start_server, experiment_dir):
    # It executes itself once more with the setting (the same process id), and answers.
    server = start_server(experiment_dir)
    assert server_tunables(server) == ["glibc.malloc.tcache_count=64"]
    assert server.get("/healthz").status_code == 200


def test_the_users_own_tcache_setting_is_kept(start_server, experiment_dir, monkeypatch):
    # (That other tunables are kept beside the server's is tested in C++: how glibc shows the
    # environment of a process whose tunables it has parsed differs between its versions.)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")
    server = start_server(experiment_dir)
    assert server_tunables(server) == ["glibc.malloc.tcache_count=7"]
