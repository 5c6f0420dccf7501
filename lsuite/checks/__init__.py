"""The checks, written once for every input kind: the reference check, the invariants (and
the Hypothesis-drawn properties of a logits loss), the argument checks. Imports the kinds,
judging's measures, running and below; the pytest plugin and suites/ call them."""
