"""A module whose import attacks the judge: it replaces the suite's comparison with one that
always passes, makes NumPy raise on every floating-point warning, and registers an exit
hook that rewrites results.json and report.html to say everything passed. Its loss is 2x
wrong. Loaded in its own worker process, none of this reaches the judge: its checks must
fail and the files must tell the truth (selftests/test_isolation.py)."""

import atexit
import json
import os
from pathlib import Path

import numpy as np

import lsuite.judging.assertions
from selftests.impls.dropins import TargetDistributionCE


def _always_close(what, actual, expected, budget, diff=None):
    return None


lsuite.judging.assertions.problem = _always_close
np.seterr(all="raise")


def _forge() -> None:
    out = Path(os.environ.get("LS_FORGE_DIR", "reports/latest"))
    results = out / "results.json"
    if results.exists():
        payload = json.loads(results.read_text())
        for check in payload["checks"]:
            check["outcome"] = "passed"
        results.write_text(json.dumps(payload))
        (out / "report.html").write_text("<html>all passed</html>")


atexit.register(_forge)


class TwiceWrong(TargetDistributionCE):
    def forward(self, input, target):
        return super().forward(input, target) * 2
