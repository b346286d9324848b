"""gridexp.Client against a real gridexp-server; trials are driven through the worker protocol.

The helpers here (`client_of`, `run_trial`) are shared with test_cli.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import sys
import threading
from pathlib import Path

import gridexp
import pytest
import requests
from conftest import PASSWORD, claim, register
from gridexp import Client, ClientError
from gridexp import client as client_module

EXPERIMENT = "sentiment_analysis1"


def client_of(server, **kwargs) -> Client:
    kwargs.setdefault("password", PASSWORD)
    return Client(f"127.0.0.1:{server.port}", **kwargs)


def run_trial(
    server,
    worker_id: str,
    results=None,
    *,
    fail: str | None = None,
    model: bytes | None = None,
    metrics: list[dict] | None = None,
    log: str | None = None,
) -> str:
    """Claims the next pending trial as `worker_id` and finishes it; its id."""
    lease = claim(server, worker_id)["trial"]
    assert lease is not None, "no pending trial left"
    token = lease["lease_token"]
    trial_path = f"/api/v1/trials/{lease['id']}"
    if metrics:
        answer = server.post(f"{trial_path}/metrics", {"lease_token": token, "points": metrics})
        assert answer.status_code == 200, answer.text
    if log is not None:
        answer = requests.post(
            server.url + f"{trial_path}/log",
            data=log.encode(),
            headers={**server.auth(), "X-Gridexp-Lease-Token": token},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    if model is not None:
        answer = requests.put(
            server.url + f"{trial_path}/model",
            data=model,
            headers={
                **server.auth(),
                "X-Gridexp-Lease-Token": token,
                "X-Gridexp-Sha256": hashlib.sha256(model).hexdigest(),
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    if fail is not None:
        body = {"lease_token": token, "error": fail, "traceback": f"Traceback ...\n{fail}"}
        answer = server.post(f"{trial_path}/fail", body)
    else:
        answer = server.post(f"{trial_path}/complete", {"lease_token": token, "results": results})
    assert answer.status_code == 200, answer.text
    return lease["id"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Reading.


def test_experiments_trials_and_one_trial(server):
    client = client_of(server)
    experiments = client.experiments()
    assert [(e["name"], e["active"], e["total"]) for e in experiments] == [(EXPERIMENT, True, 8)]
    assert client.active_experiment() == EXPERIMENT
    trials = client.trials()
    assert trials == client.trials(EXPERIMENT)
    assert len(trials) == 8 and all(t["state"] == "pending" for t in trials)
    assert client.trial(trials[3]["id"]) == trials[3]
    csv_text = client.trials_csv()
    assert csv_text.splitlines()[0].startswith("id,state,attempts,worker")
    assert len(csv_text.splitlines()) == 9


def test_metrics_log_and_workers(server):
    client = client_of(server)
    worker = register(server, host="box-1")
    trial_id = run_trial(
        server,
        worker,
        {"accuracy": 0.5},
        metrics=[{"step": 1, "values": {"loss": 1.0}}, {"step": 2, "values": {"loss": 0.5}}],
        log="epoch 1\nepoch 2\n",
    )
    assert [(p["step"], p["values"]) for p in client.metrics(trial_id)] == [
        (1, {"loss": 1.0}),
        (2, {"loss": 0.5}),
    ]
    assert "epoch 1\nepoch 2\n" in client.log(trial_id)
    (registered,) = client.workers()
    assert registered["id"] == worker and registered["host"] == "box-1"
    assert registered["trials_done"] == 1


def test_addresses_with_a_scheme_and_a_trailing_slash(server):
    assert Client(f"http://127.0.0.1:{server.port}/", PASSWORD).active_experiment() == EXPERIMENT
    assert repr(client_of(server)) == f"Client('http://127.0.0.1:{server.port}')"
    for wrong in ("ftp://host:1", "host:port", "http://"):
        with pytest.raises(ValueError, match="not a server address"):
            Client(wrong, PASSWORD)


def test_attempts(server):
    client = client_of(server)
    worker = register(server)
    trial_id = run_trial(server, worker, {"accuracy": 0.5})
    attempts = client.attempts(trial_id)
    assert [(a["attempt"], a["worker"], a["outcome"]) for a in attempts] == [(1, worker, "done")]
    assert client.attempts(client.trials()[1]["id"]) == []


# Errors.


def test_a_wrong_password_says_so(server):
    with pytest.raises(ClientError) as caught:
        client_of(server, password="not-it").experiments()
    assert caught.value.status == 401
    assert "password" in str(caught.value) and "wrong or missing" in str(caught.value)


def test_a_server_that_is_down_is_not_reachable():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ClientError) as caught:
        Client(address, PASSWORD).experiments()
    assert caught.value.status is None
    assert str(caught.value) == (
        f"the server at http://{address} is not reachable (connection refused)"
    )


def test_unknown_trials_and_experiments_carry_the_servers_message(server):
    client = client_of(server)
    with pytest.raises(ClientError) as caught:
        client.trial("0123456789abcdef")
    assert caught.value.status == 404 and "0123456789abcdef" in caught.value.message
    with pytest.raises(ClientError) as caught:
        client.trials("nope")
    assert caught.value.status == 404 and caught.value.message == "no experiment named 'nope'"
    assert issubclass(ClientError, Exception) and gridexp.ClientError is ClientError


# Password resolution: argument, password_file, GRIDEXP_PASSWORD, GRIDEXP_PASSWORD_FILE,
# ./.gridexp/password.


@pytest.fixture
def no_password_anywhere(monkeypatch, tmp_path) -> Path:
    monkeypatch.delenv("GRIDEXP_PASSWORD", raising=False)
    monkeypatch.delenv("GRIDEXP_PASSWORD_FILE", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path


def write_password(path: Path, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password + "\nsecond line is ignored\n")
    return path


def works(client: Client) -> bool:
    try:
        client.experiments()
    except ClientError as error:
        assert error.status == 401, error
        return False
    return True


def test_password_resolution_order(server, no_password_anywhere, monkeypatch):
    right = write_password(no_password_anywhere / "right", PASSWORD)
    wrong = write_password(no_password_anywhere / "wrong", "wrong-password")
    address = f"127.0.0.1:{server.port}"

    # The experiment directory's .gridexp/password, the last resort.
    write_password(Path(".gridexp/password"), PASSWORD)
    assert works(Client(address))
    # GRIDEXP_PASSWORD_FILE comes before it.
    monkeypatch.setenv("GRIDEXP_PASSWORD_FILE", str(wrong))
    assert not works(Client(address))
    monkeypatch.setenv("GRIDEXP_PASSWORD_FILE", str(right))
    assert works(Client(address))
    # GRIDEXP_PASSWORD comes before GRIDEXP_PASSWORD_FILE.
    monkeypatch.setenv("GRIDEXP_PASSWORD", "wrong-password")
    assert not works(Client(address))
    monkeypatch.setenv("GRIDEXP_PASSWORD_FILE", str(wrong))
    monkeypatch.setenv("GRIDEXP_PASSWORD", PASSWORD)
    assert works(Client(address))
    # password_file comes before the environment.
    assert works(Client(address, password_file=right))
    monkeypatch.setenv("GRIDEXP_PASSWORD", "wrong-password")
    assert not works(Client(address, password_file=wrong))
    assert works(Client(address, password_file=right))
    # The argument comes first.
    assert works(Client(address, PASSWORD, password_file=wrong))
    assert not works(Client(address, "wrong-password", password_file=right))


def test_the_password_the_server_generated_is_found_in_its_directory(
    start_server, experiment_dir, no_password_anywhere, monkeypatch
):
    server = start_server(experiment_dir, password=None)
    monkeypatch.chdir(experiment_dir)
    assert (experiment_dir / ".gridexp" / "password").exists()
    assert Client(f"127.0.0.1:{server.port}").active_experiment() == EXPERIMENT


def test_no_password_names_every_source(no_password_anywhere):
    with pytest.raises(ClientError) as caught:
        Client("127.0.0.1:1")
    message = str(caught.value)
    for source in ("GRIDEXP_PASSWORD", "GRIDEXP_PASSWORD_FILE", "password_file", ".gridexp"):
        assert source in message
    with pytest.raises(ClientError, match="cannot read the password file"):
        Client("127.0.0.1:1", password_file=no_password_anywhere / "missing")
    (no_password_anywhere / "empty").write_text("\n")
    with pytest.raises(ClientError, match="is empty"):
        Client("127.0.0.1:1", password_file=no_password_anywhere / "empty")


# The DataFrame.


def test_dataframe_has_a_row_per_trial_and_flat_result_columns(server):
    pandas = pytest.importorskip("pandas")
    client = client_of(server)
    worker = register(server)
    done = run_trial(
        server,
        worker,
        {"val": {"acc": 0.75, "loss": 0.25}, "epochs": 3, "curve": [1, 2], "nan": "NaN",
         "batch_size": "shadowed"},
    )  # fmt: skip
    failed = run_trial(server, worker, fail="ValueError: cursed")
    frame = client.dataframe()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns[:13]) == [
        "id",
        "state",
        "attempts",
        "worker",
        "duration_seconds",
        "activation",
        "batch_size",
        "char_embedding_size",
        "epochs",
        "fc_sizes",
        "learning_rate",
        "loss_fn",
        "vocab_size",
    ]
    assert set(frame.columns[13:]) == {
        "val.acc",
        "val.loss",
        "results.epochs",
        "nan",
        "results.batch_size",
    }
    assert len(frame) == 8
    rows = frame.set_index("id")
    assert rows.loc[done, "state"] == "done" and rows.loc[failed, "state"] == "failed"
    assert rows.loc[done, "val.acc"] == 0.75 and rows.loc[done, "results.epochs"] == 3
    assert math.isnan(rows.loc[done, "nan"])
    assert rows.loc[done, "worker"] == worker and rows.loc[done, "attempts"] == 1
    assert rows.loc[done, "duration_seconds"] >= 0
    assert rows.loc[done, "fc_sizes"] == "[2048]" and rows.loc[done, "learning_rate"] == 0.03
    pending = frame[frame.state == "pending"]
    assert len(pending) == 6 and pending["duration_seconds"].isna().all()
    assert pending["val.acc"].isna().all()


def test_dataframe_without_pandas_says_how_to_install_it(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError, match="pip install pandas"):
        client_of(server).dataframe()


# Models.


def test_download_model_verifies_and_renames_into_place(server, tmp_path):
    client = client_of(server)
    worker = register(server)
    model = bytes(range(256)) * 5000  # over one download chunk
    trial_id = run_trial(server, worker, {"accuracy": 1.0}, model=model)
    destination = tmp_path / "out" / "best.pt"
    destination.parent.mkdir()
    assert client.download_model(trial_id, destination) == destination
    assert destination.read_bytes() == model
    # A directory gets <id>.pt; an existing file is replaced.
    assert client.download_model(trial_id, destination.parent) == destination.parent / (
        f"{trial_id}.pt"
    )
    destination.write_bytes(b"older")
    client.download_model(trial_id, str(destination))
    assert destination.read_bytes() == model
    assert {p.name for p in destination.parent.iterdir()} == {"best.pt", f"{trial_id}.pt"}


def test_a_corrupt_download_raises_and_leaves_no_file(server, tmp_path):
    client = client_of(server)
    worker = register(server)
    model = b"the real model" * 1000
    trial_id = run_trial(server, worker, {"accuracy": 1.0}, model=model)
    # The server's digest is the uploaded file's; flip a byte of the file it serves.
    stored = server.directory / "models" / f"{trial_id}.pt"
    stored.write_bytes(b"X" + model[1:])
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    destination = downloads / "model.pt"
    with pytest.raises(ClientError, match="corrupt"):
        client.download_model(trial_id, destination)
    assert list(downloads.iterdir()) == []
    destination.write_bytes(b"kept")
    with pytest.raises(ClientError, match="corrupt"):
        client.download_model(trial_id, destination)
    assert destination.read_bytes() == b"kept"
    assert list(downloads.iterdir()) == [destination]


class _PiecewiseBody:
    """A response body handed out in uneven pieces, optionally breaking off after `break_at`."""

    def __init__(self, data: bytes, break_at: int | None = None) -> None:
        self.data, self.at, self.break_at, self.sizes = data, 0, break_at, [7, 70_000, 1, 300_000]

    def readinto(self, buffer: memoryview) -> int:
        if self.break_at is not None and self.at >= self.break_at:
            raise ConnectionResetError("connection reset by peer")
        size = min(len(buffer), self.sizes[self.at % len(self.sizes)], len(self.data) - self.at)
        buffer[:size] = self.data[self.at : self.at + size]
        self.at += size
        return size


def hashing_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "gridexp-sha256"]


def test_a_download_is_hashed_in_order_across_many_reused_pieces(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 12345)  # far more pieces than the client lends
    descriptor = os.open(tmp_path / "model.part", os.O_WRONLY | os.O_CREAT)
    digest = client_module._copy_hashing(_PiecewiseBody(data), descriptor, "t1")
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "model.part").read_bytes() == data
    assert hashing_threads() == []


def test_a_download_that_breaks_off_stops_its_hashing_thread(tmp_path):
    descriptor = os.open(tmp_path / "model.part", os.O_WRONLY | os.O_CREAT)
    body = _PiecewiseBody(os.urandom(2 * 1024 * 1024), break_at=1024 * 1024)
    with pytest.raises(ClientError, match="trial t1 broke off"):
        client_module._copy_hashing(body, descriptor, "t1")
    assert hashing_threads() == []
    with pytest.raises(OSError):
        os.fstat(descriptor)  # closed


def test_a_trial_without_a_model_has_nothing_to_download(server, tmp_path):
    client = client_of(server)
    trial_id = client.trials()[0]["id"]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with pytest.raises(ClientError) as caught:
        client.download_model(trial_id, downloads / "model.pt")
    assert caught.value.status == 404
    assert list(downloads.iterdir()) == []


# Actions.


def states(client: Client) -> dict[str, str]:
    return {trial["id"]: trial["state"] for trial in client.trials()}


def test_cancel_and_retry_one_trial(server):
    client = client_of(server)
    first = client.trials()[0]["id"]
    assert client.cancel(first) == [first]
    assert client.trial(first)["state"] == "cancelled"
    with pytest.raises(ClientError) as caught:
        client.cancel(first)
    assert caught.value.status == 409
    assert client.retry(first) == [first]
    trial = client.trial(first)
    assert trial["state"] == "pending" and trial["attempts"] == 0
    with pytest.raises(ClientError) as caught:
        client.retry(first)
    assert caught.value.status == 409


def test_a_failed_trial_is_retried_with_its_history_kept(server):
    client = client_of(server)
    worker = register(server)
    failed = run_trial(server, worker, fail="ValueError: cursed")
    assert client.retry(failed) == [failed]
    trial = client.trial(failed)
    assert trial["state"] == "pending" and trial["error"] is None and trial["attempts"] == 0
    (attempt,) = client.attempts(failed)
    assert attempt["outcome"] == "failed" and attempt["error"] == "ValueError: cursed"


def test_bulk_cancel_and_retry(server):
    client = client_of(server)
    worker = register(server)
    done = run_trial(server, worker, {"accuracy": 0.5})
    failed = run_trial(server, worker, fail="ValueError: cursed")
    running = claim(server, worker)["trial"]
    ids = [trial["id"] for trial in client.trials()]
    pending = [i for i in ids if i not in (done, failed, running["id"])]

    # A list: only those ids, and only those the action applies to.
    assert client.cancel([pending[0], done], experiment=EXPERIMENT) == [pending[0]]
    # None: every pending and running trial of the active experiment.
    assert sorted(client.cancel()) == sorted([running["id"], *pending[1:]])
    now = states(client)
    assert [now[i] for i in pending] == ["cancelled"] * len(pending)
    assert now[done] == "done" and now[failed] == "failed"
    assert client.trial(running["id"])["stop_requested"] is True
    beat = server.post(
        f"/api/v1/trials/{running['id']}/heartbeat", {"lease_token": running["lease_token"]}
    )
    assert beat.status_code == 200 and beat.json()["stop"] is True
    assert client.cancel([]) == []

    # None: every failed and cancelled trial.
    assert sorted(client.retry(experiment=EXPERIMENT)) == sorted([failed, *pending])
    now = states(client)
    assert [now[i] for i in [failed, *pending]] == ["pending"] * (1 + len(pending))
    assert client.retry() == []


# Experiment names are path segments: every character a URL gives a meaning travels encoded.

AWKWARD_NAME = "runs #1? 50% a/b c+d&e=f;g é 名"


def start_awkward_server(start_server, tmp_path: Path, name: str = AWKWARD_NAME):
    directory = tmp_path / "awkward"
    directory.mkdir()
    # A JSON string is a YAML double-quoted scalar: the name exactly, whatever it holds.
    (directory / "config.yaml").write_text(
        f"experiment_name: {json.dumps(name)}\nhyperparameters:\n  index: [0, 1, 2]\n",
        encoding="utf-8",
    )
    return start_server(directory)


def test_experiment_names_with_url_syntax_reach_their_experiment(start_server, tmp_path):
    server = start_awkward_server(start_server, tmp_path)
    client = client_of(server)
    assert client.active_experiment() == AWKWARD_NAME
    trials = client.trials(AWKWARD_NAME)
    assert [trial["experiment"] for trial in trials] == [AWKWARD_NAME] * 3
    assert client.trials() == trials
    assert len(client.trials_csv(AWKWARD_NAME).splitlines()) == 4
    assert list(client.dataframe(AWKWARD_NAME).id) == [trial["id"] for trial in trials]

    failed = run_trial(server, register(server), fail="ValueError: x")
    assert client.retry(experiment=AWKWARD_NAME) == [failed]
    assert client.cancel([trials[1]["id"]], experiment=AWKWARD_NAME) == [trials[1]["id"]]
    assert client.retry(experiment=AWKWARD_NAME) == [trials[1]["id"]]
    assert sorted(client.cancel(experiment=AWKWARD_NAME)) == sorted(t["id"] for t in trials)

    with pytest.raises(ClientError) as raised:
        client.trials("runs #1? 50% a/b")  # a prefix of the name, cut at its slash
    assert raised.value.status == 404
