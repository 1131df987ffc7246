"""What training prints: one result line per experiment, progress bars on a terminal, and at the
end of `train-all` a table per task (like `dvc exp show`): run, headline metric, the best marked,
time.

On a terminal each running experiment has one progress bar (epochs); in a log (not a TTY) each
experiment prints one line when it ends, its epochs summarised. VERBOSE=1 brings back Keras' own
per-epoch lines.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict

from pipeline import startup


@dataclasses.dataclass(frozen=True)
class Summary:
    """One finished experiment, as the console shows it (small and picklable: it crosses processes)."""

    name: str
    task: str
    problem: str
    headline: str
    value: float
    higher_is_better: bool
    seconds: float
    epochs: int | None  # Keras runs: epochs trained (early stopping included)
    best_epoch: int | None  # the epoch whose weights were kept (lowest val_loss)
    run_id: str
    decision: str | None = None  # "digits-classifier v2: promoted (...)" for registered models


def summarise(outcome) -> Summary:
    """A training outcome (pipeline.training.run.Outcome) as the console's summary."""
    plan, metrics = outcome.plan, outcome.metrics
    headline = plan.objective.headline
    decision = None
    if outcome.decision is not None:
        verdict, why = outcome.decision.verdict, outcome.decision.why
        decision = f"{plan.register_as} v{outcome.model_version}: {verdict} ({why})"
    epochs = metrics.get("epochs_trained")
    return Summary(
        name=plan.exp.name,
        task=plan.exp.task,
        problem=outcome.problem,
        headline=headline,
        value=float(metrics[headline]),
        higher_is_better=plan.objective.direction(headline) == "max",
        seconds=float(metrics["train_seconds"]),
        epochs=None if epochs is None else int(epochs),
        best_epoch=outcome.best_epoch,
        run_id=outcome.run_id,
        decision=decision,
    )


def result_line(s: Summary) -> str:
    epochs = ""
    if s.epochs is not None:
        kept = f", best at {s.best_epoch}" if s.best_epoch and s.best_epoch != s.epochs else ""
        epochs = f" · {s.epochs} epochs{kept}"
    return f"{s.name}: {s.headline} {s.value:.4f}{epochs} · {s.seconds:.1f} s · {s.task} · run {s.run_id[:8]}"


def tables(summaries: list[Summary]) -> str:
    """Per task: each run's headline metric, the best per problem marked ★, its time."""
    by_task: dict[str, list[Summary]] = defaultdict(list)
    for s in summaries:
        by_task[s.task].append(s)
    out = []
    for task, runs in sorted(by_task.items()):
        best = {}
        for s in runs:
            current = best.get(s.problem)
            if (
                current is None
                or (s.value > current.value) == s.higher_is_better
                and s.value != current.value
            ):
                best[s.problem] = s
        width = max(len(s.name) for s in runs)
        several = len({s.problem for s in runs}) > 1
        out.append(
            f"{task} ({runs[0].headline}, {'higher' if runs[0].higher_is_better else 'lower'} is better)"
        )
        for s in sorted(runs, key=lambda r: (r.problem, -r.value if r.higher_is_better else r.value)):
            mark = "★" if best[s.problem] is s else " "
            problem = f"  [{s.problem}]" if several else ""
            out.append(f"  {mark} {s.name:<{width}}  {s.value:8.4f}  {s.seconds:6.1f} s{problem}")
    return "\n".join(out)


class Progress:
    """Epoch progress of running experiments: bars on a terminal, nothing in a log (the result
    line says it all once the experiment ends)."""

    def __init__(self, bars: bool = True, stream=None):
        self.stream = stream or sys.stdout
        self.want_bars = bars
        self.bars = None
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        if self.want_bars and self.stream.isatty() and not startup.verbose():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bars = Progress(
                TextColumn("{task.description:<22}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("epochs {task.fields[note]}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self.bars.start()
        return self

    def __exit__(self, *exc):
        if self.bars is not None:
            self.bars.stop()

    def epoch(self, name: str, done: int, total: int, note: str = "") -> None:
        if self.bars is None:
            return
        if name not in self.tasks:
            self.tasks[name] = self.bars.add_task(name, total=total, note=note)
        self.bars.update(self.tasks[name], completed=done, total=total, note=note)

    def finished(self, line: str) -> None:
        """An experiment ended: its bar goes, its one line stays."""
        if self.bars is not None:
            self.bars.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=self.stream, flush=True)
