"""Root conftest: wires the suite's plugin (all logic lives in lsuite/) and pytester,
which the project's own tests use to run the suite on broken implementations."""

pytest_plugins = ("lsuite.plugin", "lsuite.hypoplugin", "lsuite.benchplugin", "lsuite.causeplugin",
                  "pytester")
