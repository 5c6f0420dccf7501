"""The run's end and its interruptions: every report collected (also from xdist workers),
results.json and report.html written once (beside their target when it cannot be written;
a Ctrl-C held while writing), the paths said on the terminal, and one Ctrl-C that always
stops the run."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import pytest

from lsresults.files import write_or_beside
from lsresults.text import clean_text
from lsuite.pytest_plugin import results
from lsuite.pytest_plugin.stash import BASELINE, COLLECTOR, REPORTS


class Interrupt:
    """Ctrl-C, remembered. Python delivers SIGINT as a KeyboardInterrupt wherever the main
    thread happens to be, and one raised inside a garbage-collector callback or a __del__ is
    swallowed (printed as an "unraisable" warning) and the run goes on. So the handler also
    sets a flag that every check's start and every worker call checks: one Ctrl-C always
    stops the run."""

    seen = False

    @classmethod
    def handler(cls, signum, frame):
        cls.seen = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls):
        if cls.seen:
            raise KeyboardInterrupt


def drop_lineless_frames(exc: BaseException) -> None:
    """Unlink the traceback entries without a line number from `exc` and the exceptions it
    chains. A Ctrl-C can land on an instruction that has none (Python 3.11+: the cleanup
    of an exception handler), and pytest's report of the KeyboardInterrupt then fails
    (TracebackEntry.lineno: None - 1): a TypeError and exit status 1 instead of 2."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            if tb.tb_next.tb_lineno is None:
                tb.tb_next = tb.tb_next.tb_next
            else:
                tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__


def install_interrupt() -> None:
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, Interrupt.handler)
    except ValueError:  # not the main thread (an embedding runner): leave Ctrl-C as it is
        pass


class Sink:
    """The controller-side receiver of reports (a plugin object, so it sees its config).
    The run is complete when every collected test reached its teardown (what actually ran,
    not the exit status) and it was not interrupted."""

    def __init__(self, config):
        self.config = config
        self.expected: set[str] | None = None
        self.finished: set[str] = set()

    def pytest_collection_finish(self, session):
        if not hasattr(self.config, "workerinput") and self.expected is None:
            self.expected = {item.nodeid for item in session.items}

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self.expected = set(ids) if self.expected is None else self.expected | set(ids)

    def pytest_runtest_logreport(self, report):
        self.config.stash[COLLECTOR].add(report)
        if report.when == "teardown":
            self.finished.add(report.nodeid)

    def pytest_sessionfinish(self, session, exitstatus):
        stopped = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        complete = not stopped and self.expected is not None and self.expected <= self.finished
        with deferred_sigint() as late:  # a Ctrl-C now must not cut the files short
            self.config.stash[REPORTS] = write_outputs(self.config, complete)
        if late:
            self.config.stash[REPORTS].append("(a Ctrl-C arrived while writing: ignored until "
                                              "both files were written)")

    def pytest_terminal_summary(self, terminalreporter):
        paths = self.config.stash.get(REPORTS, None)
        if not paths:
            return
        terminalreporter.write_sep("-", "label-smoothing suite")
        checks = self.config.stash[COLLECTOR].checks.values()
        for impl, verdict in results.verdicts([dict(c, outcome=c["outcome"] or "error")
                                               for c in checks]).items():
            terminalreporter.write_line(f"ls: {clean_text(impl)}: {verdict}")
        for path in paths:  # "(...)": a file not written where asked, and why
            terminalreporter.write_line(f"ls: {path}" if path.startswith("(") else f"ls: wrote {path}")


@contextlib.contextmanager
def deferred_sigint():
    """Hold SIGINT while the files are written; yields a list that is non-empty if one came."""
    came: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    except ValueError:  # not the main thread: nothing to defer
        yield came
        return
    try:
        yield came
    finally:
        signal.signal(signal.SIGINT, previous)


def write_outputs(config, complete: bool) -> list[str]:
    collector = config.stash[COLLECTOR]
    if not collector.checks and not collector.benchmarks:
        return []
    out_dir = Path(config.getoption("ls_report_dir"))
    if not out_dir.is_absolute():
        out_dir = Path(str(config.invocation_params.dir)) / out_dir
    payload, digest = collector.payload(complete), []
    # a target that cannot be written is written beside it, said in one line (lsresults.files)
    path, note = write_or_beside(out_dir / "results.json",
                                 lambda at: digest.append(results.write_json(payload, at)))
    written = [f"({note})" if note else str(path)]
    try:
        import reports
    except ImportError as exc:  # the suite's verdict never depends on rendering
        return written + [f"(no report.html: cannot import reports: {exc})"]
    try:
        path, note = write_or_beside(out_dir / "report.html", lambda at: reports.write_report(
            payload, at, baseline=config.stash[BASELINE], results_sha256=digest[-1]))
        written.append(f"({note})" if note else str(path))
    except Exception as exc:  # report rendering must not lose the results
        written.append(f"(report.html not written: {type(exc).__name__}: {exc})")
    return written
