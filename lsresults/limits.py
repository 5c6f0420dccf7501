"""Size limits of a results file, checked before anything reads a field of it.

A results.json written by the suite is far inside every limit below (a run of the whole
suite over the 24 broken drop-ins is about 6 MB, nests 7 levels deep, holds no integer
beyond 12 digits and no string beyond its 20,000-character message cut). Anything past
them is damaged or hostile, and is refused with one line instead of costing memory, time
or a RecursionError in the parser or the renderer. docs/results-schema.md states the numbers.
"""

from __future__ import annotations

import re

MAX_FILE_BYTES = 64 * 1024 * 1024  # 64 MiB: ten times the largest run the suite writes
MAX_DEPTH = 32  # nesting of arrays and objects (the suite's files: 7)
MAX_INT_DIGITS = 20  # an integer literal of more digits than 2**64 has is not a count or a size
MAX_STRING_CHARS = 100_000  # per string or key (messages are cut at 20,000 by the suite)

_INT_BOUND = 10 ** MAX_INT_DIGITS
_SURROGATE = re.compile("[\ud800-\udfff]")  # "\udc80" escapes parse, but no UTF-8 can hold them


class LimitError(ValueError):
    """What is wrong, as a phrase for ResultsError to place after the file's name."""


def parse_int(literal: str) -> int:
    """json.loads' parse_int: refuses long literals before int() is asked to convert them
    (CPython refuses beyond 4,300 digits itself, and anything past ~309 overflows a float)."""
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise LimitError(f"an integer literal of {digits} digits (at most {MAX_INT_DIGITS} are read)")
    return int(literal)


def check(value) -> None:
    """Raise LimitError when a parsed (or in-memory) results value is too deep, holds a too
    long string, a too large integer or a lone surrogate. Iterative: no recursion at all.
    Leaves of other types (a payload built in memory may hold them) are left alone."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels")
            for key, child in item.items():
                _leaf(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            if depth > MAX_DEPTH:
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1) for child in item)
        else:
            _leaf(item)


def _leaf(item) -> None:
    if isinstance(item, str):
        if len(item) > MAX_STRING_CHARS:
            raise LimitError(f"a string of {len(item):,} characters (at most {MAX_STRING_CHARS:,})")
        if _SURROGATE.search(item):
            raise LimitError("a string with a lone surrogate escape (\\ud800-\\udfff), which is not text")
    elif isinstance(item, int) and not isinstance(item, bool):
        if abs(item) >= _INT_BOUND:
            raise LimitError(f"an integer of more than {MAX_INT_DIGITS} digits")


__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_INT_DIGITS", "MAX_STRING_CHARS", "LimitError",
           "check", "parse_int"]
