"""Command line: render a saved results.json, optionally against a baseline.

    python -m reports build RESULTS.json -o OUT.html
    python -m reports compare BASELINE.json RESULTS.json -o OUT.html

Exit 0 on success (the report's path on stdout), 2 on any unusable input or unwritable
output, with one line on stderr. The exit code says whether a report was written, never
whether the implementations conform (that gate is pytest's exit code).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .load import ResultsError, load_results
from .render import write_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports",
                                     description="Render the suite's results.json as a self-contained HTML report.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{build,compare}")
    build = sub.add_parser("build", help="render one results.json")
    build.add_argument("results", metavar="RESULTS.json")
    build.add_argument("-o", "--output", metavar="OUT.html",
                       help="where to write the report (default: report.html beside RESULTS.json)")
    comp = sub.add_parser("compare", help="render results.json with a regression section against a baseline")
    comp.add_argument("baseline", metavar="BASELINE.json")
    comp.add_argument("results", metavar="RESULTS.json")
    comp.add_argument("-o", "--output", metavar="OUT.html",
                      help="where to write the report (default: compare.html beside RESULTS.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        baseline = load_results(args.baseline) if args.command == "compare" else None
        results = load_results(args.results)
        default = "report.html" if args.command == "build" else "compare.html"
        out = Path(args.output) if args.output else Path(args.results).parent / default
        written = write_report(results, out, baseline=baseline)
    except ResultsError as exc:
        print(f"python -m reports: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"python -m reports: error: cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
