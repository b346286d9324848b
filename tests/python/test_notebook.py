"""examples/notebook/worker.ipynb, run headless with nbclient against a real gridexp-server.

The install cell is skipped (GRIDEXP_NOTEBOOK_SKIP_INSTALL=1): the notebook's kernel finds the
gridexp-worker of this test run on PATH, as it would find the one its install cell built.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from conftest import PASSWORD, grid_config
from nbclient import NotebookClient
from test_client import client_of

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook" / "worker.ipynb"

EXPERIMENT_PY = """\
def init_dataset(config):
    return None

def run_one(hyperparameters, dataset):
    print(f"training point {hyperparameters['index']}")
    return {"score": hyperparameters["index"] / 10}, None
"""


def stream_text(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def serve_for_the_notebook(start_server, tmp_path, monkeypatch, points: int, experiment_py: str):
    """A server of a `points`-point grid, and the environment the notebook's cells read."""
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("notebook", points))
    (directory / "experiment.py").write_text(experiment_py)
    server = start_server(directory)
    # The kernel inherits this environment: the settings cell and the worker read it.
    monkeypatch.setenv("GRIDEXP_NOTEBOOK_SKIP_INSTALL", "1")
    monkeypatch.setenv("GRIDEXP_ADDRESS", f"127.0.0.1:{server.port}")
    monkeypatch.setenv("GRIDEXP_PASSWORD", PASSWORD)
    monkeypatch.setenv("GRIDEXP_WORKDIR", str(tmp_path / "work"))
    return server


def test_the_notebook_runs_a_worker_until_the_grid_is_done(start_server, tmp_path, monkeypatch):
    server = serve_for_the_notebook(start_server, tmp_path, monkeypatch, 3, EXPERIMENT_PY)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    output = stream_text(notebook)
    for index in range(3):
        assert f"training point {index}" in output, output
    assert "gridexp-worker is done" in output
    assert PASSWORD not in output
    assert PASSWORD not in nbformat.writes(notebook)
    trials = client_of(server).trials("notebook")
    assert [(trial["state"], trial["results"]) for trial in trials] == [
        ("done", {"score": 0.0}),
        ("done", {"score": 0.1}),
        ("done", {"score": 0.2}),
    ]
    assert (tmp_path / "work" / "experiment.py").read_text() == EXPERIMENT_PY


def test_a_worker_that_fails_fails_the_cell(start_server, tmp_path, monkeypatch):
    no_run_one = "def init_dataset(config):\n    return None\n"
    serve_for_the_notebook(start_server, tmp_path, monkeypatch, 1, no_run_one)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True)
    client.execute()
    run_cell = notebook.cells[-1]
    errors = [output for output in run_cell.outputs if output.output_type == "error"]
    assert [error.ename for error in errors] == ["RuntimeError"]
    assert "gridexp-worker exited with status 2" in errors[0].evalue
    assert "does not define run_one" in stream_text(notebook)
