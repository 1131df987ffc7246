"""What every drift check shares: a statistic's training distribution, the two-sample test against
it, and the result (`Drift`: the `drift_*` metrics, a one-line summary and a small plot).

The tests are scipy's (Evidently 0.7.23 installs here but does not import with pandas 3.1.1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

ALPHA = 0.01  # a test counts only when its p-value is below this: sampling noise is not drift
REFERENCE_POINTS = 1000  # quantiles kept per statistic; KS against them is within 1/1000 of the split's


@dataclasses.dataclass(frozen=True)
class Test:
    """A two-sample test's outcome: the statistic (KS: 0 = same distribution, 1 = no overlap)."""

    statistic: float
    pvalue: float

    @property
    def significant(self) -> bool:
        return self.pvalue < ALPHA


@dataclasses.dataclass(frozen=True)
class Reference:
    """One statistic's distribution on the training split, kept as evenly spaced quantiles."""

    quantiles: np.ndarray
    examples: int  # how many training values the quantiles summarise

    @classmethod
    def of(cls, values) -> Reference:
        values = np.asarray(values, dtype=np.float64).ravel()
        count = min(len(values), REFERENCE_POINTS)
        return cls(np.quantile(values, (np.arange(count) + 0.5) / count), len(values))

    def test(self, values) -> Test:
        """Kolmogorov-Smirnov two-sample test of `values` against the training distribution."""
        from scipy import stats

        result = stats.ks_2samp(np.asarray(values, dtype=np.float64), self.quantiles)
        return Test(float(result.statistic), float(result.pvalue))

    def to_json(self) -> dict[str, Any]:
        return {"quantiles": self.quantiles.tolist(), "examples": self.examples}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reference:
        return cls(floats(data["quantiles"]), int(data["examples"]))


def floats(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("non-finite values")
    return array


def score_of(tests: dict[str, Test]) -> tuple[float, str]:
    """(the largest statistic among the significant tests, its name); (0, '') when none is."""
    found = [(test.statistic, name) for name, test in tests.items() if test.significant]
    return max(found) if found else (0.0, "")


@dataclasses.dataclass(frozen=True)
class Drift:
    """New data compared with the training data.

    `score` (metric `drift_score`) runs from 0 (like the training data) to 1 (no overlap); a
    gate's `drift.max` is compared with it. `metrics` are every `drift_*` figure (docs/drift.md).
    """

    kind: str  # images | series
    examples: int  # how many images or new points were compared
    score: float
    worst: str  # the statistic behind the score ('' when nothing drifted)
    metrics: dict[str, float]
    profile: Any = dataclasses.field(repr=False, compare=False, default=None)
    stats: Any = dataclasses.field(repr=False, compare=False, default=None)

    def exceeds(self, limit) -> bool:
        """Whether this is beyond a gate's `drift:` limit (a DriftLimit, or None: no limit)."""
        return limit is not None and self.score > limit.max

    def line(self) -> str:
        unit = "images" if self.kind == "images" else "new points"
        cause = f" ({self.worst})" if self.worst else ""
        return f"drift_score {self.score:.2f}{cause} over {self.examples} {unit}"

    def figure(self):
        return self.profile.figure(self.stats, self)

    def log(self, artifact: str | None = "drift.png", step: int | None = None) -> None:
        """Log the metrics (and the plot, unless `artifact` is None) to the active MLflow run."""
        import mlflow

        mlflow.log_metrics(self.metrics, step=step)
        if artifact:
            mlflow.log_figure(self.figure(), artifact)
