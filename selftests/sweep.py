"""The thorough self-tests, opt-in: `LS_SELFTEST_SWEEP=1 python -m pytest selftests/` runs
every seed of the seed sweeps, all 20 Ctrl-C moments and the mutant run over every check
(docs/selftests.md). Without it (CI, the README's command) the sweeps run their first
seeds, the first 8 moments, and the mutant run the checks named for the mutants: each test
still fails on the bug it exists for."""

from __future__ import annotations

import os

import pytest

SWEEP = os.environ.get("LS_SELFTEST_SWEEP") == "1"
REASON = "one seed of the full sweep: LS_SELFTEST_SWEEP=1 runs it (docs/selftests.md)"


def seeds(every: tuple[int, ...], quick: tuple[int, ...]) -> list:
    """`every` as parameters; those outside `quick` skip, with the reason, unless SWEEP."""
    return [seed if SWEEP or seed in quick else pytest.param(seed, marks=pytest.mark.skip(reason=REASON))
            for seed in every]
