"""GPU telemetry: a worker reads NVML (a fake libnvidia-ml built from tests/fakes/fake_nvml.cpp)
and sends each GPU's utilisation and memory with its heartbeats; the server shows them in
/api/v1/workers and exports them on /metrics. Real server, worker and executor on loopback."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import claim, grid_config, register, trials_of, wait_for
from test_dashboard import browser, expect, log_in, page  # noqa: F401 (fixtures)

NAME = "telemetry"
GIB = 1 << 30
FAKE_GPUS = f"97:{3 * GIB}:{80 * GIB},3:{GIB}:{80 * GIB}"


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory) -> Path:
    compiler = shutil.which("c++") or shutil.which("g++")
    assert compiler, "a C++ compiler is needed to build the fake NVML (scripts/setup.sh has one)"
    library = tmp_path_factory.mktemp("nvml") / "libfake-nvml.so"
    source = Path(__file__).resolve().parents[1] / "fakes" / "fake_nvml.cpp"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", library, source], check=True)
    return library


def experiment_server(start_server, directory: Path, stop_file: Path):
    """A one-trial experiment whose trial runs until `stop_file` exists."""
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(grid_config(NAME, 1))
    (directory / "experiment.py").write_text(
        textwrap.dedent(
            f"""\
            import os, time

            def init_dataset(config):
                return None

            def run_one(hyperparameters, dataset):
                deadline = time.monotonic() + 120
                while not os.path.exists({str(stop_file)!r}) and time.monotonic() < deadline:
                    time.sleep(0.1)
                return {{"ok": 1}}, None
            """
        )
    )
    # Heartbeats every second.
    return start_server(directory, "--lease-seconds", "3")


def test_a_worker_sends_its_gpus_and_the_server_shows_and_exports_them(
    start_server, workers, tmp_path, monkeypatch, fake_nvml
):
    server = experiment_server(start_server, tmp_path / "server", tmp_path / "stop-now")
    monkeypatch.setenv("GRIDEXP_NVML_LIBRARY", str(fake_nvml))
    monkeypatch.setenv("FAKE_NVML_GPUS", FAKE_GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    worker = workers(server, tmp_path / "w", "--download_scripts")

    def reported():
        listed = server.get("/api/v1/workers").json()
        return [w for w in listed if w["gpus"]]

    (listed,) = wait_for(reported, timeout=120)
    # Only the GPU this worker's CUDA_VISIBLE_DEVICES names.
    assert listed["gpus"] == [
        {
            "index": 1,
            "utilization_percent": 3,
            "memory_used_bytes": GIB,
            "memory_total_bytes": 80 * GIB,
        }
    ]
    metrics = server.get("/metrics").text
    labels = f'{{worker="{listed["id"]}",gpu="1"}}'
    assert f"gridexp_gpu_memory_used_bytes{labels} {GIB}" in metrics, metrics[-2000:]
    assert f"gridexp_gpu_memory_total_bytes{labels} {80 * GIB}" in metrics
    assert f"gridexp_gpu_utilization{labels} 0.03" in metrics
    (tmp_path / "stop-now").touch()
    assert worker.wait(timeout=120) == 0, worker.output()[-3000:]
    assert trials_of(server, NAME)[0]["state"] == "done"


def test_a_worker_without_nvml_sends_no_gpus(start_server, workers, tmp_path, monkeypatch):
    server = experiment_server(start_server, tmp_path / "server", tmp_path / "stop-now")
    monkeypatch.setenv("GRIDEXP_NVML_LIBRARY", str(tmp_path / "no-such-libnvidia-ml.so.1"))
    worker = workers(server, tmp_path / "w", "--download_scripts")
    wait_for(lambda: trials_of(server, NAME)[0]["state"] == "running", timeout=120)
    time.sleep(3)  # three heartbeats' worth, none of which may carry telemetry
    (listed,) = server.get("/api/v1/workers").json()
    assert listed["gpus"] == []
    assert "gridexp_gpu_" not in server.get("/metrics").text
    (tmp_path / "stop-now").touch()
    assert worker.wait(timeout=120) == 0, worker.output()[-3000:]


@pytest.mark.parametrize(
    "gpus",
    [
        "all",
        [{"index": 0, "utilization_percent": 101, "memory_used_bytes": 0, "memory_total_bytes": 1}],
        [{"index": 0, "utilization_percent": 5, "memory_used_bytes": 2, "memory_total_bytes": 1}],
        [{"index": -1, "utilization_percent": 5, "memory_used_bytes": 0, "memory_total_bytes": 1}],
        [{"index": 0, "utilization_percent": 5, "memory_used_bytes": 0}],
        [{"index": 0, "utilization_percent": 5, "memory_used_bytes": 0, "memory_total_bytes": 1}]
        * 65,
    ],
)
def test_a_heartbeat_with_malformed_gpus_is_refused(server, gpus):
    worker_id = register(server)
    lease = claim(server, worker_id)["trial"]
    path = f"/api/v1/trials/{lease['id']}/heartbeat"
    response = server.post(path, {"lease_token": lease["lease_token"], "gpus": gpus})
    assert response.status_code == 400, response.text
    assert "gpus" in response.json()["error"]
    (listed,) = server.get("/api/v1/workers").json()
    assert listed["gpus"] == []


def test_the_workers_panel_shows_each_gpus_telemetry(
    start_server,
    workers,
    tmp_path,
    monkeypatch,
    fake_nvml,
    page,  # noqa: F811 (the fixture imported above)
):
    server = experiment_server(start_server, tmp_path / "server", tmp_path / "stop-now")
    monkeypatch.setenv("GRIDEXP_NVML_LIBRARY", str(fake_nvml))
    monkeypatch.setenv("FAKE_NVML_GPUS", FAKE_GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    worker = workers(server, tmp_path / "w", "--download_scripts")
    wait_for(lambda: any(w["gpus"] for w in server.get("/api/v1/workers").json()), timeout=120)
    log_in(page, server.url)
    expect(page.get_by_test_id("worker-gpu")).to_have_text("GPU 0: 97% · 3.0 GiB of 80.0 GiB")
    (tmp_path / "stop-now").touch()
    assert worker.wait(timeout=120) == 0, worker.output()[-3000:]
