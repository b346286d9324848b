"""--trials-per-gpu auto and the out-of-memory rerun, on a machine without a GPU: a fake
/proc/driver/nvidia tree (GRIDEXP_PROC_ROOT), a fake NVML (tests/fakes/fake_nvml.cpp) for the
GPU's total memory, and a fake torch.cuda in experiment.py (tests/fakes/fake_torch.py) for
each trial's peak. Trials record when they ran (time.monotonic, one clock for every process),
from which the tests count how many ran at once."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import grid_config, trials_of
from test_gpu_slots import fake_proc, workers_listed

NAME = "packing"
GIB = 1 << 30
FAKES = Path(__file__).resolve().parents[1] / "fakes"

# Each run of a trial allocates `peak` bytes on the fake GPU and records its interval in
# runs/<index>-<n> ("start end outcome"). A trial whose index is in `company` waits (up to
# 3 s) until `gather` trials run at once, so that as many run together as the worker lets.
# The trial whose index is `oom_index` waits for trial 0 and raises the fake CUDA
# out-of-memory error when it finds another trial running beside it; trial 0 then waits for
# that run to end.
EXPERIMENT = textwrap.dedent(
    """\
    import os, pathlib, sys, time

    sys.path.insert(0, {fakes!r})
    import fake_torch

    torch = fake_torch.install()
    STATE = pathlib.Path({state!r})
    PEAK = {peak}
    COMPANY = {company}
    GATHER = {gather}
    OOM_INDEX = {oom_index}

    def init_dataset(config):
        return None

    def wait_until(ready, seconds=60):
        deadline = time.monotonic() + seconds
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)

    def others_running(me):
        return [p for p in (STATE / "running").iterdir() if p.name != me]

    def run_one(hyperparameters, dataset):
        index = hyperparameters["index"]
        me = f"{{index}}-{{os.getpid()}}"
        (STATE / "running" / me).write_text("")
        (STATE / "arrived" / me).write_text("")
        start = time.monotonic()
        tensor = fake_torch.FakeTensor(torch.cuda, PEAK)
        outcome = "ok"
        try:
            if index == OOM_INDEX:
                wait_until(lambda: any((STATE / "arrived").glob("0-*")))
            if index == OOM_INDEX and others_running(me):
                outcome = "oom"
                raise torch.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
            if index in COMPANY:
                wait_until(lambda: len(others_running(me)) + 1 >= GATHER, 3)
            if index == 0 and OOM_INDEX is not None:
                wait_until(lambda: any((STATE / "arrived").glob(f"{{OOM_INDEX}}-*")))
                wait_until(lambda: any((STATE / "runs").glob(f"{{OOM_INDEX}}-*")), 5)
            time.sleep(0.5)
            return {{"index": index, "shared": os.environ.get("GRIDEXP_SHARED_GPU", "unset"),
                    "alone": not others_running(me)}}, None
        finally:
            del tensor
            runs = len(list((STATE / "runs").glob(f"{{index}}-*")))
            (STATE / "runs" / f"{{index}}-{{runs}}").write_text(
                f"{{start}} {{time.monotonic()}} {{outcome}}")
            (STATE / "running" / me).unlink()
    """
)


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory) -> Path:
    compiler = shutil.which("c++") or shutil.which("g++")
    assert compiler, "a C++ compiler is needed to build the fake NVML (scripts/setup.sh has one)"
    library = tmp_path_factory.mktemp("nvml") / "libfake-nvml.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", library, FAKES / "fake_nvml.cpp"], check=True
    )
    return library


@pytest.fixture
def one_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = fake_proc(tmp_path / "proc", ["Fake GPU A"])
    monkeypatch.setenv("GRIDEXP_PROC_ROOT", str(root))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return root


def write_experiment(
    directory: Path,
    points: int,
    *,
    peak: int,
    company: tuple[int, ...] = (),
    gather: int = 0,
    oom_index: int | None = None,
) -> Path:
    directory.mkdir(parents=True)
    state = directory.parent / "state"
    for part in ("running", "arrived", "runs"):
        (state / part).mkdir(parents=True)
    (directory / "config.yaml").write_text(grid_config(NAME, points))
    (directory / "experiment.py").write_text(
        EXPERIMENT.format(
            fakes=str(FAKES),
            state=str(state),
            peak=peak,
            company=set(company) or "set()",
            gather=gather,
            oom_index=oom_index,
        )
    )
    return state


def runs_of(state: Path) -> list[tuple[int, float, float, str]]:
    """(index, start, end, outcome) of every run, by start."""
    runs = []
    for path in (state / "runs").iterdir():
        start, end, outcome = path.read_text().split()
        runs.append((int(path.name.split("-")[0]), float(start), float(end), outcome))
    return sorted(runs, key=lambda run: run[1])


def most_at_once(runs) -> int:
    edges = sorted([(start, 1) for _, start, _, _ in runs] + [(end, -1) for _, _, end, _ in runs])
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def overlaps(run, others) -> list:
    return [o for o in others if o is not run and o[1] < run[2] and run[1] < o[2]]


def test_auto_runs_one_trial_then_as_many_as_the_measured_peak_fits(
    start_server, workers, tmp_path, monkeypatch, one_gpu, fake_nvml
):
    # floor(0.9 * 10 GiB / (2 GiB + 512 MiB)) = 3 trials at once, reached one sharer at a time.
    monkeypatch.setenv("GRIDEXP_NVML_LIBRARY", str(fake_nvml))
    monkeypatch.setenv("FAKE_NVML_GPUS", f"10:{GIB}:{10 * GIB}")
    directory = tmp_path / "server"
    state = write_experiment(directory, 9, peak=2 * GIB, company=tuple(range(1, 9)), gather=3)
    server = start_server(directory)
    worker = workers(
        server,
        tmp_path / "w",
        "--download_scripts",
        "--save_models=False",
        "--trials-per-gpu",
        "auto",
    )
    assert worker.wait(timeout=240) == 0, worker.output()
    assert "running up to 8 executor slots" in worker.output()

    trials = trials_of(server, NAME)
    assert [t["state"] for t in trials] == ["done"] * 9, worker.output()
    assert {t["peak_gpu_memory_bytes"] for t in trials} == {2 * GIB}
    assert {t["results"]["shared"] for t in trials} == {"1"}
    runs = runs_of(state)
    assert len(runs) == 9
    first = runs[0]
    assert not overlaps(first, runs), f"the first trial runs alone: {runs}"
    second = min(runs[1:], key=lambda run: run[2])
    assert most_at_once([run for run in runs if run[1] < second[2]]) == 2, (
        f"one sharer until a second trial ends: {runs}"
    )
    assert most_at_once(runs) == 3, runs
    assert len({t["worker"] for t in trials}) >= 3
    assert len(workers_listed(server)) == 8


def test_a_trial_out_of_memory_beside_another_runs_again_alone_and_does_not_fail(
    start_server, workers, tmp_path, one_gpu
):
    directory = tmp_path / "server"
    state = write_experiment(directory, 5, peak=GIB, oom_index=1)
    server = start_server(directory)
    worker = workers(
        server, tmp_path / "w", "--download_scripts", "--save_models=False", "--trials-per-gpu=2"
    )
    # --raise_on_failure is True: a failure would end the worker with 1.
    assert worker.wait(timeout=240) == 0, worker.output()
    output = worker.output()
    assert "ran out of GPU memory while other trials shared its GPU" in output, output

    trials = {t["hyperparameters"]["index"]: t for t in trials_of(server, NAME)}
    assert [trials[i]["state"] for i in range(5)] == ["done"] * 5, output
    rerun = trials[1]
    assert rerun["attempts"] == 1
    assert rerun["results"]["alone"] is True
    attempts = server.get(f"/api/v1/trials/{rerun['id']}/attempts").json()
    assert [a["outcome"] for a in attempts] == ["done"], attempts
    log = server.get(f"/api/v1/trials/{rerun['id']}/log").text
    assert "ran out of GPU memory while other trials shared its GPU" in log, log

    runs = runs_of(state)
    out_of_memory, again = [run for run in runs if run[0] == 1]
    assert (out_of_memory[3], again[3]) == ("oom", "ok"), runs
    assert overlaps(out_of_memory, runs), "it ran beside another trial"
    assert not overlaps(again, runs), f"the rerun ran alone: {runs}"
    assert most_at_once(runs) == 2, runs


def test_auto_without_nvml_runs_one_trial_per_gpu_and_says_so(
    start_server, workers, tmp_path, monkeypatch, one_gpu
):
    monkeypatch.setenv("GRIDEXP_NVML_LIBRARY", str(tmp_path / "no-such-libnvidia-ml.so.1"))
    directory = tmp_path / "server"
    state = write_experiment(directory, 3, peak=GIB)
    server = start_server(directory)
    worker = workers(
        server,
        tmp_path / "w",
        "--download_scripts",
        "--save_models=False",
        "--trials-per-gpu",
        "auto",
    )
    assert worker.wait(timeout=180) == 0, worker.output()
    output = worker.output()
    assert output.count("--trials-per-gpu auto: NVML") == 1, output
    assert "cannot be loaded, so GPU memory cannot be measured: one trial per GPU" in output
    trials = trials_of(server, NAME)
    assert [t["state"] for t in trials] == ["done"] * 3
    assert {t["results"]["shared"] for t in trials} == {"unset"}
    assert most_at_once(runs_of(state)) == 1
    (listed,) = workers_listed(server)
    assert listed["devices"] == ["GPU 0: Fake GPU A"]


def test_auto_on_the_cpu_runs_one_executor(start_server, workers, tmp_path, one_gpu):
    directory = tmp_path / "server"
    write_experiment(directory, 2, peak=GIB)
    server = start_server(directory)
    worker = workers(
        server, tmp_path / "w", "--download_scripts", "--gpus=none", "--trials-per-gpu=auto"
    )
    assert worker.wait(timeout=180) == 0, worker.output()
    assert "one executor on the CPU (--trials-per-gpu counts per GPU)" in worker.output()
    assert [t["results"]["shared"] for t in trials_of(server, NAME)] == ["unset", "unset"]
    (listed,) = workers_listed(server)
    assert listed["devices"] == []
