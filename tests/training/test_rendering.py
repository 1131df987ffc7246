"""The figures' helper process (pipeline/training/rendering.py) and the plots it draws (pipeline/plots.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import plots
from pipeline.training import rendering
from tests.conftest import assert_pngs


def some_plots() -> dict[str, plots.Plot]:
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    return {
        "training_curves.png": plots.plot(plots.training_curves, history, "training curves"),
        "nested/confusion_matrix.png": plots.plot(
            plots.confusion_matrix, np.eye(3, dtype=int), ["a", "b", "c"], 0.9
        ),
    }


def ready_helper():
    rendering.start()
    deadline = time.monotonic() + 60
    while not rendering._usable():
        assert time.monotonic() < deadline, "the helper never said it was ready"
        time.sleep(0.05)
    return rendering._helper


@pytest.fixture
def helper():
    """A ready helper of this test's own (the module keeps one per process)."""
    rendering._stop()
    yield ready_helper()
    rendering._stop()


def sent(figures) -> list:
    return [helper for _, helper, _ in figures.jobs]


def test_a_plot_draws_with_a_function_of_plots_only():
    with pytest.raises(TypeError, match="pipeline.plots"):
        plots.plot(print, "not a figure")


def test_the_helper_draws_a_runs_plots_in_the_order_they_come(helper):
    curves, matrix = some_plots().items()
    with rendering.Drawings("cnn-same (digits-classification)") as figures:
        figures.draw(dict([curves]))  # as a run does: the curves first, while it evaluates
        figures.draw(dict([matrix]))
        assert sent(figures) == [helper, helper]  # not drawn here
        deadline = time.monotonic() + 60
        while not (figures.folder / matrix[0]).exists():  # both answered before the run asks:
            assert time.monotonic() < deadline  # each answer is still read as its job's
            time.sleep(0.05)
        time.sleep(0.3)
        started = time.monotonic()
        folder = figures.wait()
        assert time.monotonic() - started < 5
        assert_pngs(folder, some_plots())
    assert not folder.exists()  # a run's folder lasts as long as the run
    assert helper.poll() is None  # the helper stays for the next run


def test_plots_are_drawn_here_when_the_helper_is_not_ready():
    rendering._stop()
    with rendering.Drawings("run") as figures:
        figures.draw(some_plots())
        assert sent(figures) == [None]
        assert_pngs(figures.wait(), some_plots())


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
        assert sent(figures) == [None, helper, None]
        assert_pngs(figures.wait(), [*some_plots(), "curves.png", "local.png"])
    assert helper.poll() is None  # the helper still serves the next run


def test_plots_are_drawn_here_when_the_helper_dies(helper):
    with rendering.Drawings("run") as figures:
        helper.send_signal(signal.SIGSTOP)  # it cannot answer before it is killed
        figures.draw(some_plots())
        helper.kill()
        assert_pngs(figures.wait(), some_plots())
    assert rendering._helper is None  # the next run starts another


def test_a_stuck_helper_neither_blocks_nor_loses_a_run(helper, monkeypatch):
    monkeypatch.setattr(rendering, "DRAW_TIMEOUT_SECONDS", 1)
    big = {
        f"{i}.png": plots.plot(plots.training_curves, {"loss": list(np.arange(20_000.0))}, "t")
        for i in range(3)
    }
    with rendering.Drawings("run") as figures:
        helper.send_signal(signal.SIGSTOP)  # reads nothing more: its input pipe fills up
        started = time.monotonic()
        figures.draw(big)
        assert time.monotonic() - started < 30
        assert_pngs(figures.wait(), big)  # drawn here once the helper did not answer
    assert helper.poll() is not None  # the stuck helper is ended


def test_an_answer_for_another_job_is_not_taken_for_this_one(helper):
    with rendering.Drawings("outer run") as outer:
        outer.draw(some_plots())
        with rendering.Drawings("inner run") as inner:  # a run inside another run's figures
            inner.draw(some_plots())
            assert_pngs(inner.wait(), some_plots())  # the first answer is the outer job's
        assert_pngs(outer.wait(), some_plots())


def test_a_broken_plot_fails_as_it_would_without_the_helper(helper):
    with rendering.Drawings("run") as figures:
        figures.draw({"broken.png": plots.plot(plots.training_curves, {}, "no metric to draw")})
        assert sent(figures) == [helper]
        with pytest.raises(ValueError):  # raised again here, where the run reports it
            figures.wait()
    assert helper.poll() is not None  # that helper is gone


def test_a_run_that_fails_before_its_figures_are_drawn_leaves_no_answer_for_the_next(helper):
    with pytest.raises(RuntimeError):
        with rendering.Drawings("failing run") as figures:
            figures.draw(some_plots())
            raise RuntimeError("evaluation failed")
    assert rendering._helper is None  # its answer would have gone to the next run's first job
    next_helper = ready_helper()
    with rendering.Drawings("next run") as figures:
        figures.draw(some_plots())
        assert sent(figures) == [next_helper]
        assert_pngs(figures.wait(), some_plots())
    assert next_helper.poll() is None


def test_the_helper_ends_with_its_parent_and_holds_none_of_its_streams():
    """A caller that kills a training process must not wait on a helper left behind."""
    parent = (
        "import os, signal, sys, time\n"
        "from pipeline.training import rendering\n"
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
    """Whether `pid` runs (a zombie has exited; its parent just has not reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):  # gone, even between two looks
        return False
    return state != "Z"
