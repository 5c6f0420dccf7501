"""Text written into a results.json, a terminal or an error line: the one copy of each
cleaner, and the one shell command that reruns a check (its `repro`)."""

from __future__ import annotations

import shlex

MESSAGE_CHARS = 20_000  # a message longer than this is cut, and the cut is said


def clean_text(text: str) -> str:
    """Text safe for a terminal, JSON and HTML: control characters (ANSI escapes, NUL, ...)
    and lone surrogates written as escapes; newlines and tabs kept."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def safe_text(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Text any JSON or HTML writer accepts: lone surrogates escaped, cut to `limit`."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        text = text[:limit] + f"\n[... cut: {len(text) - limit} more characters]"
    return text


def one_line(text) -> str:
    """Every run of whitespace (newlines included) as one space: a message for one line."""
    return " ".join(str(text).split())


def repro(nodeid: str, impl_origin: str | None = None) -> str:
    """A shell command that reruns one check (every argument quoted for the shell) into a
    fresh report directory; `impl_origin`: the --ls-impl source of an implementation that is
    not built in."""
    extra = "" if impl_origin is None else f" --ls-impl {shlex.quote(impl_origin)}"
    return f'python -m pytest {shlex.quote(nodeid)}{extra} --ls-report-dir "$(mktemp -d)"'


__all__ = ["MESSAGE_CHARS", "clean_text", "one_line", "repro", "safe_text"]
