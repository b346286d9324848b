"""Scenario ``gpu``: short CUDA trials, gridexp against a plain loop over the same grid.

An MLP trained for a fixed number of steps on a dataset that ``init_dataset`` keeps on the
device; each trial takes tens of milliseconds, so what gridexp adds per trial shows. Figures:

- ``plain_loop``: one process calling ``run_one`` over the grid (after one warm-up trial):
  milliseconds per trial spent outside ``run_one``.
- ``save_models=False`` (repeated): one gridexp-worker; its overhead per trial is the span
  from the second attempt's start to the last one's end (the server's timestamps; the first
  trial is the warm-up, as in the plain loop) less the time spent inside ``run_one``, over
  those trials: the coordinator, the worker and every gap between trials. The target (issue
  17) is a median at or under 5 ms more than the plain loop's.
- ``save_models=True``: the same with each trial's model uploaded.
- ``trials_per_gpu=2``, ``4``, ``auto``: trials per second, and the most trials that ran at
  once (from the attempts' spans).

Runs where ``torch.cuda.is_available()``. Without CUDA, ``--quick`` runs the same code on the
CPU (smaller, the device named ``cpu`` in the results: a check that the scenario works, never a
GPU figure), and a full run reports it as not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import gridexp

EXPERIMENT = textwrap.dedent(
    """\
    import time
    import torch

    DEVICE = {device!r}

    def init_dataset(config):
        generator = torch.Generator(device=DEVICE).manual_seed(0)
        x = torch.randn(config["dataset_size"], 64, device=DEVICE, generator=generator)
        return x, (x[:, :8].sum(1) > 0).long()

    def run_one(hyperparameters, dataset):
        x, y = dataset
        torch.manual_seed(hyperparameters["seed"])
        width = hyperparameters["width"]
        model = torch.nn.Sequential(
            torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 2)
        ).to(DEVICE)
        optimizer = torch.optim.SGD(model.parameters(), lr=hyperparameters["lr"])
        started = time.perf_counter()
        for _ in range({steps}):
            batch = torch.randint(0, x.shape[0], (1024,), device=DEVICE)
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        accuracy = (model(x).argmax(1) == y).float().mean()
        return {{"loss": float(loss), "accuracy": float(accuracy),
                 "run_one_s": time.perf_counter() - started}}, model
    """
)

PLAIN_LOOP = textwrap.dedent(
    """\
    import itertools, json, sys, time
    import experiment
    axes = json.loads(sys.argv[1])
    grid = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    dataset = experiment.init_dataset({"dataset_size": int(sys.argv[2])})
    experiment.run_one(grid[0], dataset)  # warm-up: the device's context, the kernels
    started = time.perf_counter()
    inside = sum(experiment.run_one(point, dataset)[0]["run_one_s"] for point in grid)
    print(json.dumps({"trials": len(grid), "total_s": time.perf_counter() - started,
                      "inside_s": inside}))
    """
)


def cuda_available(python: str) -> bool:
    probe = subprocess.run(
        [python, "-c", "import torch; print(torch.cuda.is_available())"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() == "True"


def write_grid(directory: Path, axes: dict[str, list], dataset_size: int, device: str, steps: int):
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["experiment_name: gpu_short_trials", f"dataset_size: {dataset_size}"]
    lines.append("hyperparameters:")
    lines += [f"  {key}: {json.dumps(values)}" for key, values in axes.items()]
    (directory / "config.yaml").write_text("\n".join(lines) + "\n")
    (directory / "experiment.py").write_text(EXPERIMENT.format(device=device, steps=steps))


def plain_loop(directory: Path, axes: dict[str, list], dataset_size: int) -> dict[str, Any]:
    answer = subprocess.run(
        [sys.executable, "-c", PLAIN_LOOP, json.dumps(axes), str(dataset_size)],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
    )
    loop = json.loads(answer.stdout.strip().splitlines()[-1])
    return {
        "trials": loop["trials"],
        "outside_run_one_ms_per_trial": 1000
        * (loop["total_s"] - loop["inside_s"])
        / loop["trials"],
    }


def parse_ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def figures_from_server(client: gridexp.Client) -> dict[str, Any]:
    """Overhead, throughput and packing of a finished run, from the server's attempts. The
    first trial to start is the warm-up (the device's context, the first kernels, as in the
    plain loop): the overhead and the throughput count the trials after it."""
    done = [trial for trial in client.trials("gpu_short_trials") if trial["state"] == "done"]
    spans = []
    for trial in done:
        attempt = client.attempts(trial["id"])[-1]
        started, ended = parse_ms(attempt["started_at"]), parse_ms(attempt["ended_at"])
        spans.append((started, ended, 1000 * trial["results"]["run_one_s"]))
    spans.sort()
    starts = [started for started, _, _ in spans]
    ends = [ended for _, ended, _ in spans]
    measured = spans[1:]
    span_ms = max(ended for _, ended, _ in measured) - min(started for started, _, _ in measured)
    inside_ms = sum(inside for _, _, inside in measured)
    at_once = most_at_once = 0
    for _, step in sorted([(start, 1) for start in starts] + [(end, -1) for end in ends]):
        at_once += step
        most_at_once = max(most_at_once, at_once)
    peaks = [trial["peak_gpu_memory_bytes"] for trial in done if trial["peak_gpu_memory_bytes"]]
    return {
        "trials_done": len(done),
        "trials_per_s": len(measured) / (span_ms / 1000),
        "overhead_ms_per_trial": (span_ms - inside_ms) / len(measured),
        "most_at_once": most_at_once,
        "largest_peak_gpu_memory_mib": max(peaks) / 2**20 if peaks else None,
    }


def gridexp_run(
    directory: Path,
    running_server: Callable[..., Any],
    bin_dir: Path,
    password: str,
    flags: list[str],
) -> dict[str, Any]:
    with running_server(directory) as server:
        workdir = directory / "worker"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
        shutil.copy(directory / "experiment.py", workdir / "experiment.py")
        command = [
            str(bin_dir / "gridexp-worker"),
            f"--address=127.0.0.1:{server.port}",
            f"--workdir={workdir}",
            "--download_data=False",
            "--poll_seconds=0.2",
            *flags,
        ]
        with open(directory / "worker.log", "wb") as log:
            code = subprocess.run(
                command,
                env=dict(os.environ, GRIDEXP_PASSWORD=password),
                stdout=log,
                stderr=log,
                check=False,
            ).returncode
        if code != 0:
            raise RuntimeError(f"gridexp-worker {' '.join(flags)} exited with {code}")
        return figures_from_server(gridexp.Client(f"127.0.0.1:{server.port}", password))


def gpu_short_trials(
    work: Path,
    quick: bool,
    reps: int,
    *,
    running_server: Callable[..., Any],
    bin_dir: Path,
    password: str,
    summary: Callable[[list[float]], dict[str, float]],
) -> dict[str, Any]:
    on_cuda = cuda_available(sys.executable)
    if not on_cuda and not quick:
        return {"skipped": "no CUDA device here (torch.cuda.is_available() is False)"}
    device = "cuda" if on_cuda else "cpu"
    axes: dict[str, list] = {"lr": [0.001, 0.003, 0.01, 0.03], "width": [256, 512, 1024, 2048]}
    axes["seed"] = [1, 2, 3] if not quick else [1]
    dataset_size, steps = (65536, 200) if on_cuda else (4096, 5)
    results: dict[str, Any] = {
        "device": device if on_cuda else "cpu (a smoke check, not a GPU figure)"
    }
    directory = work / "grid"
    write_grid(directory, axes, dataset_size, device, steps)
    results["plain_loop"] = plain_loop(directory, axes, dataset_size)

    def run(label: str, flags: list[str], repetitions: int) -> None:
        runs = []
        for rep in range(repetitions):
            copy = work / f"{label}-{rep}"
            shutil.copytree(directory, copy, ignore=shutil.ignore_patterns("__pycache__"))
            runs.append(gridexp_run(copy, running_server, bin_dir, password, flags))
        results[label] = {
            name: summary([r[name] for r in runs])
            for name in runs[0]
            if all(isinstance(r[name], (int, float)) for r in runs)
        }

    run("save_models=False", ["--save_models=False"], reps)
    run("save_models=True", ["--save_models=True"], 1 if quick else reps)
    if on_cuda:
        for per_gpu in ("2", "4", "auto"):
            run(
                f"trials_per_gpu={per_gpu}",
                ["--save_models=False", f"--trials-per-gpu={per_gpu}"],
                1 if quick else reps,
            )
    return results
