"""Cases and their inputs: the `Case` a check runs on, the seeded inputs it stands for,
the adversarial logits, Hypothesis strategies, and `when` (predicates on a Case). Imports
only lsuite.record."""
