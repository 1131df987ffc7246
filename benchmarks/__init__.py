"""Benchmarks and soak tests, outside the package (`make bench`, `make soak`; `python -m benchmarks
--help`). They import the pipeline; the pipeline never imports them."""

import statistics


def summary(values: list[float]) -> dict[str, float]:
    """A repeated figure as every benchmark reports it: median, min, max and how many."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
