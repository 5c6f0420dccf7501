"""Read and validate a results.json (schema 2, or 1) before anything renders it.

Schema 2 adds to every check its record's `input`, its `world` and the `gradients` it
judged (lsresults/inputs.py); a schema-1 file has none of them and is rendered with them
derived from its metrics and environment. Validation is shallow on purpose: the core
fields must have their types (a schema-1 or -2 object; `complete` a boolean; `environment` and `benchmark_gate` objects; `checks` and
`benchmarks` lists of objects; a check's impl, check, kind, nodeid and outcome strings;
`environment.impls` a list of objects), and every field may be missing or null; the
renderer fills the gaps and tolerates odd values inside params and metrics. A file that
fails here raises ResultsError with one line naming the file, what is wrong and what to do.
Before any of that, lsresults/limits.py bounds the file's size, nesting, integers and strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from . import limits
from .text import one_line

SCHEMA = 2  # the results.json schema lsuite/pytest_plugin/results.py writes and reports/merge.py writes
READS = (1, 2)  # the schemas this renderer reads
# core fields and their JSON types; each may be missing or null
TOP_LEVEL = (("complete", bool), ("environment", dict), ("checks", list), ("benchmarks", list),
             ("benchmark_gate", dict))
CHECK_STRINGS = ("impl", "check", "kind", "nodeid", "outcome")  # of every check


class ResultsError(ValueError):
    """A results file or dict that cannot be rendered; the message is one line."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a results.json; raise ResultsError on anything unusable."""
    return read_results(path)[0]


def read_results(path: str | os.PathLike) -> tuple[dict, str]:
    """(the validated results, sha256 of the file's exact bytes); ResultsError (one line)
    on anything unusable: missing, not a regular file, over limits.MAX_FILE_BYTES, not
    UTF-8, not JSON, over the nesting/integer/string limits, or of the wrong shape."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
                           "this is not a results.json written by the suite") from None
    try:
        payload = json.loads(text, parse_int=limits.parse_int)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column "
                           f"{exc.colno}); the run that wrote it was probably killed mid-write: "
                           "rerun the suite") from None
    except limits.LimitError as exc:
        raise ResultsError(f"{path}: {exc}; the file is damaged: rerun the suite") from None
    except (RecursionError, ValueError) as exc:  # nesting beyond the C parser's stack; int()
        what = "nested too deeply" if isinstance(exc, RecursionError) else f"unreadable ({exc})"
        raise ResultsError(f"{path}: {what} to be a results.json; the file is damaged: "
                           "rerun the suite") from None
    validate(payload, source=str(path))
    return payload, hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing what is not a regular file or is over the size limit."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ResultsError(f"{path}: is a directory; pass the results.json file inside it")
        if not stat.S_ISREG(info.st_mode):
            raise ResultsError(f"{path}: not a regular file; pass the path of a results.json")
        if info.st_size > limits.MAX_FILE_BYTES:
            raise ResultsError(f"{path}: {info.st_size:,} bytes, over the {limits.MAX_FILE_BYTES:,}-byte "
                               "limit of a results.json (docs/results-schema.md)")
        with path.open("rb") as handle:
            data = handle.read(limits.MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file; run `python -m pytest suites/` to write "
                           "results.json, or pass the path of an existing one") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read it ({exc.strerror or exc}); check the path and "
                           "permissions") from None
    if len(data) > limits.MAX_FILE_BYTES:  # it grew since stat
        raise ResultsError(f"{path}: over the {limits.MAX_FILE_BYTES:,}-byte limit of a results.json")
    return data


def validate(payload, *, source: str = "results") -> dict:
    """Check the limits (lsresults/limits.py) and the core fields' types of a results dict;
    return it unchanged."""
    try:
        limits.check(payload)
    except limits.LimitError as exc:
        raise ResultsError(f"{source}: {exc}; the file is damaged: rerun the suite") from None
    if not isinstance(payload, dict):
        raise ResultsError(f"{source}: expected a JSON object at the top level, got "
                           f"{type(payload).__name__}; is this a results.json written by the suite?")
    if "schema" not in payload:
        raise ResultsError(f"{source}: no \"schema\" field; this is not a results.json written "
                           "by the suite (lsuite/pytest_plugin/results.py)")
    schema = payload["schema"]
    if schema not in READS or isinstance(schema, bool):
        hint = ("upgrade reports/ to a version that reads it"
                if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA
                else "rerun the suite to write a current results.json")
        raise ResultsError(f"{source}: schema {schema!r:.40} is not supported (this renderer reads "
                           f"schema {' and '.join(map(str, READS))}); {hint}")
    for key, kind in TOP_LEVEL:
        _typed(payload.get(key), kind, f"\"{key}\"", source)
    for key in ("checks", "benchmarks"):
        for i, item in enumerate(payload.get(key) or ()):
            _typed(item, dict, f"{key}[{i}]", source, required=True)
    for i, check in enumerate(payload.get("checks") or ()):
        for key in CHECK_STRINGS:
            _typed(check.get(key), str, f"checks[{i}].{key}", source)
    impls = (payload.get("environment") or {}).get("impls")
    if impls is not None and not (isinstance(impls, list) and all(isinstance(i, dict) for i in impls)):
        raise ResultsError(f"{source}: environment.impls must be a list of objects; "
                           "the file is damaged: rerun the suite")
    return payload


def _typed(value, kind: type, where: str, source: str, *, required: bool = False) -> None:
    """Raise a one-line ResultsError unless value has the JSON type (or is null, if allowed)."""
    if (value is None and not required) or isinstance(value, kind):
        return
    raise ResultsError(f"{source}: {where} must be a JSON {_json_kind(kind)}, got "
                       f"{_json_kind(type(value))}; the file is damaged: rerun the suite")


def _json_kind(kind: type) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(kind, kind.__name__)
