"""One gridexp-worker, several executor slots: --gpus and --trials-per-gpu on a machine without
a GPU, through a fake /proc/driver/nvidia tree (GRIDEXP_PROC_ROOT, the worker's test seam)."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import grid_config, trials_of, wait_for

pytest.importorskip(
    "torch",
    reason="TORCH IS MISSING: the worker end-to-end tests are skipped; "
    "pip install torch==2.13.0 (scripts/setup.sh does)",
)

# Each trial records the GPU its executor was given. With `barrier` set, the first trials wait
# (up to two minutes) until `barrier` trials have started, then until the test writes `go`:
# a trial that ran without enough others at once says so in its results.
EXPERIMENT = textwrap.dedent(
    """\
    import os, pathlib, time

    ARRIVED = pathlib.Path({arrived!r})

    def init_dataset(config):
        return None

    def wait_until(ready, seconds=120):
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def leave_a_daemon(index):
        child = os.fork()
        if child == 0:
            os.setsid()
            if os.fork() == 0:
                (ARRIVED.parent / f"daemon-{{index}}").write_text(str(os.getpid()))
                os.execvp("sleep", ["sleep", "1000"])
            os._exit(0)
        os.waitpid(child, 0)

    def run_one(hyperparameters, dataset):
        barrier = hyperparameters.get("barrier", 0)
        index = hyperparameters["index"]
        if hyperparameters.get("daemon", False):
            leave_a_daemon(index)
        (ARRIVED / f"{{index}}-{{os.getpid()}}").write_text("")
        together = wait_until(lambda: len(list(ARRIVED.iterdir())) >= barrier)
        held = barrier and index >= hyperparameters.get("free", 0)
        went = wait_until(lambda: (ARRIVED.parent / "go").exists()) if held else True
        return {{"index": index, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
                "slot": os.environ.get("GRIDEXP_SLOT", "unset"),
                "shared": os.environ.get("GRIDEXP_SHARED_GPU", "unset"), "together": together,
                "went": went}}, None
    """
)


def fake_proc(root: Path, models: list[str]) -> Path:
    """A /proc with the driver's files for `models` (device minors 0, 1, ...)."""
    for minor, model in enumerate(models):
        gpu = root / "driver" / "nvidia" / "gpus" / f"0000:{minor + 1:02x}:00.0"
        gpu.mkdir(parents=True)
        (gpu / "information").write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 42\nDevice Minor: \t {minor}\n"
        )
    return root


@pytest.fixture
def two_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = fake_proc(tmp_path / "proc", ["Fake GPU A", "Fake GPU B"])
    monkeypatch.setenv("GRIDEXP_PROC_ROOT", str(root))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return root


def write_experiment(directory: Path, points: int, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    arrived = directory.parent / "arrived"
    arrived.mkdir()
    (directory / "config.yaml").write_text(grid_config("slots", points) + extra)
    (directory / "experiment.py").write_text(EXPERIMENT.format(arrived=str(arrived)))
    return arrived


def executors_of(worker_pid: int) -> dict[int, str]:
    """The worker's executor children and the CUDA_VISIBLE_DEVICES each started with."""
    pids = subprocess.run(
        ["pgrep", "-P", str(worker_pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    found = {}
    for pid in map(int, pids):
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        variables = dict(entry.decode().split("=", 1) for entry in environment if b"=" in entry)
        found[pid] = variables.get("CUDA_VISIBLE_DEVICES", "unset")
    return found


def workers_listed(server) -> list[dict]:
    answer = server.get("/api/v1/workers").json()
    return answer["workers"] if isinstance(answer, dict) else answer


def slots_ready(server, worker_pid: int, count: int) -> dict[int, str] | None:
    """The executors, once `count` trials run and each slot has its executor."""
    running = [t for t in trials_of(server, "slots") if t["state"] == "running"]
    executors = executors_of(worker_pid)
    return executors if len(running) == count and len(executors) == count else None


def test_two_gpus_two_trials_each_run_four_trials_at_once_and_survive_a_kill(
    start_server, workers, tmp_path, two_gpus
):
    directory = tmp_path / "server"
    arrived = write_experiment(directory, 8, "  barrier:\n    - 4\n")
    server = start_server(directory)
    worker = workers(
        server,
        tmp_path / "w",
        "--download_scripts",
        "--save_models=False",
        "--raise_on_failure=False",
        "--gpus",
        "0,1",
        "--trials-per-gpu",
        "2",
    )
    executors = wait_for(lambda: slots_ready(server, worker.process.pid, 4), timeout=180)
    assert sorted(executors.values()) == ["0", "0", "1", "1"], worker.output()

    listed = [w for w in workers_listed(server) if w["pid"] == worker.process.pid]
    assert sorted(d for w in listed for d in w["devices"]) == [
        "GPU 0: Fake GPU A",
        "GPU 0: Fake GPU A",
        "GPU 1: Fake GPU B",
        "GPU 1: Fake GPU B",
    ]
    running = {t["id"]: t for t in trials_of(server, "slots") if t["state"] == "running"}
    assert sorted(w["current_trial"] for w in listed) == sorted(running)

    victim_pid = next(iter(executors))
    os.kill(victim_pid, signal.SIGKILL)

    def lost_attempt() -> tuple[str, dict] | None:
        for trial_id in running:
            history = server.get(f"/api/v1/trials/{trial_id}/attempts").json()
            if history and history[0]["outcome"] == "lost":
                return trial_id, history[0]
        return None

    victim_id, lost = wait_for(lost_attempt)
    assert "killed by signal 9" in lost["error"], lost
    survivors = {pid for pid in executors if pid != victim_pid}
    assert survivors <= set(executors_of(worker.process.pid)), "the other executors run on"
    still_running = {t["id"] for t in trials_of(server, "slots") if t["state"] == "running"}
    assert set(running) - {victim_id} <= still_running, worker.output()

    # The lost trial went back to pending at once, and a slot completes it.
    (arrived.parent / "go").write_text("")
    assert worker.wait(timeout=240) == 0, worker.output()

    trials = {t["id"]: t for t in trials_of(server, "slots")}
    assert all(t["state"] == "done" for t in trials.values()), worker.output()
    assert trials[victim_id]["attempts"] == 2, "the lost attempt counts"
    gpu_of_worker = {w["id"]: w["devices"][0][4] for w in listed}
    for trial in trials.values():
        assert trial["results"]["together"] and trial["results"]["went"], trial
        assert trial["results"]["cuda"] == gpu_of_worker[trial["worker"]], trial
        assert trial["results"]["slot"] in {"0", "1", "2", "3"}
        # Two executors on each GPU: each gives its cached memory back after every trial.
        assert trial["results"]["shared"] == "1", trial


def test_sigint_releases_every_slots_trial_and_ends_every_executor(
    start_server, workers, tmp_path, two_gpus
):
    directory = tmp_path / "server"
    write_experiment(directory, 6, "  barrier:\n    - 4\n")
    server = start_server(directory)
    # The trials wait at the barrier, never polling gridexp.should_stop(): killed after the grace.
    worker = workers(
        server,
        tmp_path / "w",
        "--download_scripts",
        "--gpus=all",
        "--trials-per-gpu=2",
        "--grace_seconds=1",
    )
    executors = wait_for(lambda: slots_ready(server, worker.process.pid, 4), timeout=180)
    os.kill(worker.process.pid, signal.SIGINT)
    assert worker.wait(timeout=120) == 130, worker.output()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in executors), timeout=30)
    trials = trials_of(server, "slots")
    assert [t["state"] for t in trials] == ["pending"] * 6, worker.output()
    assert worker.output().count("released back to pending") == 4, worker.output()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def daemon_pid(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_a_slot_ends_what_its_trial_left_running_and_not_another_slots(
    start_server, workers, tmp_path, two_gpus
):
    directory = tmp_path / "server"
    extra = "  barrier:\n    - 2\n  free:\n    - 1\n  daemon:\n    - true\n"
    arrived = write_experiment(directory, 2, extra)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts", "--save_models=False")
    first, second = (
        int(wait_for(lambda index=index: daemon_pid(arrived.parent / f"daemon-{index}"), 180))
        for index in (0, 1)
    )
    wait_for(lambda: not alive(first), timeout=120)
    assert alive(second), "the other slot's trial still runs: what it started is left alone"
    # The slot ends what its trial left running before it delivers the trial.
    wait_for(
        lambda: [t["state"] for t in trials_of(server, "slots")] == ["done", "running"], timeout=60
    )
    (arrived.parent / "go").write_text("")
    assert worker.wait(timeout=180) == 0, worker.output()
    wait_for(lambda: not alive(second), timeout=30)
    assert worker.output().count("left running") == 2, worker.output()


def test_max_trials_counts_over_every_slot(start_server, workers, tmp_path, two_gpus):
    directory = tmp_path / "server"
    write_experiment(directory, 9)
    server = start_server(directory)
    worker = workers(
        server, tmp_path / "w", "--download_scripts", "--trials-per-gpu=2", "--max_trials=5"
    )
    assert worker.wait(timeout=180) == 0, worker.output()
    states = [t["state"] for t in trials_of(server, "slots")]
    assert states.count("done") == 5, worker.output()
    assert states.count("pending") == 4


def test_gpus_none_runs_one_executor_that_sees_no_gpu(start_server, workers, tmp_path, two_gpus):
    directory = tmp_path / "server"
    write_experiment(directory, 3)
    server = start_server(directory)
    worker = workers(
        server, tmp_path / "w", "--download_scripts", "--gpus=none", "--trials-per-gpu=3"
    )
    assert worker.wait(timeout=180) == 0, worker.output()
    assert "one executor on the CPU (--trials-per-gpu counts per GPU)" in worker.output()
    trials = trials_of(server, "slots")
    assert [t["results"]["cuda"] for t in trials] == ["", "", ""]
    assert [t["results"]["slot"] for t in trials] == ["unset"] * 3
    assert [t["results"]["shared"] for t in trials] == ["unset"] * 3
    (listed,) = workers_listed(server)
    assert listed["devices"] == []


def test_an_inherited_cuda_visible_devices_is_what_the_worker_sees(
    start_server, workers, tmp_path, two_gpus, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    directory = tmp_path / "server"
    write_experiment(directory, 2)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts")
    assert worker.wait(timeout=180) == 0, worker.output()
    assert [t["results"]["cuda"] for t in trials_of(server, "slots")] == ["1", "1"]
    assert [t["results"]["shared"] for t in trials_of(server, "slots")] == ["unset", "unset"]
    (listed,) = workers_listed(server)
    assert listed["devices"] == ["GPU 1: Fake GPU B"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--gpus", "7"], "--gpus 7: no such GPU; the GPUs here are 0 (GPU 0: Fake GPU A), 1"),
        (["--gpus=0,0"], "--gpus names GPU 0 twice"),
        (["--trials-per-gpu=0"], "--trials-per-gpu needs a whole number of at least 1"),
        (["--trials-per-gpu", "-1"], "--trials-per-gpu needs a whole number of at least 1"),
        (["--trials-per-gpu=autox"], "--trials-per-gpu needs a whole number of at least 1"),
    ],
)
def test_bad_gpu_flags_exit_2_with_one_line_naming_the_flag(two_gpus, arguments, expected):
    result = subprocess.run(
        ["gridexp-worker", "--address=127.0.0.1:9", "--save_models=False", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridexp-worker: error: " + expected), (
        result.stderr
    )
