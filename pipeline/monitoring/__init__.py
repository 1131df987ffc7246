"""Monitoring: does new data still look like the training data (drift), and who hears about a
scheduled retrain (alerts). A layer between the training core and the workflows that use it
(retrain, predict, the scoring server): it may import shared, data, objectives and training.

    profile = monitoring.fit(dataset, probabilities=proba_val)      # once, from the training split
    monitoring.save(profile, "drift-profile.json")                  # small JSON, never a pickle
    drift = profile.compare(profile.stats(images, probabilities))   # a batch or one call
    drift.score, drift.metrics, drift.line(), drift.figure()        # drift_* metrics, a plot
    drift.exceeds(plan.gate.drift)                                  # retrain.gates.<model>.drift

Series: `profile.stats(dates, values, new=len(batch))` judges the last `new` points. A server
folds each request's `stats` into a `DriftWindow` and writes one comparison per window.
docs/drift.md has the statistics, the metric names and how `drift_score` is defined.
"""

from pipeline.monitoring.drift import ALPHA, Drift, Reference, Test
from pipeline.monitoring.images import ImageProfile, ImageStats
from pipeline.monitoring.profiles import Profile, fit, from_json, load, save, to_json
from pipeline.monitoring.series import SeriesProfile, SeriesStats
from pipeline.monitoring.window import DriftWindow

__all__ = [
    "ALPHA",
    "Drift",
    "DriftWindow",
    "ImageProfile",
    "ImageStats",
    "Profile",
    "Reference",
    "SeriesProfile",
    "SeriesStats",
    "Test",
    "fit",
    "from_json",
    "load",
    "save",
    "to_json",
]
