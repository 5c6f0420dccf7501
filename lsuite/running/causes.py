"""What failed, as data: the structured cause a failed check records beside its message.

A message embeds the case's numbers ("out.shape=(4, 3), but should be (4,)"), so two
failures of one bug never share a message. A cause names what failed without them: the
kind of difference (`KINDS`), the compared quantity, for a raised exception its type and
the line of the implementation's own code that raised it (with the frames outside the
suite), and the numbers in `data`. reports/causes.py groups checks by cause into findings.

Causes travel on the exception (`CheckFailed.causes`, a list of plain dicts), across the
worker's pipe on the failure's text (`Explained`), and into results.json through the
check's user_properties (lsuite/pytest_plugin/results.py).
"""

from __future__ import annotations

import importlib.util
import sysconfig
import traceback
from pathlib import Path

# The kinds of difference, most fundamental first (a finding is named by its first part).
KINDS = ("raised", "crashed", "timeout", "not_run", "not_a_tensor", "wrong_shape",
         "no_gradient", "mutated_input", "nan_inf_pattern", "over_budget", "wrong_dtype",
         "wrong_device", "failed")
# The folder holding the suite's packages (this file is lsuite/running/causes.py).
SUITE_DIRS = tuple(str(Path(__file__).resolve().parents[2] / d) for d in
                   ("lsuite", "reference", "suites", "lsuite_checks"))
FRAMES_KEPT = 12  # the innermost frames of the implementation's traceback that are recorded
CODE_CHARS = 200  # a frame's source line is cut to this


class Explained(str):
    """A failure's text carrying its causes: what a worker sends back instead of a str, so
    the parent's `ctx.fail(text)` raises with the causes found in the worker."""

    causes: list[dict]

    def __new__(cls, text: str, causes: list[dict] | None = None):
        self = super().__new__(cls, text)
        self.causes = list(causes or ())
        return self


def part(kind: str, quantity: str, detail: str = "", **data) -> dict:
    """One cause: `kind` (KINDS), the compared `quantity` ("out", "value", "grad", ...), a
    one-line `detail` with the specifics, and plain-number `data`."""
    return {"kind": kind, "quantity": quantity, "detail": detail,
            "data": {k: _plain(v) for k, v in data.items() if v is not None}}


def _plain(value):
    """JSON- and execnet-safe: NumPy scalars become Python numbers, lists stay lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or type(value) in (bool, int, float, str):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def wrong_shape(quantity: str, actual, expected) -> dict:
    actual, expected = tuple(int(n) for n in actual), tuple(int(n) for n in expected)
    relation = _shape_relation(actual, expected)
    return part("wrong_shape", quantity, f"{quantity}.shape={actual}, expected {expected}",
                actual=list(actual), expected=list(expected), relation=relation)


def _shape_relation(actual: tuple, expected: tuple) -> str:
    """What distinguishes the shapes, without their sizes (the grouping key's part)."""
    if len(actual) == len(expected) + 1:
        return "one extra dimension"
    if len(actual) + 1 == len(expected):
        return "one dimension missing"
    if len(actual) != len(expected):
        return f"{len(actual)} dimensions instead of {len(expected)}"
    return "sizes differ"


def raised(exc: BaseException, during: str) -> dict:
    """An exception the implementation raised: its type, where its own code raised it, and
    the frames outside the suite (innermost last)."""
    frames = own_frames(exc)
    site = _site(frames)
    where = f" at {site['file']}:{site['line']}" if site else ""
    return {**part("raised", during, f"{during} raised {type(exc).__name__}{where}",
                   exception=type(exc).__name__),
            "site": None if site is None else f"{site['file']}:{site['line']}",
            "traceback": frames}


def own_frames(exc: BaseException) -> list[dict]:
    """The traceback's frames outside the suite's own code, innermost last; `own`: the
    frame is neither the standard library's nor torch's (the implementation's code)."""
    out = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = str(Path(frame.filename).resolve()) if frame.filename else ""
        if path.startswith(SUITE_DIRS):
            continue
        code = (frame.line or "").strip()[:CODE_CHARS]
        out.append({"file": frame.filename, "line": frame.lineno, "function": frame.name,
                    "code": code, "own": not path.startswith(_LIBRARY_DIRS)})
    return out[-FRAMES_KEPT:]


def _library_dirs() -> tuple[str, ...]:
    """The standard library's and torch's directories (torch found, not imported)."""
    spec = importlib.util.find_spec("torch")
    torch_dir = None if spec is None or not spec.origin else str(Path(spec.origin).parent)
    dirs = [sysconfig.get_paths().get("stdlib"), torch_dir]
    return tuple(str(Path(d).resolve()) for d in dirs if d)


_LIBRARY_DIRS = _library_dirs()


def _site(frames: list[dict]) -> dict | None:
    """The innermost frame of the implementation's own code, else the innermost frame."""
    own = [f for f in frames if f["own"]]
    return (own or frames or [None])[-1]


def format_traceback(frames: list[dict]) -> str:
    """The frames as Python prints a traceback (innermost last)."""
    lines = []
    for f in frames:
        lines.append(f'  File "{f["file"]}", line {f["line"]}, in {f["function"]}')
        if f.get("code"):
            lines.append(f"    {f['code']}")
    return "\n".join(lines)


def of(exc: BaseException) -> list[dict]:
    """The causes an exception carries: its own, or those of a group's members (Hypothesis
    raises an ExceptionGroup when it finds several distinct failures)."""
    found = getattr(exc, "causes", None)
    if found:
        return list(found)
    out = []
    for inner in getattr(exc, "exceptions", None) or ():
        out += [c for c in of(inner) if c not in out]
    return out


def of_texts(texts) -> list[dict]:
    """The causes carried by failure texts (Explained), in order, each once."""
    out = []
    for text in texts:
        out += [c for c in getattr(text, "causes", ()) if c not in out]
    return out
