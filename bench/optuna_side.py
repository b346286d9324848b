"""Optuna's side of the side-by-side benchmark (scenario 2), run by any Python with Optuna.

``python bench/optuna_side.py --processes N --seconds S --database PATH`` imports Optuna, then
forks N processes that run trials of a constant objective with ``GridSampler`` over the
240-point grid against one SQLite study, until the grid is done or S seconds have passed. It
prints one JSON object: trials completed, wall seconds, trials/s, grid points completed more
than once, and the Optuna and SQLAlchemy versions. Standalone (standard library and Optuna
only) so that ``python -m bench --optuna-python`` can point it at another Optuna
installation, e.g. the 3.1 that the issue's target was measured against.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import optuna

# 240 points: the grid of the prior measurements in /work/shared/PRIOR_ART.md.
AXES = {"a": 4, "b": 6, "c": 10}


def run_one_process(storage_url: str, study_name: str, stop_at: float) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    search_space = {key: list(range(size)) for key, size in AXES.items()}
    study = optuna.load_study(
        study_name=study_name,
        storage=storage_url,
        sampler=optuna.samplers.GridSampler(search_space),
    )

    def objective(trial: Any) -> float:
        for key, size in AXES.items():
            trial.suggest_int(key, 0, size - 1)
        return 0.5

    # GridSampler stops the study itself once every grid point has run.
    study.optimize(objective, timeout=max(stop_at - time.time(), 0.0))


def run(processes: int, seconds: float, database: str) -> dict[str, Any]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage_url = f"sqlite:///{database}"
    optuna.create_study(study_name="bench", storage=storage_url)
    started = time.time()
    stop_at = started + seconds
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_one_process(storage_url, "bench", stop_at)
            except BaseException:  # noqa: BLE001 (a forked child must never return into the parent)
                code = 1
            os._exit(code)
        children.append(pid)
    failed = sum(1 for pid in children if os.waitpid(pid, 0)[1] != 0)
    wall = time.time() - started
    study = optuna.load_study(study_name="bench", storage=storage_url)
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    seen: dict[tuple, int] = {}
    for trial in done:
        key = tuple(sorted(trial.params.items()))
        seen[key] = seen.get(key, 0) + 1
    import sqlalchemy

    return {
        "optuna_version": optuna.__version__,
        "sqlalchemy_version": sqlalchemy.__version__,
        "processes": processes,
        "failed_processes": failed,
        "trials": len(done),
        "seconds": wall,
        "trials_per_second": len(done) / wall,
        "duplicated_points": sum(1 for count in seen.values() if count > 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--database", required=True, help="SQLite file to create")
    options = parser.parse_args()
    print(json.dumps(run(options.processes, options.seconds, options.database)))


if __name__ == "__main__":
    main()
