"""Sphinx configuration: MyST Markdown pages, the API reference from the docstrings.

Build (warnings are errors): python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's lsuite, as pytest's pythonpath = ["."]

project = "label-smoothing-suite"
author = "the label-smoothing-suite authors"
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
myst_enable_extensions = ["colon_fence", "deflist"]  # formulas are plain Unicode: they read the same printed
myst_heading_anchors = 3  # [text](page.md#a-heading) links to headings of levels 1-3
suppress_warnings = []
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "alabaster"
html_static_path = []
html_title = "label-smoothing-suite"
