"""Command line: render, compare, merge and verify saved results.

    python -m reports build RESULTS.json [-o OUT.html]
    python -m reports compare BASELINE.json RESULTS.json [-o OUT.html]
    python -m reports merge A/results.json B/results.json [...] -o DIR [--force]
    python -m reports verify DIR | RESULTS.json REPORT.html

Exit 0 on success (what was written or verified on stdout), 2 on any unusable input,
unwritable output, refused merge or failed verification, with one line on stderr. The exit
code says whether the files were written (or match), never whether the implementations
conform (that gate is pytest's exit code).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lsresults import limits
from lsresults.files import results_bytes, sha256_hex, write_atomic
from lsresults.load import ResultsError, load_results, read_results, validate
from lsresults.text import one_line

from .compare import compare, suite_version

PROG = "python -m reports"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage text would be several lines
        raise ResultsError(f"{message} (see `{PROG} {self.prog.split()[-1]} --help`)"
                           if self.prog != PROG else f"{message} (see `{PROG} --help`)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Render, compare, merge and verify the suite's results.json.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{build,compare,merge,verify}",
                                parser_class=_Parser)
    build = sub.add_parser("build", help="render one results.json")
    build.add_argument("results", metavar="RESULTS.json")
    build.add_argument("-o", "--output", metavar="OUT.html",
                       help="where to write the report (default: report.html beside RESULTS.json)")
    comp = sub.add_parser("compare", help="render results.json with a regression section against a baseline")
    comp.add_argument("baseline", metavar="BASELINE.json")
    comp.add_argument("results", metavar="RESULTS.json")
    comp.add_argument("-o", "--output", metavar="OUT.html",
                      help="where to write the report (default: compare.html beside RESULTS.json)")
    merge = sub.add_parser("merge", help="merge runs of one commit into DIR/results.json and DIR/report.html")
    merge.add_argument("inputs", metavar="RESULTS.json", nargs="+")
    merge.add_argument("-o", "--output", metavar="DIR", required=True, help="directory to write both files into")
    merge.add_argument("--force", action="store_true",
                       help="merge runs of different suite commits (the merged environment records it)")
    verify = sub.add_parser("verify", help="check that a report's recorded digest matches its results.json")
    verify.add_argument("first", metavar="DIR|RESULTS.json")
    verify.add_argument("second", metavar="REPORT.html", nargs="?")
    return parser


def _render(results: dict, out: Path, **kwargs) -> Path:
    from .render import write_report  # Jinja2 and matplotlib only when rendering

    return write_report(results, out, **kwargs)


def _build(args) -> list[str]:
    results, digest = read_results(args.results)
    out = Path(args.output) if args.output else Path(args.results).parent / "report.html"
    return [str(_render(results, out, results_sha256=digest))]


def _compare(args) -> list[str]:
    baseline = load_results(args.baseline)
    results, digest = read_results(args.results)
    regression = compare(baseline, results)
    if regression.nothing_matched:
        raise ResultsError(f"{args.baseline}: none of its {len(regression.removed)} checks matches a check "
                           f"of {args.results} (same implementation, check and case): not a baseline of these "
                           "checks; compare runs of the same implementations")
    out = Path(args.output) if args.output else Path(args.results).parent / "compare.html"
    return [f"baseline: suite {suite_version(regression.baseline_env)}; this run: suite "
            f"{suite_version(regression.current_env)}",
            regression.headline(),
            str(_render(results, out, baseline=baseline, results_sha256=digest))]


def _merge(args) -> list[str]:
    from .merge import WORST_LAST, merge
    from .render import render_html

    merged = merge([(path, load_results(path)) for path in args.inputs], force=args.force)
    data = results_bytes(merged)
    if len(data) > limits.MAX_FILE_BYTES:
        raise ResultsError(f"the merged results would be {len(data):,} bytes, over the "
                           f"{limits.MAX_FILE_BYTES:,}-byte limit of a results.json; merge fewer files")
    validate(merged, source="merged results")
    html = render_html(merged, results_sha256=sha256_hex(data))  # before writing anything
    out = Path(args.output)
    lines = [str(write_atomic(out / "results.json", data)), str(write_atomic(out / "report.html", html))]
    info = merged["environment"]["merge"]
    if info["overlapping_checks"]:
        n = info["overlapping_checks"]
        lines.append(f"note: {n} check{' was' if n == 1 else 's were'} in several inputs; each kept its "
                     f"worst outcome ({' < '.join(WORST_LAST)}); each input's is in its merged_outcomes")
    if info["forced"]:
        lines.append("note: forced: the inputs differ in " + ", ".join(d["field"] for d in info["differences"]))
    return lines


def _verify(args) -> list[str]:
    from .verify import paths, verify

    return [verify(*paths(args.first, args.second))]


COMMANDS = {"build": _build, "compare": _compare, "merge": _merge, "verify": _verify}


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        lines = COMMANDS[args.command](args)
    except ResultsError as exc:
        return _fail(str(exc))
    except OSError as exc:
        target = exc.filename2 or exc.filename  # os.replace(temporary, target): name the target
        where = f"{target}: " if target else ""
        return _fail(f"cannot write the output: {where}{exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - a bug in reports/ still gets one line, never a traceback
        return _fail(f"internal error ({type(exc).__name__}: {exc}); this is a bug in reports/, please report it")
    for line in lines:
        print(line)
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {one_line(message)}"[:2000], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
