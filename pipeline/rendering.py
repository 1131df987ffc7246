"""A run's figures drawn in a helper process while the run logs its model.

Drawing the figures (matplotlib's text layout and rasterising) was ~0.2 s of the ~0.6 s a cnn-same
run spends around its fit, on one core while the other idled; a thread does not help (the GIL).
So each Python process that trains starts one helper, `python -m pipeline.rendering`, at its
first run: it imports matplotlib while the model trains, then draws each run's plots
(`plots.Plot`: a function of pipeline/plots.py and its data) into PNG files while the run logs its
model.

The helper is an optimisation, never a dependency: when it is not ready yet, has died or fails a
plot, the run draws the plots itself (a broken plot then fails the run as it would without it).
It is a plain child process, not multiprocessing's: that would re-run the caller's own script in
the child. It imports pipeline/plots.py only (no TensorFlow), talks over its own stdin/stdout
(pickled plots in, one line out per job: the only writer is its parent), holds none of its
parent's output streams, ignores Ctrl-C and exits when its parent's end of the pipe closes.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from pipeline import plots

# a run's figures take well under a second; a helper this late is stuck, and the run draws them
DRAW_TIMEOUT_SECONDS = 120
READY = b"ready\n"
DONE = b"done\n"
FRAME = struct.Struct("!Q")  # a job's length, then its pickle

_helper: subprocess.Popen | None = None
_ready = False


def start() -> None:
    """Start this process's helper, unless it runs already (cheap to call before every run)."""
    global _helper, _ready
    if _helper is not None and _helper.poll() is None:
        return
    package_root = str(Path(plots.__file__).resolve().parents[1])  # this very `pipeline`, not another
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    try:
        _helper = subprocess.Popen(
            [sys.executable, "-m", "pipeline.rendering"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": path},
            bufsize=0,  # unbuffered: `select` on the answers' pipe sees every line not read yet
        )
    except OSError:
        _helper = None
    _ready = False


def _usable() -> bool:
    """Whether the helper has said it is ready (never waits for it)."""
    global _ready
    if _helper is None or _helper.poll() is not None:
        return False
    if not _ready and select.select([_helper.stdout], [], [], 0)[0]:
        _ready = _helper.stdout.readline() == READY
        if not _ready:
            _stop()
    return _ready


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
        self.jobs: list[tuple[dict[str, plots.Plot], subprocess.Popen | None]] = []

    def __enter__(self) -> Drawings:
        return self

    def __exit__(self, *exc) -> None:
        if any(helper is not None for _, helper in self.jobs):
            _stop()  # the run failed before it waited: the helper's answers would go to the next run
        shutil.rmtree(self.folder, ignore_errors=True)

    def draw(self, items: Mapping[str, plots.Plot]) -> None:
        """Start drawing `items` ({artifact path under the folder: Plot})."""
        items, helper = dict(items), None
        # one thread talks to the helper (its answers are read in the order jobs were sent); runs
        # in other threads (a sweep's trials, which log no figures anyway) draw their own
        if items and threading.current_thread() is threading.main_thread() and _usable():
            try:
                job = pickle.dumps((items, self.label, str(self.folder)), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # a plot's data that does not pickle: drawn here, as it is
                job = None
            try:
                if job is not None:
                    _send(_helper.stdin, FRAME.pack(len(job)) + job)
                    helper = _helper
            except OSError:  # it died since
                _stop()
        self.jobs.append((items, helper))

    def wait(self) -> Path:
        """The folder, once every plot is drawn in it (the helper's answers come in job order)."""
        for items, helper in self.jobs:
            if helper is None or not _answered(helper):
                draw_all(items, self.label, str(self.folder))
        self.jobs.clear()
        return self.folder


def _send(stream, data: bytes) -> None:
    view = memoryview(data)
    while view:  # an unbuffered pipe may take part of it
        view = view[stream.write(view) :]


def _answered(helper: subprocess.Popen) -> bool:
    """The helper drew the next job it was sent (else it is ended, and the caller draws it)."""
    if helper is not _helper:  # ended while this job waited
        return False
    readable = select.select([helper.stdout], [], [], DRAW_TIMEOUT_SECONDS)[0]
    if readable and helper.stdout.readline() == DONE:
        return True
    _stop()
    return False


def draw_all(items: Mapping[str, plots.Plot], label: str, folder: str) -> None:
    """Draw every plot (in the helper, or in the run's process when it cannot)."""
    for name, item in items.items():
        plots.save(item, label, Path(folder) / name)


def serve(jobs, answers) -> None:
    """The helper's loop: a job in, its PNGs drawn, `done` out; ends at the end of its input.
    A job that fails gets no answer: the helper exits and its parent draws that job itself."""
    answers.write(READY)
    answers.flush()
    while header := jobs.read(FRAME.size):
        (size,) = FRAME.unpack(header)
        draw_all(*pickle.loads(jobs.read(size)))  # from its parent, through a pipe only it holds
        answers.write(DONE)
        answers.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which ends the helper
    serve(sys.stdin.buffer, sys.stdout.buffer)
