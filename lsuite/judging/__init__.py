"""Judging's measures: the one comparison, budgets and the attainable anchor, PyTorch's own
error, severity, zero denominators, misshapen outputs, what a gradient implies. Imports the
layers below it; the kinds and the checks use it."""
