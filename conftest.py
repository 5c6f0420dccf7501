"""Root conftest: wires the suite's plugin; all logic lives in lsuite/."""

pytest_plugins = ("lsuite.plugin",)
