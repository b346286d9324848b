"""`gridexp slurm` against a real single-node Slurm (slurm_cluster.py) and a real gridexp-server:
the job array runs the grid to completion, scancel and the time-limit warning hand trials back
with their checkpoints, and Slurm's verdict on each task (COMPLETED, FAILED) is the truth.

Accounting is off in such a cluster, so the tasks' ends are read with `scontrol show job`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PASSWORD, trials_of, wait_for
from slurm_cluster import SlurmCluster

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment"

SLOW_EXPERIMENT = textwrap.dedent(
    """\
    import time
    import gridexp

    def init_dataset(config):
        return None

    def run_one(hyperparameters, dataset):
        checkpoint = gridexp.load_checkpoint()
        start = checkpoint["step"] if checkpoint is not None else 0
        for step in range(start, hyperparameters["steps"]):
            if gridexp.should_stop():
                gridexp.save_checkpoint({"step": step}, step=step)
                return {"stopped_at": step, "reason": gridexp.stop_reason()}, None
            time.sleep(hyperparameters["pause"])
            gridexp.save_checkpoint({"step": step + 1}, step=step + 1)
        return {"start": start, "steps": hyperparameters["steps"]}, None
    """
)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    why = SlurmCluster.missing()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def gridexp_slurm(slurm: SlurmCluster, server, directory: Path, *arguments: str) -> str:
    """Runs `gridexp slurm --submit` in `directory` (sbatch writes the tasks' logs there), the
    password from GRIDEXP_PASSWORD; the job id."""
    environment = slurm.environment()
    environment["GRIDEXP_PASSWORD"] = PASSWORD
    environment.pop("GRIDEXP_PASSWORD_FILE", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gridexp.cli",
            "--address",
            f"127.0.0.1:{server.port}",
            "slurm",
            "--submit",
            *arguments,
        ],
        cwd=directory,
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    first_line = completed.stdout.splitlines()[0]
    assert first_line.startswith("submitted job array "), completed.stdout
    return first_line.split()[3].rstrip(":")


def task_logs(directory: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')}"
        for path in sorted(directory.glob("gridexp-*.out"))
    )


def slow_experiment(directory: Path, name: str, points: int, steps: int, pause: float) -> None:
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(
        f"experiment_name: {name}\n"
        "hyperparameters:\n"
        f"  index: {list(range(points))}\n"
        f"  steps: [{steps}]\n"
        f"  pause: [{pause}]\n"
    )
    (directory / "experiment.py").write_text(SLOW_EXPERIMENT)


def workers_of(server) -> list[dict]:
    return server.get("/api/v1/workers").json()


def attempts_of(server, trial_id: str) -> list[dict]:
    return server.get(f"/api/v1/trials/{trial_id}/attempts").json()


def test_a_job_array_of_three_workers_runs_the_example_grid_to_completion(
    slurm, start_server, tmp_path
):
    directory = tmp_path / "sentiment"
    directory.mkdir()
    for name in ("experiment.py", "config.yaml"):
        shutil.copy(EXAMPLE / name, directory / name)
    server = start_server(directory)

    job = gridexp_slurm(slurm, server, directory, "--workers", "3", "--", "--download_data=False")
    tasks = slurm.wait_until_ended(job, tasks=3, timeout=600)

    logs = task_logs(directory)
    assert [task["JobState"] for task in tasks] == ["COMPLETED"] * 3, logs
    assert [task["ExitCode"] for task in tasks] == ["0:0"] * 3, logs
    trials = trials_of(server, "sentiment_analysis1")
    assert len(trials) == 8
    assert all(trial["state"] == "done" for trial in trials), trials
    assert all(trial["attempts"] == 1 for trial in trials), trials
    assert all(trial["model"] for trial in trials)  # the models came back
    # Each worker says which array task it was, on which node.
    placements = [worker["slurm"] for worker in workers_of(server)]
    assert sorted(placement["array_task_id"] for placement in placements) == [0, 1, 2]
    assert {placement["array_job_id"] for placement in placements} == {job}
    assert {placement["node_list"] for placement in placements} == {"localhost"}
    assert all(placement["restart_count"] == 0 for placement in placements)
    # A task that finished cleans its directory up.
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"gridexp-{job}_*"))
    # `gridexp workers` shows the array task of each.
    shown = subprocess.run(
        [sys.executable, "-m", "gridexp.cli", "--address", f"127.0.0.1:{server.port}", "workers"],
        capture_output=True,
        text=True,
        env={**os.environ, "GRIDEXP_PASSWORD": PASSWORD},
        check=True,
    ).stdout
    for task in range(3):
        assert f"{job}_{task}@localhost" in shown, shown


def test_scancel_of_one_task_mid_trial_hands_its_trial_to_another_task(
    slurm, start_server, tmp_path
):
    directory = tmp_path / "scancel"
    slow_experiment(directory, "scancel", points=3, steps=30, pause=0.2)
    server = start_server(directory)
    job = gridexp_slurm(slurm, server, directory, "--workers", "2", "--", "--save_models=False")

    def task_0_trial() -> str | None:
        for worker in workers_of(server):
            if (worker.get("slurm") or {}).get("array_task_id") == 0 and worker["current_trial"]:
                return worker["current_trial"]
        return None

    trial_id = wait_for(task_0_trial, timeout=180, interval=0.2)
    wait_for(lambda: server.get(f"/api/v1/trials/{trial_id}").json()["checkpoint"], timeout=60)
    slurm.run("scancel", f"{job}_0")
    tasks = slurm.wait_until_ended(job, tasks=2, timeout=300)

    logs = task_logs(directory)
    states = {task["ArrayTaskId"]: task["JobState"] for task in tasks}
    assert states == {"0": "CANCELLED", "1": "COMPLETED"}, logs
    trials = trials_of(server, "scancel")
    assert all(trial["state"] == "done" for trial in trials), (trials, logs)
    attempts = attempts_of(server, trial_id)
    assert [attempt["outcome"] for attempt in attempts] == ["preempted", "done"], (attempts, logs)
    assert attempts[0]["worker"] != attempts[1]["worker"]
    assert attempts[1]["resumed"] is True and attempts[1]["resumed_from_step"] > 0, attempts
    (trial,) = [trial for trial in trials if trial["id"] == trial_id]
    assert trial["results"]["start"] == attempts[1]["resumed_from_step"], trial
    assert "preempted" in logs.lower() or "handed back" in logs.lower(), logs


def test_the_time_limit_warning_checkpoints_and_the_requeued_task_resumes(
    slurm, start_server, tmp_path
):
    directory = tmp_path / "warning"
    slow_experiment(directory, "warning", points=1, steps=40, pause=0.25)
    server = start_server(directory)
    job = gridexp_slurm(slurm, server, directory, "--workers", "1", "--", "--save_models=False")
    (trial,) = trials_of(server, "warning")
    trial_path = f"/api/v1/trials/{trial['id']}"

    def checkpointed_step() -> int:
        checkpoint = server.get(trial_path).json()["checkpoint"]
        return checkpoint["step"] if checkpoint else 0

    wait_for(lambda: checkpointed_step() >= 3, timeout=180, interval=0.2)
    # What Slurm sends --warning-seconds before the time limit (--signal=B:USR1@120): SIGUSR1
    # to the batch shell only, which passes it on to the worker.
    slurm.run("scancel", "--signal=USR1", "--batch", f"{job}_0")
    # The trial is handed back at once, with its checkpoint...
    wait_for(
        lambda: [a["outcome"] for a in attempts_of(server, trial["id"])][:1] == ["preempted"],
        timeout=60,
        interval=0.2,
    )
    # ...and the task requeues itself, starts again and finishes it from the checkpoint.
    wait_for(lambda: (slurm.jobs(job) or [{}])[0].get("Restarts") == "1", timeout=120, interval=0.5)
    (task,) = slurm.wait_until_ended(job, tasks=1, timeout=300)
    logs = task_logs(directory)
    assert task["JobState"] == "COMPLETED" and task["ExitCode"] == "0:0", (task, logs)
    assert task["Restarts"] == "1", task
    assert "requeueing" in logs, logs
    attempts = attempts_of(server, trial["id"])
    assert [attempt["outcome"] for attempt in attempts] == ["preempted", "done"], attempts
    resumed_from = attempts[1]["resumed_from_step"]
    assert attempts[1]["resumed"] is True and resumed_from >= 3, attempts
    (trial,) = trials_of(server, "warning")
    assert trial["state"] == "done"
    assert trial["results"]["start"] == resumed_from
    # The worker of the requeued task says so.
    restarted = [w["slurm"] for w in workers_of(server) if w["slurm"]["restart_count"] == 1]
    assert len(restarted) == 1 and restarted[0]["array_task_id"] == 0


def test_a_trial_that_raises_under_raise_on_failure_ends_the_task_failed(
    slurm, start_server, tmp_path
):
    directory = tmp_path / "failing"
    directory.mkdir()
    (directory / "config.yaml").write_text("experiment_name: failing\nhyperparameters:\n  x: [1]\n")
    (directory / "experiment.py").write_text(
        "def init_dataset(config):\n    return None\n\n"
        "def run_one(hyperparameters, dataset):\n"
        "    raise RuntimeError('the experiment is broken')\n"
    )
    server = start_server(directory)
    job = gridexp_slurm(slurm, server, directory, "--", "--raise_on_failure=True")
    (task,) = slurm.wait_until_ended(job, tasks=1, timeout=300)
    logs = task_logs(directory)
    assert task["JobState"] == "FAILED", (task, logs)
    assert task["ExitCode"] == "1:0", (task, logs)
    assert "the experiment is broken" in logs, logs
    (trial,) = trials_of(server, "failing")
    assert trial["state"] == "failed"
