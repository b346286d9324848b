"""An sbatch job array whose tasks each run gridexp-worker against one gridexp-server.

Slurm does all the scheduling: nothing of ours runs on the login node once the array is
submitted. Each array task is one worker in a directory of its own on its node; it claims
trials until the grid is finished (exit 0: COMPLETED) or a trial fails under
``--raise_on_failure=True`` (non-zero: FAILED).

Stopping, and the preemption of issue 18:

- The script asks for ``--signal=B:USR1@<warning>``: before the time limit, Slurm signals the
  batch shell, which forwards SIGUSR1 to the worker. The worker asks its trials to stop
  (``gridexp.should_stop()``, ``stop_reason() == "preempted"``), hands them back with their
  last checkpoint within ``--grace_seconds`` and exits 138; the script then requeues its own
  array task (``scontrol requeue``), which starts again when Slurm next has room.
- ``scancel`` and Slurm's own preemption send SIGTERM to every process of the job: the worker
  hands its trials back the same way and exits 143; the shell ignores SIGTERM so it can wait.
  ``#SBATCH --requeue`` lets Slurm requeue a preempted task itself.
- The password never appears on a command line: the worker reads it from a file of mode 0600
  (``--password_file``) or from GRIDEXP_PASSWORD, which sbatch copies from the environment it
  is run in.

Nothing here talks to a server; ``gridexp.slurm_cli`` does (the check before submitting).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PasswordSource",
    "SlurmError",
    "SlurmOptions",
    "choose_password_source",
    "parse_workers",
    "render_script",
    "submit",
]

# The worker's exit status after SIGUSR1 (128 + 10): the time-limit warning.
WARNED_EXIT_STATUS = 138

# Worker flags that would put the password on a command line, or that the script sets itself.
_PASSWORD_FLAGS = ("--server_password", "--server-password", "--password")
_SCRIPT_FLAGS = ("--address", "--workdir", "--grace_seconds", "--grace-seconds", "--password_file")


class SlurmError(Exception):
    """Options that cannot make a correct job script, or sbatch refused it."""


@dataclass(frozen=True)
class PasswordSource:
    """Where the workers read the password: ``file`` (absolute, mode 0600) or, when None,
    GRIDEXP_PASSWORD in the environment sbatch is run in."""

    file: Path | None

    def describe(self) -> str:
        if self.file is not None:
            return f"the password file {self.file}"
        return "GRIDEXP_PASSWORD in the environment sbatch runs in"


@dataclass
class SlurmOptions:
    """What the job array asks of Slurm and what each worker runs."""

    address: str  # host:port, as the compute nodes reach the server
    password: PasswordSource
    workers: int = 1  # array tasks
    throttle: int | None = None  # at most this many at once (the %K of --array)
    gpus_per_worker: int | None = None
    cpus_per_worker: int | None = None
    mem: str | None = None
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    job_name: str = "gridexp"
    output: str = "gridexp-%A_%a.out"
    env_setup: list[str] = field(default_factory=list)  # shell lines run before the worker
    extra: list[str] = field(default_factory=list)  # '#SBATCH ...' lines, verbatim
    worker_flags: list[str] = field(default_factory=list)
    warning_seconds: int = 120
    grace_seconds: int = 60
    workdir_base: str = "${TMPDIR:-/tmp}"  # shell words: expanded on the node


def parse_workers(text: str) -> tuple[int, int | None]:
    """``"16"`` -> (16, None); ``"16%4"`` -> (16, 4): 16 array tasks, at most 4 at once."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:%\s*(\d+)\s*)?", text)
    if not match:
        raise SlurmError(f"--workers is N or N%K (N tasks, at most K at once), not {text!r}")
    workers = int(match.group(1))
    throttle = int(match.group(2)) if match.group(2) is not None else None
    if workers < 1:
        raise SlurmError(f"--workers needs at least 1 task, not {workers}")
    if throttle is not None and throttle < 1:
        raise SlurmError(f"--workers {text}: the %K throttle needs at least 1, not {throttle}")
    return workers, throttle


def choose_password_source(
    password_file: str | os.PathLike[str] | None,
    environ: Mapping[str, str],
    experiment_directory: Path,
) -> PasswordSource:
    """The first of: ``password_file``, GRIDEXP_PASSWORD_FILE, GRIDEXP_PASSWORD, and the
    server's own ``.gridexp/password`` in ``experiment_directory``. A file must be a regular
    file that only its owner can read (mode 0600 or stricter): the workers' nodes read it."""
    if password_file is not None:
        return PasswordSource(_private_file(Path(password_file), "--password-file"))
    if environ.get("GRIDEXP_PASSWORD_FILE"):
        return PasswordSource(
            _private_file(Path(environ["GRIDEXP_PASSWORD_FILE"]), "GRIDEXP_PASSWORD_FILE")
        )
    if environ.get("GRIDEXP_PASSWORD"):
        return PasswordSource(None)
    in_experiment = experiment_directory / ".gridexp" / "password"
    if in_experiment.exists():
        return PasswordSource(_private_file(in_experiment, "the experiment's password file"))
    raise SlurmError(
        "no password for the workers: give --password-file FILE (mode 0600, on a file system "
        "the compute nodes see), set GRIDEXP_PASSWORD, or run in the experiment directory "
        "(its .gridexp/password)"
    )


def _private_file(path: Path, what: str) -> Path:
    path = path.expanduser().absolute()
    try:
        info = path.stat()
    except OSError as error:
        raise SlurmError(f"{what} {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SlurmError(f"{what} {path} is not a regular file")
    if info.st_mode & 0o077:
        raise SlurmError(
            f"{what} {path} can be read by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"chmod 600 {shlex.quote(str(path))}"
        )
    return path


def _check(options: SlurmOptions) -> None:
    if options.workers < 1:
        raise SlurmError(f"--workers needs at least 1 task, not {options.workers}")
    for name, value in (
        ("--gpus-per-worker", options.gpus_per_worker),
        ("--cpus-per-worker", options.cpus_per_worker),
    ):
        if value is not None and value < 1:
            raise SlurmError(f"{name} needs at least 1, not {value}")
    if options.warning_seconds < 1 or options.warning_seconds > 65535:
        raise SlurmError(
            f"--warning-seconds needs 1 to 65535 seconds, not {options.warning_seconds}"
        )
    if options.grace_seconds < 0 or options.grace_seconds >= options.warning_seconds:
        raise SlurmError(
            f"--grace-seconds ({options.grace_seconds}) must be less than --warning-seconds "
            f"({options.warning_seconds}): the trials must be handed back before Slurm's "
            "time limit kills the job"
        )
    for line in options.extra:
        if not line.startswith("#SBATCH "):
            raise SlurmError(f"--extra takes '#SBATCH ...' lines, not {line!r}")
        if "\n" in line:
            raise SlurmError(f"--extra takes one line at a time, not {line!r}")
    if re.search(r'["\n\r`]', options.workdir_base) or not options.workdir_base:
        raise SlurmError(
            f"--workdir-base is a directory (shell variables allowed), not {options.workdir_base!r}"
        )
    for line in options.env_setup:
        if "\n" in line or "\r" in line:
            raise SlurmError(f"--env-setup takes one line at a time, not {line!r}")
    for value, name in (
        (options.partition, "--partition"),
        (options.time, "--time"),
        (options.account, "--account"),
        (options.mem, "--mem"),
        (options.job_name, "--job-name"),
        (options.output, "--output"),
    ):
        if value is not None and (not value or re.search(r"\s", value)):
            raise SlurmError(f"{name} needs a value without spaces, not {value!r}")
    for flag in options.worker_flags:
        name = flag.split("=", 1)[0]
        if name in _PASSWORD_FLAGS:
            raise SlurmError(
                f"{name} would put the password on a command line, where `ps` and Slurm's "
                "records show it: give --password-file FILE (mode 0600) or GRIDEXP_PASSWORD"
            )
        if name in _SCRIPT_FLAGS:
            raise SlurmError(f"the job script sets {name} itself; leave it out after --")


def render_script(options: SlurmOptions) -> str:
    """The sbatch script: #SBATCH lines, then a shell that runs one worker per array task."""
    _check(options)
    array = f"0-{options.workers - 1}"
    if options.throttle is not None:
        array += f"%{options.throttle}"
    directives = [
        f"--job-name={options.job_name}",
        f"--array={array}",
        f"--output={options.output}",
        "--open-mode=append",  # a requeued task adds to its log instead of overwriting it
        "--requeue",
        f"--signal=B:USR1@{options.warning_seconds}",
        "--ntasks=1",
    ]
    if options.gpus_per_worker is not None:
        directives.append(f"--gres=gpu:{options.gpus_per_worker}")
    if options.cpus_per_worker is not None:
        directives.append(f"--cpus-per-task={options.cpus_per_worker}")
    for name, value in (
        ("mem", options.mem),
        ("partition", options.partition),
        ("time", options.time),
        ("account", options.account),
    ):
        if value is not None:
            directives.append(f"--{name}={value}")
    if options.password.file is None:
        directives.append("--export=ALL")  # GRIDEXP_PASSWORD reaches the worker this way

    worker = [
        "gridexp-worker",
        f"--address={options.address}",
        '--workdir="$workdir"',
        "--download_scripts",
        f"--grace_seconds={options.grace_seconds}",
    ]
    if options.password.file is not None:
        worker.append(shlex.quote(f"--password_file={options.password.file}"))
    worker += [shlex.quote(flag) for flag in options.worker_flags]

    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH {directive}" for directive in directives]
    lines += options.extra
    lines += [
        "#",
        f"# gridexp: {options.workers} workers for the server at {options.address}.",
        f"# Written by `gridexp slurm`; the password comes from {options.password.describe()}.",
    ]
    lines += options.env_setup  # before `set -u`: module and conda scripts often need that
    lines += ["set -u"]
    lines += _password_check(options.password)
    lines += [
        "if ! command -v gridexp-worker >/dev/null 2>&1; then",
        '  echo "gridexp: gridexp-worker is not on PATH on $(hostname): give gridexp slurm'
        " --env-setup 'source /path/to/venv/bin/activate'\" >&2",
        "  exit 2",
        "fi",
        'task="${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_${SLURM_ARRAY_TASK_ID:-0}"',
        f'workdir="{options.workdir_base}/gridexp-$task"',
        'mkdir -p "$workdir" || exit 2',
        'echo "gridexp: task $task (job $SLURM_JOB_ID, restart ${SLURM_RESTART_COUNT:-0})'
        ' on $(hostname) in $workdir"',
        "# The time-limit warning (B:USR1) reaches only this shell: pass it on to the worker.",
        "# SIGTERM (scancel, preemption) reaches every process of the job, the worker too.",
        "warned=0",
        "trap 'warned=1; kill -USR1 \"$worker_pid\" 2>/dev/null' USR1",
        "trap ':' TERM INT",
        " ".join(worker) + " &",
        "worker_pid=$!",
        "while :; do",
        '  wait "$worker_pid"',
        "  status=$?",
        '  kill -0 "$worker_pid" 2>/dev/null || break  # else a trapped signal woke the wait',
        "done",
        "# The worker may have ended just as a signal woke the wait: ask once more for its status.",
        'wait "$worker_pid"',
        "final=$?",
        '[ "$final" -ne 127 ] && status=$final',
        f'if [ "$status" -eq {WARNED_EXIT_STATUS} ] && [ "$warned" -eq 1 ]; then',
        '  echo "gridexp: the time limit is near; trials handed back; requeueing task $task"',
        '  if scontrol requeue "$SLURM_JOB_ID"; then exit 0; fi',
        '  echo "gridexp: scontrol requeue $SLURM_JOB_ID failed; the trials are back on the'
        ' server for the other tasks" >&2',
        "fi",
        'if [ "$status" -eq 0 ]; then rm -rf "$workdir"; fi',
        'exit "$status"',
    ]
    return "\n".join(lines) + "\n"


def _password_check(password: PasswordSource) -> list[str]:
    if password.file is not None:
        quoted = shlex.quote(str(password.file))
        return [
            f"if [ ! -r {quoted} ]; then",
            f'  echo "gridexp: cannot read the password file {password.file} on $(hostname)" >&2',
            "  exit 2",
            "fi",
        ]
    return [
        'if [ -z "${GRIDEXP_PASSWORD:-}" ]; then',
        '  echo "gridexp: GRIDEXP_PASSWORD is not set in the job: export it before sbatch, or'
        ' use gridexp slurm --password-file FILE" >&2',
        "  exit 2",
        "fi",
    ]


def submit(
    script: str,
    *,
    sbatch: str = "sbatch",
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """Submits ``script`` with ``sbatch --parsable`` (on its standard input); the job id."""
    try:
        completed = subprocess.run(
            [sbatch, "--parsable"],
            input=script,
            capture_output=True,
            text=True,
            env=dict(environ) if environ is not None else None,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise SlurmError(
            f"{sbatch} not found: run gridexp slurm --submit on a Slurm login node, or save "
            "the script (--script FILE) and submit it there"
        ) from None
    if completed.returncode != 0:
        message = completed.stderr.strip() or f"exit status {completed.returncode}"
        raise SlurmError(f"sbatch refused the job: {message}")
    job_id = completed.stdout.strip().split(";", 1)[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {completed.stdout.strip()!r}")
    return job_id
