"""gridexp-worker against what a trial's code does: results over the server's body limit,
floods of output, reading the server's password, leaving processes running; and experiment
names full of URL-special characters. Real server, worker and executor on loopback."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from conftest import PASSWORD, grid_config, trials_of, wait_for

NAME = "hardening"


def write_experiment(directory: Path, run_one: str, config: str | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(config or grid_config(NAME, 1))
    (directory / "experiment.py").write_text(
        "def init_dataset(config):\n    return None\n\n\n" + textwrap.dedent(run_one)
    )


def test_results_over_the_body_limit_fail_the_trial_at_once(start_server, workers, tmp_path):
    write_experiment(
        tmp_path / "server",
        """\
        def run_one(hyperparameters, dataset):
            return {"big": "x" * (70 << 20)}, None
        """,
    )
    server = start_server(tmp_path / "server")
    worker = workers(server, tmp_path / "w", "--download_scripts", "--raise_on_failure=False")
    assert worker.wait(timeout=180) == 0, worker.output()[-3000:]
    (trial,) = trials_of(server, NAME)
    assert trial["state"] == "failed" and trial["attempts"] == 1, trial
    assert trial["error"].startswith("results too large (70.0 MiB, limit 64 MiB)"), trial["error"]
    assert len(worker.output()) < 20_000
    # Delivered: nothing is left in the outbox to send again.
    assert list((tmp_path / "w" / ".gridexp-worker" / "outbox").iterdir()) == []


def test_a_large_result_is_one_short_line_on_the_console(start_server, workers, tmp_path):
    write_experiment(
        tmp_path / "server",
        """\
        def run_one(hyperparameters, dataset):
            return {"values": list(range(1_000_000))}, None
        """,
    )
    server = start_server(tmp_path / "server")
    worker = workers(server, tmp_path / "w", "--download_scripts")
    assert worker.wait(timeout=180) == 0, worker.output()[-3000:]
    (trial,) = trials_of(server, NAME)
    assert trial["state"] == "done" and len(trial["results"]["values"]) == 1_000_000
    console = worker.output()
    assert len(console) < 20_000, console[:3000]
    (done_line,) = [line for line in console.splitlines() if f"trial {trial['id']} done" in line]
    assert done_line.endswith(" bytes more)"), done_line[-200:]


def test_a_flood_of_output_is_stored_up_to_64_mib_and_the_cut_is_marked(
    start_server, workers, tmp_path
):
    lines = 80 * 1024  # 1 KiB each: 80 MiB, printed as fast as Python can
    write_experiment(
        tmp_path / "server",
        f"""\
        import sys

        def run_one(hyperparameters, dataset):
            filler = "x" * 1014
            for i in range({lines}):
                sys.stdout.write(f"{{i:08d}} {{filler}}\\n")
            sys.stdout.flush()
            return {{"ok": 1}}, None
        """,
    )
    server = start_server(tmp_path / "server")
    worker = workers(server, tmp_path / "w", "--download_scripts")
    assert worker.wait(timeout=300) == 0, worker.output()[-3000:]
    (trial,) = trials_of(server, NAME)
    log = server.get(f"/api/v1/trials/{trial['id']}/log").text
    *kept, mark, last = log.split("\n")
    assert last == ""
    assert all(line == f"{i:08d} {'x' * 1014}" for i, line in enumerate(kept)), "lines lost"
    kept_bytes = len(kept) * 1024
    assert 63 << 20 <= kept_bytes <= 64 << 20
    assert mark == f"[gridexp: log cut at 64 MiB; {lines * 1024 - kept_bytes} bytes dropped]"


def test_the_users_code_cannot_read_the_password(start_server, workers, tmp_path, monkeypatch):
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    monkeypatch.setenv("GRIDEXP_PASSWORD_FILE", str(password_file))
    write_experiment(
        tmp_path / "server",
        f"""\
        import os

        def holds_password(path):
            with open(path, "rb") as f:
                return {PASSWORD!r}.encode() in f.read()

        def run_one(hyperparameters, dataset):
            return {{
                "variables": sorted(name for name in os.environ if "PASSWORD" in name),
                "own_environ": holds_password("/proc/self/environ"),
                "worker_environ": holds_password(f"/proc/{{os.getppid()}}/environ"),
            }}, None
        """,
    )
    server = start_server(tmp_path / "server")
    worker = workers(server, tmp_path / "w", "--download_scripts")  # password: GRIDEXP_PASSWORD
    assert worker.wait(timeout=120) == 0, worker.output()[-3000:]
    (trial,) = trials_of(server, NAME)
    assert trial["results"] == {"variables": [], "own_environ": False, "worker_environ": False}


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_process_the_trial_leaves_running_is_ended_with_it(start_server, workers, tmp_path):
    write_experiment(
        tmp_path / "server",
        """\
        import subprocess

        def run_one(hyperparameters, dataset):
            # A new session, and its parent (the shell) exits: the classic daemon.
            subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $! > daemon.pid"],
                           start_new_session=True, check=True)
            return {"ok": 1}, None
        """,
    )
    server = start_server(tmp_path / "server")
    worker = workers(server, tmp_path / "w", "--download_scripts")
    assert worker.wait(timeout=120) == 0, worker.output()[-3000:]
    daemon = int((tmp_path / "w" / "daemon.pid").read_text())
    try:
        wait_for(lambda: not is_running(daemon), timeout=20)
    finally:
        if is_running(daemon):
            os.kill(daemon, 9)
    assert "ended 1 process trial" in worker.output()


def test_dry_run_with_url_special_characters_in_the_experiment_name(
    start_server, workers, tmp_path
):
    name = "a#b?c%d/e f+g&h=i;j é✓"
    config = f"experiment_name: '{name}'\nhyperparameters:\n  index: [0, 1]\n"
    write_experiment(
        tmp_path / "server",
        """\
        def run_one(hyperparameters, dataset):
            return {"index": hyperparameters["index"]}, None
        """,
        config,
    )
    server = start_server(tmp_path / "server")
    worker = workers(server, tmp_path / "w", "--download_scripts", "--dry_run")
    assert worker.wait(timeout=120) == 0, worker.output()[-3000:]
    assert "dry run finished: 2 trials" in worker.output()
    assert [e["name"] for e in server.get("/api/v1/experiments").json()] == [name]


def test_a_workdir_without_experiment_py_says_what_to_do(start_server, workers, tmp_path):
    write_experiment(
        tmp_path / "server",
        "def run_one(hyperparameters, dataset):\n    return {}, None\n",
    )
    server = start_server(tmp_path / "server")
    worker = workers(server, tmp_path / "w")
    assert worker.wait(timeout=60) == 2, worker.output()
    last_line = worker.output().strip().splitlines()[-1]
    assert f"experiment.py not found in {tmp_path / 'w'}" in last_line, last_line
    assert "start the worker with --download_scripts, or copy experiment.py there" in last_line
    assert all(t["attempts"] == 0 for t in trials_of(server, NAME))
