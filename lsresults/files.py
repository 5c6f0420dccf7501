"""The one atomic file writer of the project: results.json (lsuite/pytest_plugin/results.py through
`write_results`, and `python -m reports merge`) and report.html (reports/render.py) both
go through `write_atomic`.

The text goes to a new temporary file in the target's directory, which is then renamed
over the target, so a reader sees the old file or the new one, never half of one. The
temporary file is created with mode 0o666 minus the process umask, exactly like a file
opened with `open(path, "w")` (typically 0644: the results and the report are meant to
be shared), not mkstemp's 0600. On any failure the temporary file is removed and the
previous target is left untouched.

When the target cannot be written at all (an implementation replaced it by a directory,
its folder by a file, or took the permission away), `write_or_beside` writes the same
text beside it under another name (or, failing that, in the system's temporary folder)
and returns a one-line note saying where: nothing measured is lost.

`write_results` is the one serialisation of a results payload; it returns the sha256 of
the exact bytes written, which the report records (`<meta name="ls-results-sha256">`) so
that `python -m reports verify` can tell whether results.json was changed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MODE = 0o666  # before the umask, as for any normally created file


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """A new, exclusively created temporary file beside the target: (fd, path)."""
    for _ in range(100):
        tmp = directory / f".{name}-{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: could not create a unique temporary file for {name}")


def write_atomic(path: str | os.PathLike, text: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write `text` (or bytes) to `path` atomically (creating its directory); return the path."""
    path = Path(path)
    data = text if isinstance(text, bytes) else text.encode(encoding)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_or_beside(path: str | os.PathLike, write: Callable[[Path], object]) -> tuple[Path, str | None]:
    """Call `write(path)`; if the target cannot be written (OSError: a directory in its
    place, its folder replaced by a file, no permission), call `write` on a new name beside
    it, then in the system's temporary folder. Returns (the path written, None) or (the
    other path, a one-line note naming the target, why it failed and where the text went).
    Re-raises the first error when no place takes the file."""
    path = Path(path)
    try:
        write(path)
        return path, None
    except OSError as exc:
        first = exc
    stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    for other in (path.with_name(f"{path.stem}-{stamp}{path.suffix}"),
                  Path(tempfile.gettempdir()) / f"ls-{stamp}-{path.name}"):
        try:
            write(other)
        except OSError:
            continue
        why = f"{type(first).__name__}: {first.strerror or first}"
        return other, f"{path} could not be written ({why}); wrote {other} instead"
    raise first


def results_bytes(payload: dict) -> bytes:
    """results.json's exact bytes for a payload (NaN and inf kept as JSON's usual literals;
    a value JSON cannot hold is written as its str())."""
    return json.dumps(payload, indent=1, allow_nan=True, default=str).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_results(payload: dict, path: str | os.PathLike) -> str:
    """Write results.json atomically; return the sha256 (hex) of the bytes written."""
    data = results_bytes(payload)
    write_atomic(path, data)
    return sha256_hex(data)


__all__ = ["results_bytes", "sha256_hex", "write_atomic", "write_or_beside", "write_results"]
