"""The one atomic file writer of the project: results.json (lsuite/results.py) and
report.html (reports/render.py) both go through `write_atomic`.

The text goes to a new temporary file in the target's directory, which is then renamed
over the target, so a reader sees the old file or the new one, never half of one. The
temporary file is created with mode 0o666 minus the process umask, exactly like a file
opened with `open(path, "w")` (typically 0644: the results and the report are meant to
be shared), not mkstemp's 0600. On any failure the temporary file is removed and the
previous target is left untouched.
"""

from __future__ import annotations

import os
import secrets
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


def write_atomic(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (creating its directory); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


__all__ = ["write_atomic"]
