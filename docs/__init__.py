"""The suite's documentation, installed with it as the package `lsuite_docs`.

`python -m lsuite_docs` prints the specification (docs/specification.md, cited in code and
messages as "docs/specification.md §n"); `python -m lsuite_docs --path` prints the folder of
the Markdown pages; `python -m lsuite_docs PAGE` prints one page (e.g. plugging-in).
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def page(name: str = "specification") -> Path:
    """The path of one documentation page (its name without .md)."""
    path = HERE / f"{name.removesuffix('.md')}.md"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in HERE.glob("*.md")))
        raise FileNotFoundError(f"no documentation page {name!r}; pages: {names}")
    return path
