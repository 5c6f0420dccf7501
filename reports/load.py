"""Read and validate a results.json (schema 1) before anything renders it.

Validation is shallow on purpose: the core fields must have their types (a schema-1
object; `complete` a boolean; `environment` and `benchmark_gate` objects; `checks` and
`benchmarks` lists of objects; a check's impl, check, kind, nodeid and outcome strings;
`environment.impls` a list of objects), and every field may be missing or null; the
renderer fills the gaps and tolerates odd values inside params and metrics. A file that
fails here raises ResultsError with one line naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SCHEMA = 1  # the results.json schema this renderer reads (lsuite/results.py writes it)
# core fields and their JSON types; each may be missing or null
TOP_LEVEL = (("complete", bool), ("environment", dict), ("checks", list), ("benchmarks", list),
             ("benchmark_gate", dict))
CHECK_STRINGS = ("impl", "check", "kind", "nodeid", "outcome")  # of every check


class ResultsError(ValueError):
    """A results file or dict that cannot be rendered; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a results.json; raise ResultsError on anything unusable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file; run `python -m pytest suites/` to write "
                           "results.json, or pass the path of an existing one") from None
    except IsADirectoryError:
        raise ResultsError(f"{path}: is a directory; pass the results.json file inside it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read it ({exc}); check the path and permissions") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column "
                           f"{exc.colno}); the run that wrote it was probably killed mid-write: "
                           "rerun the suite") from None
    validate(payload, source=str(path))
    return payload


def validate(payload, *, source: str = "results") -> dict:
    """Check the top-level shape of a results dict; return it unchanged."""
    if not isinstance(payload, dict):
        raise ResultsError(f"{source}: expected a JSON object at the top level, got "
                           f"{type(payload).__name__}; is this a results.json written by the suite?")
    if "schema" not in payload:
        raise ResultsError(f"{source}: no \"schema\" field; this is not a results.json written "
                           "by the suite (lsuite/results.py)")
    schema = payload["schema"]
    if schema != SCHEMA or isinstance(schema, bool):
        hint = ("upgrade reports/ to a version that reads it"
                if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA
                else "rerun the suite to write a current results.json")
        raise ResultsError(f"{source}: schema {schema!r} is not supported (this renderer reads "
                           f"schema {SCHEMA}); {hint}")
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
