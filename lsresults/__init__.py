"""The results of a run, shared by the harness (lsuite) and the renderer (reports).

- `load`: the results.json schema (SCHEMA), ResultsError, `validate`, `read_results`,
  `load_results`;
- `limits`: the size, nesting, integer and string limits checked before any field is read;
- `files`: the one atomic file writer (`write_atomic`, `write_results`);
- `inputs`: the schema-2 fields of a check (`check_fields`, `input_kinds`, the input kinds);
- `benchdiff`: which benchmark entries of two runs match and which changes are regressions.

Standard library, NumPy and SciPy only: never torch, nothing of lsuite or reports, so both
sides import it and neither imports the other for these things.
"""

from .load import SCHEMA, ResultsError, load_results, read_results, validate

__all__ = ["SCHEMA", "ResultsError", "load_results", "read_results", "validate"]
