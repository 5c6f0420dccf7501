"""The record of an implementation under test and what its claims mean: `Impl`,
`KnownDefect`, `BuildConfig`, `construct`/`dropin`, the `Predicate` a defect's scope is. The
bottom layer of lsuite: it imports no other layer."""
