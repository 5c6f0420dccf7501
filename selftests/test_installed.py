"""The suite installed into another project's virtualenv: `pip install <this repository>`,
then, from that project's own directory, the documented pytest command runs the checks against
its loss through the `pytest11` entry point, writes the report where asked and exits with the
gate's status (docs/plugging-in.md).

The fresh virtualenv sees the running interpreter's site-packages through a .pth file, so the
install resolves the suite's declared dependencies without a download (`--no-index`) and
the test takes seconds instead of reinstalling torch; what is under test is this repository's
packaging: its metadata, package data, entry points and the installed checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORRECT = """
import torch.nn.functional as F
from torch import nn

class Loss(nn.Module):
    def __init__(self, label_smoothing=0.0, reduction="mean", weight=None, ignore_index=-100):
        super().__init__()
        self.kw = dict(label_smoothing=label_smoothing, reduction=reduction, weight=weight,
                       ignore_index=ignore_index)

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, **self.kw)

class Exclusive(Loss):  # exclusive mass sold as PyTorch's: the gate must fail it
    def forward(self, logits, target):
        k = logits.shape[1] if logits.ndim > 1 else logits.shape[0]
        kw = dict(self.kw, label_smoothing=self.kw["label_smoothing"] * k / (k - 1))
        return F.cross_entropy(logits, target, **kw)
"""


def _run(args, cwd, timeout=600):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh virtualenv with the suite pip-installed, their project's directory)."""
    root = tmp_path_factory.mktemp("elsewhere")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=root).stdout.strip()
    Path(site, "running_interpreter.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # ensurepip's own setuptools may predate built-in bdist_wheel: build with the running one's
    _run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"], cwd=root)
    pip = _run([str(python), "-m", "pip", "install", "--quiet", "--no-index",
                "--no-build-isolation", str(REPO)], cwd=root)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    project = root / "their_project"
    (project / "theirpackage").mkdir(parents=True)
    (project / "theirpackage" / "__init__.py").write_text("")
    (project / "theirpackage" / "losses.py").write_text(textwrap.dedent(CORRECT))
    return python, project


def _suite(installed, spec: str, out: str):
    python, project = installed
    return _run([str(python), "-m", "pytest", "--pyargs", "lsuite_checks", "--ls-impl", spec,
                 "--ls-report-dir", out, "-p", "no:cacheprovider", "-q",
                 "-k", "test_conformance and (float32 or float64)"], cwd=project)


def test_installed_suite_passes_a_correct_loss_from_another_directory(installed):
    python, project = installed
    where = _run([str(python), "-c", "import lsuite; print(lsuite.__file__)"], cwd=project)
    assert str(REPO) not in where.stdout, f"imported the repository, not the install: {where.stdout}"
    proc = _suite(installed, "theirpackage.losses:Loss", "ci-out")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    results = json.loads((project / "ci-out" / "results.json").read_text())
    outcomes = {c["outcome"] for c in results["checks"] if c["impl"] == "Loss"}
    assert "passed" in outcomes and not outcomes & {"failed", "error", "xpassed"}
    assert (project / "ci-out" / "report.html").stat().st_size > 0


def test_installed_suite_exits_with_the_gates_status_on_a_wrong_loss(installed):
    proc = _suite(installed, "theirpackage.losses:Exclusive", "ci-bad")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "Exclusive" in proc.stdout and "failed" in proc.stdout


def test_a_baseline_from_the_installed_suite_matches_a_run_from_the_checkout(installed, tmp_path):
    """Checks are keyed by what they are, not where the suite was installed (issue 20)."""
    python, project = installed
    base = _suite(installed, "theirpackage.losses:Loss", "ci-base")
    assert base.returncode == 0, base.stdout[-3000:]
    out = tmp_path / "checkout-out"
    here = subprocess.run([sys.executable, "-m", "pytest", "suites", "--ls-impl", "theirpackage.losses:Loss",
                           "--ls-report-dir", str(out), "-p", "no:cacheprovider", "-q",
                           "-k", "test_conformance and (float32 or float64)"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(project)})
    assert here.returncode == 0, here.stdout[-3000:]
    baseline = json.loads((project / "ci-base" / "results.json").read_text())
    current = json.loads((out / "results.json").read_text())
    assert {c["nodeid"] for c in baseline["checks"]}.isdisjoint(c["nodeid"] for c in current["checks"])
    assert baseline["environment"]["suite_version"] and baseline["environment"]["suite_commit"] is None
    assert current["environment"]["suite_commit"]  # run from a checkout: its commit
    n = len(current["checks"])
    assert n == len(baseline["checks"]) > 10
    proc = subprocess.run([sys.executable, "-m", "reports", "compare", str(project / "ci-base" / "results.json"),
                           str(out / "results.json"), "-o", str(tmp_path / "compare.html")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"0 new failures; {n} checks matched, 0 added, 0 removed" in proc.stdout, proc.stdout
    assert f"suite {baseline['environment']['suite_version']}" in proc.stdout
