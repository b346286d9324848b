"""Preemption-safe trials end to end (issue 18): a stop signal hands the running trial back at
once with its last checkpoint, and the next attempt, on another worker, resumes from it.

Real gridexp-server and gridexp-worker processes; the experiment counts the steps it really
runs in a ledger file that every attempt appends to, and checkpoints every EVERY steps.
"""

from __future__ import annotations

import re
import signal
import textwrap
import time
from pathlib import Path

import pytest
from conftest import trials_of, wait_for

pytest.importorskip("torch", reason="save_checkpoint of an object needs torch")

NAME = "preempt"
STEPS = 40
EVERY = 5

EXPERIMENT = textwrap.dedent(
    """\
    import os, pathlib, time
    import gridexp

    def init_dataset(config):
        if config.get("save_in_init"):
            gridexp.save_checkpoint({"step": 0}, step=0)
        return None

    def run_one(hyperparameters, dataset):
        mode = hyperparameters["mode"]
        ledger = pathlib.Path(hyperparameters["ledger"])
        directory = gridexp.checkpoint_dir()
        seen = sorted(p.name for p in directory.iterdir())
        if mode == "dir":
            state = directory / "state.txt"
            start = int(state.read_text()) if state.exists() else 0
            (directory / "from-first.txt").write_text("written by the first attempt")
        else:
            checkpoint = gridexp.load_checkpoint()
            start = checkpoint["step"] if checkpoint is not None else 0
        if mode == "bad":
            gridexp.save_checkpoint({"step": 0}, step=0)
            gridexp.save_checkpoint(lambda: 1, step=1)
            gridexp.save_checkpoint("/no/such/checkpoint", step=2)
            gridexp.save_checkpoint(os.urandom(2 << 20), step=3)
            time.sleep(2)  # its refusal reaches the trial's log while it runs
        for step in range(start, hyperparameters["steps"]):
            if gridexp.should_stop():
                return {"stopped_at": step, "reason": gridexp.stop_reason()}, None
            with ledger.open("a") as f:
                f.write(f"{step}\\n")
            time.sleep(hyperparameters["pause"])
            if (step + 1) % hyperparameters["every"] == 0:
                if mode == "dir":
                    (directory / "state.txt").write_text(str(step + 1))
                else:
                    gridexp.save_checkpoint({"step": step + 1}, step=step + 1)
        return {"start": start, "seen": seen}, None
    """
)


def write_experiment(directory: Path, ledger: Path, mode: str, extra: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(
        f"experiment_name: {NAME}\n"
        "hyperparameters:\n"
        f"  mode: [{mode}]\n"
        f"  ledger: ['{ledger}']\n"
        f"  steps: [{STEPS}]\n"
        f"  every: [{EVERY}]\n"
        "  pause: [0.1]\n" + extra
    )
    (directory / "experiment.py").write_text(EXPERIMENT)


def steps_run(ledger: Path) -> int:
    return len(ledger.read_text().splitlines()) if ledger.exists() else 0


def the_trial(server) -> dict:
    (trial,) = trials_of(server, NAME)
    return trial


def attempts_of(server, trial_id: str) -> list[dict]:
    response = server.get(f"/api/v1/trials/{trial_id}/attempts")
    assert response.status_code == 200, response.text
    return response.json()


def test_sigterm_hands_the_trial_back_and_a_second_worker_resumes_it(
    start_server, workers, tmp_path
):
    ledger = tmp_path / "ledger"
    directory = tmp_path / "server"
    write_experiment(directory, ledger, "object")
    server = start_server(directory, "--lease-seconds", "60")
    first = workers(server, tmp_path / "w1", "--download_scripts", "--save_models=False")
    wait_for(lambda: steps_run(ledger) >= 2 * EVERY + 2, timeout=120)
    signalled = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 143, first.output()
    trial = the_trial(server)
    assert trial["state"] == "pending", first.output()
    assert time.monotonic() - signalled < 15, "handed back at once, not when the lease expired"
    assert "preempted" in first.output()
    ran_first = steps_run(ledger)
    assert ran_first < STEPS

    second = workers(server, tmp_path / "w2", "--download_scripts", "--save_models=False")
    assert second.wait(timeout=120) == 0, second.output()
    trial = the_trial(server)
    assert trial["state"] == "done", trial
    attempts = attempts_of(server, trial["id"])
    assert [a["outcome"] for a in attempts] == ["preempted", "done"], attempts
    assert attempts[0]["error"] == "SIGTERM"
    resumed = attempts[1]["resumed_from_step"]
    assert attempts[1]["resumed"] and resumed >= 2 * EVERY and resumed % EVERY == 0, attempts
    assert trial["results"]["start"] == resumed
    assert steps_run(ledger) <= STEPS + EVERY, "at most one checkpoint interval run twice"
    assert steps_run(ledger) == ran_first + STEPS - resumed


def test_kill_9_of_a_worker_resumes_from_the_last_uploaded_checkpoint(
    start_server, workers, tmp_path
):
    ledger = tmp_path / "ledger"
    directory = tmp_path / "server"
    write_experiment(directory, ledger, "object")
    server = start_server(directory, "--lease-seconds", "3")
    first = workers(server, tmp_path / "w1", "--download_scripts", "--save_models=False")

    def uploaded_step() -> int | None:
        trials = trials_of(server, NAME)
        if not trials:
            return None
        checkpoint = server.get(f"/api/v1/trials/{trials[0]['id']}").json().get("checkpoint")
        return checkpoint["step"] if checkpoint and checkpoint["step"] >= 2 * EVERY else None

    kept = wait_for(uploaded_step, timeout=120)
    first.kill()  # SIGKILL to the worker's whole session: no chance to hand anything back
    second = workers(server, tmp_path / "w2", "--download_scripts", "--save_models=False")
    assert second.wait(timeout=120) == 0, second.output()
    trial = the_trial(server)
    assert trial["state"] == "done", trial
    attempts = attempts_of(server, trial["id"])
    assert attempts[-1]["outcome"] == "done" and attempts[-1]["resumed"], attempts
    assert attempts[-1]["resumed_from_step"] >= kept
    assert trial["results"]["start"] == attempts[-1]["resumed_from_step"]


def test_bad_checkpoints_are_said_in_the_trials_log_and_the_trial_completes(
    start_server, workers, tmp_path
):
    ledger = tmp_path / "ledger"
    directory = tmp_path / "server"
    write_experiment(directory, ledger, "bad", "save_in_init: true\n")
    server = start_server(directory, "--max-upload-mb", "1")
    worker = workers(server, tmp_path / "w", "--download_scripts", "--save_models=False")
    assert worker.wait(timeout=120) == 0, worker.output()
    trial = the_trial(server)
    assert trial["state"] == "done", trial
    assert trial["results"]["start"] == 0
    assert steps_run(ledger) == STEPS
    log = server.get(f"/api/v1/trials/{trial['id']}/log").text
    assert "checkpoint at step 1 not saved: " in log, log  # torch cannot pickle a lambda
    assert "checkpoint at step 2 not saved: FileNotFoundError: " in log, log
    assert re.search(
        r"checkpoint at step 3 not kept: \d+\.\d MiB is over the server's --max-upload-mb", log
    ), log
    assert "save_checkpoint() outside run_one is ignored" in worker.output()


def test_checkpoint_dir_comes_back_in_the_next_attempt(start_server, workers, tmp_path):
    ledger = tmp_path / "ledger"
    directory = tmp_path / "server"
    write_experiment(directory, ledger, "dir")
    server = start_server(directory, "--lease-seconds", "60")
    first = workers(server, tmp_path / "w1", "--download_scripts", "--save_models=False")
    wait_for(lambda: steps_run(ledger) >= EVERY + 2, timeout=120)
    first.process.send_signal(signal.SIGUSR1)
    assert first.wait(timeout=60) == 138, first.output()
    second = workers(server, tmp_path / "w2", "--download_scripts", "--save_models=False")
    assert second.wait(timeout=120) == 0, second.output()
    trial = the_trial(server)
    assert trial["state"] == "done", trial
    assert "from-first.txt" in trial["results"]["seen"]
    assert "state.txt" in trial["results"]["seen"]
    assert trial["results"]["start"] >= EVERY
    attempts = attempts_of(server, trial["id"])
    assert [a["outcome"] for a in attempts] == ["preempted", "done"], attempts
    assert attempts[0]["error"] == "SIGUSR1"


def test_a_second_sigusr1_does_not_kill_the_trial_that_is_stopping(start_server, workers, tmp_path):
    """A batch system's time-limit warning can reach the worker twice (directly and forwarded
    by the job script): the second SIGUSR1 must not cut the trial's checkpointing short."""
    directory = tmp_path / "server"
    directory.mkdir()
    marker = tmp_path / "returned"
    (directory / "config.yaml").write_text(
        f"experiment_name: {NAME}\nhyperparameters:\n  marker: ['{marker}']\n"
    )
    (directory / "experiment.py").write_text(
        textwrap.dedent(
            """\
            import pathlib, time
            import gridexp

            def init_dataset(config):
                return None

            def run_one(hyperparameters, dataset):
                marker = pathlib.Path(hyperparameters["marker"])
                (marker.parent / "started").write_text("yes")
                while not gridexp.should_stop():
                    time.sleep(0.05)
                time.sleep(2)  # a slow checkpoint
                marker.write_text(gridexp.stop_reason())
                return {}, None
            """
        )
    )
    server = start_server(directory, "--lease-seconds", "60")
    worker = workers(server, tmp_path / "w1", "--download_scripts", "--save_models=False")
    wait_for((tmp_path / "started").exists, timeout=120)
    worker.process.send_signal(signal.SIGUSR1)
    wait_for(lambda: "stopping" in worker.output(), timeout=30)
    worker.process.send_signal(signal.SIGUSR1)
    assert worker.wait(timeout=60) == 138, worker.output()
    assert "SIGUSR1 again: already stopping" in worker.output()
    assert marker.read_text() == "preempted", worker.output()
    assert [a["outcome"] for a in attempts_of(server, the_trial(server)["id"])] == ["preempted"]
