"""`gridexp export` against a real gridexp-server: the original framework's layout, read back
the way analysis scripts written for the original read it, and the table layouts."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pyarrow.parquet
import pytest
import yaml
from conftest import SEED_CONFIG, grid_config, register
from gridexp import cli
from gridexp.client import table_row
from gridexp.export import to_yaml
from test_cli import gridexp
from test_client import (
    AWKWARD_NAME,
    EXPERIMENT,
    client_of,
    run_trial,
    start_awkward_server,
)


@pytest.fixture
def finished(server) -> dict[str, dict]:
    """Four trials: two done with a model, one done without, one failed; by id."""
    worker = register(server)
    runs = [
        ({"accuracy": 0.91, "per_class_acc": {"0": 0.5, "1": 1.0}}, b"weights of the first"),
        ({"accuracy": 0.8, "loss": "NaN", "curve": [0.5, 0.25]}, b"weights of the second"),
        ({"accuracy": 0.7}, None),
    ]
    trials = {}
    for results, model in runs:
        trial_id = run_trial(server, worker, results, model=model)
        trials[trial_id] = {"results": results, "model": model}
    trials[run_trial(server, worker, fail="ValueError: cursed")] = {"failed": True}
    return trials


def read_like_the_original(directory: Path) -> dict[str, dict]:
    """What an analysis script written for the original framework does with its server's
    directory: every file in results/ is YAML; the model is models/<experiment_hash>."""
    found = {}
    for name in os.listdir(directory / "results"):
        with open(directory / "results" / name) as file:
            record = yaml.safe_load(file)
        model_path = directory / "models" / record["exp_info"]["experiment_hash"]
        record["model"] = model_path.read_bytes() if model_path.exists() else None
        found[name] = record
    return found


def test_the_original_layout_is_what_the_original_server_held(server, finished, tmp_path):
    client = client_of(server)
    destination = tmp_path / "analysis"
    result = gridexp(server, "export", EXPERIMENT, str(destination))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == (
        f"exported 8 trials of {EXPERIMENT} to {destination} (original): "
        "3 results files, 2 models\n"
    )

    done = {trial_id: run for trial_id, run in finished.items() if "results" in run}
    records = read_like_the_original(destination)
    assert set(records) == set(done)
    seed = yaml.safe_load(SEED_CONFIG)
    for trial_id, record in records.items():
        expected_results = dict(done[trial_id]["results"])
        if expected_results.get("loss") == "NaN":  # sent as "NaN", a float again here
            assert math.isnan(record["results"].pop("loss"))
            del expected_results["loss"]
        assert record["results"] == expected_results
        assert record["exp_info"] == {
            "experiment_name": EXPERIMENT,
            "dataset": seed["dataset"],
            "hyperparameters": client.trial(trial_id)["hyperparameters"],
            "experiment_hash": trial_id,
        }
        assert record["model"] == done[trial_id]["model"]
    assert sorted(os.listdir(destination / "models")) == sorted(
        trial_id for trial_id, run in done.items() if run["model"]
    )
    assert yaml.safe_load((destination / "config.yaml").read_text()) == seed

    again = gridexp(server, "export", EXPERIMENT, str(destination))
    assert again.returncode == 0, again.stderr
    assert again.stdout.endswith("3 results files, 2 models (2 already there)\n")
    assert read_like_the_original(destination).keys() == records.keys()
    leftovers = [path.name for path in destination.rglob(".*")]
    assert leftovers == [], "temporary files left behind"


def test_a_model_that_differs_from_the_servers_is_downloaded_again(server, finished, tmp_path):
    trial_id = next(trial_id for trial_id, run in finished.items() if run.get("model"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / trial_id).write_bytes(b"stale")
    result = gridexp(server, "export", EXPERIMENT, str(tmp_path), "--layout", "original")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("3 results files, 2 models\n"), "the stale one is not kept"
    assert (tmp_path / "models" / trial_id).read_bytes() == finished[trial_id]["model"]


def test_another_experiment_than_the_active_one_says_what_exp_info_lacks(start_server, tmp_path):
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("first", 2))
    server = start_server(directory)
    trial_id = run_trial(server, register(server), {"score": 1})
    server.stop()
    (directory / "config.yaml").write_text(grid_config("second", 2))
    server.start()

    destination = tmp_path / "analysis"
    result = gridexp(server, "export", "first", str(destination), "--no-models")
    assert result.returncode == 0, result.stderr
    assert "first is not the server's active experiment" in result.stderr
    (record,) = read_like_the_original(destination).values()
    assert record["exp_info"] == {
        "experiment_name": "first",
        "hyperparameters": {"index": 0},
        "experiment_hash": trial_id,
    }
    assert not (destination / "config.yaml").exists()


def test_the_table_layouts(server, finished, tmp_path):
    client = client_of(server)
    trials = client.trials(EXPERIMENT)
    with_model = {trial_id for trial_id, run in finished.items() if run.get("model")}

    result = gridexp(server, "export", EXPERIMENT, str(tmp_path / "j"), "--layout", "jsonl")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "j" / "trials.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {**trial, "model_file": f"models/{trial['id']}.pt" if trial["id"] in with_model else None}
        for trial in trials
    ]
    for trial_id in with_model:
        model = (tmp_path / "j" / "models" / f"{trial_id}.pt").read_bytes()
        assert model == finished[trial_id]["model"]

    result = gridexp(server, "export", EXPERIMENT, str(tmp_path / "c"), "--layout", "csv")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c" / "trials.csv").read_bytes() == client.trials_csv().encode()

    result = gridexp(
        server, "export", EXPERIMENT, str(tmp_path / "p"), "--layout", "parquet", "--no-models"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(f"{tmp_path / 'p' / 'trials.parquet'}, 0 models\n")
    rows = pyarrow.parquet.read_table(tmp_path / "p" / "trials.parquet").to_pylist()
    assert [row["id"] for row in rows] == [trial["id"] for trial in trials]
    second = next(row for row in rows if row["accuracy"] == 0.8)
    assert math.isnan(second["loss"])
    assert second["fc_sizes"] == table_row(trials[1])["fc_sizes"] == "[2048]"
    assert not (tmp_path / "p" / "models").exists()


def test_a_result_of_different_types_is_json_text_in_parquet(server, tmp_path):
    worker = register(server)
    run_trial(server, worker, {"best": 3})
    run_trial(server, worker, {"best": "early"})
    result = gridexp(server, "export", EXPERIMENT, str(tmp_path), "--layout", "parquet")
    assert result.returncode == 0, result.stderr
    rows = pyarrow.parquet.read_table(tmp_path / "trials.parquet").to_pylist()
    assert [row["best"] for row in rows[:3]] == ["3", '"early"', None]


def test_parquet_without_pyarrow_says_how_to_install_it(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setenv("GRIDEXP_PASSWORD", server.password)
    destination = tmp_path / "analysis"
    arguments = ["--address", f"127.0.0.1:{server.port}", "export", EXPERIMENT, str(destination)]
    assert cli.main([*arguments, "--layout", "parquet"]) == 1
    error = capsys.readouterr().err
    assert "--layout parquet needs pyarrow: pip install pyarrow" in error
    assert "gridexp[parquet]" in error
    assert not destination.exists()


def test_an_experiment_name_with_url_syntax_exports(start_server, tmp_path):
    server = start_awkward_server(start_server, tmp_path)
    trial_id = run_trial(server, register(server), {"score": 0.5}, model=b"m")
    destination = tmp_path / "analysis"
    result = gridexp(server, "export", AWKWARD_NAME, str(destination))
    assert result.returncode == 0, result.stderr
    (record,) = read_like_the_original(destination).values()
    assert record["exp_info"]["experiment_name"] == AWKWARD_NAME
    assert record["model"] == b"m"
    assert trial_id in os.listdir(destination / "results")


def test_unknown_experiments_exit_1_with_the_servers_message(server, tmp_path):
    result = gridexp(server, "export", "nope", str(tmp_path / "x"))
    assert result.returncode == 1
    assert "nope" in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "value",
    [
        {"yes": "no", "null": None, "on": [True, False], "": "", "~": "~"},
        {"float": [1e-05, 1e100, -0.0, 0.1, 3.0], "int": [0, -5, 2**64]},
        {"strings": ["1.5", "0x10", "12:30", "2024-01-01", "a: b", "- x", "#c", " lead"]},
        {"more": ["trail ", "line\nbreak", "tab\t", "\x85", "\u2028", "'", '"', "\\", "é 名"]},
        {"nested": [[1, [2, []]], {"a": [1, {"b": {}}], "c": None}, [], {}]},
        [{"a": 1}, [{"b": [2]}]],
        "plain",
        None,
    ],
)
def test_to_yaml_reads_back_equal(value):
    assert yaml.safe_load(to_yaml(value)) == value


def test_to_yaml_writes_non_finite_floats_as_yaml_does():
    assert to_yaml([math.inf, -math.inf]) == "- .inf\n- -.inf\n"
    assert math.isnan(yaml.safe_load(to_yaml(math.nan)))
