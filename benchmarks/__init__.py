"""Benchmarks and soak tests, outside the package (`make bench`, `make soak`, `make soak-sweep`):
each module runs with `python -m benchmarks.<name> --help`. They import the pipeline; the pipeline
never imports them."""
