"""gridexp: run a grid of machine-learning experiments across many machines.

The server (`gridexp-server`) and the worker (`gridexp-worker`) are C++ programs installed
with this package; this module is the Python side that ships with them.

Inside a worker, `experiment.py` runs in `gridexp-executor`, and these functions talk to the
worker: `report` sends metrics of the running trial, `trial` says which trial runs,
`should_stop` says whether it should stop (and `stop_reason` why), `save_checkpoint`,
`load_checkpoint` and `checkpoint_dir` let a trial resume where an earlier attempt of it
stopped. Run by hand (`python experiment.py`), `report` prints, `trial` is None,
`should_stop` is False, `save_checkpoint` does nothing and `load_checkpoint` is None, so the
same code works in both.
"""

from __future__ import annotations

import functools
import operator
import os
import pathlib
import shutil
import sys
import tempfile
import warnings
import zipfile
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

__all__ = [
    "Client",
    "ClientError",
    "__version__",
    "checkpoint_dir",
    "load_checkpoint",
    "report",
    "save_checkpoint",
    "should_stop",
    "stop_reason",
    "trial",
]


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


def stop_reason() -> str | None:
    """Why the running trial was asked to stop: "preempted" (the worker got SIGTERM, SIGINT or
    SIGUSR1), "cancelled" (a user cancelled it) or "lease lost"; None while it need not stop,
    and always outside a worker.
    """
    return _executor.stop_reason() if _executor is not None else None


def save_checkpoint(obj_or_path: Any, step: int | None = None) -> None:
    """Save a checkpoint of the running trial; its next attempt resumes from the latest one.

    ``obj_or_path`` is a file or directory (a str or os.PathLike: copied now, so you may
    overwrite yours at once), or any other object, stored with ``torch.save``. The call
    returns once the copy is on local disk; the upload to the server runs in the background
    and never holds the training up. When the checkpoint cannot be saved (torch cannot pickle
    the object, the path does not exist, the call is made outside ``run_one``) the error goes
    to the trial's log and a RuntimeWarning is issued; the trial goes on, and earlier
    checkpoints are kept. Outside a worker it does nothing.

    Args:
        obj_or_path: the object, file or directory to keep.
        step: the training step or epoch it belongs to, or None.
    """
    step = _check_step(step)
    if _executor is None:
        return
    staging = _executor.staging_dir() if _executor.trial() is not None else None
    if staging is None:
        _checkpoint_not_saved(
            "save_checkpoint() outside run_one is ignored (no trial is running)", step
        )
        return
    descriptor, temporary = tempfile.mkstemp(dir=staging, prefix=".saving-", suffix=".tmp")
    os.close(descriptor)
    try:
        kind = _write_checkpoint(obj_or_path, temporary)
        final = temporary[: -len(".tmp")] + ".ckpt"
        os.replace(temporary, final)
    except Exception as error:  # noqa: BLE001 - any failure leaves the trial running
        _remove_quietly(temporary)
        _checkpoint_not_saved(f"{type(error).__name__}: {error}", step)
        return
    try:
        _executor.checkpoint_saved(final, kind, step)
    except ValueError as error:
        _remove_quietly(final)
        _checkpoint_not_saved(str(error), step)


def load_checkpoint(map_location: Any = None) -> Any:
    """The latest checkpoint an earlier attempt of the running trial saved, or None.

    An object saved with ``save_checkpoint(obj)`` comes back through
    ``torch.load(path, map_location=map_location, weights_only=False)``; a saved file or
    directory comes back as a ``pathlib.Path`` to a local copy (a directory's copy is
    ``checkpoint_dir()``). None when there is none, and always outside a worker.
    """
    if _executor is None:
        return None
    checkpoint = _executor.checkpoint()
    if checkpoint is None:
        return None
    if checkpoint["kind"] != "object":
        return pathlib.Path(checkpoint["path"])
    import torch

    return torch.load(checkpoint["path"], map_location=map_location, weights_only=False)


def checkpoint_dir() -> pathlib.Path:
    """A directory of the running trial's own for frameworks that write their own files.

    What is in it when the trial ends or is stopped is kept as the trial's checkpoint (when it
    changed), and the next attempt finds it there again. Outside a worker (or outside
    ``run_one``) a temporary directory of this process.
    """
    directory = _executor.checkpoint_dir() if _executor is not None else None
    return pathlib.Path(directory) if directory is not None else _local_checkpoint_dir()


@functools.cache
def _local_checkpoint_dir() -> pathlib.Path:
    return pathlib.Path(tempfile.mkdtemp(prefix="gridexp-checkpoint-"))


def _write_checkpoint(obj_or_path: Any, destination: str) -> str:
    """Writes the checkpoint to `destination`; its kind."""
    if isinstance(obj_or_path, (str, os.PathLike)):
        source = pathlib.Path(obj_or_path)
        if source.is_dir():
            _zip_directory(source, destination)
            return "directory"
        if source.is_file():
            shutil.copyfile(source, destination)
            return "file"
        raise FileNotFoundError(f"{str(source)!r} is no file or directory")
    try:
        import torch
    except ImportError as error:
        raise RuntimeError(f"saving an object needs torch ({error})") from None
    torch.save(obj_or_path, destination)
    return "object"


def _zip_directory(source: pathlib.Path, destination: str) -> None:
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            archive.write(path, path.relative_to(source).as_posix())


def _checkpoint_not_saved(why: str, step: int | None) -> None:
    at = f" at step {step}" if step is not None else ""
    message = f"gridexp: checkpoint{at} not saved: {why}"
    print(message, file=sys.stderr, flush=True)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


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
