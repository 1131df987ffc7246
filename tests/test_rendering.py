"""The figures' helper process (pipeline/rendering.py) and the plots it draws (pipeline/plots.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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


def test_the_helper_draws_a_runs_plots_in_the_order_they_come(helper):
    curves, matrix = some_plots().items()
    with rendering.Drawings("cnn-same (digits-classification)") as figures:
        figures.draw(dict([curves]))  # as a run does: the curves first, while it evaluates
        figures.draw(dict([matrix]))
        assert [sent for _, sent in figures.jobs] == [helper, helper]  # not drawn here
        deadline = time.monotonic() + 60
        while not (figures.folder / matrix[0]).exists():  # both answered before the run asks:
            assert time.monotonic() < deadline  # each answer is still read as its job's
            time.sleep(0.05)
        time.sleep(0.3)
        started = time.monotonic()
        folder = figures.wait()
        assert time.monotonic() - started < 5
        assert_drawn(folder, some_plots())
    assert not folder.exists()  # a run's folder lasts as long as the run
    assert helper.poll() is None  # the helper stays for the next run


def test_plots_are_drawn_here_when_the_helper_is_not_ready():
    rendering._stop()
    with rendering.Drawings("run") as figures:
        figures.draw(some_plots())
        assert figures.jobs[0][1] is None
        assert_drawn(figures.wait(), some_plots())


def test_plots_of_other_threads_or_that_do_not_pickle_are_drawn_here(helper):
    class History(dict):  # a class local to a function does not pickle
        pass

    local = {"local.png": plots.plot(plots.training_curves, History(loss=[1.0, 0.5]), "t")}
    with rendering.Drawings("run") as figures:
        thread = threading.Thread(target=figures.draw, args=(some_plots(),))
        thread.start()
        thread.join()
        figures.draw({"curves.png": plots.plot(plots.training_curves, {"loss": [1.0, 0.5]}, "t")})
        figures.draw(local)
        assert [sent for _, sent in figures.jobs] == [None, helper, None]
        assert_drawn(figures.wait(), [*some_plots(), "curves.png", "local.png"])
    assert helper.poll() is None  # the helper still serves the next run


def test_plots_are_drawn_here_when_the_helper_dies(helper):
    with rendering.Drawings("run") as figures:
        figures.draw(some_plots())
        helper.kill()
        assert_drawn(figures.wait(), some_plots())
    assert rendering._helper is None  # the next run starts another


def test_a_broken_plot_fails_as_it_would_without_the_helper(helper):
    with rendering.Drawings("run") as figures:
        figures.draw({"broken.png": plots.plot(plots.training_curves, {}, "no metric to draw")})
        assert figures.jobs[0][1] is helper
        with pytest.raises(ValueError):  # raised again here, where the run reports it
            figures.wait()
    assert helper.poll() is not None  # that helper is gone


def test_a_run_that_fails_before_its_figures_are_drawn_leaves_no_answer_for_the_next(helper):
    with pytest.raises(RuntimeError):
        with rendering.Drawings("failing run") as figures:
            figures.draw(some_plots())
            raise RuntimeError("evaluation failed")
    assert rendering._helper is None  # its answer would have gone to the next run's first job
    rendering.start()
    with rendering.Drawings("next run") as figures:
        figures.draw(some_plots())
        assert_drawn(figures.wait(), some_plots())


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
