"""The sentiment example resumes from its checkpoint: Ctrl-C to the worker running it, a
second worker goes on from the last checkpoint, and the result is the one an uninterrupted run
gives (same weights, optimizer state and shuffling restored), bit for bit."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from conftest import trials_of, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment"


def one_point_config() -> str:
    """examples/sentiment/config.yaml with one value per hyperparameter: its first grid point."""
    text = (EXAMPLE / "config.yaml").read_text()
    for second in ("    -  64\n", "    - .1\n", "    - [4096]\n"):
        assert second in text, second
        text = text.replace(second, "")
    return text


def uninterrupted_results(directory: Path) -> dict:
    """run_one of the first grid point in a process of its own, as `python experiment.py` does."""
    script = (
        "import json, experiment\n"
        "point = experiment.grid(experiment.load_config('config.yaml'))[0]\n"
        "results, _ = experiment.run_one(point, experiment.init_dataset({}))\n"
        "print(json.dumps(results))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_ctrl_c_then_a_second_worker_resumes_the_example_from_its_checkpoint(
    start_server, workers, tmp_path
):
    directory = tmp_path / "sentiment"
    directory.mkdir()
    shutil.copy(EXAMPLE / "experiment.py", directory / "experiment.py")
    (directory / "config.yaml").write_text(one_point_config())
    server = start_server(directory)
    flags = ("--download_scripts", "--download_data=False", "--save_models=False")

    first = workers(server, tmp_path / "w1", *flags)
    (trial,) = trials_of(server, "sentiment_analysis1")
    metrics_path = f"/api/v1/trials/{trial['id']}/metrics"
    # Epoch 3 reported: the checkpoint of epoch 2 was saved, the trial is mid-way.
    wait_for(lambda: len(server.get(metrics_path).json()) >= 3, timeout=180, interval=0.2)
    first.process.send_signal(signal.SIGINT)
    assert first.wait(timeout=90) == 130, first.output()
    assert "preempt" in first.output().lower(), first.output()
    (trial,) = trials_of(server, "sentiment_analysis1")
    assert trial["state"] == "pending"
    attempts = server.get(f"/api/v1/trials/{trial['id']}/attempts").json()
    assert [a["outcome"] for a in attempts] == ["preempted"]
    stopped_at = len(server.get(metrics_path).json())

    second = workers(server, tmp_path / "w2", *flags)
    assert second.wait(timeout=300) == 0, second.output()
    (trial,) = trials_of(server, "sentiment_analysis1")
    assert trial["state"] == "done", trial
    results = trial["results"]
    assert results["epochs_run"] == 10
    resumed = results["resumed_from_epoch"]
    # The first attempt saved at every second epoch and where Ctrl-C stopped it.
    assert 2 <= resumed <= stopped_at, (resumed, stopped_at)
    attempts = server.get(f"/api/v1/trials/{trial['id']}/attempts").json()
    assert [a["outcome"] for a in attempts] == ["preempted", "done"]
    assert attempts[0]["resumed"] is False
    assert attempts[1]["resumed"] is True and attempts[1]["resumed_from_step"] == resumed
    assert re.search(
        rf"resum\w* .*{resumed}",
        second.output() + server.get(f"/api/v1/trials/{trial['id']}/log").text,
    ), second.output()
    # The second attempt trained only the epochs after the checkpoint.
    steps = [point["step"] for point in server.get(metrics_path).json()]
    assert steps[-(10 - resumed) :] == list(range(resumed + 1, 11)), steps

    reference = uninterrupted_results(directory)
    assert reference["resumed_from_epoch"] == 0
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "best_val_accuracy"):
        assert results[key] == reference[key], (key, results[key], reference[key])
