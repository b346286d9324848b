"""The `gridexp` command: a running experiment's progress, results, workers and actions.

    gridexp status                      progress of every experiment
    gridexp results [NAME] [--sort M]   the trials and their results (table or --csv)
    gridexp retry [NAME] [--id ID ...]  failed and cancelled trials back to pending
    gridexp cancel [NAME] [--id ID ...] cancel pending trials, stop running ones
    gridexp workers                     the workers that registered
    gridexp attempts TRIAL_ID           a trial's attempts: outcome, worker, times, resumes
    gridexp export NAME DIR [--layout L] trials and models to a directory (gridexp.export)
    gridexp slurm --workers N [--submit] an sbatch job array of workers (gridexp.slurm_cli)

Contract: the server is `--address` (default: GRIDEXP_ADDRESS, else 127.0.0.1:8030); the
password comes from `--password-file`, GRIDEXP_PASSWORD, GRIDEXP_PASSWORD_FILE or
./.gridexp/password (never from the command line, where `ps` would show it). Output goes to
stdout; errors go to stderr as `gridexp: <message>` with exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from gridexp.client import (
    DEFAULT_ADDRESS,
    Client,
    ClientError,
    duration_seconds,
    flatten_results,
    parse_time,
)
from gridexp.export import LAYOUTS, ExportError, export
from gridexp.slurm import SlurmError
from gridexp.slurm_cli import add_slurm_command

_DESCRIPTION = "Watch and steer a running gridexp-server: progress, results, workers, actions."
_EPILOG = """\
The password comes from --password-file, GRIDEXP_PASSWORD, GRIDEXP_PASSWORD_FILE, or
./.gridexp/password when run in the experiment directory.

examples:
  gridexp status
  gridexp results --sort val_accuracy --limit 5
  gridexp results sentiment_analysis1 --csv > results.csv
  gridexp retry                       # every failed and cancelled trial of the active experiment
  gridexp cancel --id 3f2a9c1e8b7d6a50
  gridexp attempts 3f2a9c1e8b7d6a50   # preempted, lost, done... and the step each resumed from
  gridexp export sentiment_analysis1 ./analysis   # results/ and models/ as the original wrote
  gridexp slurm --workers 16 --gpus-per-worker 1 --submit   # workers as a Slurm job array
"""


class _UsageError(Exception):
    """A command line that parses but does not make sense; exit status 2."""


class _CommandError(Exception):
    """The command cannot do what was asked; exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `gridexp` command with `argv` (default: sys.argv[1:]); the exit status."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        return _run(parser, arguments)
    except (ClientError, ExportError, SlurmError, _CommandError) as error:
        print(f"gridexp: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `gridexp results | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        return 130


def _run(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    if getattr(arguments, "connects_itself", False):  # gridexp slurm: its own password rules
        return arguments.command(arguments)
    try:
        client = Client(arguments.address, password_file=arguments.password_file)
    except ValueError as error:  # a malformed --address
        parser.error(str(error))
    try:
        return arguments.command(client, arguments)
    except _UsageError as error:
        parser.error(str(error))


def _connection_options(defaults: bool) -> argparse.ArgumentParser:
    """The options that say how to reach the server, as a parent parser.

    They are accepted before and after the subcommand: the main parser has the defaults, the
    subcommands' copies SUPPRESS theirs so they never overwrite what came before the
    subcommand. (Each call makes new actions: argparse shares them with every child.)
    """
    address = os.environ.get("GRIDEXP_ADDRESS") or DEFAULT_ADDRESS
    connection = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = connection.add_argument_group("connection")
    group.add_argument(
        "--address",
        default=address if defaults else argparse.SUPPRESS,
        help="the server, host:port or http://host:port "
        f"(default: $GRIDEXP_ADDRESS or {DEFAULT_ADDRESS})",
    )
    group.add_argument(
        "--password-file",
        metavar="FILE",
        default=None if defaults else argparse.SUPPRESS,
        help="a file whose first line is the server's password",
    )
    return connection


def _parser() -> argparse.ArgumentParser:
    connection = _connection_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="gridexp",
        allow_abbrev=False,  # `--password x` must not pass for `--password-file x`
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_connection_options(defaults=True)],
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, parents=[connection], allow_abbrev=False, help=summary, description=description
        )

    status = command(
        "status",
        "progress of every experiment",
        "One line per experiment: trials per state, progress, ETA, workers online.",
    )
    status.set_defaults(command=_status)

    results = command(
        "results",
        "the trials of an experiment and their results",
        "The trials of an experiment: the hyperparameters that vary, every scalar result, and "
        "the duration; with --sort, best first and the best trial named.",
    )
    results.add_argument("name", nargs="?", help="the experiment (default: the active one)")
    results.add_argument("--csv", action="store_true", help="write CSV (every column) instead")
    results.add_argument("--sort", metavar="METRIC", help="order by this result, best first")
    direction = results.add_mutually_exclusive_group()
    direction.add_argument(
        "--max",
        dest="direction",
        action="store_const",
        const="max",
        help="the highest METRIC is best (the default)",
    )
    direction.add_argument(
        "--min", dest="direction", action="store_const", const="min", help="the lowest is best"
    )
    results.add_argument("--limit", metavar="N", type=_positive_int, help="show the first N")
    results.add_argument(
        "--columns",
        metavar="R1,R2",
        help="show only these results (comma-separated; default: every scalar result)",
    )
    results.set_defaults(command=_results, direction="max")

    for name, verb, what in (
        ("retry", "retry", "failed and cancelled trials go back to pending"),
        ("cancel", "cancel", "pending trials are cancelled, running ones asked to stop"),
    ):
        action = command(
            name,
            what,
            f"{what[0].upper()}{what[1:]}: every one of the experiment, or the trials given "
            "with --id (of any experiment).",
        )
        action.add_argument("name", nargs="?", help="the experiment (default: the active one)")
        action.add_argument(
            "--id",
            dest="ids",
            metavar="ID",
            nargs="+",
            action="extend",
            help=f"{verb} only these trials",
        )
        action.set_defaults(command=_act, action=name)

    workers = command(
        "workers",
        "the workers that registered",
        "Every worker that registered: host, devices, current trial, counts.",
    )
    workers.set_defaults(command=_workers)

    attempts = command(
        "attempts",
        "the attempts of one trial",
        "One line per claim of the trial, oldest first: its attempt number, how it ended "
        "(running, done, failed, released, preempted, expired, lost, cancelled), the worker, "
        "when it started and ended (UTC), the checkpoint step it resumed from, and its error "
        "or the reason it was preempted or lost. A released or preempted attempt is not "
        "counted: the claim after it has the same number.",
    )
    attempts.add_argument("trial_id", metavar="TRIAL_ID", help="the trial (16 hex digits)")
    attempts.set_defaults(command=_attempts)

    export_command = command(
        "export",
        "write an experiment's trials and model files to a directory",
        "Write the trials of experiment NAME and their model files (SHA-256 checked) to DIR. "
        "--layout original (the default): DIR/results/<id>, a YAML mapping with results and "
        "exp_info for each done trial, DIR/models/<id> its model and DIR/config.yaml, as the "
        "original framework's server held them; jsonl, csv or parquet: DIR/trials.<layout>, "
        "one row per trial, and DIR/models/<id>.pt. Parquet needs pyarrow.",
    )
    export_command.add_argument("name", metavar="NAME", help="the experiment")
    export_command.add_argument("directory", metavar="DIR", help="where to write (created)")
    export_command.add_argument(
        "--layout", choices=LAYOUTS, default="original", help="what to write (default: original)"
    )
    export_command.add_argument(
        "--no-models", dest="models", action="store_false", help="do not download model files"
    )
    export_command.set_defaults(command=_export)
    add_slurm_command(commands, connection)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


# gridexp status


def _status(client: Client, arguments: argparse.Namespace) -> int:
    experiments = client.experiments()
    if not experiments:
        print("no experiment yet")
        return 0
    header = [
        "experiment",
        "active",
        "done/total",
        "running",
        "pending",
        "failed",
        "cancelled",
        "progress",
        "eta",
        "workers",
    ]
    rows = []
    for experiment in experiments:
        counts = experiment.get("counts", {})
        total = experiment.get("total", 0)
        finished = sum(counts.get(state, 0) for state in ("done", "failed", "cancelled"))
        rows.append(
            [
                experiment["name"],
                "yes" if experiment.get("active") else "no",
                f"{counts.get('done', 0)}/{total}",
                counts.get("running", 0),
                counts.get("pending", 0),
                counts.get("failed", 0),
                counts.get("cancelled", 0),
                f"{100 * finished / total:.0f}%" if total else "-",
                _format_eta(experiment.get("eta_seconds")),
                experiment.get("workers_online", "-"),
            ]
        )
    _print_table(header, rows)
    return 0


def _format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# gridexp results


def _results(client: Client, arguments: argparse.Namespace) -> int:
    name = arguments.name or client.active_experiment()
    if arguments.csv:
        return _results_csv(client, name, arguments)
    trials = client.trials(name)
    if not trials:
        print(f"experiment {name} has no trials")
        return 0
    results = [flatten_results(trial.get("results")) for trial in trials]
    rows = list(zip(trials, results))
    if arguments.sort:
        rows = _best_first(rows, lambda row: row[1].get(arguments.sort), arguments.direction)
    if arguments.limit:
        rows = rows[: arguments.limit]

    varying = _varying_hyperparameters(trials)
    result_names = _union_of_keys(results)
    if arguments.columns:
        result_names = [name for name in arguments.columns.split(",") if name]
    if arguments.sort in result_names:  # the metric that orders the rows comes first
        result_names.remove(arguments.sort)
        result_names.insert(0, arguments.sort)
    header = ["trial", "state", *varying, *result_names, "duration"]
    table = [
        [
            trial["id"],
            trial["state"],
            *(_format_hyperparameter(trial["hyperparameters"].get(key)) for key in varying),
            *(_format_value(flat.get(key)) for key in result_names),
            _format_duration(trial),
        ]
        for trial, flat in rows
    ]
    _print_table(header, table)
    if arguments.sort:
        return _print_best(client, trials, results, arguments.sort, arguments.direction)
    return 0


def _print_best(
    client: Client,
    trials: list[dict[str, Any]],
    results: list[dict[str, Any]],
    metric: str,
    direction: str,
) -> int:
    scored = [(t, flat) for t, flat in zip(trials, results) if _is_number(flat.get(metric))]
    if not scored:
        if any(trial["state"] == "done" for trial in trials):
            known = ", ".join(_union_of_keys(results)) or "none"
            print(f"gridexp: no trial reported {metric} (results: {known})", file=sys.stderr)
            return 1
        print(f"\nno trial reported {metric} yet")
        return 0
    best, flat = _best_first(scored, lambda row: row[1].get(metric), direction)[0]
    print(
        f"\nbest trial by {metric} ({direction}): {best['id']}  "
        f"{metric}={_format_value(flat[metric])}"
    )
    print("  hyperparameters:", json.dumps(best["hyperparameters"]))
    if best.get("model"):
        print(f"  model: {client.base_url}/api/v1/trials/{quote(best['id'], safe='')}/model")
    return 0


def _results_csv(client: Client, name: str, arguments: argparse.Namespace) -> int:
    text = client.trials_csv(name)
    if not arguments.sort and not arguments.limit:
        sys.stdout.write(text)
        return 0
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows = list(reader)
    if arguments.sort:
        state = header.index("state")
        any_done = any(row[state] == "done" for row in rows)
        column = _csv_column(header, arguments.sort, any_done)
        if column is not None:
            rows = _best_first(rows, lambda row: _csv_number(row[column]), arguments.direction)
    if arguments.limit:
        rows = rows[: arguments.limit]
    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return 0


def _csv_column(header: list[str], metric: str, any_done: bool) -> int | None:
    """The column of result `metric`; None while no trial is done (nothing to sort by yet)."""
    # A result named like a hyperparameter or a fixed column has the prefix "results.".
    for name in (f"results.{metric}", metric):
        if name in header:
            return header.index(name)
    if not any_done:
        return None
    raise _CommandError(f"no trial reported {metric}")


def _csv_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _best_first(rows: list, score_of, direction: str) -> list:
    """`rows` ordered best first by `score_of(row)`; rows without a number score go last."""

    def key(row) -> tuple[bool, float]:
        score = score_of(row)
        if not _is_number(score) or math.isnan(score):
            return (True, 0.0)
        return (False, -score if direction == "max" else score)

    return sorted(rows, key=key)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _varying_hyperparameters(trials: list[dict[str, Any]]) -> list[str]:
    names = _union_of_keys([trial.get("hyperparameters") or {} for trial in trials])
    return [
        name
        for name in names
        if len({json.dumps((t.get("hyperparameters") or {}).get(name)) for t in trials}) > 1
    ]


def _union_of_keys(mappings: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for mapping in mappings:
        names.update(dict.fromkeys(mapping))
    return list(names)


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        fixed_point_reads_well = value == 0 or 1e-3 <= abs(value) < 1e6
        return f"{value:.4f}" if fixed_point_reads_well else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _format_hyperparameter(value: Any) -> str:
    # As written in config.yaml: 0.03 stays 0.03, a list is JSON, a string has no quotes.
    return value if isinstance(value, str) else json.dumps(value)


def _format_duration(trial: dict[str, Any]) -> str:
    seconds = duration_seconds(trial)
    return "-" if seconds is None else f"{seconds:.1f}s"


# gridexp retry / gridexp cancel


def _act(client: Client, arguments: argparse.Namespace) -> int:
    action = getattr(client, arguments.action)
    past = {"retry": "retried", "cancel": "cancelled"}[arguments.action]
    if arguments.ids:
        if arguments.name:
            raise _UsageError("give an experiment NAME or --id, not both")
        return _act_on_ids(action, arguments.ids, past)
    name = arguments.name or client.active_experiment()
    changed = action(experiment=name)
    if not changed:
        what = "failed or cancelled" if arguments.action == "retry" else "pending or running"
        print(f"no {what} trial in {name}: nothing to {arguments.action}")
        return 0
    print(f"{past} {_plural(len(changed), 'trial')} of {name}:")
    for trial_id in changed:
        print(f"  {trial_id}")
    return 0


def _act_on_ids(action, trial_ids: list[str], past: str) -> int:
    status = 0
    for trial_id in dict.fromkeys(trial_ids):
        try:
            action(trial_id)
        except ClientError as error:
            if error.status not in (404, 409):
                raise
            print(f"gridexp: trial {trial_id}: {error}", file=sys.stderr)
            status = 1
        else:
            print(f"{past} {trial_id}")
    return status


# gridexp workers


def _workers(client: Client, arguments: argparse.Namespace) -> int:
    workers = client.workers()
    if not workers:
        print("no worker registered yet")
        return 0
    header = ["worker", "host", "pid", "devices", "online", "trial", "done", "failed", "last seen"]
    in_slurm = any(worker.get("slurm") for worker in workers)
    if in_slurm:
        header.append("slurm job")
    now = datetime.now(timezone.utc)
    rows = [
        [
            worker["id"],
            worker.get("host") or "-",
            worker.get("pid") or "-",
            ",".join(worker.get("devices") or []) or "-",
            "yes" if worker.get("online") else "no",
            worker.get("current_trial") or "-",
            worker.get("trials_done", 0),
            worker.get("trials_failed", 0),
            _format_ago(worker.get("last_seen"), now),
        ]
        + ([format_slurm_job(worker.get("slurm"))] if in_slurm else [])
        for worker in workers
    ]
    _print_table(header, rows)
    online = sum(1 for worker in workers if worker.get("online"))
    print(f"\n{online} of {_plural(len(workers), 'worker')} online")
    return 0


def format_slurm_job(slurm: dict[str, Any] | None) -> str:
    """``1234_2@node01`` (array job 1234, task 2, on node01), ``1240@node01``, or ``-``;
    ``(restart N)`` after a task Slurm requeued."""
    if not slurm:
        return "-"
    if slurm.get("array_job_id") and slurm.get("array_task_id") is not None:
        text = f"{slurm['array_job_id']}_{slurm['array_task_id']}"
    else:
        text = str(slurm.get("job_id", "?"))
    if slurm.get("node_list"):
        text += f"@{slurm['node_list']}"
    if slurm.get("restart_count"):
        text += f" (restart {slurm['restart_count']})"
    return text


def _format_ago(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "-"
    seconds = max(0.0, (now - parse_time(timestamp)).total_seconds())
    return f"{_format_eta(seconds)} ago"


# gridexp attempts


def _attempts(client: Client, arguments: argparse.Namespace) -> int:
    attempts = client.attempts(arguments.trial_id)
    if not attempts:
        print(f"trial {arguments.trial_id} has not been claimed yet")
        return 0
    header = ["attempt", "outcome", "worker", "started", "ended", "resumed from", "error"]
    rows = [
        [
            attempt["attempt"],
            attempt["outcome"],
            attempt.get("worker") or "-",
            _format_time(attempt.get("started_at")),
            _format_time(attempt.get("ended_at")),
            _format_resumed(attempt),
            _first_line(attempt.get("error")),
        ]
        for attempt in attempts
    ]
    _print_table(header, rows)
    return 0


def _format_time(timestamp: str | None) -> str:
    if not timestamp:
        return "-"
    return parse_time(timestamp).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _format_resumed(attempt: dict[str, Any]) -> str:
    if not attempt.get("resumed"):
        return "-"
    step = attempt.get("resumed_from_step")
    return "checkpoint (no step)" if step is None else f"step {step}"


def _first_line(text: str | None, width: int = 80) -> str:
    if not text:
        return "-"
    line = text.strip().splitlines()[0] if text.strip() else "-"
    return line if len(line) <= width else line[: width - 3] + "..."


# gridexp export


def _export(client: Client, arguments: argparse.Namespace) -> int:
    summary = export(
        client, arguments.name, arguments.directory, arguments.layout, models=arguments.models
    )
    for note in summary.notes:
        print(f"gridexp: note: {note}", file=sys.stderr)
    what = (
        _plural(len(summary.files), "results file")
        if arguments.layout == "original"
        else str(summary.files[0])
    )
    models = _plural(summary.models_downloaded + summary.models_kept, "model")
    if summary.models_kept:
        models += f" ({summary.models_kept} already there)"
    print(
        f"exported {_plural(summary.trials, 'trial')} of {arguments.name} to "
        f"{arguments.directory} ({arguments.layout}): {what}, {models}"
    )
    return 0


# Shared.


def _print_table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would report the broken pipe again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
