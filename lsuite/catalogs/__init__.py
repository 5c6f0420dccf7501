"""Where records come from: the built-in catalog, the ecosystem catalog of real
libraries, and a user's `--ls-impl SPEC` (loading). Imports lsuite.inputs and lsuite.record."""
