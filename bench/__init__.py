"""Benchmarks, each run from the checkout as `python -m bench.<name>` (the module's docstring
gives its options and target)."""
