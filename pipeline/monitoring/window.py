"""A server's drift: requests' statistics gathered over a rolling window, compared and written
once per window (a timer thread), never per request.

    window = DriftWindow(profile, write=log_it, seconds=60)
    with window:                                   # starts the timer; the last window is written on exit
        ...  window.add(profile.stats(images, probabilities))   # per request: a merge, no I/O

Memory stays bounded: the per-example statistics keep a uniform sample of at most `max_examples`
(reservoir sampling over the window); the sums (mean image, histogram, counts) cover every example.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from pipeline.monitoring.drift import Drift


class DriftWindow:
    def __init__(
        self,
        profile,
        write: Callable[[Drift], None],
        seconds: float = 60.0,
        max_examples: int = 10_000,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if seconds <= 0 or max_examples < 1:
            raise ValueError("seconds must be > 0 and max_examples >= 1")
        self.profile, self.write, self.seconds, self.max_examples = profile, write, seconds, max_examples
        self.clock = clock
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._stats = None
        self._seen = 0  # per-example rows offered to the sample this window
        self._started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, stats) -> None:
        """Fold one request's statistics into the window (cheap: no comparison, no I/O)."""
        with self._lock:
            self._stats = stats if self._stats is None else self._sampled(self._stats, stats)
            self._seen += len(getattr(stats, stats.PER_EXAMPLE[0]))
            if self._stats is stats:
                self._stats = self._trimmed(stats)

    def _sampled(self, kept, new):
        """`kept` merged with `new`, the per-example rows a uniform sample of all rows seen."""
        merged = kept.merge(new)
        rows = len(getattr(merged, merged.PER_EXAMPLE[0]))
        if rows <= self.max_examples:
            return merged
        slots = np.arange(self.max_examples)  # the merged row each slot holds: at first, the first k
        first = len(getattr(kept, kept.PER_EXAMPLE[0]))  # rows kept so far (all of them while < k)
        offsets = np.arange(max(first, self.max_examples), rows)
        # Algorithm R: the s-th row seen takes a random slot with probability k/s (later rows win)
        number = self._seen + (offsets - first) + 1
        picks = self._rng.integers(0, number)
        hit = picks < self.max_examples
        slots[picks[hit]] = offsets[hit]
        return self._take(merged, slots)

    def _trimmed(self, stats):
        rows = len(getattr(stats, stats.PER_EXAMPLE[0]))
        if rows <= self.max_examples:
            return stats
        return self._take(stats, np.sort(self._rng.choice(rows, self.max_examples, replace=False)))

    @staticmethod
    def _take(stats, index):
        picked = {
            name: getattr(stats, name)[index]
            for name in stats.PER_EXAMPLE
            if getattr(stats, name) is not None
        }
        return dataclasses.replace(stats, **picked)

    def due(self) -> bool:
        return self.clock() - self._started >= self.seconds

    def flush(self) -> Drift | None:
        """Compare the window with the training data, hand the result to `write`, start a new window.
        Nothing to compare (no request in the window): None, and nothing written."""
        with self._lock:
            stats, self._stats, self._seen = self._stats, None, 0
            self._started = self.clock()
        if stats is None:
            return None
        drift = self.profile.compare(stats)
        try:
            self.write(drift)
        except Exception as exc:  # a failing writer must not take the server down
            print(f"drift window: could not write ({type(exc).__name__}: {exc})", file=sys.stderr)
        return drift

    def start(self) -> DriftWindow:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="DriftWindow", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self.seconds - (self.clock() - self._started))):
            if self.due():
                self.flush()

    def stop(self) -> Drift | None:
        """Stop the timer and write what the last window gathered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.flush()

    def __enter__(self) -> DriftWindow:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
