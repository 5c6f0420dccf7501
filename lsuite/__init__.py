"""The suite's harness: implementation records, the built-in catalog, cases, tolerances,
and the pytest plugin that wires them (lsuite.plugin)."""

from .builders import construct, dropin
from .predicates import when
from .records import BuildConfig, Impl, KnownDefect

__all__ = ["BuildConfig", "Impl", "KnownDefect", "construct", "dropin", "when"]
