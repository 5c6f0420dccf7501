"""The suite's harness: implementation records, the built-in catalog, cases, tolerances,
and the pytest plugin that wires them (lsuite.pytest_plugin.plugin)."""

from lsuite.inputs.predicates import when
from lsuite.record.builders import construct, dropin
from lsuite.record.records import BuildConfig, Impl, KnownDefect

__all__ = ["BuildConfig", "Impl", "KnownDefect", "construct", "dropin", "when"]
