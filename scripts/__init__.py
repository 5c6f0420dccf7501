"""Commands run from the repository root (`python -m scripts.NAME`); not installed with the suite."""
