"""Benchmarks: points and workloads, timing and memory, deterministic instruction
counts, the machine's description and the regression gate. Imports the layers below it; not
judging."""
