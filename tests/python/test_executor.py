"""System tests of gridexp-executor: the real binary, driven over its command and event pipes
as gridexp-worker drives it (docs/executor.md), with small experiment.py files.

The binary is $GRIDEXP_EXECUTOR when set (a build tree's), else gridexp-executor on PATH (the
one `pip install .` put beside the environment's python).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import venv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0  # seconds; importing torch in a cold executor can take a while

BASIC_EXPERIMENT = """
    import gridexp

    def init_dataset(config):
        return {"size": config["size"]}

    def run_one(hyperparameters, dataset):
        results = {"lr": hyperparameters["lr"], "size": dataset["size"], "trial": gridexp.trial()}
        return results, None
"""


def executor_binary() -> str:
    explicit = os.environ.get("GRIDEXP_EXECUTOR")
    if explicit:
        return os.path.abspath(explicit)  # the executor runs in another directory
    found = shutil.which("gridexp-executor")
    found = os.path.abspath(found) if found else None
    if found is None:
        pytest.fail(
            "gridexp-executor is not on PATH: run scripts/run-tests.sh (it installs it), "
            "or set GRIDEXP_EXECUTOR to a built one"
        )
    return found


class Executor:
    """One gridexp-executor process in `workdir`, its pipes, and everything it printed."""

    def __init__(self, workdir: Path, binary: str) -> None:
        command_read, command_write = os.pipe()
        event_read, event_write = os.pipe()
        self.command_fd = command_read
        self.event_fd = event_write
        environment = dict(os.environ)
        # The gridexp package of this source tree, whatever version the environment has.
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "python"), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        self.process = subprocess.Popen(
            [binary, "--command-fd", str(command_read), "--event-fd", str(event_write)],
            cwd=workdir,
            pass_fds=(command_read, event_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
            start_new_session=True,
        )
        os.close(command_read)
        os.close(event_write)
        self.commands = os.fdopen(command_write, "w", encoding="utf-8")
        self.events: queue.Queue[dict | None] = queue.Queue()
        self.output_lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump_events, args=(event_read,), daemon=True).start()
        threading.Thread(target=self._pump_output, daemon=True).start()

    def _pump_events(self, fd: int) -> None:
        with os.fdopen(fd, encoding="utf-8") as events:
            for line in events:
                self.events.put(json.loads(line))
        self.events.put(None)

    def _pump_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.output_lines.put(line)

    def send(self, message: dict) -> None:
        self.commands.write(json.dumps(message) + "\n")
        self.commands.flush()

    def send_start(self, config: dict | None = None, **fields: object) -> None:
        self.send(
            {
                "type": "start",
                "config": config if config is not None else {"size": 3},
                "consistent_dataset": True,
                "save_models": False,
                **fields,
            }
        )

    def send_run(self, trial_id: str, hyperparameters: dict | None = None) -> None:
        trial = {
            "id": trial_id,
            "attempt": 1,
            "experiment": "demo",
            "hyperparameters": hyperparameters if hyperparameters is not None else {"lr": 0.1},
        }
        self.send({"type": "run", "trial": trial})

    def next_event(self, timeout: float = TIMEOUT) -> dict:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event in {timeout}s; output:\n{self.printed()}") from None
        if event is None:
            raise AssertionError(f"the event pipe closed; output:\n{self.printed()}")
        return event

    def next_event_of(self, event_type: str) -> dict:
        """The next event, which must be of `event_type`."""
        event = self.next_event()
        assert event["type"] == event_type, f"{event}\noutput:\n{self.printed()}"
        return event

    def wait_for_output(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in self.output_lines.get(timeout=deadline - time.monotonic()):
                    return
            except queue.Empty:
                break
        raise AssertionError(f"{text!r} not printed in {timeout}s; output:\n{self.printed()}")

    def close_commands(self) -> None:
        self.commands.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.process.wait(timeout=timeout)

    def printed(self) -> str:
        return "".join(self.output)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not self.commands.closed:
            try:
                self.commands.close()
            except BrokenPipeError:
                pass


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    directory = tmp_path / "work"
    directory.mkdir()
    return directory


@pytest.fixture
def start_executor(workdir: Path) -> Iterator[Callable[..., Executor]]:
    """Starts executors in `workdir` (writing its experiment.py first) and kills them after."""
    started: list[Executor] = []

    def start(experiment_py: str | None, binary: str | None = None) -> Executor:
        if experiment_py is not None:
            (workdir / "experiment.py").write_text(textwrap.dedent(experiment_py))
        executor = Executor(workdir, binary or executor_binary())
        started.append(executor)
        return executor

    yield start
    for executor in started:
        executor.kill()


def started_executor(start_executor: Callable[..., Executor], experiment_py: str) -> Executor:
    executor = start_executor(experiment_py)
    executor.send_start()
    executor.next_event_of("ready")
    return executor


# ---- start -------------------------------------------------------------------------------


def test_runs_trials_then_exits_zero_when_the_commands_end(start_executor):
    executor = started_executor(start_executor, BASIC_EXPERIMENT)
    executor.send_run("t1", {"lr": 0.1})
    result = executor.next_event_of("result")
    assert result == {
        "type": "result",
        "trial_id": "t1",
        "results": {
            "lr": 0.1,
            "size": 3,
            "trial": {
                "id": "t1",
                "attempt": 1,
                "experiment": "demo",
                "hyperparameters": {"lr": 0.1},
            },
        },
        "model_path": None,
    }
    executor.send_run("t2", {"lr": 0.2})
    assert executor.next_event_of("result")["results"]["lr"] == 0.2
    executor.close_commands()
    assert executor.wait() == 0


def test_a_syntax_error_is_fatal_with_its_file_and_line(start_executor):
    executor = start_executor(
        "def init_dataset(config):\n    return 1\n\ndef run_one(:\n    pass\n"
    )
    executor.send_start()
    fatal = executor.next_event_of("fatal")
    assert fatal["error"].startswith("experiment.py could not be imported: SyntaxError: ")
    assert (fatal["file"], fatal["line"]) == ("experiment.py", 4)
    assert "SyntaxError" in fatal["traceback"]
    assert executor.wait() == 3


def test_an_import_error_points_at_the_importing_line(start_executor):
    executor = start_executor("import os\nimport no_such_module_here\n")
    executor.send_start()
    fatal = executor.next_event_of("fatal")
    assert fatal["error"] == (
        "experiment.py could not be imported: "
        "ModuleNotFoundError: No module named 'no_such_module_here'"
    )
    assert (fatal["file"], fatal["line"]) == ("experiment.py", 2)
    assert executor.wait() == 3


def test_a_missing_run_one_is_fatal(start_executor):
    executor = start_executor("def init_dataset(config):\n    return None\n")
    executor.send_start()
    fatal = executor.next_event_of("fatal")
    assert fatal["error"] == "experiment.py does not define run_one(hyperparameters, dataset)"
    assert (fatal["file"], fatal["line"], fatal["traceback"]) == ("experiment.py", None, "")
    assert executor.wait() == 3


def test_a_missing_experiment_py_is_fatal_and_names_the_directory(start_executor, workdir):
    executor = start_executor(None)
    executor.send_start()
    fatal = executor.next_event_of("fatal")
    assert fatal == {
        "type": "fatal",
        "error": f"experiment.py not found in {workdir}",
        "file": None,
        "line": None,
        "traceback": "",
    }
    assert executor.wait() == 3


def test_the_originals_later_names_say_what_to_rename(start_executor):
    executor = start_executor(
        "def InitDataset(config):\n    return None\n\n"
        "def RunOne(hyperparameters, dataset):\n    return {}, None\n"
    )
    executor.send_start()
    fatal = executor.next_event_of("fatal")
    assert fatal["error"] == (
        "experiment.py does not define init_dataset(config) or run_one(hyperparameters, "
        "dataset); it defines InitDataset and RunOne, which belong to another version of the "
        "original framework's contract: rename InitDataset to init_dataset, RunOne to run_one"
    )
    assert executor.wait() == 3


def test_the_originals_save_model_beside_the_contract_is_warned_about(start_executor):
    executor = started_executor(
        start_executor,
        BASIC_EXPERIMENT + "\n    def SaveModel(model, path):\n        raise AssertionError\n",
    )
    executor.wait_for_output("rename SaveModel to save_model(model, path)")
    assert "defines SaveModel, the original framework's later name" in executor.printed()
    executor.send_run("t1")
    assert executor.next_event_of("result")["type"] == "result"


def test_init_dataset_raising_is_fatal(start_executor):
    executor = start_executor(
        """
        def init_dataset(config):
            raise FileNotFoundError("imdb.pt")

        def run_one(hyperparameters, dataset):
            return {}, None
        """
    )
    executor.send_start()
    fatal = executor.next_event_of("fatal")
    assert fatal["error"] == "init_dataset(config) raised FileNotFoundError: imdb.pt"
    assert (fatal["file"], fatal["line"]) == ("experiment.py", 3)
    assert executor.wait() == 3


def test_a_malformed_command_is_fatal(start_executor):
    executor = start_executor(BASIC_EXPERIMENT)
    executor.send({"type": "run", "trial": {"id": "t1", "hyperparameters": {}}})
    fatal = executor.next_event_of("fatal")
    assert fatal["error"] == "protocol error: run before start"
    assert executor.wait() == 3


# ---- trials ------------------------------------------------------------------------------


def test_an_exception_in_run_one_fails_the_trial_and_the_executor_goes_on(start_executor):
    executor = started_executor(
        start_executor,
        """
        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            if hyperparameters["fail"]:
                raise ValueError("bad batch")
            return {"ok": True}, None
        """,
    )
    executor.send_run("t1", {"fail": True})
    failed = executor.next_event_of("failed")
    assert failed["trial_id"] == "t1"
    assert failed["error"] == "ValueError: bad batch"
    assert failed["traceback"].startswith("Traceback (most recent call last):")
    assert 'experiment.py", line 7, in run_one' in failed["traceback"]
    executor.send_run("t2", {"fail": False})
    assert executor.next_event_of("result")["results"] == {"ok": True}


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        (
            "{'curve': [0.5, 0.4, 0.3, {1, 2}]}, None",
            "results['curve'][3] is a set (builtins.set), which cannot be sent as JSON",
        ),
        ("{'loss': 0.1}", "run_one must return a tuple (results, model), but returned a dict"),
        (
            "1, 2, 3",
            "run_one must return a tuple (results, model), but returned a tuple of 3 items",
        ),
        (
            "{'acc': {1: 0.5, '1': 0.6}}, None",
            "results['acc'] has the keys 1 (builtins.int) and '1' (builtins.str), which both "
            'become the JSON key "1"',
        ),
    ],
)
def test_results_that_cannot_be_sent_fail_the_trial(start_executor, returned, error):
    executor = started_executor(
        start_executor,
        f"""
        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            return {returned}
        """,
    )
    executor.send_run("t1")
    failed = executor.next_event_of("failed")
    assert failed == {"type": "failed", "trial_id": "t1", "error": error, "traceback": ""}


def test_results_carry_non_finite_floats_as_strings(start_executor):
    executor = started_executor(
        start_executor,
        """
        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            return [float("nan"), float("inf"), -float("inf"), 2**64 - 1], None
        """,
    )
    executor.send_run("t1")
    assert executor.next_event_of("result")["results"] == [
        "NaN",
        "Infinity",
        "-Infinity",
        2**64 - 1,
    ]


def test_results_json_dumps_accepts_dates_and_paths_are_sent(start_executor):
    executor = started_executor(
        start_executor,
        """
        import datetime, pathlib

        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            results = {
                "per_class_acc": {0: 0.5, 1: 0.75},
                "by_key": {0.1: "float", True: "bool", None: "none"},
                "finished": datetime.datetime(2024, 5, 6, 7, 8, 9),
                "checkpoint": pathlib.Path("runs") / "best.pt",
            }
            return results, None
        """,
    )
    executor.send_run("t1")
    assert executor.next_event_of("result")["results"] == {
        "per_class_acc": {"0": 0.5, "1": 0.75},
        "by_key": {"0.1": "float", "true": "bool", "null": "none"},
        "finished": "2024-05-06T07:08:09",
        "checkpoint": "runs/best.pt",
    }


def test_report_sends_metrics_before_the_result(start_executor):
    executor = started_executor(
        start_executor,
        """
        import gridexp

        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            for step in range(3):
                gridexp.report(step=step, loss=1.0 / (step + 1), curve=[step])
            gridexp.report(note="done")
            try:
                gridexp.report(bad={1})
            except TypeError as error:
                return {"error": str(error)}, None
            return {}, None
        """,
    )
    before = time.time() * 1000
    executor.send_run("t1")
    metrics = [executor.next_event_of("metrics") for _ in range(4)]
    assert [event["step"] for event in metrics] == [0, 1, 2, None]
    assert metrics[1]["values"] == {"loss": 0.5, "curve": [1]}
    assert metrics[3]["values"] == {"note": "done"}
    assert all(event["trial_id"] == "t1" for event in metrics)
    assert all(before - 1000 <= event["time_ms"] <= time.time() * 1000 + 1000 for event in metrics)
    result = executor.next_event_of("result")
    assert result["results"]["error"] == (
        "metrics['bad'] is a set (builtins.set), which cannot be sent as JSON"
    )


def test_stop_makes_should_stop_true_inside_run_one(start_executor):
    executor = started_executor(
        start_executor,
        """
        import time
        import gridexp

        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            stopped_at_start = gridexp.should_stop()
            gridexp.report(state="running")
            deadline = time.monotonic() + 30
            while not gridexp.should_stop() and time.monotonic() < deadline:
                time.sleep(0.01)
            return {"at_start": stopped_at_start, "stopped": gridexp.should_stop()}, None
        """,
    )
    executor.send_run("t1")
    executor.next_event_of("metrics")
    executor.send({"type": "stop", "trial_id": "other"})
    executor.send({"type": "stop", "trial_id": "t1"})
    assert executor.next_event_of("result")["results"] == {"at_start": False, "stopped": True}


def test_init_dataset_runs_per_trial_without_consistent_dataset(start_executor):
    executor = start_executor(
        """
        import gridexp

        calls = []

        def init_dataset(config):
            calls.append(gridexp.trial()["id"])
            return len(calls)

        def run_one(hyperparameters, dataset):
            return {"dataset": dataset, "calls": calls}, None
        """
    )
    executor.send_start(consistent_dataset=False)
    executor.next_event_of("ready")
    executor.send_run("a")
    assert executor.next_event_of("result")["results"] == {"dataset": 1, "calls": ["a"]}
    executor.send_run("b")
    assert executor.next_event_of("result")["results"] == {"dataset": 2, "calls": ["a", "b"]}


def test_end_of_commands_finishes_the_trial_in_hand_first(start_executor):
    executor = started_executor(
        start_executor,
        """
        import time

        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            time.sleep(0.5)
            return {"finished": True}, None
        """,
    )
    executor.send_run("t1")
    executor.close_commands()
    assert executor.next_event_of("result")["results"] == {"finished": True}
    assert executor.wait() == 0


SLEEPING_EXPERIMENT = """
    import time
    import gridexp

    def init_dataset(config):
        return None

    def run_one(hyperparameters, dataset):
        gridexp.report(state="sleeping")
        time.sleep(60)
        return {}, None
"""


def test_sigint_during_a_trial_fails_it_then_the_executor_exits(start_executor):
    executor = started_executor(start_executor, SLEEPING_EXPERIMENT)
    executor.send_run("t1")
    executor.next_event_of("metrics")
    executor.process.send_signal(signal.SIGINT)
    failed = executor.next_event_of("failed")
    assert failed["error"] == "KeyboardInterrupt"
    assert ", in run_one" in failed["traceback"]
    assert executor.wait() == 130


def test_sigint_between_trials_ends_the_executor(start_executor):
    executor = started_executor(start_executor, SLEEPING_EXPERIMENT)
    executor.process.send_signal(signal.SIGINT)
    assert executor.wait() == 130


# ---- models ------------------------------------------------------------------------------


def test_save_models_saves_a_torch_models_state_dict(start_executor, tmp_path):
    torch = pytest.importorskip(
        "torch", reason="TORCH IS MISSING: this test is skipped; pip install torch==2.13.0"
    )
    executor = start_executor(
        """
        import torch

        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            torch.manual_seed(0)
            model = torch.nn.Linear(3, 2)
            torch.save(model.state_dict(), hyperparameters["reference"])
            return {"ok": True}, model
        """
    )
    model_dir = tmp_path / "models"
    executor.send_start(save_models=True, model_dir=str(model_dir))
    executor.next_event_of("ready")
    reference = tmp_path / "reference.pt"
    executor.send_run("t1", {"reference": str(reference)})
    result = executor.next_event_of("result")
    assert result["model_path"] == str(model_dir / "t1.pt")
    saved = torch.load(result["model_path"])
    expected = torch.load(reference)
    assert saved.keys() == expected.keys() == {"weight", "bias"}
    assert all(torch.equal(saved[name], expected[name]) for name in expected)


def test_save_models_uses_the_experiments_save_model(start_executor, tmp_path):
    executor = start_executor(
        """
        def init_dataset(config):
            return None

        def save_model(model, path):
            with open(path, "w") as file:
                file.write(model)

        def run_one(hyperparameters, dataset):
            return {}, hyperparameters["model"]
        """
    )
    model_dir = tmp_path / "models"
    executor.send_start(save_models=True, model_dir=str(model_dir))
    executor.next_event_of("ready")
    executor.send_run("t1", {"model": "my weights"})
    assert executor.next_event_of("result")["model_path"] == str(model_dir / "t1.pt")
    assert (model_dir / "t1.pt").read_text() == "my weights"
    executor.send_run("t2", {"model": None})
    assert executor.next_event_of("result")["model_path"] is None


def test_saving_without_torch_or_save_model_fails_the_trial(start_executor, tmp_path):
    executor = start_executor(
        """
        import sys

        sys.modules["torch"] = None  # as if torch were not installed

        def init_dataset(config):
            return None

        def run_one(hyperparameters, dataset):
            return {}, {"weights": [1, 2]}
        """
    )
    executor.send_start(save_models=True, model_dir=str(tmp_path / "models"))
    executor.next_event_of("ready")
    executor.send_run("t1")
    failed = executor.next_event_of("failed")
    assert failed["error"].startswith(
        "saving the model needs torch, or a save_model(model, path) function in experiment.py"
    )
    assert not (tmp_path / "models" / "t1.pt").exists()


# ---- the process ---------------------------------------------------------------------------

ENVIRONMENT_EXPERIMENT = """
    import subprocess
    import sys
    import time

    def init_dataset(config):
        return None

    def run_one(hyperparameters, dataset):
        print("hello from run_one")
        fds = subprocess.run(
            [sys.executable, "-c", "import os; print(' '.join(os.listdir('/proc/self/fd')))"],
            close_fds=False, capture_output=True, text=True, check=True,
        ).stdout.split()
        import gridexp
        while not gridexp.should_stop():
            time.sleep(0.01)
        return {
            "executable": sys.executable,
            "prefix": sys.prefix,
            "argv": sys.argv,
            "path0": sys.path[0],
            "child_fds": [int(fd) for fd in fds],
        }, None
"""


def check_environment(executor: Executor, workdir: Path, python: Path) -> None:
    executor.send_start()
    executor.next_event_of("ready")
    executor.send_run("t1")
    executor.wait_for_output("hello from run_one")  # printed at once: stdio is unbuffered
    executor.send({"type": "stop", "trial_id": "t1"})
    results = executor.next_event_of("result")["results"]
    assert results["executable"] == str(python)
    assert results["prefix"] == str(python.parent.parent)
    assert results["argv"] == ["experiment.py"]
    assert results["path0"] == str(workdir)
    assert executor.command_fd not in results["child_fds"]
    assert executor.event_fd not in results["child_fds"]


def test_runs_as_the_environments_python(start_executor, workdir):
    executor = start_executor(ENVIRONMENT_EXPERIMENT)
    # The python beside an installed executor, or the one a build tree's was built against;
    # the tests run in that same environment.
    check_environment(executor, workdir, Path(sys.prefix) / "bin" / "python")


def test_prefers_the_python_beside_the_executor(start_executor, workdir, tmp_path):
    environment = tmp_path / "env"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(environment)
    binary = environment / "bin" / "gridexp-executor"
    shutil.copy2(executor_binary(), binary)
    executor = start_executor(ENVIRONMENT_EXPERIMENT, binary=str(binary))
    check_environment(executor, workdir, environment / "bin" / "python")


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_runs_functions_of_experiment_py(start_executor, method):
    executor = started_executor(
        start_executor,
        """
        import multiprocessing

        def init_dataset(config):
            return None

        def square(number):
            return number * number

        def run_one(hyperparameters, dataset):
            context = multiprocessing.get_context(hyperparameters["method"])
            with context.Pool(2) as pool:
                return {"squares": pool.map(square, [1, 2, 3])}, None
        """,
    )
    executor.send_run("t1", {"method": method})
    assert executor.next_event_of("result")["results"] == {"squares": [1, 4, 9]}


def test_bad_arguments_exit_two():
    completed = subprocess.run(
        [executor_binary(), "--command-fd", "x"],
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert completed.returncode == 2
    assert "usage: gridexp-executor" in completed.stderr
