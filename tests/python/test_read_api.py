"""The read API: experiments, trials (JSON and CSV), single trials, workers."""

from __future__ import annotations

import csv
import io

from conftest import claim, register


def test_experiments_lists_counts_per_state(server):
    response = server.get("/api/v1/experiments")
    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "sentiment_analysis1",
            "active": True,
            "total": 8,
            "counts": {"pending": 8, "running": 0, "done": 0, "failed": 0, "cancelled": 0},
            "mean_duration_seconds": None,
            "eta_seconds": None,
            "workers_online": 0,
        }
    ]


def test_trials_follow_the_grid_order_with_their_types(server):
    trials = server.get("/api/v1/experiments/sentiment_analysis1/trials").json()
    assert len(trials) == 8
    assert len({trial["id"] for trial in trials}) == 8
    first = trials[0]
    assert set(first) >= {
        "id",
        "state",
        "hyperparameters",
        "results",
        "attempts",
        "worker",
        "started_at",
        "finished_at",
        "error",
    }
    assert first["state"] == "pending"
    assert first["attempts"] == 0
    assert first["results"] is None and first["worker"] is None
    # Keys sorted, first key slowest: activation, batch_size, char_embedding_size, epochs,
    # fc_sizes, learning_rate, loss_fn, vocab_size.
    assert first["hyperparameters"] == {
        "activation": "relu",
        "batch_size": 128,
        "char_embedding_size": 8,
        "epochs": 10,
        "fc_sizes": [2048],
        "learning_rate": 0.03,
        "loss_fn": "xent",
        "vocab_size": 70,
    }
    assert [t["hyperparameters"]["learning_rate"] for t in trials[:2]] == [0.03, 0.1]
    assert [t["hyperparameters"]["batch_size"] for t in trials] == [128] * 4 + [64] * 4
    assert isinstance(first["hyperparameters"]["learning_rate"], float)


def test_ids_are_stable_across_restarts(start_server, experiment_dir):
    server = start_server(experiment_dir)
    before = [t["id"] for t in server.get("/api/v1/experiments/sentiment_analysis1/trials").json()]
    server.stop()
    server = start_server(experiment_dir)
    after = [t["id"] for t in server.get("/api/v1/experiments/sentiment_analysis1/trials").json()]
    assert before == after


def test_single_trial_and_unknowns(server):
    trials = server.get("/api/v1/experiments/sentiment_analysis1/trials").json()
    one = server.get(f"/api/v1/trials/{trials[3]['id']}")
    assert one.status_code == 200 and one.json()["id"] == trials[3]["id"]
    missing = server.get("/api/v1/trials/0000000000000000")
    assert missing.status_code == 404 and "error" in missing.json()
    assert server.get("/api/v1/experiments/nope/trials").status_code == 404
    assert server.get("/api/v1/trials/not-an-id").status_code == 404
    assert server.get("/api/v1/no/such/route").json()["error"].startswith("no such route")
    model = server.get(f"/api/v1/trials/{trials[0]['id']}/model")
    assert model.status_code == 404 and "no model" in model.json()["error"]


def test_csv_has_hyperparameters_and_scalar_results_as_columns(server):
    worker = register(server)
    lease = claim(server, worker)["trial"]
    results = {
        "accuracy": 0.91,
        "loss": 0.25,
        "curve": [1, 2, 3],
        "val": {"acc": 0.8},
        "note": 'say "hi", twice',
    }
    response = server.post(
        f"/api/v1/trials/{lease['id']}/complete",
        {"lease_token": lease["lease_token"], "results": results},
    )
    assert response.status_code == 200, response.text
    text = server.get("/api/v1/experiments/sentiment_analysis1/trials.csv")
    assert text.status_code == 200
    assert text.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert len(rows) == 8
    done = next(row for row in rows if row["id"] == lease["id"])
    assert done["state"] == "done"
    assert done["accuracy"] == "0.91" and done["loss"] == "0.25"
    assert done["val.acc"] == "0.8"
    assert done["note"] == 'say "hi", twice'
    assert "curve" not in done  # lists are not scalar columns
    assert done["learning_rate"] == "0.03" and done["fc_sizes"] == "[2048]"
    assert done["loss_fn"] == "xent"
    assert rows[1]["accuracy"] == ""


def test_workers_are_recorded(server):
    worker = register(server, host="gpu-box-7")
    lease = claim(server, worker)["trial"]
    workers = server.get("/api/v1/workers").json()
    assert len(workers) == 1
    assert workers[0]["id"] == worker
    assert workers[0]["host"] == "gpu-box-7"
    assert workers[0]["current_trial"] == lease["id"]
    trial = server.get(f"/api/v1/trials/{lease['id']}").json()
    assert trial["state"] == "running" and trial["worker"] == worker
    assert trial["attempts"] == 1 and trial["started_at"].endswith("Z")
