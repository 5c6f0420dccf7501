"""Turn an --ls-impl SPEC into an Impl record.

SPEC is `package.module:attr` or `path/to/file.py:attr`. `attr` is either an `Impl`
record, or a drop-in for `torch.nn.CrossEntropyLoss`: a class or factory taking (some of)
the keyword arguments label_smoothing, weight, ignore_index, reduction, whose instances
are called as `module(input, target)`. A drop-in is held to PyTorch's semantics
(docs/specification.md §4) for the keyword arguments its signature accepts.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import sys
from pathlib import Path

from lsuite.record.builders import SpecError, accepted_kwargs, dropin
from lsuite.record.predicate import Predicate
from lsuite.record.records import Impl, KnownDefect


def _import(spec: str):
    if ":" not in spec:
        raise SpecError(f"--ls-impl {spec!r}: expected MODULE:ATTR or path/to/file.py:ATTR")
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise SpecError(f"--ls-impl {spec!r}: expected MODULE:ATTR or path/to/file.py:ATTR")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise SpecError(f"--ls-impl {spec!r}: no file {where}")
            name = "ls_plugin_" + re.sub(r"\W", "_", str(path.resolve()))
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except SpecError:
        raise
    except Exception as exc:
        raise SpecError(f"--ls-impl {spec!r}: importing {where} raised {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SpecError(f"--ls-impl {spec!r}: {where} has no attribute {attr!r}") from None


def drop_in_record(factory, name: str, spec: str) -> Impl:
    accepted = accepted_kwargs(factory, spec)
    if "label_smoothing" not in accepted:
        raise SpecError(f"--ls-impl {spec!r}: a drop-in must accept the keyword argument label_smoothing=")
    return dropin(factory, name=name, accepted=accepted, origin=spec)


def _unique(record: Impl, taken) -> Impl:
    name, n = record.name, 2
    while name in taken:
        name, n = f"{record.name}_{n}", n + 1
    return dataclasses.replace(record, name=name) if name != record.name else record


def in_its_worker(cfg):
    raise RuntimeError("this implementation is built and called only in its worker process "
                       "(lsuite/running/worker.py); the judge holds its claims, not its code")


def load_isolated(spec: str, pool, taken: set[str] = frozenset()) -> Impl:
    """The record for one SPEC, loaded in the implementation's own worker process: the
    judge's process never imports the implementation's module (its import-time side effects
    stay there). Its known defects' predicates are evaluated there too."""
    fields = pool.describe(spec)
    defects = tuple(
        KnownDefect(d["reason"], checks=d["checks"], kinds=d["kinds"],
                    when=None if d["when"] is None else _remote_predicate(pool, spec, i, d["when"]))
        for i, d in enumerate(fields.pop("known_defects")))
    try:
        record = Impl(**fields, build=in_its_worker, known_defects=defects)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"--ls-impl {spec!r}: its record does not describe itself: {exc}") from None
    return _unique(record, taken)


def _remote_predicate(pool, spec: str, index: int, text: str) -> Predicate:
    cache: dict = {}

    def test(case) -> bool:
        if case not in cache:
            cache[case] = pool.when(spec, index, case)
        return cache[case]
    return Predicate(test, text)


def load(spec: str, taken: set[str] = frozenset()) -> Impl:
    """The record for one SPEC, imported in this process; raises SpecError with a one-line
    message. (The suite itself uses `load_isolated` unless --ls-inprocess.)"""
    obj = _import(spec)
    attr = spec.rpartition(":")[2]
    if isinstance(obj, Impl):
        record = dataclasses.replace(obj, origin=spec)
    elif callable(obj):
        record = drop_in_record(obj, re.sub(r"\W", "_", attr), spec)
    else:
        raise SpecError(
            f"--ls-impl {spec!r}: {attr} is a {type(obj).__name__}; expected an lsuite.Impl "
            "record or a class/factory taking label_smoothing=, weight=, ignore_index=, reduction=")
    return _unique(record, taken)
