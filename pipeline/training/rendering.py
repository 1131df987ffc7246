"""A run's figures drawn in a helper process while the run logs its model.

Drawing the figures (matplotlib's text layout and rasterising) was ~0.2 s of the ~0.6 s a cnn-same
run spends around its fit, on one core while the other idled; a thread does not help (the GIL).
So each Python process that trains starts one helper, `python -m pipeline.training.rendering`, at
its first run: it imports matplotlib while the model trains, then draws each run's plots
(`plots.Plot`: a function of pipeline/plots.py and its data) into PNG files while the run logs its
model.

The helper is an optimisation, never a dependency: when it is not ready yet, is stuck, has died or
fails a plot, the run draws the plots itself (a broken plot then fails the run as it would without
the helper). It is a plain child process, not multiprocessing's: that would re-run the caller's own
script in the child. It imports pipeline/plots.py only (no TensorFlow), talks over its own
stdin/stdout (numbered jobs of pickled plots in, the job's number out when it is drawn: the only
writer is its parent), holds none of its parent's output streams, ignores Ctrl-C and exits when its
parent's end of the pipe closes.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pipeline import plots

# a run's figures take well under a second; a helper this late is stuck, and the run draws them
DRAW_TIMEOUT_SECONDS = 120
READY = b"ready\n"
HEADER = struct.Struct("!QQ")  # a job's number and length, then its pickle

_helper: subprocess.Popen | None = None
_ready = False
_numbers = itertools.count(1)


def start() -> None:
    """Start this process's helper, unless it runs already (cheap to call before every run)."""
    global _helper
    if _helper is not None and _helper.poll() is None:
        return
    _stop()  # a dead one's pipes
    package_root = str(Path(plots.__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    try:
        _helper = subprocess.Popen(
            # -P: the current folder does not come first, so this very `pipeline` is imported
            [sys.executable, "-P", "-m", "pipeline.training.rendering"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": path},
            bufsize=0,  # unbuffered: waiting on the answers' pipe sees every line not read yet
        )
    except OSError:
        _helper = None
    else:
        os.set_blocking(_helper.stdin.fileno(), False)  # a stuck helper cannot block the run


def _usable() -> bool:
    """Whether the helper has said it is ready (never waits for it)."""
    global _ready
    if _helper is None or _helper.poll() is not None:
        return False
    if not _ready and _waits(_helper.stdout, selectors.EVENT_READ, 0):
        _ready = _helper.stdout.readline() == READY
        if not _ready:
            _stop()
    return _ready


def _waits(stream, event: int, seconds: float) -> bool:
    """Whether `stream` becomes readable/writable (`event`) within `seconds`."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, event)
        return bool(selector.select(seconds))


def _stop() -> None:
    """End the helper (the next run starts another)."""
    global _helper, _ready
    helper, _helper, _ready = _helper, None, False
    if helper is not None:
        helper.kill()
        helper.wait()
        for stream in (helper.stdin, helper.stdout):
            stream.close()


@atexit.register
def _close() -> None:
    """At exit: the helper reads the end of its input and exits on its own (~0.1 s: not waited for)."""
    if _helper is not None:
        try:
            _helper.stdin.close()
        except OSError:
            pass


class Drawings:
    """One run's PNGs, drawn into a temporary folder (removed on exit): by the helper when it is
    ready, else here. `draw` as soon as plots are known (the helper draws while the run goes on),
    `wait` for all of them before logging the folder."""

    def __init__(self, label: str):
        self.label = label
        self.folder = Path(tempfile.mkdtemp(prefix="pipeline-figures-"))
        # (plots, the helper drawing them or None, the job's number)
        self.jobs: list[tuple[dict[str, plots.Plot], subprocess.Popen | None, int]] = []

    def __enter__(self) -> Drawings:
        return self

    def __exit__(self, *exc) -> None:
        if any(helper is not None for _, helper, _ in self.jobs):
            _stop()  # the run failed before it waited: the helper's answers would go to the next run
        shutil.rmtree(self.folder, ignore_errors=True)

    def draw(self, items: Mapping[str, plots.Plot]) -> None:
        """Start drawing `items` ({artifact path under the folder: Plot})."""
        items, number = dict(items), next(_numbers)
        # one thread talks to the helper (a nested run's answers would be another's); runs in other
        # threads (a sweep's trials, which log no figures anyway) draw their own
        if not items or threading.current_thread() is not threading.main_thread() or not _usable():
            self.jobs.append((items, None, number))
            return
        try:
            job = pickle.dumps((items, self.label, str(self.folder)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a plot's data that does not pickle: drawn here, as it is
            self.jobs.append((items, None, number))
            return
        helper = _helper
        self.jobs.append((items, helper, number))  # before sending: an interrupted send stops it
        try:
            sent = _send(helper.stdin, HEADER.pack(number, len(job)) + job)
        except BaseException:
            _stop()  # a frame cut short would garble the next job
            raise
        if not sent:
            _stop()

    def wait(self) -> Path:
        """The folder, once every plot is drawn in it."""
        for items, helper, number in self.jobs:
            if helper is None or not _answered(helper, number):
                draw_all(items, self.label, str(self.folder))
        self.jobs.clear()
        return self.folder


def _send(stream, data: bytes) -> bool:
    """Write all of `data` within the timeout; False if the helper died or stopped reading."""
    view, deadline = memoryview(data), time.monotonic() + DRAW_TIMEOUT_SECONDS
    try:
        while view:
            written = stream.write(view)  # None: the pipe is full
            if written is None and not _waits(stream, selectors.EVENT_WRITE, deadline - time.monotonic()):
                return False
            view = view[written or 0 :]
    except OSError:  # it died
        return False
    return True


def _answered(helper: subprocess.Popen, number: int) -> bool:
    """The helper drew job `number` (else it is ended, and the caller draws the job)."""
    if helper is not _helper:  # ended while this job waited
        return False
    if _waits(helper.stdout, selectors.EVENT_READ, DRAW_TIMEOUT_SECONDS):
        if helper.stdout.readline() == b"%d\n" % number:
            return True
    _stop()
    return False


def draw_all(items: Mapping[str, plots.Plot], label: str, folder: str) -> None:
    """Draw every plot (in the helper, or in the run's process when it cannot)."""
    for name, item in items.items():
        plots.save(item, label, Path(folder) / name)


def serve(jobs, answers) -> None:
    """The helper's loop: a job in, its PNGs drawn, its number out; ends at the end of its input.
    A job that fails gets no answer: the helper exits and its parent draws that job itself."""
    answers.write(READY)
    answers.flush()
    while header := jobs.read(HEADER.size):
        number, size = HEADER.unpack(header)
        draw_all(*pickle.loads(jobs.read(size)))  # from its parent, through a pipe only it holds
        answers.write(b"%d\n" % number)
        answers.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which ends the helper
    serve(sys.stdin.buffer, sys.stdout.buffer)
