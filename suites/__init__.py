"""The suite's checks. Installed, this folder is the package `lsuite_checks`
(pyproject.toml), so another project runs it with
`python -m pytest --pyargs lsuite_checks --ls-impl their.module:Loss`."""
