"""Judging what the runner measured: the one comparison, budgets and the attainable
anchor, severity, and the checks' logic (the reference check, invariants, argument checks,
the fused-linear and vocab-parallel checks). Imports the layers below it; not benchmarking."""
