"""The `gridexp` command, run as a subprocess against a real gridexp-server."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
from conftest import PASSWORD, claim, grid_config, register
from test_client import EXPERIMENT, client_of, free_port, run_trial


def gridexp(
    server, *arguments: str, password: str | None = PASSWORD, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("GRIDEXP_")
    }
    if server is not None:
        environment["GRIDEXP_ADDRESS"] = f"127.0.0.1:{server.port}"
    if password is not None:
        environment["GRIDEXP_PASSWORD"] = password
    # The source tree's package, whether or not this checkout was installed.
    source = str(Path(__file__).resolve().parents[2] / "python")
    environment["PYTHONPATH"] = os.pathsep.join(
        [source, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-m", "gridexp.cli", *arguments],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=60,
    )


def table(output: str) -> list[list[str]]:
    """The rows of a printed table up to its first blank line, cells split on whitespace."""
    rows = []
    for line in output.splitlines():
        if not line.strip():
            break
        rows.append(line.split())
    return rows


@pytest.fixture
def scored(server) -> dict[str, float]:
    """Three done trials with a score (0.5, 0.9, 0.7 in grid order) and one failed."""
    worker = register(server)
    scores = {}
    for score in (0.5, 0.9, 0.7):
        trial_id = run_trial(server, worker, {"score": score, "val": {"loss": 1 - score}})
        scores[trial_id] = score
    run_trial(server, worker, fail="ValueError: cursed")
    return scores


# Help and usage.


def test_help_lists_the_commands():
    result = gridexp(None, "--help")
    assert result.returncode == 0
    commands = ("status", "results", "retry", "cancel", "workers", "attempts", "export")
    for command in (*commands, "--password-file"):
        assert command in result.stdout
    result = gridexp(None, "results", "--help")
    assert result.returncode == 0 and "--sort METRIC" in result.stdout


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["bogus"],
        ["results", "--limit", "0"],
        ["results", "--min", "--max"],
        ["retry", EXPERIMENT, "--id", "0123456789abcdef"],
        ["--address", "ftp://host", "status"],
        ["status", "--password", "hunter2"],
    ],
)
def test_usage_errors_exit_2(arguments):
    result = gridexp(None, *arguments)
    assert result.returncode == 2, result
    assert result.stdout == "" and "usage: gridexp" in result.stderr


# Errors.


def test_a_wrong_password_and_a_server_that_is_down_exit_1(server):
    result = gridexp(server, "status", password="not-it")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("gridexp: ") and "password" in result.stderr
    address = f"127.0.0.1:{free_port()}"
    result = gridexp(None, "--address", address, "status")
    assert result.returncode == 1
    assert result.stderr == f"gridexp: the server at http://{address} is not reachable " + (
        "(connection refused)\n"
    )


def test_no_password_says_where_to_put_it(server, tmp_path):
    result = gridexp(server, "status", password=None, cwd=tmp_path)
    assert result.returncode == 1
    assert "GRIDEXP_PASSWORD" in result.stderr and "--password-file" in result.stderr


def test_password_file_and_options_after_the_command(server, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    result = gridexp(
        None,
        "status",
        "--address",
        f"http://127.0.0.1:{server.port}",
        "--password-file",
        str(password_file),
        password=None,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert EXPERIMENT in result.stdout


def test_an_unknown_experiment_exits_1(server):
    result = gridexp(server, "results", "nope")
    assert result.returncode == 1
    assert result.stderr == "gridexp: no experiment named 'nope'\n"


# gridexp status and gridexp workers.


def test_status_shows_counts_progress_and_workers(server, scored):
    result = gridexp(server, "status")
    assert result.returncode == 0, result.stderr
    header, row = table(result.stdout)
    assert header == [
        "experiment",
        "active",
        "done/total",
        "running",
        "pending",
        "failed",
        "cancelled",
        "progress",
        "eta",
        "workers",
    ]
    values = dict(zip(header, row))
    assert values["experiment"] == EXPERIMENT and values["active"] == "yes"
    assert values["done/total"] == "3/8" and values["pending"] == "4"
    assert values["failed"] == "1" and values["cancelled"] == "0"
    assert values["progress"] == "50%"


def test_status_shows_the_eta_and_workers_online(server, scored):
    values = dict(zip(*table(gridexp(server, "status").stdout)))
    assert values["workers"] == "1"
    assert values["eta"].endswith("s")  # a few milliseconds per trial so far


def test_workers_lists_every_registered_worker(server):
    assert gridexp(server, "workers").stdout == "no worker registered yet\n"
    worker = register(server, host="box-7")
    trial = claim(server, worker)["trial"]
    result = gridexp(server, "workers")
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert rows[0][:3] == ["worker", "host", "pid"]
    assert rows[1][:2] == [worker, "box-7"] and trial["id"] in rows[1]
    assert result.stdout.rstrip().endswith("1 of 1 worker online")


# gridexp attempts.


def test_attempts_show_each_end_worker_and_the_step_resumed_from(server):
    trial_id = client_of(server).trials()[0]["id"]
    result = gridexp(server, "attempts", trial_id)
    assert (result.returncode, result.stdout) == (0, f"trial {trial_id} has not been claimed yet\n")

    worker = register(server, host="box-7")
    lease = claim(server, worker)["trial"]
    assert lease["id"] == trial_id
    data = b"weights"
    stored = requests.put(
        f"{server.url}/api/v1/trials/{trial_id}/checkpoint",
        data=data,
        headers={
            **server.auth(),
            "X-Gridexp-Lease-Token": lease["lease_token"],
            "X-Gridexp-Sha256": hashlib.sha256(data).hexdigest(),
            "X-Gridexp-Checkpoint-Kind": "object",
            "X-Gridexp-Checkpoint-Step": "42",
        },
        timeout=30,
    )
    assert stored.status_code == 200, stored.text
    preempted = server.post(
        f"/api/v1/trials/{trial_id}/preempt",
        {"lease_token": lease["lease_token"], "reason": "SIGTERM"},
    )
    assert preempted.json()["state"] == "pending"
    resumed = claim(server, worker)["trial"]
    server.post(
        f"/api/v1/trials/{trial_id}/fail",
        {"lease_token": resumed["lease_token"], "error": "ValueError: boom\nmore lines"},
    )

    result = gridexp(server, "attempts", trial_id)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["attempt", "outcome", "worker"]
    assert "resumed from" in lines[0] and len(lines) == 3
    first, second = lines[1].split(), lines[2].split()
    assert first[:3] == ["1", "preempted", worker] and first[-2:] == ["-", "SIGTERM"]
    assert second[:3] == ["1", "failed", worker]
    assert re.search(r"step 42 +ValueError: boom$", lines[2])
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[1])


def test_attempts_of_an_unknown_trial_exit_1(server):
    result = gridexp(server, "attempts", "0123456789abcdef")
    assert result.returncode == 1
    assert result.stderr.startswith("gridexp: ") and "0123456789abcdef" in result.stderr


# gridexp results.


def test_results_table_in_grid_order(server, scored):
    result = gridexp(server, "results")
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    # Only the hyperparameters that vary; every scalar result, flattened.
    assert rows[0] == [
        "trial",
        "state",
        "batch_size",
        "fc_sizes",
        "learning_rate",
        "score",
        "val.loss",
        "duration",
    ]
    assert [row[0] for row in rows[1:4]] == list(scored)
    assert rows[1][1:6] == ["done", "128", "[2048]", "0.03", "0.5000"]
    assert rows[4][1] == "failed" and rows[4][5] == "-"
    assert len(rows) == 9
    assert "best trial" not in result.stdout


def test_results_sorted_best_first_with_the_best_trial(server, scored):
    best = max(scored, key=scored.get)
    result = gridexp(server, "results", EXPERIMENT, "--sort", "score")
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert [row[0] for row in rows[1:4]] == sorted(scored, key=scored.get, reverse=True)
    assert rows[0][5] == "score"
    assert f"best trial by score (max): {best}  score=0.9000" in result.stdout

    result = gridexp(server, "results", "--sort", "val.loss", "--min", "--limit", "2")
    rows = table(result.stdout)
    assert [row[0] for row in rows[1:]] == [best, sorted(scored, key=scored.get)[1]]
    assert rows[0][5] == "val.loss"
    assert f"best trial by val.loss (min): {best}" in result.stdout

    result = gridexp(server, "results", "--sort", "score", "--min")
    assert table(result.stdout)[1][0] == min(scored, key=scored.get)


def test_results_columns_pick_the_results_shown(server, scored):
    result = gridexp(server, "results", "--sort", "score", "--columns", "val.loss,score")
    assert result.returncode == 0, result.stderr
    header = table(result.stdout)[0]
    assert header[5:] == ["score", "val.loss", "duration"]


def test_results_sorted_by_a_metric_nobody_reported(server, scored):
    result = gridexp(server, "results", "--sort", "acuracy")
    assert result.returncode == 1
    assert "gridexp: no trial reported acuracy" in result.stderr


def test_results_before_any_trial_finished(server):
    result = gridexp(server, "results", "--sort", "score")
    assert result.returncode == 0, result.stderr
    assert "no trial reported score yet" in result.stdout


def test_results_csv_is_the_servers(server, scored):
    result = gridexp(server, "results", "--csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout == client_of(server).trials_csv()


def test_results_csv_sorted_and_limited(server, scored):
    result = gridexp(server, "results", "--csv", "--sort", "score", "--limit", "2")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    ranked = sorted(scored, key=scored.get, reverse=True)
    assert [row["id"] for row in rows] == ranked[:2]
    assert [float(row["score"]) for row in rows] == [0.9, 0.7]
    result = gridexp(server, "results", "--csv", "--sort", "score", "--min")
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert [row["id"] for row in rows[:3]] == ranked[::-1] and len(rows) == 8


# gridexp retry and gridexp cancel.


def test_cancel_and_retry_one_trial(server):
    trial_id = client_of(server).trials()[0]["id"]
    result = gridexp(server, "cancel", "--id", trial_id)
    assert (result.returncode, result.stdout) == (0, f"cancelled {trial_id}\n"), result.stderr
    result = gridexp(server, "cancel", "--id", trial_id)
    assert result.returncode == 1
    assert result.stderr.startswith(f"gridexp: trial {trial_id}: ")
    result = gridexp(server, "retry", "--id", trial_id)
    assert (result.returncode, result.stdout) == (0, f"retried {trial_id}\n"), result.stderr
    assert client_of(server).trial(trial_id)["state"] == "pending"


def test_cancel_and_retry_every_trial(server, scored):
    worker = register(server)
    running = claim(server, worker)["trial"]["id"]
    client = client_of(server)
    result = gridexp(server, "cancel")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"cancelled 4 trials of {EXPERIMENT}:"
    cancelled = {line.strip() for line in lines[1:]}
    assert running in cancelled and len(cancelled) == 4
    assert client.trial(running)["stop_requested"] is True

    result = gridexp(server, "retry", EXPERIMENT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The running trial stays running until its worker stops it; the failed one comes back.
    assert lines[0] == f"retried 4 trials of {EXPERIMENT}:"
    states = {t["id"]: t["state"] for t in client.trials()}
    assert sorted(states.values()).count("pending") == 4
    assert [states[i] for i in scored] == ["done"] * 3
    result = gridexp(server, "retry")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"no failed or cancelled trial in {EXPERIMENT}: nothing to retry\n"


# The whole system: real workers, then the command and the client on what they produced.

REAL_EXPERIMENT = textwrap.dedent(
    """\
    import torch

    def init_dataset(config):
        return None

    def run_one(hyperparameters, dataset):
        index = hyperparameters["index"]
        if index == 2:
            raise ValueError("index 2 is cursed")
        torch.manual_seed(index)
        return {"score": index / 10, "val": {"loss": 1 - index / 10}}, torch.nn.Linear(2, 2)
    """
)


def test_results_of_real_workers(start_server, workers, tmp_path):
    torch = pytest.importorskip("torch", reason="torch is installed by scripts/setup.sh")
    pytest.importorskip("pandas")
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("real", 4))
    (directory / "experiment.py").write_text(REAL_EXPERIMENT)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts", "--raise_on_failure=False")
    assert worker.wait() == 0, worker.output()

    result = gridexp(server, "results", "--sort", "score")
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert rows[0] == ["trial", "state", "index", "score", "val.loss", "duration"]
    assert [(row[1], row[2], row[3]) for row in rows[1:]] == [
        ("done", "3", "0.3000"),
        ("done", "1", "0.1000"),
        ("done", "0", "0.0000"),
        ("failed", "2", "-"),
    ]
    best = rows[1][0]
    assert f"best trial by score (max): {best}  score=0.3000" in result.stdout
    assert f"model: http://127.0.0.1:{server.port}/api/v1/trials/{best}/model" in result.stdout

    client = client_of(server)
    frame = client.dataframe("real")
    assert list(frame.state) == ["done", "done", "failed", "done"]
    assert (frame.duration_seconds.dropna() > 0).all() and len(frame.duration_seconds.dropna()) == 4
    path = client.download_model(best, tmp_path)
    weights = torch.load(path, weights_only=True)
    torch.manual_seed(3)
    assert torch.equal(weights["weight"], torch.nn.Linear(2, 2).state_dict()["weight"])
    assert "cursed" in client.trial(frame.id[2])["error"]
