"""A seeded kill -9 soak: a real server and two workers run a small grid while a random schedule
kills the server, a worker's supervisor (gridexp-worker) or an executor (gridexp-executor) with
SIGKILL, restarting what was killed. At the end every grid point must be done exactly once,
with the result of one real run and that run's model file intact, and the database must pass
SQLite's integrity check.

GRIDEXP_SOAK_RUNS=N runs N schedules (default 3); GRIDEXP_SOAK_SEED=S seeds the first (run i
uses S + i). A failure names its seed (in the test id and the message): rerun it with
GRIDEXP_SOAK_SEED=<seed> GRIDEXP_SOAK_RUNS=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest
import requests
from conftest import Server, Worker, grid_config

POINTS = 24
LEASE_SECONDS = 3
WORKERS = 2
SOAK_RUNS = int(os.environ.get("GRIDEXP_SOAK_RUNS", "3"))
FIRST_SEED = int(os.environ.get("GRIDEXP_SOAK_SEED", "1"))
# How long a schedule may take to finish its grid once the kills are over; a run takes about
# 15-30 s on a loaded 2-core machine.
SETTLE_SECONDS = 150

# Each run_one sleeps 0.2-1 s, then appends a line naming its run (a fresh token) to
# runs/<trial id>.jsonl before returning it in its results; its model is a file whose bytes
# follow from the index and the token. So the accepted result names exactly one real run,
# and the model the server kept must be that run's.
EXPERIMENT = textwrap.dedent(
    """\
    import json
    import os
    import time
    import uuid
    from pathlib import Path

    import gridexp

    RUNS = Path({runs!r})


    def model_bytes(index, token):
        return (f"model index={{index}} token={{token}}\\n" * 2000).encode()


    def init_dataset(config):
        return None


    def run_one(hyperparameters, dataset):
        index = hyperparameters["index"]
        time.sleep(0.2 + 0.8 * ((index * 37) % {points}) / ({points} - 1))
        token = uuid.uuid4().hex
        with open(RUNS / (gridexp.trial()["id"] + ".jsonl"), "a") as runs:
            runs.write(json.dumps({{"token": token, "pid": os.getpid()}}) + "\\n")
            runs.flush()
            os.fsync(runs.fileno())
        return {{"index": index, "token": token}}, (index, token)


    def save_model(model, path):
        Path(path).write_bytes(model_bytes(*model))
    """
)


def expected_model(index: int, token: str) -> bytes:
    return (f"model index={index} token={token}\n" * 2000).encode()


def executor_children(pid: int) -> list[int]:
    """The gridexp-executor processes among `pid`'s children (from /proc)."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(child) for child in (task / "children").read_text().split()]
    except OSError:  # the process is gone
        return []
    found = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(command) == b"gridexp-executor":
            found.append(child)
    return found


class Soak:
    """One seeded schedule against one experiment directory."""

    def __init__(self, seed: int, tmp_path: Path, start_server, start_worker):
        self.seed = seed
        self.rng = random.Random(seed)
        self.start_worker = start_worker
        self.directory = tmp_path / "experiment"
        self.runs = tmp_path / "runs"
        self.directory.mkdir()
        self.runs.mkdir()
        (self.directory / "config.yaml").write_text(grid_config("soak", POINTS))
        (self.directory / "experiment.py").write_text(
            EXPERIMENT.format(runs=str(self.runs), points=POINTS)
        )
        self.server: Server = start_server(
            self.directory, "--lease-seconds", str(LEASE_SECONDS), "--max-attempts", "1000"
        )
        self.workdirs = [tmp_path / f"worker{n}" for n in range(WORKERS)]
        self.workers: list[Worker] = [self.new_worker(n) for n in range(WORKERS)]
        self.events: list[str] = []
        self.retried: list[str] = []

    def new_worker(self, number: int) -> Worker:
        return self.start_worker(
            self.server, self.workdirs[number], "--download_scripts", "--raise_on_failure=False"
        )

    def describe(self) -> str:
        consoles = "\n".join(
            f"--- worker {n} (last start):\n{worker.output()[-3000:]}"
            for n, worker in enumerate(self.workers)
        )
        return (
            f"seed {self.seed} (GRIDEXP_SOAK_SEED={self.seed} GRIDEXP_SOAK_RUNS=1)\n"
            f"events: {self.events}\nretried: {self.retried}\n{consoles}\n"
            f"--- server:\n{''.join(self.server.output[-40:])}"
        )

    def trials(self) -> list[dict] | None:
        """The grid's trials, or None while the server is down or restarting."""
        try:
            response = self.server.get("/api/v1/experiments/soak/trials")
        except requests.RequestException:
            return None
        return response.json() if response.status_code == 200 else None

    def kill_something(self) -> None:
        elapsed = f"{time.monotonic() - self.started:.1f}s"
        kind = self.rng.choice(["server", "supervisor", "executor"])
        number = self.rng.randrange(WORKERS)
        if kind == "server":
            self.server.kill()
            time.sleep(self.rng.uniform(0, 1))
            self.server.start()
            self.events.append(f"{elapsed} server")
        elif kind == "supervisor":
            worker = self.workers[number]
            if worker.process.poll() is None:
                os.kill(worker.process.pid, signal.SIGKILL)
            worker.wait()
            time.sleep(self.rng.uniform(0, 1))
            self.workers[number] = self.new_worker(number)
            self.events.append(f"{elapsed} supervisor {number}")
        else:
            executors = executor_children(self.workers[number].process.pid)
            for pid in executors[:1]:
                os.kill(pid, signal.SIGKILL)
            self.events.append(f"{elapsed} executor {number}" + ("" if executors else " (none)"))

    def tend(self, trials: list[dict]) -> None:
        """Retries the trials our executor kills failed; restarts workers that exited."""
        for trial in trials:
            if trial["state"] == "failed":
                assert "signal 9" in (trial["error"] or ""), (trial, self.describe())
                response = self.server.post(f"/api/v1/trials/{trial['id']}/retry")
                assert response.status_code == 200, response.text
                self.retried.append(trial["id"])
        unfinished = any(trial["state"] != "done" for trial in trials)
        for number, worker in enumerate(self.workers):
            code = worker.process.poll()
            if code is None:
                continue
            # A worker exits on its own only when nothing is pending or running (0).
            assert code == 0, f"worker {number} exited {code}\n{self.describe()}"
            if unfinished:
                worker.wait()
                self.workers[number] = self.new_worker(number)

    def run(self) -> list[dict]:
        self.started = time.monotonic()
        kills_left = self.rng.randint(4, 7)
        next_kill = self.started + self.rng.uniform(0.5, 2.5)
        deadline = None
        while True:
            now = time.monotonic()
            if kills_left > 0 and now >= next_kill:
                self.kill_something()
                kills_left -= 1
                next_kill = time.monotonic() + self.rng.uniform(0.5, 2.5)
                continue
            if kills_left == 0 and deadline is None:
                deadline = now + SETTLE_SECONDS
            trials = self.trials()
            if trials is not None:
                if kills_left == 0 and all(trial["state"] == "done" for trial in trials):
                    return trials
                self.tend(trials)
            assert deadline is None or now < deadline, (
                f"the grid did not finish: {trials}\n{self.describe()}"
            )
            time.sleep(0.2)

    def check(self, trials: list[dict]) -> None:
        context = self.describe()
        assert sorted(trial["hyperparameters"]["index"] for trial in trials) == list(
            range(POINTS)
        ), context
        for trial in trials:
            trial_id, index = trial["id"], trial["hyperparameters"]["index"]
            assert trial["state"] == "done", (trial, context)
            assert trial["results"]["index"] == index, (trial, context)
            token = trial["results"]["token"]
            runs_file = self.runs / f"{trial_id}.jsonl"
            runs = [json.loads(line) for line in runs_file.read_text().splitlines()]
            assert [run["token"] for run in runs].count(token) == 1, (trial, runs, context)
            attempts = self.server.get(f"/api/v1/trials/{trial_id}/attempts").json()
            outcomes = [attempt["outcome"] for attempt in attempts]
            assert outcomes.count("done") == 1, (trial_id, attempts, context)
            model = (self.directory / "models" / f"{trial_id}.pt").read_bytes()
            assert model == expected_model(index, token), (trial_id, len(model), context)
            assert trial["model"]["sha256"] == hashlib.sha256(model).hexdigest(), (trial, context)
            assert trial["model"]["size"] == len(model), (trial, context)
        models = {path.stem for path in (self.directory / "models").glob("*.pt")}
        assert models == {trial["id"] for trial in trials}, (models, context)
        # Nothing pending or running: every worker exits 0 by itself.
        for number, worker in enumerate(self.workers):
            assert worker.wait(timeout=60) == 0, f"worker {number}\n{self.describe()}"
        assert self.server.stop() == 0, context
        database = sqlite3.connect(self.directory / ".gridexp" / "state.db")
        try:
            assert database.execute("PRAGMA integrity_check").fetchall() == [("ok",)], context
        finally:
            database.close()


@pytest.mark.parametrize("seed", [FIRST_SEED + run for run in range(SOAK_RUNS)])
def test_kill_9_soak(seed, tmp_path, start_server, workers):
    soak = Soak(seed, tmp_path, start_server, workers)
    soak.check(soak.run())
    print(f"seed {seed}: kills {soak.events}; retried {soak.retried}")
