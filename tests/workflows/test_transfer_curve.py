"""The transfer learning curve on a tiny configuration: nested runs, table, plot, bad sizes."""

import mlflow
import numpy as np
import pytest

from pipeline import cli
from pipeline.training import tracking
from pipeline.workflows import transfer_curve
from tests.helpers import edit_params

TINY = [
    "--sizes",
    "1",
    "2",
    "--seeds",
    "2",
    "--quiet",
    "--set",
    "train.epochs=1",
]


def all_runs():
    tracking.configure()
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("digits-transfer")
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.slow
def test_curve_logs_nested_runs_and_a_summary(transfer_project):
    experiments = ["transfer-scratch", "transfer-feature"]  # feature: no second phase to trace
    edit_params(transfer_project, lambda p: p["transfer_curve"].__setitem__("experiments", experiments))
    assert cli.main(["transfer-curve", *TINY]) == 0

    runs = all_runs()
    (parent,) = [r for r in runs if r.info.run_name == transfer_curve.RUN_NAME]
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "FINISHED" and len(children) == 2 * 2 * 2  # experiments x sizes x seeds
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    seen = {
        (
            c.data.tags["transfer_mode"],
            c.data.params["objective.labels_per_class"],
            c.data.params["train.seed"],
        )
        for c in children
    }
    assert seen == {(m, n, s) for m in ("scratch", "feature") for n in ("1", "2") for s in ("42", "43")}
    assert all(
        int(c.data.params["data.train_examples"]) == 5 * int(c.data.params["objective.labels_per_class"])
        for c in children
    )

    client = mlflow.MlflowClient()
    assert not client.list_artifacts(children[0].info.run_id)  # no model or figures per point
    assert {"transfer_curve.csv", "transfer_curve.md", "transfer_curve.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
    rows = (transfer_project / "reports/transfer-curve/transfer_curve.csv").read_text().splitlines()[1:]
    assert len(rows) == 4
    for row in rows:
        experiment, n, mean, std, count, epochs = row.split(",")
        points = [c for c in children if c.info.run_name.startswith(f"{experiment} n={n} ")]
        accs = [c.data.metrics["test_accuracy"] for c in points]
        assert float(epochs) == pytest.approx(np.mean([c.data.metrics["epochs_to_converge"] for c in points]))
        assert count == "2" and float(mean) == pytest.approx(np.mean(accs), abs=1e-4)
        assert float(std) == pytest.approx(np.std(accs), abs=1e-4)
        assert parent.data.metrics[f"test_accuracy_mean.{experiment}.{n}"] == pytest.approx(np.mean(accs))
    markdown = (transfer_project / "reports/transfer-curve/transfer_curve.md").read_text()
    assert (
        markdown.count("| labels per class | transfer-scratch | transfer-feature |") == 2
    )  # accuracy, epochs
    # the module's size: its variables, as the transfer model counts them
    from pipeline.models import hub

    layer = hub.HubLayer(str(transfer_project / "models/hub/digits-0-4"), (8, 8, 1))
    layer.build((None, 8, 8, 1))
    assert parent.data.metrics["module_params"] == sum(int(np.prod(w.shape)) for w in layer.weights) > 1000
    assert parent.data.metrics["module_bytes"] > 10_000 and "parameters," in markdown


@pytest.mark.integration  # transfer_project: pretrain trained once
def test_sizes_larger_than_the_data_fail_before_any_run(transfer_project, capsys):
    assert cli.main(["transfer-curve", "--sizes", "1", "5000", "--seeds", "1"]) == 2
    assert "labels_per_class = 5000" in capsys.readouterr().err
    assert all_runs() == []


def test_curve_without_its_hub_module_starts_no_run(project, capsys):
    assert cli.main(["transfer-curve", "--sizes", "1", "--seeds", "1"]) == 2
    assert "hub_handle 'models/hub/digits-0-4': no such directory" in capsys.readouterr().err
    assert all_runs() == []


def test_bad_size_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["transfer-curve", "--sizes", "0"])
    assert exit_.value.code == 2 and "'0' is not a positive integer or 'all'" in capsys.readouterr().err
