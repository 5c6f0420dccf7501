"""Hypothesis settings profiles for the suite, registered once at import, chosen with
Hypothesis's own `--hypothesis-profile NAME`:

- `default`: fast, randomised; the seed is drawn here when `--hypothesis-seed` is not given,
  so every run names the seed that repeats it (report header, results.json environment);
- `ci`: derandomised (the same examples on every run and every xdist worker), no deadline,
  no example database, failure blobs printed;
- `thorough`: many examples, no deadline, for a long local hunt.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, Phase, settings

# The checks take the per-check `ls_context` fixture, constant over a test's examples by
# design; and building a torch module per example is slow next to Hypothesis's own budget.
_SUPPRESS = (HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
             HealthCheck.data_too_large)
# Phase.explain (which parts of a shrunk failure could vary) re-runs the failing example
# many times: measured 5 s of a 6 s declared-defect check; the shrunk inputs are printed anyway.
_PHASES = tuple(p for p in Phase if p is not Phase.explain)
# No Hypothesis deadline anywhere: how long an example takes depends on the machine's load,
# and a verdict must not (the per-check --ls-timeout bounds a slow implementation instead).
settings.register_profile("default", max_examples=5, deadline=None,
                          suppress_health_check=_SUPPRESS, phases=_PHASES)
settings.register_profile("ci", max_examples=20, derandomize=True, deadline=None, database=None,
                          print_blob=True, suppress_health_check=_SUPPRESS, phases=_PHASES)
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=_SUPPRESS, phases=_PHASES)
settings.load_profile("default")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Before Hypothesis's own configure: draw the seed it will force, unless derandomised.
    xdist workers receive the controller's options, so every worker uses the same seed.
    Under CI (the CI environment variable set) with no profile named, use `ci`: a gate
    must not depend on a random draw."""
    if os.environ.get("CI") and not config.getoption("hypothesis_profile", None):
        config.option.hypothesis_profile = "ci"
    if config.getoption("hypothesis_seed", None) is not None:
        return
    name = config.getoption("hypothesis_profile", None) or "default"
    try:
        derandomized = settings.get_profile(name).derandomize
    except Exception:  # an unknown profile: Hypothesis itself reports it
        return
    if not derandomized:
        config.option.hypothesis_seed = str(random.SystemRandom().randrange(2**32))


def profile_and_seed(config) -> tuple[str, int | str | None]:
    """(profile name, seed) of this run; the seed is "derandomized" for such profiles."""
    name = config.getoption("hypothesis_profile", None) or "default"
    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        return name, "derandomized" if settings.default.derandomize else None
    return name, int(seed) if str(seed).isdigit() else seed


def pytest_report_header(config):
    name, seed = profile_and_seed(config)
    again = f" (repeat with --hypothesis-seed={seed})" if isinstance(seed, int) else ""
    return [f"ls: hypothesis profile {name!r}, seed {seed}{again}"]
