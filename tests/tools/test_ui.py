"""`make ui`: a busy port refused in one line; in a real headless Chromium, the link it prints,
the runs, the compare view.

The browser test needs Debian's chromium and chromium-driver (.ci/run installs them; in CI a
missing Chromium fails the test, elsewhere it is skipped with a reason).
"""

import shutil
import socket

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from pipeline import cli
from pipeline.errors import UserError
from pipeline.tools import ui as ui_tool
from tests.helpers import REPO, make, needs_chromium, serving


@pytest.fixture
def taken_port():
    """A port something listens on (another MLflow UI, say)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_busy_port_is_refused_in_one_line_naming_PORT(project, taken_port, capsys, monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("the UI was started on a busy port")

    monkeypatch.setattr(ui_tool.subprocess, "call", started)
    with pytest.raises(UserError, match=f"port {taken_port} is in use.*make ui PORT={taken_port + 1}"):
        ui_tool.check_port("127.0.0.1", taken_port)
    capsys.readouterr()
    assert cli.main(["ui", "--port", str(taken_port)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no links to a UI that is not there
    assert err.strip().startswith("error: port") and "PORT=" in err and len(err.strip().splitlines()) == 1


@pytest.mark.integration
def test_make_ui_on_a_busy_port_exits_non_zero(project, taken_port):
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy2(REPO / name, project / name)
    (project / ".venv-ready").touch()  # stands in for the installed .venv
    result = make(project, "ui", f"PORT={taken_port}")
    assert result.returncode != 0
    assert f"port {taken_port} is in use" in result.stderr and "make ui PORT=" in result.stderr
    assert "http://" not in result.stdout


@pytest.fixture
def ui(project, monkeypatch):
    """A store with two finished runs, served by `python -m pipeline ui` on a free port."""
    for name in ("mlp", "cnn-same"):
        assert (
            cli.main(["train", name, "--quiet", "--set", "train.epochs=1", "--set", "train.limit=100"]) == 0
        )
    with serving(project, "ui") as port:
        yield port


def shown(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")  # the UI rounds metrics to 3 decimals


@needs_chromium
@pytest.mark.slow
def test_compare_two_runs_in_the_ui(ui, browser, project, capsys):
    capsys.readouterr()  # the trainings' result lines
    assert cli.main(["ui", "--links-only", "--port", str(ui)]) == 0  # what `make ui` prints first
    links = capsys.readouterr().out
    link = next(line.split()[-1] for line in links.splitlines() if "digits-classification" in line)
    assert link.endswith("?workflowType=machine_learning")
    wait = WebDriverWait(browser, 60)
    browser.get(link)
    body = lambda: browser.find_element(By.TAG_NAME, "body").text  # noqa: E731
    wait.until(lambda _: "mlp" in body() and "cnn-same" in body())  # the training runs table

    select_all = browser.find_element(By.CSS_SELECTOR, "input[aria-label='Select all runs']")
    browser.execute_script("arguments[0].click();", select_all)
    compare = wait.until(
        lambda b: next((x for x in b.find_elements(By.TAG_NAME, "button") if x.text == "Compare"), None)
    )
    compare.click()
    wait.until(lambda _: "Comparing 2 Runs" in body() and "test_accuracy" in body())

    import mlflow

    runs = mlflow.search_runs(experiment_names=["digits-classification"])
    text = body()
    for value in runs["metrics.test_accuracy"]:
        assert shown(value) in text
    shot = project / "reports" / "ui-compare.png"
    shot.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
