"""How a Triton record runs on this machine: natively on CUDA; without a GPU under the Triton
interpreter, which the suite turns on itself before any kernel is defined (`prepare_triton`),
on cases of at most INTERPRETED_MAX_ELEMENTS logits (`skip_reason`), with the support fields
and dtypes the interpreter cannot run turned off (`as_run_here`)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

from lsuite.catalogs import triton_typing
from lsuite.catalogs.peer_loading import INSTALL, INTERPRETED_MAX_ELEMENTS, missing
from lsuite.inputs.cases import shapes
from lsuite.record.records import DTYPES, Impl


def prepare_triton(cuda_available: bool) -> str | None:
    """Set TRITON_INTERPRET=1 when Triton is installed and there is no GPU, before any Triton
    kernel is defined (triton.jit reads it at decoration). Returns what to say in the report."""
    if cuda_available or importlib.util.find_spec("triton") is None:
        return None
    if os.environ.get("TRITON_INTERPRET") == "1":
        return (f"TRITON_INTERPRET=1 (set before the run): Triton kernels run interpreted on the CPU, on cases "
                f"of at most {INTERPRETED_MAX_ELEMENTS} logits; {triton_typing.NOTE}")
    if os.environ.get("TRITON_INTERPRET"):
        return f"TRITON_INTERPRET={os.environ['TRITON_INTERPRET']!r} left as set: Triton records run only where that works"
    os.environ["TRITON_INTERPRET"] = "1"
    return (f"TRITON_INTERPRET=1 set by the suite (no CUDA device): Triton kernels run interpreted "
            f"on the CPU, on cases of at most {INTERPRETED_MAX_ELEMENTS} logits; {triton_typing.NOTE}")


# An interpreted kernel at the size cap takes 10-40 s on one core of the 2-core machine, and
# passed 60 s (the default --ls-timeout) at load 6-10 (flash-attn's and fla's kernels on
# 4099 rows): interpreted Triton records get three times the limit.
INTERPRETED_TIME_FACTOR = 3.0


def as_run_here(impl: Impl) -> Impl:
    """The record as this machine runs it: under the Triton interpreter, its time limit is
    INTERPRETED_TIME_FACTOR times longer, the support fields it names in `interpreter_cannot`
    are off and the dtypes it names there dropped (said in its description)."""
    if not (impl.triton and interpreted()):
        return impl
    impl = dataclasses.replace(impl, time_factor=max(impl.time_factor, INTERPRETED_TIME_FACTOR))
    if not impl.interpreter_cannot:
        return impl
    off = ", ".join(impl.interpreter_cannot)
    dtypes = tuple(d for d in impl.dtypes if d not in impl.interpreter_cannot)
    return dataclasses.replace(
        impl, **{f: False for f in impl.interpreter_cannot if f not in DTYPES},
        dtypes=dtypes or impl.dtypes,
        description=f"{impl.description} [interpreted: {off} not checked; they run natively on CUDA]")


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _elements(case) -> int:
    size = 1
    for n in shapes(case)[0]:
        size *= n
    return size


def skip_reason(impl: Impl, case, cuda_available: bool, kind: str = "reference") -> str | None:
    """Why a generated check of this record skips here (None: it runs)."""
    absent = missing(impl)
    if absent:
        return f"{impl.name} needs {', '.join(absent)}, not installed: {INSTALL}"
    if kind not in impl.check_kinds:
        return f"{impl.name} runs {', '.join(impl.check_kinds)} checks only: {impl.check_kinds_reason}"
    if not impl.triton:
        return None
    if interpreted():
        if _elements(case) > INTERPRETED_MAX_ELEMENTS:
            return (f"interpreted Triton: {_elements(case)} logits is over the interpreted cap of "
                    f"{INTERPRETED_MAX_ELEMENTS} (N x K); runs natively on CUDA")
        return None
    if case.device == "cpu":
        why = "a CUDA device is present" if cuda_available else "TRITON_INTERPRET is not 1"
        return f"Triton kernels run on the CPU only under TRITON_INTERPRET=1 ({why}: runs natively on cuda)"
    return None
