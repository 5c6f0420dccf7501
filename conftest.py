"""Root conftest: wires the suite's plugin (all logic lives in lsuite/) and pytester,
which the project's own tests use to run the suite on broken implementations."""

pytest_plugins = (
    "lsuite.pytest_plugin.plugin",
    "lsuite.pytest_plugin.hypoplugin",
    "lsuite.pytest_plugin.benchplugin",
    "lsuite.pytest_plugin.selection",
    "lsuite.pytest_plugin.checkedplugin",
    "lsuite.pytest_plugin.causeplugin",
    "pytester",
)
