"""What every ecosystem record shares: the install hint, the library version it names, the
modules it needs, and `Lazy`, a factory imported on first call (module:attr, or a file inside
an installed package loaded by path). Records import libraries only when a check builds them,
so listing the catalog costs nothing. (Split from lsuite/catalogs/peers.py so that the record modules
beside it, lsuite/peers_*.py, import these without importing the catalog that lists them.)
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lsuite.record.records import Impl

INSTALL = "pip install -r requirements-peers.txt (or the suite's [peers] extra)"
# The interpreter runs one Triton program per row in Python with NumPy blocks; this cap keeps
# every check of the Liger record inside the vocabulary sweep's K = 32000 x N = 8 while leaving
# out the thorough profile's LLM-sized vocabularies (4 x 128256), so its whole interpreted run
# stays under 5 minutes on the project's 2-core machine (README: Measured figures).
INTERPRETED_MAX_ELEMENTS = 8 * 32000


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def missing(impl: Impl) -> list[str]:
    """The modules a record needs that are not installed (found without importing them)."""
    return [name for name in impl.requires if importlib.util.find_spec(name) is None]


@dataclass(frozen=True)
class Lazy:
    """A factory imported on first call: `module:attr`, or a file inside an installed package
    loaded by path (`package`, `path`) when importing the package itself is not possible
    (timm's __init__ imports torchvision, whose build must match torch's exactly)."""

    module: str
    attr: str
    path: str | None = None  # a file inside the installed package `module`

    def resolve(self):
        if self.path is None:
            return getattr(importlib.import_module(self.module), self.attr)
        return getattr(_load_file(self.module, self.path), self.attr)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)


@functools.cache
def _load_file(package: str, path: str):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed: {INSTALL}")
    file = Path(next(iter(spec.submodule_search_locations))) / path
    name = f"lsuite_peer_{package}_{path.replace('/', '_').removesuffix('.py')}"
    module_spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module
