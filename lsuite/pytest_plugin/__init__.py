"""The pytest plugin: hooks and fixtures only (plugin, Hypothesis profiles,
benchmarks, selection), and the collection of every check's outcome into results.json. The
top layer: the only one that renders a report (reports)."""
