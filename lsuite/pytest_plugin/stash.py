"""What the suite's pytest plugins keep on the config (`config.stash`), named once for all of
them: the records under test, the worker pool, the collector of outcomes, the CUDA state, the
paths written and the baseline."""

from __future__ import annotations

import pytest

from lsuite.pytest_plugin import results

IMPLS = pytest.StashKey[tuple]()  # the records under test (plugin._resolve)
POOL = pytest.StashKey[object]()  # the worker pool (lsuite/running/worker.py Pool)
COLLECTOR = pytest.StashKey[results.Collector]()  # every check's outcome, for results.json
CUDA = pytest.StashKey[dict]()  # torch.cuda's state at the start
REPORTS = pytest.StashKey[list]()  # the paths written (or why not), for the terminal
BASELINE = pytest.StashKey[object]()  # --ls-baseline's results, loaded once
