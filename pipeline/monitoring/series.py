"""Drift of a series: do the new points continue the series the way the training period did?

The training period gives the seasonal pattern (a Fourier series of `HARMONICS` harmonics over
the season, fitted by least squares with a quadratic trend). A new point's residual is its value
minus that pattern minus the local linear trend of the season of history before the new points
(a trend fitted on the recent past, so a series that keeps rising is not drift). The training
period's own residuals, computed the same way from every origin, give the band each horizon's
residual stays within 99 % of the time. A level shift pushes the new points out of the band:

- `drift_residual_share` (= `drift_score`): the share of new points outside their band;
- `drift_level_shift`: the new points' mean residual, in standard deviations of the training
  period's residuals (signed: a jump up is positive).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from pipeline.errors import UserError
from pipeline.monitoring.drift import Drift, floats

HARMONICS = 3
BAND = 0.99  # central share of the training period's residuals a horizon's band holds
YEAR_DAYS = 365.25


def days(dates) -> np.ndarray:
    """Dates (datetime64 or ISO strings) as days since 1970-01-01."""
    return np.asarray(dates, dtype="datetime64[D]").astype(np.int64).astype(np.float64)


def seasonal_terms(t: np.ndarray, period: float) -> np.ndarray:
    angle = 2 * np.pi * t[:, None] * np.arange(1, HARMONICS + 1)[None, :] / period
    return np.concatenate([np.cos(angle), np.sin(angle)], axis=1)


@dataclasses.dataclass(frozen=True)
class SeriesStats:
    """Residuals of new points; `horizons` counts steps after the history they were judged against."""

    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("residuals", "horizons", "dates")

    residuals: np.ndarray
    horizons: np.ndarray  # 1 = the first point after the history
    dates: np.ndarray  # datetime64[D]
    count: int

    def merge(self, other: SeriesStats) -> SeriesStats:
        return SeriesStats(
            np.concatenate([self.residuals, other.residuals]),
            np.concatenate([self.horizons, other.horizons]),
            np.concatenate([self.dates, other.dates]),
            self.count + other.count,
        )


@dataclasses.dataclass(frozen=True)
class SeriesProfile:
    """The training period's seasonal pattern and residual bands: what new points are compared with."""

    KIND: ClassVar[str] = "series"

    period_days: float  # the season's length in days (a season of about a year: 365.25)
    coefficients: np.ndarray  # (2 * HARMONICS,) the seasonal pattern
    lookback: int  # points of history the local trend is fitted on (one season)
    low: np.ndarray  # (horizons,) the band's lower edge for each horizon
    high: np.ndarray  # (horizons,) ... and its upper edge
    spread: float  # standard deviation of the training period's residuals

    @classmethod
    def fit(cls, dates, values, season: int) -> SeriesProfile:
        """Profile the training period of a series whose season is `season` steps (52 for weeks)."""
        t, y = days(dates), np.asarray(values, dtype=np.float64)
        if season < 2 or len(t) < 3 * season or len(t) != len(y):
            raise UserError(
                f"drift: a series profile needs at least three seasons ({3 * season} points) of training "
                f"data; got {len(y)} points for a season of {season}"
            )
        period = season * float(np.median(np.diff(t)))
        if abs(period - YEAR_DAYS) < 0.03 * YEAR_DAYS:  # 52 weeks, 12 months, 365 days: a year
            period = YEAR_DAYS
        centre, scale = t.mean(), max(np.ptp(t), 1.0)
        trend = np.stack([np.ones_like(t), (t - centre) / scale, ((t - centre) / scale) ** 2], axis=1)
        design = np.concatenate([trend, seasonal_terms(t, period)], axis=1)
        coefficients = np.linalg.lstsq(design, y, rcond=None)[0][3:]
        profile = cls(period, coefficients, season, np.zeros(season), np.zeros(season), 1.0)
        origins = range(season, len(t) - season + 1)
        residuals = np.stack(
            [profile.residuals(t[:o], y[:o], t[o : o + season], y[o : o + season]) for o in origins]
        )
        tail = (1 - BAND) / 2
        return dataclasses.replace(
            profile,
            low=np.quantile(residuals, tail, axis=0),
            high=np.quantile(residuals, 1 - tail, axis=0),
            spread=float(residuals.std()),
        )

    def seasonal(self, t: np.ndarray) -> np.ndarray:
        return seasonal_terms(t, self.period_days) @ self.coefficients

    def residuals(self, history_t, history_y, t, y) -> np.ndarray:
        """New values minus the seasonal pattern minus the local trend of the history before them."""
        recent_t, recent_y = history_t[-self.lookback :], history_y[-self.lookback :]
        slope, level = np.polyfit(recent_t - recent_t[-1], recent_y - self.seasonal(recent_t), 1)
        return y - self.seasonal(t) - (level + slope * (t - recent_t[-1]))

    def stats(self, dates, values, new: int) -> SeriesStats:
        """The last `new` points of a series, judged against the history before them."""
        t, y = days(dates), np.asarray(values, dtype=np.float64)
        if len(t) != len(y) or not 1 <= new <= len(y) - self.lookback:
            raise UserError(
                f"drift: {len(y)} points cannot hold {new} new one(s) after a history of "
                f"{self.lookback} (one season)"
            )
        if not np.all(np.isfinite(y)):
            raise UserError("drift: the series holds missing or non-finite values")
        cut = len(t) - new
        residuals = self.residuals(t[:cut], y[:cut], t[cut:], y[cut:])
        dates = np.asarray(dates, dtype="datetime64[D]")[cut:]
        return SeriesStats(residuals, np.arange(1, new + 1), dates, new)

    def compare(self, stats: SeriesStats) -> Drift:
        index = np.minimum(stats.horizons, len(self.low)) - 1  # past the last horizon: its band
        outside = (stats.residuals < self.low[index]) | (stats.residuals > self.high[index])
        share = float(outside.mean())
        metrics = {
            "drift_score": share,
            "drift_examples": float(stats.count),
            "drift_residual_share": share,
            "drift_level_shift": float(stats.residuals.mean() / self.spread),
        }
        return Drift(self.KIND, stats.count, share, "residuals" if share else "", metrics, self, stats)

    def figure(self, stats: SeriesStats, drift: Drift):
        from pipeline import plots

        index = np.minimum(stats.horizons, len(self.low)) - 1
        return plots.series_drift(
            stats.dates, stats.residuals, self.low[index], self.high[index], drift.line()
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "period_days": self.period_days,
            "coefficients": self.coefficients.tolist(),
            "lookback": self.lookback,
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "spread": self.spread,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesProfile:
        low, high = floats(data["low"]), floats(data["high"])
        coefficients = floats(data["coefficients"])
        if len(low) != len(high) or len(low) == 0 or len(coefficients) != 2 * HARMONICS:
            raise ValueError("bands or coefficients have the wrong length")
        return cls(
            float(data["period_days"]), coefficients, int(data["lookback"]), low, high, float(data["spread"])
        )
