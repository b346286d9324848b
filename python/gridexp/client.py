"""A Python client for a running gridexp-server: read trials and results, fetch models, act.

Contract:
- ``Client(address, password)`` talks to one server over HTTP (``/api/v1``, see docs/api.md)
  with ``Authorization: Bearer <password>``, using only the standard library.
- Every call is one or more plain requests; nothing is cached, so each answer is the server's
  state at that moment. A Client holds no open connection and may be shared between threads.
- Any failure raises ``ClientError`` with the HTTP status (None when the server was not
  reached) and the server's ``error`` message: a wrong password, an unknown trial, a trial in
  a state the action does not apply to, a server that is down.
- ``download_model`` never leaves a partial or unverified file at the destination.

The password is, in order: the ``password`` argument, the first line of ``password_file``,
``GRIDEXP_PASSWORD``, the first line of the file named by ``GRIDEXP_PASSWORD_FILE``, or
``./.gridexp/password`` when run in the experiment directory (where the server keeps the one it
generated).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import queue
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Union

__all__ = [
    "DEFAULT_ADDRESS",
    "Client",
    "ClientError",
    "duration_seconds",
    "flatten_results",
    "parse_time",
    "table_row",
]

DEFAULT_ADDRESS = "127.0.0.1:8030"
_PASSWORD_IN_EXPERIMENT_DIR = Path(".gridexp") / "password"
_DOWNLOAD_PIECE_BYTES = 128 * 1024
_DOWNLOAD_PIECES = 8
# JSON cannot carry non-finite floats; workers send them as these strings (docs/protocol.md).
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_FIXED_COLUMNS = ("id", "state", "attempts", "worker", "duration_seconds")

TrialIds = Union[str, Iterable[str], None]


class ClientError(Exception):
    """A request to the server failed.

    Attributes:
        status: the HTTP status (404, 409, ...), or None when no answer came back.
        message: the server's ``error`` message, or what went wrong on the way.
        detail: the server's ``detail``, when it sent one.
    """

    def __init__(self, message: str, status: int | None = None, detail: Any = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail


class Client:
    """One gridexp-server, e.g. ``Client("gpu-server:8030")``.

    Args:
        address: ``host:port`` or ``http(s)://host:port`` (a path prefix, as behind a reverse
            proxy, is kept).
        password: the server's password; see the module docstring for where it is looked up
            when omitted.
        password_file: a file whose first line is the password.
        timeout: seconds to wait for the server on each request.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        password: str | None = None,
        *,
        password_file: str | os.PathLike[str] | None = None,
        timeout: float = 30,
    ):
        self.base_url = _base_url(address)
        self.timeout = timeout
        self._password = _resolve_password(password, password_file)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    # Reading.

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment the server knows, with counts per state; the active one marked."""
        return self._get_json("/api/v1/experiments")

    def active_experiment(self) -> str:
        """The name of the experiment of the server's current config.yaml."""
        for experiment in self.experiments():
            if experiment.get("active"):
                return experiment["name"]
        raise ClientError(f"the server at {self.base_url} has no active experiment")

    def trials(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every trial of experiment `name` (default: the active one), in grid order."""
        return self._get_json(f"/api/v1/experiments/{self._experiment_path(name)}/trials")

    def trials_csv(self, name: str | None = None) -> str:
        """The trials of experiment `name` (default: the active one) as the server's CSV."""
        path = f"/api/v1/experiments/{self._experiment_path(name)}/trials.csv"
        return self._request("GET", path).decode("utf-8")

    def trial(self, trial_id: str) -> dict[str, Any]:
        """One trial: state, hyperparameters, results, attempts, error, model digest, ..."""
        return self._get_json(f"/api/v1/trials/{_quote(trial_id)}")

    def attempts(self, trial_id: str) -> list[dict[str, Any]]:
        """The trial's attempt history, oldest first (one entry per claim)."""
        return self._get_json(f"/api/v1/trials/{_quote(trial_id)}/attempts")

    def metrics(self, trial_id: str) -> list[dict[str, Any]]:
        """The intermediate metrics the trial reported: ``[{"step", "time", "values"}]``."""
        return self._get_json(f"/api/v1/trials/{_quote(trial_id)}/metrics")

    def log(self, trial_id: str) -> str:
        """The trial's console output (every attempt's, in order)."""
        log = self._request("GET", f"/api/v1/trials/{_quote(trial_id)}/log")
        return log.decode("utf-8", errors="replace")

    def config(self) -> dict[str, Any]:
        """The active experiment's config: ``{"experiment_name", "config": {...}}``, the whole
        top level of its config.yaml (the server exposes no other experiment's)."""
        return self._get_json("/api/v1/config")

    def workers(self) -> list[dict[str, Any]]:
        """Every worker that registered, with ``online`` and its current trial."""
        return self._get_json("/api/v1/workers")

    def dataframe(self, name: str | None = None):
        """The trials of experiment `name` (default: the active one) as a pandas DataFrame.

        One row per trial, in grid order. Columns: ``id, state, attempts, worker,
        duration_seconds`` (None until the trial finished), one per hyperparameter (lists and
        mappings as JSON text), then one per scalar result, nested results flattened with dots
        (``val.acc``) and lists left out, like the server's trials.csv. A result named like an
        earlier column gets the prefix ``results.``.
        """
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "Client.dataframe needs pandas: pip install pandas "
                "(or: pip install 'gridexp[pandas]')"
            ) from None
        rows = [table_row(trial) for trial in self.trials(name)]
        columns = list(_FIXED_COLUMNS)
        for row in rows:
            columns.extend(column for column in row if column not in columns)
        return pandas.DataFrame(rows, columns=columns)

    # Models.

    def download_model(self, trial_id: str, path: str | os.PathLike[str]) -> Path:
        """Download the trial's model file to `path` (a file, or a directory for ``<id>.pt``).

        The file is streamed into a temporary file beside `path`, its SHA-256 checked against
        the server's digest, then renamed into place: `path` is either the verified model or
        untouched. Raises ClientError on a mismatch or when the trial has no model.
        """
        destination = Path(path)
        if destination.is_dir():
            destination = destination / f"{trial_id}.pt"
        with self._open("GET", f"/api/v1/trials/{_quote(trial_id)}/model") as response:
            expected = _etag_digest(response.headers.get("ETag"))
            if expected is None:
                expected = (self.trial(trial_id).get("model") or {}).get("sha256")
            if not expected:
                raise ClientError(f"the server sent no digest for the model of trial {trial_id}")
            descriptor, temporary = tempfile.mkstemp(
                dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
            )
            try:
                digest = _copy_hashing(response, descriptor, trial_id)
                if digest != expected.lower():
                    raise ClientError(
                        f"the model of trial {trial_id} is corrupt: its SHA-256 is "
                        f"{digest}, the server's digest is {expected}"
                    )
                os.replace(temporary, destination)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        return destination

    # Actions.

    def retry(self, trial_ids: TrialIds = None, *, experiment: str | None = None) -> list[str]:
        """Send failed or cancelled trials back to pending; returns the ids that changed.

        `trial_ids`: one id (a 409 ClientError when that trial is not failed or cancelled), a
        list of ids of `experiment` (others are skipped), or None for every failed and
        cancelled trial of `experiment` (default: the active one).
        """
        return self._act("retry", trial_ids, experiment)

    def cancel(self, trial_ids: TrialIds = None, *, experiment: str | None = None) -> list[str]:
        """Cancel pending trials and ask running ones to stop; returns the ids that changed.

        `trial_ids`: one id (a 409 ClientError when that trial already ended), a list of ids
        of `experiment` (others are skipped), or None for every pending and running trial of
        `experiment` (default: the active one). A running trial ends ``cancelled`` once its
        worker stopped it (``stop_requested`` is true until then).
        """
        return self._act("cancel", trial_ids, experiment)

    def _act(self, action: str, trial_ids: TrialIds, experiment: str | None) -> list[str]:
        if isinstance(trial_ids, str):
            trial = self._request_json("POST", f"/api/v1/trials/{_quote(trial_ids)}/{action}", {})
            return [trial["id"]]
        body = {} if trial_ids is None else {"ids": list(trial_ids)}
        path = f"/api/v1/experiments/{self._experiment_path(experiment)}/{action}"
        return list(self._request_json("POST", path, body)["changed"])

    # HTTP.

    def _experiment_path(self, name: str | None) -> str:
        return _quote(name if name is not None else self.active_experiment())

    def _get_json(self, path: str) -> Any:
        return self._request_json("GET", path)

    def _request_json(self, method: str, path: str, body: Any = None) -> Any:
        answer = self._request(method, path, body)
        try:
            return json.loads(answer)
        except ValueError:
            raise ClientError(f"the server sent no JSON for {method} {path}") from None

    def _request(self, method: str, path: str, body: Any = None) -> bytes:
        """The whole body of the answer to one request."""
        with self._open(method, path, body) as response:
            try:
                return response.read()
            except (OSError, http.client.HTTPException) as error:
                raise self._unreachable(error) from None

    def _open(self, method: str, path: str, body: Any = None):
        """The response to one request, to be read and closed; ClientError unless 2xx."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._password}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise self._http_error(error) from None
        except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
            raise self._unreachable(error) from None

    def _http_error(self, error: urllib.error.HTTPError) -> ClientError:
        message, detail = _error_body(error)
        if error.code == 401:
            return ClientError(
                f"the server at {self.base_url} refused the password: it is wrong or missing",
                401,
                detail,
            )
        return ClientError(message or f"HTTP {error.code} {error.reason}", error.code, detail)

    def _unreachable(self, error: Exception) -> ClientError:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(reason, (socket.timeout, TimeoutError)):
            why = f"no answer within {self.timeout:g} s"
        else:
            why = str(reason)
        return ClientError(f"the server at {self.base_url} is not reachable ({why})")


def flatten_results(results: Any) -> dict[str, Any]:
    """The scalar results of a trial, nested objects flattened with dots: ``{"val.acc": 0.9}``.

    Lists are left out; the strings "NaN", "Infinity" and "-Infinity" (how non-finite floats
    travel in JSON) become floats. A result that is a scalar itself is named ``result``.
    """
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, str):
            flat[prefix or "result"] = _NON_FINITE.get(value, value)
        elif not isinstance(value, list):
            flat[prefix or "result"] = value

    if results is not None:
        visit("", results)
    return flat


def table_row(trial: dict[str, Any]) -> dict[str, Any]:
    """One trial as a row of ``Client.dataframe``: the fixed columns, the hyperparameters
    (lists and mappings as JSON text) and the flattened scalar results."""
    row: dict[str, Any] = {
        "id": trial["id"],
        "state": trial["state"],
        "attempts": trial.get("attempts"),
        "worker": trial.get("worker"),
        "duration_seconds": duration_seconds(trial),
    }
    for name, value in (trial.get("hyperparameters") or {}).items():
        row[name] = json.dumps(value) if isinstance(value, (list, dict)) else value
    for name, value in flatten_results(trial.get("results")).items():
        row[f"results.{name}" if name in row else name] = value
    return row


def duration_seconds(trial: dict[str, Any]) -> float | None:
    """How long a finished trial ran (its last attempt), or None while it has not finished."""
    started, finished = trial.get("started_at"), trial.get("finished_at")
    if not started or not finished:
        return None
    return (parse_time(finished) - parse_time(started)).total_seconds()


def parse_time(text: str) -> datetime:
    """A timestamp of the API ("2026-11-28T01:23:45.678Z") as an aware datetime."""
    # fromisoformat reads a trailing "Z" only from Python 3.11 on.
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _copy_hashing(response, descriptor: int, trial_id: str) -> str:
    """Writes the response body to the open file `descriptor` (closing it); its SHA-256.

    The SHA-256 runs on a thread of its own, a few pieces behind the receiving and writing:
    hashlib, ``readinto`` and ``os.write`` all release the GIL, so on two cores they overlap
    (docs/performance.md, scenario 4). The pieces are reused, small enough to stay in the
    CPU's cache while they are written and hashed.
    """
    hasher = _BackgroundSha256(_DOWNLOAD_PIECE_BYTES, _DOWNLOAD_PIECES)
    try:
        while True:
            piece = hasher.free_piece()
            try:
                received = response.readinto(piece)
            except (http.client.HTTPException, ConnectionError, socket.timeout) as error:
                raise ClientError(
                    f"the download of the model of trial {trial_id} broke off: {error!r}"
                ) from None
            if not received:
                break
            written = 0
            while written < received:
                written += os.write(descriptor, piece[written:received])
            hasher.update(piece, received)
        os.fsync(descriptor)
        return hasher.hexdigest()
    finally:
        hasher.stop()
        os.close(descriptor)


class _BackgroundSha256:
    """The SHA-256 of pieces handed over in order, computed on a thread of its own.

    ``free_piece()`` lends one of `pieces` buffers (waiting until the thread has hashed one);
    ``update(piece, size)`` queues its first `size` bytes and gives the buffer back to the
    thread, which returns it to the free ones once hashed. One thread lends and updates.
    """

    def __init__(self, piece_bytes: int, pieces: int) -> None:
        self._digest = hashlib.sha256()
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self._queued: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        for _ in range(pieces):
            self._free.put(memoryview(bytearray(piece_bytes)))
        self._thread = threading.Thread(target=self._hash_queued, name="gridexp-sha256")
        self._thread.start()

    def free_piece(self) -> memoryview:
        while True:
            try:
                return self._free.get(timeout=1.0)
            except queue.Empty:
                if not self._thread.is_alive():
                    raise RuntimeError("the SHA-256 thread of a model download died") from None

    def update(self, piece: memoryview, size: int) -> None:
        self._queued.put((piece, size))

    def hexdigest(self) -> str:
        """The digest of everything updated so far; stops the thread."""
        self.stop()
        return self._digest.hexdigest()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queued.put(None)
            self._thread.join()

    def _hash_queued(self) -> None:
        while (item := self._queued.get()) is not None:
            piece, size = item
            self._digest.update(piece[:size])
            self._free.put(piece)


def _etag_digest(etag: str | None) -> str | None:
    if not etag:
        return None
    return etag.removeprefix("W/").strip('"') or None


def _error_body(error: urllib.error.HTTPError) -> tuple[str | None, Any]:
    try:
        body = json.loads(error.read().decode("utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    return body.get("error"), body.get("detail")


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _base_url(address: str) -> str:
    text = address.strip()
    if "://" not in text:
        text = "http://" + text
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"not a server address: {address!r} (expected host:port or http://host:port)"
        )
    try:
        parsed.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"not a server address: {address!r} (bad port)") from None
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


def _resolve_password(password: str | None, password_file: str | os.PathLike[str] | None) -> str:
    if password:
        return password
    if password_file is not None:
        return _read_password_file(Path(password_file), "password_file")
    from_environment = os.environ.get("GRIDEXP_PASSWORD")
    if from_environment:
        return from_environment
    file_from_environment = os.environ.get("GRIDEXP_PASSWORD_FILE")
    if file_from_environment:
        return _read_password_file(Path(file_from_environment), "GRIDEXP_PASSWORD_FILE")
    if _PASSWORD_IN_EXPERIMENT_DIR.is_file():
        return _read_password_file(_PASSWORD_IN_EXPERIMENT_DIR, "the experiment directory")
    raise ClientError(
        "no password for the gridexp server: set GRIDEXP_PASSWORD, give a password file "
        "(password_file=, --password-file or GRIDEXP_PASSWORD_FILE), or run in the experiment "
        "directory, where the server keeps it in .gridexp/password"
    )


def _read_password_file(path: Path, source: str) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ClientError(
            f"cannot read the password file {path} (from {source}): {error.strerror}"
        ) from None
    password = lines[0].strip() if lines else ""
    if not password:
        raise ClientError(f"the password file {path} (from {source}) is empty")
    return password
