"""Drift of the batches a retrain cycle reads: each one compared with the data the champion was
trained on, before any training, and the gate's `drift:` limit applied (docs/drift.md).

    screen = batch_drift.Screen.of(plan, dataset, champion)   # the reference, once per cycle
    reason = screen.judge(batch, accepted)     # None: train on it; a reason: quarantine it
    screen.log()                               # on the retrain-<model> run: drift_* (step = batch)

The reference is the profile logged with the champion's run (`drift/profile.json`) and, for
images, the champion's class probabilities on each batch (the confidence test; the champion is
loaded by training/loading.py, safe mode). A champion without a profile, or no champion, gets one
fitted on the current dataset's training split; the run's tag `drift.reference` says which.
A series batch's new points are judged against the history before them: the dataset's series
and the batches accepted before it in this cycle.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pipeline import data
from pipeline.errors import UserError
from pipeline.monitoring import reference
from pipeline.monitoring.drift import Drift

ARTIFACT = "drift/batches.json"  # every batch's figures and action, for the report


@dataclasses.dataclass(frozen=True)
class Judged:
    """One batch's drift: `index` is its position among the batches read this cycle (the step of
    its `drift_*` metrics); `action` none | warn | quarantine | not measured."""

    index: int
    batch: str
    drift: Drift | None
    action: str
    note: str = ""

    def entry(self) -> dict[str, Any]:
        found = {"index": self.index, "batch": self.batch, "action": self.action, "note": self.note}
        if self.drift is not None:
            found.update(drift_score=self.drift.score, worst=self.drift.worst, metrics=self.drift.metrics)
        return found


def figures(drift: Drift) -> str:
    """The drift figures as one line: `drift_brightness_ks 0.98, drift_brightness_pvalue 3.1e-40, ...`."""
    skip = ("drift_score", "drift_examples")
    return ", ".join(f"{k} {v:.3g}" for k, v in drift.metrics.items() if k not in skip)


def joined(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """A series' dates and values over all its segments, in time order."""
    segments = data.series.segments(arrays)
    return (
        np.concatenate([arrays[f"dates_{s}"] for s in segments]),
        np.concatenate([arrays[f"values_{s}"] for s in segments]),
    )


def series_points(dataset, accepted: list, batch) -> tuple[np.ndarray, np.ndarray, int]:
    """(dates, values, new): the series with `batch` merged after the batches accepted before it
    (gaps filled as data prep fills them), and how many points the batch appends."""
    fill = dataset.manifest.fill or "time"
    before = data.merge_batches(dataset.arrays, [(b.x, b.y) for b in accepted], fill)
    after = data.merge_batches(dataset.arrays, [(b.x, b.y) for b in [*accepted, batch]], fill)
    dates, values = joined(after)
    new = len(dates) - len(joined(before)[0])
    if new < 1:
        raise UserError("no new points after the series' last date (values for earlier weeks only)")
    return dates, values, new


@dataclasses.dataclass
class Screen:
    """A cycle's drift check: the reference, the limit, and every batch judged so far."""

    model: str
    dataset: Any  # data.Dataset: the current version (before this cycle's batches)
    limit: Any  # plan.DriftLimit, or None: measured and recorded only
    profile: Any = None  # monitoring Profile, or None: nothing to compare with (then not measured)
    reference: str = ""  # where the profile came from, for the tag and REASON.txt
    champion: Any = None  # loading.Loaded: its class probabilities for the confidence test
    judged: list[Judged] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, plan, dataset, current) -> Screen:
        """The reference for a cycle: `current` is the champion's ModelVersion (None: no champion)."""
        screen = cls(plan.register_as, dataset, plan.gate.drift if plan.gate else None)
        why = "no champion yet"
        if current is not None:
            if dataset.kind == "images":
                screen.champion = loaded_champion(plan.register_as, current.version)
            try:
                screen.profile = reference.of_run(current.run_id)
                why = f"champion v{current.version} has no {reference.ARTIFACT}"
            except UserError as exc:
                why = f"champion v{current.version}: {exc}"
        if screen.profile is not None:
            screen.reference = f"champion v{current.version} ({reference.ARTIFACT} of its run)"
            if dataset.kind == "images" and screen.champion is None:
                screen.reference += "; no confidence test: the champion cannot be loaded safely"
            return screen
        try:
            screen.profile = reference.fit_for(plan, screen.champion, dataset)
            screen.reference = f"fitted on the training split of {dataset.name} ({why})"
        except UserError as exc:
            screen.reference = f"none ({why}; {exc})"
        return screen

    def measure(self, batch, accepted: list) -> Drift:
        if self.profile.KIND == "series":
            dates, values, new = series_points(self.dataset, accepted, batch)
            return self.profile.compare(self.profile.stats(dates, values, new=new))
        stats = self.profile.stats(batch.x)  # images of another shape are refused before the model sees them
        if self.champion is not None and self.profile.confidence is not None:
            proba = reference.probabilities(self.champion.predict(batch.x))
            stats = self.profile.stats(batch.x, proba)
        return self.profile.compare(stats)

    def judge(self, batch, accepted: list) -> str | None:
        """Measure `batch` (a data.Batch read this cycle; `accepted`: the good ones before it) and
        apply the limit: the quarantine reason (one line with the drift figures), or None."""
        index = len(self.judged)
        if self.profile is None:
            self.judged.append(Judged(index, batch.id, None, "not measured", self.reference))
            return None
        try:
            drift = self.measure(batch, accepted)
        except (UserError, ValueError) as exc:
            self.judged.append(Judged(index, batch.id, None, "not measured", str(exc)[:300]))
            return None
        action = self.limit.action if drift.exceeds(self.limit) else "none"
        self.judged.append(Judged(index, batch.id, drift, action))
        if action != "quarantine":
            return None
        return (
            f"drift: {drift.line()} exceeds retrain.gates.{self.model}.drift.max {self.limit.max} "
            f"(action: quarantine; reference: {self.reference}); {figures(drift)}"
        )

    def beyond(self) -> list[Judged]:
        return [j for j in self.judged if j.action in ("warn", "quarantine")]

    def summary(self) -> str:
        """The cycle's drift line: every batch's drift_score, and what happened to those beyond."""
        if not self.judged:
            return ""
        shown = []
        for j in self.judged:
            if j.drift is None:
                shown.append(f"{j.batch} not measured")
                continue
            what = {"warn": " (warn: trained on)", "quarantine": " (quarantined)"}.get(j.action, "")
            over = f" > {self.limit.max}" if what else ""
            shown.append(f"{j.batch} {j.drift.score:.2f}{over}{what}")
        return f"drift_score {', '.join(shown)} · reference: {self.reference}"

    def log(self) -> None:
        """On the active (retrain-<model>) run: each batch's drift_* metrics at step = its index, its
        plot drift/<batch id>.png, the tags drift.*, and drift/batches.json."""
        import mlflow

        limit = "none" if self.limit is None else f"max {self.limit.max}, action {self.limit.action}"
        bound = None if self.limit is None else {"max": self.limit.max, "action": self.limit.action}
        scores = [f"{j.batch}={j.drift.score:.2f}" for j in self.judged if j.drift is not None]
        mlflow.set_tags(
            {
                "drift.reference": self.reference[:500],
                "drift.limit": limit,
                "drift.scores": (",".join(scores) or "none")[:5000],
                "drift.beyond": (",".join(f"{j.batch}:{j.action}" for j in self.beyond()) or "none")[:5000],
            }
        )
        for j in self.judged:
            if j.drift is not None:
                j.drift.log(f"drift/{j.batch}.png", step=j.index)
        measured = [j.drift.score for j in self.judged if j.drift is not None]
        if measured:
            mlflow.log_metrics({"drift_score_max": max(measured), "retrain_drifted": len(self.beyond())})
        listing = {"reference": self.reference, "limit": bound, "batches": [j.entry() for j in self.judged]}
        mlflow.log_dict(listing, ARTIFACT)


def loaded_champion(model: str, version: str):
    """The champion as training/loading.py loads it (safe mode), or None when it is refused: the
    drift check then goes without the confidence test (the gate says why it cannot score it)."""
    from pipeline.training import loading

    try:
        return loading.load(f"models:/{model}/{version}")
    except UserError:
        return None
