"""The figures' helper process (pipeline/rendering.py) and the plots it draws (pipeline/plots.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pipeline import plots, rendering

PNG = b"\x89PNG\r\n\x1a\n"


def some_plots() -> dict[str, plots.Plot]:
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    return {
        "training_curves.png": plots.plot(plots.training_curves, history, "training curves"),
        "nested/confusion_matrix.png": plots.plot(
            plots.confusion_matrix, np.eye(3, dtype=int), ["a", "b", "c"], 0.9
        ),
    }


@pytest.fixture
def helper():
    """A ready helper of this test's own (the module keeps one per process)."""
    rendering._stop()
    rendering.start()
    deadline = time.monotonic() + 60
    while not rendering._usable():
        assert time.monotonic() < deadline, "the helper never said it was ready"
        time.sleep(0.05)
    yield rendering._helper
    rendering._stop()


def assert_drawn(folder, names) -> None:
    for name in names:
        assert (folder / name).read_bytes().startswith(PNG), name


def test_a_plot_draws_with_a_function_of_plots_only():
    with pytest.raises(TypeError, match="pipeline.plots"):
        plots.plot(print, "not a figure")


def test_the_helper_draws_a_runs_plots(helper, tmp_path):
    drawing = rendering.draw(some_plots(), "cnn-same (digits-classification)", tmp_path)
    assert drawing.sent  # handed to the helper, not drawn here
    drawing.wait()
    assert_drawn(tmp_path, some_plots())
    assert helper.poll() is None  # it stays for the next run


def test_plots_are_drawn_here_when_the_helper_is_not_ready(tmp_path):
    rendering._stop()
    drawing = rendering.draw(some_plots(), "run", tmp_path)
    assert not drawing.sent
    drawing.wait()
    assert_drawn(tmp_path, some_plots())


def test_plots_are_drawn_here_when_the_helper_dies(helper, tmp_path):
    drawing = rendering.draw(some_plots(), "run", tmp_path)
    helper.kill()
    drawing.wait()
    assert_drawn(tmp_path, some_plots())
    assert rendering._helper is None  # the next run starts another


def test_a_broken_plot_fails_as_it_would_without_the_helper(helper, tmp_path):
    broken = {"broken.png": plots.plot(plots.training_curves, {}, "no metric to draw")}
    drawing = rendering.draw(broken, "run", tmp_path)
    assert drawing.sent
    with pytest.raises(ValueError):  # raised again here, where the run can report it
        drawing.wait()
    assert helper.poll() is not None  # that helper is gone


def test_the_helper_ends_with_its_parent_and_holds_none_of_its_streams():
    """A caller that kills a training process must not wait on a helper left behind."""
    parent = (
        "import os, signal, sys, time\n"
        "from pipeline import rendering\n"
        "rendering.start()\n"
        "while not rendering._usable(): time.sleep(0.05)\n"
        "print(rendering._helper.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 60  # returned as its parent died, not when the helper did
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, "the helper outlived its parent"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = (
        open(f"/proc/{pid}/stat").read().split(") ")[-1].split()[0] if os.path.exists(f"/proc/{pid}") else ""
    )
    return status not in ("Z", "")  # a zombie has exited
