"""`gridexp export`: an experiment's trials and model files written to a directory.

Layouts (DIR is created when missing; the files an export writes replace those of an earlier
one, anything else in DIR is left alone):

- ``original``: what the original framework's server directory held, so analysis scripts
  written for it run unchanged. ``DIR/results/<id>`` for each done trial: a YAML mapping with
  ``results`` and ``exp_info`` (the experiment's config with that point's ``hyperparameters``
  in place of the grid's, and ``experiment_hash``, the trial id, which names the files);
  ``DIR/models/<id>`` its model file; ``DIR/config.yaml`` the config. The server exposes the
  config of its active experiment only: for another, ``exp_info`` holds the experiment name
  and the hyperparameters, no ``config.yaml`` is written, and a note says so.
- ``jsonl``: ``DIR/trials.jsonl``, one JSON object per trial (the API's trial, plus
  ``model_file``, relative to DIR or null); models in ``DIR/models/<id>.pt``.
- ``csv``: ``DIR/trials.csv``, the server's trials.csv; models as for jsonl.
- ``parquet``: ``DIR/trials.parquet``, one row per trial with the columns of
  ``Client.dataframe`` (needs pyarrow: ``pip install 'gridexp[parquet]'``); models as for jsonl.

Model files are downloaded with ``Client.download_model`` (SHA-256 checked, renamed into place);
one already in DIR with the server's digest is kept, not downloaded again. Every other file is
written to a temporary file and renamed into place: never half-written. Results that travel as
"NaN", "Infinity" and "-Infinity" (non-finite floats) are floats again in the YAML and Parquet.

YAML is written by a small emitter for JSON-like data (PyYAML is not needed), in PyYAML's
block style with sorted keys, as the original's ``yaml.dump`` wrote it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridexp.client import Client, ClientError, table_row

__all__ = ["LAYOUTS", "ExportError", "ExportSummary", "export", "to_yaml"]

LAYOUTS = ("original", "jsonl", "csv", "parquet")

_TRIAL_ID = re.compile(r"[0-9a-f]{16}")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_HASH_PIECE_BYTES = 1024 * 1024


class ExportError(Exception):
    """The export cannot be done as asked (a missing optional package, say)."""


@dataclass
class ExportSummary:
    """What an export wrote."""

    trials: int = 0
    files: list[Path] = field(default_factory=list)  # results files or the table
    models_downloaded: int = 0
    models_kept: int = 0  # already in DIR with the server's digest
    notes: list[str] = field(default_factory=list)  # what the export could not do fully


def export(
    client: Client,
    name: str,
    directory: str | os.PathLike[str],
    layout: str = "original",
    *,
    models: bool = True,
) -> ExportSummary:
    """Writes experiment `name`'s trials (and, with `models`, their model files) to `directory`
    in `layout` (see the module docstring). Raises ClientError when the server fails or does
    not know `name`, ExportError for a layout that cannot be written here."""
    if layout not in LAYOUTS:
        raise ExportError(f"unknown layout {layout!r}: one of {', '.join(LAYOUTS)}")
    pyarrow = _import_pyarrow() if layout == "parquet" else None
    trials = client.trials(name)
    for trial in trials:
        # A trial id names files here: never let the server's data choose another path.
        if not _TRIAL_ID.fullmatch(str(trial.get("id"))):
            raise ExportError(f"the server sent a trial id that is not 16 hex digits: {trial!r}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(trials=len(trials))
    if layout == "original":
        _export_original(client, name, root, trials, summary)
        model_names = {trial["id"]: trial["id"] for trial in trials if trial["state"] == "done"}
    else:
        model_names = {trial["id"]: f"{trial['id']}.pt" for trial in trials}
        table = root / f"trials.{layout}"
        if layout == "jsonl":
            _write_atomically(table, _jsonl(trials, model_names if models else {}))
        elif layout == "csv":
            _write_atomically(table, client.trials_csv(name).encode("utf-8"))
        else:
            _write_parquet(pyarrow, table, trials)
        summary.files.append(table)
    if models:
        _download_models(client, root / "models", trials, model_names, summary)
    return summary


def _export_original(
    client: Client, name: str, root: Path, trials: list[dict[str, Any]], summary: ExportSummary
) -> None:
    active = client.config()
    config = active.get("config") if active.get("experiment_name") == name else None
    if config is None:
        summary.notes.append(
            f"{name} is not the server's active experiment, and the server exposes only the "
            "active one's config: exp_info holds experiment_name and hyperparameters only, and "
            "no config.yaml was written"
        )
        config = {"experiment_name": name}
    else:
        _write_atomically(root / "config.yaml", to_yaml(config).encode("utf-8"))
    results_dir = root / "results"
    results_dir.mkdir(exist_ok=True)
    for trial in trials:
        if trial["state"] != "done":
            continue
        exp_info = {key: value for key, value in config.items() if key != "hyperparameters"}
        exp_info["hyperparameters"] = trial["hyperparameters"]
        exp_info["experiment_hash"] = trial["id"]
        document = {"results": _restore_non_finite(trial.get("results")), "exp_info": exp_info}
        path = results_dir / trial["id"]
        _write_atomically(path, to_yaml(document).encode("utf-8"))
        summary.files.append(path)


def _jsonl(trials: list[dict[str, Any]], model_names: dict[str, str]) -> bytes:
    lines = []
    for trial in trials:
        has_model = trial.get("model") and trial["id"] in model_names
        model_file = f"models/{model_names[trial['id']]}" if has_model else None
        lines.append(json.dumps({**trial, "model_file": model_file}, ensure_ascii=False))
    # A lone surrogate (a file name's undecodable byte) becomes its JSON escape.
    return "".join(line + "\n" for line in lines).encode("utf-8", errors="backslashreplace")


def _import_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # for pyarrow.parquet.write_table
    except ImportError:
        raise ExportError(
            "--layout parquet needs pyarrow: pip install pyarrow (or: pip install "
            "'gridexp[parquet]'), or export with --layout jsonl or csv"
        ) from None
    return pyarrow


def _write_parquet(pyarrow, path: Path, trials: list[dict[str, Any]]) -> None:
    rows = [table_row(trial) for trial in trials]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    arrays = []
    for column in columns:
        values = [row.get(column) for row in rows]
        try:
            arrays.append(pyarrow.array(values))
        except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, OverflowError):
            # Values of different types in one column (a result that is a number in one trial
            # and a string in another): the column holds each as JSON text.
            text = [None if value is None else json.dumps(value) for value in values]
            arrays.append(pyarrow.array(text, pyarrow.string()))
    table = pyarrow.Table.from_arrays(arrays, names=list(columns))
    temporary = _temporary_beside(path)
    try:
        pyarrow.parquet.write_table(table, str(temporary))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _download_models(
    client: Client,
    models_dir: Path,
    trials: list[dict[str, Any]],
    model_names: dict[str, str],
    summary: ExportSummary,
) -> None:
    for trial in trials:
        model = trial.get("model")
        if not model or trial["id"] not in model_names:
            continue
        models_dir.mkdir(exist_ok=True)
        path = models_dir / model_names[trial["id"]]
        if path.is_file() and _sha256_of(path) == str(model.get("sha256", "")).lower():
            summary.models_kept += 1
            continue
        try:
            client.download_model(trial["id"], path)
        except ClientError as error:
            if error.status != 404:
                raise
            # Its trial was retried since the list was read: the model is gone.
            summary.notes.append(f"the model of trial {trial['id']} is no longer on the server")
            continue
        summary.models_downloaded += 1


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while piece := file.read(_HASH_PIECE_BYTES):
            digest.update(piece)
    return digest.hexdigest()


def _restore_non_finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _restore_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore_non_finite(item) for item in value]
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    return value


def _temporary_beside(path: Path) -> Path:
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".part"
    )
    os.close(descriptor)
    return Path(temporary)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = _temporary_beside(path)
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# YAML.

# Strings a YAML 1.1 reader (PyYAML) takes for a bool or null when unquoted.
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}
# Letters first, then nothing YAML gives a meaning: such a string needs no quotes.
_YAML_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*(?: [A-Za-z0-9_./-]+)*")


def to_yaml(value: Any) -> str:
    """`value` (dicts with str keys, lists, str, int, float, bool, None) as a YAML document
    that ``yaml.safe_load`` reads back equal: block style, keys sorted, floats with a dot,
    NaN and infinities as .nan and .inf, strings quoted whenever a reader could take them for
    anything else."""
    return "".join(line + "\n" for line in _yaml_lines(value, 0))


def _yaml_lines(value: Any, indent: int) -> Iterator[str]:
    pad = " " * indent
    if isinstance(value, dict) and value:
        for key in sorted(value):
            item = value[key]
            head = f"{pad}{_yaml_scalar(str(key))}:"
            if _is_nested(item):
                yield head
                # A list under a key sits at the key's indentation, as PyYAML writes it.
                yield from _yaml_lines(item, indent + 2 if isinstance(item, dict) else indent)
            else:
                yield f"{head} {_yaml_scalar(item)}"
    elif isinstance(value, list) and value:
        for item in value:
            if _is_nested(item):
                lines = list(_yaml_lines(item, indent + 2))
                yield f"{pad}- {lines[0][indent + 2 :]}"
                yield from lines[1:]
            else:
                yield f"{pad}- {_yaml_scalar(item)}"
    else:
        yield pad + _yaml_scalar(value)


def _is_nested(value: Any) -> bool:
    return isinstance(value, (dict, list)) and bool(value)


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _yaml_float(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if isinstance(value, str):
        if _YAML_PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
            return value
        return _yaml_quoted(value)
    raise TypeError(f"cannot write a {type(value).__name__} as YAML: {value!r}")


def _yaml_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    # YAML 1.1 reads a float only with a dot: 1e-05 would come back a string.
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e")
    return text


def _yaml_quoted(text: str) -> str:
    characters = []
    for character in text:
        if character in '\\"':
            characters.append("\\" + character)
        elif character.isprintable():
            characters.append(character)
        else:  # control characters, line and paragraph separators, lone surrogates
            code = ord(character)
            if code <= 0xFF:
                characters.append(f"\\x{code:02x}")
            elif code <= 0xFFFF:
                characters.append(f"\\u{code:04x}")
            else:
                characters.append(f"\\U{code:08x}")
    return '"' + "".join(characters) + '"'
