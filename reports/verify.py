"""Does a report.html stand for the results.json beside it?

A report rendered from a results file records the sha256 of that file's exact bytes as
`<meta name="ls-results-sha256" content="...">` in its <head> (reports/render.py). `verify`
hashes the results file and compares. It detects a results.json rewritten, re-serialised
or truncated after the report was made (or a report from another run); it is an integrity
check, not a signature: whoever can rewrite both files can make them agree.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from lsresults.load import ResultsError

META = re.compile(rb'<meta name="ls-results-sha256" content="([0-9a-f]{64})">')
HEAD_BYTES = 64 * 1024  # the meta tag is among the first lines of <head>; no need to read further


def recorded_digest(report: Path) -> str:
    """The digest the report recorded; ResultsError when it cannot be read or has none."""
    try:
        with report.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except IsADirectoryError:
        raise ResultsError(f"{report}: is a directory; pass the report.html file") from None
    except OSError as exc:
        raise ResultsError(f"{report}: cannot read it ({exc.strerror or exc})") from None
    found = META.findall(head)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ResultsError(f"{report}: {what} <meta name=\"ls-results-sha256\"> in its head; it was rendered "
                           "without a results digest (an older report, or by write_report without "
                           "results_sha256): re-render it with `python -m reports build`")
    return found[0].decode("ascii")


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks (any size)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except IsADirectoryError:
        raise ResultsError(f"{path}: is a directory; pass the results.json file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return digest.hexdigest()


def paths(first: str | os.PathLike, second: str | os.PathLike | None) -> tuple[Path, Path]:
    """(results.json, report.html) from `DIR` or `RESULTS.json REPORT.html`."""
    first = Path(first)
    if second is not None:
        return first, Path(second)
    if not first.is_dir():
        raise ResultsError(f"{first}: not a directory; pass DIR (holding results.json and report.html) "
                           "or RESULTS.json REPORT.html")
    return first / "results.json", first / "report.html"


def verify(results: Path, report: Path) -> str:
    """A one-line confirmation when the report's digest matches; ResultsError otherwise."""
    recorded = recorded_digest(report)
    actual = file_digest(results)
    if actual != recorded:
        raise ResultsError(f"{results}: sha256 {actual[:16]}… differs from {recorded[:16]}… recorded in "
                           f"{report}: results.json was changed after the report was rendered (or the "
                           "report is from another run); rerun the suite or re-render the report")
    return f"{report}: matches {results} (sha256 {actual})"


__all__ = ["META", "file_digest", "paths", "recorded_digest", "verify"]
