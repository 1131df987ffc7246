"""The MLflow UI in a real headless Chromium: the link `make ui` prints, the runs, the compare view.

Needs Debian's chromium and chromium-driver (.ci/run installs them); skipped with a reason otherwise.
"""

import shutil

import pytest

from pipeline import cli
from tests.helpers import serving

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Chromium not found: apt-get install chromium chromium-driver"
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def ui(project, monkeypatch):
    """A store with two finished runs, served by `python -m pipeline ui` on a free port."""
    for name in ("mlp", "cnn-same"):
        assert (
            cli.main(["train", name, "--quiet", "--set", "train.epochs=1", "--set", "train.limit=100"]) == 0
        )
    with serving(project, "ui") as port:
        yield port


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    yield driver
    driver.quit()


def shown(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")  # the UI rounds metrics to 3 decimals


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
