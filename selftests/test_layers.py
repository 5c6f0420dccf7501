"""The seam between the harness and the renderer (docs/architecture.md): `lsresults` (the
results schema, limits, writer, verdict wording, benchmark statistics) imports neither torch,
`lsuite`, `reports` nor `reference`; `reports` imports nothing of `lsuite` or torch; `lsuite`
imports `reports` only in its pytest plugin, to render; and no module of either shared
package grows past 400 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def imported_roots(path: Path) -> set[str]:
    """The top-level package of every absolute import in a file (function-level ones too)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_lsresults_loads_without_torch_lsuite_reports_or_reference():
    modules = sorted(p.stem for p in (ROOT / "lsresults").glob("*.py") if p.stem != "__init__")
    code = ("import importlib, sys; "
            f"[importlib.import_module('lsresults.' + m) for m in {modules!r}]; "
            "bad = [m for m in ('torch', 'lsuite', 'reports', 'reference') if m in sys.modules]; "
            "assert not bad, f'{bad} imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("package, forbidden", [
    ("lsresults", {"torch", "lsuite", "reports", "reference"}),
    ("reports", {"torch", "lsuite", "reference"}),
])
def test_shared_packages_never_name_the_harness(package, forbidden):
    found = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & forbidden)
             for p in (ROOT / package).rglob("*.py")}
    assert not {k: v for k, v in found.items() if v}


def test_lsuite_imports_reports_only_to_render():
    outside = [str(p.relative_to(ROOT)) for p in (ROOT / "lsuite").rglob("*.py")
               if "reports" in imported_roots(p) and p.parent.name != "pytest_plugin"]
    assert not outside, f"import lsresults instead of reports in {outside}"


@pytest.mark.parametrize("package", ["lsresults", "reports"])
def test_modules_stay_small(package):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / package).glob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"
