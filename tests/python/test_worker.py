"""gridexp-worker against a real gridexp-server: the whole system on loopback."""

from __future__ import annotations

import http.client
import http.server
import io
import json
import os
import shutil
import signal
import subprocess
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest
import requests
from conftest import PASSWORD, grid_config, trials_of, wait_for

torch = pytest.importorskip(
    "torch",
    reason="TORCH IS MISSING: every worker end-to-end test is skipped; "
    "pip install torch==2.13.0 (scripts/setup.sh does)",
)

# An experiment that records what it produced, so the test can compare with what the server
# kept. Each trial takes `sleep` seconds (a hyperparameter) so tests can act mid-trial.
EXPERIMENT = textwrap.dedent(
    """\
    import json, os, sys, time
    import torch
    import gridexp

    def init_dataset(config):
        with open("init_count.txt", "a") as f:
            f.write("x")
        return {"offset": len(config["hyperparameters"]["index"])}

    def run_one(hyperparameters, dataset):
        index = hyperparameters["index"]
        trial = gridexp.trial()
        print(f"running index {index} in trial {trial['id']}", flush=True)
        for step in range(3):
            gridexp.report(step=step, loss=1.0 / (step + 1))
            time.sleep(hyperparameters.get("sleep", 0.0) / 3)
        if index == hyperparameters.get("fail_at", -1):
            raise ValueError(f"index {index} is cursed")
        torch.manual_seed(index)
        model = torch.nn.Linear(3, 2)
        os.makedirs("produced", exist_ok=True)
        torch.save(model.state_dict(), f"produced/{trial['id']}.pt")
        results = {"index": index, "square": index * index + dataset["offset"],
                   "ratio": index / 7, "nan": float("nan"), "tensor": torch.tensor([1.5, 2.5])}
        with open(f"produced/{trial['id']}.json", "w") as f:
            json.dump({"index": index, "square": index * index + dataset["offset"]}, f)
        return results, model
    """
)


def write_experiment(directory: Path, points: int, extra: str = "", name: str = "workers") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(grid_config(name, points) + extra)
    (directory / "experiment.py").write_text(EXPERIMENT)


def running_trial(server, name: str = "workers") -> dict | None:
    return next((t for t in trials_of(server, name) if t["state"] == "running"), None)


def test_two_workers_run_the_grid_exactly_once(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 12)
    server = start_server(directory)
    first = workers(server, tmp_path / "w1", "--download_scripts")
    second = workers(server, tmp_path / "w2", "--download_scripts")
    assert first.wait() == 0, first.output()
    assert second.wait() == 0, second.output()
    trials = trials_of(server)
    assert [t["state"] for t in trials] == ["done"] * 12
    assert all(t["attempts"] == 1 for t in trials)
    for trial in trials:
        produced = next(
            w.workdir / "produced"
            for w in (first, second)
            if (w.workdir / "produced" / f"{trial['id']}.json").exists()
        )
        expected = json.loads((produced / f"{trial['id']}.json").read_text())
        assert trial["results"]["index"] == expected["index"]
        assert trial["results"]["square"] == expected["square"]
        assert trial["results"]["nan"] == "NaN"
        assert trial["results"]["tensor"] == [1.5, 2.5]
        model = server.get(f"/api/v1/trials/{trial['id']}/model")
        assert model.status_code == 200
        loaded = torch.load(io.BytesIO(model.content), weights_only=True)
        reference = torch.load(produced / f"{trial['id']}.pt", weights_only=True)
        assert loaded.keys() == reference.keys()
        assert all(torch.equal(loaded[k], reference[k]) for k in loaded)
    # init_dataset ran once per worker (consistent dataset).
    assert (first.workdir / "init_count.txt").read_text() == "x"
    # Metrics and logs reached the server, the line printed first thing in run_one included.
    for trial in trials:
        metrics = server.get(f"/api/v1/trials/{trial['id']}/metrics").json()
        assert [p["step"] for p in metrics] == [0, 1, 2]
        log = server.get(f"/api/v1/trials/{trial['id']}/log")
        assert f"running index {trial['results']['index']} " in log.text, trial["id"]
    assert "no trial is left" in first.output()


HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


def leased_trial(path: str, answer: dict) -> dict | None:
    """The trial a claim's answer, or a completion's answer with the next claim, leased."""
    if path.endswith("/claim"):
        return answer.get("trial")
    if path.endswith("/complete"):
        return (answer.get("next") or {}).get("trial")
    return None


class RelayProxy(http.server.ThreadingHTTPServer):
    """Relays HTTP to `server`. Before relaying the first answer to a call ending in `suffix`
    that leased a trial, it records the trial and calls `on_lease(trial)`; when that returns
    True, it closes the connection instead: the call went through, its answer was lost."""

    daemon_threads = True

    def __init__(self, server, suffix: str, on_lease) -> None:
        self.upstream_port = server.port
        self.suffix = suffix
        self.on_lease = on_lease
        self.leased: list[str] = []
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _RelayHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        content = answer.read()
        upstream.close()
        if self.path.endswith(self.server.suffix) and not self.server.leased:
            leased = leased_trial(self.path, json.loads(content))
            if leased:
                self.server.leased.append(leased["id"])
                if self.server.on_lease(leased):
                    self.close_connection = True
                    return
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = relay

    def log_message(self, *args) -> None:
        pass


def claim_requests(server) -> int:
    """How many claims the server has answered, from the /metrics request histogram."""
    route = 'route="/api/v1/workers/{id}/claim"'
    for line in server.get("/metrics").text.splitlines():
        if line.startswith("gridexp_http_request_duration_seconds_count{") and route in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


@pytest.mark.parametrize("lost", ["/claim", "/complete"])
def test_a_claim_whose_answer_is_lost_gets_its_lease_again(start_server, workers, tmp_path, lost):
    directory = tmp_path / "server"
    write_experiment(directory, 3)
    # A short lease: without the retry getting its lease back, the lost claim's trial would
    # wait for it to expire and run as a second attempt. A completion claims the next trial
    # itself: when its answer is lost, the claim sent then with the same id gets that lease.
    server = start_server(directory, "--lease-seconds", "4")
    proxy = RelayProxy(server, lost, on_lease=lambda trial: True)
    try:
        worker = workers(proxy, tmp_path / "w", "--download_scripts", "--save_models=False")
        assert worker.wait() == 0, worker.output()
    finally:
        proxy.shutdown()
    assert len(proxy.leased) == 1
    trials = trials_of(server)
    assert [t["state"] for t in trials] == ["done"] * 3
    assert [t["attempts"] for t in trials] == [1, 1, 1]
    lost = server.get(f"/api/v1/trials/{proxy.leased[0]}/attempts").json()
    assert [a["outcome"] for a in lost] == ["done"]
    assert f"claim of trial {proxy.leased[0]} was lost on the way" in worker.output()
    # Claims of their own: the first, the one sent again; every other one came with a
    # completion.
    assert claim_requests(server) == 2


def test_the_seeds_exact_command_line_is_accepted(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 3)
    server = start_server(directory)
    worker = workers(
        server,
        tmp_path / "w",
        "--save_models=False",
        "--download_scripts",
        "--download_data=False",
        f"--server_password={PASSWORD}",
        password=None,
    )
    assert worker.wait() == 0, worker.output()
    assert "visible" in worker.output()
    trials = trials_of(server)
    assert [t["state"] for t in trials] == ["done"] * 3
    assert all(t["model"] is None for t in trials)


def test_run_one_raising_fails_the_trial_and_stops_the_worker(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 4, "  fail_at: 1\n")
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts")
    assert worker.wait() == 1
    last_line = worker.output().strip().splitlines()[-1]
    assert "failed" in last_line and "cursed" in last_line
    failed = [t for t in trials_of(server) if t["state"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error"] == "ValueError: index 1 is cursed"
    assert "Traceback" in failed[0]["traceback"] and "run_one" in failed[0]["traceback"]

    going_on = workers(server, tmp_path / "w2", "--download_scripts", "--raise_on_failure=False")
    assert going_on.wait() == 0, going_on.output()
    states = sorted(t["state"] for t in trials_of(server))
    assert states == ["done", "done", "done", "failed"]


@pytest.mark.parametrize(
    "source,expected",
    [
        (
            "def init_dataset(config):\n    return 1\n\ndef run_one(h, d)\n    pass\n",
            "experiment.py:4",
        ),
        ("def init_dataset(config):\n    return 1\n", "run_one"),
    ],
)
def test_a_broken_experiment_is_reported_and_burns_no_trial(
    start_server, workers, tmp_path, source, expected
):
    directory = tmp_path / "server"
    write_experiment(directory, 2)
    (directory / "experiment.py").write_text(source)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts")
    assert worker.wait() == 2
    last_line = worker.output().strip().splitlines()[-1]
    assert expected in last_line
    assert all(t["state"] == "pending" and t["attempts"] == 0 for t in trials_of(server))


def test_results_that_are_not_json_fail_naming_the_key(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("workers", 1))
    (directory / "experiment.py").write_text(
        "def init_dataset(config):\n    return None\n\n"
        "def run_one(hyperparameters, dataset):\n"
        "    return {'curve': [1, 2, {3}]}, None\n"
    )
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts", "--raise_on_failure=False")
    assert worker.wait() == 0, worker.output()
    (trial,) = trials_of(server)
    assert trial["state"] == "failed"
    assert "['curve'][2]" in trial["error"] and "set" in trial["error"]


def test_kill_9_of_a_worker_mid_trial_hands_the_trial_to_another(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 3, "  sleep: 3\n")
    server = start_server(directory, "--lease-seconds", "3")
    doomed = workers(server, tmp_path / "w1", "--download_scripts")
    victim = wait_for(lambda: running_trial(server))
    doomed.kill()  # SIGKILL to the supervisor (and its executor dies with it)
    survivor = workers(server, tmp_path / "w2", "--download_scripts")
    assert survivor.wait(timeout=180) == 0, survivor.output()
    trials = {t["id"]: t for t in trials_of(server)}
    assert all(t["state"] == "done" for t in trials.values())
    assert trials[victim["id"]]["attempts"] == 2
    assert trials[victim["id"]]["worker"] != victim["worker"]


def test_kill_9_of_the_executor_requeues_its_trial_and_the_worker_goes_on(
    start_server, workers, tmp_path
):
    directory = tmp_path / "server"
    write_experiment(directory, 3, "  sleep: 2\n")
    server = start_server(directory)
    # --raise_on_failure=True (the default): a lost executor is not the trial's failure.
    worker = workers(server, tmp_path / "w", "--download_scripts")
    victim = wait_for(lambda: running_trial(server))
    children = subprocess.run(
        ["pgrep", "-P", str(worker.process.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert children, worker.output()
    os.kill(int(children[0]), signal.SIGKILL)
    assert worker.wait() == 0, worker.output()
    trials = {t["id"]: t for t in trials_of(server)}
    assert sorted(t["state"] for t in trials.values()) == ["done", "done", "done"]
    assert trials[victim["id"]]["attempts"] == 2, "the lost attempt counts"
    attempts = server.get(f"/api/v1/trials/{victim['id']}/attempts").json()
    assert [a["outcome"] for a in attempts] == ["lost", "done"], attempts
    assert "killed by signal 9 (SIGKILL)" in attempts[0]["error"], attempts
    assert "goes back to pending" in worker.output(), worker.output()
    metrics = server.get("/metrics").text
    assert "gridexp_executors_lost_total 1" in metrics


def test_ctrl_c_releases_the_running_trial(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 2, "  sleep: 30\n")
    server = start_server(directory)
    # run_one never polls gridexp.should_stop(): its executor is killed after the grace.
    worker = workers(server, tmp_path / "w", "--download_scripts", "--grace_seconds=1")
    victim = wait_for(lambda: running_trial(server))
    started = time.monotonic()
    os.kill(worker.process.pid, signal.SIGINT)
    assert worker.wait(timeout=30) == 130
    assert time.monotonic() - started < 10
    trial = next(t for t in trials_of(server) if t["id"] == victim["id"])
    assert trial["state"] == "pending" and trial["attempts"] == 0
    assert "released" in worker.output().strip().splitlines()[-1]


def test_ctrl_c_as_a_completion_brings_the_next_lease_gives_that_lease_back(
    start_server, workers, tmp_path
):
    directory = tmp_path / "server"
    write_experiment(directory, 2)
    server = start_server(directory)
    worker = None

    def interrupt_the_worker(trial: dict) -> bool:
        # The completion went through and claimed the next trial; the worker is interrupted
        # before its answer arrives (a signal only sets a flag: it is seen after the call).
        os.kill(worker.process.pid, signal.SIGINT)
        time.sleep(0.5)
        return False

    proxy = RelayProxy(server, "/complete", on_lease=interrupt_the_worker)
    try:
        worker = workers(proxy, tmp_path / "w", "--download_scripts", "--save_models=False")
        assert worker.wait(timeout=60) == 130, worker.output()
    finally:
        proxy.shutdown()
    first, second = trials_of(server)
    assert first["state"] == "done"
    assert second["id"] == proxy.leased[0]
    # The lease the completion brought was given back at once, not left to expire.
    assert second["state"] == "pending" and second["attempts"] == 0
    history = server.get(f"/api/v1/trials/{second['id']}/attempts").json()
    assert [a["outcome"] for a in history] == ["released"]


def test_a_second_worker_in_the_same_workdir_is_refused(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 2, "  sleep: 2\n")
    server = start_server(directory)
    first = workers(server, tmp_path / "w", "--download_scripts")
    wait_for(lambda: running_trial(server))
    second = workers(server, tmp_path / "w", "--download_scripts")
    assert second.wait(timeout=60) == 2, second.output()
    refusal = second.output().strip().splitlines()[-1]
    assert f"another gridexp-worker (pid {first.process.pid} on " in refusal
    assert str(tmp_path / "w") in refusal and "--workdir" in refusal
    assert first.wait() == 0, first.output()
    assert [t["state"] for t in trials_of(server)] == ["done"] * 2
    # Once the first is gone, the directory is free again.
    third = workers(server, tmp_path / "w", "--download_scripts")
    assert third.wait() == 0, third.output()


def test_server_restart_while_workers_run(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 8, "  sleep: 0.6\n")
    server = start_server(directory)
    port = server.port
    worker = workers(server, tmp_path / "w", "--download_scripts")
    wait_for(lambda: sum(t["state"] == "done" for t in trials_of(server)) >= 2)
    server.kill()
    time.sleep(1.5)
    restarted = start_server(directory, "--port", str(port))
    assert worker.wait(timeout=180) == 0, worker.output()
    trials = trials_of(restarted)
    assert [t["state"] for t in trials] == ["done"] * 8
    assert "retrying" in worker.output()


def test_an_archive_escaping_the_workdir_is_refused(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 1)
    with zipfile.ZipFile(directory / "data.zip", "w") as archive:
        archive.writestr("data/ok.txt", "fine")
        archive.writestr("../escaped.txt", "evil")
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts")
    assert worker.wait() != 0
    last_line = worker.output().strip().splitlines()[-1]
    assert "data.zip" in last_line and ".." in last_line
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "w" / "data" / "ok.txt").exists()
    assert all(t["state"] == "pending" for t in trials_of(server))


def test_dry_run_writes_nothing_to_the_server(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 2)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts", "--dry_run")
    assert worker.wait() == 0, worker.output()
    assert all(t["state"] == "pending" and t["attempts"] == 0 for t in trials_of(server))
    assert server.get("/api/v1/workers").json() == []
    assert len(list((tmp_path / "w" / "produced").glob("*.json"))) == 2


def test_wrong_password_is_a_clear_error(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    write_experiment(directory, 1)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", password="nope")
    assert worker.wait() == 2
    assert "wrong password" in worker.output().strip().splitlines()[-1]
    assert requests.get(f"{server.url}/healthz", timeout=5).ok


def test_the_sentiment_example_with_two_workers(start_server, workers, tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "sentiment"
    directory = tmp_path / "sentiment"
    directory.mkdir()
    for name in ("config.yaml", "experiment.py"):
        shutil.copy(example / name, directory / name)
    server = start_server(directory)
    pair = [
        workers(server, tmp_path / f"w{n}", "--download_scripts", "--download_data=False")
        for n in (1, 2)
    ]
    for worker in pair:
        assert worker.wait(timeout=600) == 0, worker.output()
    trials = trials_of(server, "sentiment_analysis1")
    assert len(trials) == 8
    assert all(t["state"] == "done" and t["attempts"] == 1 for t in trials)
    assert len({t["worker"] for t in trials}) == 2
    for trial in trials:
        assert trial["results"]["epochs_run"] == 10
        assert trial["results"]["val_accuracy"] > 0.6, trial
        model = server.get(f"/api/v1/trials/{trial['id']}/model")
        state_dict = torch.load(io.BytesIO(model.content), weights_only=True)
        assert state_dict and all(isinstance(v, torch.Tensor) for v in state_dict.values())
        assert (directory / "models" / f"{trial['id']}.pt").read_bytes() == model.content
        assert len(server.get(f"/api/v1/trials/{trial['id']}/metrics").json()) == 10


def test_max_trials_and_a_dataloader_with_worker_processes(start_server, workers, tmp_path):
    directory = tmp_path / "server"
    directory.mkdir()
    (directory / "config.yaml").write_text(grid_config("workers", 3))
    (directory / "experiment.py").write_text(
        textwrap.dedent(
            """\
            import sys
            import torch
            from torch.utils.data import DataLoader, TensorDataset

            def init_dataset(config):
                return TensorDataset(torch.arange(8.0))

            def run_one(hyperparameters, dataset):
                loader = DataLoader(dataset, batch_size=2, num_workers=2)
                total = sum(float(batch[0].sum()) for batch in loader)
                return {"total": total, "executable": sys.executable}, None
            """
        )
    )
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts", "--max_trials=1")
    assert worker.wait(timeout=180) == 0, worker.output()
    done = [t for t in trials_of(server) if t["state"] == "done"]
    assert len(done) == 1
    assert done[0]["results"]["total"] == 28.0
    executable = Path(done[0]["results"]["executable"])
    worker_binary = Path(shutil.which("gridexp-worker")).absolute()
    assert executable.name.startswith("python") and executable.parent == worker_binary.parent
    assert "--max_trials" in worker.output()
