"""`gridexp slurm` without a cluster: the job script it writes (directives, the password never
on a command line, the options it refuses), the script's shell run with a stand-in worker and
scontrol (signals passed on, requeue, exit statuses), and the command's checks and output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import PASSWORD, register
from gridexp.cli import format_slurm_job
from gridexp.slurm import (
    PasswordSource,
    SlurmError,
    SlurmOptions,
    choose_password_source,
    parse_workers,
    render_script,
)


def private_file(path: Path, text: str = PASSWORD + "\n", mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def directives(script: str) -> list[str]:
    return [
        line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")
    ]


def worker_line(script: str) -> str:
    (line,) = [line for line in script.splitlines() if line.startswith("gridexp-worker ")]
    return line


def test_the_script_asks_slurm_for_an_array_a_warning_and_requeue(tmp_path):
    options = SlurmOptions(
        address="login1:8030",
        password=PasswordSource(private_file(tmp_path / "password")),
        workers=16,
        throttle=4,
        gpus_per_worker=1,
        cpus_per_worker=8,
        mem="32G",
        partition="gpu",
        time="4:00:00",
        account="ml-lab",
        extra=["#SBATCH --qos=long"],
        env_setup=["module load cuda", "source ~/venv/bin/activate"],
        worker_flags=["--save_models=False", "--gpus=all"],
    )
    script = render_script(options)
    assert script.startswith("#!/bin/bash\n")
    assert directives(script) == [
        "--job-name=gridexp",
        "--array=0-15%4",
        "--output=gridexp-%A_%a.out",
        "--open-mode=append",
        "--requeue",
        "--signal=B:USR1@120",
        "--ntasks=1",
        "--gres=gpu:1",
        "--cpus-per-task=8",
        "--mem=32G",
        "--partition=gpu",
        "--time=4:00:00",
        "--account=ml-lab",
        "--qos=long",
    ]
    line = worker_line(script)
    assert "--address=login1:8030" in line
    assert f"--password_file={tmp_path / 'password'}" in line
    assert "--grace_seconds=60" in line
    assert line.endswith("--save_models=False --gpus=all &")
    assert PASSWORD not in script
    # The environment set-up runs before the worker is looked for, and before `set -u`.
    assert script.index("module load cuda") < script.index("set -u")
    assert script.index("set -u") < script.index("command -v gridexp-worker")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_with_the_password_in_the_environment_the_script_exports_it_and_checks_it():
    script = render_script(SlurmOptions(address="h:1", password=PasswordSource(None)))
    assert "--export=ALL" in directives(script)
    assert "--password_file" not in script
    assert 'if [ -z "${GRIDEXP_PASSWORD:-}" ]' in script
    assert "--array=0-0" in directives(script)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--server_password=secret", "on a command line"),
        ("--password=secret", "on a command line"),
        ("--address=other:1", "sets --address itself"),
        ("--workdir=/x", "sets --workdir itself"),
        ("--grace_seconds=5", "sets --grace_seconds itself"),
    ],
)
def test_worker_flags_that_would_leak_the_password_or_fight_the_script_are_refused(flag, message):
    options = SlurmOptions(address="h:1", password=PasswordSource(None), worker_flags=[flag])
    with pytest.raises(SlurmError, match=message):
        render_script(options)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grace_seconds": 120}, "must be less than --warning-seconds"),
        ({"warning_seconds": 0}, "--warning-seconds needs"),
        ({"extra": ["--qos=long"]}, "'#SBATCH ...' lines"),
        ({"env_setup": ["a\nb"]}, "one line at a time"),
        ({"partition": "gpu a100"}, "--partition needs a value without spaces"),
        ({"gpus_per_worker": 0}, "--gpus-per-worker needs at least 1"),
        ({"workdir_base": '/x"; rm -rf ~; "'}, "--workdir-base is a directory"),
    ],
)
def test_options_that_cannot_make_a_correct_script_are_refused(change, message):
    options = SlurmOptions(address="h:1", password=PasswordSource(None))
    for name, value in change.items():
        setattr(options, name, value)
    with pytest.raises(SlurmError, match=message):
        render_script(options)


def test_workers_take_a_throttle():
    assert parse_workers("16") == (16, None)
    assert parse_workers("64%16") == (64, 16)
    for wrong in ("0", "x", "4%0", "-1", "4%"):
        with pytest.raises(SlurmError):
            parse_workers(wrong)


def test_the_password_source_prefers_a_private_file_and_refuses_a_readable_one(tmp_path):
    private = private_file(tmp_path / "private")
    readable = private_file(tmp_path / "readable", mode=0o644)
    assert choose_password_source(private, {}, tmp_path).file == private
    environ = {"GRIDEXP_PASSWORD_FILE": str(private), "GRIDEXP_PASSWORD": "x"}
    assert choose_password_source(None, environ, tmp_path).file == private
    assert choose_password_source(None, {"GRIDEXP_PASSWORD": "x"}, tmp_path).file is None
    with pytest.raises(SlurmError, match=r"can be read by others \(mode 0644\): chmod 600"):
        choose_password_source(readable, {}, tmp_path)
    with pytest.raises(SlurmError, match="no password for the workers"):
        choose_password_source(None, {}, tmp_path)
    (tmp_path / ".gridexp").mkdir()
    in_experiment = private_file(tmp_path / ".gridexp" / "password")
    assert choose_password_source(None, {}, tmp_path).file == in_experiment


# The script's shell, run by bash with stand-ins for gridexp-worker and scontrol on PATH.

FAKE_WORKER = textwrap.dedent(
    """\
    #!/bin/bash
    # Stands in for gridexp-worker: records its arguments, then behaves as $FAKE_MODE says.
    echo "$@" > "$FAKE_RECORD/worker-args"
    echo $$ > "$FAKE_RECORD/worker-pid"
    case "$FAKE_MODE" in
      finish) exit 0 ;;
      fail) exit 1 ;;
      signals)
        trap 'echo USR1 >> "$FAKE_RECORD/worker-signals"; exit 138' USR1
        trap 'echo TERM >> "$FAKE_RECORD/worker-signals"; exit 143' TERM
        while :; do sleep 0.05; done ;;
    esac
    """
)
FAKE_SCONTROL = (
    '#!/bin/bash\necho "$@" >> "$FAKE_RECORD/scontrol"\nexit "${FAKE_SCONTROL_STATUS:-0}"\n'
)


def run_script(tmp_path: Path, mode: str, signal_to_send: int | None = None, **environ: str):
    """Runs the job script in bash as slurmd would (SLURM_* set); its exit status and record."""
    bin_directory = tmp_path / "bin"
    record = tmp_path / "record"
    bin_directory.mkdir(exist_ok=True)
    record.mkdir(exist_ok=True)
    for name, text in (("gridexp-worker", FAKE_WORKER), ("scontrol", FAKE_SCONTROL)):
        (bin_directory / name).write_text(text)
        (bin_directory / name).chmod(0o755)
    script = tmp_path / "job.sbatch"
    script.write_text(
        render_script(
            SlurmOptions(
                address="login1:8030",
                password=PasswordSource(private_file(tmp_path / "password")),
                workdir_base=str(tmp_path / "nodes"),
            )
        )
    )
    environment = {
        **os.environ,
        "PATH": f"{bin_directory}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "77",
        "SLURM_ARRAY_JOB_ID": "70",
        "SLURM_ARRAY_TASK_ID": "7",
        "FAKE_RECORD": str(record),
        "FAKE_MODE": mode,
        **environ,
    }
    process = subprocess.Popen(
        ["bash", str(script)], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if signal_to_send is not None:
        deadline = time.monotonic() + 30
        while not (record / "worker-pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the worker's traps are set
        process.send_signal(signal_to_send)
        if signal_to_send == signal.SIGTERM:  # as Slurm does: every process of the job
            os.kill(int((record / "worker-pid").read_text()), signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    return process.returncode, record, output.decode()


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_a_worker_that_finishes_ends_the_task_with_0_and_its_directory_is_removed(tmp_path):
    status, record, output = run_script(tmp_path, "finish")
    assert status == 0, output
    arguments = read(record / "worker-args")
    assert f"--workdir={tmp_path / 'nodes' / 'gridexp-70_7'}" in arguments
    assert "--download_scripts" in arguments
    assert not (tmp_path / "nodes" / "gridexp-70_7").exists()
    assert "task 70_7 (job 77, restart 0)" in output


def test_a_worker_that_fails_ends_the_task_non_zero_and_keeps_its_directory(tmp_path):
    status, _, output = run_script(tmp_path, "fail")
    assert status == 1, output
    assert (tmp_path / "nodes" / "gridexp-70_7").is_dir()


def test_the_warning_signal_is_passed_to_the_worker_and_the_task_requeues_itself(tmp_path):
    status, record, output = run_script(tmp_path, "signals", signal.SIGUSR1)
    assert read(record / "worker-signals") == "USR1\n"
    assert read(record / "scontrol") == "requeue 77\n"
    assert status == 0, output
    assert "requeueing task 70_7" in output


def test_a_failed_requeue_is_said_and_the_task_ends_with_the_workers_status(tmp_path):
    status, record, output = run_script(
        tmp_path, "signals", signal.SIGUSR1, FAKE_SCONTROL_STATUS="1"
    )
    assert read(record / "scontrol") == "requeue 77\n"
    assert status == 138, output
    assert "scontrol requeue 77 failed" in output


def test_sigterm_is_not_passed_on_twice_and_the_shell_waits_for_the_worker(tmp_path):
    status, record, output = run_script(tmp_path, "signals", signal.SIGTERM)
    assert read(record / "worker-signals") == "TERM\n"
    assert read(record / "scontrol") == ""
    assert status == 143, output


def test_an_unreadable_password_file_or_no_worker_is_said_on_the_node(tmp_path):
    script = render_script(SlurmOptions(address="h:1", password=PasswordSource(tmp_path / "gone")))

    def run_on_a_bare_node() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
            check=False,
        )

    completed = run_on_a_bare_node()
    assert completed.returncode == 2
    assert f"cannot read the password file {tmp_path / 'gone'}" in completed.stderr
    private_file(tmp_path / "gone")
    completed = run_on_a_bare_node()
    assert completed.returncode == 2
    assert "gridexp-worker is not on PATH" in completed.stderr


# The command.


def gridexp(*arguments: str, cwd: Path, **environ: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GRIDEXP_PASSWORD") and key != "GRIDEXP_ADDRESS"
    }
    environment.update(environ)
    return subprocess.run(
        [sys.executable, "-m", "gridexp.cli", *arguments],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def test_the_command_checks_the_server_and_prints_the_script(server, tmp_path):
    address = f"127.0.0.1:{server.port}"
    completed = gridexp(
        "--address",
        address,
        "slurm",
        "--workers",
        "3",
        "--",
        "--save_models=False",
        cwd=tmp_path,
        GRIDEXP_PASSWORD=PASSWORD,
    )
    assert completed.returncode == 0, completed.stderr
    assert "#SBATCH --array=0-2" in completed.stdout
    assert completed.stdout.rstrip().endswith('exit "$status"')
    assert worker_line(completed.stdout).endswith("--save_models=False &")
    assert PASSWORD not in completed.stdout
    assert "warning: the workers will look for the server at 127.0.0.1" in completed.stderr
    assert "sentiment_analysis1, 8 trials pending" in completed.stderr

    wrong = gridexp("--address", address, "slurm", cwd=tmp_path, GRIDEXP_PASSWORD="wrong")
    assert wrong.returncode == 1
    assert "checking the server before writing the job" in wrong.stderr
    assert "--no-check" in wrong.stderr
    assert wrong.stdout == ""


def test_the_command_writes_a_script_file_and_submits_with_sbatch(tmp_path):
    bin_directory = tmp_path / "bin"
    bin_directory.mkdir()
    sbatch = bin_directory / "sbatch"
    sbatch.write_text('#!/bin/bash\ncat > "$SBATCH_RECORD"\necho "4242;cluster"\n')
    sbatch.chmod(0o755)
    private_file(tmp_path / "password")
    completed = gridexp(
        "--address",
        "login1:8030",
        "--password-file",
        str(tmp_path / "password"),
        "slurm",
        "--no-check",
        "--workers",
        "2%1",
        "--script",
        "job.sbatch",
        "--submit",
        cwd=tmp_path,
        PATH=f"{bin_directory}:{os.environ['PATH']}",
        SBATCH_RECORD=str(tmp_path / "submitted"),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("submitted job array 4242: 2 workers, at most 1 at once")
    assert "scancel 4242" in completed.stdout
    assert (tmp_path / "submitted").read_text() == (tmp_path / "job.sbatch").read_text()
    assert "#SBATCH --array=0-1%1" in (tmp_path / "job.sbatch").read_text()
    assert "warning" not in completed.stderr  # login1 is not loopback


def test_the_command_says_what_is_wrong(tmp_path):
    readable = private_file(tmp_path / "password", mode=0o640)
    completed = gridexp("--password-file", str(readable), "slurm", "--no-check", cwd=tmp_path)
    assert completed.returncode == 1
    assert "chmod 600" in completed.stderr and completed.stderr.startswith("gridexp: ")
    completed = gridexp("slurm", "--no-check", cwd=tmp_path)
    assert completed.returncode == 1
    assert "no password for the workers" in completed.stderr
    completed = gridexp(
        "slurm",
        "--no-check",
        "--submit",
        cwd=tmp_path,
        GRIDEXP_PASSWORD="x",
        PATH="/nonexistent",
    )
    assert completed.returncode == 1
    assert "sbatch not found" in completed.stderr


def test_the_workers_table_shows_each_workers_slurm_task(server):
    assert format_slurm_job(None) == "-"
    assert (
        format_slurm_job(
            {
                "job_id": "12",
                "array_job_id": "10",
                "array_task_id": 2,
                "node_list": "gpu07",
                "restart_count": 1,
            }
        )
        == "10_2@gpu07 (restart 1)"
    )
    assert (
        format_slurm_job(
            {
                "job_id": "12",
                "array_job_id": None,
                "array_task_id": None,
                "node_list": None,
                "restart_count": 0,
            }
        )
        == "12"
    )
    placement = {
        "job_id": "12",
        "array_job_id": "10",
        "array_task_id": 2,
        "node_list": "gpu07",
        "restart_count": 0,
    }
    response = server.post(
        "/api/v1/workers", {"host": "gpu07", "pid": 1, "devices": [], "slurm": placement}
    )
    assert response.status_code == 201, response.text
    register(server, host="laptop")
    completed = gridexp(
        "--address",
        f"127.0.0.1:{server.port}",
        "workers",
        cwd=Path.cwd(),
        GRIDEXP_PASSWORD=PASSWORD,
    )
    assert completed.returncode == 0, completed.stderr
    assert "slurm job" in completed.stdout
    assert "10_2@gpu07" in completed.stdout
    workers = server.get("/api/v1/workers").json()
    assert {worker["host"]: worker["slurm"] for worker in workers} == {
        "gpu07": placement,
        "laptop": None,
    }
