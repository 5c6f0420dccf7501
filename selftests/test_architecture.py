"""The package structure holds: the import contracts of pyproject.toml (import-linter: the
layers, no cycle, the reference, the renderer and the results package kept apart) pass and can fail, no module
imports another module's private name, and no module of a package is over 400 lines."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lsuite", "lsresults", "reference", "reports")
MAX_LINES = 400
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def modules():
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.skip(f"import-linter is not installed beside {sys.executable} (requirements-dev.txt)")
    return subprocess.run([str(LINT_IMPORTS), "--config", str(where / "pyproject.toml")],
                          cwd=where, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(where)})


def test_the_import_contracts_hold():
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


@pytest.mark.parametrize("module, line", [
    ("lsuite/record/records.py", "from lsuite.checks import reference as harness"),  # a layer imports up
    ("lsuite/record/records.py", "from lsuite.record import claims"),  # a cycle in a package
    ("reports/render.py", "import lsuite"),  # the renderer imports the harness
    ("reference/core.py", "import torch"),  # the reference imports torch
    ("lsresults/text.py", "import lsuite"),  # the shared results package imports the harness
    ("lsuite/running/runner.py", "import reports"),  # the harness renders outside its plugin
])
def test_the_contracts_fail_on_a_broken_structure(tmp_path, module, line):
    for name in (*PACKAGES, "pyproject.toml"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    with open(tmp_path / module, "a") as f:
        f.write(f"\n\ndef _probe():\n    {line}  # noqa\n")
    run = lint_imports(tmp_path)
    assert run.returncode != 0 and "BROKEN" in run.stdout, run.stdout[-2000:]


def test_lsresults_loads_without_torch_lsuite_reports_or_reference():
    modules = sorted(p.stem for p in (ROOT / "lsresults").glob("*.py") if p.stem != "__init__")
    code = ("import importlib, sys; "
            f"[importlib.import_module('lsresults.' + m) for m in {modules!r}]; "
            "bad = [m for m in ('torch', 'lsuite', 'reports', 'reference') if m in sys.modules]; "
            "assert not bad, f'{bad} imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """`from X import _name` where X is another module of the project."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in PACKAGES:
            found += [f"{path.relative_to(root)}:{node.lineno} imports {node.module}.{a.name}"
                      for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found += [f"{path.relative_to(root)}:{node.lineno} imports .{node.module}.{a.name}"
                      for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_name():
    found = [f for path in modules() for f in private_imports(path)]
    assert not found, "\n".join(found)


def test_the_private_import_finder_finds_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from lsuite.running.worker import _Handle\nfrom .x import _y, z\n")
    assert private_imports(probe, tmp_path) == ["probe.py:1 imports lsuite.running.worker._Handle",
                                                "probe.py:2 imports .x._y"]


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def vendored_but_not_shipped(root: Path) -> list[str]:
    """Vendored files (a 'Vendored' first line) whose package is not in pyproject's packages,
    or whose folder has no LICENSE.* that the package-data ships."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    problems = []
    for file in sorted((root / "lsuite" / "vendor").rglob("*.py")):
        if not file.read_text().startswith("# Vendored"):
            continue
        package = ".".join(file.parent.relative_to(root).parts)
        if package not in config["packages"]:
            problems.append(f"{file.relative_to(root)}: {package} is not in packages")
        patterns = config["package-data"].get(package, [])
        if not any(licence.match(pattern) for licence in file.parent.glob("LICENSE.*")
                   for pattern in patterns):
            problems.append(f"{file.relative_to(root)}: no LICENSE.* shipped beside it")
    return problems


def test_every_vendored_file_ships_with_its_licence(tmp_path):
    assert vendored_but_not_shipped(ROOT) == []
    broken = tmp_path / "lsuite" / "vendor" / "lib_1_0"
    broken.mkdir(parents=True)
    (broken / "kernel.py").write_text("# Vendored from lib 1.0\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools]\npackages = ["lsuite.vendor"]\n[tool.setuptools.package-data]\n')
    assert vendored_but_not_shipped(tmp_path) == [
        "lsuite/vendor/lib_1_0/kernel.py: lsuite.vendor.lib_1_0 is not in packages",
        "lsuite/vendor/lib_1_0/kernel.py: no LICENSE.* shipped beside it"]
