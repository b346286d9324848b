"""Peak GPU memory per trial, from the executor to the read API, and what the executor frees
between trials, on a machine without CUDA: experiment.py puts a fake `torch` module
(tests/fakes/fake_torch.py) in sys.modules, which is all the executor looks at."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import claim, grid_config, register, trials_of

FAKES = Path(__file__).resolve().parents[1] / "fakes"

# Trial 0 runs before CUDA is "initialized"; trial 1 initializes it and frees what it
# allocated; trial 2 leaves a tensor in a reference cycle. Each trial's results say how many
# gc.collect() and empty_cache() calls the executor had made before it started, and its
# peak is 3e9 bytes per index on device 1 (twice device 0's): above 2**32 on purpose.
EXPERIMENT = textwrap.dedent(
    """\
    import gc, sys

    sys.path.insert(0, {fakes!r})
    import fake_torch

    cuda = fake_torch.install(devices=2).cuda

    def FakeTensor(size):
        return fake_torch.FakeTensor(cuda, size)

    collections = [0]
    real_collect = gc.collect
    def counting_collect(*args):
        collections[0] += 1
        return real_collect(*args)
    gc.collect = counting_collect
    gc.disable()  # only the executor's collections free cycles

    def init_dataset(config):
        return None

    def run_one(hyperparameters, dataset):
        index = hyperparameters["index"]
        seen = {{"index": index, "collections": collections[0], "emptied": cuda.emptied}}
        if index >= 1:
            tensor = FakeTensor(1_500_000_000 * index)
            if index == 2:
                cycle = [tensor]
                cycle.append(cycle)
            if index == hyperparameters.get("fail_at"):
                raise MemoryError("CUDA out of memory (fake)")
        return seen, None
    """
)


def write_experiment(directory, extra_axes: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(grid_config("gpumem", 4) + extra_axes)
    (directory / "experiment.py").write_text(EXPERIMENT.format(fakes=str(FAKES)))


def run_grid(start_server, workers, tmp_path) -> list[dict]:
    directory = tmp_path / "server"
    write_experiment(directory)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts", "--save_models=False")
    assert worker.wait() == 0, worker.output()
    trials = sorted(trials_of(server, "gpumem"), key=lambda t: t["results"]["index"])
    assert [t["state"] for t in trials] == ["done"] * 4
    return trials


def test_each_trials_peak_reaches_the_read_api_and_nothing_is_freed_needlessly(
    start_server, workers, tmp_path, monkeypatch
):
    monkeypatch.delenv("GRIDEXP_SHARED_GPU", raising=False)
    trials = run_grid(start_server, workers, tmp_path)
    assert [t["peak_gpu_memory_bytes"] for t in trials] == [
        None,
        3_000_000_000,
        6_000_000_000,
        9_000_000_000,
    ]
    seen = [(t["results"]["collections"], t["results"]["emptied"]) for t in trials]
    # Trials 0 and 1 left nothing: no collection; trial 2's cycle was collected before trial 3,
    # which freed it all, so the cache was kept.
    assert seen == [(0, 0), (0, 0), (0, 0), (1, 0)]


def test_on_a_shared_gpu_every_trial_empties_the_cache(
    start_server, workers, tmp_path, monkeypatch
):
    monkeypatch.setenv("GRIDEXP_SHARED_GPU", "1")
    trials = run_grid(start_server, workers, tmp_path)
    seen = [(t["results"]["collections"], t["results"]["emptied"]) for t in trials]
    # Nothing while CUDA was not initialized (after trial 0), then once after every trial.
    assert seen == [(0, 0), (0, 0), (0, 1), (1, 2)]


def test_a_failed_trials_peak_reaches_the_read_api(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, "  fail_at:\n    - 3\n")
    server = start_server(directory)
    worker = workers(
        server,
        tmp_path / "w",
        "--download_scripts",
        "--save_models=False",
        "--raise_on_failure=False",
    )
    assert worker.wait() == 0, worker.output()
    by_index = {t["hyperparameters"]["index"]: t for t in trials_of(server, "gpumem")}
    assert by_index[3]["state"] == "failed"
    assert "CUDA out of memory (fake)" in by_index[3]["error"]
    assert by_index[3]["peak_gpu_memory_bytes"] == 9_000_000_000
    assert by_index[2]["state"] == "done" and by_index[2]["peak_gpu_memory_bytes"] == 6_000_000_000


def complete(server, lease, **fields):
    return server.post(
        f"/api/v1/trials/{lease['id']}/complete",
        {"lease_token": lease["lease_token"], "results": {}, **fields},
    )


def test_a_completion_carries_an_optional_peak(server):
    worker = register(server)
    first = claim(server, worker)["trial"]
    assert complete(server, first, peak_gpu_memory_bytes=2**40).status_code == 200
    second = claim(server, worker)["trial"]
    answer = complete(server, second, peak_gpu_memory_bytes=0, next_claim_id="c-1")
    assert answer.status_code == 200, answer.text
    third = answer.json()["next"]["trial"]
    assert complete(server, third, peak_gpu_memory_bytes=None).status_code == 200
    assert server.get(f"/api/v1/trials/{first['id']}").json()["peak_gpu_memory_bytes"] == 2**40
    attempts = server.get(f"/api/v1/trials/{first['id']}/attempts").json()
    assert [(a["outcome"], a["peak_gpu_memory_bytes"]) for a in attempts] == [("done", 2**40)]
    by_id = {
        t["id"]: t for t in server.get("/api/v1/experiments/sentiment_analysis1/trials").json()
    }
    assert by_id[second["id"]]["peak_gpu_memory_bytes"] == 0
    assert by_id[third["id"]]["peak_gpu_memory_bytes"] is None


def fail(server, lease, **fields):
    return server.post(
        f"/api/v1/trials/{lease['id']}/fail",
        {"lease_token": lease["lease_token"], "error": "torch.OutOfMemoryError", **fields},
    )


def test_a_failure_carries_an_optional_peak(server):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    assert fail(server, lease, peak_gpu_memory_bytes=2**36).status_code == 200
    trial = server.get(f"/api/v1/trials/{lease['id']}").json()
    assert trial["state"] == "failed" and trial["peak_gpu_memory_bytes"] == 2**36


@pytest.mark.parametrize("bad", [-1, 1.5, "1 GiB", 2**63, True])
@pytest.mark.parametrize("ending", [complete, fail])
def test_a_malformed_peak_is_refused_and_ends_nothing(server, bad, ending):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    refused = ending(server, lease, peak_gpu_memory_bytes=bad)
    assert refused.status_code == 400
    assert "peak_gpu_memory_bytes" in refused.json()["error"]
    assert server.get(f"/api/v1/trials/{lease['id']}").json()["state"] == "running"
