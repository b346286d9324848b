"""Model uploads overlap the next trial: a real server and worker on loopback."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from conftest import grid_config, trials_of

torch = pytest.importorskip("torch", reason="TORCH IS MISSING: pip install torch==2.13.0")

MODEL_ELEMENTS = 2 << 20  # float32: 8 MiB per model

EXPERIMENT = textwrap.dedent(
    f"""\
    import time
    import torch

    def init_dataset(config):
        return None

    def run_one(hyperparameters, dataset):
        time.sleep(0.05)
        generator = torch.Generator().manual_seed(hyperparameters["index"])
        model = torch.randn({MODEL_ELEMENTS}, generator=generator)
        return {{"index": hyperparameters["index"]}}, model
    """
)


def test_each_upload_overlaps_the_next_trial_and_every_model_arrives_intact(
    start_server, workers, tmp_path: Path
):
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("overlap", 6))
    (directory / "experiment.py").write_text(EXPERIMENT)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w1", "--download_scripts")
    assert worker.wait() == 0, worker.output()

    trials = sorted(trials_of(server, "overlap"), key=lambda trial: trial["started_at"])
    assert [trial["state"] for trial in trials] == ["done"] * 6, worker.output()
    assert all(trial["attempts"] == 1 for trial in trials)
    assert sorted(trial["results"]["index"] for trial in trials) == list(range(6))
    # The next trial was claimed before the previous one's upload and completion.
    for previous, following in zip(trials, trials[1:]):
        assert following["started_at"] < previous["finished_at"], (previous, following)
    for trial in trials:
        stored = server.directory / "models" / f"{trial['id']}.pt"
        assert trial["model"]["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
        generator = torch.Generator().manual_seed(trial["results"]["index"])
        expected = torch.randn(MODEL_ELEMENTS, generator=generator)
        assert torch.equal(torch.load(stored), expected)
        attempts = server.get(f"/api/v1/trials/{trial['id']}/attempts").json()
        assert [attempt["outcome"] for attempt in attempts] == ["done"], attempts
