"""The documentation cannot go stale silently: the README's runnable shell blocks run, its
quick start is what .ci/run runs, every citation of the specification names a section that
exists, no file points to a folder outside the repository, and the wheel carries the pages.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import lsuite
from lsuite.inputs.cases import Case

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SPEC = ROOT / "docs" / "specification.md"
README_MAX_LINES = 250  # issue 22: a README a newcomer reads in one sitting
# A ```bash runnable block of the README is run line by line by this test (GitHub renders the
# info string's first word as the language).
RUNNABLE = re.compile(r"^```bash runnable\n(.*?)^```", re.S | re.M)
CITATION = re.compile(r"docs/specification\.md §(\d+)(?:\s*(?:-|–|and|,)\s*§?(\d+))?")
# Words that point outside the repository: the shared folder the project was written from.
OUTSIDE = ("CONVENTIONS" + ".md", "CONVENTIONS" + " §", "../" + "shared", "STYLE" + ".md")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    files = []
    for name in names:
        path = ROOT / name
        if path.suffix in (".png", ".json") or not path.is_file():
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def runnable_lines(text: str) -> list[str]:
    return [line for block in RUNNABLE.findall(text) for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_readme_is_short_and_its_quick_start_is_what_ci_runs():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, "README.md is over 250 lines: move to docs/"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in (".venv/bin/python -m pytest suites/", ".venv/bin/python -m pytest selftests/"):
        assert command in text and f"run {command}\n" in ci, command


def test_readme_runnable_blocks_run(tmp_path):
    lines = runnable_lines(README.read_text(encoding="utf-8"))
    assert lines, "README.md has no ```bash runnable block"
    for line in lines:
        argv = [sys.executable if word == ".venv/bin/python" else word for word in shlex.split(line)]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README: `{line}` exited {done.returncode}: {done.stderr[-2000:]}"
        assert done.stdout.strip(), f"README: `{line}` printed nothing"


def test_a_failing_runnable_line_is_caught():
    """The runner above must be able to fail: a block whose command exits non-zero."""
    text = "```bash runnable\n.venv/bin/python -m docs no-such-page\n```\n"
    (line,) = runnable_lines(text)
    argv = [sys.executable if w == ".venv/bin/python" else w for w in shlex.split(line)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no documentation page 'no-such-page'" in done.stderr


def test_every_citation_of_the_specification_names_a_section():
    sections = {int(n) for n in re.findall(r"^## §(\d+) ", SPEC.read_text(encoding="utf-8"), re.M)}
    assert sections == set(range(1, 9)), sections
    anchors = set(re.findall(r"^\(spec-(\d+)\)=$", SPEC.read_text(encoding="utf-8"), re.M))
    assert anchors == {str(n) for n in sections}, "every section keeps its stable anchor spec-n"
    cited = 0
    for path in tracked_text_files():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            for number in filter(None, match.groups()):
                cited += 1
                assert int(number) in sections, f"{path.relative_to(ROOT)} cites §{number}"
    assert cited >= 20, cited  # the code does cite it: the pattern still matches


def test_no_file_points_outside_the_repository():
    offenders = [f"{path.relative_to(ROOT)}: {word}" for path in tracked_text_files()
                 for word in OUTSIDE if word in path.read_text(encoding="utf-8")]
    assert not offenders, offenders


def test_every_impl_field_and_every_case_field_is_documented():
    """docs/plugging-in.md tabulates every field of Impl and every when.<field> of a Case."""
    text = (ROOT / "docs" / "plugging-in.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    missing = [f.name for f in dataclasses.fields(lsuite.Impl)
               if not any(f"`{f.name}`" in row.split(" | ")[0] for row in rows)]
    assert not missing, f"Impl fields missing from docs/plugging-in.md: {missing}"
    missing = [f.name for f in dataclasses.fields(Case) if f"| `when.{f.name}` |" not in text]
    assert not missing, f"when fields missing from docs/plugging-in.md: {missing}"


@pytest.mark.timeout(300)
def test_the_wheel_carries_the_documentation(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True, timeout=280)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = {f"lsuite_docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert "lsuite_docs/specification.md" in pages
    assert pages | {"lsuite_docs/__main__.py", "lsuite_docs/report.png"} <= names, \
        sorted(pages - names)
