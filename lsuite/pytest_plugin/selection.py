"""Narrowing a run by data, for a short run on a borrowed machine (scripts/gpu_proof.py):
one device, some records, one point of each benchmark. pytest hooks only.

- `--ls-device cpu|cuda`: checks and benchmarks on the other device are deselected. A check's
  device is its case's, a benchmark's its point's or its `device` parameter; an item that
  names none runs on the CPU (the equivalences, the reference's throughput).
- `--ls-record NAME` (repeatable): the records under test are only these, among those the
  other options chose (`--ls-impl`, `--ls-builtins`, `--ls-ecosystem`); an unknown name is a
  usage error naming the records there are. results.json lists only these.
- `--ls-bench-one`: each benchmark function keeps the first of its points that the other
  selections (`-k`, `--deselect`, `--ls-device`) kept: one point of each kind.
"""

from __future__ import annotations

import pytest

from lsuite.pytest_plugin.stash import COLLECTOR, IMPLS
from lsuite.record.records import DEVICES


def pytest_addoption(parser):
    group = parser.getgroup("ls", "label-smoothing suite")
    group.addoption("--ls-device", choices=DEVICES, default=None,
                    help="run only the checks and benchmarks on this device; the others are "
                         "deselected (default: every device, cuda skipping without a GPU)")
    group.addoption("--ls-record", action="append", default=[], metavar="NAME",
                    help="test only this record (repeatable), among those --ls-impl, "
                         "--ls-builtins and --ls-ecosystem chose (default: all of them)")
    group.addoption("--ls-bench-one", action="store_true",
                    help="keep one point of each benchmark: the first the other selections "
                         "keep (default: off, the whole sweep)")


@pytest.hookimpl(trylast=True)  # after lsuite.pytest_plugin.plugin resolved the records and built the collector
def pytest_configure(config):
    keep = config.getoption("ls_record")
    if not keep or IMPLS not in config.stash:
        return
    impls = config.stash[IMPLS]
    names = [impl.name for impl in impls]
    unknown = [name for name in keep if name not in names]
    if unknown:
        raise pytest.UsageError(f"--ls-record {unknown[0]}: no such record under test "
                                f"(records: {', '.join(names)})")
    config.stash[IMPLS] = tuple(impl for impl in impls if impl.name in keep)
    collector = config.stash.get(COLLECTOR, None)
    if collector is not None:
        collector.environment["impls"] = [
            entry for entry in collector.environment.get("impls", []) if entry.get("name") in keep]


def item_device(item) -> str:
    """The device an item runs on, from its parameters; one that names none (the
    equivalences, the reference's throughput: NumPy and in-process torch) runs on the CPU."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    for key in ("case", "point"):
        device = getattr(params.get(key), "device", None)
        if isinstance(device, str):
            return device
    return params["device"] if isinstance(params.get("device"), str) else "cpu"


def _bench_key(item) -> tuple[str, str] | None:
    if item.get_closest_marker("ls_bench") is None:
        return None
    return str(item.path), item.originalname


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect: "the first they kept"
def pytest_collection_modifyitems(config, items):
    device = config.getoption("ls_device")
    one = config.getoption("ls_bench_one")
    kept, dropped, seen = [], [], set()
    for item in items:
        if device is not None and item_device(item) != device:
            dropped.append(item)
            continue
        key = _bench_key(item) if one else None
        if key is not None and key in seen:
            dropped.append(item)
            continue
        if key is not None:
            seen.add(key)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
