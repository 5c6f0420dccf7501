"""`--ls-require-checked`: fail the gate when an implementation under test had nothing
checked (lsuite/pytest_plugin/unchecked.py), and say so on the terminal whether or not it is given."""

from __future__ import annotations

import pytest

from lsuite.pytest_plugin import unchecked
from lsuite.pytest_plugin.stash import COLLECTOR
from lsuite.running.runner import clean_text


def pytest_addoption(parser):
    parser.getgroup("ls").addoption(
        "--ls-require-checked", action="store_true",
        help="fail the gate when an implementation under test had nothing checked (every "
             "check skipped, e.g. a CUDA-only one without CUDA) (default: off: it is reported "
             "as 'not checked' and the gate passes)")


def _missing(config) -> dict[str, str]:
    collector = config.stash.get(COLLECTOR, None)
    return {} if collector is None else unchecked.not_checked(list(collector.checks.values()))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if config.getoption("ls_require_checked") and _missing(config) \
            and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    missing = _missing(config)
    required = config.getoption("ls_require_checked")
    for impl, why in missing.items():
        gate = "fails the gate (--ls-require-checked)" if required else \
            "the gate passes; --ls-require-checked fails it"
        terminalreporter.write_line(f"ls: NOTHING CHECKED for {clean_text(impl)}: {clean_text(why)}; "
                                    f"{gate}", red=required, yellow=not required)
