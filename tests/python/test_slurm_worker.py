"""A worker in a Slurm job (issue 19): it registers where it runs (SLURM_* variables), the
server serves that in /api/v1/workers and the dashboard shows it; and the executor outlives the
SIGTERM that scancel sends to every process of the job, so the worker preempts the trial
cleanly instead of losing it. Real gridexp-server, gridexp-worker and executor on loopback."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

from conftest import register, trials_of, wait_for
from test_dashboard import browser, expect, log_in, page  # noqa: F401 (fixtures)

NAME = "slurm"

# Each trial writes the executor's pid (the embedded Python's) to executor.pid, then runs
# until `release` exists or it is told to stop. Index 1 first checks the executor's signal
# handling from inside: it survives SIGTERM and SIGUSR1 sent to itself, while a child it forks
# dies of SIGTERM.
EXPERIMENT = textwrap.dedent(
    """\
    import os, pathlib, signal, time
    import gridexp

    def init_dataset(config):
        return None

    def forked_child_dies_of_sigterm():
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM

    def run_one(hyperparameters, dataset):
        directory = pathlib.Path(hyperparameters["directory"])
        if hyperparameters["index"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGUSR1)
            return {"forked_child_died": forked_child_dies_of_sigterm()}, None
        (directory / "executor.pid").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not (directory / "release").exists() and time.monotonic() < deadline:
            if gridexp.should_stop():
                return {"stopped": gridexp.stop_reason()}, None
            time.sleep(0.1)
        return {"released": True}, None
    """
)

IN_SLURM = {
    "SLURM_JOB_ID": "1236",
    "SLURM_ARRAY_JOB_ID": "1234",
    "SLURM_ARRAY_TASK_ID": "2",
    "SLURM_JOB_NODELIST": "node[01-02]",
    "SLURM_RESTART_COUNT": "1",
}


def experiment(start_server, directory: Path, indices: list[int]):
    directory.mkdir(parents=True)
    values = "\n".join(f"    - {i}" for i in indices)
    (directory / "config.yaml").write_text(
        f"experiment_name: {NAME}\nhyperparameters:\n  index:\n{values}\n"
        f"  directory: ['{directory}']\n"
    )
    (directory / "experiment.py").write_text(EXPERIMENT)
    return start_server(directory, "--lease-seconds", "60")


def attempts_of(server, trial_id: str) -> list[dict]:
    response = server.get(f"/api/v1/trials/{trial_id}/attempts")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_worker_in_a_slurm_job_registers_where_it_runs(
    start_server, workers, tmp_path, monkeypatch
):
    directory = tmp_path / "server"
    server = experiment(start_server, directory, [1])
    for name, value in IN_SLURM.items():
        monkeypatch.setenv(name, value)
    worker = workers(server, tmp_path / "w", "--download_scripts", "--save_models=False")
    assert worker.wait(timeout=120) == 0, worker.output()
    (listed,) = server.get("/api/v1/workers").json()
    assert listed["slurm"] == {
        "job_id": "1236",
        "array_job_id": "1234",
        "array_task_id": 2,
        "node_list": "node[01-02]",
        "restart_count": 1,
    }
    (trial,) = trials_of(server, NAME)
    assert trial["state"] == "done", trial
    assert trial["results"] == {"forked_child_died": True}, "the executor outlived its signals"


def test_a_worker_outside_slurm_has_no_placement(server):
    worker_id = register(server)
    (listed,) = server.get("/api/v1/workers").json()
    assert listed["id"] == worker_id and listed["slurm"] is None


def test_scancel_signals_every_process_and_the_trial_is_preempted_not_lost(
    start_server, workers, tmp_path
):
    directory = tmp_path / "server"
    server = experiment(start_server, directory, [0])
    worker = workers(server, tmp_path / "w", "--download_scripts", "--save_models=False")
    executor_pid = int(wait_for(lambda: _read(directory / "executor.pid"), timeout=120))
    # scancel: SIGTERM to the executor and the worker alike (the executor's first).
    os.kill(executor_pid, signal.SIGTERM)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=90) == 143, worker.output()
    (trial,) = trials_of(server, NAME)
    assert trial["state"] == "pending", trial
    attempts = attempts_of(server, trial["id"])
    assert [a["outcome"] for a in attempts] == ["preempted"], attempts
    assert attempts[0]["error"] == "SIGTERM"


def test_a_sigterm_to_the_executor_alone_changes_nothing(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    server = experiment(start_server, directory, [0])
    worker = workers(server, tmp_path / "w", "--download_scripts", "--save_models=False")
    executor_pid = int(wait_for(lambda: _read(directory / "executor.pid"), timeout=120))
    os.kill(executor_pid, signal.SIGTERM)
    os.kill(executor_pid, signal.SIGUSR1)
    (directory / "release").touch()
    assert worker.wait(timeout=120) == 0, worker.output()
    (trial,) = trials_of(server, NAME)
    assert trial["state"] == "done" and trial["results"] == {"released": True}, trial
    assert [a["outcome"] for a in attempts_of(server, trial["id"])] == ["done"]


def test_the_workers_panel_shows_the_slurm_job(
    server,
    page,  # noqa: F811 (the fixture imported above)
):
    placement = {
        "job_id": "1236",
        "array_job_id": "1234",
        "array_task_id": 2,
        "node_list": "node01",
        "restart_count": 1,
    }
    response = server.post("/api/v1/workers", {"host": "node01", "slurm": placement})
    assert response.status_code == 201, response.text
    log_in(page, server.url)
    expect(page.get_by_test_id("worker-slurm")).to_have_text(
        "Slurm job 1234_2 on node01 (restart 1)"
    )


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
