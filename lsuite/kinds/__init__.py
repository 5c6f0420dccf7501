"""The input kinds: one module per kind (logits, hidden states, vocab-parallel shards),
each a declared `Kind` (lsuite/kinds/kind.py) holding everything kind-specific. The runner,
the reference check, the invariants, the argument checks and the benchmarks' inputs are
written once for every kind. Imports judging's measures, running and below; the checks and
the benchmarks import it."""

from __future__ import annotations

from lsuite.inputs.cases import supports as common_support
from lsuite.kinds.hidden_states import HIDDEN_STATES
from lsuite.kinds.kind import KIND_AXES, Kind, Leaf, grad_name
from lsuite.kinds.logits import LOGITS
from lsuite.kinds.vocab_parallel import VOCAB_PARALLEL

BUILTIN = (LOGITS, HIDDEN_STATES, VOCAB_PARALLEL)
_BY_INPUT = {name: kind for kind in BUILTIN for name in kind.serves}

__all__ = ["BUILTIN", "HIDDEN_STATES", "KIND_AXES", "LOGITS", "VOCAB_PARALLEL", "Kind", "Leaf",
           "grad_name", "kind_of", "supports"]


def kind_of(impl) -> Kind:
    """The record's input kind: its own `kind`, else the one of this package serving its `input`."""
    return impl.kind if impl.kind is not None else _BY_INPUT[impl.input]


def supports(impl, case) -> str | None:
    """None if the record claims the case (lsuite/inputs/cases.py's rules, then its kind's:
    an axis only other kinds vary stays at its default), else why not."""
    if (why := common_support(impl, case)) is not None:
        return why
    kind = kind_of(impl)
    for axis, default in KIND_AXES.items():
        if axis not in kind.axes and getattr(case, axis) != default:
            return f"{axis}={getattr(case, axis)!r} (an axis of other input kinds, not of {kind.name})"
    return None if kind.why_not is None else kind.why_not(impl, case)
