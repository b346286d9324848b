"""gridexp: run a grid of machine-learning experiments across many machines.

The server (`gridexp-server`) and the worker (`gridexp-worker`) are C++ programs installed
with this package; this module is the Python side that ships with them.

Inside a worker, `experiment.py` runs in `gridexp-executor`, and these functions talk to the
worker: `report` sends metrics of the running trial, `trial` says which trial runs, and
`should_stop` says whether the server asked it to stop. Run by hand (`python experiment.py`),
`report` prints, `trial` is None and `should_stop` is False, so the same code works in both.
"""

from __future__ import annotations

import operator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("gridexp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

try:  # built into gridexp-executor; absent anywhere else
    import _gridexp_executor as _executor
except ImportError:
    _executor = None

from gridexp.client import Client, ClientError

__all__ = ["Client", "ClientError", "__version__", "report", "should_stop", "trial"]


def report(step: int | None = None, **metrics: Any) -> None:
    """Report metrics of the running trial, e.g. ``report(step=epoch, loss=0.42, acc=0.8)``.

    In a worker the metrics go to the server (as JSON: numbers, strings, lists, dicts, numpy
    and torch scalars or arrays); the call never waits for the network. A value that cannot
    become JSON raises TypeError naming it. Outside a worker the metrics are printed.

    Args:
        step: the training step or epoch the metrics belong to, or None.
        **metrics: metric names and values.
    """
    step = _check_step(step)
    if _executor is not None:
        _executor.report(step, metrics)
    else:
        print(_format_report(step, metrics), flush=True)


def trial() -> dict[str, Any] | None:
    """The running trial: ``{"id", "attempt", "experiment", "hyperparameters"}``, or None.

    None outside a trial (while ``init_dataset`` builds the shared dataset, or outside a worker).
    """
    return _executor.trial() if _executor is not None else None


def should_stop() -> bool:
    """Whether the server asked the running trial to stop; check it in the training loop.

    Once true it stays true until the trial ends: return from ``run_one`` early, with the
    results so far. Always False outside a worker.
    """
    return _executor.should_stop() if _executor is not None else False


def _check_step(step: object) -> int | None:
    if step is None:
        return None
    if isinstance(step, bool):
        raise TypeError("step must be an int or None, not bool")
    try:
        return operator.index(step)  # int, and int-like scalars such as numpy.int64
    except TypeError:
        raise TypeError(f"step must be an int or None, not {type(step).__name__}") from None


def _format_report(step: int | None, metrics: dict[str, Any]) -> str:
    values = " ".join(f"{name}={_format_value(value)}" for name, value in metrics.items())
    where = f"step {step}: " if step is not None else ""
    return f"[gridexp] {where}{values}"


def _format_value(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
