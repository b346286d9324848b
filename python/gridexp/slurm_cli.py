"""`gridexp slurm`: print, save or submit the sbatch job array of gridexp workers.

    gridexp slurm --workers 16 --gpus-per-worker 1 --time 4:00:00 --submit
    gridexp slurm --workers 64%16 --partition gpu --script sweep.sbatch -- --save_models=False

Unlike the other commands it does not need the server to answer (``--no-check``); by default
it checks, before writing anything, that the server answers with the password the workers
will use, so a typo does not cost a wait in Slurm's queue.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable
from pathlib import Path

from gridexp.client import Client, ClientError
from gridexp.slurm import (
    PasswordSource,
    SlurmOptions,
    choose_password_source,
    parse_workers,
    render_script,
    submit,
)

__all__ = ["add_slurm_command"]

_DESCRIPTION = """\
Write an sbatch job array whose tasks each run gridexp-worker against the server (--address,
or --worker-address if the compute nodes reach it by another name), and with --submit submit
it. Slurm does the scheduling: each task works until the grid is finished (COMPLETED, exit 0)
or a trial fails under --raise_on_failure=True (FAILED). The script asks Slurm for SIGUSR1
--warning-seconds before the time limit: the worker hands its trials back with their last
checkpoint and the task requeues itself. scancel (SIGTERM) hands them back too.

The workers read the password from a file of mode 0600 (--password-file, GRIDEXP_PASSWORD_FILE,
or the experiment's .gridexp/password when run in its directory) or from GRIDEXP_PASSWORD,
which sbatch passes on; never from a command line. Worker flags go after --."""

_EPILOG = """\
examples:
  gridexp slurm --workers 16 --gpus-per-worker 1 --submit
  gridexp slurm --workers 64%16 --partition gpu --time 8:00:00 --env-setup 'module load cuda' \\
      --env-setup 'source ~/venv/bin/activate' --script sweep.sbatch -- --save_models=False
  scancel JOBID      # stops every task; their trials go back to pending
"""


def add_slurm_command(commands, connection: argparse.ArgumentParser) -> None:
    """Adds `gridexp slurm` to the `gridexp` command's subparsers."""
    slurm = commands.add_parser(
        "slurm",
        parents=[connection],
        allow_abbrev=False,
        help="an sbatch job array of workers (print, save or --submit)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    slurm.add_argument(
        "--workers",
        metavar="N[%K]",
        default="1",
        help="array tasks, one worker each; %%K: at most K at once (default: 1)",
    )
    slurm.add_argument("--gpus-per-worker", metavar="G", type=int, help="--gres=gpu:G per task")
    slurm.add_argument("--cpus-per-worker", metavar="C", type=int, help="--cpus-per-task=C")
    slurm.add_argument("--mem", metavar="SIZE", help="--mem=SIZE per task (e.g. 32G)")
    slurm.add_argument("--partition", metavar="NAME", help="the Slurm partition")
    slurm.add_argument("--time", metavar="LIMIT", help="each task's time limit (e.g. 4:00:00)")
    slurm.add_argument("--account", metavar="NAME", help="the Slurm account to charge")
    slurm.add_argument("--job-name", metavar="NAME", default="gridexp", help="(default: gridexp)")
    slurm.add_argument(
        "--output",
        metavar="PATTERN",
        default="gridexp-%A_%a.out",
        help="each task's log, relative to where sbatch runs (default: gridexp-%%A_%%a.out)",
    )
    slurm.add_argument(
        "--env-setup",
        metavar="LINE",
        action="append",
        default=[],
        help="a shell line run before the worker, e.g. 'source venv/bin/activate' (repeatable)",
    )
    slurm.add_argument(
        "--extra",
        metavar="'#SBATCH ...'",
        action="append",
        default=[],
        help="an #SBATCH line of your own, e.g. '#SBATCH --qos=long' (repeatable)",
    )
    slurm.add_argument(
        "--worker-address",
        metavar="HOST:PORT",
        help="the server as the compute nodes reach it (default: --address)",
    )
    slurm.add_argument(
        "--workdir-base",
        metavar="DIR",
        default="${TMPDIR:-/tmp}",
        help="where each task makes its directory, on its node (default: ${TMPDIR:-/tmp})",
    )
    slurm.add_argument(
        "--warning-seconds",
        metavar="S",
        type=int,
        default=120,
        help="SIGUSR1 this long before the time limit (default: 120)",
    )
    slurm.add_argument(
        "--grace-seconds",
        metavar="S",
        type=int,
        default=60,
        help="how long the trials get to checkpoint and return (default: 60; < the warning)",
    )
    slurm.add_argument("--script", metavar="FILE", help="write the script to FILE")
    slurm.add_argument("--submit", action="store_true", help="submit it with sbatch")
    slurm.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="do not check first that the server answers with the password",
    )
    slurm.add_argument(
        "worker_flags",
        nargs="*",
        metavar="-- WORKER_FLAGS",
        help="flags for each gridexp-worker, e.g. -- --save_models=False --gpus=all",
    )
    slurm.set_defaults(command=run_slurm_command, connects_itself=True)


def run_slurm_command(
    arguments: argparse.Namespace,
    *,
    environ: dict[str, str] | None = None,
    connect: Callable[[str, PasswordSource], Client] | None = None,
) -> int:
    """Runs `gridexp slurm`; SlurmError and ClientError reach the caller (exit status 1)."""
    environ = dict(os.environ) if environ is None else environ
    connect = connect or _connect
    workers, throttle = parse_workers(arguments.workers)
    password = choose_password_source(arguments.password_file, environ, Path.cwd())
    worker_address = arguments.worker_address or arguments.address
    options = SlurmOptions(
        address=worker_address,
        password=password,
        workers=workers,
        throttle=throttle,
        gpus_per_worker=arguments.gpus_per_worker,
        cpus_per_worker=arguments.cpus_per_worker,
        mem=arguments.mem,
        partition=arguments.partition,
        time=arguments.time,
        account=arguments.account,
        job_name=arguments.job_name,
        output=arguments.output,
        env_setup=list(arguments.env_setup),
        extra=list(arguments.extra),
        worker_flags=list(arguments.worker_flags),
        warning_seconds=arguments.warning_seconds,
        grace_seconds=arguments.grace_seconds,
        workdir_base=arguments.workdir_base,
    )
    script = render_script(options)
    if _is_loopback(worker_address):
        print(
            f"gridexp slurm: warning: the workers will look for the server at {worker_address}, "
            "which is this machine only if the tasks run here: give --worker-address "
            "LOGIN_NODE:PORT where they run elsewhere",
            file=sys.stderr,
        )
    if arguments.check:
        _check_server(connect(arguments.address, password), arguments.address)
    if arguments.script:
        Path(arguments.script).write_text(script)
        print(f"wrote {arguments.script}", file=sys.stderr)
    if not arguments.submit:
        if not arguments.script:
            sys.stdout.write(script)
        return 0
    job_id = submit(script, environ=environ)
    print(f"submitted job array {job_id}: {_tasks(workers, throttle)}")
    print(f"  watch:  gridexp workers    squeue -j {job_id}")
    print(f"  stop:   scancel {job_id}   (the running trials go back to pending)")
    return 0


def _connect(address: str, password: PasswordSource) -> Client:
    return Client(address, password_file=password.file)


def _check_server(client: Client, address: str) -> None:
    try:
        experiments = client.experiments()
    except ClientError as error:
        raise ClientError(
            f"checking the server before writing the job: {error} (--no-check skips this)",
            error.status,
        ) from None
    active = [experiment for experiment in experiments if experiment.get("active")]
    if active:
        counts = active[0].get("counts") or {}
        pending = counts.get("pending")
        name = active[0].get("name", "?")
        what = f"{pending} trials pending" if pending is not None else "it answers"
        print(f"gridexp slurm: the server at {address}: {name}, {what}", file=sys.stderr)


def _tasks(workers: int, throttle: int | None) -> str:
    text = f"{workers} worker" + ("s" if workers != 1 else "")
    return text + (f", at most {throttle} at once" if throttle is not None else "")


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
