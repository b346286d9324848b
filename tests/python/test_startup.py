"""Start-up: config errors, edited configs, the banner, signals, the seed's flag forms, the
malloc settings the server restarts itself with, bounded config loading, YAML 1.1 refusals and
changed configs outside hyperparameters."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
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


def only_the_config_was_written(directory) -> bool:
    return sorted(p.name for p in directory.iterdir()) == ["config.yaml"]


def test_a_stray_comma_is_a_config_error_not_all_memory(tmp_path):
    # yaml-cpp's LoadAll made an empty document at the ',' for ever: 3.8 GB in 6 s.
    (tmp_path / "config.yaml").write_text(",")
    result = run_server_expecting_failure(tmp_path)
    assert result.returncode == 2, result.stderr
    assert "config.yaml:1:1: invalid YAML: unexpected ','" in result.stderr
    assert only_the_config_was_written(tmp_path)


def eight_axes_of_a_hundred() -> str:
    values = ", ".join(str(i) for i in range(100))
    keys = "".join(f"  k{i}: *v\n" for i in range(7))
    return f"experiment_name: huge\nhyperparameters:\n  v: &v [{values}]\n{keys}"


def test_a_huge_grid_is_refused_with_its_size_before_anything_is_written(tmp_path):
    (tmp_path / "config.yaml").write_text(eight_axes_of_a_hundred())
    result = run_server_expecting_failure(tmp_path)
    assert result.returncode == 2, result.stderr
    assert "config.yaml:2:1: hyperparameters: the grid has 10,000,000,000,000,000 points" in (
        result.stderr
    )
    assert "--max-grid-points" in result.stderr
    assert only_the_config_was_written(tmp_path)


def test_max_grid_points_sets_the_limit(start_server, experiment_dir):
    result = run_server_expecting_failure(experiment_dir, "--max-grid-points", "7")
    assert result.returncode == 2, result.stderr
    assert "the grid has 8 points" in result.stderr and "(7)" in result.stderr
    assert not (experiment_dir / ".gridexp").exists()
    server = start_server(experiment_dir, "--max-grid-points=8")
    assert "8 grid points" in "".join(server.output)


def test_sigterm_while_a_large_grid_is_recorded_stops_it_and_writes_none_of_it(tmp_path):
    # 3,000,000 points take well over ten seconds to record here; the signal comes within
    # the first second of it, once the store exists.
    axes = {"a": 300, "b": 100, "c": 100}
    config = "experiment_name: big\nhyperparameters:\n" + "".join(
        f"  {key}: [{', '.join(str(i) for i in range(size))}]\n" for key, size in axes.items()
    )
    (tmp_path / "config.yaml").write_text(config)
    arguments = ["--port=0", "--host=127.0.0.1", "--max-grid-points=3000000"]
    process = subprocess.Popen(
        [server_binary(), str(tmp_path), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"GRIDEXP_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
    )
    try:
        database = tmp_path / ".gridexp" / "state.db"
        deadline = time.monotonic() + 60
        while not database.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        # Before, the signal waited for the whole grid (minutes for larger ones).
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "SIGTERM received while starting" in output and "listening" not in output
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM trials").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM experiments").fetchone() == (0,)


def test_yaml_1_1_booleans_and_numbers_are_refused_where_they_stand(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "experiment_name: x\nhyperparameters:\n  lr: [1]\n  use_bn: yes\n"
    )
    result = run_server_expecting_failure(tmp_path)
    assert result.returncode == 2, result.stderr
    assert (
        "config.yaml:4:11: hyperparameters.use_bn: 'yes' means true in YAML 1.1 and the string "
        '"yes" in YAML 1.2; write true/false, or quote it'
    ) in result.stderr
    (tmp_path / "config.yaml").write_text("experiment_name: x\nhyperparameters:\n  t: 1:30\n")
    result = run_server_expecting_failure(tmp_path)
    assert result.returncode == 2 and "'1:30' means 90 in YAML 1.1 (base 60)" in result.stderr
    assert only_the_config_was_written(tmp_path)


def test_config_errors_cannot_put_escape_codes_on_the_terminal(tmp_path):
    key = '"\\e]0;owned\\a\\e[2J"'  # YAML escapes: set the window title, clear the screen
    (tmp_path / "config.yaml").write_text(
        f"experiment_name: x\nhyperparameters:\n  {key}: [1]\n  {key}: [2]\n"
    )
    result = run_server_expecting_failure(tmp_path)
    assert result.returncode == 2, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "hyperparameters.\\x1b]0;owned\\x07\\x1b[2J: duplicate key" in result.stderr


def complete_one_trial(server) -> str:
    worker = register(server)
    lease = claim(server, worker)["trial"]
    response = server.post(
        f"/api/v1/trials/{lease['id']}/complete",
        {"lease_token": lease["lease_token"], "results": {"loss": 0.5}},
    )
    assert response.status_code == 200, response.text
    return lease["id"]


def test_a_changed_config_outside_hyperparameters_needs_a_choice(start_server, experiment_dir):
    server = start_server(experiment_dir)
    done_id = complete_one_trial(server)
    assert server.stop() == 0
    config_path = experiment_dir / "config.yaml"
    config_path.write_text(config_path.read_text().replace("'imdb.pt'", "'imdb2.pt'"))
    database = experiment_dir / ".gridexp" / "state.db"
    before = database.read_bytes()

    result = run_server_expecting_failure(experiment_dir)
    assert result.returncode == 2, result.stderr
    assert 'dataset: "imdb.pt" -> "imdb2.pt"' in result.stderr
    assert "--config-changed=keep-results" in result.stderr
    assert "--config-changed=new-experiment" in result.stderr
    assert database.read_bytes() == before

    # The change does not matter: every result is kept, and the new config is the recorded one.
    server = start_server(experiment_dir, "--config-changed=keep-results")
    assert "results kept (--config-changed=keep-results)" in "".join(server.output)
    assert server.get(f"/api/v1/trials/{done_id}").json()["state"] == "done"
    assert server.get("/api/v1/experiments").json()[0]["counts"]["done"] == 1
    assert server.stop() == 0
    server = start_server(experiment_dir)
    assert "config:" not in "".join(server.output)
    assert server.stop() == 0

    # It does: the grid runs again under new ids, and the earlier trials are kept aside.
    config_path.write_text(config_path.read_text().replace("'imdb2.pt'", "'imdb3.pt'"))
    server = start_server(experiment_dir, "--config-changed", "new-experiment")
    assert "the grid runs again" in "".join(server.output)
    assert "8 pending, 0 running, 0 done" in "".join(server.output)
    trials = server.get("/api/v1/experiments/sentiment_analysis1/trials").json()
    old = [t for t in trials if not t["in_config"]]
    assert len(trials) == 16 and len(old) == 8
    assert {t["id"] for t in old if t["state"] == "done"} == {done_id}
    handed_out = set()
    worker = register(server)
    while (lease := claim(server, worker)["trial"]) is not None:
        handed_out.add(lease["id"])
        server.post(
            f"/api/v1/trials/{lease['id']}/complete",
            {"lease_token": lease["lease_token"], "results": {}},
        )
    assert handed_out == {t["id"] for t in trials if t["in_config"]}


def test_a_config_changed_before_any_trial_ran_is_taken(start_server, experiment_dir):
    server = start_server(experiment_dir)
    assert server.stop() == 0
    config_path = experiment_dir / "config.yaml"
    config_path.write_text(config_path.read_text().replace("'imdb.pt'", "'imdb2.pt'"))
    server = start_server(experiment_dir)
    assert "no trial had run, so nothing was kept" in "".join(server.output)


def test_the_programs_and_the_package_have_the_one_version_cmake_names():
    cmake = (Path(__file__).resolve().parents[2] / "CMakeLists.txt").read_text()
    written = re.search(r"project\(gridexp VERSION ([0-9.]+)", cmake)
    assert written is not None
    worker = shutil.which("gridexp-worker")
    assert worker is not None
    printed = [
        subprocess.run([program, "--version"], capture_output=True, text=True, check=True).stdout
        for program in (server_binary(), worker)
    ]
    assert printed == [f"gridexp-server {written[1]}\n", f"gridexp-worker {written[1]}\n"]
    assert importlib.metadata.version("gridexp") == written[1]
